//! Root filesystem: config → a pure list of mount operations ([`plan`]), then one executor applies it
//! inside the container's new mount namespace.
//!
//! CONTRACT (used by process/init, in the child, in this order):
//! `Plan::prepare` (propagation, bind the rootfs onto itself, read-only at once with
//! [`EARLY_READONLY`], every `mounts` entry, default devices, /dev symlinks and ptmx) →
//! [createContainer hooks] → `Plan::pivot` (pivot_root, or MS_MOVE+chroot with no_pivot after
//! hiding the host's proc and sysfs; then `rootfsPropagation` again on `/`) → [console on
//! /dev/console, sysctls, cwd] → `Plan::finalize` (read-only tmpfs and /dev, masked paths,
//! readonly paths, readonly root).
//!
//! Invariants:
//! - Every destination is resolved inside the rootfs without following symlinks out of it
//!   (openat2 `RESOLVE_IN_ROOT`, missing components created one at a time; see [`resolve`]), and the
//!   mount goes onto `/proc/self/fd/<fd>` so the kernel mounts on exactly the object we resolved
//!   (the CVE-2021-30465 class of symlink-exchange attacks).
//! - proc and sysfs are never mounted through a symlink (CVE-2019-16884/-19921).
//! - Bind remounts keep the source's locked flags (nosuid, nodev, noexec, ro, atime) unless the config
//!   clears them explicitly; in a user namespace the kernel refuses to drop them (mount_namespaces(7)).
//! - Masked files are covered with /dev/null only after checking it is the real 1:3 character device
//!   (runc CVE-2025-31133).
//! - A read-only tmpfs or /dev is mounted writable and made read-only in `finalize` (devices, the
//!   console, modes and `tmpcopyup` copies go in first), as runc does.
//!
//! Behaviour follows runc's libcontainer/rootfs_linux.go; see also mount(2), pivot_root(2), openat2(2).

mod cgroup;
mod copyup;
mod dev;
mod exec;
pub mod options;
mod resolve;

#[cfg(test)]
mod component_tests;

pub use cgroup::note_own_cgroup;
pub use dev::{bind_console, Device, DeviceKind};
pub use options::MountOptions;

use nix::errno::Errno;
use nix::mount::MsFlags;
use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("plan rootfs: config has no root")]
    NoRoot,
    #[error("parse linux.rootfsPropagation {0:?}: unknown propagation")]
    RootfsPropagation(String),
    #[error("parse mounts {destination} option {option:?}: unsupported")]
    UnsupportedOption {
        destination: PathBuf,
        option: String,
    },
    #[error("plan mount {destination}: idmapped mounts (uidMappings/gidMappings) are unsupported")]
    Idmapped { destination: PathBuf },
    #[error("plan mount {destination}: no source")]
    NoSource { destination: PathBuf },
    #[error("plan mount {destination}: no type")]
    NoType { destination: PathBuf },
    #[error("plan linux.devices {path}: unsupported device type {kind:?}")]
    DeviceType { path: PathBuf, kind: String },
    #[error("resolve {path} in rootfs: {source}")]
    Resolve { path: PathBuf, source: Errno },
    #[error(
        "mount {fstype} on {path}: filesystem {fstype:?} must be mounted on ordinary directory"
    )]
    NotDirectory { fstype: String, path: PathBuf },
    #[error("mount {what} on {path}: {source}")]
    Mount {
        what: String,
        path: PathBuf,
        source: Errno,
    },
    #[error("remount {path}: {source}")]
    Remount { path: PathBuf, source: Errno },
    #[error("apply recursive mount options (rro, rnosuid, ...) to {path}: {source}{}",
        if *source == Errno::ENOSYS { " (mount_setattr needs Linux 5.12)" } else { "" })]
    Setattr { path: PathBuf, source: Errno },
    #[error("set propagation of {path}: {source}")]
    Propagation { path: PathBuf, source: Errno },
    #[error("statfs {path}: {source}")]
    Statfs { path: PathBuf, source: Errno },
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("create device {path}: {source}")]
    Device { path: PathBuf, source: Errno },
    #[error("create symlink {path}: {source}")]
    Symlink { path: PathBuf, source: Errno },
    #[error("copy {path} into its tmpfs (tmpcopyup): {source}")]
    CopyUp { path: PathBuf, source: Errno },
    #[error("mask {path}: /dev/null is not the null device")]
    NotNullDevice { path: PathBuf },
    #[error("{op} {path}: {source}")]
    Pivot {
        op: &'static str,
        path: PathBuf,
        source: Errno,
    },
}

/// Annotation: "true" says every mount point already exists in the rootfs and /dev is a mount of
/// its own (husk's launcher sees to both), so a read-only root is made read-only right after it is
/// bound, before any mount: nothing can then be created in it, whatever the mounts ask (a missing
/// mount point is EROFS). Without it a read-only root is remounted last, as runc does, after
/// missing mount points and the default devices were created.
pub const EARLY_READONLY: &str = "run.husk.rootfs.early-readonly";

