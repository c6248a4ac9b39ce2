//! The content-addressed image cache and the import pipeline.
//!
//! Layout under the cache root (`$XDG_CACHE_HOME/husk`, `~/.cache/husk`, as root `/var/cache/husk`):
//! ```text
//! lock                      flock: shared while importing/removing, exclusive while cleaning
//! locks/image-<hex>.lock    flock per image (manifest digest) and per layer (diff_id)
//! locks/layer-<hex>.lock
//! layers/<algo>/<hex>/      a layer unpacked once, keyed by its diff_id (uncompressed digest), so
//!                           the same layer from an OCI blob and from a docker-archive is shared
//! rootfs/<hex>/             an image's layers stacked, keyed by the manifest digest (hardlinks
//!                           into layers/: use it read-only or under an overlay), plus the
//!                           launcher's mount points the image lacks, created empty
//!                           ([`crate::assemble::MOUNT_POINTS`]: /proc, /sys, /dev, /tmp, /home,
//!                           /etc/hosts, /etc/resolv.conf...; ours, not the image's content)
//! images/<hex>.json         the record: digests, config, rootfs path, layers, sources
//! tmp/                      work in progress; renamed into place when complete
//! ```
//! Commit protocol: every entry is built in `tmp/` and renamed into place, so a path under layers/,
//! rootfs/ or images/ exists only when complete; a crash leaves only tmp/ litter, which `clean`
//! removes. Order: layers, then rootfs, then the record, so a record never names a missing rootfs.
//! Renames make entries crash-safe for the process, not power-loss durable (no fsync of trees).

use crate::assemble;
use crate::blob::{self, Store, TarIndex};
use crate::digest::{Digest, HashReader};
use crate::error::{Error, IoContext, Result};
use crate::extract::{self, UnpackOptions};
use crate::fsx;
use crate::reference::{DockerRef, ImageRef};
use crate::registry;
use crate::source::{self, LayerSource, Resolved};
use crate::spec::ImageConfig;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// A cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    opts: UnpackOptions,
}

/// An imported image (also the JSON record under `images/`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Image {
    /// Hex of the manifest digest; names the record and the rootfs. Empty for a plain directory.
    pub key: String,
    /// Manifest digest (docker-archive: of the equivalent OCI manifest); `None` for a directory.
    pub digest: Option<Digest>,
    pub config_digest: Option<Digest>,
    pub config: ImageConfig,
    pub rootfs: PathBuf,
    /// Layer diff_ids, bottom first.
    pub layers: Vec<Digest>,
    /// Every source this image was imported from, as typed.
    pub sources: Vec<String>,
    /// What this import did; not stored.
    #[serde(skip)]
    pub stats: ImportStats,
    /// Degradations during this import (device nodes, xattrs, ownership); not stored.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// What one import cost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportStats {
    /// The image was already cached: nothing was unpacked or assembled.
    pub cached: bool,
    pub layers_unpacked: usize,
    pub layers_cached: usize,
    /// Bytes read from layer blobs (compressed size).
    pub bytes_read: u64,
}

/// Progress of one layer's unpacking, in bytes of its (compressed) blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub layer: Digest,
    /// 0-based position of the layer and the number of layers.
    pub index: usize,
    pub count: usize,
    pub done: u64,
    pub total: u64,
}

/// What [`Cache::clean`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clean {
    /// Layers and rootfs dirs no image record refers to, and leftovers of interrupted imports.
    Unused,
    /// Everything.
    All,
}

/// Counts of what [`Cache::clean`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleaned {
    pub images: usize,
    pub layers: usize,
    pub rootfs: usize,
    pub tmp: usize,
}

