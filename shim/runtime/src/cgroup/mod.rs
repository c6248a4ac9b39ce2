//! cgroup facade over libcgroups' v1, v2 and systemd managers, plus a Disabled backend.
//!
//! CONTRACT (the rest of the engine uses only these items):
//! - [`Cgroup::prepare`] validates `linux.cgroupsPath` (or derives `/husk/<id>`, or `:husk:<id>` for
//!   systemd), picks the backend and returns a serialisable handle (stored in state.json) plus an
//!   optional one-line warning (rootless without a writable/delegated cgroup → Disabled).
//! - [`Cgroup::enter`] creates the cgroup, applies resources and only then adds the pid (called by the
//!   parent right after clone, before the child continues). [`Cgroup::add`] adds a further pid (exec).
//!   If `enter` fails, call [`Cgroup::remove`] to clean up.
//! - [`Cgroup::remove`] never acts on an empty, root or foreign path, and never signals: it only
//!   rmdirs. Kill the container's processes ([`Cgroup::pids`]) first; a populated cgroup stays and
//!   remove returns the kernel's EBUSY.
//!
//! Invariants:
//! - A path is validated before any use; [`Cgroup::remove`] re-validates (the fields are public for
//!   serde, so a handle read back from disk is not trusted) and refuses the cgroup holding this
//!   process or any ancestor of it.
//! - [`Cgroup::enter`] refuses a cgroup that already holds processes, so a handle can never adopt a
//!   foreign populated cgroup.
//!
//! Layouts: `Auto` reads the mount root's filesystem type. Hybrid hosts (v1 controllers plus a
//! controller-less cgroup2 at `unified/`) are driven as v1, like runc. The v1 manager finds controller
//! mounts in /proc/self/mountinfo and ignores `mount_root`; the v2 manager uses `mount_root`.
//!
//! Devices: on v1 the devices controller always gets `a` (deny all) first, then the spec's rules,
//! then libcgroups' own defaults (null, zero, full, tty, random, urandom, console 5:1, ptmx 5:2,
//! pts 136:*, tun 10:200, and mknod of any device). So an empty `resources.devices` still yields
//! deny-all plus those defaults, never the parent's allow-all. On v2 the same list becomes a
//! BPF_PROG_TYPE_CGROUP_DEVICE program attached to the container's cgroup ([`devices`], raw
//! bpf(2) in `sys::bpf`; libcgroups' own needs libbpf), for the cgroupfs and systemd drivers, as
//! root; [`Cgroup::devices_enforced`] says when.

mod bandwidth;
pub mod dbus;
pub mod devices;
mod fs;
mod path;
mod stats;
mod sub;
#[cfg(test)]
mod tests_host;
#[cfg(test)]
mod tests_v2;
#[cfg(test)]
mod testutil;

use std::path::{Path, PathBuf};

use libcgroups::common::{
    create_cgroup_manager_with_root, get_cgroup_setup_with_root, AnyCgroupManager, AnyManagerError,
    CgroupConfig, CgroupManager, CgroupSetup, ControllerOpt, CreateCgroupSetupError, FreezerState,
    GetCgroupSetupError,
};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};
use serde::{Deserialize, Serialize};

pub use fs::{join_self, join_self_by_fd, open_for_join};
pub use path::{expand_slice, validate_fs, validate_systemd, SystemdPath};
pub use stats::RuncStats;
pub use sub::attach_to;

/// Which manager drives the container's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    #[default]
    Cgroupfs,
    Systemd,
    Disabled,
}

/// Which cgroup hierarchy layout to drive; `Auto` detects it from the mount root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    #[default]
    Auto,
    V1,
    V2,
}

/// Caller's choices.
#[derive(Debug, Clone)]
pub struct Options {
    pub driver: Driver,
    pub rootless: bool,
    /// Where the cgroup filesystem(s) are mounted; /sys/fs/cgroup except in tests.
    pub mount_root: PathBuf,
    pub layout: Layout,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            driver: Driver::Cgroupfs,
            rootless: false,
            mount_root: PathBuf::from("/sys/fs/cgroup"),
            layout: Layout::Auto,
        }
    }
}

