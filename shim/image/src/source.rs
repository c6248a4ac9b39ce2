//! Resolving a source to what import needs: manifest digest, verified config, ordered layer list.
//!
//! OCI (layout dir or archive): index.json → descriptor by tag (`org.opencontainers.image.ref.name`;
//! no tag: "latest", else the only manifest) → image index by platform if it is one → manifest →
//! config. Manifest and config are verified against their digests here; layers when unpacked.
//!
//! docker-archive: manifest.json → entry by RepoTags (no reference: the only image) → config (verified
//! when its name is its hex digest, as docker and skopeo write it) → layer tars, which are named by
//! diff_id (sha256 of the uncompressed tar). It has no manifest digest, so the image is keyed by the
//! digest of the equivalent OCI manifest (uncompressed layers named by diff_id): same content, same key.

use crate::blob::{Store, TarIndex};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::DockerRef;
use crate::spec::{self, ConfigBlob, Descriptor, DockerArchiveEntry, ImageConfig, Index, Manifest};
use std::path::Path;

/// Metadata files larger than this are refused (a manifest or config is a few KiB).
pub(crate) const META_LIMIT: u64 = 4 << 20;

/// A layer to fetch: where it is, and the digests that must match.
#[derive(Debug, Clone)]
pub(crate) struct LayerSource {
    /// Member name in the store.
    pub name: String,
    /// Digest of the stored (possibly compressed) bytes, when the source names it.
    pub digest: Option<Digest>,
    /// Digest of the uncompressed tar (rootfs.diff_ids), which keys the layer cache.
    pub diff_id: Digest,
    pub size: u64,
}

pub(crate) struct Resolved {
    pub store: Store,
    /// The source as shown in errors.
    pub image: String,
    pub digest: Digest,
    pub config_digest: Digest,
    pub config: ImageConfig,
    pub layers: Vec<LayerSource>,
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().name(), d.hex())
}

fn json<'a, T: serde::Deserialize<'a>>(
    bytes: &'a [u8],
    what: &'static str,
    name: &str,
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::Json {
        what,
        name: name.to_string(),
        source,
    })
}

/// Reads a blob and checks it against its descriptor: size, then digest.
fn verified_blob(
    store: &Store,
    image: &str,
    desc: &Descriptor,
    what: &'static str,
) -> Result<Vec<u8>> {
    let d = &desc.digest;
    let bytes = store.read_small(image, &blob_name(d), what, META_LIMIT)?;
    if bytes.len() as u64 != desc.size {
        return Err(Error::SizeMismatch {
            what,
            name: d.to_string(),
            expected: desc.size,
            actual: bytes.len() as u64,
        });
    }
    let actual = d.of_same_kind(&bytes);
    if &actual != d {
        return Err(Error::DigestMismatch {
            what,
            expected: d.clone(),
            actual,
        });
    }
    Ok(bytes)
}

/// Resolves an OCI layout held by `store` (a directory or an oci-archive).
pub(crate) fn oci(store: Store, image: String, tag: Option<&str>) -> Result<Resolved> {
    if !store.exists("oci-layout") {
        return Err(Error::NotOciLayout {
            path: store.path().into(),
        });
    }
    let bytes = store.read_small(&image, "index.json", "index", META_LIMIT)?;
    let index: Index = json(
        &bytes,
        "index",
        &store.path().join("index.json").to_string_lossy(),
    )?;
    let mut desc = pick_tag(&index, &image, tag)?;
    if spec::is_index_type(&desc.media_type) {
        let bytes = verified_blob(&store, &image, &desc, "index")?;
        let inner: Index = json(&bytes, "index", &desc.digest.to_string())?;
        desc = pick_platform(&inner, &desc.digest)?;
    }
    let bytes = verified_blob(&store, &image, &desc, "manifest")?;
    let manifest: Manifest = json(&bytes, "manifest", &desc.digest.to_string())?;
    let mt = if manifest.media_type.is_empty() {
        &desc.media_type
    } else {
        &manifest.media_type
    };
    if !mt.is_empty() && mt != spec::OCI_MANIFEST && mt != spec::DOCKER_MANIFEST {
        return Err(unsupported("manifest", &desc.digest, mt));
    }
    let cd = &manifest.config;
    if cd.media_type != spec::OCI_CONFIG && cd.media_type != spec::DOCKER_CONFIG {
        return Err(unsupported("config", &cd.digest, &cd.media_type));
    }
    let bytes = verified_blob(&store, &image, cd, "config")?;
    let blob: ConfigBlob = json(&bytes, "config", &cd.digest.to_string())?;
    let diff_ids = &blob.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(Error::Inconsistent {
            what: "manifest",
            name: desc.digest.to_string(),
            reason: "layer count differs from the config's diff_ids",
        });
    }
    let mut layers = Vec::new();
    for (l, diff_id) in manifest.layers.iter().zip(diff_ids) {
        if !spec::is_layer_type(&l.media_type) {
            return Err(unsupported("layer", &l.digest, &l.media_type));
        }
        layers.push(LayerSource {
            name: blob_name(&l.digest),
            digest: Some(l.digest.clone()),
            diff_id: diff_id.clone(),
            size: l.size,
        });
    }
    Ok(Resolved {
        store,
        image,
        digest: desc.digest,
        config_digest: cd.digest.clone(),
        config: ImageConfig::from_blob(&blob),
        layers,
    })
}

