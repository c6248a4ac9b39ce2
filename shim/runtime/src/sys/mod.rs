//! The only module with `unsafe`: raw syscalls that nix does not wrap the way the engine needs them.
//! Every block carries a `// SAFETY:` comment.

pub mod fd;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

/// Outcome of [`clone_fork`], like `fork(2)`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    Parent(Pid),
    Child,
}

/// `clone(2)` with fork semantics: no new stack (the child runs on a copy-on-write copy of ours),
/// SIGCHLD as exit signal, and `flags` (namespace flags, CLONE_PARENT, ...).
///
/// Callers must be single-threaded (the engine never starts threads on the container path).
pub fn clone_fork(flags: CloneFlags) -> nix::Result<Forked> {
    let bits = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: a NULL stack makes clone behave like fork: the child continues on a private copy of the
    // caller's address space and stack. The process is single-threaded (no async runtime, no threads
    // on the container path), so no lock can be held by a thread that does not exist in the child.
    // The remaining pointer arguments (ptid, ctid, tls) are NULL and unused without the matching flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            bits,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match Errno::result(ret)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid as i32))),
    }
}

/// Installs a seccomp BPF program in the calling thread (`seccomp(SECCOMP_SET_MODE_FILTER)`).
pub fn seccomp_load(filter: &[libc::sock_filter], flags: u32) -> nix::Result<()> {
    let prog = libc::sock_fprog {
        len: filter.len() as libc::c_ushort,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `filter`, which outlives the call; the kernel copies the program before
    // returning and never writes through the pointer.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags as libc::c_ulong,
            &prog as *const libc::sock_fprog,
        )
    };
    Errno::result(ret).map(drop)
}

/// `unshare(CLONE_NEWTIME)` value is outside nix's CloneFlags on some versions; expose the bit.
pub const CLONE_NEWTIME: libc::c_int = 0x80;
