//! Unit tests of the pure planner.

use super::*;
use serde_json::json;

/// runc's `spec` default mounts and paths, plus a few extra entries.
fn spec(extra: serde_json::Value) -> Spec {
    let mut v = json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs", "readonly": true},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            {"destination": "/data/", "type": "bind", "source": "data", "options": ["rbind", "ro", "rslave"]},
            {"destination": "etc/../hosts", "source": "/etc/hosts", "options": ["bind"]}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "mount"}],
            "maskedPaths": ["/proc/kcore", "/proc/acpi/"],
            "readonlyPaths": ["/proc/sys"],
            "devices": [
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 8630, "uid": 0, "gid": 0},
                {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 438, "uid": 7}
            ]
        }
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn plan_of(spec: &Spec, options: Options) -> Plan {
    plan(spec, Path::new("/bundle"), &options).unwrap()
}

fn find<'a>(p: &'a Plan, dest: &str) -> &'a MountOp {
    p.mounts
        .iter()
        .find(|m| m.destination == Path::new(dest))
        .unwrap()
}

#[test]
fn order_and_destinations_preserved() {
    let p = plan_of(&spec(json!({})), Options::default());
    let dests: Vec<_> = p
        .mounts
        .iter()
        .map(|m| m.destination.to_str().unwrap())
        .collect();
    assert_eq!(
        dests,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/mqueue",
            "/sys",
            "/sys/fs/cgroup",
            "/data",
            "/hosts"
        ]
    );
    assert_eq!(p.rootfs, PathBuf::from("/bundle/rootfs"));
    assert!(p.readonly);
    assert_eq!(p.propagation, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
}

#[test]
fn fs_and_bind_kinds() {
    let p = plan_of(&spec(json!({})), Options::default());
    let dev = find(&p, "/dev");
    assert_eq!(
        dev.kind,
        MountKind::Fs {
            fstype: "tmpfs".into(),
            source: "tmpfs".into()
        }
    );
    assert_eq!(
        dev.options.flags,
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME
    );
    assert_eq!(dev.options.data, "mode=755,size=65536k");
    let data = find(&p, "/data");
    assert_eq!(
        data.kind,
        MountKind::Bind {
            source: "/bundle/data".into()
        }
    );
    assert_eq!(
        data.options.flags,
        MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY
    );
    assert_eq!(
        data.options.propagation,
        [MsFlags::MS_SLAVE | MsFlags::MS_REC]
    );
    let hosts = find(&p, "/hosts");
    assert_eq!(
        hosts.kind,
        MountKind::Bind {
            source: "/etc/hosts".into()
        }
    );
    assert_eq!(
        find(&p, "/sys/fs/cgroup").kind,
        MountKind::Cgroup { cgroupns: false }
    );
    assert!(p.mounts.iter().all(|m| m.fallback.is_none()));
}

#[test]
fn userns_fallbacks() {
    let opts = Options {
        userns: true,
        rootless: true,
        ..Options::default()
    };
    let p = plan_of(&spec(json!({})), opts.clone());
    // No network namespace of its own: sysfs is an rbind of the host's /sys straight away.
    let sys = find(&p, "/sys");
    assert_eq!(
        sys.kind,
        MountKind::Bind {
            source: "/sys".into()
        }
    );
    assert!(sys
        .options
        .flags
        .contains(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID));
    let mq = find(&p, "/dev/mqueue");
    assert_eq!(
        mq.fallback.as_ref().unwrap().kind,
        MountKind::Bind {
            source: "/dev/mqueue".into()
        }
    );
    let pts = find(&p, "/dev/pts");
    assert_eq!(
        pts.fallback.as_ref().unwrap().options.data,
        "newinstance,ptmxmode=0666,mode=0620"
    );

    let with_net = spec(json!({"linux": {"namespaces": [{"type": "network"}, {"type": "mount"}]}}));
    let p = plan_of(&with_net, opts);
    let cg = spec(json!({"linux": {"namespaces": [{"type": "cgroup"}, {"type": "mount"}]}}));
    assert_eq!(
        find(&plan_of(&cg, Options::default()), "/sys/fs/cgroup").kind,
        MountKind::Cgroup { cgroupns: true }
    );
    let sys = find(&p, "/sys");
    assert!(matches!(sys.kind, MountKind::Fs { .. }));
    assert!(sys.fallback.is_some());
}

