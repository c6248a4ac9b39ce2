//! `run` in the foreground: exit status, signals, stdio passthrough, and nothing left behind.

use crate::both;
use crate::harness::Ctx;

both!(
    exit_code_propagates,
    killed_by_signal_is_128_plus_n,
    stdout_and_stderr_pass_through,
    stdin_passes_through,
    run_removes_container,
    keep_leaves_stopped_container,
    process_starts_with_no_blocked_or_ignored_signals,
    cgroup_namespace_is_rooted_at_the_containers_cgroup,
);

fn run(t: &Ctx, args: &[&str]) -> crate::harness::Out {
    let b = t.bundle().probe(args);
    let id = t.id("run");
    let dir = t.write(&b);
    t.rt(&["run", "--bundle", dir.to_str().unwrap(), &id])
}

fn exit_code_propagates(t: &Ctx) {
    run(t, &["exit", "3"]).code(3);
    run(t, &["exit", "0"]).code(0);
    run(t, &["exit", "255"]).code(255);
}

fn killed_by_signal_is_128_plus_n(t: &Ctx) {
    let b = t.bundle().probe(&["sleep", "600"]);
    let id = t.id("sig");
    let dir = t.write(&b);
    let running = t.spawn(&["run", "--bundle", dir.to_str().unwrap(), &id], None);
    t.wait_status(&id, "running");
    t.rt(&["kill", &id, "KILL"]).ok();
    running.wait().code(128 + 9);
}

fn stdout_and_stderr_pass_through(t: &Ctx) {
    let out = run(t, &["echo", "hello", "world"]).ok();
    assert_eq!(out.stdout, "hello world\n");
    let b = t
        .bundle()
        .args(&["/bin/sh", "-c", "echo to-stderr >&2; echo to-stdout"]);
    let id = t.id("err");
    let dir = t.write(&b);
    let out = t.rt(&["run", "--bundle", dir.to_str().unwrap(), &id]).ok();
    assert_eq!(out.stdout, "to-stdout\n");
    assert!(out.stderr.contains("to-stderr"), "{out}");
}

fn stdin_passes_through(t: &Ctx) {
    let b = t.bundle().probe(&["cat"]);
    let id = t.id("in");
    let dir = t.write(&b);
    let out = t
        .rt_stdin(
            &["run", "--bundle", dir.to_str().unwrap(), &id],
            "line one\nline two\n",
        )
        .ok();
    assert_eq!(out.stdout, "line one\nline two\n");
}

fn run_removes_container(t: &Ctx) {
    run(t, &["exit", "0"]).ok();
    run(t, &["exit", "4"]).code(4);
    t.assert_nothing_left();
}

fn keep_leaves_stopped_container(t: &Ctx) {
    let b = t.bundle().probe(&["exit", "0"]);
    let id = t.id("keep");
    let dir = t.write(&b);
    t.rt(&["run", "--keep", "--bundle", dir.to_str().unwrap(), &id])
        .ok();
    assert_eq!(t.state(&id)["status"], "stopped");
    t.rt(&["delete", &id]).ok();
    t.assert_nothing_left();
}

/// Regression (found under Slurm: scancel's SIGTERM stayed pending): a foreground `run` blocks
/// the signals it forwards, and Rust ignores SIGPIPE; the container's program must start with an
/// empty signal mask and SIGPIPE at its default, as under runc. busybox sh itself ignores SIGQUIT.
fn process_starts_with_no_blocked_or_ignored_signals(t: &Ctx) {
    let b = t.bundle().args(&[
        "/bin/sh",
        "-c",
        "grep -E '^Sig(Blk|Ign):' /proc/self/status",
    ]);
    let id = t.id("sigmask");
    let dir = t.write(&b);
    let out = t.rt(&["run", "--bundle", dir.to_str().unwrap(), &id]).ok();
    let field = |name: &str| -> u64 {
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {out}"));
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    assert_eq!(
        field("SigBlk:"),
        0,
        "signals blocked in the container: {out}"
    );
    let sigpipe = 1u64 << (13 - 1);
    assert_eq!(
        field("SigIgn:") & sigpipe,
        0,
        "SIGPIPE ignored in the container: {out}"
    );
}

/// The init makes its cgroup namespace only once the parent has moved it into the container's
/// cgroup, so every hierarchy's path inside is "/" (as with runc), for the init and for `exec`.
/// (Root's init was once born in husk's own cgroup namespace and saw /husk/ID.)
fn cgroup_namespace_is_rooted_at_the_containers_cgroup(t: &Ctx) {
    let b = t
        .bundle()
        .edit(|c| {
            let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
            ns.retain(|n| n["type"] != "cgroup");
            ns.push(serde_json::json!({"type": "cgroup"}));
        })
        .probe(&["read", "/proc/self/cgroup"]);
    let paths = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.splitn(3, ':').nth(2))
            .map(str::to_string)
            .collect()
    };
    let id = t.id("cgns");
    let dir = t.write(&b);
    let r = t
        .rt(&["run", "--bundle", dir.to_str().unwrap(), &id])
        .ok()
        .probe();
    let text = r.get("data").as_str().unwrap_or_default().to_string();
    let seen = paths(&text);
    assert!(!seen.is_empty(), "no /proc/self/cgroup lines: {}", r.0);
    assert!(seen.iter().all(|p| p == "/"), "init sees {seen:?}");

    let b = t.bundle().probe(&["sleep", "600"]).edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "cgroup");
        ns.push(serde_json::json!({"type": "cgroup"}));
    });
    let id = t.start_running(&b, "cgnsx");
    let r = t
        .rt(&["exec", &id, "/bin/husk-probe", "read", "/proc/self/cgroup"])
        .ok()
        .probe();
    let seen = paths(r.get("data").as_str().unwrap_or_default());
    assert!(!seen.is_empty(), "no /proc/self/cgroup lines: {}", r.0);
    assert!(seen.iter().all(|p| p == "/"), "exec sees {seen:?}");
    t.rt(&["delete", "--force", &id]).ok();
}
