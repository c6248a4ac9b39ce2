//! Namespaces: which to create (clone flags) and which to join (setns by path), in the kernel's
//! required order; uid/gid maps, written directly or through newuidmap/newgidmap.
//!
//! Order matters: the user namespace is joined first (it grants the capabilities the other setns
//! calls need); the mount namespace is joined last so /proc paths of the others still resolve.

use crate::spec;
use nix::sched::CloneFlags;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error("open namespace {path}: {source}")]
    Open { path: PathBuf, source: nix::Error },
    #[error("join {kind} namespace {path}: {source}")]
    Join {
        kind: &'static str,
        path: PathBuf,
        source: nix::Error,
    },
    #[error("write {path}: {source}")]
    WriteMap {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("run {tool}: {reason}")]
    Helper { tool: &'static str, reason: String },
    #[error("unshare {what}: {source}")]
    Unshare {
        what: &'static str,
        source: nix::Error,
    },
}

/// Kinds in setns order (user first, mnt last).
pub const JOIN_ORDER: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Mount,
];

fn flag(typ: LinuxNamespaceType) -> CloneFlags {
    match typ {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::empty(),
    }
}

/// What the config asks of namespaces, split into "create" and "join".
#[derive(Debug)]
pub struct NsPlan {
    /// Flags for clone(2): every new namespace except time (which clone cannot create).
    pub clone_flags: CloneFlags,
    pub new_time: bool,
    /// Namespaces to join, opened in the parent (so a path is checked before anything starts).
    pub joins: Vec<(LinuxNamespaceType, PathBuf, OwnedFd)>,
}

impl NsPlan {
    pub fn from_spec(spec: &Spec) -> Result<NsPlan, NsError> {
        let mut plan = NsPlan {
            clone_flags: CloneFlags::empty(),
            new_time: false,
            joins: Vec::new(),
        };
        for typ in JOIN_ORDER {
            match spec::namespace(spec, typ) {
                None => {}
                Some(None) if typ == LinuxNamespaceType::Time => plan.new_time = true,
                Some(None) => plan.clone_flags |= flag(typ),
                Some(Some(path)) => {
                    let fd = open_ns(&path)?;
                    plan.joins.push((typ, path, fd));
                }
            }
        }
        Ok(plan)
    }

    /// True when the container gets a mount namespace of its own (new or joined).
    pub fn has_mount_ns(&self) -> bool {
        self.clone_flags.contains(CloneFlags::CLONE_NEWNS)
            || self
                .joins
                .iter()
                .any(|(t, _, _)| *t == LinuxNamespaceType::Mount)
    }

    pub fn new_userns(&self) -> bool {
        self.clone_flags.contains(CloneFlags::CLONE_NEWUSER)
    }

    /// True when a user namespace is given by path.
    pub fn joins_userns(&self) -> bool {
        self.joins
            .iter()
            .any(|(t, _, _)| *t == LinuxNamespaceType::User)
    }

    /// Joins only the user namespace given by path (see [`NsPlan::join_all`], which then skips it).
    pub fn join_userns(&self) -> Result<(), NsError> {
        for (typ, path, fd) in &self.joins {
            if *typ == LinuxNamespaceType::User {
                join(*typ, path, fd)?;
            }
        }
        Ok(())
    }

    /// Parent side, before clone: a pid namespace given by path must be entered by the *parent*
    /// (setns on a pid namespace only affects children), so the init is born inside it.
    pub fn join_pid_for_children(&self) -> Result<(), NsError> {
        for (typ, path, fd) in &self.joins {
            if *typ == LinuxNamespaceType::Pid {
                nix::sched::setns(fd, CloneFlags::CLONE_NEWPID).map_err(|source| {
                    NsError::Join {
                        kind: "pid",
                        path: path.clone(),
                        source,
                    }
                })?;
            }
        }
        Ok(())
    }

    /// Joins every namespace given by path, user first, mount last (child side). A pid namespace
    /// was already entered for us by the parent ([`NsPlan::join_pid_for_children`]) when this is
    /// an init; exec joins it here so the process it clones is born inside.
    pub fn join_all(&self) -> Result<(), NsError> {
        for (typ, path, fd) in &self.joins {
            join(*typ, path, fd)?;
        }
        Ok(())
    }
}

