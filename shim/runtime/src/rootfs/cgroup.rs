//! The `cgroup`/`cgroup2` mount entry, decided against the host layout when applied.
//!
//! - v2 (`/sys/fs/cgroup` is cgroup2): mount a cgroup2 instance. Without a cgroup namespace owned by
//!   our user namespace the kernel refuses (EPERM/EBUSY); then, like runc, bind the container's own
//!   cgroup directory (from /proc/self/cgroup) or, failing that, the whole hierarchy.
//! - v1 / hybrid: a tmpfs at the destination holding, per controller hierarchy, a bind of the
//!   container's own cgroup directory (the hierarchy root is never exposed) or, with its own cgroup
//!   namespace, a fresh mount of the hierarchy (which shows only the namespace's subtree); symlinks
//!   for co-mounted controllers (cpu → cpu,cpuacct); then the tmpfs is made read-only if asked.
//!   The hybrid layout's unified (cgroup2) hierarchy is not exposed in v1 mode.

use super::exec::{fd_path, mount_at, propagate, remount_bind, unescape};
use super::{resolve, MountOp, MountOptions, RootfsError};
use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
use nix::unistd::symlinkat;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const HOST: &str = "/sys/fs/cgroup";

/// The init's own v2 cgroup as the host's hierarchy names it, noted at [1b] right before the
/// cgroup namespace is made: inside it /proc/self/cgroup says `/`, and binding that would show
/// the whole host tree. The init is a fork-like copy (no CLONE_VM), so this is its own.
static OWN_V2: OnceLock<PathBuf> = OnceLock::new();

/// Notes the caller's v2 cgroup for [`mount`]'s bind fallback; call it in the container's
/// cgroup, before unsharing the cgroup namespace.
pub fn note_own_cgroup() {
    if let Some(own) = read("/proc/self/cgroup")
        .ok()
        .and_then(|s| own_cgroup(&s, ""))
    {
        let _ = OWN_V2.set(own);
    }
}

pub fn mount(root: BorrowedFd<'_>, op: &MountOp, cgroupns: bool) -> Result<(), RootfsError> {
    let v2 = statfs(HOST)
        .map_err(|source| RootfsError::Statfs {
            path: HOST.into(),
            source,
        })?
        .filesystem_type()
        == CGROUP2_SUPER_MAGIC;
    if v2 {
        mount_v2(root, op)?;
    } else {
        mount_v1(root, op, cgroupns)?;
    }
    propagate(root, &op.destination, &op.options.propagation)
}

fn mount_v2(root: BorrowedFd<'_>, op: &MountOp) -> Result<(), RootfsError> {
    let dest = &op.destination;
    let target =
        resolve::open(root, dest, resolve::Create::Dir).map_err(|source| RootfsError::Resolve {
            path: dest.clone(),
            source,
        })?;
    let o = &op.options;
    match mount_at(
        Some(Path::new("cgroup2")),
        &target,
        Some("cgroup2"),
        o.flags,
        &o.data,
        dest,
    ) {
        Err(RootfsError::Mount {
            source: Errno::EPERM | Errno::EBUSY,
            ..
        }) => {}
        r => return r,
    }
    // Refused (EBUSY) where /sys is a bind of the host's, whose cgroup2 mount has the same
    // superblock; refused (EPERM) without a cgroup namespace of our user namespace's. Then, like
    // runc, bind the container's own cgroup: the one noted before the cgroup namespace was made.
    let own = match OWN_V2.get() {
        Some(p) => Some(p.clone()),
        None => own_cgroup(&read("/proc/self/cgroup")?, ""),
    };
    let source = own
        .map(|p| Path::new(HOST).join(p.strip_prefix("/").unwrap_or(&p)))
        .filter(|p| p.is_dir())
        .unwrap_or_else(|| PathBuf::from(HOST));
    log::debug!("rootfs: cgroup2 mount refused; binding {source:?}");
    bind(root, &source, dest, o)
}

fn bind(
    root: BorrowedFd<'_>,
    source: &Path,
    dest: &Path,
    o: &MountOptions,
) -> Result<(), RootfsError> {
    let target =
        resolve::open(root, dest, resolve::Create::Dir).map_err(|e| RootfsError::Resolve {
            path: dest.into(),
            source: e,
        })?;
    let rbind = MsFlags::MS_BIND | MsFlags::MS_REC;
    mount_at(Some(source), &target, None, rbind, "", dest)?;
    remount_bind(root, dest, o)
}

