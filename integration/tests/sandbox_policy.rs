//! Issue 12 (items 4, 6, 10, 11, 12) and issue 14's sandbox flags: what `--sandbox` accepts (an
//! allow-list; read-only input binds, `--user`, `instance start --sandbox`), what root does to a
//! workspace on the caller's behalf (by descriptor, never through a swapped path; given back as it
//! came), `--result` and limits that cannot hang or lie, and a killed husk taking its program
//! with it while the next run sweeps what it left.

use crate::both;
use crate::harness::{Ctx, Mode, Out};
use crate::sandbox_hardening::{image, sandbox};
use serde_json::Value;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

both!(
    flags_outside_the_allow_list_are_usage_errors,
    compatible_flags_run,
    read_only_input_binds,
    user_runs_the_program_as_a_non_root_id,
    instance_start_sandbox_runs_a_sandboxed_session,
    a_workspace_swapped_for_a_symlink_is_never_followed,
    the_workspace_comes_back_as_it_came,
    result_and_limits_refused_at_once,
    sigkill_of_husk_ends_the_program_and_the_next_run_sweeps,
);

/// A workspace of the caller's with `mode`.
fn workspace(t: &Ctx, name: &str, mode: u32) -> PathBuf {
    let ws = t.mkdir(&t.dir.join(name));
    fs::set_permissions(&ws, fs::Permissions::from_mode(mode)).unwrap();
    ws
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Item 6: every launcher flag the preset does not list is refused, with one line naming it,
/// before anything runs.
fn flags_outside_the_allow_list_are_usage_errors(t: &Ctx) {
    let ws = workspace(t, "ws", 0o755);
    let overlay = t.dir.join("overlay");
    let pid_file = t.dir.join("pid");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--x11"], "--x11"),
        (vec!["--fuse"], "--fuse"),
        (vec!["--device", "vendor.com/fpga=0"], "--device"),
        (vec!["--gpu"], "--gpu"),
        (vec!["--overlay", s(&overlay)], "--overlay"),
        (vec!["--writable-tmpfs"], "--writable-tmpfs"),
        (vec!["--writable"], "--writable"),
        (vec!["--add-caps", "CAP_NET_RAW"], "--add-caps"),
        (vec!["--drop-caps", "CAP_CHOWN"], "--drop-caps"),
        (vec!["--net", "host"], "--net"),
        (vec!["--ipc=host"], "--ipc"),
        (vec!["--fakeroot"], "--fakeroot"),
        (vec!["--userns"], "--userns"),
        (vec!["--profile", "hpc"], "--profile"),
        (vec!["--hostname", "h"], "--hostname"),
        (vec!["--pwd", "/"], "--pwd"),
        (vec!["--cwd", "/"], "--cwd"),
        (vec!["--pid-file", s(&pid_file)], "--pid-file"),
        (vec!["--bind", "/etc:/x"], "--bind"),
    ];
    for (flags, name) in cases {
        let mut all = vec!["--workspace", s(&ws)];
        all.extend(flags);
        let out = sandbox(t, &all, "touch /workspace/ran").code(2);
        let text = out.stderr.trim();
        assert_eq!(text.lines().count(), 1, "{name}: {out}");
        assert!(
            text.contains("--sandbox") && text.contains(name),
            "{name}: {out}"
        );
        assert!(!ws.join("ran").exists(), "{name}: the program ran: {out}");
        assert!(!overlay.exists() && !pid_file.exists(), "{name}: {out}");
    }
}

/// The flags the preset keeps (or implies) still run.
fn compatible_flags_run(t: &Ctx) {
    let env_file = t.dir.join("env");
    fs::write(&env_file, "FROM_FILE=1\n").unwrap();
    t.give(&env_file);
    let flags = [
        "--containall",
        "--cleanenv",
        "--no-home",
        "--ipc=private",
        "--memory",
        "64m",
        "--pids-limit",
        "16",
        "--env-file",
        s(&env_file),
    ];
    let out = sandbox(t, &flags, "echo $FROM_FILE").ok();
    assert_eq!(out.stdout, "1\n", "{out}");
}

