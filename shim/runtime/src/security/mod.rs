//! Process security: seccomp, capabilities, identity, rlimits, no_new_privs, Landlock.
//!
//! CONTRACT (used by process/init in this order, in the container child, after pivot_root):
//! `rlimit::apply` → `caps::drop_bounding` → `identity::switch` (keeps caps across setuid) →
//! `caps::apply_sets` → `set_no_new_privs` (if asked) → `seccomp::Program::load` → execve.
//! `seccomp::compile` runs in the parent (before clone) and may use an on-disk cache.
//! Exec into a running container makes the same calls.
//!
//! Kernel rule for the last two steps (seccomp(2)): installing a filter needs no_new_privs or
//! CAP_SYS_ADMIN in the effective set. With `noNewPrivileges: false` and a process that does not
//! keep CAP_SYS_ADMIN, the filter has to be loaded before `caps::apply_sets` (runc loads it before
//! dropping capabilities in that case); `Program::load` returns
//! [`seccomp::SeccompError::NeedsNoNewPrivs`] when the order is wrong.

pub mod apparmor;
pub mod caps;
pub mod identity;
pub mod landlock;
pub mod rlimit;
pub mod seccomp;

#[cfg(test)]
mod privileged_tests;
#[cfg(test)]
pub(crate) mod testutil;

/// Errors of the security module.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("set no_new_privs: {0}")]
    NoNewPrivs(nix::Error),
}

/// prctl(PR_SET_NO_NEW_PRIVS, 1).
pub fn set_no_new_privs() -> Result<(), SecurityError> {
    nix::sys::prctl::set_no_new_privs().map_err(SecurityError::NoNewPrivs)
}
