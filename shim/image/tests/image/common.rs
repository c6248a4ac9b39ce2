//! Test helpers: crafted tar layers (including names the tar crate's safe setters refuse), hand-built
//! OCI layouts and docker-archives, external tool checks.

use flate2::write::GzEncoder;
use husk_image::Digest;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// True when `tool` runs; otherwise prints why the test is skipped, or panics when
/// HUSK_REQUIRE_PRIVILEGED=1 (CI installs the tools).
pub fn have_tool(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("HUSK_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
            panic!("{tool} is required (HUSK_REQUIRE_PRIVILEGED=1) but not runnable");
        }
        eprintln!("skipped: {tool} not installed (apt-get install {tool})");
    }
    ok
}

pub fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds a layer tar entry by entry, with raw names where needed.
pub struct Layer {
    b: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer {
    pub fn new() -> Self {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    /// Writes `name` and `link` straight into the header, bypassing the tar crate's path checks.
    fn raw(&mut self, mut h: tar::Header, name: &str, link: &str, data: &[u8]) {
        let g = h.as_gnu_mut().unwrap();
        g.name = [0; 100];
        g.name[..name.len()].copy_from_slice(name.as_bytes());
        g.linkname = [0; 100];
        g.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        self.b.append(&h, data).unwrap();
    }

    pub fn file(mut self, name: &str, data: &[u8], mode: u32) -> Self {
        let h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.raw(h, name, "", data);
        self
    }

    pub fn owned_file(mut self, name: &str, data: &[u8], uid: u64, gid: u64) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, 0o644, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.raw(h, name, "", data);
        self
    }

    pub fn dir(mut self, name: &str, mode: u32) -> Self {
        let h = Self::header(tar::EntryType::Directory, mode, 0);
        self.raw(h, name, "", &[]);
        self
    }

    pub fn symlink(mut self, name: &str, target: &str) -> Self {
        let h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.raw(h, name, target, &[]);
        self
    }

    pub fn hardlink(mut self, name: &str, target: &str) -> Self {
        let h = Self::header(tar::EntryType::Link, 0o644, 0);
        self.raw(h, name, target, &[]);
        self
    }

    pub fn char_dev(mut self, name: &str, major: u32, minor: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Char, 0o666, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.raw(h, name, "", &[]);
        self
    }

    pub fn fifo(mut self, name: &str) -> Self {
        let h = Self::header(tar::EntryType::Fifo, 0o640, 0);
        self.raw(h, name, "", &[]);
        self
    }

    /// A regular file carrying pax `SCHILY.xattr.*` records.
    pub fn file_with_xattr(mut self, name: &str, data: &[u8], key: &str, value: &[u8]) -> Self {
        let pax_key = format!("SCHILY.xattr.{key}");
        self.b
            .append_pax_extensions([(pax_key.as_str(), value)])
            .unwrap();
        self.file_inner(name, data)
    }

    fn file_inner(mut self, name: &str, data: &[u8]) -> Self {
        let h = Self::header(tar::EntryType::Regular, 0o644, data.len() as u64);
        self.raw(h, name, "", data);
        self
    }

    pub fn tar(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

/// A hand-built OCI image layout.
pub struct Layout {
    pub dir: PathBuf,
    manifests: Vec<Value>,
}

pub struct BuiltImage {
    pub manifest: Digest,
    pub config: Digest,
    pub layers: Vec<Digest>,
}

impl Layout {
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let l = Layout {
            dir: dir.into(),
            manifests: Vec::new(),
        };
        l.write_index();
        l
    }

    pub fn blob(&self, data: &[u8]) -> Digest {
        let d = Digest::sha256(data);
        std::fs::write(self.blob_path(&d), data).unwrap();
        d
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(d.hex())
    }

    /// Adds an image of gzip'd layers with a config naming `cmd`, tagged `tag`.
    pub fn image(&mut self, tag: &str, layers: &[Vec<u8>]) -> BuiltImage {
        self.image_with(
            tag,
            layers,
            "application/vnd.oci.image.layer.v1.tar+gzip",
            gzip,
        )
    }

    pub fn image_with(
        &mut self,
        tag: &str,
        layers: &[Vec<u8>],
        media_type: &str,
        compress: fn(&[u8]) -> Vec<u8>,
    ) -> BuiltImage {
        self.image_sized(tag, layers, media_type, compress, &[])
    }

    /// Like [`Layout::image_with`], the manifest giving layer `i` the size `sizes[i]` (where given)
    /// instead of its blob's.
    pub fn image_sized(
        &mut self,
        tag: &str,
        layers: &[Vec<u8>],
        media_type: &str,
        compress: fn(&[u8]) -> Vec<u8>,
        sizes: &[u64],
    ) -> BuiltImage {
        let diff_ids: Vec<String> = layers
            .iter()
            .map(|l| Digest::sha256(l).to_string())
            .collect();
        let mut descs = Vec::new();
        let mut digests = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let blob = compress(l);
            let d = self.blob(&blob);
            let size = sizes.get(i).copied().unwrap_or(blob.len() as u64);
            descs.push(json!({"mediaType": media_type, "digest": d.to_string(), "size": size}));
            digests.push(d);
        }
        let config = json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/bin", "A=b"], "Cmd": ["/bin/sh"], "Entrypoint": null,
                       "WorkingDir": "/tmp", "User": "1000:1000", "Labels": {"k": "v"}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config_bytes = serde_json::to_vec(&config).unwrap();
        let config_digest = self.blob(&config_bytes);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest.to_string(), "size": config_bytes.len()},
            "layers": descs,
        });
        let mbytes = serde_json::to_vec(&manifest).unwrap();
        let md = self.blob(&mbytes);
        self.manifests.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md.to_string(), "size": mbytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }));
        self.write_index();
        BuiltImage {
            manifest: md,
            config: config_digest,
            layers: digests,
        }
    }

    fn write_index(&self) {
        let index = json!({"schemaVersion": 2, "manifests": self.manifests});
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    }
}

/// A docker-archive (docker save format) with the given layer tars, stored as `<diff_id hex>.tar`.
pub fn docker_archive(path: &Path, repo_tag: &str, layers: &[Vec<u8>], stored: &[Vec<u8>]) {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| Digest::sha256(l).to_string())
        .collect();
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_name = format!("{}.json", Digest::sha256(&config_bytes).hex());
    let names: Vec<String> = layers
        .iter()
        .map(|l| format!("{}.tar", Digest::sha256(l).hex()))
        .collect();
    let manifest = json!([{"Config": config_name, "RepoTags": [repo_tag], "Layers": names}]);
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    for (name, data) in names.iter().zip(stored) {
        add(name, data);
    }
    add(&config_name, &config_bytes);
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    b.finish().unwrap();
}

/// Entries under a cache's committed dirs (layers, rootfs, images) and tmp.
pub fn cache_entries(cache: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["layers/sha256", "rootfs", "images", "tmp"] {
        if let Ok(rd) = std::fs::read_dir(cache.join(sub)) {
            for e in rd {
                out.push(format!(
                    "{sub}/{}",
                    e.unwrap().file_name().to_string_lossy()
                ));
            }
        }
    }
    out
}
