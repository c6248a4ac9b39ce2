//! The probe's only `unsafe`: a handful of libc calls that std does not expose (signals, isatty,
//! umask, raw syscalls). std already links libc, so these need no dependency. x86_64 Linux/glibc
//! only, like the rest of the test setup.
#![allow(unsafe_code)]

use std::io;

/// glibc's `sigset_t`: 1024 bits.
#[repr(C)]
pub struct SigSet([u64; 16]);

const SIG_BLOCK: i32 = 0;
const SIG_UNBLOCK: i32 = 1;
const SIG_DFL: usize = 0;

extern "C" {
    fn isatty(fd: i32) -> i32;
    fn umask(mask: u32) -> u32;
    fn sigfillset(set: *mut SigSet) -> i32;
    fn sigemptyset(set: *mut SigSet) -> i32;
    fn sigaddset(set: *mut SigSet, sig: i32) -> i32;
    fn sigprocmask(how: i32, set: *const SigSet, old: *mut SigSet) -> i32;
    fn sigwait(set: *const SigSet, sig: *mut i32) -> i32;
    fn signal(sig: i32, handler: usize) -> usize;
    fn raise(sig: i32) -> i32;
    fn syscall(nr: i64, ...) -> i64;
    fn getpgrp() -> i32;
    fn getsid(pid: i32) -> i32;
}

pub fn is_tty(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor number; any value is allowed.
    unsafe { isatty(fd) == 1 }
}

/// Reads the umask without changing it (two calls; the probe is single-threaded here).
pub fn read_umask() -> u32 {
    // SAFETY: umask cannot fail; the second call restores the value the first one returned.
    unsafe {
        let old = umask(0o022);
        umask(old);
        old
    }
}

pub fn process_group() -> i32 {
    // SAFETY: no arguments; cannot fail.
    unsafe { getpgrp() }
}

pub fn session() -> i32 {
    // SAFETY: pid 0 means the caller; returns -1 on error, which we report as is.
    unsafe { getsid(0) }
}

/// Blocks every catchable signal so they queue up for [`wait_signal`]. Blocked signals are not
/// dropped even when we are pid 1 of a pid namespace (the kernel only ignores SIG_DFL signals to
/// init when they are unblocked).
pub fn block_all_signals() -> io::Result<SigSet> {
    let mut set = SigSet([0; 16]);
    // SAFETY: `set` is a valid, writable sigset_t-sized buffer; a null old-set pointer is allowed.
    let rc = unsafe {
        sigfillset(&mut set);
        sigprocmask(SIG_BLOCK, &set, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(set)
}

pub fn wait_signal(set: &SigSet) -> io::Result<i32> {
    let mut sig = 0;
    // SAFETY: `set` was filled by sigfillset; `sig` is a valid out-pointer.
    let rc = unsafe { sigwait(set, &mut sig) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(sig)
}

/// Resets `sig` to its default action, unblocks it and raises it (to die "by signal N").
pub fn raise_default(sig: i32) -> io::Result<()> {
    let mut set = SigSet([0; 16]);
    // SAFETY: plain libc calls on a local sigset; SIG_DFL is a valid handler for every signal
    // (signal() rejects KILL/STOP itself, which we ignore since they cannot be caught anyway).
    let rc = unsafe {
        signal(sig, SIG_DFL);
        sigemptyset(&mut set);
        sigaddset(&mut set, sig);
        sigprocmask(SIG_UNBLOCK, &set, std::ptr::null_mut());
        raise(sig)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Calls syscall `nr` with up to six integer arguments; returns the result or the errno.
pub fn raw_syscall(nr: i64, args: [i64; 6]) -> io::Result<i64> {
    // SAFETY: the caller picks the syscall; the probe only passes integers (no pointers the
    // kernel could write through), so the worst case is an error return or the syscall's own
    // effect inside the throwaway test container.
    let rc = unsafe { syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}
