//! The inside view, as husk-probe reports it: ids, hostname, cwd, env, mounts, caps,
//! no_new_privs, seccomp, masked and readonly paths, namespaces, rlimits, leaked fds.

use crate::harness::{host_ns, strings, Ctx, Mode, Probe};
use crate::{both, root_only};
use serde_json::{json, Value};

both!(
    sysctl_written_before_readonly_proc_sys,
    runs_as_container_root,
    hostname_from_config,
    cwd_from_config,
    env_from_config,
    standard_mounts,
    caps_match_config,
    caps_can_be_narrowed,
    no_new_privs_follows_config,
    seccomp_errno_rule,
    seccomp_kill_rule,
    masked_paths_unreadable,
    readonly_paths_not_writable,
    readonly_root,
    namespaces_are_new,
    rlimits_from_config,
    umask_from_config,
    only_stdio_fds_leak_in,
);
root_only!(process_user_and_groups);

/// `run` the probe with `args` in bundle `b`; returns its report.
fn probe(t: &Ctx, b: crate::harness::Bundle, args: &[&str]) -> Probe {
    let b = b.probe(args);
    let id = t.id("probe");
    let dir = t.write(&b);
    t.rt(&["run", "--bundle", dir.to_str().unwrap(), &id])
        .ok()
        .probe()
}

fn report(t: &Ctx, b: crate::harness::Bundle) -> Probe {
    probe(t, b, &[])
}

fn runs_as_container_root(t: &Ctx) {
    let p = report(t, t.bundle());
    assert_eq!(p.get("uid"), 0);
    assert_eq!(p.get("euid"), 0);
    assert_eq!(p.get("gid"), 0);
    assert_eq!(p.get("pid"), 1, "init is pid 1 of a new pid namespace");
    if t.mode == Mode::Rootless {
        let (uid, _) = t.host_ids();
        let map = strings(p.get("uid_map"));
        assert_eq!(map, [format!("0 {uid} 1")], "uid_map");
    }
}

fn hostname_from_config(t: &Ctx) {
    let p = report(t, t.bundle().set("/hostname", json!("husk-it-host")));
    assert_eq!(p.get("hostname"), "husk-it-host");
}

fn cwd_from_config(t: &Ctx) {
    let p = report(t, t.bundle().set("/process/cwd", json!("/tmp")));
    assert_eq!(p.get("cwd"), "/tmp");
}

fn env_from_config(t: &Ctx) {
    let env = json!(["PATH=/bin:/usr/bin", "FOO=bar baz", "EMPTY="]);
    let p = report(t, t.bundle().set("/process/env", env));
    assert_eq!(p.env("FOO").as_deref(), Some("bar baz"));
    assert_eq!(p.env("EMPTY").as_deref(), Some(""));
    assert_eq!(p.env("PATH").as_deref(), Some("/bin:/usr/bin"));
    // runc adds HOME from the user's passwd entry when the config has none.
    assert_eq!(p.env("HOME").as_deref(), Some("/root"));
}

fn standard_mounts(t: &Ctx) {
    let p = report(t, t.bundle());
    for (target, fstype) in [
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/sys", "sysfs"),
    ] {
        let m = p
            .mount(target)
            .unwrap_or_else(|| panic!("no mount at {target}: {}", p.0["mounts"]));
        assert_eq!(m["fstype"], fstype, "{target}: {m}");
    }
    let sys = p.mount("/sys").unwrap();
    let opts = sys["options"].as_str().unwrap();
    assert!(
        opts.split(',').any(|o| o == "ro"),
        "/sys is read-only: {sys}"
    );
    let root = p.mount("/").expect("a root mount");
    assert_ne!(
        root["fstype"], "rootfs",
        "pivot_root, not chroot over initramfs"
    );
}

fn caps_match_config(t: &Ctx) {
    let b = t.bundle();
    let want = |set: &str| {
        let mut v = strings(&b.config["process"]["capabilities"][set]);
        v.sort();
        v
    };
    // The kernel raises an ambient cap only if it is also inheritable and permitted
    // (PR_CAP_AMBIENT_RAISE); `runc spec` lists ambient caps but no inheritable ones, so runc
    // ends up with none (and does not fail).
    let inheritable = want("inheritable");
    let ambient: Vec<String> = want("ambient")
        .into_iter()
        .filter(|c| inheritable.contains(c))
        .collect();
    let sets = ["bounding", "effective", "permitted", "inheritable"].map(|s| (s, want(s)));
    let p = report(t, b);
    for (set, want) in sets {
        let mut got = p.caps(set);
        got.sort();
        assert_eq!(got, want, "{set} set");
    }
    let mut got = p.caps("ambient");
    got.sort();
    assert_eq!(got, ambient, "ambient set");
}

