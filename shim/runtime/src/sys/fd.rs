//! File-descriptor-returning wrappers for nix calls that hand back a bare `RawFd` in nix 0.29.
//!
//! Owning the descriptor at once means it is closed on every error path of the caller.

use nix::fcntl::OpenHow;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

/// Tries of one openat2 that keeps failing with EAGAIN.
const EAGAIN_TRIES: usize = 64;

/// `openat2(2)` returning an [`OwnedFd`]. With `RESOLVE_IN_ROOT`, `dirfd` acts as the root for the
/// whole walk: absolute symlinks and `..` cannot leave it (kernel ≥ 5.6). A walk through `..` with
/// RESOLVE_IN_ROOT or RESOLVE_BENEATH fails with EAGAIN when any mount or rename happened on the
/// system meanwhile (the kernel cannot then prove `..` stayed inside); openat2(2) says to retry.
pub fn openat2(dirfd: BorrowedFd<'_>, path: &Path, how: OpenHow) -> nix::Result<OwnedFd> {
    let mut tries = 0;
    let fd = loop {
        match nix::fcntl::openat2(dirfd.as_raw_fd(), path, how) {
            Err(nix::errno::Errno::EAGAIN) if tries < EAGAIN_TRIES => tries += 1,
            r => break r?,
        }
    };
    // SAFETY: openat2 succeeded, so `fd` is a fresh descriptor that nothing else owns; wrapping it
    // transfers that sole ownership to the returned OwnedFd, which closes it exactly once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
