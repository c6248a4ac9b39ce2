//! libcgroups' statistics turned into the "data" object of runc's `events --stats` (runc's
//! `types/events.go`), which containerd and other clients decode.
//!
//! Field names and `omitempty` behaviour follow runc: zero counters tagged `omitempty` there are left
//! out here too, so a consumer sees the same JSON. Omitted on purpose: `cpuset`, `intel_rdt`,
//! `network_interfaces` (husk does not collect them; Go decoders treat a missing key as zero).

use std::collections::{BTreeMap, HashMap};

use libcgroups::stats::{BlkioDeviceStat, MemoryData, Stats as LibStats};
use serde::Serialize;

fn zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Default, Serialize)]
pub struct RuncStats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

#[derive(Debug, Default, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Debug, Default, Serialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "zero")]
    pub throttled_periods: u64,
    #[serde(skip_serializing_if = "zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Memory {
    #[serde(skip_serializing_if = "zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Serialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "zero")]
    pub limit: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "zero")]
    pub value: u64,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Default, Serialize)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

fn memory_entry(d: &MemoryData) -> MemoryEntry {
    MemoryEntry {
        limit: d.limit,
        usage: d.usage,
        max: d.max_usage,
        failcnt: d.fail_count,
    }
}

fn blkio_entries(v: &[BlkioDeviceStat]) -> Vec<BlkioEntry> {
    v.iter()
        .map(|d| BlkioEntry {
            major: d.major,
            minor: d.minor,
            op: d.op_type.clone().unwrap_or_default(),
            value: d.value,
        })
        .collect()
}

fn sorted<V: Copy>(m: &HashMap<String, V>) -> BTreeMap<String, V> {
    m.iter().map(|(k, v)| (k.clone(), *v)).collect()
}

impl From<&LibStats> for RuncStats {
    fn from(s: &LibStats) -> Self {
        let u = &s.cpu.usage;
        let t = &s.cpu.throttling;
        let b = &s.blkio;
        RuncStats {
            cpu: Cpu {
                usage: CpuUsage {
                    total: u.usage_total,
                    percpu: u.per_core_usage_total.clone(),
                    percpu_kernel: u.per_core_usage_kernel.clone(),
                    percpu_user: u.per_core_usage_user.clone(),
                    kernel: u.usage_kernel,
                    user: u.usage_user,
                },
                throttling: Throttling {
                    periods: t.periods,
                    throttled_periods: t.throttled_periods,
                    throttled_time: t.throttled_time,
                },
            },
            memory: Memory {
                cache: s.memory.cache,
                usage: memory_entry(&s.memory.memory),
                swap: memory_entry(&s.memory.memswap),
                kernel: memory_entry(&s.memory.kernel),
                kernel_tcp: memory_entry(&s.memory.kernel_tcp),
                raw: sorted(&s.memory.stats),
            },
            pids: Pids {
                current: s.pids.current,
                limit: s.pids.limit,
            },
            blkio: Blkio {
                io_service_bytes_recursive: blkio_entries(&b.service_bytes),
                io_serviced_recursive: blkio_entries(&b.serviced),
                io_queued_recursive: blkio_entries(&b.queued),
                io_service_time_recursive: blkio_entries(&b.service_time),
                io_wait_time_recursive: blkio_entries(&b.wait_time),
                io_merged_recursive: blkio_entries(&b.merged),
                io_time_recursive: blkio_entries(&b.time),
                sectors_recursive: blkio_entries(&b.sectors),
            },
            hugetlb: s
                .hugetlb
                .iter()
                .map(|(size, h)| {
                    let e = Hugetlb {
                        usage: h.usage,
                        max: h.max_usage,
                        failcnt: h.fail_count,
                    };
                    (size.clone(), e)
                })
                .collect(),
        }
    }
}

/// Brings libcgroups' CPU times to runc's unit, nanoseconds. libcgroups passes the kernel's numbers
/// through: v1 cpuacct.stat user/system are in USER_HZ ticks, v2 cpu.stat in microseconds (runc
/// converts both; cpuacct.usage and the per-CPU files are already nanoseconds).
pub fn to_nanoseconds(s: &mut LibStats, v1: bool) {
    let u = &mut s.cpu.usage;
    if v1 {
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .filter(|t| *t > 0)
            .unwrap_or(100) as u64;
        let per_tick = 1_000_000_000 / ticks;
        u.usage_user = u.usage_user.saturating_mul(per_tick);
        u.usage_kernel = u.usage_kernel.saturating_mul(per_tick);
    } else {
        for v in [&mut u.usage_total, &mut u.usage_user, &mut u.usage_kernel] {
            *v = v.saturating_mul(1000);
        }
        let t = &mut s.cpu.throttling.throttled_time;
        *t = t.saturating_mul(1000);
    }
}

