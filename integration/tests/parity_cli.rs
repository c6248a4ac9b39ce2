//! runc parity of the command line (issue 13, item 12): formats and flags runc's users and its own
//! integration suite parse. Each case also runs against runc (HUSK_RUNTIME=runc), except the
//! `checkpoint` one (runc has CRIU).

use crate::harness::Ctx;
use crate::{both, root_only};
use serde_json::json;

both!(
    list_json_keys_in_runc_order,
    debug_names_runc_steps,
    help_has_runc_layout,
    checkpoint_is_refused_by_name,
    seccomp_profile_denying_close_range_runs,
);
root_only!(
    events_json_keys_in_runc_order,
    exec_refuses_paused_unless_ignore_paused,
    exec_cgroup_joins_a_sub_cgroup,
    update_takes_runc_spellings,
    update_lowers_cfs_period_and_quota_under_a_parent_limit,
    unified_resources_on_v1_fail_create,
);

/// Whether `keys` appear in `text` in this order.
fn in_order(text: &str, keys: &[&str]) -> bool {
    let at: Vec<Option<usize>> = keys
        .iter()
        .map(|k| text.find(&format!("\"{k}\":")))
        .collect();
    at.iter().all(Option::is_some) && at.windows(2).all(|w| w[0] < w[1])
}

fn list_json_keys_in_runc_order(t: &Ctx) {
    let id = t.start_running(&t.bundle().probe(&["sleep", "600"]), "lsj");
    let out = t.rt(&["list", "--format", "json"]).ok();
    let keys = [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
    ];
    assert!(in_order(&out.stdout, &keys), "{out}");
    assert!(out.stdout.contains(&format!("\"id\":\"{id}\"")), "{out}");
}

fn events_json_keys_in_runc_order(t: &Ctx) {
    let id = t.start_running(&t.bundle().probe(&["sleep", "600"]), "evj");
    let out = t.rt(&["events", "--stats", &id]).ok();
    let want = format!("{{\"type\":\"stats\",\"id\":\"{id}\",\"data\":");
    assert!(out.stdout.starts_with(&want), "{out}");
}

/// `--debug` names runc's steps (tools and runc's suite grep for them), for run and exec, both to
/// stderr and to a `--log` file.
fn debug_names_runc_steps(t: &Ctx) {
    let b = t.bundle().probe(&["exit", "0"]);
    let dir = t.write(&b);
    let out = t
        .rt(&[
            "--debug",
            "run",
            "--bundle",
            dir.to_str().unwrap(),
            &t.id("dbg"),
        ])
        .ok();
    for step in [
        "nsexec container setup",
        "child process in init()",
        "init: closing the pipe to signal completion",
    ] {
        assert!(out.stderr.contains(step), "no {step:?}: {out}");
    }
    assert!(out.stderr.contains("level=debug"), "{out}");
    let id = t.start_running(&t.bundle().probe(&["sleep", "600"]), "dbge");
    let log = t.dir.join("exec.log");
    t.rt(&[
        "--debug",
        "--log",
        log.to_str().unwrap(),
        "exec",
        &id,
        "/bin/husk-probe",
        "exit",
        "0",
    ])
    .ok();
    let text = std::fs::read_to_string(&log).unwrap();
    for step in [
        "nsexec container setup",
        "child process in init()",
        "setns_init: about to exec",
    ] {
        assert!(text.contains(step), "no {step:?} in the log: {text}");
    }
}

/// `-h` starts with runc's NAME section, the verb's name on its second line; an unknown verb says
/// runc's "No help topic".
fn help_has_runc_layout(t: &Ctx) {
    let top = t.rt(&["-h"]).ok();
    let lines: Vec<&str> = top.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"NAME:"), "{top}");
    assert!(
        lines[1].contains(" - Open Container Initiative runtime"),
        "{top}"
    );
    for verb in ["exec", "list", "update", "checkpoint", "restore"] {
        let out = t.rt(&[verb, "-h"]).ok();
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines.first(), Some(&"NAME:"), "{out}");
        assert!(lines[1].contains(&format!(" {verb} - ")), "{out}");
    }
    let out = t.rt(&["foo", "-h"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("No help topic for 'foo'"), "{out}");
}

