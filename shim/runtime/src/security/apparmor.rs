//! AppArmor: `process.apparmorProfile` is applied the way the kernel offers it to any process,
//! by writing `exec PROFILE` to its own attr/exec file; the profile takes effect at execve. On a
//! host without AppArmor the write fails and so does the container, as with runc: a requested
//! profile is never silently dropped.

#[derive(Debug, thiserror::Error)]
#[error("apply AppArmor profile {profile:?} (is AppArmor enabled on this host?): {source}")]
pub struct AppArmorError {
    pub profile: String,
    pub source: std::io::Error,
}

/// Sets the profile the next execve switches to.
pub fn apply(profile: &str) -> Result<(), AppArmorError> {
    let line = format!("exec {profile}");
    // Newer kernels have a per-LSM directory; older ones only the shared attr file.
    std::fs::write("/proc/self/attr/apparmor/exec", &line)
        .or_else(|_| std::fs::write("/proc/self/attr/exec", &line))
        .map_err(|source| AppArmorError {
            profile: profile.to_string(),
            source,
        })
}