fn unsupported(what: &'static str, d: &Digest, media_type: &str) -> Error {
    Error::UnsupportedMediaType {
        what,
        digest: d.to_string(),
        media_type: media_type.to_string(),
    }
}

fn tags(index: &Index) -> String {
    let t: Vec<&str> = index
        .manifests
        .iter()
        .filter_map(|d| d.annotations.get(spec::REF_NAME).map(String::as_str))
        .collect();
    if t.is_empty() {
        "none".into()
    } else {
        t.join(", ")
    }
}

fn pick_tag(index: &Index, image: &str, tag: Option<&str>) -> Result<Descriptor> {
    let named = |t: &str| {
        index
            .manifests
            .iter()
            .find(|d| d.annotations.get(spec::REF_NAME).map(String::as_str) == Some(t))
    };
    let found = match tag {
        Some(t) => named(t).ok_or_else(|| Error::TagNotFound {
            image: image.to_string(),
            tag: t.to_string(),
            available: tags(index),
        })?,
        None => match (named("latest"), index.manifests.as_slice()) {
            (Some(d), _) | (None, [d]) => d,
            _ => {
                return Err(Error::AmbiguousTag {
                    image: image.to_string(),
                    available: tags(index),
                })
            }
        },
    };
    Ok(found.clone())
}

pub(crate) fn pick_platform(index: &Index, digest: &Digest) -> Result<Descriptor> {
    let arch = spec::host_arch();
    index
        .manifests
        .iter()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch)
        })
        .cloned()
        .ok_or_else(|| Error::NoPlatform {
            digest: digest.clone(),
            platform: format!("linux/{arch}"),
        })
}

/// Resolves a docker-archive.
pub(crate) fn docker_archive(
    store: Store,
    image: String,
    reference: Option<&str>,
) -> Result<Resolved> {
    let bytes = store.read_small(&image, "manifest.json", "manifest", META_LIMIT)?;
    let entries: Vec<DockerArchiveEntry> =
        json(&bytes, "manifest", &format!("{image}/manifest.json"))?;
    let all_tags = || {
        let t: Vec<&str> = entries
            .iter()
            .flat_map(|e| e.repo_tags.iter().map(String::as_str))
            .collect();
        t.join(", ")
    };
    let entry = match reference {
        Some(r) => entries
            .iter()
            .find(|e| e.repo_tags.iter().any(|t| same_name(t, r))),
        None if entries.len() == 1 => entries.first(),
        None => {
            return Err(Error::AmbiguousTag {
                image,
                available: all_tags(),
            })
        }
    }
    .ok_or_else(|| Error::TagNotFound {
        image: image.clone(),
        tag: reference.unwrap_or("").to_string(),
        available: all_tags(),
    })?;
    let config_bytes = store.read_small(&image, &entry.config, "config", META_LIMIT)?;
    let config_digest = Digest::sha256(&config_bytes);
    if let Some(named) = hex_name(&entry.config) {
        if named != config_digest.hex() {
            return Err(Error::DigestMismatch {
                what: "config",
                expected: Digest::parse(&format!("sha256:{named}"))?,
                actual: config_digest,
            });
        }
    }
    let blob: ConfigBlob = json(&config_bytes, "config", &entry.config)?;
    if blob.rootfs.diff_ids.len() != entry.layers.len() {
        return Err(Error::Inconsistent {
            what: "manifest",
            name: format!("{image}/manifest.json"),
            reason: "layer count differs from the config's diff_ids",
        });
    }
    let mut layers = Vec::new();
    for (name, diff_id) in entry.layers.iter().zip(&blob.rootfs.diff_ids) {
        let (_, size) = store.open(name)?.ok_or_else(|| Error::MissingBlob {
            image: image.clone(),
            name: name.clone(),
        })?;
        layers.push(LayerSource {
            name: name.clone(),
            digest: None,
            diff_id: diff_id.clone(),
            size,
        });
    }
    let digest = synthetic_manifest_digest(&config_digest, config_bytes.len() as u64, &layers);
    Ok(Resolved {
        store,
        image,
        digest,
        config_digest,
        config: ImageConfig::from_blob(&blob),
        layers,
    })
}

