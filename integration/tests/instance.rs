//! `husk instance start|list|stop` and `husk exec instance://NAME`: background launcher
//! containers, each with a watcher that logs its output and enforces --ttl.

use crate::both;
use crate::harness::{host, host_ns, Ctx, Launch, Probe};
use serde_json::Value;
use std::path::{Path, PathBuf};

both!(
    start_list_exec_log_stop,
    ttl_stops_it_by_itself,
    same_name_twice_fails_cleanly,
    bad_names_and_ttls_are_usage_errors,
    stop_ends_every_process,
    exited_instance_stays_listed_with_its_status_and_log,
    exec_passes_the_callers_environment,
    exec_resets_signals_the_caller_ignores,
    killing_an_exec_client_ends_its_process,
    list_table_lines_up,
);

fn image() -> &'static str {
    host().rootfs.to_str().unwrap()
}

/// Stops whatever a case left running, even when it panics.
pub struct Cleanup<'a>(pub &'a Ctx);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let args = [
            "instance",
            "stop",
            "--all",
            "--signal",
            "KILL",
            "--timeout",
            "1",
        ];
        let _ = self.0.spawn(&args, None).wait_quiet();
    }
}

fn instances_dir(t: &Ctx) -> PathBuf {
    let mut name = t.state_root.file_name().unwrap().to_os_string();
    name.push("-instances");
    t.state_root.with_file_name(name)
}

fn list(t: &Ctx) -> Vec<Value> {
    let v = t.rt(&["instance", "list", "--json"]).ok().json();
    v.as_array().cloned().unwrap_or_default()
}

fn start(t: &Ctx, flags: &[&str], name: &str, args: &[&str]) {
    let mut a = vec!["instance", "start"];
    a.extend_from_slice(flags);
    a.extend_from_slice(&[image(), name]);
    a.extend_from_slice(args);
    let out = t.rt(&a).ok();
    assert_eq!(out.stdout.trim(), name, "{out}");
}

/// Gone, or a zombie nobody has reaped yet.
pub fn gone(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z')),
    }
}

fn nothing_left(t: &Ctx, name: &str, pids: &[i64]) {
    t.wait_for("the instance's processes to go", || {
        pids.iter().all(|&p| gone(p))
    });
    assert!(list(t).is_empty(), "{:?}", list(t));
    t.assert_nothing_left();
    let dir = instances_dir(t);
    assert!(!dir.join(name).exists(), "launch dir left");
    assert!(!dir.join(format!("{name}.json")).exists(), "record left");
}

fn start_list_exec_log_stop(t: &Ctx) {
    let _c = Cleanup(t);
    let name = t.id("web");
    // A report into the log, then the long sleep as the instance's pid 1.
    let script = "/bin/husk-probe && exec /bin/husk-probe sleep 600";
    start(t, &["--pid"], &name, &["/bin/sh", "-c", script]);
    let l = list(t);
    assert_eq!(l.len(), 1, "{l:?}");
    let i = &l[0];
    assert_eq!(i["name"], name.as_str());
    assert_eq!(i["status"], "running", "{i}");
    assert_eq!(i["image"], image());
    assert!(i["started"].as_str().is_some_and(|s| !s.is_empty()), "{i}");
    assert!(i["ttl"].is_null(), "{i}");
    let pid = i["pid"].as_i64().unwrap();
    let watcher = i["watcher"].as_i64().unwrap();
    assert!(pid > 0 && !gone(pid), "{i}");

    // The log gets the instance's output: the probe's report from inside.
    let log = PathBuf::from(i["log"].as_str().unwrap());
    assert_eq!(log, instances_dir(t).join(format!("{name}.log")));
    let mut seen = None;
    t.wait_for("the probe's report in the log", || {
        seen = Probe::parse(&std::fs::read_to_string(&log).unwrap_or_default());
        seen.is_some()
    });
    let first = seen.unwrap();
    assert_ne!(
        first.ns("pid"),
        host_ns("self", "pid"),
        "--pid: a new pid namespace"
    );

    // exec joins it: same pid namespace, stdio and exit status pass through.
    let uri = format!("instance://{name}");
    let p = t.rt(&["exec", &uri, "/bin/husk-probe"]).ok().probe();
    assert_eq!(p.ns("pid"), host_ns(&pid.to_string(), "pid"));
    assert_eq!(p.ns("pid"), first.ns("pid"));
    assert_ne!(p.get("pid"), 1);
    t.rt(&["exec", &uri, "/bin/sh", "-c", "exit 7"]).code(7);
    let out = t.rt_stdin(&["exec", &uri, "/bin/cat"], "through\n").ok();
    assert_eq!(out.stdout, "through\n");

    t.rt(&["instance", "stop", "--timeout", "5", &name]).ok();
    nothing_left(t, &name, &[pid, watcher]);
    assert!(log.exists(), "the log stays after stop");
    t.rt(&["exec", &uri, "/bin/true"]).exec_fails();
}