impl Cache {
    /// A cache rooted at `root` (created on first import).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Cache {
            root: root.into(),
            opts: UnpackOptions::default(),
        }
    }

    /// The cache at [`Cache::default_dir`].
    pub fn open_default() -> Self {
        Cache::new(Cache::default_dir())
    }

    /// Overrides how layers are unpacked (ownership).
    pub fn with_unpack_options(mut self, opts: UnpackOptions) -> Self {
        self.opts = opts;
        self
    }

    /// `/var/cache/husk` for root, else `$XDG_CACHE_HOME/husk` or `$HOME/.cache/husk` (the passwd
    /// home when HOME is unset).
    pub fn default_dir() -> PathBuf {
        let uid = nix::unistd::geteuid();
        if uid.is_root() {
            return PathBuf::from("/var/cache/husk");
        }
        let abs = |v: Option<std::ffi::OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
        if let Some(x) = abs(std::env::var_os("XDG_CACHE_HOME")) {
            return x.join("husk");
        }
        let home = abs(std::env::var_os("HOME")).or_else(|| {
            nix::unistd::User::from_uid(uid)
                .ok()
                .flatten()
                .map(|u| u.dir)
        });
        match home {
            Some(h) => h.join(".cache/husk"),
            None => husk_runtime::state::tmp_fallback("husk-cache"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Imports an image (see [`Cache::import_with_progress`]).
    pub fn import(&self, image: &ImageRef) -> Result<Image> {
        self.import_with_progress(image, &mut |_| {})
    }

    /// Imports an image: resolves and verifies it, unpacks layers not yet cached, assembles the rootfs
    /// and records it. A cached image costs only resolving its manifest. A plain rootfs directory is
    /// returned as is, without touching the cache.
    pub fn import_with_progress(
        &self,
        image: &ImageRef,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Image> {
        let name = image.to_string();
        let kind = match image {
            ImageRef::Docker(r) => return self.pull(r, name, progress),
            ImageRef::Path(p) => path_kind(p)?,
            ImageRef::Oci { dir: p, .. }
            | ImageRef::OciArchive { file: p, .. }
            | ImageRef::DockerArchive { file: p, .. } => path_kind(p)?,
        };
        if let (ImageRef::Path(p), PathKind::Rootfs) = (image, &kind) {
            return plain_dir(p, name);
        }
        self.prepare()?;
        // Held from here: `clean` must not empty tmp/ under an archive being indexed.
        let _cache = self.lock(&self.root.join("lock"), FlockArg::LockShared)?;
        let tmp = self.root.join("tmp");
        let resolved = match image {
            ImageRef::Path(p) if matches!(kind, PathKind::Layout) => {
                source::oci(Store::Dir(p.clone()), name, None)?
            }
            ImageRef::Path(p) => source::sniff_archive(p, &tmp, name)?,
            ImageRef::Oci { dir, tag } => {
                source::oci(Store::Dir(dir.clone()), name, tag.as_deref())?
            }
            ImageRef::OciArchive { file, tag } => {
                let store = Store::Tar(TarIndex::open(file, &tmp)?);
                source::oci(store, name, tag.as_deref())?
            }
            ImageRef::DockerArchive { file, reference } => {
                let store = Store::Tar(TarIndex::open(file, &tmp)?);
                source::docker_archive(store, name, reference.as_deref())?
            }
            ImageRef::Docker(_) => unreachable!("handled above"),
        };
        let _image = self.lock(
            &self.lock_path("image", &resolved.digest),
            FlockArg::LockExclusive,
        )?;
        self.import_locked(resolved, progress)
    }

    /// Fetches a registry image into a temporary OCI layout under tmp/ (layers already cached are
    /// not downloaded), imports it from there, and removes the layout.
    fn pull(
        &self,
        r: &DockerRef,
        name: String,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Image> {
        self.prepare()?;
        let _cache = self.lock(&self.root.join("lock"), FlockArg::LockShared)?;
        let work = self.work_dir("pull", &r.repository.replace('/', "_"))?;
        let layers = self.root.join("layers");
        let have = |d: &Digest| layers.join(d.algorithm().name()).join(d.hex()).is_dir();
        let mut report = |index, count, layer: &Digest, done, total| {
            progress(Progress {
                layer: layer.clone(),
                index,
                count,
                done,
                total,
            })
        };
        registry::fetch(r, &work.path, &have, &mut report)?;
        let resolved = source::oci(
            Store::Dir(work.path.clone()),
            name,
            Some(registry::LAYOUT_TAG),
        )?;
        let _image = self.lock(
            &self.lock_path("image", &resolved.digest),
            FlockArg::LockExclusive,
        )?;
        self.import_locked(resolved, progress)
    }

    fn import_locked(&self, r: Resolved, progress: &mut dyn FnMut(Progress)) -> Result<Image> {
        let key = r.digest.hex().to_string();
        let record = self.record_path(&key);
        let root = std::path::absolute(&self.root).ctx("resolve", &self.root)?;
        let rootfs = root.join("rootfs").join(&key);
        if let Some(mut img) = self.read_record(&record)? {
            if img.rootfs.is_dir() {
                img.stats.cached = true;
                if !img.sources.contains(&r.image) {
                    img.sources.push(r.image.clone());
                    self.write_record(&img)?;
                }
                return Ok(img);
            }
        }
        let mut img = Image {
            key,
            digest: Some(r.digest.clone()),
            config_digest: Some(r.config_digest.clone()),
            config: r.config.clone(),
            rootfs: rootfs.clone(),
            layers: r.layers.iter().map(|l| l.diff_id.clone()).collect(),
            sources: vec![r.image.clone()],
            ..Image::default()
        };
        let count = r.layers.len();
        let mut dirs = Vec::new();
        for (index, l) in r.layers.iter().enumerate() {
            let mut report = |done, total| {
                progress(Progress {
                    layer: l.diff_id.clone(),
                    index,
                    count,
                    done,
                    total,
                })
            };
            dirs.push(self.ensure_layer(&r, l, &mut img, &mut report)?);
        }
        // A rootfs without a record: an earlier import died between the two renames; it is complete.
        if !rootfs.is_dir() {
            let work = self.work_dir("rootfs", &img.key)?;
            for d in &dirs {
                assemble::apply_layer(d, &work.path, self.opts.same_owner, &mut img.warnings)?;
            }
            assemble::add_mount_points(&work.path)?;
            work.commit(&rootfs)?;
        }
        self.write_record(&img)?;
        Ok(img)
    }

    /// Unpacks a layer into `layers/` unless it is there; returns its directory.
    fn ensure_layer(
        &self,
        r: &Resolved,
        l: &LayerSource,
        img: &mut Image,
        report: &mut dyn FnMut(u64, u64),
    ) -> Result<PathBuf> {
        let d = &l.diff_id;
        let dir = self
            .root
            .join("layers")
            .join(d.algorithm().name())
            .join(d.hex());
        let _lock = self.lock(&self.lock_path("layer", d), FlockArg::LockExclusive)?;
        if dir.is_dir() {
            img.stats.layers_cached += 1;
            return Ok(dir);
        }
        let (member, size) = r.store.open(&l.name)?.ok_or_else(|| Error::MissingBlob {
            image: r.image.clone(),
            name: l.name.clone(),
        })?;
        let layer_name = l.digest.as_ref().unwrap_or(d).to_string();
        let size_mismatch = |actual| Error::SizeMismatch {
            what: "layer",
            name: layer_name.clone(),
            expected: l.size,
            actual,
        };
        // The descriptor's size first (nothing is read, nothing allocated by it), then at most that
        // many bytes: a blob that grows while read ends in a digest mismatch, not a longer read.
        if size != l.size {
            return Err(size_mismatch(size));
        }
        let work = self.work_dir("layer", d.hex())?;
        let counted = Counted {
            inner: member.take(l.size),
            done: 0,
            total: size,
            reported: 0,
            ended: false,
            report,
        };
        let algo = l.digest.as_ref().map_or(d.algorithm(), Digest::algorithm);
        let mut outer = BufReader::new(HashReader::new(counted, algo));
        let corrupt = |source| Error::CorruptArchive {
            name: layer_name.clone(),
            source,
        };
        let dec = blob::decompress(&mut outer).map_err(corrupt)?;
        let mut inner = HashReader::new(dec, d.algorithm());
        let u = extract::unpack_tar(&mut inner, &work.path, &layer_name, &self.opts)?;
        let (diff_id, _, dec) = inner.finish().map_err(corrupt)?;
        drop(dec);
        io::copy(&mut outer, &mut io::sink()).map_err(corrupt)?;
        let (blob_digest, read, _) = outer.into_inner().finish().map_err(corrupt)?;
        if read != l.size {
            return Err(size_mismatch(read));
        }
        if let Some(want) = &l.digest {
            if &blob_digest != want {
                return Err(mismatch("layer", want, blob_digest));
            }
        }
        if &diff_id != d {
            return Err(mismatch("layer diff_id", d, diff_id));
        }
        img.warnings.extend(u.warnings);
        img.stats.layers_unpacked += 1;
        img.stats.bytes_read += read;
        work.commit(&dir)?;
        Ok(dir)
    }

    /// Cached images, by key.
    pub fn list(&self) -> Result<Vec<Image>> {
        let dir = self.root.join("images");
        let entries = match std::fs::read_dir(&dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            r => r.ctx("read dir", &dir)?,
        };
        let mut out = Vec::new();
        for e in entries {
            let p = e.ctx("read dir", &dir)?.path();
            if p.extension().is_some_and(|x| x == "json") {
                out.extend(self.read_record(&p)?);
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Removes one image (its record and rootfs; layers stay until [`Cache::clean`]). `key` is the
    /// digest (`sha256:…` or hex), a unique prefix of its hex, or a source it was imported from.
    pub fn remove(&self, key: &str) -> Result<Image> {
        let want = key.strip_prefix("sha256:").unwrap_or(key);
        let found: Vec<Image> = self
            .list()?
            .into_iter()
            .filter(|i| {
                i.key == want
                    || (want.len() >= 4 && i.key.starts_with(want))
                    || i.sources.iter().any(|s| s == key)
            })
            .collect();
        let img = match <[Image; 1]>::try_from(found) {
            Ok([img]) => img,
            Err(v) => {
                let reason = if v.is_empty() {
                    "no match"
                } else {
                    "ambiguous"
                };
                return Err(Error::UnknownImage {
                    key: key.to_string(),
                    reason,
                });
            }
        };
        let _cache = self.lock(&self.root.join("lock"), FlockArg::LockShared)?;
        let digest = img.digest.clone().ok_or_else(|| Error::UnknownImage {
            key: key.to_string(),
            reason: "record without digest",
        })?;
        let _image = self.lock(&self.lock_path("image", &digest), FlockArg::LockExclusive)?;
        // Record first: from here on nothing uses the rootfs, so a crash mid-removal is harmless.
        let record = self.record_path(&img.key);
        std::fs::remove_file(&record).ctx("remove", &record)?;
        self.discard(&self.root.join("rootfs").join(&img.key))?;
        Ok(img)
    }

    /// Removes unused entries or everything; waits for running imports to finish.
    pub fn clean(&self, what: Clean) -> Result<Cleaned> {
        if !self.root.is_dir() {
            return Ok(Cleaned::default());
        }
        let _cache = self.lock(&self.root.join("lock"), FlockArg::LockExclusive)?;
        let mut n = Cleaned::default();
        let images = self.list()?;
        if what == Clean::All {
            for img in &images {
                let record = self.record_path(&img.key);
                std::fs::remove_file(&record).ctx("remove", &record)?;
                n.images += 1;
            }
        }
        let kept: &[Image] = if what == Clean::All { &[] } else { &images };
        n.tmp = self.remove_children(&self.root.join("tmp"), |_| false)?;
        n.rootfs = self.remove_children(&self.root.join("rootfs"), |name| {
            kept.iter().any(|i| i.key == name)
        })?;
        for algo in ["sha256", "sha512"] {
            n.layers += self.remove_children(&self.root.join("layers").join(algo), |name| {
                kept.iter()
                    .any(|i| i.layers.iter().any(|l| l.hex() == name))
            })?;
        }
        // Safe under the exclusive cache lock: nobody holds or waits on a per-entry lock.
        self.remove_children(&self.root.join("locks"), |_| false)?;
        Ok(n)
    }

    fn remove_children(&self, dir: &Path, keep: impl Fn(&str) -> bool) -> Result<usize> {
        let entries = match std::fs::read_dir(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            r => r.ctx("read dir", dir)?,
        };
        let mut n = 0;
        for e in entries {
            let e = e.ctx("read dir", dir)?;
            if !keep(&e.file_name().to_string_lossy()) {
                fsx::remove_tree(&e.path()).ctx("remove", e.path())?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Creates the cache skeleton (mode 0700: set-id files inside must not be reachable by others).
    /// The root must be a private directory of the caller's: whoever can write it chooses what
    /// every later run of a cached image executes.
    fn prepare(&self) -> Result<()> {
        husk_runtime::state::private_dir(&self.root)?;
        for sub in ["tmp", "locks", "layers", "rootfs", "images"] {
            let p = self.root.join(sub);
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&p)
                .ctx("create dir", &p)?;
        }
        Ok(())
    }

    fn lock(&self, path: &Path, arg: FlockArg) -> Result<Flock<File>> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .ctx("open lock", path)?;
        Flock::lock(f, arg).map_err(|(_, e)| Error::errno("lock", path, e))
    }

    fn lock_path(&self, kind: &str, d: &Digest) -> PathBuf {
        self.root
            .join("locks")
            .join(format!("{kind}-{}.lock", d.hex()))
    }

    fn record_path(&self, key: &str) -> PathBuf {
        self.root.join("images").join(format!("{key}.json"))
    }

    fn read_record(&self, path: &Path) -> Result<Option<Image>> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|source| Error::Json {
                    what: "image record",
                    name: path.display().to_string(),
                    source,
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    /// Writes the record to tmp/ and renames it into images/.
    fn write_record(&self, img: &Image) -> Result<()> {
        let path = self.record_path(&img.key);
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{}.json.{}", img.key, std::process::id()));
        let bytes = serde_json::to_vec_pretty(img).map_err(|source| Error::Json {
            what: "image record",
            name: path.display().to_string(),
            source,
        })?;
        let mut f = File::create(&tmp).ctx("create", &tmp)?;
        let written = f.write_all(&bytes).and_then(|()| f.sync_all());
        if let Err(e) = written.ctx("write", &tmp) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &path).ctx("rename to", &path)
    }

    fn work_dir(&self, kind: &str, key: &str) -> Result<WorkDir> {
        let path = self
            .root
            .join("tmp")
            .join(format!("{kind}-{key}-{}", std::process::id()));
        // Left by an earlier import of ours that died with the same pid.
        fsx::remove_tree(&path).ctx("remove", &path)?;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .ctx("create dir", &path)?;
        Ok(WorkDir { path, keep: false })
    }

    /// Moves `path` into tmp/ (one atomic step out of sight), then deletes it.
    fn discard(&self, path: &Path) -> Result<()> {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let gone = self
            .root
            .join("tmp")
            .join(format!("rm-{name}-{}", std::process::id()));
        match std::fs::rename(path, &gone) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            r => r.ctx("remove", path)?,
        }
        fsx::remove_tree(&gone).ctx("remove", &gone)
    }
}

fn mismatch(what: &'static str, expected: &Digest, actual: Digest) -> Error {
    Error::DigestMismatch {
        what,
        expected: expected.clone(),
        actual,
    }
}

/// A directory under tmp/ that is deleted unless committed.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl WorkDir {
    /// Renames the finished directory to its final place.
    fn commit(mut self, to: &Path) -> Result<()> {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).ctx("create dir", parent)?;
        }
        std::fs::rename(&self.path, to).ctx("rename to", to)?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fsx::remove_tree(&self.path);
        }
    }
}

/// Counts bytes read and reports progress every 256 KiB and at the end.
struct Counted<'a, R> {
    inner: R,
    done: u64,
    total: u64,
    reported: u64,
    ended: bool,
    report: &'a mut dyn FnMut(u64, u64),
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        let at_end = n == 0 && !self.ended;
        if at_end || self.done - self.reported >= 256 * 1024 {
            self.ended |= n == 0;
            self.reported = self.done;
            (self.report)(self.done, self.total);
        }
        Ok(n)
    }
}

enum PathKind {
    Rootfs,
    Layout,
    File,
}

fn path_kind(p: &Path) -> Result<PathKind> {
    let meta = std::fs::metadata(p).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::NotFound { path: p.into() },
        _ => Error::io("open image", p, e),
    })?;
    if !meta.is_dir() {
        return Ok(PathKind::File);
    }
    if p.join("oci-layout").is_file() {
        return Ok(PathKind::Layout);
    }
    Ok(PathKind::Rootfs)
}

fn plain_dir(p: &Path, name: String) -> Result<Image> {
    let rootfs = p.canonicalize().ctx("resolve", p)?;
    Ok(Image {
        rootfs,
        sources: vec![name],
        stats: ImportStats {
            cached: true,
            ..ImportStats::default()
        },
        ..Image::default()
    })
}
