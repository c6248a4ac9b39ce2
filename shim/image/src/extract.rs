//! Unpacking one layer tar into a directory, safely.
//!
//! Invariants:
//! - nothing is written outside the target: entry names are split into components (`/` prefixes
//!   dropped as tar does, `..` refused), parents are resolved with `openat2(RESOLVE_IN_ROOT)` so a
//!   symlink in the layer (`a -> /etc`, then `a/passwd`) resolves inside the target, and the last
//!   component is created with `*at` calls that never follow it. Hardlink targets resolve the same way.
//! - the stream is read once, entry by entry (a layer is never held in memory).
//! - whiteouts (`.wh.NAME`, `.wh..wh..opq`) are kept as ordinary empty files; [`crate::assemble`]
//!   interprets them when layers are stacked.
//! - directory modes and mtimes are applied after all entries (a 0555 dir must still receive children).
//! - a layer without a root entry (`./`) gets a root directory 0755 owned by root, as if it had one.
//!
//! Ownership: with `same_owner` (default when euid is 0) uid/gid come from the tar; otherwise
//! everything is owned by the caller, who cannot chown. Rootless, directories also get u+rwx so the
//! caller can read, assemble and delete its own cache; set-id bits are kept (a set-id file owned by
//! the caller grants nothing on the host; inside a user namespace that maps the caller to root it
//! behaves as the image meant). Device nodes that cannot be created (EPERM) are skipped with a
//! warning; xattrs the filesystem or our privileges refuse (EPERM, ENOTSUP, ...) likewise.

use crate::blob;
use crate::error::{Error, IoContext, Result};
use crate::fsx;
use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{fchmodat, mknodat, utimensat, FchmodatFlags, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, linkat, symlinkat, Gid, Uid};
use std::ffi::{OsStr, OsString};
use std::fs::{File, FileTimes, Permissions};
use std::io::{BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};
use tar::EntryType;
use xattr::FileExt;

/// How to unpack.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// Give entries the uid/gid recorded in the tar (needs CAP_CHOWN). Default: the caller is root.
    pub same_owner: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            same_owner: nix::unistd::geteuid().is_root(),
        }
    }
}

/// What an unpack did besides writing files.
#[derive(Debug, Default, Clone)]
pub struct Unpacked {
    /// Entries written (all kinds).
    pub entries: u64,
    /// Things skipped or degraded (device nodes, xattrs, ownership), one line each.
    pub warnings: Vec<String>,
}

/// Unpacks a layer (tar, or gzip/zstd tar by magic bytes) into `target`, which is created if missing.
pub fn unpack_layer(layer: impl Read, target: &Path, opts: &UnpackOptions) -> Result<Unpacked> {
    std::fs::create_dir_all(target).ctx("create dir", target)?;
    let name = target.display().to_string();
    let mut r =
        blob::decompress(BufReader::new(layer)).map_err(|source| Error::CorruptArchive {
            name: name.clone(),
            source,
        })?;
    unpack_tar(&mut r, target, &name, opts)
}

/// Unpacks an uncompressed tar stream; `layer` names it in errors.
pub(crate) fn unpack_tar(
    r: &mut dyn Read,
    target: &Path,
    layer: &str,
    opts: &UnpackOptions,
) -> Result<Unpacked> {
    let root = fsx::open_tree(target).ctx("open dir", target)?;
    let mut u = Unpacker {
        root,
        target,
        layer,
        opts,
        out: Unpacked::default(),
        dirs: Vec::new(),
        chown_failures: 0,
        skipped_nodes: Vec::new(),
    };
    let corrupt = |source| Error::CorruptArchive {
        name: layer.to_string(),
        source,
    };
    let mut archive = tar::Archive::new(r);
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        u.entry(&mut entry)?;
    }
    u.finish()
}

/// Metadata of one entry.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
    xattrs: Vec<(OsString, Vec<u8>)>,
}

struct Unpacker<'a> {
    root: OwnedFd,
    target: &'a Path,
    layer: &'a str,
    opts: &'a UnpackOptions,
    out: Unpacked,
    /// Directories whose metadata is applied at the end.
    dirs: Vec<(Vec<OsString>, Meta)>,
    chown_failures: u64,
    /// Device nodes mknod refused (EPERM), as paths inside the layer; reported in one warning.
    skipped_nodes: Vec<PathBuf>,
}