fn caps_can_be_narrowed(t: &Ctx) {
    let caps = json!(["CAP_CHOWN", "CAP_SETUID"]);
    let b = t.bundle().set(
        "/process/capabilities",
        json!({"bounding": caps, "effective": caps, "permitted": caps,
               "inheritable": ["CAP_CHOWN"], "ambient": ["CAP_CHOWN"]}),
    );
    let p = report(t, b);
    for set in ["bounding", "effective", "permitted"] {
        assert_eq!(p.caps(set), ["CAP_CHOWN", "CAP_SETUID"], "{set}");
    }
    assert_eq!(p.caps("inheritable"), ["CAP_CHOWN"]);
    assert_eq!(p.caps("ambient"), ["CAP_CHOWN"]);
}

fn no_new_privs_follows_config(t: &Ctx) {
    let p = report(t, t.bundle().set("/process/noNewPrivileges", json!(true)));
    assert_eq!(p.get("no_new_privs"), 1);
    let p = report(t, t.bundle().set("/process/noNewPrivileges", json!(false)));
    assert_eq!(p.get("no_new_privs"), 0);
}

fn seccomp_errno_rule(t: &Ctx) {
    let seccomp = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    let b = t.bundle().set("/linux/seccomp", seccomp.clone());
    let p = report(t, b);
    assert_eq!(p.get("seccomp"), 2, "seccomp filter mode");
    let b = t.bundle().set("/linux/seccomp", seccomp);
    let r = probe(t, b, &["syscall", "mkdir", "/tmp/x"]);
    assert_eq!(r.get("ok"), false);
    assert_eq!(r.get("error"), "EPERM", "{}", r.0);
    let r = probe(t, t.bundle(), &["syscall", "getcwd"]);
    assert_eq!(r.get("ok"), true, "getcwd allowed: {}", r.0);
}

/// SCMP_ACT_KILL: the blocked syscall kills the process by SIGSYS; `run` passes 128+31 through.
fn seccomp_kill_rule(t: &Ctx) {
    let seccomp = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]
    });
    let b = t
        .bundle()
        .set("/linux/seccomp", seccomp)
        .probe(&["syscall", "mkdir", "/tmp/x"]);
    let id = t.id("sckill");
    let dir = t.write(&b);
    let out = t.rt(&["run", "--bundle", dir.to_str().unwrap(), &id]);
    assert_eq!(out.code, 128 + 31, "killed by SIGSYS: {out}");
    assert!(
        !out.stdout.contains("\"op\""),
        "the syscall returned: {out}"
    );
}

fn masked_paths_unreadable(t: &Ctx) {
    let b = t.bundle().set(
        "/linux/maskedPaths",
        json!(["/proc/kcore", "/sys/firmware", "/etc/hostname"]),
    );
    let r = probe(t, b, &["read", "/proc/kcore"]);
    assert!(
        r.get("ok") == false || r.get("bytes") == 0,
        "kcore readable: {}",
        r.0
    );
    let b = t
        .bundle()
        .set("/linux/maskedPaths", json!(["/sys/firmware"]));
    let r = probe(t, b, &["read", "/sys/firmware"]);
    assert!(
        r.get("ok") == false || r.get("entries") == &json!([]),
        "/sys/firmware listable: {}",
        r.0
    );
    let b = t
        .bundle()
        .set("/linux/maskedPaths", json!(["/etc/hostname"]));
    let r = probe(t, b, &["read", "/etc/hostname"]);
    assert!(
        r.get("ok") == false || r.get("bytes") == 0,
        "masked file readable: {}",
        r.0
    );
}

fn readonly_paths_not_writable(t: &Ctx) {
    let b = t.bundle().set("/linux/readonlyPaths", json!(["/etc"]));
    let r = probe(t, b, &["write", "/etc/husk-probe-test"]);
    assert_eq!(r.get("ok"), false);
    assert_eq!(r.get("error"), "EROFS", "{}", r.0);
    let r = probe(t, t.bundle(), &["write", "/etc/husk-probe-test"]);
    assert_eq!(
        r.get("ok"),
        true,
        "/etc writable without readonlyPaths: {}",
        r.0
    );
}

