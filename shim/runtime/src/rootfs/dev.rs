//! Device nodes and /dev symlinks for a container whose /dev is not a bind mount.
//!
//! Really privileged: mknod with the umask cleared (so the mode is exact), then chown. In a user
//! namespace mknod of a real device is refused, so the host's node is bind-mounted onto an empty
//! file, as runc does; its mode and owner are then the host's.

use super::{exec, resolve, RootfsError};
use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::stat::{fchmodat, mknodat, umask, FchmodatFlags, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Char,
    Block,
    Fifo,
}

/// A device node to create in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Absolute, clean path inside the container.
    pub path: PathBuf,
    pub kind: DeviceKind,
    pub major: u64,
    pub minor: u64,
    /// Permission bits (`fileMode & 0o7777`, default 0666).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// runc's default device set (libcontainer/specconv AllowedDevices with a path).
const DEFAULTS: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Defaults first, then `linux.devices`; a config entry replaces a default with the same path.
pub fn merge(config: &[LinuxDevice]) -> Result<Vec<Device>, RootfsError> {
    let mut out: Vec<Device> = DEFAULTS
        .iter()
        .map(|&(path, major, minor)| Device {
            path: path.into(),
            kind: DeviceKind::Char,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        })
        .collect();
    for d in config {
        let path = super::clean(d.path());
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
            LinuxDeviceType::B => DeviceKind::Block,
            LinuxDeviceType::P => DeviceKind::Fifo,
            other => {
                return Err(RootfsError::DeviceType {
                    path,
                    kind: other.as_str().to_string(),
                })
            }
        };
        let dev = Device {
            kind,
            major: d.major().max(0) as u64,
            minor: d.minor().max(0) as u64,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
            path,
        };
        out.retain(|o| o.path != dev.path);
        out.push(dev);
    }
    Ok(out)
}

/// runc's setupDevSymlinks list; /dev/core only where the host has /proc/kcore (checked when applied).
pub fn symlinks() -> Vec<(PathBuf, PathBuf)> {
    [
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
        ("/proc/kcore", "/dev/core"),
    ]
    .iter()
    .map(|&(t, l)| (t.into(), l.into()))
    .collect()
}

/// Creates the devices in the rootfs behind `root`, in order.
///
/// mknod's mode is cut by the umask, so it is 0 while the nodes are made (and restored after):
/// then a node's mode is exact without a chmod, which glibc emulates with four calls for a
/// no-follow chmod. Nodes sharing a parent directory share one resolution of it.
pub fn create_all(root: impl AsFd, devices: &[Device], bind: bool) -> Result<(), RootfsError> {
    let root = root.as_fd();
    if bind {
        return devices.iter().try_for_each(|d| bind_one(root, d));
    }
    let old = umask(Mode::empty());
    let mut dirs = Parents::new(root);
    let r = devices
        .iter()
        .try_for_each(|d| mknod_one(dirs.of(&d.path)?, d));
    umask(old);
    r
}

/// The directory of one path after another, resolved once while consecutive paths share it.
struct Parents<'a> {
    root: BorrowedFd<'a>,
    last: Option<(PathBuf, OwnedFd)>,
}

impl<'a> Parents<'a> {
    fn new(root: BorrowedFd<'a>) -> Self {
        Parents { root, last: None }
    }

    fn of(&mut self, path: &Path) -> Result<BorrowedFd<'_>, RootfsError> {
        let parent = path.parent().unwrap_or(Path::new("/"));
        if self.last.as_ref().is_none_or(|(p, _)| p != parent) {
            let fd = resolve::open(self.root, parent, resolve::Create::Dir)
                .map_err(|source| resolve_err(parent, source))?;
            self.last = Some((parent.to_path_buf(), fd));
        }
        Ok(self
            .last
            .as_ref()
            .map(|(_, fd)| fd.as_fd())
            .expect("set above"))
    }
}

fn bind_one(root: BorrowedFd<'_>, dev: &Device) -> Result<(), RootfsError> {
    let target = resolve::open(root, &dev.path, resolve::Create::File)
        .map_err(|source| resolve_err(&dev.path, source))?;
    exec::mount_at(
        Some(&dev.path),
        &target,
        None,
        MsFlags::MS_BIND,
        "",
        &dev.path,
    )
}