impl Unpacker<'_> {
    fn entry(&mut self, e: &mut tar::Entry<'_, &mut dyn Read>) -> Result<()> {
        let kind = e.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName
        ) {
            return Ok(());
        }
        let raw = e.path_bytes().into_owned();
        let comps = self.components(&raw)?;
        let meta = self.meta(e)?;
        let Some((name, parents)) = comps.split_last() else {
            // "./": the target itself.
            if kind.is_dir() {
                self.dirs.push((Vec::new(), meta));
            }
            return Ok(());
        };
        let path = self.target.join(comps.iter().collect::<PathBuf>());
        let parent = fsx::resolve_dir_create(self.root.as_fd(), parents)
            .ctx("create parent dir of", &path)?;
        let parent = parent.as_fd();
        let existing = fsx::lstat_at(parent, name).ctx("stat", &path)?;
        let keep_dir = kind.is_dir() && existing.as_ref().is_some_and(fsx::is_dir);
        if existing.is_some() && !keep_dir {
            fsx::remove_at(parent, name).ctx("replace", &path)?;
        }
        self.out.entries += 1;
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.file(parent, name, &path, e, &meta)
            }
            EntryType::Directory => {
                if !keep_dir {
                    nix::sys::stat::mkdirat(
                        Some(parent.as_raw_fd()),
                        name.as_os_str(),
                        mode(0o700),
                    )
                    .ctx("create dir", &path)?;
                }
                self.dirs.push((comps.clone(), meta));
                Ok(())
            }
            EntryType::Symlink => {
                let target = e.link_name_bytes().unwrap_or_default();
                symlinkat(
                    OsStr::from_bytes(&target),
                    Some(parent.as_raw_fd()),
                    name.as_os_str(),
                )
                .ctx("create symlink", &path)?;
                self.finish_node(parent, name, &path, &meta, false)
            }
            EntryType::Link => self.hardlink(parent, name, &path, e),
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.node(parent, name, &path, e, &meta)
            }
            other => {
                self.out.entries -= 1;
                let w = format!(
                    "skip {}: unsupported tar entry type {other:?}",
                    path.display()
                );
                self.out.warnings.push(w);
                Ok(())
            }
        }
    }

    /// Splits an entry name into components: leading `/` and `.` dropped, `..` refused.
    fn components(&self, raw: &[u8]) -> Result<Vec<OsString>> {
        let mut out = Vec::new();
        for c in Path::new(OsStr::from_bytes(raw)).components() {
            match c {
                Component::Normal(s) => out.push(s.to_os_string()),
                Component::RootDir | Component::CurDir => {}
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(Error::UnsafeEntry {
                        layer: self.layer.to_string(),
                        entry: String::from_utf8_lossy(raw).into_owned(),
                        reason: "path contains '..'",
                    })
                }
            }
        }
        Ok(out)
    }

    fn meta(&self, e: &mut tar::Entry<'_, &mut dyn Read>) -> Result<Meta> {
        let h = e.header();
        let bad = |source| Error::CorruptArchive {
            name: self.layer.to_string(),
            source,
        };
        let mut m = Meta {
            mode: h.mode().map_err(bad)? & 0o7777,
            uid: h.uid().map_err(bad)? as u32,
            gid: h.gid().map_err(bad)? as u32,
            mtime: h.mtime().map_err(bad)?,
            xattrs: Vec::new(),
        };
        if let Some(exts) = e.pax_extensions().map_err(bad)? {
            for ext in exts {
                let ext = ext.map_err(bad)?;
                let key = ext.key_bytes();
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    let name = OsStr::from_bytes(name).to_os_string();
                    m.xattrs.push((name, ext.value_bytes().to_vec()));
                } else if let Some(id) = pax_number(ext.value_bytes()) {
                    // Ids too large for the ustar header live only here.
                    match key {
                        b"uid" => m.uid = id,
                        b"gid" => m.gid = id,
                        _ => {}
                    }
                }
            }
        }
        Ok(m)
    }

    fn file(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        e: &mut dyn Read,
        meta: &Meta,
    ) -> Result<()> {
        let mut f = fsx::create_file(parent, name).ctx("create file", path)?;
        blob::copy(e, &mut f, Path::new(self.layer), path)?;
        self.chown_fd(&f, meta);
        f.set_permissions(Permissions::from_mode(meta.mode))
            .ctx("chmod", path)?;
        self.xattrs(&f, path, meta)?;
        let t = time(meta.mtime);
        f.set_times(FileTimes::new().set_accessed(t).set_modified(t))
            .ctx("set times of", path)
    }

    fn hardlink(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        e: &tar::Entry<'_, &mut dyn Read>,
    ) -> Result<()> {
        let raw = e.link_name_bytes().unwrap_or_default().into_owned();
        let comps = self.components(&raw)?;
        let Some((tname, tparents)) = comps.split_last() else {
            return Err(Error::UnsafeEntry {
                layer: self.layer.to_string(),
                entry: path.display().to_string(),
                reason: "hardlink to the root directory",
            });
        };
        let tparent = fsx::resolve_dir(self.root.as_fd(), &tparents.iter().collect::<PathBuf>())
            .ctx("resolve hardlink target of", path)?;
        // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself, never its target.
        linkat(
            Some(tparent.as_raw_fd()),
            tname.as_os_str(),
            Some(parent.as_raw_fd()),
            name,
            AtFlags::empty(),
        )
        .ctx("create hardlink", path)
    }

    fn node(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        e: &tar::Entry<'_, &mut dyn Read>,
        meta: &Meta,
    ) -> Result<()> {
        let h = e.header();
        let (kind, dev) = match h.entry_type() {
            EntryType::Fifo => (SFlag::S_IFIFO, 0),
            k => {
                let major = h.device_major().ok().flatten().unwrap_or(0) as u64;
                let minor = h.device_minor().ok().flatten().unwrap_or(0) as u64;
                let kind = match k {
                    EntryType::Char => SFlag::S_IFCHR,
                    _ => SFlag::S_IFBLK,
                };
                (kind, fsx::makedev(major, minor))
            }
        };
        match mknodat(Some(parent.as_raw_fd()), name, kind, mode(0o600), dev) {
            Err(Errno::EPERM) => {
                self.out.entries -= 1;
                let inside = path.strip_prefix(self.target).unwrap_or(path);
                self.skipped_nodes.push(Path::new("/").join(inside));
                return Ok(());
            }
            r => r.ctx("create node", path)?,
        }
        self.finish_node(parent, name, path, meta, true)
    }

    /// Owner, mode (not for symlinks) and times of a node we cannot open (symlink, fifo, device).
    fn finish_node(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        meta: &Meta,
        chmod: bool,
    ) -> Result<()> {
        let fd = Some(parent.as_raw_fd());
        if self.opts.same_owner {
            let (u, g) = (Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid)));
            if fchownat(fd, name, u, g, AtFlags::AT_SYMLINK_NOFOLLOW).is_err() {
                self.chown_failures += 1;
            }
        }
        if chmod {
            // The node was just created by us in a resolved directory and is not a symlink.
            fchmodat(fd, name, mode(meta.mode), FchmodatFlags::FollowSymlink).ctx("chmod", path)?;
        }
        if !meta.xattrs.is_empty() {
            let w = format!("skip xattrs of {}: not a file or directory", path.display());
            self.out.warnings.push(w);
        }
        let t = TimeSpec::new(meta.mtime as i64, 0);
        utimensat(fd, name, &t, &t, UtimensatFlags::NoFollowSymlink).ctx("set times of", path)
    }

    fn chown_fd(&mut self, f: &File, meta: &Meta) {
        if self.opts.same_owner
            && std::os::unix::fs::fchown(f, Some(meta.uid), Some(meta.gid)).is_err()
        {
            self.chown_failures += 1;
        }
    }

    fn xattrs(&mut self, f: &File, path: &Path, meta: &Meta) -> Result<()> {
        set_xattrs(f, path, &meta.xattrs, &mut self.out.warnings)
    }

    /// Applies directory metadata, deepest first, then reports ownership failures once.
    fn finish(mut self) -> Result<Unpacked> {
        let mut dirs = std::mem::take(&mut self.dirs);
        if !dirs.iter().any(|(comps, _)| comps.is_empty()) {
            // A layer without a "./" entry (tar -C dir *, some builders): its root would stay the
            // 0700 work directory, and an image root nobody else can search does not run. Give it
            // what a root directory is everywhere: root's, 0755.
            let root = Meta {
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime: 0,
                xattrs: Vec::new(),
            };
            dirs.insert(0, (Vec::new(), root));
        }
        for (comps, meta) in dirs.iter().rev() {
            let path = self.target.join(comps.iter().collect::<PathBuf>());
            let f = match comps.split_last() {
                None => fsx::open_tree(self.target).map(File::from),
                Some((name, parents)) => {
                    let p: PathBuf = parents.iter().collect();
                    fsx::resolve_dir(self.root.as_fd(), &p)
                        .and_then(|d| fsx::open_dir_file(d.as_fd(), name))
                }
            };
            // Replaced by a later entry (file, symlink): that entry's metadata stands.
            let Ok(f) = f else { continue };
            self.apply_dir_meta(&f, &path, meta)?;
        }
        if let Some(w) = skipped_nodes_warning(&self.skipped_nodes, self.layer) {
            self.out.warnings.push(w);
        }
        if self.chown_failures > 0 {
            let w = format!(
                "could not chown {} entries of layer {} (ids not mapped?); they belong to the caller",
                self.chown_failures, self.layer
            );
            self.out.warnings.push(w);
        }
        Ok(self.out)
    }

    fn apply_dir_meta(&mut self, f: &File, path: &Path, meta: &Meta) -> Result<()> {
        self.chown_fd(f, meta);
        let m = match self.opts.same_owner {
            true => meta.mode,
            false => meta.mode | 0o700,
        };
        f.set_permissions(Permissions::from_mode(m))
            .ctx("chmod", path)?;
        set_xattrs(f, path, &meta.xattrs, &mut self.out.warnings)?;
        let t = time(meta.mtime);
        f.set_times(FileTimes::new().set_accessed(t).set_modified(t))
            .ctx("set times of", path)
    }
}

