//! runc parity of the container's init (issue 13): what runc's own integration suite expects
//! between `create` and the program, each case also runnable against runc (HUSK_RUNTIME=runc).
//! Setup errors fail `create`; a missing cwd is made; the cwd is entered before the identity
//! switch; the terminal is the process user's and /dev/console; the environment and groups are
//! as runc prepares them; a created init holds none of the caller's fds and none of its CPU
//! affinity; hooks get runc's environment and directories.

use crate::both;
use crate::harness::{skip, Bundle, Ctx, Launch, Mode};
use crate::tty::{console_socket, read_all, receive_master};
use crate::userns::{ensure_subids, COUNT, FIRST};
use serde_json::json;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;

both!(
    setup_error_fails_create,
    missing_cwd_is_created,
    cwd_only_root_may_enter,
    terminal_is_the_process_users_and_the_console,
    env_home_and_duplicate_keys,
    supplementary_groups_are_the_additional_gids,
    created_init_holds_no_caller_fds,
    cpu_affinity_is_reset,
    start_container_hook_gets_process_env,
    create_container_hook_runs_in_rootfs,
    runtime_hooks_inherit_env_and_run_in_bundle,
    child_error_is_not_masked_by_sync,
);

/// A bundle whose process may run as uid/gid 1000: as root directly; rootless with a range map
/// (container 0 → the test user, 1.. → its subordinate ids), as runc's `rootless_idmap`. None
/// (after a skip) when the ranges are missing.
fn with_ids(t: &Ctx, b: Bundle) -> Option<Bundle> {
    if t.mode == Mode::Root {
        return Some(b);
    }
    if !ensure_subids() {
        skip("no tuser:200000:65536 in /etc/subuid and /etc/subgid (add as root)");
        return None;
    }
    let (uid, gid) = t.host_ids();
    let map = |own: u32| {
        json!([{"containerID": 0, "hostID": own, "size": 1},
               {"containerID": 1, "hostID": FIRST, "size": COUNT}])
    };
    Some(
        b.set("/linux/uidMappings", map(uid))
            .set("/linux/gidMappings", map(gid)),
    )
}

/// `run` that must succeed; the probe report it printed.
fn run_probe(t: &Ctx, b: &Bundle, what: &str) -> crate::harness::Probe {
    let id = t.id(what);
    let dir = t.write(b);
    t.rt(&["run", "--bundle", dir.to_str().unwrap(), &id])
        .ok()
        .probe()
}

/// Item 3: a limit the kernel refuses, or a cwd that cannot be made, fails `create` itself with
/// the cause, and leaves nothing behind (before: create and start exited 0, the process 127).
fn setup_error_fails_create(t: &Ctx) {
    let huge = 1u64 << 40;
    let bad_rlimit = t.bundle().probe(&["exit", "0"]).set(
        "/process/rlimits",
        json!([{"type": "RLIMIT_NOFILE", "soft": huge, "hard": huge}]),
    );
    let bad_cwd = t
        .bundle()
        .probe(&["exit", "0"])
        .set("/process/cwd", json!("/bin/busybox/sub"));
    for (b, what, word) in [
        (bad_rlimit, "rlim", "rlimit"),
        (bad_cwd, "cwd", "/bin/busybox"),
    ] {
        let id = t.id(what);
        let dir = t.write(&b);
        let out = t
            .rt(&["create", "--bundle", dir.to_str().unwrap(), &id])
            .fails();
        let err = out.stderr.to_lowercase();
        assert!(err.contains(word), "error does not name {word}: {out}");
        t.assert_nothing_left();
    }
}

/// Item 1: runc makes a process.cwd the image lacks (Kubernetes workingDir, nerdctl -w).
fn missing_cwd_is_created(t: &Ctx) {
    let b = t
        .bundle()
        .probe(&[])
        .set("/process/cwd", json!("/work/dir/new"));
    let p = run_probe(t, &b, "mkcwd");
    assert_eq!(p.get("cwd"), "/work/dir/new", "{}", p.0);
}

/// Item 4: `-u 1000 -w /root`: the cwd is entered before the identity switch (runc chdirs as the
/// caller first, and as the user only if that was refused).
fn cwd_only_root_may_enter(t: &Ctx) {
    let secret = t.rootfs().join("secret");
    t.mkdir(&secret);
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o700)).unwrap();
    let Some(b) = with_ids(t, t.bundle()) else {
        return;
    };
    let b = b
        .probe(&[])
        .set("/process/cwd", json!("/secret"))
        .set("/process/user", json!({"uid": 1000, "gid": 1000}));
    let p = run_probe(t, &b, "rootcwd");
    assert_eq!(p.get("cwd"), "/secret", "{}", p.0);
    assert_eq!(p.get("uid"), 1000, "{}", p.0);
}

