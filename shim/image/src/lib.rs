//! husk's image import and layer cache.
//!
//! Turns an image source ([`ImageRef`]: a rootfs directory, an OCI layout, an OCI or docker archive)
//! into a root filesystem directory and a typed [`ImageConfig`], through a content-addressed cache
//! ([`Cache`]). Never prints, never exits; warnings are returned, progress goes to a callback.

mod assemble;
mod blob;
mod cache;
pub mod digest;
pub mod error;
pub mod extract;
mod fsx;
pub mod reference;
mod source;
pub mod spec;

pub use cache::{Cache, Clean, Cleaned, Image, ImportStats, Progress};
pub use digest::Digest;
pub use error::{Error, Result};
pub use extract::{unpack_layer, UnpackOptions, Unpacked};
pub use reference::{DockerRef, ImageRef, ParseError};
pub use spec::ImageConfig;
