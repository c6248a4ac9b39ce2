//! Path-safe resolution of container paths inside the rootfs.
//!
//! Every open is `openat2(root, path, O_PATH, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: `..` and
//! absolute symlinks are clamped to the rootfs by the kernel, so nothing a (malicious) image contains
//! can make us open, create or mount on a host path. Missing components are created one at a time
//! under an fd of their already-resolved parent (mkdirat / openat2 O_CREAT|O_EXCL, which never follow
//! a symlink at the last component). Symlinks met on the way are expanded by us, inside the root, so a
//! dangling link such as `/etc/resolv.conf -> ../run/x/stub.conf` gets its target created, as runc's
//! securejoin does.

use crate::sys::fd::openat2;
use nix::errno::Errno;
use nix::fcntl::{readlinkat, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, mkdirat, Mode, SFlag};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// What to create when the path does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    No,
    /// Missing components are directories.
    Dir,
    /// Missing parents are directories, the last component an empty regular file.
    File,
}

/// Symlinks followed in one resolution before giving up, as the kernel's MAXSYMLINKS.
const MAX_LINKS: usize = 40;

/// An O_PATH fd of `path` resolved inside `root`, following symlinks only within it.
pub fn open(root: BorrowedFd<'_>, path: &Path, create: Create) -> nix::Result<OwnedFd> {
    open_with(root, path, create, false)
}

/// Like [`open`], but any symlink on the way is an error (ELOOP): for proc and sysfs targets.
pub fn open_no_symlinks(root: BorrowedFd<'_>, path: &Path) -> nix::Result<OwnedFd> {
    open_with(root, path, Create::Dir, true)
}

fn how(extra: OFlag, resolve: ResolveFlag) -> OpenHow {
    OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | extra)
        .resolve(resolve | ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

fn rel(path: &Path) -> &Path {
    let p = path.strip_prefix("/").unwrap_or(path);
    if p.as_os_str().is_empty() {
        Path::new(".")
    } else {
        p
    }
}

fn open_with(
    root: BorrowedFd<'_>,
    path: &Path,
    create: Create,
    no_symlinks: bool,
) -> nix::Result<OwnedFd> {
    let extra = if no_symlinks {
        ResolveFlag::RESOLVE_NO_SYMLINKS
    } else {
        ResolveFlag::empty()
    };
    match openat2(root, rel(path), how(OFlag::empty(), extra)) {
        Err(Errno::ENOENT) if create != Create::No => {
            match create_last(root, path, create, extra) {
                Some(fd) => Ok(fd),
                None => walk(root, path, create, no_symlinks),
            }
        }
        r => r,
    }
}

/// The common case of a missing mount target, in four calls instead of a walk from the root: the
/// parent exists, so create the last component in it and open what was created, with no symlink
/// allowed at that component. `None` sends every other case (a missing parent, a dangling symlink
/// at the last component, `..`, any error) to [`walk`], which handles it or reports it.
fn create_last(
    root: BorrowedFd<'_>,
    path: &Path,
    create: Create,
    extra: ResolveFlag,
) -> Option<OwnedFd> {
    let path = rel(path);
    if !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    let name = path.file_name()?;
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    let parent = openat2(
        root,
        parent.unwrap_or(Path::new(".")),
        how(OFlag::O_DIRECTORY, extra),
    )
    .ok()?;
    let at = std::os::fd::AsFd::as_fd(&parent);
    make_in(at, name, create == Create::File).ok()?;
    openat2(at, Path::new(name), beneath(OFlag::empty())).ok()
}

/// O_PATH open of one component right under a directory fd, never through a symlink.
fn beneath(extra: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | extra)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS)
}

/// Component-by-component resolution with creation of what is missing.
fn walk(
    root: BorrowedFd<'_>,
    path: &Path,
    create: Create,
    no_symlinks: bool,
) -> nix::Result<OwnedFd> {
    let mut done = PathBuf::new();
    let mut todo: VecDeque<OsString> = VecDeque::new();
    push_front(&mut todo, path);
    let mut links = 0;
    // Bounds retries when a component appears between our ENOENT and our create (EEXIST).
    let mut races = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            done.pop();
            continue;
        }
        let next = done.join(&name);
        let nofollow = how(OFlag::O_NOFOLLOW, ResolveFlag::empty());
        match openat2(root, rel(&next), nofollow) {
            Ok(fd) => {
                let st = fstat(fd.as_raw_fd())?;
                if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFLNK {
                    done = next;
                    continue;
                }
                links += 1;
                if no_symlinks || links > MAX_LINKS {
                    return Err(Errno::ELOOP);
                }
                // Empty path: read the link the O_PATH|O_NOFOLLOW fd itself refers to.
                let target = readlinkat(Some(fd.as_raw_fd()), "")?;
                let target = Path::new(&target);
                if target.is_absolute() {
                    done.clear();
                }
                push_front(&mut todo, target);
            }
            Err(Errno::ENOENT) => {
                let last = todo.is_empty();
                match make(root, &done, &name, create == Create::File && last) {
                    Err(Errno::EEXIST) if races < MAX_LINKS => races += 1,
                    r => r?,
                }
                todo.push_front(name);
            }
            Err(e) => return Err(e),
        }
    }
    openat2(root, rel(&done), how(OFlag::empty(), ResolveFlag::empty()))
}

/// Creates `name` in the already-resolved directory `dir`.
fn make(root: BorrowedFd<'_>, dir: &Path, name: &OsString, file: bool) -> nix::Result<()> {
    let parent = openat2(
        root,
        rel(dir),
        how(OFlag::O_DIRECTORY, ResolveFlag::empty()),
    )?;
    make_in(std::os::fd::AsFd::as_fd(&parent), name, file)
}

