//! Direct cgroupfs work the facade does itself rather than through libcgroups: creating the
//! directories (so resources are applied before the pid enters), enabling v2 controllers on the way
//! down, refusing to reuse a populated cgroup, rmdir without signalling anyone, freezer and OOM
//! reads, and the rootless writability check.
//!
//! Why not libcgroups for these: its `remove()` SIGKILLs every pid in the cgroup before rmdir, which
//! would kill the wrong processes if a handle ever named a foreign cgroup; its v2 controller enabling
//! writes one controller per write(2), which a test tree of plain files cannot show.
//! See cgroups(7) and Documentation/admin-guide/cgroup-v2.rst ("no internal process" rule).

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use super::CgroupError;

pub const PROCS: &str = "cgroup.procs";

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// v1 controller mount points (one entry per distinct mount; co-mounted controllers share one).
///
/// One plain read of /proc/self/mountinfo, once per process (cached): libcgroups' v1 manager re-reads
/// and re-parses it, through a hardened procfs handle, once per controller (12 reads plus 12 of
/// /proc/self/cgroup per manager), which was the largest single cost of `run` on a v1 host. The
/// hardening guards against a /proc a container controls; this is the caller's own /proc on the
/// host. The matching rule is libcgroups' `get_subsystem_mount_point`'s: the first `cgroup` mount
/// whose path ends with the controller's name (or a co-mount of it).
pub fn v1_mounts() -> Result<Vec<(String, PathBuf)>, CgroupError> {
    static MOUNTS: std::sync::OnceLock<Vec<(String, PathBuf)>> = std::sync::OnceLock::new();
    if let Some(m) = MOUNTS.get() {
        return Ok(m.clone());
    }
    let info = Path::new("/proc/self/mountinfo");
    let text = crate::host::mountinfo().map_err(io("read", info))?;
    let mounts = match_v1_controllers(&cgroup_v1_mount_points(text));
    Ok(MOUNTS.get_or_init(|| mounts).clone())
}

/// The mount points of every `cgroup` (v1) filesystem in a mountinfo text, in order.
fn cgroup_v1_mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fstype = right.split(' ').next()?;
            let point = left.split(' ').nth(4)?;
            (fstype == "cgroup").then(|| PathBuf::from(unescape_octal(point)))
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes one value per write(2) to a cgroup file, in order (v1 `devices.allow`/`devices.deny`
/// take one rule per write).
pub fn write_each<'a>(
    path: &Path,
    values: impl IntoIterator<Item = &'a str>,
) -> Result<(), CgroupError> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io("open", path))?;
    for v in values {
        f.write_all(v.as_bytes()).map_err(io("write", path))?;
    }
    Ok(())
}

/// Moves `pid` into each directory (v1: one per hierarchy).
pub fn attach(dirs: &[PathBuf], pid: i32) -> Result<(), CgroupError> {
    let pid = pid.to_string();
    for dir in dirs {
        let procs = dir.join(PROCS);
        write_existing(&procs, &pid).map_err(io("add pid to", &procs))?;
    }
    Ok(())
}

/// Moves the calling thread (the whole process, when it has one thread) into the cgroup of each
/// v1 `tasks` file: `0` names the writer, and a single thread moving itself takes no global lock.
pub fn join_self(tasks: &[PathBuf]) -> Result<(), CgroupError> {
    join_self_by_fd(open_for_join(tasks)?, tasks)
}

/// The `tasks` files opened for writing now, for a [`join_self_by_fd`] from where their paths
/// cannot be reached (another mount namespace).
pub fn open_for_join(tasks: &[PathBuf]) -> Result<Vec<std::os::fd::OwnedFd>, CgroupError> {
    tasks
        .iter()
        .map(|f| {
            fs::OpenOptions::new()
                .write(true)
                .open(f)
                .map(Into::into)
                .map_err(io("open", f))
        })
        .collect()
}

