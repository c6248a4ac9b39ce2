//! The sandbox's host side around the container: what root's sandbox id must be able to reach
//! (the image, the workspace, the launch directory), handed over before the start and given back
//! after it, and the `--result` file, opened before the program starts.

use anyhow::Context;
use husk_launcher::sandbox::Lent;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Root's sandbox mounts as `id`, which has no privilege over host files: every directory above
/// `path` must let it search (others' x bit, or its own), or the mount fails with EACCES.
pub fn reachable(id: u32, path: &Path, what: &str) -> anyhow::Result<()> {
    for dir in path.ancestors().skip(1) {
        let m = std::fs::metadata(dir).with_context(|| format!("{what} {}", path.display()))?;
        let mode = m.mode();
        let ok = mode & 0o001 != 0
            || (m.uid() == id && mode & 0o100 != 0)
            || (m.gid() == id && mode & 0o010 != 0);
        if !ok {
            anyhow::bail!(
                "{what} {}: {} (mode {:o}) is not searchable by the sandbox's host id {id}; \
                 use a path every directory of which others may search",
                path.display(),
                dir.display(),
                mode & 0o7777
            );
        }
    }
    Ok(())
}

/// Root's image cache is 0700 (its images' set-id files must not be reachable by local users); root's
/// sandbox runs as `id`, which must reach the image it runs. Each cache directory above the image
/// that nobody else may search is given to group `id` with search only (0710): the sandbox's id,
/// and no local user, can then pass through (and its no_new_privs makes set-id files inert).
pub fn share_cache(id: u32, cache: &Path, image: &Path) -> anyhow::Result<()> {
    for dir in image.ancestors().skip(1) {
        if !dir.starts_with(cache) {
            break;
        }
        let m = std::fs::metadata(dir)?;
        if m.mode() & 0o011 != 0 || m.uid() != nix::unistd::geteuid().as_raw() {
            continue;
        }
        std::os::unix::fs::chown(dir, None, Some(id))
            .with_context(|| format!("share {} with the sandbox id {id}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o710))
            .with_context(|| format!("share {} with the sandbox id {id}", dir.display()))?;
    }
    Ok(())
}

/// The POSIX ACL attributes a workspace is given back with (or without).
const ACLS: [&str; 2] = ["system.posix_acl_access", "system.posix_acl_default"];

/// Opens directory `path` itself, never through a symlink in its last component: everything done
/// to a workspace on the caller's behalf is done through this descriptor (fchown, fchmod,
/// fsetxattr), never by path, so a swap of the path cannot aim root at another file.
fn open_dir(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Directories root's sandbox never lends (chowns to its id): the system's own.
const NEVER_LENT: &[&str] = &[
    "/", "/proc", "/sys", "/dev", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    "/usr", "/boot", "/run", "/var", "/var/lib", "/var/run", "/root", "/home", "/tmp", "/srv",
    "/opt", "/mnt", "/media",
];

/// Takes a `--workspace`'s measure before the run (its inode, owner, mode and ACLs) so that
/// [`give_back`] restores exactly that (`keep` records it first); for root's sandbox (`hid`), gives
/// the directory to the sandbox's id. The code, its owner meanwhile (or the caller rootless), may chmod it or add ACLs.
pub fn lend(
    ws: &Path,
    hid: Option<u32>,
    keep: impl FnOnce(&Lent) -> anyhow::Result<()>,
) -> anyhow::Result<Lent> {
    use xattr::FileExt;
    let what = || format!("--workspace {}", ws.display());
    if hid.is_some() && NEVER_LENT.iter().any(|d| ws == Path::new(d)) {
        anyhow::bail!(
            "{}: a system directory is never given to the sandbox",
            what()
        );
    }
    let f = open_dir(ws).with_context(what)?;
    let m = f.metadata().with_context(what)?;
    let acl = |name: &str| f.get_xattr(name).ok().flatten();
    let lent = Lent {
        path: ws.to_path_buf(),
        dev: m.dev(),
        ino: m.ino(),
        uid: m.uid(),
        gid: m.gid(),
        mode: m.mode() & 0o7777,
        acl_access: acl(ACLS[0]),
        acl_default: acl(ACLS[1]),
    };
    // Recorded before anything changes: a husk killed from here on leaves what a sweep needs.
    keep(&lent)?;
    if let Some(id) = hid {
        nix::unistd::fchown(f.as_raw_fd(), Some(id.into()), Some(id.into()))
            .with_context(|| format!("give {} to host id {id}", what()))?;
    }
    Ok(lent)
}

/// Root's sandbox runs as `id` in a user namespace: the launch directory (root's own, under
/// /run/husk-launch) must be searchable by it.
pub fn open_launch_dir(dir: &Path) -> anyhow::Result<()> {
    let search = std::fs::Permissions::from_mode(0o711);
    for d in [dir.parent(), Some(dir)].into_iter().flatten() {
        std::fs::set_permissions(d, search.clone())
            .with_context(|| format!("open {} to the sandbox id", d.display()))?;
    }
    Ok(())
}

/// Gives a lent workspace back as it came: owner, ACLs, mode; through a descriptor of the very
/// directory lent (a warning, and nothing touched, when the path is no longer it).
pub fn give_back(lent: &Lent) {
    if let Err(e) = restore(lent) {
        log::warn!("give --workspace {} back: {e:#}", lent.path.display());
    }
}

fn restore(l: &Lent) -> anyhow::Result<()> {
    use xattr::FileExt;
    let f = open_dir(&l.path)?;
    let m = f.metadata()?;
    if (m.dev(), m.ino()) != (l.dev, l.ino) {
        anyhow::bail!("the path is no longer the directory lent (replaced); left as it is");
    }
    if (m.uid(), m.gid()) != (l.uid, l.gid) {
        nix::unistd::fchown(f.as_raw_fd(), Some(l.uid.into()), Some(l.gid.into()))?;
    }
    for (name, before) in ACLS.iter().zip([&l.acl_access, &l.acl_default]) {
        let done = match before {
            Some(v) => f.set_xattr(name, v),
            None => f.remove_xattr(name),
        };
        match done {
            Err(e)
                if before.is_none()
                    && matches!(e.raw_os_error(), Some(libc::ENODATA | libc::EOPNOTSUPP)) => {}
            other => other.with_context(|| format!("restore {name}"))?,
        }
    }
    nix::sys::stat::fchmod(
        f.as_raw_fd(),
        nix::sys::stat::Mode::from_bits_truncate(l.mode),
    )?;
    Ok(())
}

/// Is `path` (a file to be) under directory `dir`: is any directory above it `dir`'s inode (so a
/// bind mount or symlinked alias of the workspace counts too)?
fn inside(path: &Path, dir: &Path) -> bool {
    let Ok(d) = std::fs::metadata(dir) else {
        return false;
    };
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Ok(parent) = std::fs::canonicalize(parent) else {
        return false;
    };
    parent
        .ancestors()
        .filter_map(|a| std::fs::metadata(a).ok())
        .any(|m| m.dev() == d.dev() && m.ino() == d.ino())
}

/// `--result FILE`, opened (created, truncated, never through a symlink) before the program
/// starts; the record is written through this descriptor. The file may sit in the workspace, where
/// the program can replace it: a symlink it puts there must not aim husk's write (as root, maybe)
/// at a host file.
pub struct ResultFile {
    path: PathBuf,
    file: std::fs::File,
}

impl ResultFile {
    /// Opens `path` for the record. Refused at once, never blocking: anything but a regular file
    /// (a FIFO would block the open until a reader came; a device is not a record's place), and a
    /// path inside `workspace`, where the program could append to the file or replace it.
    pub fn open(path: &Path, workspace: &Path) -> anyhow::Result<ResultFile> {
        use std::os::unix::fs::OpenOptionsExt;
        let what = || format!("--result {}", path.display());
        if inside(path, workspace) {
            return Err(crate::verbs::usage(format!(
                "{}: inside the workspace, where the program could change it; write it elsewhere",
                what()
            )));
        }
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if !m.file_type().is_file() {
                anyhow::bail!("{}: not a regular file", what());
            }
        }
        // O_NONBLOCK: should a FIFO appear after the check, the open fails (ENXIO) or returns at
        // once, and the type check below refuses it.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .with_context(what)?;
        if !file.metadata().with_context(what)?.file_type().is_file() {
            anyhow::bail!("{}: not a regular file", what());
        }
        Ok(ResultFile {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Is `path` still the file we opened?
    fn still_ours(&self) -> bool {
        match (self.file.metadata(), std::fs::symlink_metadata(&self.path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }

    pub fn write(mut self, text: &str) -> anyhow::Result<()> {
        use std::io::Write;
        self.file
            .write_all(text.as_bytes())
            .with_context(|| format!("write --result {}", self.path.display()))?;
        if !self.still_ours() {
            log::warn!(
                "--result {}: the program replaced it; the record went to the file opened before \
                 the start, no longer at that path (keep --result outside the workspace)",
                self.path.display()
            );
        }
        Ok(())
    }

    /// Husk failed: leave nothing behind (but only our own, empty file).
    pub fn remove(self) {
        if self.still_ours() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
