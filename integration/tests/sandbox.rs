//! `husk exec IMAGE --sandbox`: the untrusted-code preset (docs/sandbox.md) on the busybox rootfs:
//! isolation (network, filesystem, environment, capabilities, no_new_privs, seccomp) and the
//! supervisor (timeout, output cap, exit status, the result record).

use crate::harness::{has_cgroups, host, Ctx, Out};
use crate::{both, root_only};
use serde_json::Value;

both!(
    network_has_only_loopback,
    root_is_read_only_and_only_the_workspace_is_writable,
    host_environment_never_reaches_the_code,
    no_capabilities_no_new_privs_seccomp_filter,
    timeout_kills_every_process_of_the_container,
    output_beyond_the_limit_is_dropped_and_recorded,
    exit_status_and_result_file_schema,
    conflicting_flags_are_a_usage_error,
    pids_limit_stops_a_fork_loop,
    sigterm_to_husk_ends_the_container,
    localhost_is_in_etc_hosts,
);

// Memory limits need a cgroup: root on this kind of host.
root_only!(
    oom_kill_is_recorded,
    root_sandbox_without_workspace_on_a_fresh_run
);

/// Every key docs/sandbox.md promises.
const KEYS: &[&str] = &[
    "exit_code",
    "signal",
    "timed_out",
    "oom_killed",
    "stdout_truncated",
    "stderr_truncated",
    "stdout_bytes",
    "stderr_bytes",
    "wall_ms",
    "cpu_user_ms",
    "cpu_sys_ms",
    "peak_memory_bytes",
    "peak_memory_source",
    "limits",
    "landlock",
    "host_uid",
    "host_gid",
];

fn image() -> &'static str {
    host().rootfs.to_str().unwrap()
}

fn sandbox(t: &Ctx, flags: &[&str], script: &str) -> Out {
    sandbox_env(t, flags, script, &[])
}

fn sandbox_env(t: &Ctx, flags: &[&str], script: &str, env: &[(&str, &str)]) -> Out {
    let mut args = vec!["exec", "--sandbox"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[image(), "sh", "-c", script]);
    t.rt_env(&args, env)
}

/// The record printed by --json (the last stdout is the record only).
fn record(out: &Out) -> Value {
    out.json()
}

fn network_has_only_loopback(t: &Ctx) {
    let out = sandbox(t, &[], "cat /proc/net/dev").ok();
    let ifaces: Vec<&str> = out
        .stdout
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(str::trim))
        .collect();
    assert_eq!(ifaces, ["lo"], "{out}");
}

fn root_is_read_only_and_only_the_workspace_is_writable(t: &Ctx) {
    let ws = t.mkdir(&t.dir.join("ws"));
    let script = "touch /x 2>/dev/null && echo root-writable; \
        touch /etc/x 2>/dev/null && echo etc-writable; \
        touch /workspace/made && echo ws-ok; \
        dd if=/dev/zero of=/tmp/big bs=1M count=100 2>/dev/null; \
        echo tmp=$(du -k /tmp/big | cut -f1); pwd; echo binds=$(grep -c husk-it /proc/self/mountinfo)";
    let out = sandbox(
        t,
        &["--workspace", ws.to_str().unwrap(), "--tmp-size", "8M"],
        script,
    );
    assert!(!out.stdout.contains("writable"), "{out}");
    assert!(out.stdout.contains("ws-ok"), "{out}");
    assert!(ws.join("made").exists(), "{out}");
    // The tmpfs is capped: 100M of zeros do not fit in 8M.
    let tmp: u64 = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("tmp="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no tmp= line: {out}"));
    assert!(tmp <= 8 * 1024, "{out}");
    assert!(out.stdout.contains("/workspace\n"), "{out}");
    // Of the test's directory (the caller's cwd) only the workspace is bound.
    assert!(out.stdout.contains("binds=1\n"), "{out}");
}

fn host_environment_never_reaches_the_code(t: &Ctx) {
    let env = [
        ("HUSK_TEST_SECRET", "hunter2"),
        ("HUSKENV_LEAK", "hunter2"),
        ("AWS_SECRET_ACCESS_KEY", "hunter2"),
    ];
    let out = sandbox_env(t, &["--env", "MINE=1"], "env", &env).ok();
    assert!(!out.stdout.contains("hunter2"), "{out}");
    let mut names: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    names.sort_unstable();
    // PWD and SHLVL are the shell's own.
    assert_eq!(
        names,
        ["HOME", "LANG", "MINE", "PATH", "PWD", "SHLVL"],
        "{out}"
    );
    assert!(out.stdout.contains("HOME=/workspace\n"), "{out}");
}

fn no_capabilities_no_new_privs_seccomp_filter(t: &Ctx) {
    let out = sandbox(t, &[], "cat /proc/self/status").ok();
    let field = |k: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}:")).map(str::trim))
            .unwrap_or_else(|| panic!("no {k}: {out}"))
            .to_string()
    };
    for c in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(c), "0000000000000000", "{c}: {out}");
    }
    assert_eq!(field("NoNewPrivs"), "1", "{out}");
    assert_eq!(field("Seccomp"), "2", "{out}");
    // The filter refuses what Docker's default refuses: unshare is EPERM.
    let out = sandbox(t, &[], "unshare -U true 2>&1; echo rc=$?").ok();
    assert!(!out.stdout.contains("rc=0"), "{out}");
}