/// [`join_self`] through files opened by [`open_for_join`] (`names` for errors); closes them.
pub fn join_self_by_fd(
    fds: Vec<std::os::fd::OwnedFd>,
    names: &[PathBuf],
) -> Result<(), CgroupError> {
    use std::io::Write;
    for (fd, name) in fds.into_iter().zip(names) {
        fs::File::from(fd)
            .write_all(b"0")
            .map_err(io("join", name))?;
    }
    Ok(())
}

/// Writes `value` to an existing file in one write(2): no O_CREAT or O_TRUNC, which a cgroupfs
/// file ignores anyway.
fn write_existing(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(value.as_bytes())
}

/// Every controller libcgroups drives, with the first mount point that serves it.
fn match_v1_controllers(points: &[PathBuf]) -> Vec<(String, PathBuf)> {
    let mut mounts: Vec<(String, PathBuf)> = V1_CONTROLLERS
        .iter()
        .filter_map(|ctrl| {
            let mount = points.iter().find(|m| serves(m, ctrl))?;
            Some((ctrl.to_string(), mount.clone()))
        })
        .collect();
    mounts.sort();
    mounts.dedup_by(|a, b| a.1 == b.1);
    mounts
}

/// libcgroups' `v1::controller_type::CONTROLLERS` (not exported), in its order.
pub(super) const V1_CONTROLLERS: [&str; 12] = [
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "hugetlb",
    "memory",
    "pids",
    "perf_event",
    "blkio",
    "net_prio",
    "net_cls",
    "freezer",
];

/// Whether mount point `m` serves `ctrl`, by libcgroups' rule (component-wise suffix match).
pub(super) fn serves(m: &Path, ctrl: &str) -> bool {
    let names: &[&str] = match ctrl {
        "net_cls" => &["net_cls,net_prio", "net_prio,net_cls", "net_cls"],
        "net_prio" => &["net_cls,net_prio", "net_prio,net_cls", "net_prio"],
        "cpu" => &["cpu,cpuacct", "cpu"],
        "cpuacct" => &["cpu,cpuacct", "cpuacct"],
        other => return m.ends_with(other),
    };
    names.iter().any(|n| m.ends_with(n))
}

/// Reads a cgroup file; `None` when it (or its directory) does not exist.
pub fn read_opt(path: &Path) -> Result<Option<String>, CgroupError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("read", path)(e)),
    }
}

/// Refuses to take over a cgroup that already holds processes (someone else's, or our own caller's).
pub fn ensure_unused(dir: &Path) -> Result<(), CgroupError> {
    let procs = read_opt(&dir.join(PROCS))?.unwrap_or_default();
    if procs.trim().is_empty() {
        Ok(())
    } else {
        Err(CgroupError::InUse {
            path: dir.to_path_buf(),
        })
    }
}

/// Creates the container's directory in each v1 hierarchy (`(controller, dir)` as `leaf_dirs`
/// gives them). A directory that already exists must hold no process; a fresh one is empty by
/// definition, so the common case costs one mkdir per hierarchy.
pub fn create_v1(leaf: &[(String, PathBuf)]) -> Result<(), CgroupError> {
    // A cpuset co-mounted with a controller that sorts next to it is listed under that one's name.
    let cpuset_listed = leaf.iter().any(|(c, _)| c == "cpuset");
    for (ctrl, dir) in leaf {
        match fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => ensure_unused(dir)?,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                fs::create_dir_all(dir).map_err(io("create cgroup", dir))?;
                // Another creator may have won the race for the leaf itself.
                ensure_unused(dir)?;
            }
            Err(e) => return Err(io("create cgroup", dir)(e)),
        }
        if ctrl == "cpuset" || !cpuset_listed {
            fill_cpuset(dir)?;
        }
    }
    Ok(())
}

/// A new v1 cpuset cgroup starts with empty cpuset.cpus/mems, and no task can join it (nor can a
/// child be given CPUs) until they are set: copy them down from the nearest ancestor that has them,
/// as runc does.
fn fill_cpuset(dir: &Path) -> Result<(), CgroupError> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        cpuset_value(dir, file)?;
    }
    Ok(())
}

