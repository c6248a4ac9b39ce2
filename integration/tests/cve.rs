//! Regressions named after the CVE whose class they guard against: the runtime binary
//! overwritten through /proc/PID/exe (CVE-2019-5736, also through a `#!/proc/self/exe` program), a leaked host fd used as process.cwd
//! (CVE-2024-21626), a mount target that is a symlink out of the rootfs (CVE-2021-30465), and
//! console sockets that are not sockets.

use crate::harness::{host, Ctx, Launch, Mode, Probe};
use serde_json::{json, Value};
use std::fs;
use std::os::fd::OwnedFd;
use std::path::Path;

crate::root_only!(cve_2019_5736_ptrace_capable_container);

crate::both!(
    cve_2019_5736_created_init_exe_not_writable,
    cve_2019_5736_exec_process_exe_not_writable,
    cve_2019_5736_self_exe_interpreter,
    cve_2024_21626_cwd_through_leaked_fd,
    cve_2024_21626_leaked_fds_do_not_reach_container,
    cve_2021_30465_symlinked_mount_target,
    console_socket_not_a_socket,
    console_socket_missing,
);

/// The `exes` report's row for pid `pid`.
fn exe_row(p: &Probe, pid: u64) -> Value {
    p.get("procs")
        .as_array()
        .and_then(|a| a.iter().find(|r| r["pid"] == pid).cloned())
        .unwrap_or_else(|| panic!("no pid {pid} in {}", p.0))
}

/// Every process the probe could see refused an O_WRONLY open of its /proc/PID/exe.
fn assert_no_exe_writable(p: &Probe) {
    let procs = p.get("procs").as_array().unwrap();
    for row in procs {
        assert_eq!(
            row["write"]["ok"], false,
            "/proc/{}/exe ({}) opened for writing: {row}",
            row["pid"], row["cmdline"]
        );
    }
}

/// CVE-2019-5736: a created container's pid 1 is still the runtime (husk: a forked husk process,
/// non-dumpable until exec; runc: `runc init` from a sealed memfd). A process exec'd into the
/// created container must not get the runtime binary open for writing.
fn cve_2019_5736_created_init_exe_not_writable(t: &Ctx) {
    let runtime = fs::read(&host().runtime).unwrap();
    let id = t.create(&t.bundle().probe(&["sleep", "600"]), "exe");
    let p = t.rt(&["exec", &id, "/bin/husk-probe", "exes"]).ok().probe();
    let init = exe_row(&p, 1);
    assert_eq!(init["write"]["ok"], false, "/proc/1/exe writable: {init}");
    assert_no_exe_writable(&p);
    // The direct form as well, in case the scan above missed pid 1 somehow.
    let w = t
        .rt(&["exec", &id, "/bin/husk-probe", "open", "/proc/1/exe", "w"])
        .ok()
        .probe();
    assert_eq!(w.get("ok"), false, "{}", w.0);
    assert_eq!(t.state(&id)["status"], "created", "the init was disturbed");
    assert!(
        fs::read(&host().runtime).unwrap() == runtime,
        "{} changed",
        host().runtime.display()
    );
    t.rt(&["start", &id]).ok();
    t.wait_status(&id, "running");
}

/// The same for a process `exec` put into a running container, seen from a second exec.
fn cve_2019_5736_exec_process_exe_not_writable(t: &Ctx) {
    let runtime = fs::read(&host().runtime).unwrap();
    let id = t.start_running(&t.bundle().probe(&["sleep", "600"]), "exe2");
    let exec = t.spawn(&["exec", &id, "/bin/husk-probe", "sleep", "601"], None);
    let mut report = None;
    t.wait_for("the exec'd sleep to show up", || {
        let p = t.rt(&["exec", &id, "/bin/husk-probe", "exes"]).ok().probe();
        let found = p.get("procs").as_array().unwrap().iter().any(|r| {
            r["cmdline"]
                .as_str()
                .is_some_and(|c| c.contains("sleep 601"))
        });
        report = found.then_some(p);
        found
    });
    let p = report.unwrap();
    assert_no_exe_writable(&p);
    assert!(
        fs::read(&host().runtime).unwrap() == runtime,
        "{} changed",
        host().runtime.display()
    );
    t.rt(&["kill", &id, "KILL"]).ok();
    t.wait_status(&id, "stopped");
    assert_ne!(exec.wait().code, 0, "exec'd sleep outlived its container");
}