fn survivors(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        // husk's own command line holds the marker too.
        .filter(|c| c.contains(marker) && !c.contains("--sandbox"))
        .collect()
}

fn timeout_kills_every_process_of_the_container(t: &Ctx) {
    let marker = format!("husk-sandbox-marker-{}", t.id("to"));
    let script = format!(
        "setsid sh -c 'sleep 600; : {marker}' </dev/null >/dev/null 2>&1 & \
         (sh -c 'sleep 600; : {marker}' &) ; sh -c 'sleep 600; : {marker}'"
    );
    let start = std::time::Instant::now();
    let out = sandbox(t, &["--timeout", "1s", "--json"], &script).code(137);
    assert!(start.elapsed().as_secs() < 30, "{out}");
    let r = record(&out);
    assert_eq!(r["timed_out"], true, "{out}");
    assert_eq!(r["signal"], "SIGKILL", "{out}");
    assert_eq!(r["exit_code"], 137, "{out}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let left = survivors(&marker);
    assert!(left.is_empty(), "still running: {left:?}\n{out}");
}

fn output_beyond_the_limit_is_dropped_and_recorded(t: &Ctx) {
    let result = t.dir.join("result.json");
    let script = "yes | head -c 200000; yes err | head -c 10 >&2";
    let out = sandbox(
        t,
        &["--output-limit", "1k", "--result", result.to_str().unwrap()],
        script,
    )
    .ok();
    assert_eq!(out.stdout.len(), 1024, "{out}");
    let r: Value = serde_json::from_slice(&std::fs::read(&result).unwrap()).unwrap();
    assert_eq!(r["stdout_truncated"], true, "{r}");
    assert_eq!(r["stdout_bytes"], 200000, "{r}");
    assert_eq!(r["stderr_truncated"], false, "{r}");
    assert_eq!(r["limits"]["output_bytes"]["value"], 1024, "{r}");
}

fn exit_status_and_result_file_schema(t: &Ctx) {
    let result = t.dir.join("result.json");
    let out = sandbox(
        t,
        &["--result", result.to_str().unwrap()],
        "echo out; exit 7",
    )
    .code(7);
    assert_eq!(out.stdout, "out\n", "{out}");
    let r: Value = serde_json::from_slice(&std::fs::read(&result).unwrap()).unwrap();
    for k in KEYS {
        assert!(r.get(k).is_some(), "record lacks {k}: {r}");
    }
    assert_eq!(r["exit_code"], 7, "{r}");
    assert_eq!(r["signal"], Value::Null, "{r}");
    assert_eq!(r["timed_out"], false, "{r}");
    let limits = &r["limits"];
    for k in [
        "memory_bytes",
        "cpus",
        "pids",
        "timeout_ms",
        "output_bytes",
        "tmp_bytes",
    ] {
        assert!(limits[k].get("value").is_some(), "{k}: {r}");
    }
    // Without a cgroup (rootless here) the record says what was not applied, never nothing.
    let has_cgroup = r["peak_memory_source"] == "cgroup";
    let not_applied = limits["not_applied"].as_array().unwrap();
    assert_eq!(not_applied.is_empty(), has_cgroup, "{r}");
    if !has_cgroup {
        assert_eq!(limits["pids"]["enforced_by"], "RLIMIT_NPROC", "{r}");
        assert!(out.stderr.contains("sandbox:"), "{out}");
    }
    // --json: the record on stdout with the streams in it.
    let out = sandbox(t, &["--json"], "echo hi; echo oops >&2; exit 3").code(3);
    let r = record(&out);
    assert_eq!(r["stdout"], "hi\n", "{out}");
    assert_eq!(r["stderr"], "oops\n", "{out}");
}

fn conflicting_flags_are_a_usage_error(t: &Ctx) {
    sandbox(t, &["--bind", "/etc:/x"], "true").code(2);
    sandbox(t, &["--net", "host"], "true").code(2);
    let out = t.rt(&["exec", "--timeout", "1s", image(), "true"]).code(2);
    assert!(out.stderr.contains("--sandbox"), "{out}");
}

fn pids_limit_stops_a_fork_loop(t: &Ctx) {
    let script = "for i in $(seq 20); do sleep 3 & done; echo all-started";
    let out = sandbox(t, &["--pids-limit", "8"], script);
    assert!(!out.stdout.contains("all-started"), "{out}");
    assert!(out.stderr.contains("can't fork"), "{out}");
    // The default (64) lets the same loop through: the limit, not something else, stopped it.
    let out = sandbox(t, &[], script).ok();
    assert!(out.stdout.contains("all-started"), "{out}");
}

fn sigterm_to_husk_ends_the_container(t: &Ctx) {
    let marker = format!("husk-sandbox-marker-{}", t.id("term"));
    let script = format!("sh -c 'sleep 600; : {marker}'");
    let args = [
        "exec",
        "--sandbox",
        "--timeout",
        "60s",
        "--json",
        image(),
        "sh",
        "-c",
        &script,
    ];
    let running = t.spawn(&args, None);
    t.wait_for("the sandboxed program", || !survivors(&marker).is_empty());
    let start = std::time::Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(running.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = running.wait();
    // pid 1 (sh) ignores SIGTERM: husk kills the container after its grace period.
    assert!(start.elapsed().as_secs() < 10, "{out}");
    let r = record(&out);
    assert_eq!(r["timed_out"], false, "{out}");
    assert_eq!(r["signal"], "SIGKILL", "{out}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(survivors(&marker).is_empty(), "{out}");
}

fn oom_kill_is_recorded(t: &Ctx) {
    if !has_cgroups(t.mode) {
        return crate::harness::skip("oom_kill_is_recorded: no cgroups");
    }
    // dd allocates its 64M block: over a 16M limit the OOM killer takes it, sh goes on.
    let script = "dd if=/dev/zero of=/dev/null bs=64M count=1; echo dd=$?";
    let out = sandbox(t, &["--memory", "16M", "--json"], script).ok();
    let r = record(&out);
    assert_eq!(r["oom_killed"], true, "{out}");
    assert_eq!(r["stdout"], "dd=137\n", "{out}");
    assert_eq!(r["limits"]["memory_bytes"]["value"], 16 << 20, "{out}");
}

/// Issue 14: the sandbox's /etc/hosts was empty, so `localhost` did not resolve (a submission
/// binding ('localhost', port) failed). It gets a generated one, never the host's.
fn localhost_is_in_etc_hosts(t: &Ctx) {
    let out = sandbox(t, &[], "cat /etc/hosts").ok();
    let v4 = out.stdout.lines().any(|l| {
        let mut w = l.split_whitespace();
        w.next() == Some("127.0.0.1") && w.any(|n| n == "localhost")
    });
    assert!(v4, "{out}");
    let host = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    if host.trim() != out.stdout.trim() {
        return;
    }
    panic!("the host's /etc/hosts: {out}");
}

/// Issue 11 item 6: on a fresh boot /run/husk-launch does not exist; root's `--sandbox` without
/// `--workspace` creates it and must leave it searchable by the sandbox's host id (it was made 0700
/// and the workspace below it refused). A private mount namespace with a fresh tmpfs on /run stands
/// for the fresh boot.
fn root_sandbox_without_workspace_on_a_fresh_run(t: &Ctx) {
    let script = r#"mount -t tmpfs -o mode=0755 tmpfs /run && "$@"; s=$?
        stat -c 'base %a' /run/husk-launch; exit $s"#;
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(&host().runtime)
        .arg("--root")
        .arg(&t.state_root)
        .args(["exec", "--sandbox", image(), "sh", "-c", "echo in-sandbox"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.contains("in-sandbox"),
        "{:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    assert!(stdout.contains("base 711"), "stdout: {stdout}");
}