/// Errors of the cgroup facade.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("invalid cgroupsPath {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("detect cgroup layout at {root}: {source}")]
    Detect {
        root: PathBuf,
        source: Box<GetCgroupSetupError>,
    },
    #[error("use systemd cgroup driver: PID 1 is not systemd (no /run/systemd/system)")]
    NoSystemd,
    #[error("use systemd cgroup driver at {root}: needs a unified (v2) hierarchy, found {found}")]
    SystemdNeedsV2 { root: PathBuf, found: String },
    #[error("open cgroup manager for {path}: {source}")]
    Open {
        path: PathBuf,
        source: Box<AnyManagerError>,
    },
    #[error("open systemd cgroup manager for {path}: {source}")]
    OpenSystemd {
        path: PathBuf,
        source: Box<CreateCgroupSetupError>,
    },
    #[error("{op} cgroup {path}: {source}")]
    Manager {
        op: &'static str,
        path: PathBuf,
        source: Box<AnyManagerError>,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parse {path}: unexpected line {content:?}")]
    Parse { path: PathBuf, content: String },
    /// runc (1.2 on) refuses too, in these words.
    #[error("use cgroup {path}: container's cgroup is not empty: it already holds processes")]
    InUse { path: PathBuf },
    #[error("remove cgroup {path}: refused, {reason}")]
    RefuseRemove { path: String, reason: &'static str },
    #[error("invalid configuration: linux.resources.unified needs cgroup v2, this host has v1")]
    UnifiedOnV1,
    #[error("exec --cgroup {value}: {reason}")]
    ExecSub { value: String, reason: String },
    /// runc's wording ("adding pid ... cgroup.procs: no such file or directory").
    #[error("adding pid to cgroups {}: no such file or directory", procs.display())]
    ExecSubMissing { procs: PathBuf },
    #[error("{op}: cgroups are disabled for this container")]
    Disabled { op: &'static str },
}

/// A validated, persistable cgroup handle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cgroup {
    pub driver: Driver,
    /// Validated path relative to the hierarchy root (never empty, never "/"); for the systemd driver
    /// the `slice:prefix:name` triple.
    pub path: PathBuf,
    pub mount_root: PathBuf,
    /// The resolved layout (V1 or V2; `Auto` only in handles of the Disabled driver).
    pub layout: Layout,
    /// Prepared for a rootless caller (systemd: user manager instead of the system one).
    #[serde(default)]
    pub rootless: bool,
}

/// Resource usage in the shape of runc's `events --stats` "data" object.
pub type Stats = serde_json::Value;

fn resolve_layout(layout: Layout, root: &Path) -> Result<Layout, CgroupError> {
    if layout != Layout::Auto {
        return Ok(layout);
    }
    let setup = get_cgroup_setup_with_root(root).map_err(|source| CgroupError::Detect {
        root: root.to_path_buf(),
        source: Box::new(source),
    })?;
    Ok(match setup {
        CgroupSetup::Unified => Layout::V2,
        CgroupSetup::Legacy | CgroupSetup::Hybrid => Layout::V1,
    })
}

/// A rootless caller's delegated place when the cgroupfs one is not writable and the spec names
/// no cgroupsPath (issue 11 item 2): a transient scope `husk-<id>.scope` in the user's systemd
/// (user.slice of user@<uid>.service, delegated), as `--systemd-cgroup` would make it; podman
/// and runc's systemd driver put a user's containers there too. None when the host has no user
/// systemd (the caller keeps its one warning).
fn user_scope(
    cgroups_path: Option<&Path>,
    id: &str,
    opts: &Options,
    layout: Layout,
) -> Result<Option<Cgroup>, CgroupError> {
    if cgroups_path.is_some() || !Cgroup::user_systemd_available(opts, layout) {
        return Ok(None);
    }
    let sd = validate_systemd(Path::new(&format!(":husk:{id}")))?;
    Ok(Some(Cgroup {
        driver: Driver::Systemd,
        path: sd.to_path(),
        mount_root: opts.mount_root.clone(),
        layout,
        rootless: true,
    }))
}

/// The one rule list the v1 devices controller gets: deny-all first unless the spec already starts
/// with it (a fresh v1 cgroup inherits its parent's list, usually `a *:* rwm`).
fn with_deny_all(resources: &LinuxResources) -> LinuxResources {
    let mut out = resources.clone();
    let rules = resources.devices().clone().unwrap_or_default();
    let starts_denied = rules.first().is_some_and(|r| {
        !r.allow()
            && r.major().is_none()
            && r.minor().is_none()
            && matches!(r.typ(), None | Some(LinuxDeviceType::A))
            && match r.access().as_deref() {
                None => true,
                Some(a) => "rwm".chars().all(|c| a.contains(c)),
            }
    });
    if !starts_denied {
        let mut deny = LinuxDeviceCgroup::default();
        deny.set_allow(false);
        deny.set_typ(Some(LinuxDeviceType::A));
        deny.set_access(Some("rwm".to_owned()));
        out.set_devices(Some([vec![deny], rules].concat()));
    }
    out
}

/// Whether a v1 resources block asks for nothing but device rules (the common case of a plain
/// `run`): then the facade writes the rules itself instead of building libcgroups' v1 manager, which
/// re-reads mountinfo and /proc/self/cgroup once per controller.
fn only_devices(r: &LinuxResources) -> bool {
    r.memory().is_none()
        && r.cpu().is_none()
        && r.pids().is_none()
        && r.block_io().is_none()
        && r.hugepage_limits().as_ref().is_none_or(Vec::is_empty)
        && r.network().is_none()
        && r.rdma().as_ref().is_none_or(|m| m.is_empty())
        && r.unified().as_ref().is_none_or(|m| m.is_empty())
}

/// The directories serving `controller` (v1: normally one).
fn dirs_for(dirs: &[(String, PathBuf)], controller: &str) -> Vec<PathBuf> {
    dirs.iter()
        .filter(|(c, _)| c == controller)
        .map(|(_, d)| d.clone())
        .collect()
}

/// The rules libcgroups' v1 devices controller appends after the spec's (its `default_devices`
/// and `default_allow_devices`, not exported): null, zero, full, tty, urandom, random, then mknod of
/// any char/block device, console, pts, ptmx, tun. Kept identical so both paths give one result
/// (the `v1_device_rules_match_libcgroups` host test compares them).
const V1_DEFAULT_DEVICE_RULES: [&str; 12] = [
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 5:0 rwm",
    "c 1:9 rwm",
    "c 1:8 rwm",
    "c *:* m",
    "b *:* m",
    "c 5:1 rwm",
    "c 136:* rwm",
    "c 5:2 rwm",
    "c 10:200 rwm",
];

/// What libcgroups' v1 devices controller writes, in its order: the spec's rules (deny-all first,
/// see [`with_deny_all`]), then the defaults above. One open per run of same-kind rules and one
/// write per rule.
fn apply_v1_devices(dirs: &[PathBuf], resources: &LinuxResources) -> Result<(), CgroupError> {
    // After the leading deny-all the list is empty: a deny before any allow changes nothing, and
    // is not written (runc writes only the transitions too; its suite denies "rwa", which the
    // kernel refuses with EINVAL).
    let mut any_allow = false;
    let mut rules: Vec<(bool, String)> = resources
        .devices()
        .iter()
        .flatten()
        .enumerate()
        .filter(|(i, r)| {
            any_allow |= r.allow();
            *i == 0 || any_allow
        })
        .map(|(_, r)| (r.allow(), r.to_string()))
        .collect();
    rules.extend(
        V1_DEFAULT_DEVICE_RULES
            .iter()
            .map(|r| (true, r.to_string())),
    );
    for dir in dirs {
        for run in rules.chunk_by(|a, b| a.0 == b.0) {
            let file = if run[0].0 {
                "devices.allow"
            } else {
                "devices.deny"
            };
            fs::write_each(&dir.join(file), run.iter().map(|(_, r)| r.as_str()))?;
        }
    }
    Ok(())
}

/// The device rules a v2 program enforces: the same list the v1 controller gets (deny-all first,
/// the spec's rules, then [`V1_DEFAULT_DEVICE_RULES`]).
fn device_rules(resources: &LinuxResources) -> Vec<devices::Rule> {
    let effective = with_deny_all(resources);
    let mut rules: Vec<devices::Rule> = effective
        .devices()
        .iter()
        .flatten()
        .map(devices::Rule::from_oci)
        .collect();
    rules.extend(
        V1_DEFAULT_DEVICE_RULES
            .iter()
            .filter_map(|r| devices::Rule::parse_v1(r, true)),
    );
    rules
}

fn controller_opt(resources: &LinuxResources) -> ControllerOpt<'_> {
    ControllerOpt {
        resources,
        disable_oom_killer: resources
            .memory()
            .as_ref()
            .and_then(|m| m.disable_oom_killer())
            .unwrap_or(false),
        oom_score_adj: None,
        freezer_state: None,
    }
}

