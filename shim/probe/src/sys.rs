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

extern "C" {
    fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i32;
}

/// `struct sock_filter`.
#[repr(C)]
struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

/// `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

/// Makes syscall `nr` fail with ENOSYS for this process and everything it execs (a seccomp filter
/// after no_new_privs), as on a kernel built without it. x86_64 only; other arches are allowed.
pub fn deny_syscall_enosys(nr: u32) -> io::Result<()> {
    const PR_SET_NO_NEW_PRIVS: i32 = 38;
    const PR_SET_SECCOMP: i32 = 22;
    const SECCOMP_MODE_FILTER: u64 = 2;
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    const ENOSYS: u32 = 38;
    let f = |code, jt, jf, k| SockFilter { code, jt, jf, k };
    let prog = [
        f(LD_W_ABS, 0, 0, 4),
        f(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        f(RET_K, 0, 0, RET_ALLOW),
        f(LD_W_ABS, 0, 0, 0),
        f(JEQ_K, 0, 1, nr),
        f(RET_K, 0, 0, RET_ERRNO | ENOSYS),
        f(RET_K, 0, 0, RET_ALLOW),
    ];
    let fprog = SockFprog {
        len: prog.len() as u16,
        filter: prog.as_ptr(),
    };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integers only.
    if unsafe { prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fprog` points at `prog`, both live locals; the kernel copies the program before
    // returning.
    let rc = unsafe {
        prctl(
            PR_SET_SECCOMP,
            SECCOMP_MODE_FILTER,
            &fprog as *const SockFprog as u64,
            0,
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

extern "C" {
    fn mmap(addr: *mut u8, len: usize, prot: i32, flags: i32, fd: i32, off: i64) -> *mut u8;
    fn close(fd: i32) -> i32;
}

/// Closes a descriptor a syscall returned (errors ignored: it is the probe's own).
pub fn close_fd(fd: i32) {
    // SAFETY: `fd` came from the kernel for this process and is not used afterwards.
    unsafe { close(fd) };
}

/// A page below 4 GiB (MAP_32BIT), where a pointer survives the i386 ABI's 32-bit registers.
pub fn low_page() -> io::Result<&'static mut [u32; 1024]> {
    const PROT_READ_WRITE: i32 = 0x1 | 0x2;
    const MAP_PRIVATE_ANONYMOUS_32BIT: i32 = 0x02 | 0x20 | 0x40;
    // SAFETY: a fresh anonymous mapping; nothing else refers to it. It is never unmapped, so the
    // 'static borrow stays valid for the rest of the (short-lived) probe.
    unsafe {
        let p = mmap(
            std::ptr::null_mut(),
            4096,
            PROT_READ_WRITE,
            MAP_PRIVATE_ANONYMOUS_32BIT,
            -1,
            0,
        );
        if p as isize == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(&mut *(p as *mut [u32; 1024]))
    }
}

/// An i386 syscall from 64-bit code through `int 0x80` (the kernel's IA-32 entry): the number and
/// five arguments, 32 bits each. A kernel without IA-32 emulation kills the probe (SIGSEGV).
pub fn syscall_i386(nr: u32, args: [u32; 5]) -> io::Result<i32> {
    let mut ret = nr as i32;
    // SAFETY: `int 0x80` takes the number in eax and arguments in ebx, ecx, edx, esi, edi, and
    // returns in eax; rbx is reserved by the compiler, so it is swapped in and out around the
    // call. r8-r11 are declared clobbered for kernels before 4.17, which did not preserve them.
    // The caller passes integers or pointers into memory it owns.
    unsafe {
        std::arch::asm!(
            "xchg {b}, rbx",
            "int 0x80",
            "xchg {b}, rbx",
            b = inout(reg) u64::from(args[0]) => _,
            inlateout("eax") ret,
            in("ecx") args[1],
            in("edx") args[2],
            in("esi") args[3],
            in("edi") args[4],
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
        );
    }
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(-ret));
    }
    Ok(ret)
}