/// CVE-2019-5736 itself: the image's program is a script whose interpreter is `#!/proc/self/exe`.
/// The kernel resolves that in the process doing the execve: a runtime that execs the program
/// from its own binary runs *the runtime's host binary* inside the container, where an attacker
/// process (container root) grabs /proc/PID/exe and, once it exits, reopens it for writing.
/// The attacker (`husk-probe exe-race`, exec'd into the container) grabs every exe it can while
/// the script is exec'd 20 times (by `exec`, and once as a container's init). No grab may be the
/// runtime's binary opened for writing, and the binary must be unchanged. As root, the runtime's
/// binary must never even run inside (husk execs through a sealed stub: its usage text never
/// appears). Rootless, the stub is used only for a binary the user can write; this one is root's.
fn cve_2019_5736_self_exe_interpreter(t: &Ctx) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let runtime = fs::read(&host().runtime).unwrap();
    let meta = fs::metadata(&host().runtime).unwrap();
    let evil = t.rootfs().join("evil");
    fs::write(&evil, "#!/proc/self/exe\n").unwrap();
    fs::set_permissions(&evil, fs::Permissions::from_mode(0o755)).unwrap();
    t.give(&evil);
    let id = t.start_running(&t.bundle().probe(&["sleep", "600"]), "selfexe");
    let stop_in = format!("/tmp/stop-{id}");
    let stop = t.rootfs().join(stop_in.trim_start_matches('/'));
    let attacker = t.spawn(
        &["exec", &id, "/bin/husk-probe", "exe-race", &stop_in],
        None,
    );
    t.wait_for("the attacker to run", || {
        fs::read_dir("/proc").unwrap().flatten().any(|e| {
            fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| c == format!("/bin/husk-probe\0exe-race\0{stop_in}\0").as_bytes())
        })
    });
    let husk_ran = |out: &crate::harness::Out| out.stderr.contains("Usage: husk");
    for _ in 0..20 {
        let out = t.rt(&["exec", &id, "/evil", "x"]);
        assert!(
            t.mode != Mode::Root || !husk_ran(&out),
            "husk ran inside: {out}"
        );
    }
    let b = t.bundle().args(&["/evil", "x"]);
    let dir = t.write(&b);
    let init = t.rt(&[
        "run",
        "--bundle",
        dir.to_str().unwrap(),
        &t.id("selfexe-init"),
    ]);
    assert!(
        t.mode != Mode::Root || !husk_ran(&init),
        "husk ran as the init: {init}"
    );
    fs::write(&stop, "").unwrap();
    let report = attacker.wait().ok().probe();
    for g in report.get("grabbed").as_array().unwrap() {
        let is_runtime = g["dev"] == meta.dev() && g["ino"] == meta.ino();
        assert!(
            !(is_runtime && g["reopen"]["ok"] == true),
            "the runtime's binary opened for writing from the container: {g}"
        );
        assert!(
            t.mode != Mode::Root || !is_runtime,
            "the runtime's binary ran in the container: {g}"
        );
    }
    println!("grabbed: {}", report.get("grabbed"));
    assert!(
        fs::read(&host().runtime).unwrap() == runtime,
        "runtime changed"
    );
}

/// The same attacker with CAP_SYS_PTRACE and no user namespace (root only: in a user namespace
/// the capability does not reach husk's processes): it may read /proc/PID/exe of a non-dumpable
/// process, so husk's pre-exec window is open to it. 20 `exec`s of `true` must never let it
/// grab the runtime's binary: husk then runs from a sealed copy of itself.
fn cve_2019_5736_ptrace_capable_container(t: &Ctx) {
    use std::os::unix::fs::MetadataExt;
    let runtime = fs::read(&host().runtime).unwrap();
    let meta = fs::metadata(&host().runtime).unwrap();
    let b = t.bundle().probe(&["sleep", "600"]).edit(|c| {
        let caps = &mut c["process"]["capabilities"];
        for set in ["bounding", "effective", "permitted"] {
            caps[set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_SYS_PTRACE"));
        }
    });
    let id = t.start_running(&b, "ptrace");
    let stop_in = format!("/tmp/stop-{id}");
    let stop = t.rootfs().join(stop_in.trim_start_matches('/'));
    let attacker = t.spawn(
        &["exec", &id, "/bin/husk-probe", "exe-race", &stop_in],
        None,
    );
    t.wait_for("the attacker to run", || {
        fs::read_dir("/proc").unwrap().flatten().any(|e| {
            fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| c == format!("/bin/husk-probe\0exe-race\0{stop_in}\0").as_bytes())
        })
    });
    for _ in 0..20 {
        t.rt(&["exec", &id, "/bin/true"]).ok();
    }
    fs::write(&stop, "").unwrap();
    let report = attacker.wait().ok().probe();
    let grabbed = report.get("grabbed").as_array().unwrap();
    for g in grabbed {
        let is_runtime = g["dev"] == meta.dev() && g["ino"] == meta.ino();
        assert!(
            !is_runtime,
            "the runtime's binary reached from the container: {g}"
        );
    }
    println!("grabbed {} exes: {}", grabbed.len(), report.get("grabbed"));
    assert!(
        fs::read(&host().runtime).unwrap() == runtime,
        "runtime changed"
    );
}

