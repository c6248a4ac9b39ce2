//! Descriptor-relative file operations that never follow a symlink out of a tree.
//!
//! Paths taken from image content are resolved with `openat2(RESOLVE_IN_ROOT)` (absolute symlinks and
//! `..` are clamped to the tree by the kernel, openat2(2)); the last component is always operated on
//! through its parent's fd with `*at` calls that do not follow it (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`,
//! `unlinkat`, `mkdirat`, `symlinkat`, `linkat` without `AT_SYMLINK_FOLLOW`).
//!
//! The `unsafe` needed to own an fd returned by openat2 lives in `husk_runtime::sys::fd`.

use husk_runtime::sys::fd::openat2;
use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fchmodat, fstatat, FchmodatFlags, FileStat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn in_root(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// One component below `dir`, never through a symlink.
fn beneath(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS)
}

/// Opens a trusted host directory (the extraction target, a cache dir), following symlinks: the
/// caller chose this path.
pub(crate) fn open_tree(path: &Path) -> nix::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_DIRECTORY.bits())
        .open(path)
        .map(OwnedFd::from)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc_eio())))
}

fn libc_eio() -> i32 {
    Errno::EIO as i32
}

/// Resolves `rel` (components from image content) as a directory inside `root`.
pub(crate) fn resolve_dir(root: BorrowedFd<'_>, rel: &Path) -> nix::Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    openat2(root, rel, in_root(OFlag::O_PATH | OFlag::O_DIRECTORY))
}

/// Like [`resolve_dir`], creating missing directories (mode 0755) one at a time. A component that
/// exists but does not resolve (a dangling symlink) is ENOENT; one that is not a directory, ENOTDIR.
pub(crate) fn resolve_dir_create(root: BorrowedFd<'_>, comps: &[OsString]) -> nix::Result<OwnedFd> {
    let full: std::path::PathBuf = comps.iter().collect();
    match resolve_dir(root, &full) {
        Err(Errno::ENOENT) => {}
        r => return r,
    }
    let mut cur = resolve_dir(root, Path::new(""))?;
    let mut prefix = std::path::PathBuf::new();
    for c in comps {
        prefix.push(c);
        cur = match resolve_dir(root, &prefix) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                match nix::sys::stat::mkdirat(
                    Some(cur.as_raw_fd()),
                    c.as_os_str(),
                    Mode::from_bits_truncate(0o755),
                ) {
                    // Exists yet did not resolve: a dangling symlink; never create through it.
                    Err(Errno::EEXIST) => return Err(Errno::ENOENT),
                    r => r?,
                }
                open_subdir(cur.as_fd(), c, OFlag::O_PATH)?
            }
            Err(e) => return Err(e),
        };
    }
    Ok(cur)
}

/// A subdirectory of `dir` by one name, refusing a symlink.
pub(crate) fn open_subdir(dir: BorrowedFd<'_>, name: &OsStr, flags: OFlag) -> nix::Result<OwnedFd> {
    openat2(dir, Path::new(name), beneath(flags | OFlag::O_DIRECTORY))
}

/// A directory fd usable with fchmod/fchown/fsetxattr (not O_PATH).
pub(crate) fn open_dir_file(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<File> {
    open_subdir(dir, name, OFlag::O_RDONLY).map(File::from)
}

/// Creates a new regular file `name` in `dir` (fails on anything existing, a symlink included).
pub(crate) fn create_file(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<File> {
    let how = beneath(OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY)
        .mode(Mode::from_bits_truncate(0o600));
    openat2(dir, Path::new(name), how).map(File::from)
}

/// Opens the regular file `name` in `dir` for reading, refusing a symlink.
pub(crate) fn open_file(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<File> {
    openat2(dir, Path::new(name), beneath(OFlag::O_RDONLY)).map(File::from)
}

/// `lstat` of `name` in `dir`; `None` when absent.
pub(crate) fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<Option<FileStat>> {
    match fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

pub(crate) fn file_kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
}

/// The names in a directory, without `.` and `..`, as a list (so callers may change the directory).
pub(crate) fn list(dir: BorrowedFd<'_>) -> nix::Result<Vec<(OsString, Option<Type>)>> {
    let fd = open_subdir(dir, OsStr::new("."), OFlag::O_RDONLY)?;
    let mut d = Dir::from_fd(fd.into_raw_fd())?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e?;
        let name = OsStr::from_bytes(e.file_name().to_bytes());
        if name != "." && name != ".." {
            out.push((name.to_os_string(), e.file_type()));
        }
    }
    Ok(out)
}

/// Removes `name` from `dir`, recursively for a directory (never following symlinks). Directories
/// we may not enter or empty (rootless, mode 0555 or 0000) get u+rwx first: they are our own files.
pub(crate) fn remove_at(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<()> {
    match unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir) {
        Err(Errno::EISDIR) => {}
        r => return r,
    }
    let st = fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    if st.st_mode & 0o700 != 0o700 && !nix::unistd::geteuid().is_root() {
        // `name` is a directory (EISDIR) and not a symlink, so following is harmless.
        fchmodat(
            Some(dir.as_raw_fd()),
            name,
            Mode::from_bits_truncate((st.st_mode & 0o7777) | 0o700),
            FchmodatFlags::FollowSymlink,
        )?;
    }
    let sub = open_subdir(dir, name, OFlag::O_PATH)?;
    clear_dir(sub.as_fd())?;
    unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::RemoveDir)
}

/// Removes everything inside `dir`.
pub(crate) fn clear_dir(dir: BorrowedFd<'_>) -> nix::Result<()> {
    for (name, _) in list(dir)? {
        remove_at(dir, &name)?;
    }
    Ok(())
}

/// Removes a host path (a cache entry) recursively; absent is fine.
pub(crate) fn remove_tree(path: &Path) -> nix::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Errno::EINVAL);
    };
    let parent = match open_tree(parent) {
        Err(Errno::ENOENT) => return Ok(()),
        r => r?,
    };
    match remove_at(parent.as_fd(), name) {
        Err(Errno::ENOENT) => Ok(()),
        r => r,
    }
}

/// Linux `makedev` (see sysmacros.h) for mknod.
pub(crate) fn makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xffff_f000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0xff)
}