fn ttl_stops_it_by_itself(t: &Ctx) {
    let _c = Cleanup(t);
    let name = t.id("ttl");
    start(
        t,
        &["--ttl", "2s"],
        &name,
        &["/bin/husk-probe", "sleep", "600"],
    );
    let l = list(t);
    assert_eq!(l.len(), 1, "{l:?}");
    assert!(l[0]["ttl"].as_u64().is_some_and(|s| s <= 2), "{}", l[0]);
    let pid = l[0]["pid"].as_i64().unwrap();
    let watcher = l[0]["watcher"].as_i64().unwrap();
    t.wait_for("the ttl to stop the instance", || list(t).is_empty());
    nothing_left(t, &name, &[pid, watcher]);
}

fn same_name_twice_fails_cleanly(t: &Ctx) {
    let _c = Cleanup(t);
    let name = t.id("dup");
    start(t, &[], &name, &["/bin/husk-probe", "sleep", "600"]);
    let before = list(t);
    let out = t
        .rt(&["instance", "start", image(), &name, "/bin/true"])
        .fails();
    assert!(out.stderr.contains("already exists"), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    // The first one is untouched.
    let after = list(t);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["pid"], before[0]["pid"]);
    assert_eq!(after[0]["status"], "running");
    t.rt(&["instance", "stop", "--all"]).ok();
    assert!(list(t).is_empty());
    t.rt(&["instance", "stop", &name]).fails();
}

fn bad_names_and_ttls_are_usage_errors(t: &Ctx) {
    for name in ["-x", "a/b", "a:b"] {
        t.rt(&["instance", "start", image(), name, "/bin/true"])
            .code(2);
    }
    t.rt(&[
        "instance",
        "start",
        "--ttl",
        "5x",
        image(),
        "n",
        "/bin/true",
    ])
    .code(2);
    assert!(list(t).is_empty());
    assert!(!Path::new(&instances_dir(t)).join("n.json").exists());
}