/// `<64 hex>` from "<hex>.json", "sha256:<hex>", "blobs/sha256/<hex>".
fn hex_name(name: &str) -> Option<&str> {
    let base = name.rsplit('/').next()?;
    let base = base.strip_suffix(".json").unwrap_or(base);
    let base = base.strip_prefix("sha256:").unwrap_or(base);
    (base.len() == 64 && base.bytes().all(|b| b.is_ascii_hexdigit())).then_some(base)
}

/// Two image names equal after Docker Hub normalization ("busybox" = "docker.io/library/busybox:latest").
fn same_name(a: &str, b: &str) -> bool {
    a == b
        || match (DockerRef::parse(a), DockerRef::parse(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
}

fn synthetic_manifest_digest(config: &Digest, config_size: u64, layers: &[LayerSource]) -> Digest {
    let desc = |media_type: &str, digest: &Digest, size| Descriptor {
        media_type: media_type.to_string(),
        digest: digest.clone(),
        size,
        annotations: Default::default(),
        platform: None,
    };
    let m = Manifest {
        schema_version: 2,
        media_type: spec::OCI_MANIFEST.to_string(),
        config: desc(spec::OCI_CONFIG, config, config_size),
        layers: layers
            .iter()
            .map(|l| desc(spec::OCI_LAYER_TAR, &l.diff_id, l.size))
            .collect(),
    };
    let bytes = serde_json::to_vec(&m).unwrap_or_default();
    Digest::sha256(&bytes)
}

/// A bare path that is a file: an archive, told apart by what it holds.
pub(crate) fn sniff_archive(path: &Path, tmp: &Path, image: String) -> Result<Resolved> {
    let index = TarIndex::open(path, tmp).map_err(|e| match e {
        Error::CorruptArchive { .. } => Error::NotAnImage { path: path.into() },
        e => e,
    })?;
    let store = Store::Tar(index);
    if store.exists("oci-layout") {
        oci(store, image, None)
    } else if store.exists("manifest.json") {
        docker_archive(store, image, None)
    } else {
        Err(Error::NotAnImage { path: path.into() })
    }
}

/// The fuzz targets' entry point for the metadata parsers: `bytes` read as each document import
/// parses (index.json or an image index, a manifest, a config, docker-archive's manifest.json),
/// and what parses goes through the same selection (tag, platform, layer list, names) as import.
#[doc(hidden)]
pub fn fuzz_metadata(bytes: &[u8]) {
    let name = "fuzz";
    if let Ok(index) = json::<Index>(bytes, "index", name) {
        for tag in [None, Some("latest"), Some("")] {
            let _ = pick_tag(&index, name, tag);
        }
        if let Some(d) = index.manifests.first() {
            let _ = pick_platform(&index, &d.digest);
        }
        let _ = tags(&index);
    }
    if let Ok(m) = json::<Manifest>(bytes, "manifest", name) {
        let layers: Vec<LayerSource> = m
            .layers
            .iter()
            .filter(|l| spec::is_layer_type(&l.media_type))
            .map(|l| LayerSource {
                name: blob_name(&l.digest),
                digest: Some(l.digest.clone()),
                diff_id: l.digest.clone(),
                size: l.size,
            })
            .collect();
        let _ = synthetic_manifest_digest(&m.config.digest, m.config.size, &layers);
    }
    if let Ok(blob) = json::<ConfigBlob>(bytes, "config", name) {
        let _ = ImageConfig::from_blob(&blob);
    }
    if let Ok(entries) = json::<Vec<DockerArchiveEntry>>(bytes, "manifest", name) {
        for e in &entries {
            let _ = hex_name(&e.config);
            for t in &e.repo_tags {
                let _ = same_name(t, "busybox");
            }
        }
    }
}
