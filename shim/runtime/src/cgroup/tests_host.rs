//! Real tests on this host's cgroup hierarchy (v1 or hybrid here; v2 elsewhere), as root.
//!
//! They create `/husk-test-<unique>` in every hierarchy, put a spawned `sleep` in it, and always
//! clean up through [`Guard`]'s Drop, even when an assertion fails. Without root they skip with a
//! printed reason, unless HUSK_REQUIRE_PRIVILEGED=1 (CI), which turns the skip into a failure.

use std::fs as stdfs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use oci_spec::runtime::{LinuxMemory, LinuxPids, LinuxResources};

use super::testutil::unique;
use super::*;

fn privileged(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("HUSK_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{test}: needs root and HUSK_REQUIRE_PRIVILEGED=1 forbids skipping");
    }
    eprintln!("skipping {test}: needs root to create cgroups");
    false
}

/// Kills the child, thaws and removes the cgroup on drop, whatever happened before.
struct Guard {
    cg: Cgroup,
    child: Option<Child>,
}

impl Guard {
    fn kill_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = self.cg.thaw();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill_child();
        let _ = self.cg.remove();
    }
}

fn limits() -> LinuxResources {
    let mut memory = LinuxMemory::default();
    memory.set_limit(Some(64 << 20));
    let mut pids = LinuxPids::default();
    pids.set_limit(16);
    let mut r = LinuxResources::default();
    r.set_memory(Some(memory));
    r.set_pids(Some(pids));
    r
}

fn read(path: &Path) -> String {
    stdfs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_owned()
}

/// The container's directory for one v1 controller or the v2 directory.
fn dir(cg: &Cgroup, controller: &str) -> PathBuf {
    cg.dir_for(controller).unwrap().expect("directory")
}

fn check_limits(cg: &Cgroup) {
    if cg.layout == Layout::V1 {
        let mem = dir(cg, "memory");
        assert_eq!(read(&mem.join("memory.limit_in_bytes")), "67108864");
        assert_eq!(read(&dir(cg, "pids").join("pids.max")), "16");
        let devices = read(&dir(cg, "devices").join("devices.list"));
        assert!(!devices.contains("a *:* rwm"), "deny-all first: {devices}");
        assert!(
            devices.contains("c 1:3 rwm"),
            "/dev/null allowed: {devices}"
        );
    } else {
        let d = dir(cg, "");
        assert_eq!(read(&d.join("memory.max")), "67108864");
        assert_eq!(read(&d.join("pids.max")), "16");
    }
}

#[test]
fn host_lifecycle_create_limit_freeze_stats_remove() {
    if !privileged("host_lifecycle_create_limit_freeze_stats_remove") {
        return;
    }
    let name = unique("husk-test");
    let raw = PathBuf::from(format!("/{name}"));
    let (cg, warning) = Cgroup::prepare(Some(&raw), &name, &Options::default()).unwrap();
    assert!(warning.is_none());
    let child = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = child.id() as i32;
    let mut g = Guard {
        cg: cg.clone(),
        child: Some(child),
    };

    cg.enter(pid, Some(&limits())).unwrap();
    let dirs: Vec<PathBuf> = cg.leaf_dirs().unwrap().into_iter().map(|d| d.1).collect();
    assert!(
        !dirs.is_empty() && dirs.iter().all(|d| d.is_dir()),
        "{dirs:?}"
    );
    let own = read(&PathBuf::from(format!("/proc/{pid}/cgroup")));
    assert!(own.contains(&format!("/{name}")), "{own}");
    check_limits(&cg);
    assert_eq!(cg.pids().unwrap(), vec![pid]);
    assert_eq!(cg.devices_enforced(), cg.layout == Layout::V1);

    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());

    let stats = cg.stats().unwrap();
    assert_eq!(stats["pids"]["current"], 1, "{stats}");
    assert_eq!(stats["pids"]["limit"], 16, "{stats}");
    assert_eq!(stats["memory"]["usage"]["limit"], 64 << 20, "{stats}");
    assert!(stats["cpu"]["usage"].is_object(), "{stats}");
    assert_eq!(cg.oom_kills().unwrap(), 0);

    // remove never signals: with the child alive the kernel refuses and the child survives.
    assert!(cg.remove().is_err());
    assert!(dirs.iter().all(|d| d.is_dir()));
    assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok());

    g.kill_child();
    cg.remove().unwrap();
    assert!(dirs.iter().all(|d| !d.exists()), "{dirs:?}");
}

