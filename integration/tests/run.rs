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
