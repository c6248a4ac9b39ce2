//! Root filesystem: config → a pure list of mount operations ([`plan`]), then one executor applies it
//! inside the container's new mount namespace.
//!
//! CONTRACT (used by process/init, in the child, in this order):
//! `Plan::prepare` (propagation, bind the rootfs onto itself, every `mounts` entry, default devices,
//! /dev symlinks and ptmx) → [createContainer hooks] → `Plan::pivot` (pivot_root, or MS_MOVE+chroot with
//! no_pivot) → `Plan::finalize` (masked paths, readonly paths, readonly root).
//! Every destination is resolved inside the rootfs without following symlinks out of it.

use oci_spec::runtime::Spec;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("rootfs {path}: {reason}")]
    Rootfs { path: PathBuf, reason: String },
}

/// How the rootfs is to be set up.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The child runs in a user namespace it does not fully own (device nodes are bind-mounted, not made).
    pub rootless: bool,
    /// The container has its own user namespace.
    pub userns: bool,
    pub no_pivot: bool,
}

/// The mount plan: printable with --debug, applied by the child.
#[derive(Debug, Clone)]
pub struct Plan {
    pub rootfs: PathBuf,
    pub readonly: bool,
    pub options: Options,
}

/// Builds the plan (parent side, no syscalls except reading the bundle path).
pub fn plan(spec: &Spec, bundle: &Path, options: &Options) -> Result<Plan, RootfsError> {
    let root = spec.root().as_ref().ok_or_else(|| RootfsError::Rootfs {
        path: bundle.to_path_buf(),
        reason: "config has no root".into(),
    })?;
    let rootfs = bundle.join(root.path());
    Ok(Plan {
        rootfs,
        readonly: root.readonly().unwrap_or(false),
        options: options.clone(),
    })
}

impl Plan {
    pub fn prepare(&self) -> Result<(), RootfsError> {
        Ok(())
    }
    pub fn pivot(&self) -> Result<(), RootfsError> {
        Ok(())
    }
    pub fn finalize(&self) -> Result<(), RootfsError> {
        Ok(())
    }
}
