//! Private directories: the state root, launch directories, instance directories and caches.
//!
//! Whoever can write one of them can read the configs in it (with the sandbox's `--env` secrets),
//! replace a container's record, or plant a seccomp program; whoever owns it can do all that and
//! more. A directory that another user made first (`/tmp/husk-1000`, mode 0777, before the victim
//! ever ran husk) is the classic squat. So every such directory goes through [`private_dir`]: made
//! 0700 if absent, then opened with O_NOFOLLOW|O_DIRECTORY and checked by fstat on that descriptor
//! (no window between the check and the open): it must belong to the caller's euid and be writable
//! by nobody else. Anything else is refused with an error naming the directory, its owner and mode,
//! never repaired (chmod of someone else's directory is not ours to do, and a directory of ours
//! that others could write may already hold their files).

use super::StateError;
use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Creates `path` (mode 0700; missing parents too, 0700) unless it exists, then checks it is a
/// directory of the caller's that no one else may write. Returns the open directory.
pub fn private_dir(path: &Path) -> Result<File, StateError> {
    let mut b = std::fs::DirBuilder::new();
    b.mode(0o700);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            b.recursive(true)
                .create(parent)
                .map_err(super::io("create", parent))?;
            b.recursive(false);
        }
    }
    match b.create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(super::io("create", path)(e)),
    }
    open_private(path)
}

/// Opens an existing directory and checks it as [`private_dir`] does (without creating it).
pub fn open_private(path: &Path) -> Result<File, StateError> {
    let refuse = |reason: String| StateError::NotPrivate {
        path: path.to_path_buf(),
        reason,
    };
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            // O_DIRECTORY|O_NOFOLLOW on a symlink: ENOTDIR (or ELOOP); lstat tells which.
            Some(libc::ELOOP | libc::ENOTDIR) => {
                match std::fs::symlink_metadata(path).map(|m| m.file_type().is_symlink()) {
                    Ok(true) => refuse("it is a symlink".into()),
                    _ => refuse("it is not a directory".into()),
                }
            }
            _ => super::io("open", path)(e),
        })?;
    let m = dir.metadata().map_err(super::io("stat", path))?;
    check(m.uid(), m.mode()).map_err(refuse)?;
    Ok(dir)
}

/// Why a directory with owner `uid` and `mode` is not the caller's private one.
fn check(uid: u32, mode: u32) -> Result<(), String> {
    let me = nix::unistd::geteuid().as_raw();
    if uid != me {
        return Err(format!("owned by uid {uid}, not by you (uid {me})"));
    }
    if mode & 0o022 != 0 {
        return Err(format!(
            "writable by group or others (mode {:o})",
            mode & 0o7777
        ));
    }
    Ok(())
}

/// The caller's runtime directory: $XDG_RUNTIME_DIR, else /run/user/UID when it exists as a
/// private directory of the caller's (logind makes it 0700; a `su`/`sudo -u` session lacks the
/// variable but usually not the directory). None: the caller has none.
pub fn runtime_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    let d = PathBuf::from(format!("/run/user/{}", nix::unistd::geteuid()));
    open_private(&d).is_ok().then_some(d)
}

/// Where an unprivileged caller without a runtime directory keeps `name`: `/tmp/<name>-UID`,
/// which [`private_dir`] refuses if anyone else made it first.
pub fn tmp_fallback(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{name}-{}", nix::unistd::geteuid()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("husk-private-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn creates_0700_with_parents() {
        let base = scratch("create");
        let d = base.join("a/b");
        private_dir(&d).unwrap();
        let mode = std::fs::metadata(&d).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o700);
        // Existing and fine: opened again.
        private_dir(&d).unwrap();
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn refuses_writable_by_others_and_symlinks() {
        let base = scratch("refuse");
        std::fs::create_dir(&base).unwrap();
        let open = base.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = private_dir(&open).unwrap_err().to_string();
        assert!(e.contains("writable by group or others (mode 777)"), "{e}");
        let link = base.join("link");
        std::os::unix::fs::symlink(&open, &link).unwrap();
        let e = private_dir(&link).unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
        let file = base.join("file");
        std::fs::write(&file, "").unwrap();
        let e = private_dir(&file).unwrap_err().to_string();
        assert!(e.contains("not a directory"), "{e}");
        // Group-readable and searchable is fine (root's image cache shared with the sandbox id).
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o750)).unwrap();
        private_dir(&open).unwrap();
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn owner_must_be_the_caller() {
        let me = nix::unistd::geteuid().as_raw();
        assert!(check(me, 0o40700).is_ok());
        assert!(check(me, 0o41755).is_ok());
        let e = check(me.wrapping_add(1), 0o40700).unwrap_err();
        assert!(e.starts_with("owned by uid"), "{e}");
        assert!(check(me, 0o40770).is_err());
        assert!(check(me, 0o41777).is_err());
    }
}
