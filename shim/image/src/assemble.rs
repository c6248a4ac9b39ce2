//! Stacking unpacked layers into one root filesystem directory.
//!
//! Each layer directory (as [`crate::extract`] left it, whiteouts included) is applied over the
//! rootfs in order, as the OCI image spec's "Applying Changesets" describes:
//! - `.wh..wh..opq` in a directory empties that directory of everything from lower layers;
//! - `.wh.NAME` removes NAME (recursively) from lower layers; other `.wh..wh.*` names are ignored;
//! - a directory over a directory merges (the upper's metadata wins); anything else replaces.
//!
//! Whiteouts of a layer are applied before its other entries, so a whiteout and a same-named entry
//! in one layer (which the spec forbids) leave the entry.
//!
//! Non-directories are hardlinked from the layer cache (no data copied; same inode), falling back to
//! a copy when linking fails (EXDEV, EMLINK, EPERM). Consequence: the rootfs must be used read-only
//! or under an overlay, since writing a file in place would change the cached layer.
//! Every walk goes through directory fds and refuses symlinks, so neither tree is ever left.

use crate::error::{IoContext, Result};
use crate::extract::set_xattrs;
use crate::fsx;
use nix::errno::Errno;
use nix::fcntl::{readlinkat, AtFlags};
use nix::sys::stat::{fstat, mkdirat, mknodat, utimensat, FileStat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, linkat, symlinkat, Gid, Uid};
use std::ffi::OsStr;
use std::fs::{File, FileTimes, Permissions};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};
use xattr::FileExt;

const OPAQUE: &str = ".wh..wh..opq";
const WHITEOUT: &str = ".wh.";
const META_PREFIX: &str = ".wh..wh.";

/// Applies the layer directory `layer` over `rootfs` (both existing directories).
pub(crate) fn apply_layer(
    layer: &Path,
    rootfs: &Path,
    same_owner: bool,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let src = File::from(fsx::open_tree(layer).ctx("open dir", layer)?);
    let dst = File::from(fsx::open_tree(rootfs).ctx("open dir", rootfs)?);
    let mut a = Applier {
        layer,
        rootfs,
        same_owner,
        warnings,
    };
    a.dir(&src, &dst, Path::new(""))?;
    a.copy_dir_meta(&src, &dst, rootfs)
}

/// The launcher's mount points (relative to the rootfs; true for a directory): created empty
/// where an image lacks them, so that a launch of a cached image needs no overlay or split
/// directory for them (husk-launcher's underlay). Docker images, for one, come without
/// /etc/hosts and /etc/resolv.conf.
pub(crate) const MOUNT_POINTS: &[(&str, bool)] = &[
    ("dev", true),
    ("etc", true),
    ("home", true),
    ("proc", true),
    ("sys", true),
    ("tmp", true),
    ("etc/group", false),
    ("etc/hosts", false),
    ("etc/passwd", false),
    ("etc/resolv.conf", false),
];

/// Creates the [`MOUNT_POINTS`] `rootfs` lacks: directories mode 0755 (/tmp 1777), files empty,
/// mode 0644. Anything already there, a symlink included, is left alone, and nothing is created
/// through a symlink (an /etc that is one gets no files).
pub(crate) fn add_mount_points(rootfs: &Path) -> Result<()> {
    let root = fsx::open_tree(rootfs).ctx("open dir", rootfs)?;
    for (rel, is_dir) in MOUNT_POINTS {
        let rel = Path::new(rel);
        let path = rootfs.join(rel);
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            continue;
        };
        let dir = if parent.as_os_str().is_empty() {
            root.try_clone().ctx("open dir", rootfs)?
        } else {
            match fsx::open_subdir(root.as_fd(), parent.as_os_str(), nix::fcntl::OFlag::O_PATH) {
                Ok(fd) => fd,
                Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => continue,
                Err(e) => return Err(e).ctx("open dir", rootfs.join(parent)),
            }
        };
        if fsx::lstat_at(dir.as_fd(), name)
            .ctx("stat", &path)?
            .is_some()
        {
            continue;
        }
        let file = if *is_dir {
            mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(0o755))
                .ctx("create", &path)?;
            fsx::open_dir_file(dir.as_fd(), name).ctx("open dir", &path)?
        } else {
            fsx::create_file(dir.as_fd(), name).ctx("create", &path)?
        };
        let mode = match (*is_dir, name == "tmp") {
            (true, true) => 0o1777,
            (true, false) => 0o755,
            (false, _) => 0o644,
        };
        file.set_permissions(Permissions::from_mode(mode))
            .ctx("chmod", &path)?;
    }
    Ok(())
}

struct Applier<'a> {
    layer: &'a Path,
    rootfs: &'a Path,
    same_owner: bool,
    warnings: &'a mut Vec<String>,
}