#[test]
fn host_remove_refuses_our_own_cgroup() {
    let proc_self = stdfs::read_to_string("/proc/self/cgroup").unwrap();
    let (cg, _) = Cgroup::prepare(None, "probe", &Options::default()).unwrap();
    let wanted_v2 = cg.layout == Layout::V2;
    let Some(top) = path::own_cgroups(&proc_self)
        .into_iter()
        .filter(|(ctrls, _)| ctrls.is_empty() == wanted_v2)
        .find_map(|(_, p)| p.components().next().map(|c| PathBuf::from(c.as_os_str())))
    else {
        eprintln!("skipping host_remove_refuses_our_own_cgroup: this process sits in root cgroups");
        return;
    };
    let ours = Cgroup { path: top, ..cg };
    let err = ours.remove().unwrap_err();
    assert!(matches!(err, CgroupError::RefuseRemove { .. }), "{err}");
}

#[test]
fn host_auto_layout_and_rootless_fallback() {
    let root = Path::new("/sys/fs/cgroup");
    let unified = root.join("unified");
    let (cg, _) = Cgroup::prepare(None, "probe", &Options::default()).unwrap();
    if unified.join("cgroup.controllers").exists() {
        assert_eq!(cg.layout, Layout::V1, "hybrid hosts are driven as v1");
    }
    let opts = Options {
        rootless: true,
        ..Options::default()
    };
    let (cg, warning) = Cgroup::prepare_as(None, "probe", &opts, (1001, 1001)).unwrap();
    if cg.driver == Driver::Disabled {
        let w = warning.unwrap();
        assert!(w.starts_with("cgroups not writable by uid 1001"), "{w}");
    }
}

#[test]
fn host_oom_kill_is_counted() {
    if !privileged("host_oom_kill_is_counted") {
        return;
    }
    if !stdfs::read_to_string("/proc/swaps").is_ok_and(|s| s.lines().count() <= 1) {
        eprintln!("skipping host_oom_kill_is_counted: swap is on, a small limit may swap instead");
        return;
    }
    let name = unique("husk-test-oom");
    let raw = PathBuf::from(format!("/{name}"));
    let (cg, _) = Cgroup::prepare(Some(&raw), &name, &Options::default()).unwrap();
    // The child waits for a line on stdin, so it allocates only once it is inside the cgroup.
    let mut child = Command::new("sh")
        .args([
            "-c",
            "read x; exec dd if=/dev/zero of=/dev/null bs=256M count=1",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let stdin = child.stdin.take();
    let mut g = Guard {
        cg: cg.clone(),
        child: Some(child),
    };
    let mut memory = LinuxMemory::default();
    memory.set_limit(Some(16 << 20));
    let mut r = LinuxResources::default();
    r.set_memory(Some(memory));
    cg.enter(pid, Some(&r)).unwrap();
    stdin.unwrap().write_all(b"go\n").unwrap();
    let status = g.child.as_mut().unwrap().wait().unwrap();
    assert!(
        !status.success(),
        "dd should have been OOM-killed: {status:?}"
    );
    assert!(cg.oom_kills().unwrap() >= 1);
    g.child = None;
    cg.remove().unwrap();
}

/// The facade's own v1 device rules (the fast path of a devices-only `enter`) leave the same
/// `devices.list` as libcgroups' devices controller, for a spec with its own rules on top.
#[test]
fn host_v1_device_rules_match_libcgroups() {
    if !privileged("host_v1_device_rules_match_libcgroups") {
        return;
    }
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;
    let mut r = LinuxResources::default();
    r.set_devices(Some(vec![
        LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(1)
            .minor(11)
            .access("rw")
            .build()
            .unwrap(),
        LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .typ(LinuxDeviceType::C)
            .major(5)
            .minor(0)
            .access("w")
            .build()
            .unwrap(),
    ]));
    assert!(only_devices(&r) && !only_devices(&limits()));
    let list = |use_libcgroups: bool| {
        let name = unique("husk-test");
        let raw = PathBuf::from(format!("/{name}"));
        let (cg, _) = Cgroup::prepare(Some(&raw), &name, &Options::default()).unwrap();
        if cg.layout != Layout::V1 {
            return None;
        }
        let child = Command::new("sleep").arg("60").spawn().unwrap();
        let g = Guard {
            cg: cg.clone(),
            child: Some(child),
        };
        let effective = with_deny_all(&r);
        fs::create_v1(&cg.leaf_dirs().unwrap()).unwrap();
        if use_libcgroups {
            cg.manager()
                .unwrap()
                .apply(&controller_opt(&effective))
                .unwrap();
        } else {
            apply_v1_devices(&dirs_for(&cg.leaf_dirs().unwrap(), "devices"), &effective).unwrap();
        }
        let listed = read(&dir(&cg, "devices").join("devices.list"));
        drop(g);
        Some(listed)
    };
    let (Some(ours), Some(theirs)) = (list(false), list(true)) else {
        eprintln!("skipping: not a cgroup v1 host");
        return;
    };
    assert_eq!(ours, theirs);
    assert!(
        ours.contains("c 1:11 rw") && !ours.contains("a *:* rwm"),
        "{ours}"
    );
}
