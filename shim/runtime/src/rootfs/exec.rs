//! The executor: applies a [`Plan`] in the child's new mount namespace.
//!
//! Mounts go onto `/proc/self/fd/<fd>` of an O_PATH fd resolved by [`resolve`]. Such an fd keeps
//! naming the object that was *covered* by a mount, so every step after a mount (remount,
//! propagation) resolves the destination again to reach the new mount's root.

use super::{cgroup, copyup, dev, resolve, MountKind, MountOp, MountOptions, Plan, RootfsError};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{fstat, SFlag};
use nix::sys::statvfs::{fstatvfs, FsFlags};
use nix::unistd::{chdir, chroot, fchdir, pivot_root};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// `/proc/self/fd/N`: mounting there mounts on exactly the object `fd` refers to.
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// mount(2) onto the object behind `target`; `dest` names it in errors.
pub fn mount_at(
    source: Option<&Path>,
    target: &OwnedFd,
    fstype: Option<&str>,
    flags: MsFlags,
    data: &str,
    dest: &Path,
) -> Result<(), RootfsError> {
    let data = (!data.is_empty()).then_some(data);
    log::trace!("mount({source:?}, {dest:?}, {fstype:?}, {flags:?}, {data:?})");
    mount(source, &fd_path(target), fstype, flags, data).map_err(|e| RootfsError::Mount {
        what: fstype.map_or_else(
            || source.unwrap_or(Path::new("")).display().to_string(),
            str::to_string,
        ),
        path: dest.into(),
        source: e,
    })
}

pub(super) fn open_dir(path: &Path) -> Result<OwnedFd, RootfsError> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|source| RootfsError::Read {
            path: path.into(),
            source,
        })
}

fn resolve_err(path: &Path) -> impl FnOnce(Errno) -> RootfsError + '_ {
    move |source| RootfsError::Resolve {
        path: path.into(),
        source,
    }
}

fn rootfs_path(plan: &Plan) -> Result<PathBuf, RootfsError> {
    if let Some(real) = &plan.rootfs_real {
        return Ok(real.clone());
    }
    std::fs::canonicalize(&plan.rootfs).map_err(|source| RootfsError::Read {
        path: plan.rootfs.clone(),
        source,
    })
}

pub fn prepare<E: From<RootfsError>>(
    plan: &Plan,
    before_cgroup: &mut dyn FnMut() -> Result<(), E>,
    sources: &[Option<OwnedFd>],
) -> Result<(), E> {
    let propagate = |path: &Path, flags| {
        mount(None::<&str>, path, None::<&str>, flags, None::<&str>).map_err(|source| {
            RootfsError::Propagation {
                path: path.into(),
                source,
            }
        })
    };
    log::debug!("rootfs: propagation of / {:?}", plan.propagation);
    propagate(Path::new("/"), plan.propagation)?;
    let rootfs = rootfs_path(plan)?;
    if plan.propagation.contains(MsFlags::MS_SHARED) {
        // pivot_root(2) refuses a new root whose parent mount is shared.
        let parent = parent_mount(rootfs.parent().unwrap_or(Path::new("/")))?;
        propagate(&parent, MsFlags::MS_PRIVATE)?;
    }
    // pivot_root needs the new root to be a mount point.
    mount(
        Some(&rootfs),
        &rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|source| RootfsError::Mount {
        what: rootfs.display().to_string(),
        path: rootfs.clone(),
        source,
    })?;
    let mut root = open_dir(&rootfs)?;
    if plan.readonly_early {
        log::debug!("rootfs: remount / read-only before the mounts");
        remount_bind(root.as_fd(), Path::new("/"), &read_only())?;
    }
    let mut binds = 0;
    for op in &plan.mounts {
        if matches!(op.kind, MountKind::Cgroup { .. }) {
            before_cgroup()?;
        }
        log::debug!("rootfs: mount {op:?}");
        let source_fd = match op.kind {
            MountKind::Bind { .. } => {
                binds += 1;
                sources.get(binds - 1).and_then(Option::as_ref)
            }
            _ => None,
        };
        apply(root.as_fd(), op, source_fd)?;
        if op.destination.components().all(|c| c == Component::RootDir) {
            // A mount on / itself (crun's mount-bind-to-rootfs) covers the directory `root`
            // holds: the next mounts, the devices and pivot_root go on the new top, as runc's
            // path-based mounts do.
            root = open_dir(&rootfs)?;
        }
    }
    if !plan.setup_dev {
        return Ok(());
    }
    let bind = plan.options.rootless || plan.options.userns;
    log::debug!("rootfs: devices {:?} (bind: {bind})", plan.devices);
    dev::create_all(root.as_fd(), &plan.devices, bind)?;
    dev::symlinks_all(root.as_fd(), &plan.dev_symlinks)?;
    Ok(())
}