impl Cgroup {
    /// Validates the cgroups path, picks the backend and returns the handle plus at most one warning.
    ///
    /// - cgroupfs: `cgroups_path` (absolute or relative, both under the hierarchy root) or `/husk/<id>`.
    /// - systemd: `slice:prefix:name` or `:husk:<id>`; an error unless PID 1 is systemd on cgroup v2.
    /// - Disabled: `cgroups_path` is ignored (never used, so not validated).
    /// - rootless: Disabled plus one warning when the hierarchy is missing or not delegated to the
    ///   caller, whether or not the spec asks for limits (the engine decides whether that is fatal).
    pub fn prepare(
        cgroups_path: Option<&Path>,
        id: &str,
        opts: &Options,
    ) -> Result<(Cgroup, Option<String>), CgroupError> {
        let euid = nix::unistd::geteuid().as_raw();
        let egid = nix::unistd::getegid().as_raw();
        Self::prepare_as(cgroups_path, id, opts, (euid, egid))
    }

    fn prepare_as(
        cgroups_path: Option<&Path>,
        id: &str,
        opts: &Options,
        (uid, gid): (u32, u32),
    ) -> Result<(Cgroup, Option<String>), CgroupError> {
        let handle = |driver, path, layout| Cgroup {
            driver,
            path,
            mount_root: opts.mount_root.clone(),
            layout,
            rootless: opts.rootless,
        };
        let default_fs = format!("/husk/{id}");
        match opts.driver {
            Driver::Disabled => {
                let path = validate_fs(Path::new(&default_fs))?;
                Ok((handle(Driver::Disabled, path, Layout::Auto), None))
            }
            Driver::Systemd => {
                if !libcgroups::systemd::booted() {
                    return Err(CgroupError::NoSystemd);
                }
                let default_sd = format!(":husk:{id}");
                let raw = cgroups_path.unwrap_or(Path::new(&default_sd));
                let sd = validate_systemd(raw)?;
                let layout = resolve_layout(opts.layout, &opts.mount_root)?;
                if layout != Layout::V2 {
                    return Err(CgroupError::SystemdNeedsV2 {
                        root: opts.mount_root.clone(),
                        found: format!("{layout:?}"),
                    });
                }
                Ok((handle(Driver::Systemd, sd.to_path(), layout), None))
            }
            Driver::Cgroupfs => {
                let rel = validate_fs(cgroups_path.unwrap_or(Path::new(&default_fs)))?;
                let layout = match resolve_layout(opts.layout, &opts.mount_root) {
                    Ok(layout) => layout,
                    Err(e) if opts.rootless => {
                        let warning = format!("{e}: running without resource limits");
                        return Ok((handle(Driver::Disabled, rel, Layout::Auto), Some(warning)));
                    }
                    Err(e) => return Err(e),
                };
                let cg = handle(Driver::Cgroupfs, rel, layout);
                if opts.rootless {
                    if let Some(blocked) = cg.unwritable_for(uid, gid)? {
                        if let Some(scope) = user_scope(cgroups_path, id, opts, layout)? {
                            return Ok((scope, None));
                        }
                        let warning = format!(
                            "cgroups not writable by uid {uid} ({} is not delegated): running \
                             without resource limits",
                            blocked.display()
                        );
                        let off = Cgroup {
                            driver: Driver::Disabled,
                            ..cg
                        };
                        return Ok((off, Some(warning)));
                    }
                }
                if layout == Layout::V1 {
                    // Read now, before the init is cloned: it finds the table in its copy of
                    // our memory when it mounts the hierarchies (crate::host).
                    fs::v1_mounts()?;
                }
                Ok((cg, None))
            }
        }
    }

