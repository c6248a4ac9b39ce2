//! process.terminal: the runtime sends the pty master over --console-socket (SCM_RIGHTS); the
//! container sees a tty on 0/1/2 and its output comes out of the master.

use crate::both;
use crate::harness::{Ctx, Probe};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    accept, bind, listen, recvmsg, socket, AddressFamily, Backlog, ControlMessageOwned, MsgFlags,
    SockFlag, SockType, UnixAddr,
};
use serde_json::json;
use std::fs::File;
use std::io::{IoSliceMut, Read};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

both!(
    terminal_via_console_socket,
    terminal_without_console_socket_fails,
    exec_tty_via_console_socket,
);

/// A listening console socket at `path`, connectable by the runtime's user.
pub(crate) fn console_socket(t: &Ctx, path: &Path) -> OwnedFd {
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    bind(fd.as_raw_fd(), &UnixAddr::new(path).unwrap()).unwrap();
    t.give(path);
    listen(&fd, Backlog::new(1).unwrap()).unwrap();
    fd
}

/// Accepts one connection and receives the pty master (runc sends it with the name "/dev/ptmx").
pub(crate) fn receive_master(listener: &OwnedFd) -> File {
    // Bounded: a runtime that never connects must fail the test, not hang it.
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    let ready = poll(&mut fds, PollTimeout::from(10_000u16)).unwrap();
    assert!(
        ready > 0,
        "the runtime never connected to the console socket"
    );
    let conn = owned(accept(listener.as_raw_fd()).unwrap());
    let mut name = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut name)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .unwrap();
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                return owned(*fd).into();
            }
        }
    }
    panic!("no fd received on the console socket");
}

/// Takes ownership of a descriptor the kernel just handed us (accept, SCM_RIGHTS).
#[allow(unsafe_code)]
fn owned(fd: std::os::fd::RawFd) -> OwnedFd {
    assert!(fd >= 0);
    // SAFETY: `fd` was just returned by accept(2) or received via SCM_RIGHTS; nothing else in
    // this process refers to it, so the OwnedFd is its only owner and closes it exactly once.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Reads the master until the slave side closes (EIO) or the deadline.
pub(crate) fn read_all(master: &mut File) -> String {
    let mut out = Vec::new();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < Duration::from_secs(20) {
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(200u16)).unwrap_or(0) == 0 {
            continue;
        }
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn terminal_via_console_socket(t: &Ctx) {
    let sock = t.dir.join("console.sock");
    let listener = console_socket(t, &sock);
    let b = t
        .bundle()
        .set("/process/terminal", json!(true))
        .probe(&["tty"]);
    let id = t.id("tty");
    let dir = t.write(&b);
    let sock_s = sock.to_str().unwrap();
    t.rt(&[
        "create",
        "--bundle",
        dir.to_str().unwrap(),
        "--console-socket",
        sock_s,
        &id,
    ])
    .ok();
    let mut master = receive_master(&listener);
    t.rt(&["start", &id]).ok();
    let text = read_all(&mut master);
    let p = Probe::parse(&text.replace("\r\n", "\n"))
        .unwrap_or_else(|| panic!("no probe output on the pty: {text:?}"));
    for fd in ["stdin", "stdout", "stderr"] {
        assert_eq!(p.get(fd)["isatty"], true, "{fd}: {}", p.0);
        assert_eq!(p.get(fd)["ttyname"], "/dev/pts/0", "{fd}: {}", p.0);
    }
    t.wait_status(&id, "stopped");
    t.rt(&["delete", &id]).ok();
}

fn terminal_without_console_socket_fails(t: &Ctx) {
    let b = t
        .bundle()
        .set("/process/terminal", json!(true))
        .probe(&["tty"]);
    let id = t.id("notty");
    let dir = t.write(&b);
    t.rt(&["create", "--bundle", dir.to_str().unwrap(), &id])
        .fails();
    t.assert_nothing_left();
}

/// `exec --tty --console-socket` (detached, as containerd does it): the exec'd process gets a
/// pty on 0/1/2 and `--pid-file` names it.
fn exec_tty_via_console_socket(t: &Ctx) {
    let id = t.start_running(&t.bundle().probe(&["sleep", "600"]), "etty");
    let sock = t.dir.join("exec-console.sock");
    let listener = console_socket(t, &sock);
    let pid_file = t.dir.join("exec.pid");
    t.rt(&[
        "exec",
        "--detach",
        "--tty",
        "--console-socket",
        sock.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
        "/bin/husk-probe",
        "tty",
    ])
    .ok();
    let mut master = receive_master(&listener);
    let text = read_all(&mut master);
    let p = Probe::parse(&text.replace("\r\n", "\n"))
        .unwrap_or_else(|| panic!("no probe output on the pty: {text:?}"));
    for fd in ["stdin", "stdout", "stderr"] {
        assert_eq!(p.get(fd)["isatty"], true, "{fd}: {}", p.0);
    }
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert!(
        pid.trim().parse::<u32>().is_ok_and(|p| p > 0),
        "pid file: {pid:?}"
    );
    assert_eq!(t.state(&id)["status"], "running");
}
