//! v2 code path against a cgroupfs-shaped tree of plain files (Layout::V2, mount_root = temp dir).
//!
//! A plain directory is not a cgroupfs: mkdir does not populate interface files and writes do not
//! truncate, so the tree pre-creates each level the way the kernel would, with empty files where
//! libcgroups writes, and each test sets the kernel's side (cgroup.events, stats) by hand.

use std::fs as stdfs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

use super::testutil::TempTree;
use super::*;

const ID: &str = "ctr1";

fn opts(tree: &TempTree) -> Options {
    Options {
        driver: Driver::Cgroupfs,
        rootless: false,
        mount_root: tree.root().to_path_buf(),
        layout: Layout::V2,
    }
}

/// Root with three controllers, `husk/` and the leaf as the kernel would have created them.
fn tree() -> TempTree {
    let t = TempTree::new("v2");
    for rel in ["", "husk", &format!("husk/{ID}")] {
        t.v2_cgroup(rel, "cpu memory pids");
        for f in ["memory.max", "pids.max", "cpu.weight", "cgroup.freeze"] {
            t.file(&join(rel, f), "");
        }
    }
    t
}

fn join(rel: &str, f: &str) -> String {
    if rel.is_empty() {
        f.to_owned()
    } else {
        format!("{rel}/{f}")
    }
}

fn leaf(f: &str) -> String {
    format!("husk/{ID}/{f}")
}

fn resources() -> LinuxResources {
    let mut memory = LinuxMemory::default();
    memory.set_limit(Some(64 << 20));
    let mut pids = LinuxPids::default();
    pids.set_limit(32);
    let mut cpu = LinuxCpu::default();
    cpu.set_quota(Some(50_000));
    cpu.set_period(Some(100_000));
    cpu.set_shares(Some(1024));
    let mut r = LinuxResources::default();
    r.set_memory(Some(memory));
    r.set_pids(Some(pids));
    r.set_cpu(Some(cpu));
    r
}

fn prepared(t: &TempTree) -> Cgroup {
    let (cg, warning) = Cgroup::prepare(None, ID, &opts(t)).unwrap();
    assert!(warning.is_none());
    cg
}

#[test]
fn prepare_derives_default_path_and_reports_devices() {
    let t = tree();
    let cg = prepared(&t);
    assert_eq!(cg.path, PathBuf::from(format!("husk/{ID}")));
    assert_eq!(cg.layout, Layout::V2);
    assert!(cg.is_enabled());
    assert!(
        !cg.devices_enforced(),
        "a plain directory is no cgroup2 mount: no device program"
    );
    let (cg, _) = Cgroup::prepare(Some(Path::new("/a/b")), ID, &opts(&t)).unwrap();
    assert_eq!(cg.path, PathBuf::from("a/b"));
    for bad in ["/", "", "../x", "/a/../../b"] {
        assert!(Cgroup::prepare(Some(Path::new(bad)), ID, &opts(&t)).is_err());
    }
}

#[test]
fn enter_enables_controllers_and_writes_limits() {
    let t = tree();
    let cg = prepared(&t);
    cg.enter(4321, Some(&resources())).unwrap();

    assert_eq!(t.read("cgroup.subtree_control"), "+cpu +memory +pids");
    assert_eq!(t.read("husk/cgroup.subtree_control"), "+cpu +memory +pids");
    assert_eq!(
        t.read(&leaf("cgroup.subtree_control")),
        "",
        "leaf holds processes"
    );
    assert_eq!(t.read(&leaf("memory.max")), (64u64 << 20).to_string());
    assert_eq!(t.read(&leaf("pids.max")), "32");
    assert_eq!(t.read(&leaf("cpu.max")), "50000 100000");
    // runc's shares→weight mapping: 1024 (the v1 default) becomes 100 (the v2 default).
    assert_eq!(t.read(&leaf("cpu.weight")), "100");
    assert_eq!(t.read(&leaf("cgroup.procs")), "4321");
    assert_eq!(cg.pids().unwrap(), vec![4321]);
}

