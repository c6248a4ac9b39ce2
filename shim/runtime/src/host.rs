//! The host's mount table as this process first read it, shared by the cgroup code (where are the
//! v1 hierarchies) and the rootfs code (which hierarchies to mount in the container).
//!
//! `create` reads it once before cloning the init, so the init finds it in its copy of our memory
//! instead of reading /proc/self/mountinfo again. The init's copy of the host's mounts (made by
//! unshare(CLONE_NEWNS)) has the same cgroup mounts, so what it would read says the same about them.

use std::sync::OnceLock;

/// /proc/self/mountinfo, read on the first call.
pub fn mountinfo() -> std::io::Result<&'static str> {
    static TEXT: OnceLock<String> = OnceLock::new();
    if let Some(t) = TEXT.get() {
        return Ok(t);
    }
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(TEXT.get_or_init(|| text))
}