/// Applies one mount, then its fallback if the first attempt hit a user-namespace restriction.
fn apply(
    root: BorrowedFd<'_>,
    op: &MountOp,
    source_fd: Option<&OwnedFd>,
) -> Result<(), RootfsError> {
    let err = match apply_one(root, op, source_fd) {
        Err(e @ RootfsError::Mount { .. }) => e,
        r => return r,
    };
    let retryable = matches!(
        &err,
        RootfsError::Mount { source, .. } if matches!(source, Errno::EPERM | Errno::EINVAL | Errno::EBUSY)
    );
    match &op.fallback {
        Some(fallback) if retryable => {
            log::debug!("rootfs: {err}; trying {fallback:?}");
            apply_one(root, fallback, None)
        }
        _ => Err(err),
    }
}

fn apply_one(
    root: BorrowedFd<'_>,
    op: &MountOp,
    source_fd: Option<&OwnedFd>,
) -> Result<(), RootfsError> {
    let dest = &op.destination;
    match &op.kind {
        MountKind::Bind { source } => {
            let (from, is_dir) = bind_source(source, source_fd);
            let create = if is_dir {
                resolve::Create::Dir
            } else {
                resolve::Create::File
            };
            let target = resolve::open(root, dest, create).map_err(resolve_err(dest))?;
            let flags = op.options.flags & (MsFlags::MS_BIND | MsFlags::MS_REC);
            mount_at(Some(&from), &target, None, flags, "", dest)
                .map_err(|e| named_source(e, source))?;
            let extra = op.options.flags & !(flags | MsFlags::MS_REMOUNT);
            if !extra.is_empty() {
                remount_bind(root, dest, &op.options)?;
            }
        }
        MountKind::Fs { fstype, source } if fstype == "tmpfs" => mount_tmpfs(root, op, source)?,
        MountKind::Fs { fstype, source } => {
            let target = if fstype == "proc" || fstype == "sysfs" {
                proc_target(root, dest, fstype)?
            } else {
                resolve::open(root, dest, resolve::Create::Dir).map_err(resolve_err(dest))?
            };
            let o = &op.options;
            let flags = o.flags - late_readonly(op);
            mount_at(
                Some(Path::new(source)),
                &target,
                Some(fstype),
                flags,
                &o.data,
                dest,
            )?;
        }
        MountKind::Cgroup { cgroupns } => {
            cgroup::mount(root, op, *cgroupns)?;
            return set_recursive(root, dest, &op.options);
        }
    }
    set_recursive(root, dest, &op.options)?;
    propagate(root, dest, &op.options.propagation)
}

/// CVE-2019-16884/-19921: proc and sysfs must land on an ordinary directory, never through a
/// symlink (ELOOP from the resolution) nor on a file; refused with runc's words.
fn proc_target(root: BorrowedFd<'_>, dest: &Path, fstype: &str) -> Result<OwnedFd, RootfsError> {
    let refuse = || RootfsError::NotDirectory {
        fstype: fstype.to_string(),
        path: dest.into(),
    };
    let target = match resolve::open_no_symlinks(root, dest) {
        Err(Errno::ELOOP | Errno::ENOTDIR) => return Err(refuse()),
        r => r.map_err(resolve_err(dest))?,
    };
    let st = fstat(target.as_raw_fd()).map_err(resolve_err(dest))?;
    match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR {
        true => Ok(target),
        false => Err(refuse()),
    }
}

/// What to bind from: the source path; or, when we may not reach it (EACCES, EPERM: a user
/// namespace's root is nobody to the host's files) and the parent opened it for us, that fd,
/// through /proc/self/fd (the kernel then checks no permission on the path). And whether it is a
/// directory.
fn bind_source(source: &Path, fd: Option<&OwnedFd>) -> (PathBuf, bool) {
    match (std::fs::metadata(source), fd) {
        (Ok(m), _) => (source.to_path_buf(), m.is_dir()),
        (Err(e), Some(fd)) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => {
            let is_dir = fstat(fd.as_raw_fd()).is_ok_and(|st| {
                SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
            });
            (fd_path(fd), is_dir)
        }
        // The mount reports it.
        (Err(_), _) => (source.to_path_buf(), false),
    }
}

