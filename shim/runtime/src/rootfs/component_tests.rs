//! Component tests: the executor on a real tiny rootfs (busybox), in fresh namespaces.
//!
//! The parent test re-executes this test binary under `unshare` (and `setpriv` for the unprivileged
//! case) with [`CHILD_ENV`] naming a scenario; [`child_entry`] then runs plan → prepare → pivot →
//! finalize and checks what it sees from inside, exiting 0 or 1. The parent checks the exit status and
//! that nothing leaked to the host side of the bundle.
//!
//! The Root scenario needs root; the others need unprivileged user namespaces (as root, the rootless
//! one switches to uid 1001). A scenario that cannot run is skipped with a reason, unless
//! HUSK_REQUIRE_PRIVILEGED=1, when it fails.

use super::*;
use nix::sys::stat::{lstat, major, minor, SFlag};
use nix::sys::statfs::{statfs, FsType, DEVPTS_SUPER_MAGIC, PROC_SUPER_MAGIC, TMPFS_MAGIC};
use nix::sys::statvfs::{statvfs, FsFlags};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const CHILD_ENV: &str = "HUSK_ROOTFS_CHILD";
const DIR_ENV: &str = "HUSK_ROOTFS_DIR";
const TUSER: u32 = 1001;
const MQUEUE_MAGIC: FsType = FsType(0x1980_0202);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scenario {
    /// Real root, new mount+pid namespaces: mknod path.
    Root,
    /// Root mapped to root in new user and cgroup namespaces.
    Userns,
    /// uid 1001 mapped to root in a new user namespace: bind-mounted devices.
    Rootless,
    /// /proc in the image is a symlink: prepare must refuse to mount proc through it.
    SymlinkProc,
    /// Like Userns, with MS_MOVE + chroot instead of pivot_root.
    NoPivot,
    /// [`EARLY_READONLY`]: the root is read-only as soon as it is bound, before the mounts.
    EarlyReadonly,
    /// [`EARLY_READONLY`] with a mount point missing: refused, nothing created in the rootfs.
    EarlyReadonlyMissing,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Root => "root",
            Scenario::Userns => "userns",
            Scenario::Rootless => "rootless",
            Scenario::SymlinkProc => "symlink-proc",
            Scenario::NoPivot => "no-pivot",
            Scenario::EarlyReadonly => "early-readonly",
            Scenario::EarlyReadonlyMissing => "early-readonly-missing",
        }
    }

    fn from_name(s: &str) -> Option<Scenario> {
        [
            Scenario::Root,
            Scenario::Userns,
            Scenario::Rootless,
            Scenario::SymlinkProc,
            Scenario::NoPivot,
            Scenario::EarlyReadonly,
            Scenario::EarlyReadonlyMissing,
        ]
        .into_iter()
        .find(|c| c.name() == s)
    }

    fn options(self) -> Options {
        Options {
            rootless: self == Scenario::Rootless,
            userns: self != Scenario::Root,
            no_pivot: self == Scenario::NoPivot,
        }
    }
}

/// The early read-only scenarios: few mounts, /newdir only when it is to be missing.
fn early_config(scenario: Scenario) -> Spec {
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}),
        // The default devices and /dev links are made in /dev: a mount of its own.
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]}),
    ];
    if scenario == Scenario::EarlyReadonlyMissing {
        mounts.push(json!({"destination": "/newdir", "type": "tmpfs", "source": "tmpfs"}));
    }
    let v = json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs", "readonly": true},
        "annotations": {EARLY_READONLY: "true"},
        "mounts": mounts,
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}
    });
    serde_json::from_value(v).unwrap()
}

fn config(dir: &Path, scenario: Scenario) -> Spec {
    if matches!(
        scenario,
        Scenario::EarlyReadonly | Scenario::EarlyReadonlyMissing
    ) {
        return early_config(scenario);
    }
    let mut devices = vec![];
    if scenario == Scenario::Root {
        devices.push(
            json!({"path": "/dev/testfifo", "type": "p", "fileMode": 0o600, "uid": 5, "gid": 6}),
        );
    }
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "mount"}),
        json!({"type": "ipc"}),
    ];
    if scenario == Scenario::Userns {
        namespaces.push(json!({"type": "cgroup"}));
    }
    let v = json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs", "readonly": true},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]},
            {"destination": "/data", "type": "bind", "source": dir.join("hostdata"),
             "options": ["rbind", "ro", "nosuid", "rprivate"]},
            {"destination": "/etc/hostfile", "type": "bind", "source": dir.join("hostfile"), "options": ["bind"]},
            {"destination": "/evil/x", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/evil2/y", "type": "tmpfs", "source": "tmpfs"}
        ],
        "linux": {
            "namespaces": namespaces,
            "maskedPaths": ["/proc/kcore", "/etc/secretfile", "/secret", "/does/not/exist"],
            "readonlyPaths": ["/proc/sys", "/rodir", "/also/missing"],
            "devices": devices
        }
    });
    serde_json::from_value(v).unwrap()
}

