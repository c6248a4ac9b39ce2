//! Reading named files out of an image source: a directory (OCI layout) or a tar archive (oci-archive,
//! docker-archive), and undoing layer compression.
//!
//! An archive is indexed once (`entries_with_seek`: headers only, data is skipped by seeking) and each
//! member is then read in place with `pread`, so a layer blob is never copied out of the archive first.
//! An archive that is itself compressed (`docker save | gzip`) is first decompressed into an unlinked
//! temporary file in the cache's tmp dir.
//!
//! Compression is detected by magic bytes (gzip `1f 8b`, zstd `28 b5 2f fd`), not trusted from the
//! media type or file name.

use crate::error::{Error, IoContext, Result};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// A source of named files.
pub(crate) enum Store {
    Dir(PathBuf),
    Tar(TarIndex),
}

pub(crate) struct TarIndex {
    path: PathBuf,
    file: Arc<File>,
    members: HashMap<String, (u64, u64)>,
}

/// Reads `len` bytes of a file from `pos` with pread: no shared cursor, so readers are independent.
pub(crate) struct Section {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for Section {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min((self.end - self.pos) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// A member's reader and its size.
pub(crate) type Member = (Box<dyn Read + Send>, u64);

impl Store {
    /// The file `name` (a relative path), or `None` when absent.
    pub(crate) fn open(&self, name: &str) -> Result<Option<Member>> {
        match self {
            Store::Dir(dir) => {
                let path = dir.join(name);
                match File::open(&path) {
                    Ok(f) => {
                        let len = f.metadata().ctx("stat blob", &path)?.len();
                        Ok(Some((Box::new(f), len)))
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io("open blob", path, e)),
                }
            }
            Store::Tar(t) => Ok(t.members.get(&normalize(name)).map(|&(pos, len)| {
                let s = Section {
                    file: Arc::clone(&t.file),
                    pos,
                    end: pos + len,
                };
                (Box::new(s) as Box<dyn Read + Send>, len)
            })),
        }
    }

    /// Reads a whole small file (index, manifest, config), refusing more than `limit` bytes.
    pub(crate) fn read_small(
        &self,
        image: &str,
        name: &str,
        what: &'static str,
        limit: u64,
    ) -> Result<Vec<u8>> {
        let (r, len) = self.open(name)?.ok_or_else(|| Error::MissingBlob {
            image: image.to_string(),
            name: name.to_string(),
        })?;
        if len > limit {
            return Err(Error::TooLarge {
                what,
                name: name.to_string(),
                limit,
            });
        }
        let mut buf = Vec::with_capacity(len as usize);
        r.take(limit)
            .read_to_end(&mut buf)
            .ctx("read", self.path().join(name))?;
        Ok(buf)
    }

    /// The directory or archive this store reads.
    pub(crate) fn path(&self) -> &Path {
        match self {
            Store::Dir(d) => d,
            Store::Tar(t) => &t.path,
        }
    }

    pub(crate) fn exists(&self, name: &str) -> bool {
        match self {
            Store::Dir(d) => d.join(name).is_file(),
            Store::Tar(t) => t.members.contains_key(&normalize(name)),
        }
    }
}

/// Archive member names without `./` or `/` prefixes, `..` resolved lexically (never above the top).
fn normalize(name: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(s) => out.push(s.to_str().unwrap_or_default()),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out.join("/")
}

impl TarIndex {
    /// Indexes `path`; a compressed archive is first inflated into an unlinked file under `tmp`.
    pub(crate) fn open(path: &Path, tmp: &Path) -> Result<Self> {
        let mut file = File::open(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound { path: path.into() },
            _ => Error::io("open archive", path, e),
        })?;
        let mut magic = [0u8; 4];
        let n = file.read_at(&mut magic, 0).ctx("read archive", path)?;
        if n == 4 && compression(&magic) != Compression::None {
            file = inflate_to_tmp(path, file, tmp)?;
        }
        let file = Arc::new(file);
        let corrupt = |source| Error::CorruptArchive {
            name: path.display().to_string(),
            source,
        };
        let mut archive = tar::Archive::new(&*file);
        let mut members = HashMap::new();
        let mut links = Vec::new();
        for entry in archive.entries_with_seek().map_err(corrupt)? {
            let entry = entry.map_err(corrupt)?;
            let name = normalize(&String::from_utf8_lossy(&entry.path_bytes()));
            let kind = entry.header().entry_type();
            if kind.is_file() {
                members.insert(name, (entry.raw_file_position(), entry.size()));
            } else if kind.is_symlink() || kind.is_hard_link() {
                // docker save (before 25) links duplicate layer.tar files to the first copy.
                let target = String::from_utf8_lossy(&entry.link_name_bytes().unwrap_or_default())
                    .into_owned();
                let base = match kind.is_symlink() {
                    true => Path::new(&name)
                        .parent()
                        .unwrap_or(Path::new(""))
                        .to_path_buf(),
                    false => PathBuf::new(),
                };
                links.push((name, normalize(&base.join(target).to_string_lossy())));
            }
        }
        for (name, target) in links {
            if let Some(&m) = members.get(&target) {
                members.insert(name, m);
            }
        }
        Ok(TarIndex {
            path: path.into(),
            file,
            members,
        })
    }
}

fn inflate_to_tmp(path: &Path, file: File, tmp: &Path) -> Result<File> {
    std::fs::create_dir_all(tmp).ctx("create dir", tmp)?;
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = tmp.join(format!("archive-{}-{seq}.tar", std::process::id()));
    let mut out = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&name)
        .ctx("create", &name)?;
    // Unlinked at once: the data lives as long as the handle, even if we crash.
    std::fs::remove_file(&name).ctx("remove", &name)?;
    let mut r = decompress(BufReader::new(file)).map_err(|source| Error::CorruptArchive {
        name: path.display().to_string(),
        source,
    })?;
    copy(&mut r, &mut out, path, &name)?;
    Ok(out)
}

/// Copies `r` into `w`, telling a bad source (corrupt archive) from a failing destination (e.g. full).
pub(crate) fn copy(r: &mut dyn Read, w: &mut dyn io::Write, from: &Path, to: &Path) -> Result<u64> {
    let mut buf = vec![0u8; 128 * 1024];
    let mut total = 0;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(Error::CorruptArchive {
                    name: from.display().to_string(),
                    source,
                })
            }
        };
        w.write_all(&buf[..n]).ctx("write", to)?;
        total += n as u64;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