/// A bind's error names its source, not /proc/self/fd/N.
fn named_source(e: RootfsError, source: &Path) -> RootfsError {
    match e {
        RootfsError::Mount {
            path,
            source: errno,
            ..
        } => RootfsError::Mount {
            what: source.display().to_string(),
            path,
            source: errno,
        },
        e => e,
    }
}

/// A tmpfs, as runc mounts one: on an existing directory it takes that directory's mode (a
/// `mode=` of the config still wins: the later option counts), on a made one tmpfs's 1777; with
/// `tmpcopyup` it starts with a copy of what it covers ([`copyup`]).
fn mount_tmpfs(root: BorrowedFd<'_>, op: &MountOp, source: &str) -> Result<(), RootfsError> {
    let dest = &op.destination;
    let o = &op.options;
    let (target, covered) = match resolve::open(root, dest, resolve::Create::No) {
        Ok(fd) => {
            let st = fstat(fd.as_raw_fd()).map_err(resolve_err(dest))?;
            (fd, Some(st.st_mode & 0o7777))
        }
        Err(_) => (
            resolve::open(root, dest, resolve::Create::Dir).map_err(resolve_err(dest))?,
            None,
        ),
    };
    let data = match covered {
        Some(mode) if o.data.is_empty() => format!("mode={mode:04o}"),
        Some(mode) => format!("mode={mode:04o},{}", o.data),
        None => o.data.clone(),
    };
    let copy_from = match covered {
        Some(_) if o.copy_up => Some(reopen_dir(&target).map_err(resolve_err(dest))?),
        _ => None,
    };
    let flags = o.flags - late_readonly(op);
    mount_at(
        Some(Path::new(source)),
        &target,
        Some("tmpfs"),
        flags,
        &data,
        dest,
    )?;
    if let Some(from) = copy_from {
        let top = resolve::open(root, dest, resolve::Create::No).map_err(resolve_err(dest))?;
        let to = reopen_dir(&top).map_err(resolve_err(dest))?;
        copyup::copy_tree(from.as_fd(), to.as_fd()).map_err(|source| RootfsError::CopyUp {
            path: dest.clone(),
            source,
        })?;
    }
    Ok(())
}

/// A readable directory fd from an O_PATH one (to list it).
fn reopen_dir(fd: &OwnedFd) -> nix::Result<OwnedFd> {
    let how = nix::fcntl::OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(nix::fcntl::ResolveFlag::RESOLVE_NO_SYMLINKS);
    crate::sys::fd::openat2(fd.as_fd(), Path::new("."), how)
}

/// MS_RDONLY when `op` is a read-only tmpfs or /dev: those are mounted writable (devices, modes
/// and copies go in first) and made read-only by [`finalize`], as runc does.
fn late_readonly(op: &MountOp) -> MsFlags {
    let late = match &op.kind {
        MountKind::Fs { fstype, .. } => fstype == "tmpfs" || op.destination == Path::new("/dev"),
        _ => false,
    };
    if late {
        op.options.flags & MsFlags::MS_RDONLY
    } else {
        MsFlags::empty()
    }
}

/// `rro`, `rnosuid`, ...: mount_setattr(2) with AT_RECURSIVE on the mount now at `dest`, so the
/// mounts below it (an rbind's submounts) get them too, not only the top one as with `ro`.
fn set_recursive(root: BorrowedFd<'_>, dest: &Path, o: &MountOptions) -> Result<(), RootfsError> {
    let r = o.recursive;
    if r.is_empty() {
        return Ok(());
    }
    let top = resolve::open(root, dest, resolve::Create::No).map_err(resolve_err(dest))?;
    log::trace!(
        "mount_setattr({dest:?}, AT_RECURSIVE, set {:#x}, clear {:#x})",
        r.set,
        r.clear
    );
    crate::sys::mount_setattr_recursive(top.as_fd(), r.set, r.clear).map_err(|source| {
        RootfsError::Setattr {
            path: dest.into(),
            source,
        }
    })
}

