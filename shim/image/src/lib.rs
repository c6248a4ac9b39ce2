//! husk's image import and layer cache.
//!
//! Turns an image source ([`ImageRef`]: a rootfs directory, an OCI layout, an OCI or docker archive)
//! into a root filesystem directory and a typed [`ImageConfig`], through a content-addressed cache
//! ([`Cache`]): each layer is verified (blob digest and diff_id) and unpacked once under
//! `layers/<algo>/<hex>/`, and each image's layers are stacked (whiteouts applied, files hardlinked
//! from the layer cache) into `rootfs/<manifest hex>/`. A second import of a cached image only
//! re-reads its manifest.
//!
//! Never prints, never exits: warnings (skipped device nodes, refused xattrs, ownership) come back in
//! [`Image::warnings`] / [`Unpacked::warnings`], progress goes to a callback.
//!
//! Security: unpacking never writes outside its target (see [`extract`]); the cache is created 0700
//! because rootfs trees may hold set-id files; rootfs trees share inodes with the layer cache, so
//! they must be used read-only (or under an overlay).
//!
//! Registries (`docker://`): see [`registry`](crate::registry) for the protocol, auth and the
//! http-on-loopback rule. Not yet: layer signatures, non-Linux platforms.

mod assemble;
mod blob;
mod cache;
pub mod digest;
pub mod error;
pub mod extract;
mod fsx;
#[cfg(test)]
mod fuzz_smoke;
pub mod reference;
mod registry;
mod source;
pub mod spec;

pub use cache::{Cache, Clean, Cleaned, Image, ImportStats, Progress};
pub use digest::Digest;
pub use error::{Error, Result};
pub use extract::{unpack_layer, UnpackOptions, Unpacked};
pub use reference::{DockerRef, ImageRef, ParseError};
pub use registry::is_loopback;
#[doc(hidden)]
pub use source::fuzz_metadata;
pub use spec::ImageConfig;
