//! Resources and supervision: rlimits, fork and memory bombs, tmpfs fill, output flood, timeout
//! evasion.

use super::*;
use crate::both;

both!(
    rlimits_above_the_hard_limit,
    fork_bomb,
    memory_bomb,
    tmpfs_fill,
    output_flood,
    timeout_evasion_double_fork,
    timeout_evasion_setsid,
);

fn rlimits_above_the_hard_limit(t: &Ctx) {
    let a = python(t, "rlimits", &[], &[]);
    a.blocked(
        "prlimit64(",
        &["EPERM"],
        "raising a hard limit needs CAP_SYS_RESOURCE",
    );
    assert_eq!(
        a.fact("RLIMIT_NOFILE"),
        &serde_json::json!([256, 256]),
        "{}",
        a.dump()
    );
    assert_eq!(
        a.fact("RLIMIT_CORE"),
        &serde_json::json!([0, 0]),
        "{}",
        a.dump()
    );
    assert_eq!(
        a.fact("RLIMIT_FSIZE"),
        &serde_json::json!([64 << 20, 64 << 20]),
        "{}",
        a.dump()
    );
}

fn fork_bomb(t: &Ctx) {
    let a = python(
        t,
        "fork_bomb",
        &["2"],
        &["--pids-limit", "24", "--timeout", "20s"],
    );
    let most = a.fact("max_processes").as_u64().unwrap();
    assert!(
        most <= 24,
        "{}: {most} processes under --pids-limit 24",
        a.label
    );
    a.blocked("fork() by pid 1", &["EAGAIN"], "the pids limit is reached");
    let by = &a.record["limits"]["pids"]["enforced_by"];
    assert_eq!(a.record["timed_out"], false, "{}", a.dump());
    assert_pidns_empty(t, a.fact("pidns").as_str().unwrap(), &a.label);
    a.say(format!(
        "a forking-forever bomb peaked at {most} processes (limit 24, enforced by {by}); pid 1 exited and the pid namespace took every bomb process with it"
    ));
}

fn memory_bomb(t: &Ctx) {
    let a = python(t, "memory_bomb", &["1024"], &["--memory", "64M"]);
    let limits = &a.record["limits"]["memory_bytes"];
    let got = a
        .facts
        .get("allocated_mb")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    assert!(
        got <= 64,
        "{}: allocated {got} MB under --memory 64M",
        a.label
    );
    if a.record["oom_killed"] == true {
        assert_eq!(a.record["exit_code"], 137, "{}", a.dump());
        a.say(format!(
            "allocated up to {got} MB of 1024 → OOM-killed: {}",
            limits["enforced_by"]
        ));
    } else {
        assert_eq!(a.fact("stopped_by"), "MemoryError", "{}", a.dump());
        a.say(format!(
            "allocated {got} MB of 1024 → MemoryError: {} (record: {limits})",
            limits["enforced_by"]
        ));
    }
    assert!(
        limits["enforced_by"].is_string(),
        "{}: nothing enforced the memory limit: {limits}",
        a.label
    );
}

fn tmpfs_fill(t: &Ctx) {
    let script = "dd if=/dev/zero of=/tmp/fill bs=1M count=64 2>/dev/null; \
        f tmp_kb \"$(du -k /tmp/fill | cut -f1)\"; \
        dd if=/dev/zero of=/dev/shm/fill bs=1M count=100 2>/dev/null; \
        f shm_kb \"$(du -k /dev/shm/fill | cut -f1)\"; \
        (dd if=/dev/zero of=/workspace/big bs=1M count=80 2>/dev/null); f dd_status $?";
    let a = busybox(t, "tmpfs_fill", script, &["--tmp-size", "8M"]);
    let tmp = a.number("tmp_kb");
    let shm = a.number("shm_kb");
    assert!(tmp <= 8 * 1024, "{}: /tmp took {tmp} kB (8M)", a.label);
    assert!(
        shm <= 64 * 1024,
        "{}: /dev/shm took {shm} kB (64M)",
        a.label
    );
    let big = fs::metadata(workspace(t).join("big"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(
        big <= 64 << 20,
        "{}: a {big}-byte file in the workspace",
        a.label
    );
    assert_eq!(
        a.number("dd_status"),
        128 + 25,
        "{}: want SIGXFSZ",
        a.dump()
    );
    a.say(format!(
        "/tmp full at {tmp} kB (--tmp-size 8M), /dev/shm at {shm} kB (64M tmpfs), one workspace file stopped at {big} bytes by RLIMIT_FSIZE (SIGXFSZ)"
    ));
}

fn output_flood(t: &Ctx) {
    let result = t.dir.join("flood.json");
    let ws = workspace(t);
    let out = t.rt(&[
        "exec",
        "--sandbox",
        "--workspace",
        ws.to_str().unwrap(),
        "--timeout",
        "2s",
        "--output-limit",
        "64k",
        "--result",
        result.to_str().unwrap(),
        host().rootfs.to_str().unwrap(),
        "sh",
        "-c",
        "(yes BBBBBBBBBBBBBBBB >&2 &); echo x > /dev/tty; echo x > /dev/console; yes AAAAAAAAAAAAAAAA",
    ]);
    let l = label(t, "output_flood");
    let r: Value = serde_json::from_slice(&fs::read(&result).unwrap()).unwrap();
    assert_eq!(out.code, 137, "{l}: {out}");
    assert_eq!(
        out.stdout.len(),
        64 << 10,
        "{l}: stdout {} bytes",
        out.stdout.len()
    );
    let flood_err = out.stderr.matches("BBBB").count() * 4;
    assert!(
        flood_err <= 64 << 10,
        "{l}: {flood_err} bytes of stderr flood passed"
    );
    assert_eq!(r["timed_out"], true, "{l}: {r}");
    assert_eq!(r["stdout_truncated"], true, "{l}: {r}");
    assert_eq!(r["stderr_truncated"], true, "{l}: {r}");
    let seen = r["stdout_bytes"].as_u64().unwrap();
    assert!(
        seen > 1 << 20,
        "{l}: the flood was throttled, not drained: {r}"
    );
    println!(
        "{l}: yes(1) on stdout and stderr for 2 s → {seen} bytes written, 64 KiB passed per stream, the rest drained and dropped; /dev/tty, /dev/console: no terminal; killed at the timeout"
    );
}

fn timeout_evasion_double_fork(t: &Ctx) {
    let a = python(t, "timeout_double_fork", &["x"], &["--timeout", "1s"]);
    assert_eq!(a.fact("daemonized"), true, "{}", a.dump());
    assert_eq!(a.record["timed_out"], true, "{}", a.dump());
    assert_eq!(a.record["exit_code"], 137, "{}", a.dump());
    assert_pidns_empty(t, a.fact("pidns").as_str().unwrap(), &a.label);
    a.say("a double-forked daemon ignoring SIGTERM/SIGHUP/SIGINT → killed at the 1 s timeout with the whole container (SIGKILL to the cgroup or the pid namespace)");
}

fn timeout_evasion_setsid(t: &Ctx) {
    let a = python(t, "timeout_setsid", &["x"], &["--timeout", "20s"]);
    assert_eq!(a.fact("detached"), true, "{}", a.dump());
    assert_eq!(a.record["timed_out"], false, "{}", a.dump());
    assert_pidns_empty(t, a.fact("pidns").as_str().unwrap(), &a.label);
    a.say("setsid() + a second fork + ignored signals + a kworker name, then pid 1 returned → the detached session died with the pid namespace; husk returned at once");
}