/// Item 2: with a terminal and user 1000 the pty is 1000's (gid tty from devpts, as runc's
/// `[tty owner] ({u,g}id != 0)`), and /dev/console is that same pty.
fn terminal_is_the_process_users_and_the_console(t: &Ctx) {
    let Some(b) = with_ids(t, t.bundle()) else {
        return;
    };
    let b = b
        .set("/process/terminal", json!(true))
        .set("/process/user", json!({"uid": 1000, "gid": 100}))
        .args(&[
            "sh",
            "-c",
            "stat -L -c %u:%g:%t:%T /proc/self/fd/0 /dev/console",
        ])
        .edit(|c| {
            for m in c["mounts"].as_array_mut().unwrap() {
                if m["type"] != "devpts" {
                    continue;
                }
                let opts = m["options"].as_array_mut().unwrap();
                if !opts.iter().any(|o| o == "gid=5") {
                    opts.push(json!("gid=5"));
                }
            }
        });
    let sock = t.dir.join("console.sock");
    let listener = console_socket(t, &sock);
    let id = t.id("ttyown");
    let dir = t.write(&b);
    t.rt(&[
        "create",
        "--bundle",
        dir.to_str().unwrap(),
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
    ])
    .ok();
    let mut master = receive_master(&listener);
    t.rt(&["start", &id]).ok();
    let text = read_all(&mut master).replace('\r', "");
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 2, "stat output: {text:?}");
    assert!(lines[0].starts_with("1000:5:"), "pty owner: {text:?}");
    assert_eq!(lines[0], lines[1], "/dev/console is not the pty: {text:?}");
}

/// Item 11: one entry per name, the last one winning; an empty HOME is replaced from passwd.
fn env_home_and_duplicate_keys(t: &Ctx) {
    let b = t.bundle().probe(&[]).set(
        "/process/env",
        json!(["PATH=/bin", "A=1", "B=x", "A=2", "HOME=/override", "HOME="]),
    );
    let p = run_probe(t, &b, "env");
    let env = crate::harness::strings(p.get("env"));
    let count = |k: &str| {
        env.iter()
            .filter(|e| e.starts_with(&format!("{k}=")))
            .count()
    };
    assert_eq!(
        (count("A"), count("HOME"), count("PATH")),
        (1, 1, 1),
        "{env:?}"
    );
    assert_eq!(p.env("A").as_deref(), Some("2"), "{env:?}");
    assert_eq!(p.env("HOME").as_deref(), Some("/root"), "{env:?}");
}

/// Item 11: the supplementary groups are `additionalGids`, without the primary gid (runc's
/// setgroups(additionalGids)). Rootless, runc refuses additionalGids outright; husk sets them
/// when the gid map came from newgidmap (setgroups allowed).
fn supplementary_groups_are_the_additional_gids(t: &Ctx) {
    let Some(b) = with_ids(t, t.bundle()) else {
        return;
    };
    let b = b.probe(&[]).set(
        "/process/user",
        json!({"uid": 0, "gid": 1000, "additionalGids": [10]}),
    );
    let p = run_probe(t, &b, "groups");
    assert_eq!(p.get("groups"), &json!([10]), "{}", p.0);
    assert_eq!(p.get("gid"), 1000, "{}", p.0);
}

/// Item 11: a created init waiting for `start` holds no fd the caller gave husk (a containerd
/// pipe held open would never see EOF), nor the console socket.
fn created_init_holds_no_caller_fds(t: &Ctx) {
    let p = t.dir.join("fd-5");
    fs::write(&p, "x").unwrap();
    let launch = Launch {
        fds: vec![(5, OwnedFd::from(fs::File::open(&p).unwrap()))],
        ..Launch::default()
    };
    let id = t.id("fds");
    let dir = t.write(&t.bundle().probe(&["exit", "0"]));
    t.rt_with(&["create", "--bundle", dir.to_str().unwrap(), &id], &launch)
        .ok();
    let pid = t.state(&id)["pid"].to_string();
    let held: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .map(|l| l.display().to_string())
        .collect();
    assert!(
        !held.iter().any(|l| l.ends_with("/fd-5")),
        "the created init holds the caller's fd 5: {held:?}"
    );
}

