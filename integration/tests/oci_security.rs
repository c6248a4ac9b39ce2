//! Security rules of the engine (issue 12): sysctls only for namespaces the container owns, an
//! empty bounding set when the config gives none, runc's recursive mount options applied (not
//! ignored), seccomp rules that hold on every syscall ABI, ENOSYS for syscalls newer than the
//! profile (issue 13); and a launch's cgroupfs read-only in its own cgroup namespace.

use crate::harness::{host, Ctx, Out, Probe};
use serde_json::{json, Value};
use std::fs;

crate::both!(
    sysctl_not_namespaced_refused,
    sysctl_needs_its_own_namespace,
    sysctl_of_an_owned_namespace_applied,
    bounding_set_empty_when_missing,
    recursive_mount_options_reach_submounts,
    recursive_atime_and_symfollow_options,
    seccomp_rules_hold_on_every_abi,
    seccomp_newer_syscalls_get_enosys,
    launch_cgroupfs_read_only_and_namespaced,
);

/// `run` of `b` must fail at create with one error naming `want`, leaving no container behind.
fn refused(t: &Ctx, b: crate::harness::Bundle, want: &str) {
    let id = t.id("refused");
    let dir = t.write(&b.probe(&["exit", "0"]));
    let out = t
        .rt(&["run", "--bundle", dir.to_str().unwrap(), &id])
        .fails();
    assert!(out.stderr.contains(want), "want {want:?}: {out}");
    t.assert_nothing_left();
}

/// The bundle with only mount, pid, user (rootless) and the namespaces in `keep`.
fn with_namespaces(t: &Ctx, keep: &[&str]) -> crate::harness::Bundle {
    t.bundle().edit(|c| {
        if !keep.contains(&"uts") {
            c.as_object_mut().unwrap().remove("hostname");
        }
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| {
            let typ = n["type"].as_str().unwrap();
            matches!(typ, "mount" | "pid" | "user") || keep.contains(&typ)
        });
        for typ in keep {
            if !ns.iter().any(|n| n["type"] == *typ) {
                ns.push(json!({ "type": typ }));
            }
        }
    })
}

/// kernel.core_pattern is global: writing it from a container sets the host's (a pipe to a
/// program run as host root at the next crash). Refused at create, whatever namespaces there are.
/// Each key is given the host's current value, so a regression cannot change the host.
fn sysctl_not_namespaced_refused(t: &Ctx) {
    let current = |file: &str| fs::read_to_string(format!("/proc/sys/{file}")).unwrap();
    let before = current("kernel/core_pattern");
    for (key, file) in [
        ("kernel.core_pattern", "kernel/core_pattern"),
        ("kernel/core_pattern", "kernel/core_pattern"),
        ("vm.overcommit_memory", "vm/overcommit_memory"),
    ] {
        let value = current(file).trim_end().to_string();
        let b = with_namespaces(t, &["ipc", "network", "uts"])
            .set("/linux/sysctl", json!({ key: value }));
        refused(t, b, &format!("linux.sysctl: {key}: not namespaced"));
    }
    let b = with_namespaces(t, &["uts"]).set("/linux/sysctl", json!({"kernel.hostname": "x"}));
    refused(t, b, "linux.sysctl: kernel.hostname");
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        before
    );
}

/// net.* needs the container's own network namespace, kernel.shm* and fs.mqueue.* its own ipc
/// namespace, kernel.domainname its own uts namespace: without one the host's value would change.
/// Joining the runtime's own namespace by path is not having one. Each key is given the host's
/// current value, so a regression cannot change the host.
fn sysctl_needs_its_own_namespace(t: &Ctx) {
    let cases = [
        ("net.ipv4.ping_group_range", "network", "net"),
        ("kernel.shmmni", "ipc", "ipc"),
        ("fs.mqueue.msg_max", "ipc", "ipc"),
        ("kernel.domainname", "uts", "uts"),
    ];
    for (key, ns, kernel_name) in cases {
        let file = format!("/proc/sys/{}", key.replace('.', "/"));
        let value = fs::read_to_string(file).unwrap().trim_end().to_string();
        let all: Vec<&str> = ["ipc", "network", "uts"]
            .into_iter()
            .filter(|n| *n != ns)
            .collect();
        let b = with_namespaces(t, &all).set("/linux/sysctl", json!({ key: value }));
        refused(
            t,
            b,
            &format!("linux.sysctl: {key}: needs a {kernel_name} namespace"),
        );
        let b = with_namespaces(t, &all)
            .edit(|c| {
                c["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": ns, "path": format!("/proc/self/ns/{kernel_name}")}))
            })
            .set("/linux/sysctl", json!({ key: value }));
        refused(
            t,
            b,
            &format!("linux.sysctl: {key}: needs a {kernel_name} namespace"),
        );
    }
}

