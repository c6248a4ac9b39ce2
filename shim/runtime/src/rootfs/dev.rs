//! Device nodes and /dev symlinks for a container whose /dev is not a bind mount.
//!
//! Really privileged: mknod, then chmod/chown exactly (mknod is subject to the umask). In a user
//! namespace mknod of a real device is refused, so the host's node is bind-mounted onto an empty
//! file, as runc does; its mode and owner are then the host's.

use super::{exec, resolve, RootfsError};
use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::stat::{fchmodat, mknodat, FchmodatFlags, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Char,
    Block,
    Fifo,
}

/// A device node to create in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Absolute, clean path inside the container.
    pub path: PathBuf,
    pub kind: DeviceKind,
    pub major: u64,
    pub minor: u64,
    /// Permission bits (`fileMode & 0o7777`, default 0666).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// runc's default device set (libcontainer/specconv AllowedDevices with a path).
const DEFAULTS: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Defaults first, then `linux.devices`; a config entry replaces a default with the same path.
pub fn merge(config: &[LinuxDevice]) -> Result<Vec<Device>, RootfsError> {
    let mut out: Vec<Device> = DEFAULTS
        .iter()
        .map(|&(path, major, minor)| Device {
            path: path.into(),
            kind: DeviceKind::Char,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        })
        .collect();
    for d in config {
        let path = super::clean(d.path());
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
            LinuxDeviceType::B => DeviceKind::Block,
            LinuxDeviceType::P => DeviceKind::Fifo,
            other => {
                return Err(RootfsError::DeviceType {
                    path,
                    kind: other.as_str().to_string(),
                })
            }
        };
        let dev = Device {
            kind,
            major: d.major().max(0) as u64,
            minor: d.minor().max(0) as u64,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
            path,
        };
        out.retain(|o| o.path != dev.path);
        out.push(dev);
    }
    Ok(out)
}

/// runc's setupDevSymlinks list; /dev/core only where the host has /proc/kcore (checked when applied).
pub fn symlinks() -> Vec<(PathBuf, PathBuf)> {
    [
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
        ("/proc/kcore", "/dev/core"),
    ]
    .iter()
    .map(|&(t, l)| (t.into(), l.into()))
    .collect()
}

/// Creates one device in the rootfs behind `root`.
pub fn create(root: impl AsFd, dev: &Device, bind: bool) -> Result<(), RootfsError> {
    let root = root.as_fd();
    let err = |source| RootfsError::Device {
        path: dev.path.clone(),
        source,
    };
    if bind {
        let target = resolve::open(root, &dev.path, resolve::Create::File)
            .map_err(|source| resolve_err(&dev.path, source))?;
        return exec::mount_at(
            Some(&dev.path),
            &target,
            None,
            MsFlags::MS_BIND,
            "",
            &dev.path,
        );
    }
    let parent = dev.path.parent().unwrap_or(Path::new("/"));
    let name = dev.path.file_name().ok_or_else(|| err(Errno::EINVAL))?;
    let dir = resolve::open(root, parent, resolve::Create::Dir)
        .map_err(|source| resolve_err(parent, source))?;
    let kind = match dev.kind {
        DeviceKind::Char => SFlag::S_IFCHR,
        DeviceKind::Block => SFlag::S_IFBLK,
        DeviceKind::Fifo => SFlag::S_IFIFO,
    };
    let perm = Mode::from_bits_truncate(dev.mode);
    let rdev = nix::sys::stat::makedev(dev.major, dev.minor);
    match mknodat(Some(dir.as_raw_fd()), name, kind, perm, rdev) {
        // Like runc: an existing node is left as the image made it.
        Err(Errno::EEXIST) => return Ok(()),
        r => r.map_err(err)?,
    }
    fchmodat(
        Some(dir.as_raw_fd()),
        name,
        perm,
        FchmodatFlags::NoFollowSymlink,
    )
    .or_else(|e| match e {
        // fchmodat(AT_SYMLINK_NOFOLLOW) is refused by older kernels; the node is fresh, not a link.
        Errno::EOPNOTSUPP => fchmodat(
            Some(dir.as_raw_fd()),
            name,
            perm,
            FchmodatFlags::FollowSymlink,
        ),
        e => Err(e),
    })
    .map_err(err)?;
    fchownat(
        Some(dir.as_raw_fd()),
        name,
        Some(Uid::from_raw(dev.uid)),
        Some(Gid::from_raw(dev.gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(err)
}

/// /dev/ptmx → pts/ptmx, so the container's devpts instance is used (devpts(5) newinstance).
pub fn ptmx(root: impl AsFd) -> Result<(), RootfsError> {
    let path = Path::new("/dev/ptmx");
    let dev = resolve::open(root.as_fd(), Path::new("/dev"), resolve::Create::Dir)
        .map_err(|source| resolve_err(Path::new("/dev"), source))?;
    let err = |source| RootfsError::Symlink {
        path: path.into(),
        source,
    };
    match unlinkat(Some(dev.as_raw_fd()), "ptmx", UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(err(e)),
    }
    symlinkat("pts/ptmx", Some(dev.as_raw_fd()), "ptmx").map_err(err)
}

/// Creates `link` → `target`; an existing entry is kept.
pub fn symlink(root: impl AsFd, target: &Path, link: &Path) -> Result<(), RootfsError> {
    if link == Path::new("/dev/core") && !Path::new("/proc/kcore").exists() {
        return Ok(());
    }
    let parent = link.parent().unwrap_or(Path::new("/"));
    let err = |source| RootfsError::Symlink {
        path: link.into(),
        source,
    };
    let name = link.file_name().ok_or_else(|| err(Errno::EINVAL))?;
    let dir = resolve::open(root.as_fd(), parent, resolve::Create::Dir)
        .map_err(|source| resolve_err(parent, source))?;
    match symlinkat(target, Some(dir.as_raw_fd()), name) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(err(e)),
    }
}

fn resolve_err(path: &Path, source: Errno) -> RootfsError {
    RootfsError::Resolve {
        path: path.into(),
        source,
    }
}