/// Item 11: `taskset -c 0 runc run`: the container gets every CPU, not the caller's affinity.
fn cpu_affinity_is_reset(t: &Ctx) {
    use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
    use nix::unistd::Pid;
    let online = fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    if online.trim() == "0" {
        return skip("one CPU: no affinity to reset");
    }
    let b = t
        .bundle()
        .args(&["sh", "-c", "grep Cpus_allowed_list /proc/self/status"]);
    let id = t.id("aff");
    let dir = t.write(&b);
    // Affinity is per thread and inherited by what it spawns: pin this test's thread only.
    let before = sched_getaffinity(Pid::from_raw(0)).unwrap();
    let mut one = CpuSet::new();
    one.set(0).unwrap();
    sched_setaffinity(Pid::from_raw(0), &one).unwrap();
    let out = t.rt(&["run", "--bundle", dir.to_str().unwrap(), &id]);
    sched_setaffinity(Pid::from_raw(0), &before).unwrap();
    let out = out.ok();
    let list = out.stdout.split_whitespace().nth(1).unwrap_or("");
    assert_ne!(list, "0", "the caller's affinity was inherited: {out}");
}

/// Item 10: a startContainer hook without `env` gets the process's environment, HOME included
/// (runc's hooks.bats "startContainer hook should inherit process environment").
fn start_container_hook_gets_process_env(t: &Ctx) {
    let script = t.rootfs().join("check-env.sh");
    fs::write(
        &script,
        "#!/bin/sh -ue\ntest $ONE = two\ntest $FOO = bar\ntest -n \"$HOME\"\n",
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    t.give(&script);
    let b = t
        .bundle()
        .args(&["/bin/true"])
        .set("/process/env", json!(["ONE=two", "FOO=bar"]))
        .set(
            "/hooks",
            json!({"startContainer": [{"path": "/check-env.sh"}]}),
        );
    let id = t.id("hookenv");
    let dir = t.write(&b);
    t.rt(&["run", "--bundle", dir.to_str().unwrap(), &id]).ok();
}

/// Item 10: createContainer hooks run in the rootfs (before pivot_root), as under runc.
fn create_container_hook_runs_in_rootfs(t: &Ctx) {
    let markers = t.mkdir(&t.dir.join("markers"));
    let hook = json!({"path": "/bin/sh",
        "args": ["sh", "-c", format!("pwd -P > {}/cwd", markers.display())]});
    let b = t
        .bundle()
        .probe(&["exit", "0"])
        .set("/hooks", json!({"createContainer": [hook]}));
    let id = t.id("ccwd");
    let dir = t.write(&b);
    t.rt(&["run", "--bundle", dir.to_str().unwrap(), &id]).ok();
    let cwd = fs::read_to_string(markers.join("cwd")).unwrap_or_default();
    let rootfs = fs::canonicalize(t.rootfs()).unwrap();
    assert_eq!(cwd.trim(), rootfs.to_str().unwrap());
}

/// Item 10: the runtime's hooks without `env` inherit the runtime's environment (runc passes
/// its own), and run in the bundle (runc runs in it).
fn runtime_hooks_inherit_env_and_run_in_bundle(t: &Ctx) {
    let markers = t.mkdir(&t.dir.join("markers"));
    let hook = |name: &str| {
        json!({"path": "/bin/sh", "args": ["sh", "-c",
            format!("echo \"$HUSK_PARITY $(pwd -P)\" > {}/{name}", markers.display())]})
    };
    let b = t.bundle().probe(&["exit", "0"]).set(
        "/hooks",
        json!({"prestart": [hook("prestart")], "poststop": [hook("poststop")]}),
    );
    let id = t.id("hookrt");
    let dir = t.write(&b);
    let args = ["run", "--bundle", dir.to_str().unwrap(), &id];
    t.rt_env(&args, &[("HUSK_PARITY", "from-caller")]).ok();
    let bundle = fs::canonicalize(&dir).unwrap();
    for name in ["prestart", "poststop"] {
        let got = fs::read_to_string(markers.join(name)).unwrap_or_default();
        assert_eq!(
            got.trim(),
            format!("from-caller {}", bundle.display()),
            "{name} hook"
        );
    }
}

/// Item 11: the child's own error reaches the caller even when the parent's next sync write
/// meets a closed socket ("sync … EPIPE" hid it).
fn child_error_is_not_masked_by_sync(t: &Ctx) {
    let b = t.bundle().probe(&["exit", "0"]).edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "network");
        // A uts namespace handed over as a network one: setns in the child fails (EINVAL).
        ns.push(json!({"type": "network", "path": "/proc/self/ns/uts"}));
    });
    let id = t.id("nsbad");
    let dir = t.write(&b);
    let out = t
        .rt(&["run", "--bundle", dir.to_str().unwrap(), &id])
        .fails();
    assert!(out.stderr.contains("namespace"), "{out}");
    assert!(!out.stderr.contains("EPIPE"), "{out}");
    t.assert_nothing_left();
}