#[test]
fn enter_refuses_a_populated_cgroup() {
    let t = tree();
    t.file(&leaf("cgroup.procs"), "99\n");
    let cg = prepared(&t);
    let err = cg.enter(4321, None).unwrap_err();
    assert!(matches!(err, CgroupError::InUse { .. }), "{err}");
    assert_eq!(t.read(&leaf("cgroup.procs")), "99\n");
}

#[test]
fn update_writes_new_limits_only() {
    let t = tree();
    let cg = prepared(&t);
    let mut memory = LinuxMemory::default();
    memory.set_limit(Some(1 << 30));
    let mut r = LinuxResources::default();
    r.set_memory(Some(memory));
    cg.apply(&r).unwrap();
    assert_eq!(t.read(&leaf("memory.max")), (1u64 << 30).to_string());
    assert_eq!(t.read(&leaf("pids.max")), "");
}

#[test]
fn freeze_and_thaw_write_cgroup_freeze() {
    let t = tree();
    let cg = prepared(&t);
    assert!(!cg.is_frozen().unwrap());
    // The kernel reports the transition in cgroup.events; set it as the kernel would.
    t.file(&leaf("cgroup.events"), "populated 1\nfrozen 1\n");
    cg.freeze().unwrap();
    assert_eq!(t.read(&leaf("cgroup.freeze")), "1");
    assert!(cg.is_frozen().unwrap());
    t.file(&leaf("cgroup.events"), "populated 1\nfrozen 0\n");
    cg.thaw().unwrap();
    assert_eq!(t.read(&leaf("cgroup.freeze")), "0");
    assert!(!cg.is_frozen().unwrap());
}

#[test]
fn oom_kills_come_from_memory_events() {
    let t = tree();
    let cg = prepared(&t);
    assert_eq!(cg.oom_kills().unwrap(), 0);
    t.file(
        &leaf("memory.events"),
        "low 0\nhigh 0\nmax 4\noom 3\noom_kill 3\n",
    );
    assert_eq!(cg.oom_kills().unwrap(), 3);
}

fn stats_fixture(t: &TempTree) {
    t.file(
        &leaf("cpu.stat"),
        "usage_usec 250\nuser_usec 200\nsystem_usec 50\nnr_periods 4\nnr_throttled 1\nthrottled_usec 7\n",
    );
    let psi = "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
    for f in ["cpu.pressure", "memory.pressure", "io.pressure"] {
        t.file(&leaf(f), psi);
    }
    t.file(&leaf("memory.current"), "4096\n");
    t.file(&leaf("memory.max"), "8192\n");
    t.file(&leaf("memory.peak"), "6000\n");
    t.file(&leaf("memory.stat"), "anon 100\nfile 200\n");
    t.file(&leaf("memory.swap.current"), "0\n");
    t.file(&leaf("memory.swap.max"), "max\n");
    t.file(&leaf("memory.swap.events"), "high 0\nmax 0\nfail 0\n");
    t.file(&leaf("pids.current"), "2\n");
    t.file(&leaf("pids.max"), "32\n");
    t.file(
        &leaf("io.stat"),
        "8:0 rbytes=512 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
    );
    let Ok(sizes) = stdfs::read_dir("/sys/kernel/mm/hugepages") else {
        return;
    };
    for entry in sizes.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(kb) = name
            .strip_prefix("hugepages-")
            .and_then(|s| s.strip_suffix("kB"))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let size = match kb {
            kb if kb >= 1 << 20 => format!("{}GB", kb >> 20),
            kb if kb >= 1 << 10 => format!("{}MB", kb >> 10),
            kb => format!("{kb}KB"),
        };
        for (suffix, v) in [("current", "0\n"), ("max", "max\n"), ("events", "max 0\n")] {
            t.file(&leaf(&format!("hugetlb.{size}.{suffix}")), v);
        }
    }
}