/// Issue 14: read-only inputs (test files) bound with --sandbox: readable, not writable, nosuid
/// and nodev; a writable bind or one on the workspace or a kernel path is refused.
fn read_only_input_binds(t: &Ctx) {
    let tests = t.mkdir(&t.dir.join("tests"));
    fs::write(tests.join("t.txt"), "input\n").unwrap();
    let bind = format!("{}:/tests:ro", s(&tests));
    let script = "cat /tests/t.txt; touch /tests/x 2>/dev/null && echo tests-writable; \
        grep ' /tests ' /proc/self/mountinfo";
    let out = sandbox(t, &["--bind", &bind], script).ok();
    assert!(out.stdout.starts_with("input\n"), "{out}");
    assert!(!out.stdout.contains("writable"), "{out}");
    let mount = out.stdout.lines().nth(1).unwrap_or_default();
    for opt in ["ro", "nosuid", "nodev"] {
        assert!(mount.split([' ', ',']).any(|o| o == opt), "{opt}: {out}");
    }
    assert!(!tests.join("x").exists(), "{out}");
    for refused in [
        format!("{}:/tests", s(&tests)),
        format!("{}:/workspace/t:ro", s(&tests)),
        format!("{}:/proc/t:ro", s(&tests)),
        format!("{}:/:ro", s(&tests)),
    ] {
        let out = sandbox(t, &["--bind", &refused], "true").code(2);
        assert!(out.stderr.contains("--bind"), "{refused}: {out}");
    }
}

/// Issue 14: `--user UID:GID` runs the program as that id inside (no root in the container at
/// all); the workspace is its own, the host id is still the caller's (or root's sandbox id).
fn user_runs_the_program_as_a_non_root_id(t: &Ctx) {
    let ws = workspace(t, "ws", 0o755);
    let script = "id -u; id -g; grep -c ':1000:1000:' /etc/passwd; \
        touch /workspace/made && echo ws-ok; grep CapEff /proc/self/status";
    let flags = ["--workspace", s(&ws), "--user", "1000:1000", "--json"];
    let out = sandbox(t, &flags, script).ok();
    let r: Value = out.json();
    let stdout = r["stdout"].as_str().unwrap_or_default();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.get(..4),
        Some(&["1000", "1000", "1", "ws-ok"][..]),
        "{out}"
    );
    assert!(stdout.contains("0000000000000000"), "{out}");
    let made = fs::metadata(ws.join("made")).unwrap();
    let host_uid = r["host_uid"].as_u64().unwrap() as u32;
    assert_eq!(made.uid(), host_uid, "{out}");
    if t.mode == Mode::Rootless {
        assert_eq!(host_uid, t.host_ids().0, "{out}");
    } else {
        assert_ne!(host_uid, 0, "{out}");
    }
    for bad in ["alice:1", "1000", "0:x"] {
        sandbox(t, &["--user", bad], "true").code(2);
    }
}

/// Issue 14: `instance start --sandbox`: a long-lived sandboxed session; exec into it gets none of
/// the caller's environment; the workspace comes back at stop.
fn instance_start_sandbox_runs_a_sandboxed_session(t: &Ctx) {
    let ws = workspace(t, "ws", 0o700);
    let before = fs::metadata(&ws).unwrap();
    let name = format!("sbx{}", t.id("inst").replace('-', ""));
    let start = [
        "instance",
        "start",
        "--sandbox",
        "--ttl",
        "5m",
        "--workspace",
        s(&ws),
        image(),
        &name,
        "sleep",
        "300",
    ];
    t.rt(&start).ok();
    let uri = format!("instance://{name}");
    let script = "tail -n +3 /proc/net/dev | wc -l; env; touch /workspace/made && echo ws-ok; \
        touch /x 2>/dev/null || echo ro-root";
    let out = t.rt_env(
        &["exec", &uri, "sh", "-c", script],
        &[("HUSK_TEST_SECRET", "hunter2")],
    );
    let stop = t.rt(&["instance", "stop", &name]);
    let out = out.ok();
    stop.ok();
    assert_eq!(out.stdout.lines().next().map(str::trim), Some("1"), "{out}");
    assert!(!out.stdout.contains("hunter2"), "{out}");
    assert!(
        out.stdout.contains("ws-ok") && out.stdout.contains("ro-root"),
        "{out}"
    );
    let after = fs::metadata(&ws).unwrap();
    assert_eq!(
        (after.uid(), after.gid(), after.mode() & 0o7777),
        (before.uid(), before.gid(), 0o700)
    );
    // One supervised run's flags mean nothing for a session.
    for flag in [
        &["--timeout", "1s"][..],
        &["--json"],
        &["--result", "/tmp/x"],
    ] {
        let mut args = vec!["instance", "start", "--sandbox"];
        args.extend_from_slice(flag);
        args.extend_from_slice(&[image(), "never", "true"]);
        t.rt(&args).code(2);
    }
}