/// Entry point of the re-executed child; a no-op in a normal test run.
#[test]
fn child_entry() {
    let Ok(name) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(std::env::var(DIR_ENV).unwrap());
    let scenario = Scenario::from_name(&name).unwrap();
    let code = match run_child(&dir, scenario) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("child {name} failed: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn run_child(dir: &Path, scenario: Scenario) -> Result<(), String> {
    let plan = plan(&config(dir, scenario), dir, &scenario.options()).map_err(|e| e.to_string())?;
    if scenario == Scenario::SymlinkProc {
        return match plan.prepare() {
            Err(e)
                if e.to_string()
                    .contains("must be mounted on ordinary directory") =>
            {
                Ok(())
            }
            other => Err(format!("expected a refusal to mount proc, got {other:?}")),
        };
    }
    if scenario == Scenario::EarlyReadonlyMissing {
        return match plan.prepare() {
            Err(e) if e.to_string().contains("resolve /newdir in rootfs: EROFS") => Ok(()),
            other => Err(format!("expected EROFS for /newdir, got {other:?}")),
        };
    }
    if scenario == Scenario::EarlyReadonly {
        plan.prepare().map_err(|e| format!("prepare: {e}"))?;
        let rootfs = dir.join("rootfs");
        let ro_at_once = is_ro(rootfs.to_str().unwrap());
        plan.pivot().map_err(|e| format!("pivot: {e}"))?;
        plan.finalize().map_err(|e| format!("finalize: {e}"))?;
        let checks = [
            ("read-only before pivot", ro_at_once),
            ("root read-only", erofs("/newfile")),
            ("/tmp writable", std::fs::write("/tmp/f", "x").is_ok()),
            ("proc mounted", fs_is("/proc", PROC_SUPER_MAGIC)),
        ];
        let failed: Vec<_> = checks.iter().filter(|c| !c.1).map(|c| c.0).collect();
        return if failed.is_empty() {
            Ok(())
        } else {
            Err(format!("failed checks: {failed:?}"))
        };
    }
    plan.prepare().map_err(|e| format!("prepare: {e}"))?;
    plan.pivot().map_err(|e| format!("pivot: {e}"))?;
    plan.finalize().map_err(|e| format!("finalize: {e}"))?;
    let failures: Vec<String> = checks(dir, scenario)
        .into_iter()
        .filter(|&(_, ok)| !ok)
        .map(|(what, _)| what.to_string())
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("failed checks: {failures:?}"))
    }
}

fn fs_is(path: &str, t: FsType) -> bool {
    statfs(path).is_ok_and(|s| s.filesystem_type() == t)
}

fn is_ro(path: &str) -> bool {
    statvfs(path).is_ok_and(|s| s.flags().contains(FsFlags::ST_RDONLY))
}

fn erofs(path: &str) -> bool {
    std::fs::write(path, "x").is_err_and(|e| e.raw_os_error() == Some(libc::EROFS))
}

fn kind(path: &str) -> Option<(SFlag, u32)> {
    lstat(path).ok().map(|s| {
        (
            SFlag::from_bits_truncate(s.st_mode) & SFlag::S_IFMT,
            s.st_mode & 0o7777,
        )
    })
}