    /// Whether a rootless caller's limits can come from the user's own systemd instead: a pure v2
    /// host booted with systemd whose user bus is there, and the caller inside its user manager's
    /// subtree (`user@<uid>.service`: a service, or a `systemd-run --user --scope` shell). From a
    /// login session's scope (root's, not delegated) the kernel refuses the move into the user's
    /// subtree, for runc and crun too: that caller keeps the warning.
    fn user_systemd_available(opts: &Options, layout: Layout) -> bool {
        // Cheap checks first: a v1 or hybrid host (this project's CI) reads nothing more.
        if layout != Layout::V2 || opts.mount_root != Path::new("/sys/fs/cgroup") {
            return false;
        }
        let uid = nix::unistd::geteuid().as_raw();
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let in_user_manager = path::own_cgroups(&own)
            .iter()
            .filter(|(ctrls, _)| ctrls.is_empty())
            .any(|(_, p)| {
                p.components()
                    .any(|c| c.as_os_str() == format!("user@{uid}.service").as_str())
            });
        in_user_manager && libcgroups::systemd::booted() && dbus::user_bus_path(uid).exists()
    }

    fn unwritable_for(&self, uid: u32, gid: u32) -> Result<Option<PathBuf>, CgroupError> {
        Ok(self
            .leaf_dirs()?
            .iter()
            .find_map(|(_, dir)| fs::unwritable(dir, uid, gid)))
    }

    pub fn is_enabled(&self) -> bool {
        self.driver != Driver::Disabled
    }

    /// Whether `linux.resources.devices` rules are enforced: by the v1 devices controller, or on a
    /// real cgroup2 mount by a BPF device program (root only: an unprivileged caller cannot attach
    /// one, and its user namespace already refuses mknod).
    pub fn devices_enforced(&self) -> bool {
        match (self.driver, self.layout) {
            (Driver::Cgroupfs, Layout::V1) => true,
            (Driver::Disabled, _) | (_, Layout::V1) => false,
            _ => self.bpf_devices(),
        }
    }

