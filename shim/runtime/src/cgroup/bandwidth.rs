//! v1 CPU bandwidth pairs (cfs period/quota, rt period/runtime) written in the order the kernel
//! accepts, as runc writes them: the period first, and if the kernel refuses it (EINVAL: with the
//! old quota, the new period would exceed the parent's limit, or the old runtime the new period)
//! the quota next and the period again after it. libcgroups writes a fixed order, so an `update`
//! lowering both failed with EINVAL (runc's "update cpu period in a pod cgroup with pod limit set").

use super::CgroupError;
use oci_spec::runtime::LinuxResources;
use std::path::Path;

fn write(dir: &Path, file: &str, value: &str) -> Result<(), std::io::Error> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join(file))?
        .write_all(value.as_bytes())
}

fn io_err(dir: &Path, file: &str) -> impl FnOnce(std::io::Error) -> CgroupError {
    let path = dir.join(file);
    move |source| CgroupError::Io {
        op: "write",
        path,
        source,
    }
}

/// Writes one pair (both given) in runc's order.
fn write_pair(
    dir: &Path,
    (pfile, period): (&str, u64),
    (qfile, quota): (&str, i64),
) -> Result<(), CgroupError> {
    let period = period.to_string();
    let retry = match write(dir, pfile, &period) {
        Ok(()) => false,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => true,
        Err(e) => return Err(io_err(dir, pfile)(e)),
    };
    write(dir, qfile, &quota.to_string()).map_err(io_err(dir, qfile))?;
    if retry {
        write(dir, pfile, &period).map_err(io_err(dir, pfile))?;
    }
    Ok(())
}

/// Writes the pairs of `r` that give both values into the cpu hierarchy's `dir`, and returns `r`
/// without them (the rest is for libcgroups).
pub fn apply_pairs(dir: &Path, r: &LinuxResources) -> Result<LinuxResources, CgroupError> {
    let Some(cpu) = r.cpu() else {
        return Ok(r.clone());
    };
    let mut rest = cpu.clone();
    if let (Some(p), Some(q)) = (cpu.period(), cpu.quota()) {
        write_pair(dir, ("cpu.cfs_period_us", p), ("cpu.cfs_quota_us", q))?;
        rest.set_period(None);
        rest.set_quota(None);
    }
    if let (Some(p), Some(q)) = (cpu.realtime_period(), cpu.realtime_runtime()) {
        write_pair(dir, ("cpu.rt_period_us", p), ("cpu.rt_runtime_us", q))?;
        rest.set_realtime_period(None);
        rest.set_realtime_runtime(None);
    }
    let mut out = r.clone();
    out.set_cpu(Some(rest));
    Ok(out)
}
