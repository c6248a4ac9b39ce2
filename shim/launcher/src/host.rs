//! Facts about the caller and the host, and the [`Fs`] window spec building looks through.
//!
//! [`HostFacts::gather`] and [`RealFs`] are the only parts of spec building that touch the system;
//! tests use fixed facts and an in-memory [`Fs`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Who runs the launcher, from where, with what environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    pub uid: u32,
    pub gid: u32,
    /// Login name (from the host's passwd; "user<uid>" when there is none).
    pub user: String,
    pub gecos: String,
    /// $HOME when absolute, else the passwd home directory.
    pub home: PathBuf,
    /// The current directory (absolute).
    pub cwd: PathBuf,
    /// The launcher's environment, in order.
    pub env: Vec<(String, String)>,
    /// The kernel's release, major and minor (0.0 when unreadable).
    pub kernel: (u32, u32),
    /// overlayfs is there (/sys/module/overlay: loaded or built in).
    pub overlayfs: bool,
}

impl HostFacts {
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Can a read-only overlay be mounted, in a user namespace or not? Unprivileged overlayfs
    /// came with Linux 5.11 (before it, a user namespace's root could not mount one).
    pub fn overlay_in(&self, userns: bool) -> bool {
        self.overlayfs && (!userns || self.kernel >= (5, 11))
    }

    /// Reads the effective ids, passwd entry, $HOME, cwd and environment.
    pub fn gather() -> HostFacts {
        let uid = nix::unistd::geteuid();
        let gid = nix::unistd::getegid();
        let pw = nix::unistd::User::from_uid(uid).ok().flatten();
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let home = env
            .iter()
            .find(|(k, v)| k == "HOME" && v.starts_with('/'))
            .map(|(_, v)| PathBuf::from(v))
            .or_else(|| pw.as_ref().map(|p| p.dir.clone()))
            .unwrap_or_else(|| PathBuf::from("/"));
        HostFacts {
            uid: uid.as_raw(),
            gid: gid.as_raw(),
            user: pw
                .as_ref()
                .map_or_else(|| format!("user{uid}"), |p| p.name.clone()),
            gecos: pw
                .as_ref()
                .map(|p| p.gecos.to_string_lossy().into_owned())
                .unwrap_or_default(),
            home,
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            env,
            kernel: nix::sys::utsname::uname()
                .ok()
                .and_then(|u| u.release().to_str().map(kernel_version))
                .unwrap_or((0, 0)),
            overlayfs: Path::new("/sys/module/overlay").exists(),
        }
    }
}

/// "6.1.0-18-amd64" → (6, 1); (0, 0) when it does not start with two numbers.
pub fn kernel_version(release: &str) -> (u32, u32) {
    let mut n = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (n.next().flatten(), n.next().flatten()) {
        (Some(a), Some(b)) => (a, b),
        _ => (0, 0),
    }
}

/// What a path is (lstat: a symlink is reported as one).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Dir,
    File,
    Symlink(PathBuf),
}

/// Read-only look-ups on host paths.
pub trait Fs {
    /// lstat.
    fn lstat(&self, path: &Path) -> Option<Kind>;
    /// stat (follows symlinks, as mount(2) does for a bind source): Dir or File.
    fn stat(&self, path: &Path) -> Option<Kind>;
    /// Directory entries, sorted by name.
    fn list(&self, path: &Path) -> std::io::Result<Vec<(OsString, Kind)>>;
    /// A small text file (/etc/passwd); None when missing or unreadable.
    fn read(&self, path: &Path) -> Option<String>;
    /// Permission bits and owner uid (stat); None when missing or not known.
    fn mode(&self, _path: &Path) -> Option<(u32, u32)> {
        None
    }
    /// The filesystem type (statfs f_type) `path` is on; None when unknown.
    fn fs_type(&self, _path: &Path) -> Option<i64> {
        None
    }
    /// A device node's type ('c' or 'b'), major and minor (stat, following links); None otherwise.
    fn device(&self, _path: &Path) -> Option<(char, u64, u64)> {
        None
    }
}

/// The real filesystem.
#[derive(Debug, Default)]
pub struct RealFs;

fn kind_of(path: &Path, m: &std::fs::Metadata) -> Kind {
    if m.file_type().is_symlink() {
        Kind::Symlink(std::fs::read_link(path).unwrap_or_default())
    } else if m.is_dir() {
        Kind::Dir
    } else {
        Kind::File
    }
}

impl Fs for RealFs {
    fn lstat(&self, path: &Path) -> Option<Kind> {
        std::fs::symlink_metadata(path)
            .ok()
            .map(|m| kind_of(path, &m))
    }

    fn stat(&self, path: &Path) -> Option<Kind> {
        std::fs::metadata(path).ok().map(|m| kind_of(path, &m))
    }

    fn list(&self, path: &Path) -> std::io::Result<Vec<(OsString, Kind)>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(path)? {
            let e = e?;
            let p = e.path();
            let m = std::fs::symlink_metadata(&p)?;
            out.push((e.file_name(), kind_of(&p, &m)));
        }
        out.sort();
        Ok(out)
    }

    fn read(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }

    fn mode(&self, path: &Path) -> Option<(u32, u32)> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some((m.mode() & 0o7777, m.uid()))
    }

    fn fs_type(&self, path: &Path) -> Option<i64> {
        let st = nix::sys::statfs::statfs(path).ok()?;
        Some(st.filesystem_type().0 as i64)
    }

    fn device(&self, path: &Path) -> Option<(char, u64, u64)> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let m = std::fs::metadata(path).ok()?;
        let t = m.file_type();
        let typ = if t.is_char_device() {
            'c'
        } else if t.is_block_device() {
            'b'
        } else {
            return None;
        };
        let rdev = m.rdev();
        Some((
            typ,
            nix::sys::stat::major(rdev),
            nix::sys::stat::minor(rdev),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_version("6.1.0-18-amd64"), (6, 1));
        assert_eq!(kernel_version("5.10.0"), (5, 10));
        assert_eq!(kernel_version("6.18.44-fc-v769"), (6, 18));
        assert_eq!(kernel_version("garbage"), (0, 0));
        let h = |kernel, overlayfs| HostFacts {
            uid: 1000,
            gid: 1000,
            user: "u".into(),
            gecos: String::new(),
            home: "/home/u".into(),
            cwd: "/".into(),
            env: vec![],
            kernel,
            overlayfs,
        };
        assert!(h((5, 11), true).overlay_in(true));
        assert!(!h((5, 10), true).overlay_in(true));
        assert!(h((5, 10), true).overlay_in(false));
        assert!(!h((6, 1), false).overlay_in(false));
    }
}
