//! What IMAGE names and what it resolves to.
//!
//! An IMAGE argument always contains '/' or ':' (`./rootfs`, `/srv/images/debian`, `oci:dir`,
//! `docker://busybox`), which an OCI container id (`^[\w+.-]+$`) never does: that is how the CLI
//! tells the two faces apart ([`is_image_arg`]). For now only rootfs directories resolve; the
//! transports belong to the husk-image crate, which plugs in as another [`ImageSource`].

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
        })
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
