//! What IMAGE names and what it resolves to.
//!
//! An IMAGE argument always contains '/' or ':' (`./rootfs`, `/srv/images/debian`, `oci:dir`,
//! `docker://busybox`), which an OCI container id (`^[\w+.-]+$`) never does: that is how the CLI
//! tells the two faces apart ([`is_image_arg`]). [`RootfsDir`] resolves rootfs directories;
//! [`CachedImages`] adds every husk-image transport (registries, OCI layouts, archives) through its cache
//! and hands rootfs directories to [`RootfsDir`].
//!
//! An image from the cache shares inodes (hardlinks) with the cache's layers, so it is marked
//! [`ResolvedImage::cached`] and [`crate::build`] refuses `--writable` for it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("open image {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("open image {0}: not a directory (only rootfs directories are supported so far)")]
    NotDir(PathBuf),
    #[error("open image {reference}: the {transport}: transport is not supported yet; use a rootfs directory")]
    Transport {
        reference: String,
        transport: String,
    },
    #[error(transparent)]
    Parse(#[from] husk_image::ParseError),
    #[error("import image {reference}: {source}")]
    Import {
        reference: String,
        #[source]
        source: husk_image::Error,
    },
}

/// The parts of an OCI image config the launcher applies. A rootfs directory has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `KEY=VALUE` entries.
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: Option<String>,
    /// Recorded, not applied: the launcher runs as the caller (or root with --fakeroot).
    pub user: Option<String>,
    /// Copied into the spec's annotations.
    pub labels: BTreeMap<String, String>,
}

/// An image ready to run: a root filesystem on the host and its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// What the user typed.
    pub reference: String,
    /// Absolute path of the root filesystem (read, never written).
    pub rootfs: PathBuf,
    pub config: ImageConfig,
    /// The rootfs lives in the image cache and shares files with its layers: never write to it.
    pub cached: bool,
    /// Degradations while importing (skipped device nodes, xattrs, ownership).
    pub warnings: Vec<String>,
}

/// Something that turns an IMAGE argument into a [`ResolvedImage`] (the image crate adds the
/// registry, OCI layout and archive transports).
pub trait ImageSource {
    fn resolve(&self, reference: &str) -> Result<ResolvedImage, ImageError>;
}

/// True when a positional argument is an IMAGE rather than an OCI container id.
pub fn is_image_arg(arg: &str) -> bool {
    arg.contains('/') || arg.contains(':') || arg.starts_with('.')
}

/// `Some(transport)` for `transport:rest` references (`docker://x`, `oci:dir`); paths give None.
pub fn transport(reference: &str) -> Option<&str> {
    if reference.starts_with('/') || reference.starts_with('.') {
        return None;
    }
    let (scheme, _) = reference.split_once(':')?;
    let ok = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    ok.then_some(scheme)
}

/// Resolves paths to rootfs directories; refuses transports.
#[derive(Debug, Default)]
pub struct RootfsDir;

impl ImageSource for RootfsDir {
    fn resolve(&self, reference: &str) -> Result<ResolvedImage, ImageError> {
        if let Some(t) = transport(reference) {
            return Err(ImageError::Transport {
                reference: reference.to_string(),
                transport: t.to_string(),
            });
        }
        let path = Path::new(reference);
        let rootfs = std::fs::canonicalize(path).map_err(|source| ImageError::Open {
            path: path.into(),
            source,
        })?;
        if !rootfs.is_dir() {
            return Err(ImageError::NotDir(path.into()));
        }
        Ok(ResolvedImage {
            reference: reference.to_string(),
            rootfs,
            config: ImageConfig::default(),
            cached: false,
            warnings: Vec::new(),
        })
    }
}

/// Progress of an import, for a caller that shows it.
pub type ProgressFn<'a> = dyn Fn(&husk_image::Progress) + 'a;

/// Resolves through a husk-image [`husk_image::Cache`]: `docker://REF`, `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`,
/// `docker-archive:FILE`, a bare path to an OCI layout or an archive file. A bare path to a plain
/// directory (or to nothing) goes to [`RootfsDir`], so it keeps its errors and is not cached.
pub struct CachedImages<'a> {
    pub cache: husk_image::Cache,
    pub progress: &'a ProgressFn<'a>,
}

impl CachedImages<'_> {
    /// Imports `reference` into the cache (a cache hit only re-reads its manifest).
    pub fn import(&self, reference: &str) -> Result<husk_image::Image, ImageError> {
        let r = husk_image::ImageRef::parse(reference)?;
        let mut report = |p: husk_image::Progress| (self.progress)(&p);
        self.cache
            .import_with_progress(&r, &mut report)
            .map_err(|source| ImageError::Import {
                reference: reference.to_string(),
                source,
            })
    }
}

impl ImageSource for CachedImages<'_> {
    fn resolve(&self, reference: &str) -> Result<ResolvedImage, ImageError> {
        if transport(reference).is_none() {
            let p = Path::new(reference);
            if !p.exists() || (p.is_dir() && !p.join("oci-layout").exists()) {
                return RootfsDir.resolve(reference);
            }
        }
        let img = self.import(reference)?;
        Ok(ResolvedImage {
            reference: reference.to_string(),
            cached: img.digest.is_some(),
            rootfs: img.rootfs,
            config: config_from(img.config),
            warnings: img.warnings,
        })
    }
}

/// The launcher's view of an image config: empty strings become `None`.
pub fn config_from(c: husk_image::ImageConfig) -> ImageConfig {
    let some = |s: String| (!s.is_empty()).then_some(s);
    ImageConfig {
        env: c.env,
        entrypoint: c.entrypoint,
        cmd: c.cmd,
        working_dir: some(c.working_dir),
        user: some(c.user),
        labels: c.labels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_and_ids_are_told_apart() {
        for img in [
            "./rootfs",
            "/srv/images/debian",
            "oci:dir",
            "docker://busybox",
            ".",
            "a/b",
        ] {
            assert!(is_image_arg(img), "{img}");
        }
        for id in ["abc", "my-container_1", "x.y+z"] {
            assert!(!is_image_arg(id), "{id}");
        }
    }

    #[test]
    fn transports() {
        assert_eq!(transport("docker://busybox"), Some("docker"));
        assert_eq!(transport("docker-archive:f.tar"), Some("docker-archive"));
        assert_eq!(transport("oci:dir"), Some("oci"));
        assert_eq!(transport("./a:b"), None);
        assert_eq!(transport("/srv/x:y"), None);
        assert_eq!(transport("images/debian"), None);
    }

    #[test]
    fn transports_are_refused_by_name() {
        let e = RootfsDir.resolve("docker://busybox").unwrap_err();
        assert!(e.to_string().contains("docker: transport"), "{e}");
    }

    #[test]
    fn missing_dir_names_the_path() {
        let e = RootfsDir.resolve("./no/such/rootfs").unwrap_err();
        assert!(
            e.to_string().starts_with("open image ./no/such/rootfs: "),
            "{e}"
        );
    }
}