/// setns(2); a user namespace we are in already (joined by an intermediate, see
/// process::spawn_init) is no error, though the kernel says EINVAL.
fn join(typ: LinuxNamespaceType, path: &Path, fd: &OwnedFd) -> Result<(), NsError> {
    match nix::sched::setns(fd, flag_for_setns(typ)) {
        Err(nix::errno::Errno::EINVAL) if typ == LinuxNamespaceType::User && member_of(fd) => {
            Ok(())
        }
        r => r.map_err(|source| NsError::Join {
            kind: spec::ns_name(typ),
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Is `fd` our own user namespace?
fn member_of(fd: &OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let ours = std::fs::metadata("/proc/self/ns/user");
    match (nix::sys::stat::fstat(fd.as_raw_fd()), ours) {
        (Ok(st), Ok(m)) => st.st_ino == m.ino() && st.st_dev == m.dev(),
        _ => false,
    }
}

fn flag_for_setns(typ: LinuxNamespaceType) -> CloneFlags {
    match typ {
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(crate::sys::CLONE_NEWTIME),
        t => flag(t),
    }
}

/// Opens a namespace file for setns (O_CLOEXEC, as std opens every file).
pub fn open_ns(path: &Path) -> Result<OwnedFd, NsError> {
    std::fs::File::open(path)
        .map(OwnedFd::from)
        .map_err(|e| NsError::Open {
            path: path.to_path_buf(),
            source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })
}

/// Which namespaces of `pid` differ from ours: the ones `exec` must join, in join order. A namespace
/// kind this kernel lacks (no /proc file on either side) is skipped; any other failure to look is an
/// error, never a silent "same as ours" (that would exec outside the container).
pub fn differing(pid: Pid) -> Result<Vec<(LinuxNamespaceType, PathBuf)>, NsError> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for typ in JOIN_ORDER {
        let name = spec::ns_name(typ);
        let theirs = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
        let ours = PathBuf::from(format!("/proc/self/ns/{name}"));
        let stat = |p: &PathBuf| match std::fs::metadata(p) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(NsError::Open {
                path: p.clone(),
                source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            }),
        };
        match (stat(&theirs)?, stat(&ours)?) {
            (Some(a), Some(b)) if a.ino() != b.ino() || a.dev() != b.dev() => {
                out.push((typ, theirs))
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Renders mappings as the kernel's uid_map text.
pub fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// True when an unprivileged process may write `maps` itself: one entry, size 1, mapping onto `own`.
pub fn self_mappable(maps: &[LinuxIdMapping], own: u32) -> bool {
    maps.len() == 1 && maps[0].size() == 1 && maps[0].host_id() == own
}

/// True when [`write_id_maps`] will deny setgroups (an unprivileged self-map of the gid).
pub fn setgroups_denied(gids: &[LinuxIdMapping]) -> bool {
    !privileged() && self_mappable(gids, nix::unistd::getegid().as_raw())
}

/// Writes uid_map and gid_map of `pid` (parent side, after the child reached its user namespace).
/// Root writes directly; an unprivileged caller writes a self-map directly (with setgroups=deny) and
/// uses newuidmap/newgidmap for anything else. Returns whether setgroups stayed allowed.
pub fn write_id_maps(
    pid: Pid,
    uids: &[LinuxIdMapping],
    gids: &[LinuxIdMapping],
) -> Result<bool, NsError> {
    let privileged = privileged();
    let euid = nix::unistd::geteuid().as_raw();
    let egid = nix::unistd::getegid().as_raw();
    let mut setgroups_allowed = true;
    if privileged || self_mappable(uids, euid) {
        write_proc(pid, "uid_map", &map_text(uids))?;
    } else {
        run_helper("newuidmap", pid, uids)?;
    }
    if privileged {
        write_proc(pid, "gid_map", &map_text(gids))?;
    } else if self_mappable(gids, egid) {
        write_proc(pid, "setgroups", "deny")?;
        setgroups_allowed = false;
        write_proc(pid, "gid_map", &map_text(gids))?;
    } else {
        run_helper("newgidmap", pid, gids)?;
    }
    Ok(setgroups_allowed)
}

fn write_proc(pid: Pid, file: &str, text: &str) -> Result<(), NsError> {
    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
    std::fs::write(&path, text).map_err(|source| NsError::WriteMap { path, source })
}

fn run_helper(tool: &'static str, pid: Pid, maps: &[LinuxIdMapping]) -> Result<(), NsError> {
    let mut cmd = Command::new(tool);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.arg(m.container_id().to_string())
            .arg(m.host_id().to_string())
            .arg(m.size().to_string());
    }
    let out = cmd.output().map_err(|e| NsError::Helper {
        tool,
        reason: format!("{e} (install the uidmap package, or map only your own id)"),
    })?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        return Err(NsError::Helper {
            tool,
            reason: format!("{} ({})", msg.trim(), out.status),
        });
    }
    Ok(())
}

/// True when the caller is root of the initial user namespace.
pub fn privileged() -> bool {
    nix::unistd::geteuid().is_root() && !in_user_ns()
}

/// True when husk was started inside a user namespace other than the initial one (uid_map is not
/// the full map). Read once per process: callers ask before anything is unshared.
pub fn in_user_ns() -> bool {
    static STARTED_IN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *STARTED_IN.get_or_init(|| match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(s) => {
            let f: Vec<&str> = s.split_whitespace().collect();
            !(f.len() == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
        }
        Err(_) => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxIdMappingBuilder;

    fn m(c: u32, h: u32, s: u32) -> LinuxIdMapping {
        LinuxIdMappingBuilder::default()
            .container_id(c)
            .host_id(h)
            .size(s)
            .build()
            .unwrap()
    }

    #[test]
    fn map_text_has_one_line_per_mapping() {
        assert_eq!(
            map_text(&[m(0, 1000, 1), m(1, 100000, 65536)]),
            "0 1000 1\n1 100000 65536\n"
        );
    }

    #[test]
    fn self_map_only_for_single_own_id() {
        assert!(self_mappable(&[m(0, 1000, 1)], 1000));
        assert!(!self_mappable(&[m(0, 1000, 2)], 1000));
        assert!(!self_mappable(&[m(0, 1001, 1)], 1000));
        assert!(!self_mappable(&[m(0, 1000, 1), m(1, 5, 1)], 1000));
    }
}
