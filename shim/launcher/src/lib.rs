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
//! DIR/rootfs/       the session root: a skeleton of empty dirs, files and symlinks, never the image
//! DIR/passwd        the image's /etc/passwd with the caller's line; bound over /etc/passwd
//! DIR/group         likewise for /etc/group
//! DIR/overlay/      --writable-tmpfs: upper/ and work/ of the image's overlays
//! ```
//! The image itself is never written to: its top-level entries are bound (read-only unless
//! --writable) into the session root, and a directory on the way to a mount point the image lacks
//! ($HOME, the cwd, a --bind destination) is rebuilt in the skeleton instead ([`underlay`]; the same
//! idea as Apptainer's underlay). With --writable-tmpfs or --overlay each image directory bound
//! into the session root is an overlay instead (lowerdir the image's, upperdir and workdir the same
//! path under the upper directory), mounted by the engine in the container's mount namespace, and
//! nothing is split: missing mount points are made in the upper directory. New top-level entries
//! cannot be made; everything below them can.

pub mod batch;
pub mod cdi;
pub mod env;
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
pub use options::{Bind, Net, Options, OptionsError, Overlay, Resources, Verb};
pub use spec::{build, Launch, PlanError, WriteError};