#[test]
fn devices_defaults_merged() {
    let p = plan_of(&spec(json!({})), Options::default());
    let paths: Vec<_> = p.devices.iter().map(|d| d.path.to_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "/dev/zero",
            "/dev/full",
            "/dev/random",
            "/dev/urandom",
            "/dev/tty",
            "/dev/fuse",
            "/dev/null"
        ]
    );
    let fuse = &p.devices[5];
    assert_eq!((fuse.major, fuse.minor, fuse.mode), (10, 229, 0o666));
    let null = &p.devices[6];
    assert_eq!((null.kind, null.uid, null.gid), (DeviceKind::Char, 7, 0));
    assert!(p.setup_dev);
    assert!(p
        .dev_symlinks
        .contains(&("/proc/self/fd".into(), "/dev/fd".into())));
}

#[test]
fn dev_bind_skips_device_setup() {
    let s = spec(
        json!({"mounts": [{"destination": "/dev/", "type": "bind", "source": "/dev", "options": ["rbind"]}]}),
    );
    assert!(!plan_of(&s, Options::default()).setup_dev);
}

/// Issue 14: the launcher binds the image's /dev, then covers it with a tmpfs (--contain with an
/// overlay): the tmpfs is the /dev the container gets, so its devices must be made.
#[test]
fn dev_set_up_when_the_last_dev_mount_is_a_tmpfs() {
    let s = spec(json!({"mounts": [
        {"destination": "/dev", "type": "bind", "source": "/img/dev", "options": ["rbind", "ro"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]}
    ]}));
    assert!(plan_of(&s, Options::default()).setup_dev);
}

#[test]
fn masked_and_readonly_paths() {
    let p = plan_of(&spec(json!({})), Options::default());
    assert_eq!(
        p.masked_paths,
        [PathBuf::from("/proc/kcore"), PathBuf::from("/proc/acpi")]
    );
    assert_eq!(p.readonly_paths, [PathBuf::from("/proc/sys")]);
}

#[test]
fn rootfs_propagation_parsed_or_rejected() {
    let s = spec(json!({"linux": {"rootfsPropagation": "rslave"}}));
    assert_eq!(
        plan_of(&s, Options::default()).propagation,
        MsFlags::MS_SLAVE | MsFlags::MS_REC
    );
    let s = spec(json!({"linux": {"rootfsPropagation": "sideways"}}));
    let e = plan(&s, Path::new("/b"), &Options::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "parse linux.rootfsPropagation \"sideways\": unknown propagation"
    );
}

#[test]
fn planning_errors_name_the_mount() {
    let s = spec(
        json!({"mounts": [{"destination": "/x", "type": "bind", "source": "/y", "options": ["idmap"]}]}),
    );
    let e = plan(&s, Path::new("/b"), &Options::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "parse mounts /x option \"idmap\": unsupported"
    );
    let s = spec(json!({"mounts": [{"destination": "/x", "options": ["bind"]}]}));
    let e = plan(&s, Path::new("/b"), &Options::default()).unwrap_err();
    assert_eq!(e.to_string(), "plan mount /x: no source");
    let s = spec(json!({"mounts": [{"destination": "/x", "source": "none"}]}));
    let e = plan(&s, Path::new("/b"), &Options::default()).unwrap_err();
    assert_eq!(e.to_string(), "plan mount /x: no type");
    let s = spec(json!({"linux": {"devices": [{"path": "/dev/all", "type": "a"}]}}));
    let e = plan(&s, Path::new("/b"), &Options::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "plan linux.devices /dev/all: unsupported device type \"a\""
    );
}

#[test]
fn clean_paths() {
    assert_eq!(clean(Path::new("a/./b/../c/")), PathBuf::from("/a/c"));
    assert_eq!(clean(Path::new("/../../x")), PathBuf::from("/x"));
    assert_eq!(clean(Path::new("")), PathBuf::from("/"));
}

#[test]
fn plan_is_printable() {
    let p = plan_of(&spec(json!({})), Options::default());
    let s = format!("{p:?}");
    assert!(s.contains("MS_STRICTATIME"), "{s}");
}

#[test]
fn early_readonly_needs_the_annotation_and_a_readonly_root() {
    let early = |extra| plan_of(&spec(extra), Options::default()).readonly_early;
    assert!(!early(json!({})));
    assert!(early(json!({"annotations": {EARLY_READONLY: "true"}})));
    assert!(!early(json!({"annotations": {EARLY_READONLY: "yes"}})));
    let rw = json!({"annotations": {EARLY_READONLY: "true"}, "root": {"readonly": false}});
    assert!(!early(rw));
}