/// The same keys are written in a namespace of the container's own.
fn sysctl_of_an_owned_namespace_applied(t: &Ctx) {
    let b = with_namespaces(t, &["ipc", "network"]).set(
        "/linux/sysctl",
        json!({"kernel.shmmni": "4000", "net/ipv4/ping_group_range": "0 0"}),
    );
    let id = t.id("sysctl");
    let dir = t.write(&b.args(&[
        "/bin/sh",
        "-c",
        "cat /proc/sys/kernel/shmmni /proc/sys/net/ipv4/ping_group_range",
    ]));
    let out = t.rt(&["run", "--bundle", dir.to_str().unwrap(), &id]).ok();
    let words: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(words, ["4000", "0", "0"], "{out}");
}

fn report(t: &Ctx, b: crate::harness::Bundle) -> Probe {
    let id = t.id("report");
    let dir = t.write(&b.probe(&[]));
    t.rt(&["run", "--bundle", dir.to_str().unwrap(), &id])
        .ok()
        .probe()
}

/// runc: `process.capabilities` without `bounding` is an empty bounding set. Keeping the full
/// set would let a setuid-root or file-capability binary in the image regain every capability.
fn bounding_set_empty_when_missing(t: &Ctx) {
    let b = t.bundle().edit(|c| {
        let caps = c["process"]["capabilities"].as_object_mut().unwrap();
        caps.remove("bounding");
    });
    let p = report(t, b);
    assert_eq!(p.caps("bounding"), Vec::<String>::new(), "{}", p.0);
    // What execve gives root from an empty bounding set: nothing (as under runc).
    assert_eq!(p.caps("permitted"), Vec::<String>::new(), "{}", p.0);
}

/// Every mount at or below `dest` in the probe's mount table.
fn mounts_under<'a>(p: &'a Probe, dest: &str) -> Vec<&'a Value> {
    let all = p.get("mounts").as_array().unwrap();
    let under: Vec<&Value> = all
        .iter()
        .filter(|m| {
            let target = m["target"].as_str().unwrap();
            target == dest || target.starts_with(&format!("{dest}/"))
        })
        .collect();
    assert!(under.len() > 1, "no submounts under {dest}: {}", p.0);
    under
}

fn has_option(m: &Value, opt: &str) -> bool {
    m["options"].as_str().unwrap().split(',').any(|o| o == opt)
}

/// `rro`, `rnosuid`, `rnodev`, `rnoexec` on an rbind of the host's /sys (whose submounts are the
/// cgroup hierarchies, debugfs, ...) reach every submount, the top one included; plain `ro` there
/// only ever covered the top mount.
fn recursive_mount_options_reach_submounts(t: &Ctx) {
    let b = t.bundle().edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/hostsys", "type": "bind", "source": "/sys",
            "options": ["rbind", "rro", "rnosuid", "rnodev", "rnoexec"]
        }));
    });
    let p = report(t, b);
    for m in mounts_under(&p, "/hostsys") {
        for opt in ["ro", "nosuid", "nodev", "noexec"] {
            assert!(has_option(m, opt), "{opt} missing on {m}");
        }
    }
    let id = t.id("rro");
    let b = t.bundle().edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/hostsys", "type": "bind", "source": "/sys",
            "options": ["rbind", "rro"]
        }));
    });
    let dir = t.write(&b.probe(&["write", "/hostsys/fs/cgroup/cgroup.procs", "0"]));
    let w = t
        .rt(&["run", "--bundle", dir.to_str().unwrap(), &id])
        .ok()
        .probe();
    assert_eq!(w.get("error"), "EROFS", "{}", w.0);
}

