//! husk's launcher face (`husk run|exec|shell IMAGE`, `husk bundle IMAGE DIR`): turn an image, the
//! user's options and facts about the host into an OCI config.json plus the small bundle it needs,
//! then hand that to the engine like any other client.
//!
//! Pure by construction: [`build`] takes a template, a [`ResolvedImage`], [`Options`], [`HostFacts`]
//! and an [`Fs`] (the only window onto files: the image's tree, bind sources, /etc files), and
//! returns a [`Launch`]. Only [`HostFacts::gather`], [`RealFs`] and [`Launch::write`] touch the
//! system. Nothing here prints or exits.
//!
//! Layout of a launch (or `husk bundle`) directory:
//! ```text
//! DIR/config.json   the spec
//! DIR/passwd        the image's /etc/passwd with the caller's line; bound over /etc/passwd
//! DIR/group         likewise for /etc/group
//! DIR/rootfs/       the session root when it is not the image itself: a skeleton of empty dirs,
//!                   files and symlinks, the image's top-level entries bound into it
//! DIR/under/        what the image lacks: the upper layers of read-only overlays, split dirs
//! DIR/overlay/      --writable-tmpfs: upper/ and work/ of the image's overlays
//! ```
//! The image itself is never written to ([`underlay`]): the root is the image, bound read-only,
//! when it has every mount point; a directory that lacks one ($HOME, /etc/hosts, the cwd, a --bind
//! destination) gets a read-only overlay with the missing entries (or, without overlayfs, is
//! rebuilt from binds of its entries: the same idea as Apptainer's underlay), and when / itself
//! lacks one (or with --writable, whose new top-level entries stay out of the image) the root is
//! the skeleton. With --writable-tmpfs or --overlay each image directory bound into the skeleton
//! root is an overlay instead (lowerdir the image's, upperdir and workdir the same path under the
//! upper directory), mounted by the engine in the container's mount namespace, and nothing is
//! split: missing mount points are made in the upper directory. New top-level entries cannot be
//! made; everything below them can.

pub mod batch;
pub mod cdi;
pub mod env;
#[doc(hidden)]
pub mod fuzzing;
pub mod host;
pub mod image;
pub mod instance;
pub mod mounts;
pub mod options;
pub mod passwd;
pub mod sandbox;
pub mod spec;
pub mod templates;
pub mod underlay;
pub mod userns;

#[cfg(test)]
mod golden_tests;

pub use host::{Fs, HostFacts, Kind, RealFs};
pub use image::{CachedImages, ImageConfig, ImageError, ImageSource, ResolvedImage};
pub use options::{Bind, Ipc, Net, Options, OptionsError, Overlay, Resources, Verb};
pub use spec::{build, Launch, PlanError, WriteError};