pub(crate) fn compression(magic: &[u8]) -> Compression {
    if magic.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Wraps `r` in the decompressor its first bytes call for.
pub(crate) fn decompress<'a, R: BufRead + 'a>(mut r: R) -> io::Result<Box<dyn Read + 'a>> {
    match compression(r.fill_buf()?) {
        Compression::None => Ok(Box::new(r)),
        // Multi: concatenated gzip members are one stream (pigz, some registries).
        Compression::Gzip => Ok(Box::new(flate2::bufread::MultiGzDecoder::new(r))),
        Compression::Zstd => zstd(r),
    }
}

#[cfg(feature = "zstd")]
fn zstd<'a, R: BufRead + 'a>(r: R) -> io::Result<Box<dyn Read + 'a>> {
    Ok(Box::new(ZstdReader::new(r)?))
}

#[cfg(not(feature = "zstd"))]
fn zstd<'a, R: BufRead + 'a>(_: R) -> io::Result<Box<dyn Read + 'a>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "zstd layer (built without the zstd feature)",
    ))
}

/// ruzstd decodes one frame per decoder; zstd streams may hold several frames back to back.
#[cfg(feature = "zstd")]
struct ZstdReader<R: BufRead> {
    dec: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
}

#[cfg(feature = "zstd")]
impl<R: BufRead> ZstdReader<R> {
    fn new(r: R) -> io::Result<Self> {
        let dec = ruzstd::decoding::StreamingDecoder::new(r).map_err(io::Error::other)?;
        Ok(ZstdReader { dec: Some(dec) })
    }
}

#[cfg(feature = "zstd")]
impl<R: BufRead> Read for ZstdReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(dec) = self.dec.as_mut() else {
                return Ok(0);
            };
            let n = dec.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let Some(done) = self.dec.take() else {
                return Ok(0);
            };
            let (mut src, frame) = done.into_parts();
            if src.fill_buf()?.is_empty() {
                return Ok(0);
            }
            let next = ruzstd::decoding::StreamingDecoder::new_with_decoder(src, frame)
                .map_err(io::Error::other)?;
            self.dec = Some(next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalize() {
        assert_eq!(normalize("./blobs/sha256/ab"), "blobs/sha256/ab");
        assert_eq!(normalize("/../x/./y"), "x/y");
        assert_eq!(normalize("a/../b"), "b");
    }

    #[test]
    fn gzip_and_zstd_by_magic() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"hello").unwrap();
        let gz = gz.finish().unwrap();
        let mut out = String::new();
        decompress(&gz[..])
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hello");

        #[cfg(feature = "zstd")]
        {
            use ruzstd::encoding::{compress_to_vec, CompressionLevel};
            let mut two = compress_to_vec(&b"one "[..], CompressionLevel::Fastest);
            two.extend(compress_to_vec(&b"two"[..], CompressionLevel::Fastest));
            let mut out = String::new();
            decompress(&two[..])
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            assert_eq!(out, "one two");
        }
        let mut out = String::new();
        decompress(&b"plain"[..])
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "plain");
    }
}
