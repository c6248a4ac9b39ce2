//! `husk instance start|list|stop` and `husk exec instance://NAME`: background launcher
//! containers, each with a watcher that logs its output and enforces --ttl.

use crate::both;
use crate::harness::{host, host_ns, Ctx, Probe};
use serde_json::Value;
use std::path::{Path, PathBuf};

both!(
    start_list_exec_log_stop,
    ttl_stops_it_by_itself,
    same_name_twice_fails_cleanly,
    bad_names_and_ttls_are_usage_errors,
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
fn gone(pid: i64) -> bool {
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