/// Live processes (not zombies) whose environment holds `mark` (KEY=VALUE); the test runs as
/// root in both modes, so every /proc/PID/environ is readable.
pub fn marked(mark: &str) -> Vec<i64> {
    let mut pids: Vec<i64> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i64>().ok())
        .filter(|&p| {
            std::fs::read(format!("/proc/{p}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|kv| kv == mark.as_bytes()))
        })
        .filter(|&p| !gone(p))
        .collect();
    pids.sort_unstable();
    pids
}

/// Issue 14: `instance stop` after `exec -d` or `exec sh -c 'cmd &'` failed as root ("remove
/// cgroup: Device or resource busy", the instance wedged) and left the processes running
/// rootless. Every process of the instance must end, and nothing may be left.
fn stop_ends_every_process(t: &Ctx) {
    let _c = Cleanup(t);
    let name = t.id("bg");
    let mark = format!("HUSK_MARK={}", t.id("m"));
    start(
        t,
        &["--env", &mark],
        &name,
        &["/bin/husk-probe", "sleep", "600"],
    );
    let uri = format!("instance://{name}");
    t.rt(&["exec", "-d", &uri, "/bin/husk-probe", "sleep", "600"])
        .ok();
    let bg = "/bin/husk-probe sleep 600 >/dev/null 2>&1 &";
    t.rt(&["exec", &uri, "/bin/sh", "-c", bg]).ok();
    t.wait_for("three processes in the instance", || {
        marked(&mark).len() >= 3
    });
    let pids = marked(&mark);
    let watcher = list(t)[0]["watcher"].as_i64().unwrap();
    t.rt(&["instance", "stop", "--timeout", "5", &name]).ok();
    nothing_left(t, &name, &pids);
    assert!(gone(watcher) || marked(&mark).is_empty());
    // The name is free again.
    start(t, &[], &name, &["/bin/husk-probe", "sleep", "600"]);
    t.rt(&["instance", "stop", "--signal", "KILL", &name]).ok();
    assert!(list(t).is_empty());
}

/// Issue 14: an instance whose program exits (a crash) vanished from `list` with no status; it
/// stays listed as exited with its exit code until stopped, and `instance logs` shows its output.
fn exited_instance_stays_listed_with_its_status_and_log(t: &Ctx) {
    let _c = Cleanup(t);
    let name = t.id("crash");
    let script = "echo boom-out; echo boom-err >&2; exit 3";
    start(t, &[], &name, &["/bin/sh", "-c", script]);
    t.wait_for("the instance to be listed as exited", || {
        list(t).first().is_some_and(|i| i["status"] == "exited")
    });
    let i = &list(t)[0];
    assert_eq!(i["name"], name.as_str(), "{i}");
    assert_eq!(i["exit_code"], 3, "{i}");
    let table = t.rt(&["instance", "list"]).ok();
    assert!(table.stdout.contains("exited (3)"), "{table}");
    let logs = t.rt(&["instance", "logs", &name]).ok();
    assert!(logs.stdout.contains("boom-out"), "{logs}");
    assert!(logs.stdout.contains("boom-err"), "{logs}");
    let out = t
        .rt(&["exec", &format!("instance://{name}"), "/bin/true"])
        .exec_fails();
    assert!(out.stderr.contains("exited (status 3)"), "{out}");
    // Starting the name again says what to do; stop removes it.
    let again = t
        .rt(&["instance", "start", image(), &name, "/bin/true"])
        .fails();
    assert!(again.stderr.contains("instance stop"), "{again}");
    t.rt(&["instance", "stop", &name]).ok();
    assert!(list(t).is_empty());
    t.assert_nothing_left();
    t.rt(&["instance", "logs", "nope"]).fails();
}

/// Issue 14: `exec instance://NAME` passes the caller's environment (as Apptainer does); the
/// instance's own variables and --env still win.
fn exec_passes_the_callers_environment(t: &Ctx) {
    let _c = Cleanup(t);
    let name = t.id("env");
    start(
        t,
        &["--env", "FROM_START=s"],
        &name,
        &["/bin/husk-probe", "sleep", "600"],
    );
    let uri = format!("instance://{name}");
    let env = [("CALLER_VAR", "c1"), ("FROM_START", "caller")];
    let p = t
        .rt_env(&["exec", "-e", "GIVEN=g", &uri, "/bin/husk-probe"], &env)
        .ok()
        .probe();
    assert_eq!(p.env("CALLER_VAR").as_deref(), Some("c1"));
    assert_eq!(p.env("FROM_START").as_deref(), Some("s"));
    assert_eq!(p.env("GIVEN").as_deref(), Some("g"));
}

/// The SigIgn mask (hex) of `/proc/self/status` as `sh` inside sees it for a child.
fn sig_ignored(out: &str) -> u64 {
    let line = out.lines().find(|l| l.starts_with("SigIgn:")).unwrap_or("");
    u64::from_str_radix(line.trim_start_matches("SigIgn:").trim(), 16).unwrap_or(u64::MAX)
}

/// Issue 14: a signal the caller ignores (nohup, trap '') stayed ignored in the container's
/// program. It starts with default dispositions, as under runc.
fn exec_resets_signals_the_caller_ignores(t: &Ctx) {
    let _c = Cleanup(t);
    let name = t.id("sig");
    let launch = Launch {
        ignore_signals: true,
        ..Launch::default()
    };
    let out = t.spawn_with(
        &[
            "instance",
            "start",
            image(),
            &name,
            "/bin/husk-probe",
            "sleep",
            "600",
        ],
        None,
        &launch,
    );
    out.wait().ok();
    let uri = format!("instance://{name}");
    let status = ["/bin/cat", "/proc/self/status"];
    let mut args = vec!["exec", &uri];
    args.extend_from_slice(&status);
    let hup_usr1 = (1u64 << 0) | (1u64 << 9);
    let out = t.rt_with(&args, &launch).ok();
    assert_eq!(sig_ignored(&out.stdout) & hup_usr1, 0, "exec: {out}");
    let init = format!("/proc/{}/status", list(t)[0]["pid"]);
    let text = std::fs::read_to_string(init).unwrap();
    assert_eq!(sig_ignored(&text) & hup_usr1, 0, "init: {text}");
}

/// Issue 14: SIGKILL of an `exec` client left its process running in the instance.
fn killing_an_exec_client_ends_its_process(t: &Ctx) {
    let _c = Cleanup(t);
    let name = t.id("orph");
    start(t, &[], &name, &["/bin/husk-probe", "sleep", "600"]);
    let mark = format!("HUSK_MARK={}", t.id("x"));
    let uri = format!("instance://{name}");
    let client = t.spawn(
        &["exec", "-e", &mark, &uri, "/bin/husk-probe", "sleep", "600"],
        None,
    );
    t.wait_for("the exec'd process", || marked(&mark).len() == 1);
    let pid = marked(&mark)[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(client.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = client.wait_quiet();
    t.wait_for("the exec'd process to end with its client", || gone(pid));
    assert_eq!(
        list(t)[0]["status"],
        "running",
        "the instance itself runs on"
    );
}

/// Issue 14: the table's columns line up (a header cell as wide as its values) and `started` and
/// `expires` share one format.
fn list_table_lines_up(t: &Ctx) {
    let _c = Cleanup(t);
    let name = t.id("tbl");
    start(
        t,
        &["--ttl", "1h"],
        &name,
        &["/bin/husk-probe", "sleep", "600"],
    );
    let out = t.rt(&["instance", "list"]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for col in ["PID", "STATUS", "STARTED", "EXPIRES", "IMAGE"] {
        let at = lines[0].find(col).unwrap_or_else(|| panic!("{col}: {out}"));
        let cell = lines[1][at..].split_whitespace().next().unwrap_or("");
        assert!(!cell.is_empty(), "{col} has no value under it: {out}");
        assert_eq!(lines[1].as_bytes()[at - 1], b' ', "{col}: {out}");
    }
    let i = &list(t)[0];
    let (started, expires) = (i["started"].as_str().unwrap(), i["expires"].as_str());
    let expires = expires.unwrap_or_else(|| panic!("expires is a date: {i}"));
    assert_eq!(started.len(), expires.len(), "{i}");
    assert!(expires > started, "{i}");
}