/// husk has no CRIU: checkpoint fails, repeating what it was asked (runc's suite looks for the
/// flag it got wrong in the message).
fn checkpoint_is_refused_by_name(t: &Ctx) {
    let out = t
        .rt(&["checkpoint", "--parent-path", "/nowhere", "c1"])
        .fails();
    assert!(out.stderr.contains("--parent-path"), "{out}");
    assert!(out.stderr.contains("not supported"), "{out}");
}

/// runc's wording for exec into a paused container; `--ignore-paused` lets it start frozen and
/// run after `resume`.
fn exec_refuses_paused_unless_ignore_paused(t: &Ctx) {
    let id = t.start_running(&t.bundle().probe(&["sleep", "600"]), "xpa");
    t.rt(&["pause", &id]).ok();
    let out = t
        .rt(&["exec", &id, "/bin/husk-probe", "exit", "0"])
        .exec_fails();
    assert!(
        out.stderr.contains("cannot exec in a paused container"),
        "{out}"
    );
    let running = t.spawn(
        &[
            "exec",
            "--ignore-paused",
            &id,
            "/bin/husk-probe",
            "exit",
            "7",
        ],
        None,
    );
    // Not refused: it runs (frozen or not yet, either way) and finishes once resumed.
    t.rt(&["resume", &id]).ok();
    running.wait().code(7);
}

/// The container's cgroup path in the v1 memory hierarchy (the harness's default cgroupsPath).
fn memory_dir(t: &Ctx, id: &str) -> std::path::PathBuf {
    let pid = t.state(id)["pid"].as_u64().unwrap();
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let rel = text
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
        .expect("a v1 memory hierarchy");
    std::path::Path::new("/sys/fs/cgroup/memory").join(rel.trim_start_matches('/'))
}

/// `exec --cgroup [CONTROLLERS:]PATH` joins a sub-cgroup of the container's; a path out of it,
/// a missing one and an unknown controller fail with runc's words.
fn exec_cgroup_joins_a_sub_cgroup(t: &Ctx) {
    if !std::path::Path::new("/sys/fs/cgroup/memory").is_dir() {
        return crate::harness::skip("no cgroup v1 memory hierarchy");
    }
    let id = t.start_running(&t.bundle().probe(&["sleep", "600"]), "xcg");
    let sub = memory_dir(t, &id).join("submem");
    std::fs::create_dir(&sub).unwrap();
    let read_self = |cg: &str| {
        t.rt(&[
            "exec",
            "--cgroup",
            cg,
            &id,
            "/bin/husk-probe",
            "read",
            "/proc/self/cgroup",
        ])
    };
    let out = read_self("memory:submem").ok();
    let text = out.probe().get("data").as_str().unwrap_or("").to_string();
    let mem = text.lines().find(|l| l.contains(":memory:")).unwrap_or("");
    assert!(mem.ends_with(&format!("{id}/submem")), "{text}");
    let cpu = text.lines().find(|l| l.contains(":cpu:")).unwrap_or("");
    assert!(cpu.ends_with(&id), "other hierarchies stay: {text}");
    for (value, words) in [
        ("..", " .. is not a sub cgroup path"),
        ("nonexistent", "/nonexistent/cgroup.procs: no such file "),
        ("whaaat:/", "unknown controller "),
    ] {
        let out = read_self(value).exec_fails();
        assert!(out.stderr.contains(words), "{value}: {out}");
    }
    // The sub-cgroup is the test's to remove (the container did not make it).
    std::fs::remove_dir(&sub).unwrap();
    t.rt(&["delete", "--force", &id]).ok();
}

