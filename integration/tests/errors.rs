//! Bad input fails cleanly: exit 1, an error on stderr, and nothing left behind.

use crate::both;
use crate::harness::Ctx;
use serde_json::json;
use std::fs;

both!(
    malformed_config_json,
    missing_rootfs,
    missing_bundle_dir,
    invalid_id_with_slash,
    missing_process_args,
    command_not_found,
    missing_absolute_command_fails_create,
    apparmor_profile_is_applied_or_refused,
    duplicate_id,
    unknown_signal,
    start_twice,
    delete_running_without_force,
    state_of_unknown_container,
    json_log_ends_with_error_record,
    fifo_as_config_json_fails_at_once,
    rlimit_soft_above_hard_is_refused,
);

fn create_in(t: &Ctx, dir: &std::path::Path, id: &str) -> crate::harness::Out {
    t.rt(&["create", "--bundle", dir.to_str().unwrap(), id])
}

fn malformed_config_json(t: &Ctx) {
    let b = t.bundle();
    let dir = t.write(&b);
    fs::write(
        dir.join("config.json"),
        "{\"ociVersion\": \"1.0.2\", \"process\": ",
    )
    .unwrap();
    create_in(t, &dir, &t.id("badjson")).fails();
    t.assert_nothing_left();
}

fn missing_rootfs(t: &Ctx) {
    let b = t.bundle().set("/root/path", json!("does-not-exist"));
    let dir = t.write(&b);
    create_in(t, &dir, &t.id("norootfs")).fails();
    t.assert_nothing_left();
}

fn missing_bundle_dir(t: &Ctx) {
    let dir = t.dir.join("no-such-bundle");
    create_in(t, &dir, &t.id("nobundle")).fails();
    t.assert_nothing_left();
}

fn invalid_id_with_slash(t: &Ctx) {
    let dir = t.write(&t.bundle().probe(&["sleep", "600"]));
    create_in(t, &dir, "a/b").fails();
    create_in(t, &dir, "..").fails();
    t.assert_nothing_left();
    assert!(!t.state_root.join("a").exists(), "id a/b made a state dir");
}

fn missing_process_args(t: &Ctx) {
    let b = t.bundle().edit(|c| {
        c["process"].as_object_mut().unwrap().remove("args");
    });
    let dir = t.write(&b);
    let id = t.id("noargs");
    // runc accepts this at create and fails at start, or fails at create; both are clean.
    if create_in(t, &dir, &id).code == 0 {
        t.rt(&["start", &id]).fails();
        t.rt(&["delete", "--force", &id]).ok();
    }
    t.assert_nothing_left();
}

fn command_not_found(t: &Ctx) {
    let b = t.bundle().args(&["/no/such/binary"]);
    let dir = t.write(&b);
    let id = t.id("noexe");
    let out = t.rt(&["run", "--bundle", dir.to_str().unwrap(), &id]);
    assert_ne!(out.code, 0, "{out}");
    assert!(!out.stderr.trim().is_empty(), "no error message: {out}");
    t.assert_nothing_left();
}

/// Regression (found under containerd): a missing program given by absolute path must fail
/// `create` itself ("OCI runtime create failed"), not the container after `start`.
fn missing_absolute_command_fails_create(t: &Ctx) {
    let b = t.bundle().args(&["/no/such/binary"]);
    let dir = t.write(&b);
    let out = create_in(t, &dir, &t.id("absmissing"));
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("/no/such/binary"),
        "error does not name it: {out}"
    );
    t.assert_nothing_left();
}

/// A requested AppArmor profile is never dropped silently: on a host without AppArmor (this one)
/// create fails naming it; where AppArmor runs, the profile is applied at exec.
fn apparmor_profile_is_applied_or_refused(t: &Ctx) {
    let enabled = fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y");
    if enabled {
        eprintln!("AppArmor is enabled here: the refusal path is not exercised");
        return;
    }
    let b = t.bundle().probe(&["exit", "0"]).set(
        "/process/apparmorProfile",
        serde_json::json!("husk-test-profile"),
    );
    let dir = t.write(&b);
    let out = create_in(t, &dir, &t.id("apparmor"));
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("AppArmor"),
        "error does not name AppArmor: {out}"
    );
    t.assert_nothing_left();
}

