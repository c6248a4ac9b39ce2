//! husk's container engine.
//!
//! All mechanism lives here; the `husk` binary only parses flags and prints. This crate never prints,
//! never exits the calling process (the forked container child `_exit`s, which is not the caller) and
//! never reads argv.
//!
//! Flow of `create`: [`spec`] loads and validates config.json, [`rootfs`] turns it into a mount plan,
//! [`security`] compiles seccomp in the parent, [`process`] clones the init straight into its new
//! namespaces and walks it through numbered sync points, [`cgroup`] places it, and [`state`] records it.
//! [`container`] is the facade the CLI calls.

pub mod cgroup;
pub mod container;
#[doc(hidden)]
pub mod fuzzing;
pub mod host;
pub mod ns;
pub mod process;
pub mod rootfs;
pub mod security;
pub mod spec;
pub mod state;
#[allow(unsafe_code)]
pub mod sys;

pub use container::{Container, CreateOptions, ExecOptions, GlobalOptions};