/// An O_PATH fd of directory `name`, made in `parent` if missing; no symlink is followed. For a
/// directory nothing else can write to (a tmpfs just mounted), where no walk is needed.
pub fn make_dir_in(parent: BorrowedFd<'_>, name: &std::ffi::OsStr) -> nix::Result<OwnedFd> {
    match make_in(parent, name, false) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(e),
    }
    openat2(parent, Path::new(name), beneath(OFlag::O_DIRECTORY))
}

/// Creates the single component `name` in the directory behind `parent`; never follows a symlink.
fn make_in(parent: BorrowedFd<'_>, name: &std::ffi::OsStr, file: bool) -> nix::Result<()> {
    if file {
        // O_EXCL: fails on any existing entry, a symlink included, instead of following it.
        let how = OpenHow::new()
            .flags(OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC)
            .mode(Mode::from_bits_truncate(0o644))
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
        openat2(parent, Path::new(name), how).map(drop)
    } else {
        mkdirat(
            Some(parent.as_raw_fd()),
            Path::new(name),
            Mode::from_bits_truncate(0o755),
        )
    }
}

/// Queues the components of `path` before what is already queued ("." and "/" dropped).
fn push_front(todo: &mut VecDeque<OsString>, path: &Path) {
    for c in path.components().rev() {
        match c {
            Component::Normal(n) => todo.push_front(n.to_os_string()),
            Component::ParentDir => todo.push_front("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::fs::symlink;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("husk-resolve-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("root")).unwrap();
        std::fs::create_dir_all(d.join("outside")).unwrap();
        d
    }

    fn root_fd(dir: &Path) -> OwnedFd {
        std::fs::File::open(dir.join("root")).unwrap().into()
    }

    fn where_is(fd: &OwnedFd) -> PathBuf {
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap()
    }

    #[test]
    fn absolute_symlink_stays_inside() {
        let d = tmp("abs");
        symlink(d.join("outside"), d.join("root/evil")).unwrap();
        let root = root_fd(&d);
        let fd = open(root.as_fd(), Path::new("/evil/x"), Create::Dir).unwrap();
        let at = where_is(&fd);
        assert!(at.starts_with(d.join("root")), "{at:?}");
        assert!(!d.join("outside/x").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn existing_outside_target_is_not_reached() {
        let d = tmp("existing");
        std::fs::create_dir(d.join("outside/x")).unwrap();
        symlink(d.join("outside"), d.join("root/evil")).unwrap();
        let root = root_fd(&d);
        let e = open(root.as_fd(), Path::new("/evil/x"), Create::No).unwrap_err();
        assert_eq!(e, Errno::ENOENT);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn relative_escape_is_clamped_and_file_created() {
        let d = tmp("rel");
        symlink("../../../../outside", d.join("root/evil")).unwrap();
        let root = root_fd(&d);
        let fd = open(root.as_fd(), Path::new("/evil/sub/f"), Create::File).unwrap();
        let at = where_is(&fd);
        assert_eq!(at, d.join("root/outside/sub/f"));
        assert!(at.is_file());
        assert!(!d.join("outside/sub").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn dangling_link_target_is_created_inside() {
        let d = tmp("dangle");
        std::fs::create_dir_all(d.join("root/etc")).unwrap();
        symlink("../run/x/stub.conf", d.join("root/etc/resolv.conf")).unwrap();
        let root = root_fd(&d);
        let fd = open(root.as_fd(), Path::new("/etc/resolv.conf"), Create::File).unwrap();
        assert_eq!(where_is(&fd), d.join("root/run/x/stub.conf"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn last_component_is_made_under_an_existing_parent() {
        let d = tmp("last");
        std::fs::create_dir_all(d.join("root/dev")).unwrap();
        symlink("/real", d.join("root/lnk")).unwrap();
        std::fs::create_dir(d.join("root/real")).unwrap();
        let root = root_fd(&d);
        let fd = open(root.as_fd(), Path::new("/dev/pts"), Create::Dir).unwrap();
        assert_eq!(where_is(&fd), d.join("root/dev/pts"));
        assert!(d.join("root/dev/pts").is_dir());
        let fd = open(root.as_fd(), Path::new("/dev/null"), Create::File).unwrap();
        assert!(where_is(&fd).is_file());
        // A symlinked parent is followed inside the root, as by the walk.
        let fd = open(root.as_fd(), Path::new("/lnk/x"), Create::Dir).unwrap();
        assert_eq!(where_is(&fd), d.join("root/real/x"));
        // no_symlinks: the parent may not be reached through one.
        assert_eq!(
            open_no_symlinks(root.as_fd(), Path::new("/lnk/y")).unwrap_err(),
            Errno::ELOOP
        );
        assert!(!d.join("root/real/y").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn symlink_loop_and_no_symlinks() {
        let d = tmp("loop");
        symlink("b", d.join("root/a")).unwrap();
        symlink("a", d.join("root/b")).unwrap();
        symlink("/real", d.join("root/proc")).unwrap();
        let root = root_fd(&d);
        assert_eq!(
            open(root.as_fd(), Path::new("/a/x"), Create::Dir).unwrap_err(),
            Errno::ELOOP
        );
        assert_eq!(
            open_no_symlinks(root.as_fd(), Path::new("/proc")).unwrap_err(),
            Errno::ELOOP
        );
        assert!(!d.join("root/real").exists());
        assert_eq!(
            open(root.as_fd(), Path::new("/missing"), Create::No).unwrap_err(),
            Errno::ENOENT
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