/// `dir/file`'s value, first copied down from the nearest ancestor with one if it is empty. Above
/// the hierarchy's root (no such file) the value is empty and nothing is written.
fn cpuset_value(dir: &Path, file: &str) -> Result<String, CgroupError> {
    let mine = dir.join(file);
    let Some(current) = read_opt(&mine)? else {
        return Ok(String::new());
    };
    let current = current.trim();
    if !current.is_empty() {
        return Ok(current.to_string());
    }
    let Some(parent) = dir.parent() else {
        return Ok(String::new());
    };
    let value = cpuset_value(parent, file)?;
    if !value.is_empty() {
        fs::write(&mine, &value).map_err(io("write", &mine))?;
    }
    Ok(value)
}

/// Creates `root/rel` one level at a time and enables, in the root and every intermediate level, all
/// controllers that level has. The leaf gets none: a v2 cgroup with processes cannot also delegate
/// controllers to children.
pub fn create_v2(root: &Path, rel: &Path) -> Result<(), CgroupError> {
    let mut dir = root.to_path_buf();
    for part in rel.components() {
        enable_controllers(&dir)?;
        dir.push(part);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("create cgroup", &dir)(e)),
        }
    }
    Ok(())
}

/// Writes `+c1 +c2 ...` (all of this level's cgroup.controllers) to its cgroup.subtree_control in one
/// write; the kernel applies the whole list or nothing. If that fails (e.g. a controller is busy),
/// falls back to one controller per write and lets each fail on its own: a limit that needs a
/// missing controller fails later, when it is applied, with the file name in the error.
fn enable_controllers(dir: &Path) -> Result<(), CgroupError> {
    let Some(available) = read_opt(&dir.join("cgroup.controllers"))? else {
        return Ok(());
    };
    let wanted: Vec<String> = available
        .split_whitespace()
        .map(|c| format!("+{c}"))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let file = dir.join("cgroup.subtree_control");
    if fs::write(&file, wanted.join(" ")).is_ok() {
        return Ok(());
    }
    for one in &wanted {
        if let Err(e) = fs::write(&file, one) {
            log::debug!("enable {one} in {}: {e}", file.display());
        }
    }
    Ok(())
}

/// rmdir with a short retry: the kernel keeps a cgroup busy for a moment after its last task exits.
/// A missing directory counts as removed. Never signals anything.
pub fn remove_dir(dir: &Path) -> Result<(), CgroupError> {
    let mut delay = Duration::from_millis(10);
    for attempt in 0.. {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if attempt < 5 && e.raw_os_error() == Some(libc::EBUSY) => {
                sleep(delay);
                delay *= 2;
            }
            Err(e) => return Err(io("remove cgroup", dir)(e)),
        }
    }
    Ok(())
}

/// Value of `key` in a flat-keyed file such as memory.events or memory.oom_control; 0 when absent.
pub fn keyed_value(path: &Path, key: &str) -> Result<u64, CgroupError> {
    let Some(text) = read_opt(path)? else {
        return Ok(0);
    };
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some(key) {
            let value = words.next().unwrap_or_default();
            return value.parse().map_err(|_| CgroupError::Parse {
                path: path.to_path_buf(),
                content: line.to_owned(),
            });
        }
    }
    Ok(0)
}

/// v1: freezer.state reads FROZEN (FREEZING is still running, as runc reports it).
pub fn v1_frozen(dir: &Path) -> Result<bool, CgroupError> {
    Ok(read_opt(&dir.join("freezer.state"))?.is_some_and(|s| s.trim() == "FROZEN"))
}

/// v2: cgroup.events says `frozen 1` (cgroup.freeze is only the request).
pub fn v2_frozen(dir: &Path) -> Result<bool, CgroupError> {
    Ok(keyed_value(&dir.join("cgroup.events"), "frozen")? == 1)
}

