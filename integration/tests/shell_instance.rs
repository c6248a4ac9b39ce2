//! `husk shell instance://NAME` on a real pseudo-terminal: husk's stdin, stdout and stderr are the
//! slave of a pty the test holds the master of, as when a person types into a terminal.

use crate::both;
use crate::harness::{host, Ctx, DEADLINE};
use crate::instance::Cleanup;
use crate::launcher_errors::command;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::Stdio;
use std::time::Instant;

both!(
    shell_in_a_running_instance,
    shell_in_an_unknown_instance_fails
);

/// Reads `master` into `seen` until `want` appears, the other side is gone, or the deadline.
fn read_until(master: &mut File, seen: &mut String, want: &str) -> bool {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while !seen.contains(want) {
        if start.elapsed() > DEADLINE {
            return false;
        }
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(100u16)).unwrap_or(0) == 0 {
            continue;
        }
        match master.read(&mut buf) {
            Ok(0) | Err(_) => return seen.contains(want),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    true
}

fn shell_in_a_running_instance(t: &Ctx) {
    let _c = Cleanup(t);
    let name = t.id("sh");
    let image = host().rootfs.to_str().unwrap();
    let start = [
        "instance",
        "start",
        "--pid",
        image,
        &name,
        "/bin/husk-probe",
        "sleep",
        "600",
    ];
    t.rt(&start).ok();
    let pty = nix::pty::openpty(None, None).unwrap();
    let uri = format!("instance://{name}");
    let mut cmd = command(t, &[], &["shell", &uri]);
    let slave = || Stdio::from(pty.slave.try_clone().unwrap());
    cmd.stdin(slave()).stdout(slave()).stderr(slave());
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    drop(pty.slave);
    let mut master = File::from(pty.master);
    let mut seen = String::new();
    assert!(
        read_until(&mut master, &mut seen, "Husk> "),
        "no prompt: {seen:?}"
    );
    // Arithmetic, so the answer cannot be the terminal echoing what was typed; pid 1 is the
    // instance's (its own pid namespace), so the shell runs in the instance.
    let input = "tty; echo \"answer $((6*7))\"; tr '\\0' ' ' < /proc/1/cmdline; echo; exit 3\n";
    master.write_all(input.as_bytes()).unwrap();
    read_until(&mut master, &mut seen, "\u{0}never");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < DEADLINE, "shell still running: {seen:?}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(3), "{seen:?}");
    assert!(seen.contains("/dev/pts/"), "{seen:?}");
    assert!(seen.contains("answer 42"), "{seen:?}");
    assert!(seen.contains("/bin/husk-probe sleep 600"), "{seen:?}");
    // The instance outlives the shell.
    let list = t.rt(&["instance", "list", "--json"]).ok().json();
    assert_eq!(list[0]["status"], "running", "{list}");
}

fn shell_in_an_unknown_instance_fails(t: &Ctx) {
    let out = t.rt(&["shell", "instance://nosuch"]);
    assert_ne!(out.code, 0, "{out}");
    // Named as the user wrote it, not by its container id (issue 14).
    assert!(out.stderr.contains("instance nosuch"), "{out}");
    assert!(!out.stderr.contains("inst-nosuch"), "{out}");
    assert_eq!(out.stderr.lines().count(), 1, "{out}");
}