impl Applier<'_> {
    fn dir(&mut self, src: &File, dst: &File, rel: &Path) -> Result<()> {
        let here = self.layer.join(rel);
        let names = fsx::list(src.as_fd()).ctx("read dir", &here)?;
        let out = self.rootfs.join(rel);
        if names.iter().any(|(n, _)| n == OPAQUE) {
            fsx::clear_dir(dst.as_fd()).ctx("empty opaque dir", &out)?;
        }
        for (name, _) in &names {
            let Some(hidden) = whiteout_target(name) else {
                continue;
            };
            match fsx::remove_at(dst.as_fd(), hidden) {
                Err(Errno::ENOENT) => {}
                r => r.ctx("apply whiteout", out.join(name))?,
            }
        }
        for (name, _) in names {
            if name.as_bytes().starts_with(WHITEOUT.as_bytes()) {
                continue;
            }
            self.entry(src, dst, rel, &name)?;
        }
        Ok(())
    }

    fn entry(&mut self, src: &File, dst: &File, rel: &Path, name: &OsStr) -> Result<()> {
        let from = self.layer.join(rel).join(name);
        let to = self.rootfs.join(rel).join(name);
        let st = fsx::lstat_at(src.as_fd(), name)
            .ctx("stat", &from)?
            .ok_or(Errno::ENOENT)
            .ctx("stat", &from)?;
        let existing = fsx::lstat_at(dst.as_fd(), name).ctx("stat", &to)?;
        if fsx::is_dir(&st) {
            if !existing.as_ref().is_some_and(fsx::is_dir) {
                if existing.is_some() {
                    fsx::remove_at(dst.as_fd(), name).ctx("replace", &to)?;
                }
                mkdirat(Some(dst.as_raw_fd()), name, Mode::from_bits_truncate(0o700))
                    .ctx("create dir", &to)?;
            }
            let s = fsx::open_dir_file(src.as_fd(), name).ctx("open dir", &from)?;
            let d = fsx::open_dir_file(dst.as_fd(), name).ctx("open dir", &to)?;
            self.dir(&s, &d, &rel.join(name))?;
            return self.copy_dir_meta(&s, &d, &to);
        }
        if existing.is_some() {
            fsx::remove_at(dst.as_fd(), name).ctx("replace", &to)?;
        }
        let (s, d) = (Some(src.as_raw_fd()), Some(dst.as_raw_fd()));
        match linkat(s, name, d, name, AtFlags::empty()) {
            Ok(()) => Ok(()),
            Err(Errno::EXDEV | Errno::EMLINK | Errno::EPERM) => {
                self.copy_node(src.as_fd(), dst.as_fd(), name, &st, &to)
            }
            Err(e) => Err(e).ctx("link", &to),
        }
    }

    /// Copies a non-directory when it cannot be hardlinked.
    fn copy_node(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        name: &OsStr,
        st: &FileStat,
        to: &Path,
    ) -> Result<()> {
        let (s, d) = (Some(src.as_raw_fd()), Some(dst.as_raw_fd()));
        let kind = fsx::file_kind(st);
        if kind == SFlag::S_IFREG {
            let mut from = fsx::open_file(src, name).ctx("open", to)?;
            let mut f = fsx::create_file(dst, name).ctx("create file", to)?;
            std::io::copy(&mut from, &mut f).ctx("copy", to)?;
            self.chown_file(&f, st);
            f.set_permissions(Permissions::from_mode(st.st_mode & 0o7777))
                .ctx("chmod", to)?;
            self.copy_xattrs(&from, &f, to)?;
            return f.set_times(times(st)).ctx("set times of", to);
        }
        if kind == SFlag::S_IFLNK {
            let target = readlinkat(s, name).ctx("read symlink", to)?;
            symlinkat(target.as_os_str(), d, name).ctx("create symlink", to)?;
        } else {
            let perm = Mode::from_bits_truncate(st.st_mode & 0o7777);
            mknodat(d, name, kind, perm, st.st_rdev).ctx("create node", to)?;
        }
        if self.same_owner {
            let (u, g) = (Uid::from_raw(st.st_uid), Gid::from_raw(st.st_gid));
            let _ = fchownat(d, name, Some(u), Some(g), AtFlags::AT_SYMLINK_NOFOLLOW);
        }
        let t = TimeSpec::new(st.st_mtime, st.st_mtime_nsec);
        utimensat(d, name, &t, &t, UtimensatFlags::NoFollowSymlink).ctx("set times of", to)
    }

    fn chown_file(&self, f: &File, st: &FileStat) {
        if self.same_owner {
            // Best effort: extraction already reported ids it could not set.
            let _ = std::os::unix::fs::fchown(f, Some(st.st_uid), Some(st.st_gid));
        }
    }

    fn copy_xattrs(&mut self, from: &File, to: &File, path: &Path) -> Result<()> {
        let names = from.list_xattr().ctx("list xattrs of", path)?;
        let mut attrs = Vec::new();
        for n in names {
            if let Some(v) = from.get_xattr(&n).ctx("get xattr of", path)? {
                attrs.push((n, v));
            }
        }
        set_xattrs(to, path, &attrs, self.warnings)
    }

    /// Owner, mode, xattrs and times of a directory, after its children are in place.
    fn copy_dir_meta(&mut self, src: &File, dst: &File, to: &Path) -> Result<()> {
        let st = fstat(src.as_raw_fd()).ctx("stat", to)?;
        self.chown_file(dst, &st);
        dst.set_permissions(Permissions::from_mode(st.st_mode & 0o7777))
            .ctx("chmod", to)?;
        self.copy_xattrs(src, dst, to)?;
        dst.set_times(times(&st)).ctx("set times of", to)
    }
}

/// For `.wh.NAME` the NAME it hides; `None` for other names and for `.wh..wh.*` metadata files.
fn whiteout_target(name: &OsStr) -> Option<&OsStr> {
    let b = name.as_bytes();
    if b.starts_with(META_PREFIX.as_bytes()) {
        return None;
    }
    let rest = b.strip_prefix(WHITEOUT.as_bytes())?;
    // "." and ".." would name the directory itself or its parent.
    if rest.is_empty() || rest == b"." || rest == b".." || rest.contains(&b'/') {
        return None;
    }
    Some(OsStr::from_bytes(rest))
}

fn times(st: &FileStat) -> FileTimes {
    let t =
        SystemTime::UNIX_EPOCH + Duration::new(st.st_mtime.max(0) as u64, st.st_mtime_nsec as u32);
    FileTimes::new().set_accessed(t).set_modified(t)
}
