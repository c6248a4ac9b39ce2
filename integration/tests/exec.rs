//! `exec` into a running container: same namespaces, its own env/cwd/user, status passthrough.

use crate::harness::{host_ns, Ctx};
use crate::{both, root_only};
use serde_json::json;
use std::fs;

both!(
    exec_joins_container_namespaces,
    exec_env_and_cwd,
    exec_as_container_root,
    exec_exit_status,
    exec_process_json,
    exec_into_stopped_fails,
);
root_only!(exec_as_other_user);

fn sleeper(t: &Ctx) -> String {
    t.start_running(&t.bundle().probe(&["sleep", "600"]), "exec")
}

fn exec_joins_container_namespaces(t: &Ctx) {
    let id = sleeper(t);
    let pid = t.state(&id)["pid"].to_string();
    let p = t.rt(&["exec", &id, "/bin/husk-probe"]).ok().probe();
    for ns in ["pid", "mnt", "uts", "ipc", "net", "user"] {
        assert_eq!(
            p.ns(ns),
            host_ns(&pid, ns),
            "exec'd process is in the container's {ns} ns"
        );
    }
    assert_ne!(p.get("pid"), 1);
    let r = t
        .rt(&["exec", &id, "/bin/husk-probe", "read", "/proc/1/cmdline"])
        .ok()
        .probe();
    let cmdline = r.get("data").as_str().unwrap().replace('\0', " ");
    assert!(
        cmdline.contains("husk-probe sleep 600"),
        "pid 1 is the init: {cmdline}"
    );
}

fn exec_env_and_cwd(t: &Ctx) {
    let id = sleeper(t);
    let out = t
        .rt(&[
            "exec",
            "--env",
            "FOO=from-exec",
            "--cwd",
            "/tmp",
            &id,
            "/bin/husk-probe",
        ])
        .ok();
    let p = out.probe();
    assert_eq!(p.env("FOO").as_deref(), Some("from-exec"));
    assert_eq!(p.get("cwd"), "/tmp");
    // The config's env is inherited, --env adds to it.
    assert!(p.env("PATH").is_some());
}

fn exec_as_container_root(t: &Ctx) {
    let id = sleeper(t);
    let p = t
        .rt(&["exec", "--user", "0:0", &id, "/bin/husk-probe"])
        .ok()
        .probe();
    assert_eq!(p.get("uid"), 0);
    assert_eq!(p.get("gid"), 0);
}

fn exec_as_other_user(t: &Ctx) {
    let id = sleeper(t);
    let p = t
        .rt(&[
            "exec",
            "--user",
            "1001:1001",
            "--additional-gids",
            "5",
            &id,
            "/bin/husk-probe",
        ])
        .ok()
        .probe();
    assert_eq!(p.get("uid"), 1001);
    assert_eq!(p.get("gid"), 1001);
    assert!(
        p.get("groups").as_array().unwrap().contains(&json!(5)),
        "{}",
        p.get("groups")
    );
}

fn exec_exit_status(t: &Ctx) {
    let id = sleeper(t);
    t.rt(&["exec", &id, "/bin/husk-probe", "exit", "7"]).code(7);
    // Not pid 1, so the signal is delivered: 128 + SIGTERM.
    t.rt(&["exec", &id, "/bin/husk-probe", "raise", "15"])
        .code(128 + 15);
    assert_eq!(
        t.state(&id)["status"],
        "running",
        "exec'd failures leave the init alone"
    );
}

/// containerd's path: `exec --process FILE` with a runtime-spec process object.
fn exec_process_json(t: &Ctx) {
    let id = sleeper(t);
    let process = json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": ["/bin/husk-probe"],
        "env": ["PATH=/bin", "FROM_PROCESS_JSON=1"],
        "cwd": "/etc"
    });
    let path = t.dir.join("process.json");
    fs::write(&path, process.to_string()).unwrap();
    t.give(&path);
    let p = t
        .rt(&["exec", "--process", path.to_str().unwrap(), &id])
        .ok()
        .probe();
    assert_eq!(p.env("FROM_PROCESS_JSON").as_deref(), Some("1"));
    assert_eq!(p.get("cwd"), "/etc");
}

fn exec_into_stopped_fails(t: &Ctx) {
    let id = sleeper(t);
    t.rt(&["kill", &id, "KILL"]).ok();
    t.wait_status(&id, "stopped");
    t.rt(&["exec", &id, "/bin/husk-probe"]).exec_fails();
}
