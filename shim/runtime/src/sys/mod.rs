//! The only module with `unsafe`: raw syscalls that nix does not wrap the way the engine needs them.
//! Every block carries a `// SAFETY:` comment.

pub mod bpf;
pub mod fd;
pub mod landlock;

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

/// Makes `fd` (a terminal) the controlling terminal of the calling session leader (TIOCSCTTY).
pub fn set_controlling_tty(fd: std::os::fd::RawFd) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument by value (0 = do not steal); no memory is passed.
    let ret = unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) };
    Errno::result(ret).map(drop)
}

/// Sets a terminal's window size (TIOCSWINSZ).
pub fn set_winsize(fd: std::os::fd::RawFd, rows: u16, cols: u16) -> nix::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a `struct winsize` from the pointer, which points at a live local.
    let ret = unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws as *const libc::winsize) };
    Errno::result(ret).map(drop)
}

/// Reads a terminal's window size (TIOCGWINSZ): (rows, cols).
pub fn get_winsize(fd: std::os::fd::RawFd) -> nix::Result<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `struct winsize` through the pointer, which points at a live local.
    let ret = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws as *mut libc::winsize) };
    Errno::result(ret).map(|_| (ws.ws_row, ws.ws_col))
}

/// setdomainname(2).
pub fn set_domainname(name: &str) -> nix::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes, which live across the call; the kernel
    // copies them and does not need a terminating NUL.
    let ret = unsafe { libc::setdomainname(name.as_ptr() as *const libc::c_char, name.len()) };
    Errno::result(ret).map(drop)
}

/// keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): a fresh session keyring for the container.
pub fn join_session_keyring(name: &std::ffi::CStr) -> nix::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_ulong = 1;
    // SAFETY: the second argument is a NUL-terminated string that lives across the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            name.as_ptr(),
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    Errno::result(ret).map(drop)
}

/// strsignal(3): "Bad system call" for 31.
pub fn signal_description(sig: i32) -> String {
    // SAFETY: strsignal returns a pointer to a NUL-terminated string (a static table entry, or a
    // per-thread buffer for unknown numbers) that stays valid until the next call on this thread;
    // it is copied out at once.
    let p = unsafe { libc::strsignal(sig) };
    if p.is_null() {
        return format!("signal {sig}");
    }
    // SAFETY: non-null and NUL-terminated, as above.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}

/// Marks every fd from `first` up close-on-exec (close_range with CLOSE_RANGE_CLOEXEC), so nothing the
/// caller leaked (CVE-2024-21626 class) survives into the container process.
pub fn cloexec_from(first: u32) -> nix::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_int = 1 << 2;
    // SAFETY: close_range only changes fd flags; it touches no memory of ours.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    Errno::result(ret).map(drop)
}

/// Closes every fd from `first` up except those in `keep` (close_range(2) over each gap).
pub fn close_from_except(first: u32, keep: &[std::os::fd::RawFd]) -> nix::Result<()> {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .filter(|&fd| fd >= first)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut lo = first;
    for fd in keep.into_iter().chain(std::iter::once(u32::MAX)) {
        if fd > lo {
            let hi = if fd == u32::MAX { u32::MAX } else { fd - 1 };
            // SAFETY: close_range only closes descriptors; the callers own every fd in the range
            // (a forked init about to wait or exec) and keep no Rust handle to them that is used
            // or dropped afterwards.
            let ret = unsafe { libc::syscall(libc::SYS_close_range, lo, hi, 0 as libc::c_uint) };
            Errno::result(ret)?;
        }
        lo = fd.saturating_add(1);
    }
    Ok(())
}

/// `_exit(2)`: leaves a forked child at once, without running the parent's atexit handlers or
/// flushing buffers that belong to the parent.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes an int and never returns; it touches no memory of ours.
    unsafe { libc::_exit(code) }
}

/// pidfd_open(2): a fd that becomes readable when `pid` exits (no polling of /proc, no pid reuse race).
pub fn pidfd_open(pid: Pid) -> nix::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags by value and returns a new fd or -1.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0 as libc::c_uint) };
    let fd = Errno::result(ret)? as std::os::fd::RawFd;
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Receives one fd sent with SCM_RIGHTS on `sock` (the console master from a container).
pub fn recv_fd(sock: std::os::fd::BorrowedFd<'_>) -> nix::Result<std::os::fd::OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed `fd` in our table for this message; nothing else
                // owns it.
                return Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(Errno::EBADMSG)
}

/// The most fds one message of [`recv_with_fds`] carries.
pub const FDS_PER_MESSAGE: usize = 64;

/// Receives one message and the fds sent with it (SCM_RIGHTS, at most [`FDS_PER_MESSAGE`]) on
/// `sock`; returns the payload's length (0: the peer closed) and the fds, owned.
pub fn recv_with_fds(
    sock: std::os::fd::BorrowedFd<'_>,
    buf: &mut [u8],
) -> nix::Result<(usize, Vec<std::os::fd::OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; FDS_PER_MESSAGE]);
    let msg = loop {
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            r => break r?,
        }
    };
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: the kernel just installed these fds in our table for this message; nothing
            // else owns them.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    Ok((msg.bytes, fds))
}

/// Puts every signal back to SIG_DFL. The Rust runtime ignores SIGPIPE at start-up, and the
/// caller may ignore others (nohup's SIGHUP, a shell's `trap '' INT`): an ignored signal stays
/// ignored across execve, and the container's program must not inherit that (as under runc).
/// Handlers do not survive execve anyway, so only the ignored ones change.
pub fn default_signals() -> nix::Result<()> {
    use nix::sys::signal::{signal, SigHandler, Signal};
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no handler code of ours, so none of sigaction's hazards
        // (async-signal-safety of a handler, races with a handler's data) apply.
        unsafe { signal(sig, SigHandler::SigDfl) }?;
    }
    Ok(())
}

/// Sets the `lo` interface up (SIOCGIFFLAGS, then SIOCSIFFLAGS with IFF_UP) in the calling
/// process's network namespace, through `sock` (any AF_INET datagram socket of that namespace).
pub fn loopback_up(sock: std::os::fd::BorrowedFd<'_>) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: ifreq is plain old data; all-zero is a valid value (empty name, no flags).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads ifr_name and writes ifr_flags of the live local `req`.
    let ret = unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFFLAGS,
            &mut req as *mut libc::ifreq,
        )
    };
    Errno::result(ret)?;
    // SAFETY: the kernel filled ifr_flags (the union's active member after SIOCGIFFLAGS).
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS only reads `req`, a live local.
    let ret = unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCSIFFLAGS,
            &req as *const libc::ifreq,
        )
    };
    Errno::result(ret).map(drop)
}

/// mount_setattr(2) with AT_RECURSIVE on the mount `fd` (an O_PATH fd of its root, AT_EMPTY_PATH):
/// sets `set` and clears `clear` (MOUNT_ATTR_* bits) on it and every mount below it. Linux 5.12+.
pub fn mount_setattr_recursive(
    fd: std::os::fd::BorrowedFd<'_>,
    set: u64,
    clear: u64,
) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    let mut attr = libc::mount_attr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the path is a NUL-terminated empty string, `attr` is a live local whose size is
    // passed along, and the kernel only reads both.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint,
            &mut attr as *mut libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    Errno::result(ret).map(drop)
}
