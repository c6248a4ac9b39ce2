//! `husk update`: new resource limits from a JSON file (or stdin) and/or single-value flags.

use super::{context_id, open, usage};
use crate::cli::Global;
use anyhow::Context;
use clap::Args;
use oci_spec::runtime::{LinuxPids, LinuxResources};
use std::io::Read;

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// LinuxResources JSON from FILE, or - for stdin
    #[arg(short, long, value_name = "FILE")]
    pub resources: Option<String>,
    /// Memory limit, e.g. 512M (-1 for unlimited)
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory soft limit (-1 for unlimited)
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (-1 for unlimited)
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// CPU shares (relative weight; runc spells it --cpu-share)
    #[arg(long, visible_alias = "cpu-share")]
    pub cpu_shares: Option<u64>,
    /// CPU CFS quota in microseconds per period
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS period in microseconds
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// Realtime period in microseconds
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    /// Realtime runtime in microseconds
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs allowed, e.g. 0-1
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes allowed
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Maximum number of processes (-1 or 0 for unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Block IO weight (10-1000)
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// Container id
    pub id: String,
}

/// Parses sizes like 512, 64k, 512M, 2g (binary multiples, as runc's units.RAMInBytes); -1 stays -1.
pub fn parse_bytes(s: &str) -> Option<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Some(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1i64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        't' => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.parse().ok()?;
    (n >= 0.0).then_some((n * mult as f64) as i64)
}

fn bytes(flag: &str, v: &Option<String>) -> anyhow::Result<Option<i64>> {
    v.as_deref()
        .map(|s| parse_bytes(s).ok_or_else(|| usage(format!("invalid --{flag} {s:?}"))))
        .transpose()
}

/// The LinuxResources JSON of --resources (FILE, or - for stdin); empty without it.
fn read_resources(src: Option<&str>) -> anyhow::Result<LinuxResources> {
    let Some(src) = src else {
        return Ok(LinuxResources::default());
    };
    let mut data = Vec::new();
    if src == "-" {
        std::io::stdin()
            .read_to_end(&mut data)
            .context("read resources from stdin")?;
    } else {
        data = std::fs::read(src).with_context(|| format!("read {src}"))?;
    }
    serde_json::from_slice(&data).with_context(|| format!("parse resources {src}"))
}

/// --memory, --memory-reservation and --memory-swap over `r`'s memory.
fn set_memory(a: &UpdateArgs, r: &mut LinuxResources) -> anyhow::Result<()> {
    let mut mem = r.memory().unwrap_or_default();
    let limit = bytes("memory", &a.memory)?;
    let reservation = bytes("memory-reservation", &a.memory_reservation)?;
    let swap = bytes("memory-swap", &a.memory_swap)?;
    if limit.or(reservation).or(swap).is_some() {
        if limit.is_some() {
            mem.set_limit(limit);
        }
        if reservation.is_some() {
            mem.set_reservation(reservation);
        }
        if swap.is_some() {
            mem.set_swap(swap);
        }
        r.set_memory(Some(mem));
    }
    Ok(())
}

/// The --cpu-* and --cpuset-* flags over `r`'s cpu.
fn set_cpu(a: &UpdateArgs, r: &mut LinuxResources) {
    let mut cpu = r.cpu().clone().unwrap_or_default();
    let mut cpu_set = false;
    macro_rules! put {
        ($v:expr, $setter:ident) => {
            if let Some(v) = $v.clone() {
                cpu.$setter(Some(v));
                cpu_set = true;
            }
        };
    }
    put!(a.cpu_shares, set_shares);
    put!(a.cpu_quota, set_quota);
    put!(a.cpu_period, set_period);
    put!(a.cpu_rt_period, set_realtime_period);
    put!(a.cpu_rt_runtime, set_realtime_runtime);
    put!(a.cpuset_cpus, set_cpus);
    put!(a.cpuset_mems, set_mems);
    if cpu_set {
        r.set_cpu(Some(cpu));
    }
}

fn resources(a: &UpdateArgs) -> anyhow::Result<LinuxResources> {
    let mut r = read_resources(a.resources.as_deref())?;
    set_memory(a, &mut r)?;
    set_cpu(a, &mut r);
    if let Some(p) = a.pids_limit {
        let mut pids = LinuxPids::default();
        pids.set_limit(if p <= 0 { -1 } else { p });
        r.set_pids(Some(pids));
    }
    if let Some(w) = a.blkio_weight {
        let mut b = r.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    Ok(r)
}

pub fn run(g: &Global, a: UpdateArgs) -> anyhow::Result<i32> {
    let r = resources(&a)?;
    let (_, c) = open(g, &a.id)?;
    context_id(husk_runtime::container::update(&c, &r), "update", &a.id)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512"), Some(512));
        assert_eq!(parse_bytes("64k"), Some(65536));
        assert_eq!(parse_bytes("512M"), Some(512 << 20));
        assert_eq!(parse_bytes("2g"), Some(2 << 30));
        assert_eq!(parse_bytes("1.5G"), Some(3 << 29));
        assert_eq!(parse_bytes("-1"), Some(-1));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("-5"), None);
    }
}