fn mount_v1(root: BorrowedFd<'_>, op: &MountOp, cgroupns: bool) -> Result<(), RootfsError> {
    let dest = &op.destination;
    let o = &op.options;
    let resolve_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RootfsError::Resolve { path, source }
    };
    let target = resolve::open(root, dest, resolve::Create::Dir).map_err(resolve_err(dest))?;
    let tmpfs_flags = o.flags & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    mount_at(
        Some(Path::new("tmpfs")),
        &target,
        Some("tmpfs"),
        tmpfs_flags,
        "mode=755",
        dest,
    )?;
    // The tmpfs just mounted: nothing else can have put a symlink in it, so each hierarchy's
    // directory is made right under it instead of being resolved from the root again.
    let top = resolve::open(root, dest, resolve::Create::No).map_err(resolve_err(dest))?;
    let mountinfo = crate::host::mountinfo().map_err(|source| RootfsError::Read {
        path: "/proc/self/mountinfo".into(),
        source,
    })?;
    // With its own cgroup namespace the init is at the root of every hierarchy; without, the bind
    // source is its own cgroup directory.
    let cgroups = if cgroupns {
        String::new()
    } else {
        read("/proc/self/cgroup")?
    };
    for h in hierarchies(mountinfo) {
        let name = h.mount_point.file_name().unwrap_or_default();
        let sub = dest.join(name);
        if cgroupns {
            // In its own cgroup namespace a fresh mount of the hierarchy shows only our subtree;
            // binding host paths here would be wrong (/proc/self/cgroup is relative to the ns).
            let target = resolve::make_dir_in(top.as_fd(), name).map_err(resolve_err(&sub))?;
            hierarchy_mount(&target, &h.controllers, &sub, o)?;
        } else {
            let Some(own) = own_cgroup(&cgroups, &h.controllers) else {
                continue;
            };
            let rel = own.strip_prefix(&h.root).unwrap_or(&own);
            let source = h.mount_point.join(rel.strip_prefix("/").unwrap_or(rel));
            log::debug!("rootfs: cgroup v1 bind {source:?} on {sub:?}");
            bind(root, &source, &sub, o)?;
        }
        let name = name.to_string_lossy();
        if name.contains(',') {
            for link in name.split(',') {
                match symlinkat(name.as_ref(), Some(top.as_raw_fd()), link) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(source) => {
                        return Err(RootfsError::Symlink {
                            path: dest.join(link),
                            source,
                        })
                    }
                }
            }
        }
    }
    if o.flags.contains(MsFlags::MS_RDONLY) {
        let top = resolve::open(root, dest, resolve::Create::No).map_err(resolve_err(dest))?;
        let flags = MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | tmpfs_flags;
        nix::mount::mount(
            None::<&str>,
            &fd_path(&top),
            None::<&str>,
            flags,
            Some("mode=755"),
        )
        .map_err(|source| RootfsError::Remount {
            path: dest.clone(),
            source,
        })?;
    }
    Ok(())
}

/// A cgroup v1 mount of the existing hierarchy with `controllers` ("cpu,cpuacct", "name=systemd").
fn hierarchy_mount(
    target: &OwnedFd,
    controllers: &str,
    dest: &Path,
    o: &MountOptions,
) -> Result<(), RootfsError> {
    let data = if controllers.starts_with("name=") {
        format!("none,{controllers}")
    } else {
        controllers.to_string()
    };
    let flags = o.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    mount_at(
        Some(Path::new("cgroup")),
        target,
        Some("cgroup"),
        flags,
        &data,
        dest,
    )
}

fn read(path: &str) -> Result<String, RootfsError> {
    std::fs::read_to_string(path).map_err(|source| RootfsError::Read {
        path: path.into(),
        source,
    })
}

/// A cgroup v1 hierarchy mounted on the host.
#[derive(Debug, PartialEq, Eq)]
struct Hierarchy {
    mount_point: PathBuf,
    /// Root of the mount inside the hierarchy (mountinfo field 4).
    root: PathBuf,
    /// Controllers as /proc/self/cgroup spells them: "cpu,cpuacct", "name=systemd".
    controllers: String,
}

/// cgroup v1 mounts under /sys/fs/cgroup, one per hierarchy (the first mount of each wins).
fn hierarchies(mountinfo: &str) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 || post[0] != "cgroup" {
            continue;
        }
        let mount_point = unescape(pre[4]);
        if mount_point.parent() != Some(Path::new(HOST)) {
            continue;
        }
        let mut ctrls: Vec<&str> = post[2]
            .split(',')
            .filter(|o| !matches!(*o, "rw" | "ro") && !o.contains('=') || o.starts_with("name="))
            .filter(|o| {
                !matches!(
                    *o,
                    "noprefix" | "xattr" | "clone_children" | "cpuset_v2_mode"
                )
            })
            .collect();
        ctrls.sort_unstable();
        let controllers = ctrls.join(",");
        if controllers.is_empty() || out.iter().any(|h| h.controllers == controllers) {
            continue;
        }
        out.push(Hierarchy {
            mount_point,
            root: unescape(pre[3]),
            controllers,
        });
    }
    out
}

/// The path of our cgroup in the hierarchy with `controllers` ("" = the v2 unified hierarchy).
fn own_cgroup(proc_self_cgroup: &str, controllers: &str) -> Option<PathBuf> {
    proc_self_cgroup.lines().find_map(|line| {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        let mut c: Vec<&str> = ctrls.split(',').filter(|s| !s.is_empty()).collect();
        c.sort_unstable();
        (c.join(",") == controllers).then(|| PathBuf::from(path))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
25 1 0:22 / /sys rw,relatime shared:7 - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpuacct,cpu
32 30 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
";

    #[test]
    fn v1_hierarchies_from_mountinfo() {
        let h = hierarchies(MOUNTINFO);
        let names: Vec<_> = h.iter().map(|h| h.controllers.as_str()).collect();
        assert_eq!(names, ["cpu,cpuacct", "name=systemd", "memory"]);
        assert_eq!(h[2].root, PathBuf::from("/docker/abc"));
        assert_eq!(
            h[0].mount_point,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
    }

    #[test]
    fn own_cgroup_lines() {
        let c = "12:cpuacct,cpu:/a\n1:name=systemd:/s\n0::/user.slice/x\n";
        assert_eq!(own_cgroup(c, "cpu,cpuacct"), Some(PathBuf::from("/a")));
        assert_eq!(own_cgroup(c, "name=systemd"), Some(PathBuf::from("/s")));
        assert_eq!(own_cgroup(c, ""), Some(PathBuf::from("/user.slice/x")));
        assert_eq!(own_cgroup(c, "pids"), None);
    }
}