    fn bpf_devices(&self) -> bool {
        self.layout == Layout::V2
            && self.driver != Driver::Disabled
            && !self.rootless
            && nix::sys::statfs::statfs(&self.mount_root)
                .is_ok_and(|f| f.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
    }

    /// v2: replaces the cgroup's device programs by one built from `resources` (deny-all, its
    /// rules, the defaults; see the module docs). Root in a user namespace cannot load one (EPERM):
    /// its namespace refuses mknod anyway, so that is a warning, not a failure.
    fn apply_bpf_devices(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        if !self.bpf_devices() {
            return Ok(());
        }
        let Some(dir) = self.dir_for("devices")? else {
            return Ok(());
        };
        let rules = device_rules(resources);
        match devices::apply(&dir, &rules) {
            Err(CgroupError::Io { source, .. })
                if source.raw_os_error() == Some(libc::EPERM) && crate::ns::in_user_ns() =>
            {
                log::warn!(
                    "no device program on {} in a user namespace: {source}",
                    dir.display()
                );
                Ok(())
            }
            r => r,
        }
    }

    /// The container's directory in each hierarchy, with the controller (v1) or "" (v2) it serves.
    fn leaf_dirs(&self) -> Result<Vec<(String, PathBuf)>, CgroupError> {
        match (self.driver, self.layout) {
            (Driver::Disabled, _) => Ok(Vec::new()),
            (Driver::Systemd, _) => Ok(vec![(String::new(), self.systemd_dir()?)]),
            (Driver::Cgroupfs, Layout::V1) => Ok(fs::v1_mounts()?
                .into_iter()
                .map(|(ctrl, mount)| (ctrl, mount.join(&self.path)))
                .collect()),
            (Driver::Cgroupfs, _) => Ok(vec![(String::new(), self.mount_root.join(&self.path))]),
        }
    }

    /// The v1 directory of one controller, or the v2 directory.
    fn dir_for(&self, controller: &str) -> Result<Option<PathBuf>, CgroupError> {
        let dirs = self.leaf_dirs()?;
        if self.layout == Layout::V1 && self.driver == Driver::Cgroupfs {
            return Ok(dirs
                .into_iter()
                .find(|(c, _)| c == controller)
                .map(|(_, d)| d));
        }
        Ok(dirs.into_iter().next().map(|(_, d)| d))
    }

    /// Where systemd puts the unit, assuming its standard layout: the system manager under the root,
    /// a user manager under `user.slice/user-<uid>.slice/user@<uid>.service`.
    fn systemd_dir(&self) -> Result<PathBuf, CgroupError> {
        let sd = validate_systemd(&self.path)?;
        let mut dir = self.mount_root.clone();
        let default_slice = if self.rootless {
            let uid = nix::unistd::geteuid().as_raw();
            dir.push(format!("user.slice/user-{uid}.slice/user@{uid}.service"));
            "user.slice"
        } else {
            "system.slice"
        };
        let slice = if sd.slice.is_empty() {
            default_slice
        } else {
            &sd.slice
        };
        let expanded = expand_slice(slice).ok_or_else(|| CgroupError::InvalidPath {
            path: path::display(&self.path),
            reason: "slice must be a valid <name>.slice",
        })?;
        Ok(dir.join(expanded).join(sd.unit()))
    }

    /// A libcgroups manager for this handle. v1 and v2 managers are built directly rather than via
    /// `create_cgroup_manager_with_root`, whose own detection would override a forced layout.
    fn manager(&self) -> Result<AnyCgroupManager, CgroupError> {
        let abs = Path::new("/").join(&self.path);
        let open = |source: AnyManagerError| CgroupError::Open {
            path: self.path.clone(),
            source: Box::new(source),
        };
        match (self.driver, self.layout) {
            (Driver::Disabled, _) => Err(CgroupError::Disabled {
                op: "open cgroup manager",
            }),
            (Driver::Systemd, _) => {
                let name = validate_systemd(&self.path)?.name;
                let config = CgroupConfig {
                    cgroup_path: self.path.clone(),
                    systemd_cgroup: true,
                    container_name: name,
                };
                create_cgroup_manager_with_root(Some(&self.mount_root), config).map_err(|source| {
                    CgroupError::OpenSystemd {
                        path: self.path.clone(),
                        source: Box::new(source),
                    }
                })
            }
            (Driver::Cgroupfs, Layout::V1) => libcgroups::v1::manager::Manager::new(&abs)
                .map(|m| m.any())
                .map_err(|e| open(e.into())),
            (Driver::Cgroupfs, _) => {
                libcgroups::v2::manager::Manager::new(self.mount_root.clone(), abs)
                    .map(|m| m.any())
                    .map_err(|e| open(e.into()))
            }
        }
    }

    fn op_err(&self, op: &'static str) -> impl FnOnce(AnyManagerError) -> CgroupError + '_ {
        move |source| CgroupError::Manager {
            op,
            path: self.path.clone(),
            source: Box::new(source),
        }
    }

    /// Creates the cgroup, applies `resources`, then moves `pid` in (the pid never runs unlimited).
    pub fn enter(&self, pid: i32, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        let empty = LinuxResources::default();
        let resources = resources.unwrap_or(&empty);
        match self.driver {
            Driver::Disabled => Ok(()),
            // systemd creates the unit when the first pid is added; limits become unit properties.
            Driver::Systemd => {
                let m = self.manager()?;
                m.add_task(Pid::from_raw(pid))
                    .map_err(self.op_err("add pid to"))?;
                self.describe_unit();
                m.apply(&controller_opt(resources))
                    .map_err(self.op_err("apply resources to"))?;
                self.apply_bpf_devices(resources)
            }
            Driver::Cgroupfs => {
                let leaf = self.leaf_dirs()?;
                let dirs: Vec<PathBuf> = leaf.iter().map(|(_, d)| d.clone()).collect();
                if self.layout != Layout::V1 {
                    for dir in &dirs {
                        fs::ensure_unused(dir)?;
                    }
                    fs::create_v2(&self.mount_root, &self.path)?;
                    let m = self.manager()?;
                    m.apply(&controller_opt(resources))
                        .map_err(self.op_err("apply resources to"))?;
                    self.apply_bpf_devices(resources)?;
                    return m
                        .add_task(Pid::from_raw(pid))
                        .map_err(self.op_err("add pid to"));
                }
                self.make_v1(&leaf, resources)?;
                fs::attach(&dirs, pid)
            }
        }
    }

    /// Names the systemd unit "husk container <name>" (libcgroups' manager says "youki
    /// container"): cosmetic, so a failure is only logged.
    fn describe_unit(&self) {
        let Ok(sd) = validate_systemd(&self.path) else {
            return;
        };
        let description = format!("husk container {}", sd.name);
        let set = dbus::Bus::open(self.rootless)
            .and_then(|mut bus| dbus::set_description(&mut bus, &sd.unit(), &description));
        if let Err(e) = set {
            log::warn!("describe unit {}: {e}", sd.unit());
        }
    }

    /// v1 cgroupfs: the directories, then the limits (devices from deny-all).
    fn make_v1(
        &self,
        leaf: &[(String, PathBuf)],
        resources: &LinuxResources,
    ) -> Result<(), CgroupError> {
        // runc refuses too: on v1 there is nowhere to write them, and ignoring limits is worse.
        if resources.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(CgroupError::UnifiedOnV1);
        }
        fs::create_v1(leaf)?;
        let effective = with_deny_all(resources);
        if only_devices(&effective) {
            apply_v1_devices(&dirs_for(leaf, "devices"), &effective)?;
        } else {
            self.manager()?
                .apply(&controller_opt(&effective))
                .map_err(self.op_err("apply resources to"))?;
        }
        Ok(())
    }

    /// The files through which a process moves itself into this cgroup ([`join_self`]): each v1
    /// hierarchy's `tasks`. Empty for every other driver and layout, where [`Cgroup::enter`]
    /// moves the process in.
    ///
    /// Why: writing a pid to `cgroup.procs` write-locks the kernel's cgroup_threadgroup_rwsem,
    /// which waits for an RCU grace period whenever no other writer held it just before: 5-11 ms
    /// measured on this project's VM, more than a whole container start. A thread writing `0` to
    /// a v1 `tasks` file moves itself without taking that lock (cgroup_procs_write_start).
    pub fn self_join_files(&self) -> Result<Vec<PathBuf>, CgroupError> {
        if self.driver != Driver::Cgroupfs || self.layout != Layout::V1 {
            return Ok(Vec::new());
        }
        Ok(self
            .leaf_dirs()?
            .into_iter()
            .map(|(_, d)| d.join("tasks"))
            .collect())
    }

    /// [`Cgroup::enter`] for a process that joins by itself ([`Cgroup::self_join_files`]):
    /// creates the cgroup and applies `resources`, attaching nobody.
    pub fn make_for_self_join(
        &self,
        resources: Option<&LinuxResources>,
    ) -> Result<(), CgroupError> {
        let empty = LinuxResources::default();
        self.make_v1(&self.leaf_dirs()?, resources.unwrap_or(&empty))
    }

    /// Adds a further process (exec) to the existing cgroup.
    pub fn add(&self, pid: i32) -> Result<(), CgroupError> {
        if !self.is_enabled() {
            return Ok(());
        }
        if self.driver == Driver::Cgroupfs && self.layout == Layout::V1 {
            let dirs: Vec<PathBuf> = self.leaf_dirs()?.into_iter().map(|(_, d)| d).collect();
            return fs::attach(&dirs, pid);
        }
        self.manager()?
            .add_task(Pid::from_raw(pid))
            .map_err(self.op_err("add pid to"))
    }

    /// Applies new limits to a running container (`update`). On v1 device rules are left as they
    /// are, as runc does: rewriting them would briefly deny devices to running processes. On v2 an
    /// update that carries device rules replaces the device program (the new one is attached
    /// before the old one goes, so nothing is allowed meanwhile that neither allows).
    pub fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        if !self.is_enabled() {
            return Err(CgroupError::Disabled {
                op: "update resources",
            });
        }
        let mut update = resources.clone();
        update.set_devices(None);
        if self.driver == Driver::Cgroupfs && self.layout == Layout::V1 {
            if let Some(dir) = self.dir_for("cpu")? {
                update = bandwidth::apply_pairs(&dir, &update)?;
            }
        }
        self.manager()?
            .apply(&controller_opt(&update))
            .map_err(self.op_err("apply resources to"))?;
        if resources.devices().is_some() {
            self.apply_bpf_devices(resources)?;
        }
        Ok(())
    }