/// Sets xattrs on an open file or directory; refusals become warnings, a full disk an error.
pub(crate) fn set_xattrs(
    f: &File,
    path: &Path,
    xattrs: &[(OsString, Vec<u8>)],
    warnings: &mut Vec<String>,
) -> Result<()> {
    for (name, value) in xattrs {
        if let Err(e) = f.set_xattr(name, value) {
            if matches!(e.raw_os_error(), Some(n) if n == Errno::ENOSPC as i32 || n == Errno::EDQUOT as i32)
            {
                return Err(Error::io("set xattr on", path, e));
            }
            let name = name.to_string_lossy();
            warnings.push(format!("skip xattr {name} of {}: {e}", path.display()));
        }
    }
    Ok(())
}

/// One line for all the device nodes of a layer that could not be created (a Debian image's /dev
/// holds about ten; a line each drowned the output of every rootless import): the count and the
/// first few paths.
fn skipped_nodes_warning(nodes: &[PathBuf], layer: &str) -> Option<String> {
    const NAMED: usize = 3;
    let (first, rest) = nodes.split_at(nodes.len().min(NAMED));
    let mut names: Vec<String> = first.iter().map(|p| p.display().to_string()).collect();
    match rest.len() {
        0 if names.is_empty() => return None,
        0 => {}
        n => names.push(format!("{n} more")),
    }
    let plural = if nodes.len() == 1 { "" } else { "s" };
    Some(format!(
        "skipped {} device node{plural} of layer {layer} (creating one needs privilege; a container gets its own /dev): {}",
        nodes.len(),
        names.join(", ")
    ))
}

fn pax_number(v: &[u8]) -> Option<u32> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn mode(m: u32) -> Mode {
    Mode::from_bits_truncate(m)
}

fn time(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_device_nodes_make_one_line() {
        assert_eq!(skipped_nodes_warning(&[], "l"), None);
        let one = skipped_nodes_warning(&[PathBuf::from("/dev/null")], "l").unwrap();
        assert!(
            one.starts_with("skipped 1 device node of layer l "),
            "{one}"
        );
        assert!(one.ends_with(": /dev/null"), "{one}");
        let many: Vec<PathBuf> = ["null", "zero", "full", "tty", "ptmx"]
            .iter()
            .map(|n| Path::new("/dev").join(n))
            .collect();
        let w = skipped_nodes_warning(&many, "l").unwrap();
        assert!(w.starts_with("skipped 5 device nodes of layer l "), "{w}");
        assert!(
            w.ends_with(": /dev/null, /dev/zero, /dev/full, 2 more"),
            "{w}"
        );
        assert!(!w.contains('\n'));
    }
}