#[test]
fn stats_have_runc_events_shape() {
    let t = tree();
    stats_fixture(&t);
    let cg = prepared(&t);
    let v = cg.stats().unwrap();
    assert_eq!(v["cpu"]["usage"]["total"], 250_000, "{v}");
    assert_eq!(v["cpu"]["usage"]["user"], 200_000);
    assert_eq!(v["cpu"]["usage"]["kernel"], 50_000);
    assert_eq!(v["cpu"]["throttling"]["periods"], 4);
    assert_eq!(v["cpu"]["throttling"]["throttledPeriods"], 1);
    assert_eq!(v["memory"]["usage"]["usage"], 4096);
    assert_eq!(v["memory"]["usage"]["limit"], 8192);
    assert_eq!(v["memory"]["usage"]["max"], 6000);
    assert_eq!(v["memory"]["raw"]["anon"], 100);
    assert_eq!(v["pids"]["current"], 2);
    assert_eq!(v["pids"]["limit"], 32);
    let io = &v["blkio"]["ioServiceBytesRecursive"];
    assert!(
        io.as_array().unwrap().iter().any(|e| e["value"] == 512),
        "{v}"
    );
    assert!(v["hugetlb"].is_object());
    for key in ["cpu", "memory", "pids", "blkio", "hugetlb"] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
}

#[test]
fn remove_deletes_only_the_leaf() {
    let t = tree();
    let cg = prepared(&t);
    // The kernel's interface files vanish with rmdir; a plain directory must be emptied first.
    for entry in stdfs::read_dir(t.path(&format!("husk/{ID}"))).unwrap() {
        stdfs::remove_file(entry.unwrap().path()).unwrap();
    }
    cg.remove().unwrap();
    assert!(!t.path(&format!("husk/{ID}")).exists());
    assert!(t.path("husk").is_dir(), "parent stays");
    cg.remove().unwrap();
}

#[test]
fn remove_refuses_paths_prepare_would_not_build() {
    let t = tree();
    t.file("victim/cgroup.procs", "");
    stdfs::create_dir(t.path("empty")).unwrap();
    for bad in [
        "",
        "/",
        ".",
        "..",
        "../x",
        "husk/../..",
        "/empty",
        "empty/.",
        "a//b",
    ] {
        let cg = Cgroup {
            driver: Driver::Cgroupfs,
            path: PathBuf::from(bad),
            mount_root: t.path("husk"),
            layout: Layout::V2,
            rootless: false,
        };
        let err = cg.remove().unwrap_err();
        assert!(
            matches!(err, CgroupError::RefuseRemove { .. }),
            "{bad:?}: {err}"
        );
    }
    assert!(t.path("empty").is_dir() && t.path("victim").is_dir());
    assert!(t.path("husk").is_dir());
}

#[test]
fn rootless_without_delegation_is_disabled_with_one_warning() {
    let t = tree();
    let o = Options {
        rootless: true,
        ..opts(&t)
    };
    let (cg, warning) = Cgroup::prepare_as(None, ID, &o, (4242, 4242)).unwrap();
    assert_eq!(cg.driver, Driver::Disabled);
    let warning = warning.expect("one warning");
    assert!(warning.contains("uid 4242"), "{warning}");
    assert!(warning.contains("without resource limits"), "{warning}");
    cg.enter(1, Some(&resources())).unwrap();
    assert_eq!(
        t.read(&leaf("memory.max")),
        "",
        "disabled backend writes nothing"
    );

    // The same tree, delegated (owned by the caller): cgroups stay on.
    let me = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let (cg, warning) = Cgroup::prepare_as(None, ID, &o, me).unwrap();
    assert_eq!((cg.driver, warning), (Driver::Cgroupfs, None));
}

#[test]
fn rootless_without_a_hierarchy_is_disabled_not_an_error() {
    let t = TempTree::new("nohier");
    let o = Options {
        rootless: true,
        layout: Layout::Auto,
        mount_root: t.path("missing"),
        ..Options::default()
    };
    let (cg, warning) = Cgroup::prepare_as(None, ID, &o, (4242, 4242)).unwrap();
    assert_eq!(cg.driver, Driver::Disabled);
    assert!(warning
        .unwrap()
        .ends_with("running without resource limits"));
    let o = Options {
        rootless: false,
        ..o
    };
    assert!(matches!(
        Cgroup::prepare(None, ID, &o),
        Err(CgroupError::Detect { .. })
    ));
}