/// How the rootfs is to be set up.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The child runs in a user namespace it does not fully own (device nodes are bind-mounted, not made).
    pub rootless: bool,
    /// The container has its own user namespace.
    pub userns: bool,
    pub no_pivot: bool,
}

/// What a [`MountOp`] mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// A bind (or rbind, with MS_REC in the flags) of a host path.
    Bind { source: PathBuf },
    /// A new filesystem instance (tmpfs, proc, sysfs, mqueue, devpts, anything else as-is).
    Fs { fstype: String, source: String },
    /// cgroup or cgroup2: the host's layout (v1 or v2) is checked when the mount is applied.
    /// `cgroupns`: the container has its own cgroup namespace, so fresh cgroup mounts show only its
    /// subtree; without one, only the container's own directories are bound in.
    Cgroup { cgroupns: bool },
}

/// One entry of `mounts`, ready for mount(2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOp {
    /// Absolute, lexically clean path inside the container.
    pub destination: PathBuf,
    pub kind: MountKind,
    pub options: MountOptions,
    /// Tried when the mount fails with EPERM, EINVAL or EBUSY (the user-namespace cases: sysfs without
    /// a netns, mqueue without an ipcns, devpts with an unmapped gid=).
    pub fallback: Option<Box<MountOp>>,
}

/// The mount plan: printable with --debug, applied by the child.
#[derive(Debug, Clone)]
pub struct Plan {
    pub rootfs: PathBuf,
    /// `rootfs` with its symlinks resolved when the plan was made (the init inherits it instead of
    /// resolving it twice more); `None` if it did not resolve then, so the init reports it.
    pub rootfs_real: Option<PathBuf>,
    pub readonly: bool,
    /// Make the read-only root read-only before the mounts ([`EARLY_READONLY`]).
    pub readonly_early: bool,
    pub options: Options,
    /// Propagation of `/` in the new mount namespace (`linux.rootfsPropagation`, default rprivate).
    pub propagation: MsFlags,
    pub mounts: Vec<MountOp>,
    /// False when `/dev` (its last mount) is a bind mount: then devices, /dev symlinks and ptmx are
    /// left alone.
    pub setup_dev: bool,
    /// Default devices merged with `linux.devices` (config entries win by path).
    pub devices: Vec<Device>,
    /// (target, link) pairs created in /dev.
    pub dev_symlinks: Vec<(PathBuf, PathBuf)>,
    pub masked_paths: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
}

/// Builds the plan (parent side, no syscalls).
pub fn plan(spec: &Spec, bundle: &Path, options: &Options) -> Result<Plan, RootfsError> {
    let root = spec.root().as_ref().ok_or(RootfsError::NoRoot)?;
    let linux = spec.linux().as_ref();
    let propagation = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        None | Some("") => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        Some(p) => {
            options::propagation(p).ok_or_else(|| RootfsError::RootfsPropagation(p.into()))?
        }
    };
    // Namespaces the container creates (a `path` joins an existing one, owned by someone else).
    let namespaces = linux.and_then(|l| l.namespaces().as_ref());
    let own =
        |t| namespaces.is_some_and(|nss| nss.iter().any(|ns| ns.typ() == t && ns.path().is_none()));
    let mounts = spec
        .mounts()
        .iter()
        .flatten()
        .map(|m| plan_mount(m, bundle, options, &own))
        .collect::<Result<Vec<_>, _>>()?;
    // The last mount at /dev is the /dev the container sees (a launcher may bind the image's own
    // /dev first and cover it with a tmpfs).
    let setup_dev = !mounts
        .iter()
        .rev()
        .find(|m| m.destination == Path::new("/dev"))
        .is_some_and(|m| matches!(m.kind, MountKind::Bind { .. }));
    let devices = dev::merge(linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]))?;
    let paths = |list: Option<&Vec<String>>| -> Vec<PathBuf> {
        list.into_iter()
            .flatten()
            .map(|p| clean(Path::new(p)))
            .collect()
    };
    let readonly = root.readonly().unwrap_or(false);
    let early = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(EARLY_READONLY))
        .is_some_and(|v| v == "true");
    let rootfs = bundle.join(root.path());
    Ok(Plan {
        rootfs_real: std::fs::canonicalize(&rootfs).ok(),
        rootfs,
        readonly,
        readonly_early: readonly && early,
        options: options.clone(),
        propagation,
        mounts,
        setup_dev,
        devices,
        dev_symlinks: dev::symlinks(),
        masked_paths: paths(linux.and_then(|l| l.masked_paths().as_ref())),
        readonly_paths: paths(linux.and_then(|l| l.readonly_paths().as_ref())),
    })
}