/// The runc-shaped JSON value for libcgroups' statistics (already in runc's units).
pub fn to_json(s: &LibStats) -> serde_json::Value {
    serde_json::to_value(RuncStats::from(s)).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use libcgroups::stats::HugeTlbStats;
    use serde_json::json;

    #[test]
    fn cpu_times_become_nanoseconds() {
        let mut s = LibStats::default();
        s.cpu.usage.usage_total = 3;
        s.cpu.usage.usage_user = 2;
        s.cpu.throttling.throttled_time = 1;
        to_nanoseconds(&mut s, false);
        assert_eq!(s.cpu.usage.usage_total, 3000);
        assert_eq!(s.cpu.usage.usage_user, 2000);
        assert_eq!(s.cpu.throttling.throttled_time, 1000);

        let mut s = LibStats::default();
        s.cpu.usage.usage_total = 5;
        s.cpu.usage.usage_user = 2;
        to_nanoseconds(&mut s, true);
        assert_eq!(s.cpu.usage.usage_total, 5, "cpuacct.usage is already ns");
        assert!(
            s.cpu.usage.usage_user >= 2_000_000,
            "ticks are at least 1 ms"
        );
    }

    #[test]
    fn empty_stats_have_runc_shape() {
        let v = to_json(&LibStats::default());
        assert_eq!(
            v,
            json!({
                "cpu": {"usage": {"kernel": 0, "user": 0}, "throttling": {}},
                "memory": {
                    "usage": {"limit": 0, "failcnt": 0},
                    "swap": {"limit": 0, "failcnt": 0},
                    "kernel": {"limit": 0, "failcnt": 0},
                    "kernelTCP": {"limit": 0, "failcnt": 0}
                },
                "pids": {},
                "blkio": {},
                "hugetlb": {}
            })
        );
    }

    #[test]
    fn filled_stats_use_runc_names() {
        let mut s = LibStats::default();
        s.cpu.usage.usage_total = 100;
        s.cpu.usage.usage_user = 60;
        s.cpu.usage.usage_kernel = 40;
        s.cpu.usage.per_core_usage_total = vec![70, 30];
        s.cpu.throttling.periods = 5;
        s.cpu.throttling.throttled_periods = 2;
        s.cpu.throttling.throttled_time = 9;
        s.memory.memory.usage = 4096;
        s.memory.memory.max_usage = 8192;
        s.memory.memory.limit = 1 << 20;
        s.memory.memory.fail_count = 1;
        s.memory.cache = 7;
        s.memory.stats.insert("rss".into(), 11);
        s.pids.current = 3;
        s.pids.limit = 10;
        s.blkio.service_bytes.push(BlkioDeviceStat {
            major: 8,
            minor: 0,
            op_type: Some("Read".into()),
            value: 512,
        });
        s.hugetlb.insert(
            "2MB".into(),
            HugeTlbStats {
                usage: 0,
                max_usage: 0,
                fail_count: 0,
            },
        );
        let v = to_json(&s);
        assert_eq!(
            v["cpu"],
            json!({
                "usage": {"total": 100, "percpu": [70, 30], "kernel": 40, "user": 60},
                "throttling": {"periods": 5, "throttledPeriods": 2, "throttledTime": 9}
            })
        );
        assert_eq!(
            v["memory"]["usage"],
            json!({"limit": 1048576, "usage": 4096, "max": 8192, "failcnt": 1})
        );
        assert_eq!(v["memory"]["cache"], 7);
        assert_eq!(v["memory"]["raw"], json!({"rss": 11}));
        assert_eq!(v["pids"], json!({"current": 3, "limit": 10}));
        assert_eq!(
            v["blkio"],
            json!({"ioServiceBytesRecursive": [{"major": 8, "op": "Read", "value": 512}]})
        );
        assert_eq!(v["hugetlb"], json!({"2MB": {"failcnt": 0}}));
    }
}