/// mknod in `dir` (the umask is 0), then the owner; an existing node is left as the image made it.
fn mknod_one(dir: BorrowedFd<'_>, dev: &Device) -> Result<(), RootfsError> {
    let err = |source| RootfsError::Device {
        path: dev.path.clone(),
        source,
    };
    let name = dev.path.file_name().ok_or_else(|| err(Errno::EINVAL))?;
    let kind = match dev.kind {
        DeviceKind::Char => SFlag::S_IFCHR,
        DeviceKind::Block => SFlag::S_IFBLK,
        DeviceKind::Fifo => SFlag::S_IFIFO,
    };
    let perm = Mode::from_bits_truncate(dev.mode);
    let rdev = nix::sys::stat::makedev(dev.major, dev.minor);
    match mknodat(Some(dir.as_raw_fd()), name, kind, perm, rdev) {
        // Like runc: an existing node is left as the image made it.
        Err(Errno::EEXIST) => return Ok(()),
        r => r.map_err(err)?,
    }
    if dev.mode & 0o7000 != 0 {
        // setuid/setgid/sticky bits: the kernel may strip them at creation; set them explicitly.
        chmod_nofollow(dir, name, perm).map_err(err)?;
    }
    fchownat(
        Some(dir.as_raw_fd()),
        name,
        Some(Uid::from_raw(dev.uid)),
        Some(Gid::from_raw(dev.gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(err)
}

fn chmod_nofollow(dir: BorrowedFd<'_>, name: &std::ffi::OsStr, perm: Mode) -> nix::Result<()> {
    let at = Some(dir.as_raw_fd());
    fchmodat(at, name, perm, FchmodatFlags::NoFollowSymlink).or_else(|e| match e {
        // fchmodat(AT_SYMLINK_NOFOLLOW) is refused by older kernels; the node is fresh, not a link.
        Errno::EOPNOTSUPP => fchmodat(at, name, perm, FchmodatFlags::FollowSymlink),
        e => Err(e),
    })
}

/// /dev/ptmx → pts/ptmx (so the container's devpts instance is used, devpts(5) newinstance), then
/// each `link` → `target` of `links`, an existing entry kept.
pub fn symlinks_all(root: impl AsFd, links: &[(PathBuf, PathBuf)]) -> Result<(), RootfsError> {
    let mut dirs = Parents::new(root.as_fd());
    let ptmx = Path::new("/dev/ptmx");
    let dev = dirs.of(ptmx)?;
    let err = |source| RootfsError::Symlink {
        path: ptmx.into(),
        source,
    };
    match unlinkat(Some(dev.as_raw_fd()), "ptmx", UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(err(e)),
    }
    symlinkat("pts/ptmx", Some(dev.as_raw_fd()), "ptmx").map_err(err)?;
    for (target, link) in links {
        if link == Path::new("/dev/core") && !Path::new("/proc/kcore").exists() {
            continue;
        }
        let err = |source| RootfsError::Symlink {
            path: link.into(),
            source,
        };
        let name = link.file_name().ok_or_else(|| err(Errno::EINVAL))?;
        match symlinkat(target.as_path(), Some(dirs.of(link)?.as_raw_fd()), name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(())
}

fn resolve_err(path: &Path, source: Errno) -> RootfsError {
    RootfsError::Resolve {
        path: path.into(),
        source,
    }
}

/// Binds the container's terminal (a pty of its devpts) onto /dev/console, as runc does
/// (mountConsole): programs that open /dev/console (init systems, getty, logger fallbacks) reach
/// the terminal. Runs after pivot_root, in the container's root; /dev/console is made an empty
/// file first when missing, without following a symlink out of the root.
pub fn bind_console(pty: &Path) -> Result<(), RootfsError> {
    let dest = Path::new("/dev/console");
    let root = exec::open_dir(Path::new("/"))?;
    let target = resolve::open(root.as_fd(), dest, resolve::Create::File).map_err(|source| {
        RootfsError::Resolve {
            path: dest.into(),
            source,
        }
    })?;
    exec::mount_at(Some(pty), &target, None, MsFlags::MS_BIND, "", dest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

    fn fifo(path: &str, mode: u32) -> Device {
        Device {
            path: path.into(),
            kind: DeviceKind::Fifo,
            major: 0,
            minor: 0,
            mode,
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        }
    }

    #[test]
    fn nodes_get_their_exact_mode_and_links_are_made() {
        let d = std::env::temp_dir().join(format!("husk-dev-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("dev/sub")).unwrap();
        std::fs::write(d.join("dev/kept"), "").unwrap();
        let root = std::fs::File::open(&d).unwrap();
        let before = umask(Mode::from_bits_truncate(0o022));
        let devs = [
            fifo("/dev/a", 0o666),
            fifo("/dev/b", 0o606),
            fifo("/dev/sub/c", 0o660),
            fifo("/dev/kept", 0o666),
        ];
        create_all(&root, &devs, false).unwrap();
        assert_eq!(
            umask(before),
            Mode::from_bits_truncate(0o022),
            "umask restored"
        );
        for (name, mode) in [("a", 0o666), ("b", 0o606), ("sub/c", 0o660)] {
            let meta = std::fs::symlink_metadata(d.join("dev").join(name)).unwrap();
            assert!(meta.file_type().is_fifo(), "{name}");
            assert_eq!(meta.permissions().mode() & 0o7777, mode, "{name}");
        }
        assert!(
            d.join("dev/kept").is_file(),
            "an existing entry is left as it is"
        );

        let links = [(PathBuf::from("/proc/self/fd"), PathBuf::from("/dev/fd"))];
        symlinks_all(&root, &links).unwrap();
        symlinks_all(&root, &links).unwrap();
        assert_eq!(
            std::fs::read_link(d.join("dev/ptmx")).unwrap(),
            Path::new("pts/ptmx")
        );
        assert_eq!(
            std::fs::read_link(d.join("dev/fd")).unwrap(),
            Path::new("/proc/self/fd")
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