fn duplicate_id(t: &Ctx) {
    let b = t.bundle().probe(&["sleep", "600"]);
    let id = t.create(&b, "dup");
    let dir = t.write(&t.bundle().probe(&["sleep", "600"]));
    create_in(t, &dir, &id).fails();
    assert_eq!(
        t.state(&id)["status"],
        "created",
        "the first container was disturbed"
    );
}

fn unknown_signal(t: &Ctx) {
    let id = t.start_running(&t.bundle().probe(&["sleep", "600"]), "badsig");
    t.rt(&["kill", &id, "SIGNOPE"]).fails();
    t.rt(&["kill", &id, "999"]).fails();
    assert_eq!(t.state(&id)["status"], "running");
}

fn start_twice(t: &Ctx) {
    let id = t.start_running(&t.bundle().probe(&["sleep", "600"]), "twice");
    t.rt(&["start", &id]).fails();
    assert_eq!(t.state(&id)["status"], "running");
}

fn delete_running_without_force(t: &Ctx) {
    let id = t.start_running(&t.bundle().probe(&["sleep", "600"]), "delrun");
    t.rt(&["delete", &id]).fails();
    assert_eq!(t.state(&id)["status"], "running");
    t.rt(&["delete", "--force", &id]).ok();
    t.assert_nothing_left();
}

fn state_of_unknown_container(t: &Ctx) {
    t.rt(&["state", "no-such-container"]).fails();
    t.rt(&["kill", "no-such-container", "KILL"]).fails();
    t.rt(&["start", "no-such-container"]).fails();
    t.rt(&["delete", "no-such-container"]).fails();
}

/// containerd shows users the last `{"level":"error","msg":...}` line of the --log file.
fn json_log_ends_with_error_record(t: &Ctx) {
    let log = t.dir.join("log.json");
    fs::write(&log, "").unwrap();
    t.give(&log);
    let log_s = log.to_str().unwrap();
    t.rt(&[
        "--log",
        log_s,
        "--log-format",
        "json",
        "state",
        "no-such-container",
    ])
    .fails();
    let text = fs::read_to_string(&log).unwrap();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("empty log"));
    let rec: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"));
    assert_eq!(rec["level"], "error", "{last}");
    assert!(rec["msg"].as_str().is_some_and(|m| !m.is_empty()), "{last}");
}

/// Issue 12, item 12: a FIFO as config.json (no writer will ever come) is an error at once, not a
/// runtime blocked in open(2); the harness's bounded wait fails the test if it hangs.
fn fifo_as_config_json_fails_at_once(t: &Ctx) {
    let dir = t.write(&t.bundle());
    let cfg = dir.join("config.json");
    fs::remove_file(&cfg).unwrap();
    nix::unistd::mkfifo(&cfg, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    t.give(&cfg);
    for verb in ["create", "run"] {
        let out = t
            .rt(&[verb, "--bundle", dir.to_str().unwrap(), &t.id("fifo")])
            .fails();
        assert!(out.stderr.contains("not a regular file"), "{out}");
    }
    t.assert_nothing_left();
}

/// Issue 12, item 12: an rlimit whose soft limit is above its hard limit is refused at create,
/// naming the key and both values (it used to reach setrlimit in the child as a bare EINVAL).
fn rlimit_soft_above_hard_is_refused(t: &Ctx) {
    let b = t.bundle().probe(&["exit", "0"]).set(
        "/process/rlimits",
        json!([{"type": "RLIMIT_NOFILE", "soft": 200, "hard": 100}]),
    );
    let dir = t.write(&b);
    let out = create_in(t, &dir, &t.id("rlim")).fails();
    assert!(
        out.stderr
            .contains("process.rlimits: RLIMIT_NOFILE: soft limit 200 is above the hard limit 100"),
        "{out}"
    );
    t.assert_nothing_left();
}