/// The access-time words and `rnosymfollow` reach the submounts as well. The mounts are the
/// container's own (tmpfs /t with a tmpfs on /t/sub, rbound to /t2): the kernel locks the atime
/// flags of mounts a user namespace got from the host, so a rootless rnoatime on /sys is EPERM.
fn recursive_atime_and_symfollow_options(t: &Ctx) {
    let source = t.rootfs().join("t");
    for (word, want, not) in [
        ("rnoatime", "noatime", "relatime"),
        ("rstrictatime", "", "relatime"),
        ("rnosymfollow", "nosymfollow", ""),
    ] {
        let b = t.bundle().edit(|c| {
            let m = c["mounts"].as_array_mut().unwrap();
            m.push(json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs"}));
            m.push(json!({"destination": "/t/sub", "type": "tmpfs", "source": "tmpfs"}));
            m.push(json!({
                "destination": "/t2", "type": "bind", "source": source,
                "options": ["rbind", word]
            }));
        });
        let p = report(t, b);
        for m in mounts_under(&p, "/t2") {
            assert!(want.is_empty() || has_option(m, want), "{word}: {m}");
            assert!(not.is_empty() || !has_option(m, not), "{word}: {m}");
            assert!(
                !has_option(m, "noatime") || word == "rnoatime",
                "{word}: {m}"
            );
        }
        assert!(!has_option(p.mount("/t").unwrap(), want) || want.is_empty());
    }
}

/// Docker's default profile for a process without capabilities (what `--sandbox` installs).
fn docker_profile() -> Value {
    let path = host()
        .bundles
        .join("../spec-templates/seccomp-default.json");
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

/// `run` of the probe with ARGS under Docker's profile.
fn under_profile(t: &Ctx, args: &[&str]) -> Out {
    let b = t.bundle().set("/linux/seccomp", docker_profile());
    let id = t.id("seccomp");
    let dir = t.write(&b.probe(args));
    t.rt(&["run", "--bundle", dir.to_str().unwrap(), &id])
}

/// Can this kernel run i386 syscalls (int 0x80) at all? Without IA-32 emulation the probe dies.
fn ia32(t: &Ctx) -> bool {
    let out = under_profile(t, &["syscall32", "20"]);
    out.code == 0 && out.probe().get("ok") == true
}

/// The profile's "socket unless AF_VSOCK" on every ABI an x86_64 process can use: x86_64, x32,
/// the i386 socket syscall, and i386 socketcall(SYS_SOCKET) whose arguments are in memory (the
/// filter cannot read them; libseccomp drops the condition there, so the sub-call is refused).
/// Sockets are only created and closed.
fn seccomp_rules_hold_on_every_abi(t: &Ctx) {
    let socket = |family: &str, abi: &str| under_profile(t, &["socket", family, abi]).ok().probe();
    let errno = |p: &Probe| p.get("error").as_str().unwrap_or("ok").to_string();
    assert_eq!(socket("2", "native").get("ok"), true, "control");
    for abi in ["native", "x32"] {
        let p = socket("40", abi);
        assert_eq!(errno(&p), "EPERM", "{abi}: {}", p.0);
    }
    if !ia32(t) {
        eprintln!("no IA-32 emulation in this kernel: the i386 cases do not apply");
        return;
    }
    assert_eq!(
        socket("2", "i386").get("ok"),
        true,
        "control: i386 direct socket"
    );
    let p = socket("40", "i386");
    assert_eq!(errno(&p), "EPERM", "i386: {}", p.0);
    for family in ["40", "2"] {
        let p = socket(family, "socketcall");
        assert_eq!(errno(&p), "ENOSYS", "socketcall family {family}: {}", p.0);
    }
}

/// runc's -ENOSYS stub: a syscall numbered above everything the profile names gets ENOSYS (a
/// libc then falls back to an older call), one the profile merely leaves out gets its errno.
fn seccomp_newer_syscalls_get_enosys(t: &Ctx) {
    let call = |args: &[&str]| under_profile(t, args).ok().probe();
    let p = call(&["syscall", "1000"]);
    assert_eq!(p.get("error"), "ENOSYS", "{}", p.0);
    let p = call(&["syscall", "unshare-user"]);
    assert_eq!(p.get("error"), "EPERM", "{}", p.0);
    if ia32(t) {
        let p = call(&["syscall32", "1000"]);
        assert_eq!(p.get("error"), "ENOSYS", "i386: {}", p.0);
        let p = call(&["syscall32", "21"]);
        assert_eq!(p.get("error"), "EPERM", "i386 mount: {}", p.0);
    }
}

/// A launch (`husk exec IMAGE`, not --sandbox) run by root is root inside with Docker's
/// capabilities (CAP_DAC_OVERRIDE among them). The host's cgroup hierarchies must not be writable
/// there: no moving itself to the root cgroup, no raising its own limits, no leaving the devices
/// cgroup. Every cgroupfs file is opened for writing (nothing is written: `open PATH w`) and
/// must be refused; the process is in a cgroup namespace of its own.
fn launch_cgroupfs_read_only_and_namespaced(t: &Ctx) {
    let image = host().rootfs.to_str().unwrap().to_string();
    let script = "for f in /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/*/cgroup.procs \
        /sys/fs/cgroup/*/tasks /sys/fs/cgroup/*/memory.limit_in_bytes \
        /sys/fs/cgroup/*/devices.allow /sys/fs/cgroup/*/*/cgroup.procs; do \
        [ -f \"$f\" ] && husk-probe open \"$f\" w; done; husk-probe";
    let out = t.rt(&["exec", &image, "sh", "-c", script]).ok();
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let opens: Vec<&Value> = lines.iter().filter(|v| v["op"] == "open").collect();
    assert!(opens.len() > 2, "no cgroup files found: {out}");
    for o in &opens {
        assert_eq!(o["ok"], false, "writable: {o}");
        assert!(
            o["error"] == "EROFS"
                || (o["error"] == "EACCES" && t.mode == crate::harness::Mode::Rootless),
            "{o}"
        );
    }
    let report = Probe(lines.last().cloned().unwrap());
    for m in report.get("mounts").as_array().unwrap() {
        let target = m["target"].as_str().unwrap();
        if target.starts_with("/sys") {
            assert!(has_option(m, "ro"), "read-write under /sys: {m}");
        }
    }
    for c in report.get("cgroup").as_array().unwrap() {
        assert_eq!(c["path"], "/", "not in a cgroup namespace of its own: {c}");
    }
}