/// Runs a sandbox on `ws` that waits (after `first`) until the test writes `go` into the lent
/// directory; `during` runs meanwhile with the workspace path. Returns husk's output.
fn while_running(t: &Ctx, ws: &Path, first: &str, during: impl FnOnce() -> PathBuf) -> Out {
    let script = format!(
        "{first}; touch /workspace/started; \
         while [ ! -e /workspace/go ]; do sleep 0.05; done; echo done"
    );
    let args = [
        "exec",
        "--sandbox",
        "--workspace",
        s(ws),
        "--timeout",
        "60s",
        image(),
        "sh",
        "-c",
        &script,
    ];
    let running = t.spawn(&args, None);
    t.wait_for("the sandboxed program", || ws.join("started").exists());
    let real = during();
    fs::write(real.join("go"), "").unwrap();
    running.wait()
}

/// Item 4: the workspace's path swapped for a symlink to a root-owned 0600 file (or directory)
/// while the program runs: the give-back acts on the directory lent, never through the path.
fn a_workspace_swapped_for_a_symlink_is_never_followed(t: &Ctx) {
    let jobs = t.mkdir(&t.dir.join("jobs"));
    for target in ["file", "dir"] {
        let ws = workspace(t, &format!("jobs/ws-{target}"), 0o755);
        let victim = t.dir.join(format!("victim-{target}"));
        if target == "file" {
            fs::write(&victim, "root's\n").unwrap();
        } else {
            fs::create_dir(&victim).unwrap();
        }
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
        let real = jobs.join(format!("ws-{target}.real"));
        let out = while_running(t, &ws, "true", || {
            // What a user who owns the jobs directory can do meanwhile.
            fs::rename(&ws, &real).unwrap();
            std::os::unix::fs::symlink(&victim, &ws).unwrap();
            real.clone()
        });
        let m = fs::symlink_metadata(&victim).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (0, 0, 0o600),
            "{target}: {out}"
        );
        assert!(out.stdout.contains("done"), "{target}: {out}");
        assert!(out.stderr.contains("give --workspace"), "{target}: {out}");
    }
}

/// Item 10: a 0700 workspace is not left 1777, and an ACL added meanwhile (a default ACL would
/// make later files 0666) is gone; owner and mode as before, root and rootless.
fn the_workspace_comes_back_as_it_came(t: &Ctx) {
    use xattr::FileExt;
    let ws = workspace(t, "ws", 0o700);
    let before = fs::metadata(&ws).unwrap();
    // A default ACL granting everyone rwx (version 2; USER_OBJ, GROUP_OBJ, OTHER entries).
    let mut acl = 2u32.to_le_bytes().to_vec();
    for tag in [0x01u16, 0x04, 0x20] {
        acl.extend(tag.to_le_bytes());
        acl.extend(7u16.to_le_bytes());
        acl.extend(u32::MAX.to_le_bytes());
    }
    let mut acls = false;
    let out = while_running(t, &ws, "chmod 1777 /workspace", || {
        let f = fs::File::open(&ws).unwrap();
        acls = f.set_xattr("system.posix_acl_default", &acl).is_ok();
        ws.clone()
    });
    assert!(out.stdout.contains("done"), "{out}");
    let after = fs::metadata(&ws).unwrap();
    assert_eq!(
        (after.uid(), after.gid(), after.mode() & 0o7777),
        (before.uid(), before.gid(), 0o700),
        "{out}"
    );
    if acls {
        let f = fs::File::open(&ws).unwrap();
        let left = f.get_xattr("system.posix_acl_default").unwrap();
        assert_eq!(left, None, "{out}");
    } else {
        eprintln!("the_workspace_comes_back_as_it_came: no ACLs on this filesystem; mode checked");
    }
}

