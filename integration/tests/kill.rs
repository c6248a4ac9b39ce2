//! `kill`: signal names and numbers reach the init; KILL stops it; stopped containers refuse.

use crate::harness::{has_cgroups, Ctx, Probe};
use crate::{both, root_only};

both!(
    default_signal_is_term,
    signal_by_name_and_number,
    kill_created_container,
    kill_stopped_fails,
    kill_all,
    kill_all_reaches_exec,
);

// A cgroup to sweep: root on this kind of host.
root_only!(delete_sweeps_what_a_stopped_container_left_in_its_cgroup);

/// A running container whose init is `husk-probe sig`; returns (id, create's stdout path reader).
fn signal_logger(t: &Ctx) -> (String, crate::harness::Out) {
    let b = t.bundle().probe(&["sig"]);
    let id = t.id("sig");
    let dir = t.write(&b);
    let create = t
        .rt(&["create", "--bundle", dir.to_str().unwrap(), &id])
        .ok();
    t.rt(&["start", &id]).ok();
    t.wait_for("the probe to block signals", || {
        create.later_stdout().contains("ready")
    });
    (id, create)
}

fn signals_seen(out: &crate::harness::Out) -> Vec<String> {
    out.later_stdout()
        .lines()
        .filter_map(Probe::parse)
        .filter_map(|p| p.get("name").as_str().map(String::from))
        .collect()
}

fn default_signal_is_term(t: &Ctx) {
    let (id, create) = signal_logger(t);
    t.rt(&["kill", &id]).ok();
    t.wait_status(&id, "stopped");
    assert_eq!(signals_seen(&create), ["SIGTERM"]);
}

fn signal_by_name_and_number(t: &Ctx) {
    let (id, create) = signal_logger(t);
    for (sig, n) in [("USR1", 1), ("SIGUSR2", 2), ("10", 3), ("HUP", 4)] {
        t.rt(&["kill", &id, sig]).ok();
        t.wait_for(&format!("signal {sig}"), || {
            signals_seen(&create).len() == n
        });
    }
    assert_eq!(
        signals_seen(&create),
        ["SIGUSR1", "SIGUSR2", "SIGUSR1", "SIGHUP"]
    );
    t.rt(&["kill", &id, "TERM"]).ok();
    t.wait_status(&id, "stopped");
}

fn kill_created_container(t: &Ctx) {
    let id = t.create(&t.bundle().probe(&["sleep", "600"]), "kc");
    t.rt(&["kill", &id, "KILL"]).ok();
    t.wait_status(&id, "stopped");
    t.rt(&["delete", &id]).ok();
}

fn kill_stopped_fails(t: &Ctx) {
    let id = t.start_running(&t.bundle().probe(&["sleep", "600"]), "ks");
    t.rt(&["kill", &id, "KILL"]).ok();
    t.wait_status(&id, "stopped");
    t.rt(&["kill", &id, "KILL"]).fails();
}

/// `kill --all` needs the container's cgroup to find every process; without one (rootless on a
/// cgroup v1 host) it must fail cleanly or fall back to signalling the init.
fn kill_all(t: &Ctx) {
    let b = t.bundle().args(&[
        "/bin/sh",
        "-c",
        "/bin/husk-probe sleep 600 & /bin/husk-probe sleep 600",
    ]);
    let id = t.start_running(&b, "ka");
    let out = t.rt(&["kill", "--all", &id, "KILL"]);
    if has_cgroups(t.mode) {
        out.ok();
    } else if out.code != 0 {
        out.fails();
        t.rt(&["kill", &id, "KILL"]).ok();
    }
    t.wait_status(&id, "stopped");
}

/// `kill --all ID TERM` reaches a process `exec --detach` started, while the init (pid 1 of the
/// container's pid namespace, no TERM handler) ignores TERM and keeps running. So a runtime that
/// signalled only the init would leave the exec'd process alive. Also: `exec --detach --pid-file`
/// writes the exec'd process's host pid.
fn kill_all_reaches_exec(t: &Ctx) {
    let id = t.start_running(&t.bundle().probe(&["sleep", "600"]), "kae");
    let pid_file = t.dir.join("exec.pid");
    t.rt(&[
        "exec",
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
        "/bin/husk-probe",
        "sleep",
        "601",
    ])
    .ok();
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(pid.parse::<u32>().is_ok_and(|p| p > 0), "pid file: {pid:?}");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("601"),
        "pid file names the exec'd process: {pid}"
    );
    let out = t.rt(&["kill", "--all", &id, "TERM"]);
    if !has_cgroups(t.mode) && out.code != 0 {
        out.fails();
        return;
    }
    out.ok();
    t.wait_for("the exec'd process to die", || gone(&pid));
    assert_eq!(t.state(&id)["status"], "running", "init ignores TERM");
}

/// No such process, or a zombie (a dead exec'd process waits for the container's init to reap it).
fn gone(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with(['Z', 'X'])
    })
}

/// Issue 14: a container sharing the host's pid namespace whose init exited left a background
/// process in its cgroup; `delete` failed ("remove cgroup ...: Device or resource busy") and the
/// container stayed, its name unusable. delete kills what is left in the cgroup first (as runc).
fn delete_sweeps_what_a_stopped_container_left_in_its_cgroup(t: &Ctx) {
    let mark = format!("HUSK_MARK={}", t.id("sweep"));
    let script = "/bin/husk-probe sleep 600 >/dev/null 2>&1 &";
    let b = t.bundle().args(&["/bin/sh", "-c", script]).edit(|v| {
        let ns = v["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "pid");
        v["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(mark.clone().into());
    });
    let id = t.create(&b, "sweep");
    t.rt(&["start", &id]).ok();
    t.wait_status(&id, "stopped");
    t.wait_for("the background process", || {
        crate::instance::marked(&mark).len() == 1
    });
    let pid = crate::instance::marked(&mark)[0];
    t.rt(&["delete", &id]).ok();
    t.wait_for("the background process to be killed", || {
        crate::instance::gone(pid)
    });
    t.assert_nothing_left();
}
