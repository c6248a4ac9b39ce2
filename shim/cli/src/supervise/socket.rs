//! `--socket HOST:CONTAINER`, the host side: the path must be a Unix socket itself (not a symlink,
//! not a directory), and what ends up mounted in the container must be that very inode.
//!
//! The check pins the socket's (dev, ino) from an O_PATH|O_NOFOLLOW open. The engine binds by path
//! later, so a swap of the host path between check and mount (a symlink to /etc/shadow, another
//! socket) is caught after create, before the program may run: the inode at the container path
//! (seen through /proc/PID/root) must be the pinned one, else the run is refused.

use husk_launcher::options::Bind;
use husk_launcher::sandbox::SocketBind;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A checked socket: canonical host path and the inode it was.
#[derive(Debug, Clone)]
pub struct Pinned {
    pub bind: SocketBind,
    given: PathBuf,
    dev: u64,
    ino: u64,
}

/// Checks `bind.host` and returns the bind with a canonical host path (no symlink anywhere).
pub fn check(bind: SocketBind) -> anyhow::Result<Pinned> {
    let given = bind.host.clone();
    let fail = |why: String| anyhow::anyhow!("--socket {}: {why}", given.display());
    let meta = std::fs::symlink_metadata(&given).map_err(|e| fail(e.to_string()))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        return Err(fail("is a symlink; give the socket's own path".into()));
    }
    if !ft.is_socket() {
        let what = if ft.is_dir() {
            "a directory"
        } else if ft.is_file() {
            "a regular file"
        } else {
            "not a socket"
        };
        return Err(fail(format!("is {what}, not a Unix socket")));
    }
    let name = given
        .file_name()
        .ok_or_else(|| fail("has no file name".into()))?;
    let parent = given
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let parent = std::fs::canonicalize(parent).map_err(|e| fail(e.to_string()))?;
    let host = parent.join(name);
    let text = host.to_string_lossy();
    if text.contains([':', ',']) {
        return Err(fail("a path holding ':' or ',' cannot be bound".into()));
    }
    // O_PATH|O_NOFOLLOW: the canonical path must still be that socket, not a symlink to one.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(&host)
        .map_err(|e| fail(e.to_string()))?;
    let m = f.metadata().map_err(|e| fail(e.to_string()))?;
    if !m.file_type().is_socket() || m.dev() != meta.dev() || m.ino() != meta.ino() {
        return Err(fail("changed while it was being checked".into()));
    }
    Ok(Pinned {
        bind: SocketBind {
            host,
            container: bind.container,
        },
        given,
        dev: m.dev(),
        ino: m.ino(),
    })
}

/// A read-only `--bind` of the sandbox (an input): its source made canonical and the inode it was.
/// Root mounts it by path later; like a socket, what is mounted must be that inode.
#[derive(Debug, Clone)]
pub struct PinnedInput {
    pub bind: Bind,
    dev: u64,
    ino: u64,
}

/// Resolves `bind`'s source (relative to the cwd; symlinks are the caller's to give) and pins it.
pub fn pin_input(mut bind: Bind) -> anyhow::Result<PinnedInput> {
    let given = bind.source.clone();
    let fail = |e: std::io::Error| anyhow::anyhow!("--bind {}: {e}", given.display());
    bind.source = std::fs::canonicalize(&given).map_err(fail)?;
    if bind.source.to_string_lossy().contains([':', ',']) {
        anyhow::bail!(
            "--bind {}: a path holding ':' or ',' cannot be bound",
            given.display()
        );
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(&bind.source)
        .map_err(fail)?;
    let m = f.metadata().map_err(fail)?;
    Ok(PinnedInput {
        bind,
        dev: m.dev(),
        ino: m.ino(),
    })
}

/// After create: the container path of the init `pid` must be the pinned input.
pub fn verify_input(pid: i32, p: &PinnedInput) -> anyhow::Result<()> {
    let dest = &p.bind.destination;
    let inside =
        PathBuf::from(format!("/proc/{pid}/root")).join(dest.strip_prefix("/").unwrap_or(dest));
    let same =
        std::fs::symlink_metadata(&inside).is_ok_and(|m| m.dev() == p.dev && m.ino() == p.ino);
    if same {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "--bind {}: the path changed between the check and the mount; refused",
            p.bind.source.display()
        ))
    }
}

/// After create: the container path of the init `pid` must be the pinned socket.
pub fn verify(pid: i32, p: &Pinned) -> anyhow::Result<()> {
    let rel = p
        .bind
        .container
        .strip_prefix("/")
        .unwrap_or(&p.bind.container);
    let inside = PathBuf::from(format!("/proc/{pid}/root")).join(rel);
    let same = std::fs::symlink_metadata(&inside)
        .is_ok_and(|m| m.file_type().is_socket() && m.dev() == p.dev && m.ino() == p.ino);
    if same {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "--socket {}: the path changed between the check and the mount; refused",
            p.given.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("husk-socket-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn bind(host: &Path, inside: &Path) -> SocketBind {
        SocketBind {
            host: host.to_path_buf(),
            container: inside.to_path_buf(),
        }
    }

    #[test]
    fn a_swap_after_the_check_is_refused() {
        let d = scratch("swap");
        let path = d.join("agent.sock");
        let _first = UnixListener::bind(&path).unwrap();
        // Our own /proc/PID/root is the host's root: the "container path" is the host path.
        let me = std::process::id() as i32;
        let pinned = check(bind(&path, &path)).unwrap();
        verify(me, &pinned).unwrap();
        // Another socket at the same path (what a swap leaves behind): a different inode.
        std::fs::remove_file(&path).unwrap();
        let _second = UnixListener::bind(&path).unwrap();
        let e = verify(me, &pinned).unwrap_err().to_string();
        assert!(e.contains("changed between the check and the mount"), "{e}");
        // A symlink to the first socket's new home is refused at the check already.
        let link = d.join("link.sock");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let e = check(bind(&link, &path)).unwrap_err().to_string();
        assert!(e.contains("is a symlink"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_parent_is_made_canonical() {
        let d = scratch("canon");
        let real = d.join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, d.join("alias")).unwrap();
        let _l = UnixListener::bind(real.join("s.sock")).unwrap();
        let p = check(bind(&d.join("alias/s.sock"), Path::new("/run/s.sock"))).unwrap();
        assert_eq!(p.bind.host, real.canonicalize().unwrap().join("s.sock"));
        let e = check(bind(&real, Path::new("/run/s.sock"))).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
