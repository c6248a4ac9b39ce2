//! Landlock (landlock(7)): limits where the container's processes may write, below what the mounts
//! allow. Asked for with the annotation [`ANNOTATION`] (`run.husk.landlock.write`), a ':'-separated
//! list of absolute container paths; everything else stays readable and executable, nothing else
//! is writable (not even a read-write bind or tmpfs the config mounts elsewhere).
//!
//! Applied by the init after the rootfs is final (pivot_root, masked and read-only paths: a
//! Landlock-restricted process may no longer mount) and before the container is reported created,
//! so what was applied can be reported. Best effort across kernels: the rights an older ABI lacks
//! are left out (ABI 1: no REFER, so cross-directory rename/link is always denied; ABI < 3: no
//! TRUNCATE, so truncate(2) outside the writable paths is not restricted); a kernel without
//! Landlock runs the container unrestricted and [`Status`] says why. Never a reason to fail.
//!
//! Besides the listed paths, writing to the standard character devices every program expects
//! (/dev/null, zero, full, random, urandom, tty, ptmx, and /dev/pts/*) stays allowed.

use crate::sys::landlock as sys;
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The annotation that turns Landlock on.
pub const ANNOTATION: &str = "run.husk.landlock.write";

// Access rights (linux/landlock.h, LANDLOCK_ACCESS_FS_*).
const WRITE_FILE: u64 = 1 << 1;
const REMOVE_DIR: u64 = 1 << 4;
const REMOVE_FILE: u64 = 1 << 5;
const MAKE_CHAR: u64 = 1 << 6;
const MAKE_DIR: u64 = 1 << 7;
const MAKE_REG: u64 = 1 << 8;
const MAKE_SOCK: u64 = 1 << 9;
const MAKE_FIFO: u64 = 1 << 10;
const MAKE_BLOCK: u64 = 1 << 11;
const MAKE_SYM: u64 = 1 << 12;
/// ABI 2.
const REFER: u64 = 1 << 13;
/// ABI 3.
const TRUNCATE: u64 = 1 << 14;

/// The rights that apply to a file that is not a directory.
const FILE_RIGHTS: u64 = WRITE_FILE | TRUNCATE;

/// Device files that stay writable (skipped when missing).
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LandlockError {
    #[error("{path:?} is not an absolute, clean path")]
    Path { path: String },
    #[error("landlock: open writable path {path}: {source}")]
    Open { path: PathBuf, source: nix::Error },
    #[error("landlock: {op}: {source}")]
    Sys {
        op: &'static str,
        source: nix::Error,
    },
}

/// What was applied, as the init reports it to the parent (and the sandbox record shows it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The kernel's Landlock ABI version; 0 when it has none.
    pub abi: u32,
    pub enforced: bool,
    /// The paths writes are limited to (as asked), when enforced.
    pub writable: Vec<PathBuf>,
    /// Why it is not enforced, or what an old ABI could not restrict; null otherwise.
    pub reason: Option<String>,
}

/// Parses the annotation's value: absolute, clean paths separated by ':' (empty entries ignored;
/// an empty value makes nothing writable).
pub fn parse(value: &str) -> Result<Vec<PathBuf>, LandlockError> {
    value
        .split(':')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let path = Path::new(p);
            let clean =
                p.starts_with('/') && p.split('/').skip(1).all(|c| !matches!(c, "" | "." | ".."));
            if clean || p == "/" {
                Ok(path.to_path_buf())
            } else {
                Err(LandlockError::Path { path: p.into() })
            }
        })
        .collect()
}

/// The write rights an ABI version handles, and what it cannot restrict.
fn rights(abi: u32) -> (u64, Option<&'static str>) {
    let base = WRITE_FILE
        | REMOVE_DIR
        | REMOVE_FILE
        | MAKE_CHAR
        | MAKE_DIR
        | MAKE_REG
        | MAKE_SOCK
        | MAKE_FIFO
        | MAKE_BLOCK
        | MAKE_SYM;
    match abi {
        1 => (
            base,
            Some("landlock ABI 1: truncate(2) not restricted; rename/link across directories always denied"),
        ),
        2 => (base | REFER, Some("landlock ABI 2: truncate(2) not restricted")),
        _ => (base | REFER | TRUNCATE, None),
    }
}

