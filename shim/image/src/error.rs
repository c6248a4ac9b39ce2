//! The crate's error type for import, extraction and cache operations.
//!
//! Every message reads "<operation> <object>: <cause>" and names the file, digest or path involved.
//! Disk-full conditions (ENOSPC, EDQUOT) get their own variant so the CLI can say so plainly instead of
//! burying "os error 28" in a chain.

use crate::digest::Digest;
use std::io;
use std::path::PathBuf;

/// Errors from [`crate::Cache`] and [`crate::unpack_layer`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image path named by a source does not exist.
    #[error("open image {path}: no such file or directory")]
    NotFound { path: PathBuf },
    /// A bare path that is neither a directory nor an archive we recognise.
    #[error("open image {path}: not a directory, OCI layout or image archive")]
    NotAnImage { path: PathBuf },
    /// A directory given as `oci:` without an `oci-layout` file.
    #[error("open OCI layout {path}: missing oci-layout file")]
    NotOciLayout { path: PathBuf },
    /// A source kind this crate parses but cannot import yet.
    #[error("import {image}: {kind} images are not supported yet")]
    Unsupported { image: String, kind: &'static str },
    /// No manifest carries the requested tag.
    #[error("resolve tag {tag} in {image}: not found (available: {available})")]
    TagNotFound {
        image: String,
        tag: String,
        available: String,
    },
    /// No tag given and the layout holds several manifests none of which is "latest".
    #[error(
        "resolve image in {image}: several manifests and no tag given (available: {available})"
    )]
    AmbiguousTag { image: String, available: String },
    /// An index that has no manifest for this machine's platform.
    #[error("resolve platform {platform} in index {digest}: no matching manifest")]
    NoPlatform { digest: Digest, platform: String },
    /// A blob named by a manifest (or a file named by manifest.json) is absent.
    #[error("open blob {name} in {image}: missing")]
    MissingBlob { image: String, name: String },
    /// A media type we do not know how to handle.
    #[error("import {what} {digest}: unsupported media type {media_type}")]
    UnsupportedMediaType {
        what: &'static str,
        digest: String,
        media_type: String,
    },
    /// Content whose digest differs from the one that names it.
    #[error("verify {what} {expected}: digest mismatch (got {actual})")]
    DigestMismatch {
        what: &'static str,
        expected: Digest,
        actual: Digest,
    },
    /// A blob whose length is not the size its descriptor gives.
    #[error("verify {what} {name}: {actual} bytes, but its descriptor says {expected}")]
    SizeMismatch {
        what: &'static str,
        name: String,
        expected: u64,
        actual: u64,
    },
    /// Content longer than its descriptor says (or absurdly large metadata).
    #[error("read {what} {name}: larger than {limit} bytes")]
    TooLarge {
        what: &'static str,
        name: String,
        limit: u64,
    },
    /// A string that is not `algorithm:hex`.
    #[error("parse digest {value}: {reason}")]
    InvalidDigest { value: String, reason: &'static str },
    /// Malformed JSON metadata (index, manifest, config, manifest.json, a cache record).
    #[error("parse {what} {name}: {source}")]
    Json {
        what: &'static str,
        name: String,
        #[source]
        source: serde_json::Error,
    },
    /// A manifest that is well-formed JSON but inconsistent (e.g. layer and diff_id counts differ).
    #[error("check {what} {name}: {reason}")]
    Inconsistent {
        what: &'static str,
        name: String,
        reason: &'static str,
    },
    /// A tar stream that cannot be read (truncated, bad header, bad compression).
    #[error("read archive {name}: {source}")]
    CorruptArchive {
        name: String,
        #[source]
        source: io::Error,
    },
    /// A layer entry that would land outside the target directory.
    #[error("unpack entry {entry} of layer {layer}: {reason}")]
    UnsafeEntry {
        layer: String,
        entry: String,
        reason: &'static str,
    },
    /// The filesystem is full (ENOSPC) or the quota is exhausted (EDQUOT).
    #[error("{op} {path}: no space left on device")]
    NoSpace { op: &'static str, path: PathBuf },
    /// Any other I/O failure, with the operation and path it happened on.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A registry answered with an error status.
    #[error("fetch {url}: {reason}")]
    RegistryStatus {
        url: String,
        status: u16,
        reason: String,
    },
    /// A registry could not be reached (DNS, connection, TLS).
    #[error("fetch {url}: {reason}")]
    RegistryTransport { url: String, reason: String },
    /// Authentication with a registry failed or is needed.
    #[error("authenticate for {url}: {reason}")]
    RegistryAuth { url: String, reason: String },
    /// `remove` was given a key that matches no cached image, or several.
    #[error("find cached image {key}: {reason}")]
    UnknownImage { key: String, reason: &'static str },
    /// The cache directory is not a private one of the caller's (squatted, or open to others).
    #[error(transparent)]
    NotPrivate(#[from] husk_runtime::state::StateError),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with its operation and path; ENOSPC and EDQUOT become [`Error::NoSpace`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        match source.raw_os_error() {
            Some(libc_enospc) if is_no_space(libc_enospc) => Error::NoSpace { op, path },
            _ => Error::Io { op, path, source },
        }
    }

    /// Same as [`Error::io`] for a nix errno.
    pub(crate) fn errno(op: &'static str, path: impl Into<PathBuf>, e: nix::errno::Errno) -> Self {
        Self::io(op, path, io::Error::from(e))
    }

    /// True for a disk-full error, however deep in an I/O error it was raised.
    pub fn is_no_space(&self) -> bool {
        matches!(self, Error::NoSpace { .. })
    }
}

fn is_no_space(raw: i32) -> bool {
    raw == nix::errno::Errno::ENOSPC as i32 || raw == nix::errno::Errno::EDQUOT as i32
}

/// Extends `io::Result` with the operation and path, for `?` at call sites.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}

impl<T> IoContext<T> for nix::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::errno(op, path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_is_its_own_variant() {
        let e = Error::io(
            "write layer",
            "/c/tmp/x",
            io::Error::from_raw_os_error(nix::errno::Errno::ENOSPC as i32),
        );
        assert!(e.is_no_space());
        assert_eq!(
            e.to_string(),
            "write layer /c/tmp/x: no space left on device"
        );
    }
}