fn cgroup_value(t: &Ctx, id: &str, hierarchy: &str, file: &str) -> String {
    let dir = memory_dir(t, id);
    let dir = std::path::Path::new("/sys/fs/cgroup")
        .join(hierarchy)
        .join(dir.strip_prefix("/sys/fs/cgroup/memory").unwrap());
    std::fs::read_to_string(dir.join(file))
        .unwrap()
        .trim()
        .to_string()
}

/// runc's flag spellings: `--cpu-share`, and `-1` for an unlimited memory limit.
fn update_takes_runc_spellings(t: &Ctx) {
    let b = t
        .bundle()
        .set("/linux/resources/memory", json!({"limit": 64 << 20}))
        .probe(&["sleep", "600"]);
    let id = t.start_running(&b, "upr");
    t.rt(&["update", "--cpu-share", "200", &id]).ok();
    assert_eq!(cgroup_value(t, &id, "cpu", "cpu.shares"), "200");
    t.rt(&["update", "--memory", "-1", &id]).ok();
    let limit: u64 = cgroup_value(t, &id, "memory", "memory.limit_in_bytes")
        .parse()
        .unwrap();
    assert!(limit > 1 << 40, "unlimited: {limit}");
}

/// Under a parent limited to 50% of 100 ms, lowering the period to 10 ms with a 3 ms quota
/// needs the quota written before the period (EINVAL the other way round).
fn update_lowers_cfs_period_and_quota_under_a_parent_limit(t: &Ctx) {
    let parent = format!("husk-test-pod-{}", std::process::id());
    let pdir = std::path::Path::new("/sys/fs/cgroup/cpu").join(&parent);
    if !pdir.parent().unwrap().is_dir() {
        return crate::harness::skip("no cgroup v1 cpu hierarchy");
    }
    let _ = std::fs::create_dir(&pdir);
    std::fs::write(pdir.join("cpu.cfs_quota_us"), "50000").unwrap();
    let b = t
        .bundle()
        .set("/linux/cgroupsPath", json!(format!("/{parent}/c1")))
        .probe(&["sleep", "600"]);
    let id = t.start_running(&b, "pod");
    t.rt(&[
        "update",
        "--cpu-period",
        "10000",
        "--cpu-quota",
        "3000",
        &id,
    ])
    .ok();
    let leaf = pdir.join("c1");
    let read = |f: &str| std::fs::read_to_string(leaf.join(f)).unwrap();
    assert_eq!(read("cpu.cfs_period_us").trim(), "10000");
    assert_eq!(read("cpu.cfs_quota_us").trim(), "3000");
    t.rt(&["delete", "--force", &id]).ok();
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(hierarchy.path().join(&parent));
    }
}

/// A profile that predates close_range (or denies it, as runc's ENOSYS test's does) still runs:
/// the init closes inherited fds before it loads the filter (before: "close inherited fds: EPERM").
fn seccomp_profile_denying_close_range_runs(t: &Ctx) {
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW",
                         "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO"}]});
    let b = t
        .bundle()
        .set("/linux/seccomp", profile.clone())
        .probe(&["exit", "0"]);
    let dir = t.write(&b);
    t.rt(&["run", "--bundle", dir.to_str().unwrap(), &t.id("scr")])
        .ok();
    let b = t
        .bundle()
        .set("/linux/seccomp", profile)
        .probe(&["sleep", "600"]);
    let id = t.start_running(&b, "scre");
    t.rt(&["exec", &id, "/bin/husk-probe", "exit", "0"]).ok();
}

/// `linux.resources.unified` on a v1 host fails create with runc's "invalid configuration".
fn unified_resources_on_v1_fail_create(t: &Ctx) {
    if !std::path::Path::new("/sys/fs/cgroup/memory").is_dir() {
        return crate::harness::skip("not a cgroup v1 host");
    }
    let b = t
        .bundle()
        .set("/linux/resources/unified", json!({"memory.max": "1000000"}))
        .probe(&["exit", "0"]);
    let dir = t.write(&b);
    let out = t
        .rt(&["create", "--bundle", dir.to_str().unwrap(), &t.id("uni")])
        .fails();
    assert!(out.stderr.contains("invalid configuration"), "{out}");
}