/// Applies `mounts[].options` propagation words to the mount now at `dest`.
pub fn propagate(root: BorrowedFd<'_>, dest: &Path, flags: &[MsFlags]) -> Result<(), RootfsError> {
    if flags.is_empty() {
        return Ok(());
    }
    let top = resolve::open(root, dest, resolve::Create::No).map_err(resolve_err(dest))?;
    for &p in flags {
        mount(None::<&str>, &fd_path(&top), None::<&str>, p, None::<&str>).map_err(|source| {
            RootfsError::Propagation {
                path: dest.into(),
                source,
            }
        })?;
    }
    Ok(())
}

/// The second step of a bind: MS_REMOUNT|MS_BIND with the requested flags plus the flags the mount
/// already has and the config did not clear. If the kernel still refuses (EPERM: a locked flag was
/// cleared explicitly in a user namespace), retry keeping every flag of the source, as runc does.
pub fn remount_bind(
    root: BorrowedFd<'_>,
    dest: &Path,
    o: &MountOptions,
) -> Result<(), RootfsError> {
    let top = resolve::open(root, dest, resolve::Create::No).map_err(resolve_err(dest))?;
    let st = fstatvfs(&top).map_err(|source| RootfsError::Statfs {
        path: dest.into(),
        source,
    })?;
    let base = MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    let want = o.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    let kept = kept_flags(st.flags(), o.cleared, o.atime_given);
    if unchanged(st.flags(), want | kept) {
        // The mount has these flags already (a bind of /proc asking for nosuid,noexec,nodev).
        log::trace!("remount({dest:?}): flags already {:?}", want | kept);
        return Ok(());
    }
    let run = |flags: MsFlags| {
        log::trace!("remount({dest:?}, {flags:?})");
        mount(
            None::<&str>,
            &fd_path(&top),
            None::<&str>,
            flags,
            None::<&str>,
        )
    };
    match run(base | want | kept) {
        Err(Errno::EPERM) => run(base | want | kept_flags(st.flags(), MsFlags::empty(), false)),
        r => r,
    }
    .map_err(|source| RootfsError::Remount {
        path: dest.into(),
        source,
    })
}

/// Would a remount to `flags` leave a mount whose statvfs flags are `st` as it is? Only for flags
/// statvfs reports (a strictatime, say, cannot be seen there: always remounted).
fn unchanged(st: FsFlags, flags: MsFlags) -> bool {
    let seen = MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV
        | MsFlags::MS_NOEXEC
        | MsFlags::MS_NOATIME
        | MsFlags::MS_NODIRATIME
        | MsFlags::MS_RELATIME;
    seen.contains(flags) && kept_flags(st, MsFlags::empty(), false) == flags
}

/// The mount flags of an existing mount (statvfs `f_flag`) that a remount must repeat, minus those
/// the config cleared; atime flags only when the config named none.
pub fn kept_flags(st: FsFlags, cleared: MsFlags, atime_given: bool) -> MsFlags {
    let mut pairs = vec![
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
    ];
    if !atime_given {
        pairs.extend([
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ]);
    }
    pairs
        .into_iter()
        .filter(|&(s, m)| st.contains(s) && !cleared.contains(m))
        .fold(MsFlags::empty(), |acc, (_, m)| acc | m)
}

/// The mount point of the mount containing `path` (longest mount point prefix in mountinfo).
fn parent_mount(path: &Path) -> Result<PathBuf, RootfsError> {
    let info = Path::new("/proc/self/mountinfo");
    let text = std::fs::read_to_string(info).map_err(|source| RootfsError::Read {
        path: info.into(),
        source,
    })?;
    Ok(text
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(unescape))
        .filter(|mp| path.starts_with(mp))
        .max_by_key(|mp| mp.as_os_str().len())
        .unwrap_or_else(|| PathBuf::from("/")))
}

/// Undoes mountinfo's octal escapes (`\040` for space, ...).
pub fn unescape(field: &str) -> PathBuf {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 8).ok())
        });
        match (b[i], oct) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