/// The deepest existing directory at or above `path`.
fn nearest_existing(path: &Path) -> Option<&Path> {
    path.ancestors().find(|p| p.is_dir())
}

/// Whether `uid`/`gid` may write `path`. For our own uid the kernel answers (faccessat with
/// AT_EACCESS): uid 0 inside a user namespace (rootless podman) may NOT write the host's root-owned
/// cgroup dirs. For another uid, by mode bits (root always may). Delegation (systemd `Delegate=yes`,
/// or a chown by an administrator) shows up exactly as ownership of the directory.
fn writable_by(path: &Path, uid: u32, gid: u32) -> bool {
    if uid == nix::unistd::geteuid().as_raw() {
        return nix::unistd::faccessat(
            None,
            path,
            nix::unistd::AccessFlags::W_OK,
            nix::fcntl::AtFlags::AT_EACCESS,
        )
        .is_ok();
    }
    if uid == 0 {
        return true;
    }
    let Ok(meta) = fs::metadata(path) else {
        return false;
    };
    let mode = meta.mode();
    (meta.uid() == uid && mode & 0o200 != 0)
        || (meta.gid() == gid && mode & 0o020 != 0)
        || mode & 0o002 != 0
}

/// For rootless: the first place under which `uid` could not create or join `dir`, if any. The
/// nearest existing ancestor must be writable (to mkdir) and, if `dir` exists, its cgroup.procs.
pub fn unwritable(dir: &Path, uid: u32, gid: u32) -> Option<PathBuf> {
    let Some(base) = nearest_existing(dir) else {
        return Some(dir.to_path_buf());
    };
    if !writable_by(base, uid, gid) {
        return Some(base.to_path_buf());
    }
    let procs = dir.join(PROCS);
    if dir.is_dir() && !writable_by(&procs, uid, gid) {
        return Some(procs);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::testutil::TempTree;
    use super::*;

    #[test]
    fn mountinfo_cgroup_v1_points_are_found_and_unescaped() {
        let text = "\
22 1 0:21 / /sys rw - sysfs sysfs rw
30 22 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw shared:9 - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/with\\040space rw - cgroup cgroup rw,pids
35 30 0:31 / /sys/fs/cgroup/back\\134slash rw - cgroup cgroup rw,memory
";
        let got = cgroup_v1_mount_points(text);
        assert_eq!(
            got,
            [
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"),
                PathBuf::from("/sys/fs/cgroup/with space"),
                PathBuf::from("/sys/fs/cgroup/back\\slash"),
            ]
        );
        // A lone backslash or a short escape stays as it is.
        assert_eq!(unescape_octal("a\\b\\04"), "a\\b\\04");
        // The host: every v1 mount libcgroups lists, in its order.
        let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let theirs = libcgroups::v1::util::list_subsystem_mount_points().unwrap_or_default();
        assert_eq!(cgroup_v1_mount_points(&host), theirs);
    }

    #[test]
    fn v1_controllers_match_like_libcgroups() {
        let points: Vec<PathBuf> = [
            "/sys/fs/cgroup/systemd",
            "/sys/fs/cgroup/cpu,cpuacct",
            "/sys/fs/cgroup/net_cls,net_prio",
            "/sys/fs/cgroup/memory",
            "/sys/fs/cgroup/pids",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let got = match_v1_controllers(&points);
        let names: Vec<&str> = got.iter().map(|(c, _)| c.as_str()).collect();
        // cpu/cpuacct and net_cls/net_prio are co-mounted: one entry each, the first name sorted.
        assert_eq!(names, ["cpu", "memory", "net_cls", "pids"]);
        assert_eq!(got[0].1, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        // A component-wise match: "pids" does not serve "ids"-like prefixes and vice versa.
        assert!(!serves(Path::new("/x/notpids"), "pids"));
        // Compare with libcgroups' own per-controller lookup on this host.
        let host = libcgroups::v1::util::list_subsystem_mount_points().unwrap_or_default();
        let mut theirs: Vec<(String, PathBuf)> =
            libcgroups::v1::util::list_supported_mount_points()
                .unwrap_or_default()
                .into_iter()
                .map(|(c, m)| (c.to_string(), m))
                .collect();
        theirs.sort();
        theirs.dedup_by(|a, b| a.1 == b.1);
        assert_eq!(match_v1_controllers(&host), theirs);
    }

    #[test]
    fn keyed_values() {
        let t = TempTree::new("keyed");
        t.file("memory.events", "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\n");
        assert_eq!(
            keyed_value(&t.path("memory.events"), "oom_kill").unwrap(),
            1
        );
        assert_eq!(keyed_value(&t.path("memory.events"), "missing").unwrap(), 0);
        assert_eq!(keyed_value(&t.path("nope"), "oom_kill").unwrap(), 0);
        t.file("bad", "oom_kill x\n");
        assert!(keyed_value(&t.path("bad"), "oom_kill").is_err());
    }

    #[test]
    fn unused_and_remove() {
        let t = TempTree::new("unused");
        t.file("a/cgroup.procs", "");
        assert!(ensure_unused(&t.path("a")).is_ok());
        assert!(ensure_unused(&t.path("missing")).is_ok());
        t.file("a/cgroup.procs", "42\n");
        assert!(matches!(
            ensure_unused(&t.path("a")),
            Err(CgroupError::InUse { .. })
        ));
        fs::create_dir(t.path("empty")).unwrap();
        remove_dir(&t.path("empty")).unwrap();
        assert!(!t.path("empty").exists());
        remove_dir(&t.path("empty")).unwrap();
        assert!(remove_dir(&t.path("a")).is_err(), "non-empty dir must stay");
    }

    #[test]
    fn cpuset_is_copied_down_to_empty_levels_only() {
        let t = TempTree::new("cpuset");
        t.file("cpuset.cpus", "0-3\n");
        t.file("cpuset.mems", "0\n");
        t.file("husk/cpuset.cpus", "");
        t.file("husk/cpuset.mems", "1\n");
        t.file("husk/c1/cpuset.cpus", "");
        t.file("husk/c1/cpuset.mems", "");
        fill_cpuset(&t.path("husk/c1")).unwrap();
        assert_eq!(t.read("husk/cpuset.cpus"), "0-3");
        assert_eq!(t.read("husk/c1/cpuset.cpus"), "0-3");
        assert_eq!(
            t.read("husk/cpuset.mems"),
            "1\n",
            "a set level is left alone"
        );
        assert_eq!(t.read("husk/c1/cpuset.mems"), "1");
        // Outside a cpuset hierarchy there is nothing to read and nothing is written.
        fs::create_dir(t.path("plain")).unwrap();
        fill_cpuset(&t.path("plain")).unwrap();
        assert!(!t.path("plain/cpuset.cpus").exists());
    }

    #[test]
    fn v1_leaves_are_made_and_a_populated_one_refused() {
        let t = TempTree::new("leaves");
        let leaf = |rel: &str| vec![("pids".to_string(), t.path(rel))];
        create_v1(&leaf("a/b/c")).unwrap();
        assert!(t.path("a/b/c").is_dir());
        create_v1(&leaf("a/b/c")).unwrap();
        t.file("a/b/c/cgroup.procs", "42\n");
        assert!(matches!(
            create_v1(&leaf("a/b/c")),
            Err(CgroupError::InUse { .. })
        ));
    }

    #[test]
    fn rootless_writability() {
        let t = TempTree::new("rootless");
        let me = nix::unistd::geteuid().as_raw();
        assert_eq!(unwritable(&t.path("x/y"), 0, 0), None);
        if me != 0 {
            assert_eq!(unwritable(&t.path("x/y"), me, u32::MAX), None);
        }
        // Owned by someone else with mode 0755: not writable for a different, unprivileged uid.
        assert!(unwritable(Path::new("/proc/1/x"), 4242, 4242).is_some());
    }
}