    pub fn freeze(&self) -> Result<(), CgroupError> {
        self.set_freezer(FreezerState::Frozen, "freeze")
    }

    pub fn thaw(&self) -> Result<(), CgroupError> {
        self.set_freezer(FreezerState::Thawed, "thaw")
    }

    fn set_freezer(&self, state: FreezerState, op: &'static str) -> Result<(), CgroupError> {
        if !self.is_enabled() {
            return Err(CgroupError::Disabled { op });
        }
        self.manager()?.freeze(state).map_err(self.op_err(op))
    }

    /// Whether the freezer reports the cgroup frozen; false for a missing cgroup or Disabled.
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        match self.dir_for("freezer")? {
            None => Ok(false),
            Some(dir) if self.layout == Layout::V1 && self.driver == Driver::Cgroupfs => {
                fs::v1_frozen(&dir)
            }
            Some(dir) => fs::v2_frozen(&dir),
        }
    }

    /// Every pid in the cgroup and its descendants (ps, kill --all).
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        if !self.is_enabled() {
            return Err(CgroupError::Disabled { op: "list pids" });
        }
        let pids = self
            .manager()?
            .get_all_pids()
            .map_err(self.op_err("list pids of"))?;
        Ok(pids.into_iter().map(Pid::as_raw).collect())
    }

    /// Usage counters as runc's `events --stats` "data" object.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        if !self.is_enabled() {
            return Err(CgroupError::Disabled { op: "read stats" });
        }
        let mut raw = self
            .manager()?
            .stats()
            .map_err(self.op_err("read stats of"))?;
        let v1 = self.driver == Driver::Cgroupfs && self.layout == Layout::V1;
        stats::to_nanoseconds(&mut raw, v1);
        Ok(stats::to_json(&raw))
    }

    /// Number of OOM kills seen in this cgroup so far (memory.oom_control / memory.events).
    pub fn oom_kills(&self) -> Result<u64, CgroupError> {
        let Some(dir) = self.dir_for("memory")? else {
            return Ok(0);
        };
        let file = match (self.driver, self.layout) {
            (Driver::Cgroupfs, Layout::V1) => "memory.oom_control",
            _ => "memory.events",
        };
        fs::keyed_value(&dir.join(file), "oom_kill")
    }

    /// Removes the container's cgroup directories (rmdir only; see the module docs).
    pub fn remove(&self) -> Result<(), CgroupError> {
        match self.driver {
            Driver::Disabled => Ok(()),
            Driver::Systemd => {
                validate_systemd(&self.path).map_err(|_| self.refuse("path fails validation"))?;
                self.manager()?.remove().map_err(self.op_err("remove"))
            }
            Driver::Cgroupfs => {
                let dirs = self.checked_for_removal()?;
                for dir in &dirs {
                    fs::remove_dir(dir)?;
                }
                Ok(())
            }
        }
    }

    fn refuse(&self, reason: &'static str) -> CgroupError {
        CgroupError::RefuseRemove {
            path: path::display(&self.path),
            reason,
        }
    }

    /// All checks before any rmdir: the stored path re-validates to itself, and no directory is this
    /// process's cgroup or an ancestor of it, nor resolves outside its mount.
    fn checked_for_removal(&self) -> Result<Vec<PathBuf>, CgroupError> {
        let rel = validate_fs(&self.path).map_err(|_| self.refuse("path fails validation"))?;
        if rel != self.path {
            return Err(self.refuse("path is not in the form prepare stores"));
        }
        let proc_self = fs::read_opt(Path::new("/proc/self/cgroup"))?.unwrap_or_default();
        let own = path::own_cgroups(&proc_self);
        let mut dirs = Vec::new();
        for (ctrl, dir) in self.leaf_dirs()? {
            // v1 directories are matched with their controller's line, v2 with the `0::` line.
            let holds_us = own
                .iter()
                .filter(|(ctrls, _)| match ctrl.is_empty() {
                    true => ctrls.is_empty(),
                    false => ctrls.contains(&ctrl),
                })
                .any(|(_, mine)| path::is_self_or_ancestor(&rel, mine));
            if holds_us {
                return Err(self.refuse("it holds this process"));
            }
            // A v1 hierarchy comes from mountinfo's `cgroup` mounts, and cgroupfs cannot hold a
            // symlink; any other root (v2, a test tree, systemd's) is checked.
            let v1 = self.layout == Layout::V1 && self.driver == Driver::Cgroupfs;
            if let Some(mount) = mount_of(&dir, &rel).filter(|_| !v1) {
                if !stays_under(&mount, &rel) {
                    return Err(self.refuse("it resolves outside its hierarchy"));
                }
            }
            dirs.push(dir);
        }
        Ok(dirs)
    }
}