pub fn pivot(plan: &Plan) -> Result<(), RootfsError> {
    let rootfs = rootfs_path(plan)?;
    let err = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| RootfsError::Pivot { op, path, source }
    };
    if plan.options.no_pivot {
        // For a rootfs on an initramfs, where pivot_root is refused. Host mounts stay in the namespace
        // below the new root, reachable only by escaping the chroot (needs CAP_SYS_CHROOT).
        log::debug!("rootfs: move {rootfs:?} onto / and chroot");
        chdir(&rootfs).map_err(err("chdir to", &rootfs))?;
        hide_host_procfs(&rootfs)?;
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .map_err(err("move onto / the rootfs", &rootfs))?;
        chroot(".").map_err(err("chroot into", &rootfs))?;
        chdir("/").map_err(err("chdir to", Path::new("/")))?;
        return root_propagation(plan);
    }
    log::debug!("rootfs: pivot_root into {rootfs:?}");
    let old = open_dir(Path::new("/"))?;
    let new = open_dir(&rootfs)?;
    fchdir(new.as_raw_fd()).map_err(err("chdir to", &rootfs))?;
    // pivot_root(".", "."): the old root ends up stacked on top of the new one, with no need for a
    // put_old directory inside the rootfs; it is then detached from under us.
    pivot_root(".", ".").map_err(err("pivot_root into", &rootfs))?;
    fchdir(old.as_raw_fd()).map_err(err("chdir to old root of", &rootfs))?;
    // rslave first, so the detach below cannot propagate to the host's mounts.
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(err("make rslave the old root of", &rootfs))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(err("detach the old root of", &rootfs))?;
    chdir("/").map_err(err("chdir to", Path::new("/")))?;
    root_propagation(plan)
}

/// `linux.rootfsPropagation` other than private or slave (shared, unbindable) is applied to the
/// new `/` too, after pivot_root, as runc does: the bind that became `/` was made under a private
/// parent, so `shared` would otherwise be lost.
fn root_propagation(plan: &Plan) -> Result<(), RootfsError> {
    if plan
        .propagation
        .intersects(MsFlags::MS_PRIVATE | MsFlags::MS_SLAVE)
    {
        return Ok(());
    }
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        plan.propagation,
        None::<&str>,
    )
    .map_err(|source| RootfsError::Propagation {
        path: "/".into(),
        source,
    })
}

/// Before --no-pivot's chroot: the host's whole proc and sysfs mounts stay in the namespace,
/// below the new root, and while one is fully visible the kernel lets a user namespace inside
/// mount a fresh, unmasked proc (mount_too_revealing). Each is detached (rslave first, so the
/// host keeps its own), or covered with an empty tmpfs where it may not be unmounted (a user
/// namespace's locked mounts), as runc does (msMoveRoot).
fn hide_host_procfs(rootfs: &Path) -> Result<(), RootfsError> {
    let info = Path::new("/proc/self/mountinfo");
    let text = std::fs::read_to_string(info).map_err(|source| RootfsError::Read {
        path: info.into(),
        source,
    })?;
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let fstype = fields
            .iter()
            .position(|f| *f == "-")
            .and_then(|i| fields.get(i + 1));
        let (Some(root), Some(point), Some(fstype)) = (fields.get(3), fields.get(4), fstype) else {
            continue;
        };
        let point = unescape(point);
        if *root != "/" || !matches!(*fstype, "proc" | "sysfs") || point.starts_with(rootfs) {
            continue;
        }
        let rslave = MsFlags::MS_SLAVE | MsFlags::MS_REC;
        match mount(None::<&str>, &point, None::<&str>, rslave, None::<&str>) {
            Ok(()) => {}
            // Under one detached already (/sys/kernel/security after /sys).
            Err(Errno::ENOENT) => continue,
            Err(source) => {
                return Err(RootfsError::Propagation {
                    path: point,
                    source,
                })
            }
        }
        match umount2(&point, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(Errno::EINVAL | Errno::EPERM) => mount(
                Some("tmpfs"),
                &point,
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            )
            .map_err(|source| RootfsError::Mount {
                what: "tmpfs".into(),
                path: point.clone(),
                source,
            })?,
            Err(source) => {
                return Err(RootfsError::Pivot {
                    op: "detach the host's",
                    path: point,
                    source,
                })
            }
        }
    }
    Ok(())
}

