//! cgroup resource limits: memory (OOM kill → 137), pids (fork fails with EAGAIN), and `update`.
//! Root only: rootless on a cgroup v1 host gets no cgroups.

use crate::harness::Ctx;
use crate::root_only;
use serde_json::json;

root_only!(
    memory_limit_oom_kills,
    pids_limit_stops_forks,
    update_memory_limit,
    update_pids_limit_stops_forks,
    events_stats_prints_one_record,
    init_is_in_every_hierarchy_of_its_cgroup,
);

const MIB: u64 = 1 << 20;

fn memory_limit_oom_kills(t: &Ctx) {
    let b = t
        .bundle()
        .set("/linux/resources/memory", json!({"limit": 32 * MIB}))
        .probe(&["alloc", "512"]);
    let id = t.id("oom");
    let dir = t.write(&b);
    let out = t.rt(&["run", "--bundle", dir.to_str().unwrap(), &id]);
    assert_eq!(out.code, 128 + 9, "OOM-killed init: {out}");
    assert!(
        !out.stdout.contains("allocated_mb"),
        "allocation survived: {out}"
    );
}

fn pids_limit_stops_forks(t: &Ctx) {
    let b = t
        .bundle()
        .set("/linux/resources/pids", json!({"limit": 8}))
        .probe(&["fork", "32"]);
    let id = t.id("pids");
    let dir = t.write(&b);
    let r = t
        .rt(&["run", "--bundle", dir.to_str().unwrap(), &id])
        .ok()
        .probe();
    let started = r.get("started").as_u64().unwrap();
    assert!(
        started < 8,
        "pids.max 8 let {started} children start: {}",
        r.0
    );
    assert_eq!(r.get("error"), "EAGAIN", "{}", r.0);
}

fn update_memory_limit(t: &Ctx) {
    let b = t
        .bundle()
        .set("/linux/resources/memory", json!({"limit": 64 * MIB}))
        .probe(&["sleep", "600"]);
    let id = t.start_running(&b, "upd");
    let limit = |t: &Ctx| {
        let r = t
            .rt(&[
                "exec",
                &id,
                "/bin/husk-probe",
                "read",
                "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            ])
            .ok()
            .probe();
        r.get("data").as_str().unwrap_or("").trim().to_string()
    };
    assert_eq!(limit(t), (64 * MIB).to_string());
    t.rt(&["update", "--memory", &(128 * MIB).to_string(), &id])
        .ok();
    assert_eq!(limit(t), (128 * MIB).to_string());
    // containerd's form: resources JSON on stdin.
    let res = json!({"memory": {"limit": 96 * MIB}}).to_string();
    t.rt_stdin(&["update", "--resources", "-", &id], &res).ok();
    assert_eq!(limit(t), (96 * MIB).to_string());
}

fn update_pids_limit_stops_forks(t: &Ctx) {
    let id = t.start_running(&t.bundle().probe(&["sleep", "600"]), "updp");
    t.rt(&["update", "--pids-limit", "5", &id]).ok();
    // The init and the exec'd probe count too: at most 3 children fit.
    let r = t
        .rt(&["exec", &id, "/bin/husk-probe", "fork", "32"])
        .ok()
        .probe();
    let started = r.get("started").as_u64().unwrap();
    assert!(
        started < 5,
        "pids.max 5 let {started} children start: {}",
        r.0
    );
    assert_eq!(r.get("error"), "EAGAIN", "{}", r.0);
}

fn events_stats_prints_one_record(t: &Ctx) {
    let id = t.start_running(&t.bundle().probe(&["sleep", "600"]), "evs");
    let out = t.rt(&["events", "--stats", &id]).ok();
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "one record: {out}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["type"], "stats", "{out}");
    assert_eq!(v["id"], id.as_str(), "{out}");
    assert!(v["data"].is_object(), "{out}");
}

/// On v1 the init, and a process `exec` starts, move themselves into the container's cgroup
/// (writing 0 to each hierarchy's `tasks`; a pid written to cgroup.procs waits for an RCU grace
/// period), unless a prestart hook must find the init there first, when the parent moves it.
/// Either way each ends up in every controller hierarchy of the container's cgroup.
fn init_is_in_every_hierarchy_of_its_cgroup(t: &Ctx) {
    // "nomount": no cgroup mount in the config, so the init joins just before pivot_root.
    for (what, hook, mount) in [
        ("self", false, true),
        ("moved", true, true),
        ("nomount", false, false),
    ] {
        let mut b = t.bundle().probe(&["sleep", "600"]);
        if hook {
            b = b.set("/hooks/prestart", json!([{"path": "/bin/true"}]));
        }
        if !mount {
            b = b.edit(|c| {
                let mounts = c["mounts"].as_array_mut().unwrap();
                mounts.retain(|m| m["type"] != "cgroup" && m["type"] != "cgroup2");
            });
        }
        let id = t.start_running(&b, what);
        let pid = t.state(&id)["pid"].as_u64().unwrap();
        assert_in_cgroup(pid, &id, &format!("{what} init"));
        let pid_file = t.dir.join(format!("{what}-exec.pid"));
        let pid_arg = pid_file.to_str().unwrap();
        t.rt(&[
            "exec",
            "--detach",
            "--pid-file",
            pid_arg,
            &id,
            "/bin/husk-probe",
            "sleep",
            "600",
        ])
        .ok();
        let exec_pid = std::fs::read_to_string(&pid_file).unwrap();
        assert_in_cgroup(
            exec_pid.trim().parse().unwrap(),
            &id,
            &format!("{what} exec"),
        );
        t.rt(&["delete", "--force", &id]).ok();
    }
}

/// Every controller hierarchy of `pid` (v1), or its unified line where there is none (v2), names
/// the container's cgroup.
fn assert_in_cgroup(pid: u64, id: &str, what: &str) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let controller = |l: &&str| {
        l.split(':')
            .nth(1)
            .is_some_and(|c| !c.is_empty() && !c.starts_with("name="))
    };
    let mut lines: Vec<&str> = text.lines().filter(controller).collect();
    if lines.is_empty() {
        lines = text.lines().filter(|l| l.starts_with("0::")).collect();
    }
    assert!(!lines.is_empty(), "{what}: {text}");
    for line in lines {
        assert!(
            line.ends_with(&format!("/{id}")),
            "{what} not in its cgroup: {line}\n{text}"
        );
    }
}