/// Item 12: a FIFO (any non-regular file) as --result fails at once, never blocks; --result in the
/// workspace is refused; --pids-limit 0 is refused rather than recorded as enforced.
fn result_and_limits_refused_at_once(t: &Ctx) {
    let ws = workspace(t, "ws", 0o755);
    let fifo = t.dir.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    t.give(&fifo);
    let out = sandbox(t, &["--result", s(&fifo)], "echo ran");
    assert!(out.code != 0 && !out.stdout.contains("ran"), "{out}");
    assert!(out.stderr.contains("not a regular file"), "{out}");
    let inside = ws.join("result.json");
    let out = sandbox(
        t,
        &["--workspace", s(&ws), "--result", s(&inside)],
        "echo ran",
    )
    .code(2);
    assert!(out.stderr.contains("inside the workspace"), "{out}");
    assert!(!inside.exists(), "{out}");
    let out = sandbox(t, &["--pids-limit", "0"], "echo ran").code(2);
    assert!(out.stderr.contains("--pids-limit 0"), "{out}");
}

/// Processes whose command line holds `marker` (husk's own does not: it is in the script only).
fn running_with(marker: &str) -> Vec<String> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(marker) && !c.contains("--sandbox"))
        .collect()
}

/// Launch directories (and fresh workspaces) named after husk process `pid`.
fn leftovers(t: &Ctx, pid: u32) -> Vec<PathBuf> {
    let uid = t.host_ids().0;
    let bases = [
        PathBuf::from("/run/husk-launch"),
        PathBuf::from(format!("/run/user/{uid}/husk-launch")),
        PathBuf::from(format!("/tmp/husk-launch-{uid}")),
    ];
    let prefix = format!("husk-{pid}-");
    bases
        .iter()
        .flat_map(|b| fs::read_dir(b).into_iter().flatten().flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

/// Item 11: SIGKILL of husk at several moments: the program never outlives it, and the next run
/// sweeps the launch directory, the container and the workspace it had not given back.
fn sigkill_of_husk_ends_the_program_and_the_next_run_sweeps(t: &Ctx) {
    use nix::sys::signal::{kill, Signal};
    for moment in ["at once", "while it runs"] {
        let ws = workspace(t, &format!("ws-{}", moment.replace(' ', "-")), 0o700);
        let before = fs::metadata(&ws).unwrap();
        let marker = format!("husk-kill-marker-{}", t.id("kill"));
        let script = format!("sh -c 'sleep 600; : {marker}' & touch /workspace/started; wait");
        let args = [
            "exec",
            "--sandbox",
            "--workspace",
            s(&ws),
            "--timeout",
            "120s",
            image(),
            "sh",
            "-c",
            &script,
        ];
        let running = t.spawn(&args, None);
        let pid = running.pid();
        if moment == "while it runs" {
            t.wait_for("the program", || ws.join("started").exists());
        }
        kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
        let out = running.wait();
        assert_eq!(out.code, 137, "{moment}: {out}");
        t.wait_for("the program to die with husk", || {
            running_with(&marker).is_empty()
        });
        // The next run sweeps what the killed one left.
        sandbox(t, &[], "true").ok();
        assert_eq!(leftovers(t, pid), Vec::<PathBuf>::new(), "{moment}");
        let after = fs::metadata(&ws).unwrap();
        assert_eq!(
            (after.uid(), after.gid(), after.mode() & 0o7777),
            (before.uid(), before.gid(), 0o700),
            "{moment}: the workspace was not given back"
        );
    }
    t.assert_nothing_left();
}