fn link(path: &str) -> String {
    std::fs::read_link(path)
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// What the container must see; (description, passed).
fn checks(dir: &Path, scenario: Scenario) -> Vec<(&'static str, bool)> {
    let null = lstat("/dev/null").ok();
    let busybox = Command::new("/bin/busybox")
        .args(["sh", "-c", "echo ok"])
        .output()
        .is_ok_and(|o| o.stdout == b"ok\n");
    let mut out = vec![
        (
            "proc mounted",
            fs_is("/proc", PROC_SUPER_MAGIC) && Path::new("/proc/self/status").exists(),
        ),
        ("dev is tmpfs", fs_is("/dev", TMPFS_MAGIC)),
        (
            "devpts mounted",
            fs_is("/dev/pts", DEVPTS_SUPER_MAGIC) && Path::new("/dev/pts/ptmx").exists(),
        ),
        ("mqueue mounted", fs_is("/dev/mqueue", MQUEUE_MAGIC)),
        (
            "/dev/null is 1:3",
            null.is_some_and(|s| {
                SFlag::from_bits_truncate(s.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR
                    && (major(s.st_rdev), minor(s.st_rdev)) == (1, 3)
            }),
        ),
        (
            "/dev/null writable",
            std::fs::write("/dev/null", "x").is_ok(),
        ),
        (
            "/dev/zero exists",
            kind("/dev/zero").is_some_and(|k| k.0 == SFlag::S_IFCHR),
        ),
        ("/dev/ptmx -> pts/ptmx", link("/dev/ptmx") == "pts/ptmx"),
        (
            "/dev/fd -> /proc/self/fd",
            link("/dev/fd") == "/proc/self/fd",
        ),
        ("/dev/stderr link", link("/dev/stderr") == "/proc/self/fd/2"),
        // Some kernels have no /proc/kcore (CONFIG_PROC_KCORE=n); a missing masked path is skipped.
        (
            "kcore masked",
            !Path::new("/proc/kcore").exists()
                || std::fs::read("/proc/kcore").is_ok_and(|b| b.is_empty()),
        ),
        (
            "file masked",
            std::fs::read("/etc/secretfile").is_ok_and(|b| b.is_empty()),
        ),
        (
            "secret dir masked",
            std::fs::read_dir("/secret").is_ok_and(|mut d| d.next().is_none()),
        ),
        ("secret mask read-only", erofs("/secret/new")),
        ("/proc/sys read-only", is_ro("/proc/sys")),
        ("/rodir read-only", erofs("/rodir/new")),
        ("root read-only", erofs("/newfile")),
        ("/tmp writable", std::fs::write("/tmp/newfile", "x").is_ok()),
        (
            "/data readable",
            std::fs::read_to_string("/data/hello").is_ok_and(|s| s == "hello"),
        ),
        ("/data read-only", erofs("/data/new")),
        (
            "/data nosuid",
            statvfs("/data").is_ok_and(|s| s.flags().contains(FsFlags::ST_NOSUID)),
        ),
        (
            "file bind",
            std::fs::read_to_string("/etc/hostfile").is_ok_and(|s| s == "hostfile"),
        ),
        ("/evil/x inside", fs_is("/evil/x", TMPFS_MAGIC)),
        ("/evil2/y inside", fs_is("/evil2/y", TMPFS_MAGIC)),
        (
            "sysfs present",
            Path::new("/sys/kernel").is_dir() && is_ro("/sys"),
        ),
        ("cgroup read-only", is_ro("/sys/fs/cgroup")),
        (
            "cgroup populated",
            std::fs::read_dir("/sys/fs/cgroup").is_ok_and(|mut d| d.next().is_some()),
        ),
        // v1 layout (a tmpfs of hierarchies); on v2 without a cgroupns, like runc, the whole
        // hierarchy is mounted read-only.
        (
            "v1 cgroup dirs are our own",
            !fs_is("/sys/fs/cgroup", TMPFS_MAGIC) || own_cgroups(),
        ),
        ("old root gone", !dir.join("rootfs").exists()),
        ("busybox runs", busybox),
    ];
    if scenario == Scenario::Root {
        out.push((
            "fifo device made with mode and owner",
            kind("/dev/testfifo") == Some((SFlag::S_IFIFO, 0o600))
                && lstat("/dev/testfifo").is_ok_and(|s| (s.st_uid, s.st_gid) == (5, 6)),
        ));
    }
    out
}

/// Every v1 hierarchy under /sys/fs/cgroup is our own cgroup (lists our pid), not a hierarchy root.
fn own_cgroups() -> bool {
    let me = std::process::id().to_string();
    let procs = |d: &Path| std::fs::read_to_string(d.join("cgroup.procs"));
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return false;
    };
    let dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    !dirs.is_empty()
        && dirs
            .iter()
            .all(|d| procs(d).is_ok_and(|p| p.lines().any(|l| l == me)))
}

/// Whether this scenario can run here; panics when it is required but cannot run. Only the Root
/// scenario needs root: the others need a user namespace, and as a non-root user the Rootless one
/// runs as that user instead of switching to uid 1001.
fn runnable(test: &str, scenario: Scenario) -> bool {
    let required = std::env::var("HUSK_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1");
    let missing = ["/bin/busybox", "/usr/bin/unshare", "/usr/bin/setpriv"]
        .into_iter()
        .find(|p| !Path::new(p).exists());
    let reason = if scenario == Scenario::Root && !is_root() {
        Some("not root".to_string())
    } else {
        missing.map(|p| format!("{p} missing"))
    };
    match reason {
        None => true,
        Some(r) if required => panic!("{test}: required (HUSK_REQUIRE_PRIVILEGED=1) but {r}"),
        Some(r) => {
            eprintln!("skipping {test}: {r}");
            false
        }
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Lays out the bundle: rootfs with busybox and a hostile symlink, host-side data and an "outside".
fn bundle(scenario: Scenario) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "husk-rootfs-{}-{}",
        scenario.name(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let r = dir.join("rootfs");
    for d in [
        "bin", "proc", "sys", "dev", "etc", "tmp", "secret", "rodir", "outside", "hostdata",
    ] {
        let p = if matches!(d, "outside" | "hostdata") {
            dir.join(d)
        } else {
            r.join(d)
        };
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::copy("/bin/busybox", r.join("bin/busybox")).unwrap();
    std::fs::write(r.join("secret/file"), "secret").unwrap();
    std::fs::write(r.join("etc/secretfile"), "secret").unwrap();
    std::fs::write(dir.join("hostdata/hello"), "hello").unwrap();
    std::fs::write(dir.join("hostfile"), "hostfile").unwrap();
    // outside/x exists, so a resolver that followed the link out would find (and mount on) it
    // without having to create anything.
    std::fs::create_dir(dir.join("outside/x")).unwrap();
    std::os::unix::fs::symlink(dir.join("outside"), r.join("evil")).unwrap();
    std::os::unix::fs::symlink("../../../../../outside", r.join("evil2")).unwrap();
    if scenario == Scenario::SymlinkProc {
        std::fs::remove_dir(r.join("proc")).unwrap();
        std::fs::create_dir(r.join("realproc")).unwrap();
        std::os::unix::fs::symlink("/realproc", r.join("proc")).unwrap();
    }
    let exe = dir.join("test-exe");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    if scenario == Scenario::Rootless && is_root() {
        let status = Command::new("chown")
            .args(["-R", &format!("{TUSER}:{TUSER}")])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success());
    }
    dir
}

fn run(scenario: Scenario) {
    let test = format!("rootfs component test {}", scenario.name());
    if !runnable(&test, scenario) {
        return;
    }
    let dir = bundle(scenario);
    let mut cmd = if scenario == Scenario::Rootless && is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={TUSER}"),
            &format!("--regid={TUSER}"),
            "--clear-groups",
            "unshare",
        ]);
        c
    } else {
        Command::new("unshare")
    };
    if scenario != Scenario::Root {
        cmd.args(["--user", "--map-root-user", "--ipc"]);
    }
    if scenario == Scenario::Userns {
        cmd.arg("--cgroup");
    }
    cmd.args(["--mount", "--pid", "--fork"])
        .arg(dir.join("test-exe"))
        .args([
            "--exact",
            "rootfs::component_tests::child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, scenario.name())
        .env(DIR_ENV, &dir)
        .env_remove("RUST_LOG");
    let out = cmd.output().unwrap();
    let leaked: Vec<_> = std::fs::read_dir(dir.join("outside"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "x")
        .chain(
            std::fs::read_dir(dir.join("outside/x"))
                .unwrap()
                .map(|e| e.unwrap().file_name()),
        )
        .collect();
    let newdir = dir.join("rootfs/newdir").exists();
    let realproc_empty =
        std::fs::read_dir(dir.join("rootfs/realproc")).map_or(true, |mut d| d.next().is_none());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{test}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        leaked.is_empty(),
        "{test}: escaped into outside: {leaked:?}"
    );
    assert!(realproc_empty, "{test}: proc reached through a symlink");
    assert!(
        !newdir,
        "{test}: a mount point was created in a read-only root"
    );
}

#[test]
fn executor_as_root() {
    run(Scenario::Root);
}

#[test]
fn executor_in_userns() {
    run(Scenario::Userns);
}

#[test]
fn executor_rootless_uid_1001() {
    run(Scenario::Rootless);
}

#[test]
fn executor_no_pivot() {
    run(Scenario::NoPivot);
}

#[test]
fn proc_through_symlink_refused() {
    run(Scenario::SymlinkProc);
}

#[test]
fn early_readonly_root() {
    run(Scenario::EarlyReadonly);
}

#[test]
fn early_readonly_root_creates_nothing() {
    run(Scenario::EarlyReadonlyMissing);
}