fn plan_mount(
    m: &Mount,
    bundle: &Path,
    options: &Options,
    own: &dyn Fn(LinuxNamespaceType) -> bool,
) -> Result<MountOp, RootfsError> {
    use LinuxNamespaceType::{Cgroup, Network};
    let destination = clean(m.destination());
    if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
        return Err(RootfsError::Idmapped { destination });
    }
    let mut opts = options::parse(m.options().as_deref().unwrap_or(&[])).map_err(|option| {
        RootfsError::UnsupportedOption {
            destination: destination.clone(),
            option,
        }
    })?;
    let fstype = m.typ().as_deref().unwrap_or("");
    let is_bind = fstype == "bind" || opts.flags.contains(MsFlags::MS_BIND);
    let op = |kind, options| MountOp {
        destination: destination.clone(),
        kind,
        options,
        fallback: None,
    };
    if is_bind {
        opts.flags |= MsFlags::MS_BIND;
        let source = m.source().as_ref().ok_or_else(|| RootfsError::NoSource {
            destination: destination.clone(),
        })?;
        // Relative bind sources are relative to the bundle, as runc (which runs in the bundle) has it.
        return Ok(op(
            MountKind::Bind {
                source: bundle.join(source),
            },
            opts,
        ));
    }
    let source = m
        .source()
        .as_ref()
        .map_or_else(|| fstype.to_string(), |s| s.to_string_lossy().into_owned());
    let fs = |opts| {
        op(
            MountKind::Fs {
                fstype: fstype.to_string(),
                source: source.clone(),
            },
            opts,
        )
    };
    let host_rbind = |path: &str, opts: &MountOptions| {
        let mut o = opts.clone();
        o.flags |= MsFlags::MS_BIND | MsFlags::MS_REC;
        o.data.clear();
        op(
            MountKind::Bind {
                source: path.into(),
            },
            o,
        )
    };
    Ok(match fstype {
        "" => return Err(RootfsError::NoType { destination }),
        "cgroup" | "cgroup2" => op(
            MountKind::Cgroup {
                cgroupns: own(Cgroup),
            },
            opts,
        ),
        // A user namespace may only mount sysfs with a network namespace it owns.
        "sysfs" if options.userns && !own(Network) => host_rbind("/sys", &opts),
        "sysfs" | "mqueue" if options.userns => {
            let host = if fstype == "sysfs" {
                "/sys"
            } else {
                "/dev/mqueue"
            };
            MountOp {
                fallback: Some(Box::new(host_rbind(host, &opts))),
                ..fs(opts)
            }
        }
        // gid=5 is invalid when gid 5 is not mapped in the user namespace.
        "devpts" if options.userns && opts.data.contains("gid=") => {
            let mut retry = opts.clone();
            retry.data = without_gid(&opts.data);
            MountOp {
                fallback: Some(Box::new(fs(retry))),
                ..fs(opts)
            }
        }
        _ => fs(opts),
    })
}

fn without_gid(data: &str) -> String {
    data.split(',')
        .filter(|o| !o.starts_with("gid="))
        .collect::<Vec<_>>()
        .join(",")
}

/// Absolute, lexically clean form of a container path ("a/../b/" → "/b"); `..` stops at `/`.
pub(crate) fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

impl Plan {
    /// In the child, in its new mount namespace: propagation, rootfs bind, `mounts`, devices.
    pub fn prepare(&self) -> Result<(), RootfsError> {
        exec::prepare(self, &mut || Ok(()), &[])
    }

    /// [`Plan::prepare`], calling `before_cgroup` just before the first cgroup mount (if any).
    /// `sources` holds, in the order of [`Plan::bind_sources`], fds of bind sources opened by a
    /// more privileged parent: a source we may not reach ourselves (EACCES in a user namespace)
    /// is bound from its fd instead.
    pub fn prepare_gated<E: From<RootfsError>>(
        &self,
        before_cgroup: &mut dyn FnMut() -> Result<(), E>,
        sources: &[Option<std::os::fd::OwnedFd>],
    ) -> Result<(), E> {
        exec::prepare(self, before_cgroup, sources)
    }

    /// The host paths of the `mounts` that are binds, in order.
    pub fn bind_sources(&self) -> impl Iterator<Item = &Path> {
        self.mounts.iter().filter_map(|m| match &m.kind {
            MountKind::Bind { source } => Some(source.as_path()),
            _ => None,
        })
    }

    /// In the child, after the createContainer hooks: makes the rootfs `/`.
    pub fn pivot(&self) -> Result<(), RootfsError> {
        exec::pivot(self)
    }

    /// In the child, after [`Plan::pivot`]: masked paths, readonly paths, readonly root.
    pub fn finalize(&self) -> Result<(), RootfsError> {
        exec::finalize(self)
    }
}

#[cfg(test)]
mod tests;
