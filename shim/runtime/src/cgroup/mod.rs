//! cgroup facade over libcgroups' v1, v2 and systemd managers, plus a Disabled backend.
//!
//! CONTRACT (the rest of the engine uses only these items; the owner of this module may add more):
//! - [`Cgroup::prepare`] validates `linux.cgroupsPath` (or derives `/husk/<id>`), picks the backend and
//!   returns a serialisable handle (stored in state.json) plus an optional one-line warning (rootless
//!   without a writable/delegated cgroup → Disabled).
//! - [`Cgroup::enter`] creates the cgroup, applies resources and adds the pid (called by the parent right
//!   after clone, before the child continues). [`Cgroup::add`] adds a further pid (exec).
//! - [`Cgroup::remove`] never acts on an empty, root or foreign path.
//!
//! Invariant: a path is validated before any use; removal of an unvalidated path is impossible because
//! only [`Cgroup::prepare`] builds a handle and it validates.

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
    #[error("cgroup operation {op} on {path}: {reason}")]
    Manager {
        op: &'static str,
        path: PathBuf,
        reason: String,
    },
}

/// A validated, persistable cgroup handle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cgroup {
    pub driver: Driver,
    /// Validated path relative to the hierarchy root (never empty, never "/").
    pub path: PathBuf,
    pub mount_root: PathBuf,
    pub layout: Layout,
}

/// Resource usage in the shape of runc's `events --stats` "data" object.
pub type Stats = serde_json::Value;

impl Cgroup {
    pub fn prepare(
        cgroups_path: Option<&Path>,
        id: &str,
        opts: &Options,
    ) -> Result<(Cgroup, Option<String>), CgroupError> {
        let _ = (cgroups_path, opts);
        Ok((
            Cgroup {
                driver: Driver::Disabled,
                path: PathBuf::from(format!("husk/{id}")),
                mount_root: opts.mount_root.clone(),
                layout: opts.layout,
            },
            None,
        ))
    }
    pub fn is_enabled(&self) -> bool {
        self.driver != Driver::Disabled
    }
    pub fn enter(&self, pid: i32, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        let _ = (pid, resources);
        Ok(())
    }
    pub fn add(&self, pid: i32) -> Result<(), CgroupError> {
        let _ = pid;
        Ok(())
    }
    pub fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        let _ = resources;
        Ok(())
    }
    pub fn freeze(&self) -> Result<(), CgroupError> {
        Ok(())
    }
    pub fn thaw(&self) -> Result<(), CgroupError> {
        Ok(())
    }
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        Ok(false)
    }
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        Ok(Vec::new())
    }
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        Ok(serde_json::Value::Null)
    }
    /// Number of OOM kills seen in this cgroup so far (memory.oom_control / memory.events).
    pub fn oom_kills(&self) -> Result<u64, CgroupError> {
        Ok(0)
    }
    pub fn remove(&self) -> Result<(), CgroupError> {
        Ok(())
    }
}