/// Regression (found under Docker and podman): their configs make /proc/sys read-only and set
/// net.* sysctls; the sysctls must be written before the read-only paths are applied.
fn sysctl_written_before_readonly_proc_sys(t: &Ctx) {
    let b = t
        .bundle()
        .edit(|c| {
            let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
            if !ns.iter().any(|n| n["type"] == "network") {
                ns.push(json!({"type": "network"}));
            }
        })
        .set("/linux/sysctl", json!({"net.ipv4.ping_group_range": "0 0"}))
        .set("/linux/readonlyPaths", json!(["/proc/sys"]));
    let r = probe(t, b, &["read", "/proc/sys/net/ipv4/ping_group_range"]);
    assert_eq!(r.get("ok"), true, "{}", r.0);
    let text = r.get("data");
    assert!(
        text.as_str()
            .is_some_and(|s| s.split_whitespace().eq(["0", "0"])),
        "sysctl not applied: {}",
        r.0
    );
}

fn readonly_root(t: &Ctx) {
    let b = t.bundle().set("/root/readonly", json!(true));
    let r = probe(t, b, &["write", "/husk-probe-test"]);
    assert_eq!(r.get("error"), "EROFS", "{}", r.0);
    let b = t.bundle().set("/root/readonly", json!(true));
    let p = report(t, b);
    let root = p.mount("/").unwrap();
    assert!(
        root["options"]
            .as_str()
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "{root}"
    );
}

fn namespaces_are_new(t: &Ctx) {
    let p = report(t, t.bundle());
    let me = std::process::id().to_string();
    for ns in ["pid", "mnt", "uts", "ipc"] {
        assert_ne!(p.ns(ns), host_ns(&me, ns), "{ns} namespace is the host's");
    }
    match t.mode {
        Mode::Root => {
            assert_ne!(p.ns("net"), host_ns(&me, "net"));
            assert_eq!(p.ns("user"), host_ns(&me, "user"));
        }
        // `runc spec --rootless` keeps the host network (no network namespace entry).
        Mode::Rootless => {
            assert_ne!(p.ns("user"), host_ns(&me, "user"));
            assert_eq!(p.ns("net"), host_ns(&me, "net"));
        }
    }
}

fn rlimits_from_config(t: &Ctx) {
    let limits = json!([
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
    ]);
    let p = report(t, t.bundle().set("/process/rlimits", limits));
    let r = p.get("rlimits");
    assert_eq!(r["RLIMIT_NOFILE"], json!({"soft": 512, "hard": 1024}));
    assert_eq!(r["RLIMIT_CORE"], json!({"soft": 0, "hard": 0}));
}

fn umask_from_config(t: &Ctx) {
    let p = report(t, t.bundle());
    assert_eq!(p.get("umask"), "0022", "default umask");
    let p = report(t, t.bundle().set("/process/user/umask", json!(0o027)));
    assert_eq!(p.get("umask"), "0027");
}

/// CVE-2024-21626: a host fd (e.g. /sys/fs/cgroup) leaked into the container lets
/// process.cwd = /proc/self/fd/N escape. Only stdio may come in; cwd is inside the rootfs.
fn only_stdio_fds_leak_in(t: &Ctx) {
    let p = report(t, t.bundle());
    let fds = p.fds();
    assert_eq!(fds, [0, 1, 2], "fds: {}", p.get("fds"));
    assert_eq!(p.get("cwd"), "/");
    // The cwd escape itself: must not start, or must not land outside the rootfs.
    let b = t.bundle().set("/process/cwd", json!("/proc/self/fd/7"));
    let id = t.id("cve");
    let dir = t.write(&b);
    let out = t.rt(&["run", "--bundle", dir.to_str().unwrap(), &id]);
    if out.code == 0 {
        let p = out.probe();
        let cwd = p.get("cwd").as_str().unwrap_or("");
        assert!(!cwd.starts_with("/sys/fs/cgroup"), "escaped to {cwd}");
    }
}

fn process_user_and_groups(t: &Ctx) {
    // A one-id map (rootless) has no uid 1001 inside, so this is root-only.
    let user = json!({"uid": 1001, "gid": 1001, "additionalGids": [5, 65534]});
    let p = report(t, t.bundle().set("/process/user", user));
    assert_eq!(p.get("uid"), 1001);
    assert_eq!(p.get("gid"), 1001);
    let groups: Vec<Value> = p.get("groups").as_array().unwrap().clone();
    assert!(
        groups.contains(&json!(5)) && groups.contains(&json!(65534)),
        "groups {groups:?}"
    );
    assert_eq!(p.env("HOME").as_deref(), Some("/home/tuser"));
}