/// Whether `mount/rel` resolves strictly below `mount` (a missing directory counts as staying).
///
/// When no component of `rel` is a symlink, `realpath(mount/rel)` is `realpath(mount)/rel` (rel is
/// validated: no `.` or `..`), so the answer is yes after one lstat per component; only a symlink
/// needs the two full canonicalisations (realpath costs a readlink per component of the whole path).
fn stays_under(mount: &Path, rel: &Path) -> bool {
    let mut at = mount.to_path_buf();
    for part in rel.components() {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => return stays_under_slow(mount, rel),
            Ok(_) => {}
            // Missing: canonicalize fails as well, and a path that cannot be resolved is not refused.
            Err(_) => return true,
        }
    }
    true
}

fn stays_under_slow(mount: &Path, rel: &Path) -> bool {
    let Ok(real) = mount.join(rel).canonicalize() else {
        return true;
    };
    let mount = mount.canonicalize().unwrap_or_else(|_| mount.to_path_buf());
    real.starts_with(&mount) && real != mount
}

/// `dir` minus the trailing `rel`: the hierarchy mount it was built from.
fn mount_of(dir: &Path, rel: &Path) -> Option<PathBuf> {
    let mut mount = dir.to_path_buf();
    for _ in rel.components() {
        if !mount.pop() {
            return None;
        }
    }
    Some(mount)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    #[test]
    fn deny_all_is_prepended_once() {
        let r = with_deny_all(&LinuxResources::default());
        let devs = r.devices().clone().unwrap();
        assert_eq!(devs.len(), 1);
        assert_eq!(devs[0].to_string(), "a *:* rwm");
        assert!(!devs[0].allow());

        let again = with_deny_all(&r);
        assert_eq!(again.devices().as_ref().unwrap().len(), 1);

        // A deny of only some access bits is not deny-all: the full rule still goes first.
        let mut partial = LinuxResources::default();
        let deny_r = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("r")
            .build()
            .unwrap();
        partial.set_devices(Some(vec![deny_r]));
        assert_eq!(with_deny_all(&partial).devices().as_ref().unwrap().len(), 2);

        let mut spec = LinuxResources::default();
        let null = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(1)
            .minor(3)
            .access("rwm")
            .build()
            .unwrap();
        spec.set_devices(Some(vec![null]));
        let devs = with_deny_all(&spec).devices().clone().unwrap();
        assert_eq!(devs.len(), 2);
        assert_eq!(devs[0].to_string(), "a *:* rwm");
        assert_eq!(devs[1].to_string(), "c 1:3 rwm");
    }

    #[test]
    fn stays_under_follows_symlinks_only_when_present() {
        let t = testutil::TempTree::new("stays-under");
        std::fs::create_dir_all(t.path("mnt/husk/a")).unwrap();
        std::fs::create_dir_all(t.path("elsewhere/a")).unwrap();
        let mnt = t.path("mnt");
        assert!(stays_under(&mnt, Path::new("husk/a")));
        assert!(stays_under(&mnt, Path::new("husk/missing")));
        std::os::unix::fs::symlink(t.path("elsewhere"), t.path("mnt/out")).unwrap();
        assert!(!stays_under(&mnt, Path::new("out/a")));
        std::os::unix::fs::symlink(t.path("mnt/husk"), t.path("mnt/in")).unwrap();
        assert!(stays_under(&mnt, Path::new("in/a")));
        std::os::unix::fs::symlink(&mnt, t.path("mnt/self")).unwrap();
        assert!(!stays_under(&mnt, Path::new("self")));
    }

    #[test]
    fn mount_of_strips_rel() {
        assert_eq!(
            mount_of(
                Path::new("/sys/fs/cgroup/memory/husk/a"),
                Path::new("husk/a")
            ),
            Some(PathBuf::from("/sys/fs/cgroup/memory"))
        );
    }

    #[test]
    fn systemd_driver_without_systemd_is_an_error() {
        if libcgroups::systemd::booted() {
            return;
        }
        let opts = Options {
            driver: Driver::Systemd,
            ..Options::default()
        };
        let err = Cgroup::prepare(None, "abc", &opts).unwrap_err();
        assert!(matches!(err, CgroupError::NoSystemd), "{err}");
        assert!(err.to_string().contains("PID 1 is not systemd"));
    }

    #[test]
    fn disabled_driver_ignores_resources() {
        let opts = Options {
            driver: Driver::Disabled,
            ..Options::default()
        };
        let (cg, warn) = Cgroup::prepare(None, "abc", &opts).unwrap();
        assert!(!cg.is_enabled() && warn.is_none() && !cg.devices_enforced());
        cg.enter(1, None).unwrap();
        cg.remove().unwrap();
        assert!(matches!(cg.freeze(), Err(CgroupError::Disabled { .. })));
        assert!(matches!(cg.stats(), Err(CgroupError::Disabled { .. })));
        assert!(!cg.is_frozen().unwrap());
        assert_eq!(cg.oom_kills().unwrap(), 0);
    }

    #[test]
    fn handle_round_trips_through_json() {
        let cg = Cgroup {
            driver: Driver::Cgroupfs,
            path: PathBuf::from("husk/abc"),
            mount_root: PathBuf::from("/sys/fs/cgroup"),
            layout: Layout::V2,
            rootless: false,
        };
        let text = serde_json::to_string(&cg).unwrap();
        assert!(text.contains("\"driver\":\"cgroupfs\"") && text.contains("\"layout\":\"v2\""));
        let back: Cgroup = serde_json::from_str(&text).unwrap();
        assert_eq!(back.path, cg.path);
        let old: Cgroup = serde_json::from_str(
            r#"{"driver":"disabled","path":"husk/x","mount_root":"/sys/fs/cgroup","layout":"auto"}"#,
        )
        .unwrap();
        assert!(!old.rootless);
    }
}