/// A host directory with a marker file, and a launch that hands the runtime that directory as
/// inheritable fds 3..=9 (what a careless caller, or runc's own cgroup fd before 1.1.12, leaks).
fn leaky_launch(t: &Ctx, marker: &str) -> Launch {
    let hostdir = t.mkdir(&t.dir.join("host-only"));
    fs::write(hostdir.join(marker), "host\n").unwrap();
    let fds = (3..10)
        .map(|n| (n, OwnedFd::from(fs::File::open(&hostdir).unwrap())))
        .collect();
    Launch {
        fds,
        ..Launch::default()
    }
}

/// CVE-2024-21626: process.cwd = /proc/self/fd/N must not resolve to a host directory the runtime
/// inherited. Either create/run refuses cleanly or the process's cwd is inside the container.
fn cve_2024_21626_cwd_through_leaked_fd(t: &Ctx) {
    let marker = "HOST-ONLY-MARKER";
    let launch = leaky_launch(t, marker);
    for n in 3..10 {
        let b = t
            .bundle()
            .set("/process/cwd", json!(format!("/proc/self/fd/{n}")))
            .probe(&["read", "."]);
        let id = t.id("cwdfd");
        let dir = t.write(&b);
        let out = t.rt_with(&["run", "--bundle", dir.to_str().unwrap(), &id], &launch);
        if out.code == 0 {
            let r = out.probe();
            let entries = crate::harness::strings(r.get("entries"));
            assert!(
                !entries.iter().any(|e| e == marker),
                "cwd /proc/self/fd/{n} is the host dir: {}",
                r.0
            );
        } else {
            let out = out.fails();
            // Warnings (e.g. rootless without cgroups) may come first; the error is one line.
            let lines = out
                .stderr
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.contains("level=warn"))
                .count();
            assert_eq!(lines, 1, "a one-line error: {out}");
        }
    }
    t.assert_nothing_left();
}

/// Only stdio reaches the container, however many inheritable fds the runtime was started with.
fn cve_2024_21626_leaked_fds_do_not_reach_container(t: &Ctx) {
    let launch = leaky_launch(t, "marker");
    let b = t.bundle().probe(&["fds"]);
    let id = t.id("leak");
    let dir = t.write(&b);
    let r = t
        .rt_with(&["run", "--bundle", dir.to_str().unwrap(), &id], &launch)
        .ok()
        .probe();
    let fds = r.fds();
    assert_eq!(fds, [0, 1, 2], "fds: {}", r.get("fds"));
}

/// CVE-2021-30465 class: rootfs/evil is a symlink to a host directory; a mount at /evil/x must
/// land inside the rootfs (or be refused), never in the host directory.
fn cve_2021_30465_symlinked_mount_target(t: &Ctx) {
    let hostdir = t.mkdir(&t.dir.join("evil-target"));
    let link = t.rootfs().join("evil");
    std::os::unix::fs::symlink(&hostdir, &link).unwrap();
    t.give(&link);
    let b = t.bundle().edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/evil/x", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]
        }));
    });
    let id = t.id("symmnt");
    let dir = t.write(&b.probe(&["write", "/evil/x/written"]));
    let out = t.rt(&["run", "--bundle", dir.to_str().unwrap(), &id]);
    if out.code != 0 {
        out.fails();
    }
    let left: Vec<_> = fs::read_dir(&hostdir).unwrap().flatten().collect();
    assert!(
        left.is_empty(),
        "host dir {} got {left:?}",
        hostdir.display()
    );
    assert_not_mounted(&hostdir);
    t.assert_nothing_left();
}

fn assert_not_mounted(dir: &Path) {
    let d = dir.to_string_lossy();
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let hits: Vec<&str> = mountinfo
        .lines()
        .filter(|l| l.contains(d.as_ref()))
        .collect();
    assert!(hits.is_empty(), "mounted on the host: {hits:?}");
}

fn create_with_console(t: &Ctx, socket: &Path) {
    let b = t
        .bundle()
        .set("/process/terminal", json!(true))
        .probe(&["tty"]);
    let id = t.id("csock");
    let dir = t.write(&b);
    t.rt(&[
        "create",
        "--bundle",
        dir.to_str().unwrap(),
        "--console-socket",
        socket.to_str().unwrap(),
        &id,
    ])
    .fails();
    t.assert_nothing_left();
    assert!(!t.state_root.join(&id).exists(), "state dir {id} left");
}

fn console_socket_not_a_socket(t: &Ctx) {
    let file = t.dir.join("not-a-socket");
    fs::write(&file, "").unwrap();
    t.give(&file);
    create_with_console(t, &file);
    assert_eq!(fs::read(&file).unwrap(), b"", "the file was written to");
}

fn console_socket_missing(t: &Ctx) {
    create_with_console(t, &t.dir.join("no-such-socket"));
}
