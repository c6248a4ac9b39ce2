//! `tmpcopyup`: a tmpfs mounted on a directory of the image starts with a copy of what it covers
//! (podman's /etc-style tmpfs, runc's doTmpfsCopyUp).
//!
//! The covered directory is opened before the mount; its fd keeps reading the covered tree after
//! the tmpfs hides it, so no scratch mount on the host is needed (runc mounts the tmpfs under
//! /tmp first and moves it). Everything is `*at` relative to the two directory fds, one name at a
//! time and never following a symlink, so nothing the image holds can lead the copy elsewhere.
//! Modes and owners are kept; an owner the user namespace does not map, or a device node it may
//! not make, is skipped as runc's copy skips it.

use crate::sys::fd::openat2;
use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{readlinkat, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fchmodat, fstatat, mkdirat, mknodat, FchmodatFlags, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, Gid, Uid};
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Nesting beyond this is refused (ELOOP) rather than exhausting fds or the stack.
const MAX_DEPTH: usize = 64;

/// Copies the tree under `from` (the covered directory) into `to` (the new tmpfs's root).
pub fn copy_tree(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> nix::Result<()> {
    copy_dir(from, to, 0)
}

/// `name` (one component) under `parent`, never through a symlink.
fn open_at(parent: BorrowedFd<'_>, name: &OsStr, flags: OFlag, mode: Mode) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .mode(mode)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_BENEATH);
    openat2(parent, Path::new(name), how)
}

fn open_dir(parent: BorrowedFd<'_>, name: &OsStr) -> nix::Result<OwnedFd> {
    open_at(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
}

fn copy_dir(from: BorrowedFd<'_>, to: BorrowedFd<'_>, depth: usize) -> nix::Result<()> {
    if depth > MAX_DEPTH {
        return Err(Errno::ELOOP);
    }
    // A listing of its own: reading must not move the offset of `from` for anyone else.
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut dir = Dir::openat(Some(from.as_raw_fd()), ".", flags, Mode::empty())?;
    for entry in dir.iter() {
        let entry = entry?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        copy_entry(from, to, name, depth)?;
    }
    Ok(())
}

fn copy_entry(
    from: BorrowedFd<'_>,
    to: BorrowedFd<'_>,
    name: &OsStr,
    depth: usize,
) -> nix::Result<()> {
    let (from_raw, to_raw) = (from.as_raw_fd(), to.as_raw_fd());
    let st = fstatat(Some(from_raw), name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
    match kind {
        SFlag::S_IFDIR => {
            mkdirat(Some(to_raw), name, Mode::from_bits_truncate(0o700))?;
            let (src, dst) = (open_dir(from, name)?, open_dir(to, name)?);
            copy_dir(src.as_fd(), dst.as_fd(), depth + 1)?;
        }
        SFlag::S_IFREG => copy_file(from, to, name, mode)?,
        SFlag::S_IFLNK => {
            let target = readlinkat(Some(from_raw), name)?;
            symlinkat(target.as_os_str(), Some(to_raw), name)?;
        }
        _ => match mknodat(Some(to_raw), name, kind, mode, st.st_rdev) {
            Ok(()) => {}
            // A user namespace may not make device nodes.
            Err(Errno::EPERM) => return Ok(()),
            Err(e) => return Err(e),
        },
    }
    match fchownat(
        Some(to_raw),
        name,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        // An owner our user namespace does not map (EINVAL), or may not give away (EPERM).
        Ok(()) | Err(Errno::EINVAL | Errno::EPERM) => {}
        Err(e) => return Err(e),
    }
    if kind != SFlag::S_IFLNK {
        // After chown, which clears set-id bits; and exact, whatever the umask.
        fchmodat(Some(to_raw), name, mode, FchmodatFlags::FollowSymlink)?;
    }
    Ok(())
}

fn copy_file(
    from: BorrowedFd<'_>,
    to: BorrowedFd<'_>,
    name: &OsStr,
    mode: Mode,
) -> nix::Result<()> {
    let src = open_at(from, name, OFlag::O_RDONLY, Mode::empty())?;
    let create = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL;
    let dst = open_at(to, name, create, mode)?;
    let (mut src, mut dst) = (std::fs::File::from(src), std::fs::File::from(dst));
    std::io::copy(&mut src, &mut dst)
        .map(drop)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}