pub fn finalize(plan: &Plan) -> Result<(), RootfsError> {
    let root = open_dir(Path::new("/"))?;
    let root = root.as_fd();
    for op in plan
        .mounts
        .iter()
        .filter(|op| !late_readonly(op).is_empty())
    {
        log::debug!("rootfs: remount {:?} read-only", op.destination);
        remount_bind(root, &op.destination, &op.options)?;
    }
    let mut null = None;
    for path in &plan.masked_paths {
        log::debug!("rootfs: mask {path:?}");
        mask(root, path, &mut null)?;
    }
    for path in &plan.readonly_paths {
        log::debug!("rootfs: readonly {path:?}");
        readonly(root, path)?;
    }
    if plan.readonly && !plan.readonly_early {
        log::debug!("rootfs: remount / read-only");
        remount_bind(root, Path::new("/"), &read_only())?;
    }
    Ok(())
}

fn read_only() -> MountOptions {
    MountOptions {
        flags: MsFlags::MS_RDONLY,
        ..MountOptions::default()
    }
}

fn missing(e: Errno) -> bool {
    matches!(e, Errno::ENOENT | Errno::ENOTDIR)
}

/// Masks `path`: a read-only tmpfs on a directory, /dev/null bound on anything else (`null`
/// holds the container's /dev/null once it was found and checked).
fn mask(root: BorrowedFd<'_>, path: &Path, null: &mut Option<OwnedFd>) -> Result<(), RootfsError> {
    let target = match resolve::open(root, path, resolve::Create::No) {
        Err(e) if missing(e) => return Ok(()),
        r => r.map_err(resolve_err(path))?,
    };
    let st = fstat(target.as_raw_fd()).map_err(resolve_err(path))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
        return mount_at(
            Some(Path::new("tmpfs")),
            &target,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            "",
            path,
        );
    }
    let null = match null {
        Some(fd) => fd,
        None => null.insert(null_device(root, path)?),
    };
    mount_at(
        Some(&fd_path(null)),
        &target,
        None,
        MsFlags::MS_BIND,
        "",
        path,
    )
}

/// The container's /dev/null, checked to be the 1:3 character device and not a symlink or a file
/// planted by the image (runc CVE-2025-31133).
fn null_device(root: BorrowedFd<'_>, masked: &Path) -> Result<OwnedFd, RootfsError> {
    let null = Path::new("/dev/null");
    let bad = || RootfsError::NotNullDevice {
        path: masked.into(),
    };
    let fd = resolve::open(root, null, resolve::Create::No).map_err(|_| bad())?;
    let st = fstat(fd.as_raw_fd()).map_err(resolve_err(null))?;
    let is_char = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
    let lstat_ok = nix::sys::stat::lstat(null).is_ok_and(|l| l.st_ino == st.st_ino);
    if is_char && st.st_rdev == nix::sys::stat::makedev(1, 3) && lstat_ok {
        Ok(fd)
    } else {
        Err(bad())
    }
}

fn readonly(root: BorrowedFd<'_>, path: &Path) -> Result<(), RootfsError> {
    let target = match resolve::open(root, path, resolve::Create::No) {
        Err(e) if missing(e) => return Ok(()),
        r => r.map_err(resolve_err(path))?,
    };
    mount_at(
        Some(&fd_path(&target)),
        &target,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        "",
        path,
    )?;
    remount_bind(root, path, &read_only())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_flags_respects_clears_and_atime() {
        let st = FsFlags::ST_NOSUID | FsFlags::ST_NODEV | FsFlags::ST_RDONLY | FsFlags::ST_RELATIME;
        assert_eq!(
            kept_flags(st, MsFlags::empty(), false),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_RDONLY | MsFlags::MS_RELATIME
        );
        assert_eq!(
            kept_flags(st, MsFlags::MS_RDONLY, true),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV
        );
    }

    #[test]
    fn remount_skipped_only_when_nothing_changes() {
        let proc =
            FsFlags::ST_NOSUID | FsFlags::ST_NODEV | FsFlags::ST_NOEXEC | FsFlags::ST_RELATIME;
        let same =
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RELATIME;
        assert!(unchanged(proc, same));
        assert!(!unchanged(proc, same | MsFlags::MS_RDONLY));
        // Clearing a flag (the config said "suid") is a change.
        assert!(!unchanged(proc, same & !MsFlags::MS_NOSUID));
        assert!(!unchanged(proc, same | MsFlags::MS_STRICTATIME));
    }

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(unescape("/a\\040b"), PathBuf::from("/a b"));
        assert_eq!(unescape("/plain\\"), PathBuf::from("/plain\\"));
    }
}
