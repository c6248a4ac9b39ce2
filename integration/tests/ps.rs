//! `ps`: the container's processes, as a table (ps -ef columns) or a JSON array of host pids.
//! It reads the container's cgroup; rootless on a cgroup v1 host has none, so there it must
//! either work anyway or fail cleanly (runc fails).

use crate::both;
use crate::harness::{has_cgroups, Ctx};
use serde_json::Value;

both!(ps_lists_init_and_exec, ps_table_has_header);

fn ps_lists_init_and_exec(t: &Ctx) {
    let id = t.start_running(&t.bundle().probe(&["sleep", "600"]), "ps");
    let pid = t.state(&id)["pid"].as_i64().unwrap();
    let exec = t.spawn(&["exec", &id, "/bin/husk-probe", "sleep", "600"], None);
    let out = t.rt(&["ps", "--format", "json", &id]);
    if !has_cgroups(t.mode) && out.code != 0 {
        out.fails();
        drop(exec);
        return;
    }
    let out = out.ok();
    let pids: Vec<i64> = out
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    assert!(pids.contains(&pid), "init {pid} in {pids:?}");
    t.wait_for("the exec'd process to show up", || {
        let v = t.rt(&["ps", "--format", "json", &id]).ok().json();
        v.as_array().is_some_and(|a| a.len() >= 2)
    });
    t.rt(&["kill", &id, "KILL"]).ok();
    exec.wait();
}

fn ps_table_has_header(t: &Ctx) {
    let id = t.start_running(&t.bundle().probe(&["sleep", "600"]), "pst");
    let pid = t.state(&id)["pid"].to_string();
    let out = t.rt(&["ps", &id]);
    if !has_cgroups(t.mode) && out.code != 0 {
        out.fails();
        return;
    }
    let out = out.ok();
    let mut lines = out.stdout.lines();
    let header = lines.next().unwrap_or("");
    assert!(header.contains("PID") && header.contains("CMD"), "{out}");
    assert!(
        lines.any(|l| l.split_whitespace().nth(1) == Some(pid.as_str())),
        "init pid {pid} listed: {out}"
    );
}