/// Restricts the calling process (and what it execs) to writing under `writable` and the standard
/// devices. Call after the last mount; needs no_new_privs or CAP_SYS_ADMIN in our user namespace.
/// An unsupported kernel is not an error: the status says so.
pub fn apply(writable: &[PathBuf]) -> Result<Status, LandlockError> {
    let abi = match sys::abi_version() {
        Ok(v) => v,
        Err(e) => {
            let why = match e {
                nix::errno::Errno::ENOSYS => "the kernel has no Landlock support".to_string(),
                nix::errno::Errno::EOPNOTSUPP => {
                    "Landlock is disabled on this kernel (not in lsm=)".to_string()
                }
                other => format!("landlock_create_ruleset: {other}"),
            };
            return Ok(Status {
                abi: 0,
                enforced: false,
                writable: Vec::new(),
                reason: Some(why),
            });
        }
    };
    let (handled, note) = rights(abi);
    let sys_err = |op| move |source| LandlockError::Sys { op, source };
    let ruleset = sys::create_ruleset(handled).map_err(sys_err("create ruleset"))?;
    // O_PATH (with the O_RDONLY that std adds, which is 0): no read permission needed.
    let open = |p: &Path| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH)
            .open(p)
            .map(std::os::fd::OwnedFd::from)
            .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
    };
    for p in writable {
        let fd = open(p).map_err(|source| LandlockError::Open {
            path: p.clone(),
            source,
        })?;
        let is_dir = nix::sys::stat::fstat(fd.as_raw_fd())
            .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
            .map_err(sys_err("stat writable path"))?;
        let access = if is_dir {
            handled
        } else {
            handled & FILE_RIGHTS
        };
        sys::add_path_rule(ruleset.as_fd(), fd.as_fd(), access).map_err(sys_err("add rule"))?;
    }
    for d in DEVICES {
        let Ok(fd) = open(Path::new(d)) else { continue };
        sys::add_path_rule(ruleset.as_fd(), fd.as_fd(), handled & FILE_RIGHTS)
            .map_err(sys_err("add device rule"))?;
    }
    sys::restrict_self(ruleset.as_fd()).map_err(sys_err("restrict self"))?;
    Ok(Status {
        abi,
        enforced: true,
        writable: writable.to_vec(),
        reason: note.map(String::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_parsing() {
        assert_eq!(
            parse("/workspace:/tmp").unwrap(),
            vec![PathBuf::from("/workspace"), PathBuf::from("/tmp")]
        );
        assert_eq!(parse("").unwrap(), Vec::<PathBuf>::new());
        assert_eq!(parse("/a::/b:").unwrap().len(), 2);
        for bad in ["tmp", "/a/../etc", "/a/./b", "/a/", "//a", "/x:rel"] {
            assert!(
                matches!(parse(bad), Err(LandlockError::Path { .. })),
                "{bad} accepted"
            );
        }
        let e = parse("/ok:../x").unwrap_err().to_string();
        assert!(e.contains("\"../x\""), "{e}");
    }

    #[test]
    fn rights_follow_the_abi() {
        assert_eq!(rights(1).0 & (REFER | TRUNCATE), 0);
        assert!(rights(1).1.is_some());
        assert_eq!(rights(2).0 & TRUNCATE, 0);
        assert_eq!(rights(2).0 & REFER, REFER);
        assert_eq!(rights(3), rights(7));
        assert!(rights(7).1.is_none());
        // Reading, executing and device ioctls are never handled: they stay allowed everywhere.
        assert_eq!(
            rights(7).0 & ((1 << 0) | (1 << 2) | (1 << 3) | (1 << 15)),
            0
        );
    }
}
