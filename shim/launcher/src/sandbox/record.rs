//! The result record of a sandboxed run (`--result FILE`, `--json`; docs/sandbox.md holds the
//! schema: add keys, never rename or remove them): what was in force ([`Sandbox::limits`]) and
//! what happened ([`Sandbox::record`], from the [`Outcome`] the supervisor measured).
//!
//! Pure: nothing here touches the system.

use super::{Sandbox, FSIZE, NOFILE};
use serde::Serialize;
use serde_json::{json, Value};
use std::time::Duration;

/// One limit in the record: its value, what enforced it (null: nothing), why not when not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limit {
    pub value: Value,
    pub enforced_by: Option<String>,
    pub reason: Option<String>,
}

impl Limit {
    fn by(value: Value, how: &str) -> Limit {
        Limit {
            value,
            enforced_by: Some(how.into()),
            reason: None,
        }
    }

    fn not(value: Value, why: &str) -> Limit {
        Limit {
            value,
            enforced_by: None,
            reason: Some(why.into()),
        }
    }
}

/// What was in force (`limits` in the record).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limits {
    pub memory_bytes: Limit,
    pub cpus: Limit,
    pub pids: Limit,
    pub timeout_ms: Limit,
    pub output_bytes: Limit,
    pub tmp_bytes: Limit,
    pub fsize_bytes: Limit,
    pub nofile: Limit,
    pub core_bytes: Limit,
    /// Names of the limits above with no enforcer.
    pub not_applied: Vec<String>,
}

impl Sandbox {
    /// `cgroup`: None when the container had one, else why not. `tty`: output went to a terminal
    /// (not capped).
    pub fn limits(&self, cgroup: Option<&str>, tty: bool) -> Limits {
        let r = &self.resources;
        let cg = |v: Value, how: &str| match cgroup {
            None => Limit::by(v, how),
            Some(why) => Limit::not(v, why),
        };
        let pids = match cgroup {
            None => Limit::by(json!(r.pids), "cgroup pids"),
            Some(_) => Limit::by(json!(r.pids), "RLIMIT_NPROC"),
        };
        let memory = match cgroup {
            None => Limit::by(json!(r.memory), "cgroup memory"),
            // Enforced, but per process: the reason says what is missing.
            Some(why) => Limit {
                value: json!(r.memory),
                enforced_by: Some("RLIMIT_DATA (each process)".into()),
                reason: Some(format!("{why}: no limit on all processes together")),
            },
        };
        let output = if tty {
            Limit::not(json!(self.output_limit), "a terminal is not capped")
        } else {
            Limit::by(json!(self.output_limit), "husk (pipes)")
        };
        let mut l = Limits {
            memory_bytes: memory,
            cpus: cg(json!(r.cpus), "cgroup cpu"),
            pids,
            timeout_ms: Limit::by(json!(self.timeout.as_millis() as u64), "husk (SIGKILL)"),
            output_bytes: output,
            tmp_bytes: Limit::by(json!(self.tmp_size), "tmpfs size"),
            fsize_bytes: Limit::by(json!(FSIZE), "RLIMIT_FSIZE"),
            nofile: Limit::by(json!(NOFILE), "RLIMIT_NOFILE"),
            core_bytes: Limit::by(json!(0), "RLIMIT_CORE"),
            not_applied: Vec::new(),
        };
        let named = [
            ("memory_bytes", &l.memory_bytes),
            ("cpus", &l.cpus),
            ("output_bytes", &l.output_bytes),
        ];
        l.not_applied = named
            .iter()
            .filter(|(_, v)| v.enforced_by.is_none())
            .map(|(n, _)| n.to_string())
            .collect();
        l
    }
}

/// The result record (`--result FILE`, `--json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// Shell-style status: the exit code, or 128+N when killed by signal N.
    pub exit_code: i32,
    /// The signal that killed the program ("SIGKILL"), or null.
    pub signal: Option<String>,
    pub timed_out: bool,
    pub oom_killed: bool,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub wall_ms: u64,
    pub cpu_user_ms: u64,
    pub cpu_sys_ms: u64,
    pub peak_memory_bytes: u64,
    /// "cgroup" or "rusage" (getrusage(RUSAGE_CHILDREN) maxrss: the largest single process).
    pub peak_memory_source: String,
    pub limits: Limits,
    /// What Landlock applied.
    pub landlock: LandlockRecord,
    /// The host uid and gid the program ran as (outside its user namespace).
    pub host_uid: u32,
    pub host_gid: u32,
    /// With `--json`: the streams (up to the limit, lossy UTF-8); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
}

/// `landlock` in the record: `abi` (0: the kernel has none), whether it was `enforced`, the
/// `writable` paths, and `reason`: why not enforced, or what an old ABI could not restrict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LandlockRecord {
    pub abi: u32,
    pub enforced: bool,
    pub writable: Vec<String>,
    pub reason: Option<String>,
}

/// Every key the record always has (tests and docs/sandbox.md check against it).
pub const RECORD_KEYS: &[&str] = &[
    "exit_code",
    "signal",
    "timed_out",
    "oom_killed",
    "stdout_truncated",
    "stderr_truncated",
    "stdout_bytes",
    "stderr_bytes",
    "wall_ms",
    "cpu_user_ms",
    "cpu_sys_ms",
    "peak_memory_bytes",
    "peak_memory_source",
    "limits",
    "landlock",
    "host_uid",
    "host_gid",
];

/// One captured stream, as the supervisor saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Bytes the program wrote.
    pub bytes: u64,
    /// More than the output limit was written (the rest was dropped).
    pub truncated: bool,
    /// With `--json`: what was kept (lossy UTF-8).
    pub text: Option<String>,
}

/// What the supervisor learned of a finished run; [`Sandbox::record`] makes the record of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Shell-style status: the exit code, or 128+N when killed by signal N.
    pub exit_code: i32,
    /// The signal that killed the program ("SIGKILL").
    pub signal: Option<String>,
    pub timed_out: bool,
    pub oom_killed: bool,
    pub stdout: Output,
    pub stderr: Output,
    pub wall: Duration,
    pub cpu_user_ms: u64,
    pub cpu_sys_ms: u64,
    /// The cgroup's peak memory, when there was a cgroup that said.
    pub cgroup_peak: Option<u64>,
    /// getrusage(RUSAGE_CHILDREN) maxrss in bytes: the largest single process.
    pub max_rss: u64,
    /// Why there was no cgroup, when there was none ([`no_cgroup_reason`]).
    pub no_cgroup: Option<String>,
    /// What the engine reported of Landlock (None: nothing).
    pub landlock: Option<LandlockRecord>,
    /// The output went to a terminal (not capped).
    pub tty: bool,
    /// The caller's effective uid and gid: the host ids, unless root's sandbox has its own.
    pub caller: (u32, u32),
}

impl Sandbox {
    /// The record of a finished run: peak memory from the cgroup when it had one (else the
    /// largest process's), and the limits that were in force.
    pub fn record(&self, o: Outcome) -> Record {
        let (peak, source) = match o.cgroup_peak {
            Some(p) => (p, "cgroup"),
            None => (o.max_rss, "rusage"),
        };
        Record {
            exit_code: o.exit_code,
            signal: o.signal,
            timed_out: o.timed_out,
            oom_killed: o.oom_killed,
            stdout_truncated: o.stdout.truncated,
            stderr_truncated: o.stderr.truncated,
            stdout_bytes: o.stdout.bytes,
            stderr_bytes: o.stderr.bytes,
            wall_ms: o.wall.as_millis() as u64,
            cpu_user_ms: o.cpu_user_ms,
            cpu_sys_ms: o.cpu_sys_ms,
            peak_memory_bytes: peak,
            peak_memory_source: source.into(),
            limits: self.limits(o.no_cgroup.as_deref(), o.tty),
            landlock: o.landlock.unwrap_or_else(LandlockRecord::unreported),
            host_uid: self.host_id.unwrap_or(o.caller.0),
            host_gid: self.host_id.unwrap_or(o.caller.1),
            stdout: o.stdout.text,
            stderr: o.stderr.text,
        }
    }
}

impl LandlockRecord {
    /// The engine said nothing of Landlock.
    pub fn unreported() -> LandlockRecord {
        LandlockRecord {
            abi: 0,
            enforced: false,
            writable: Vec::new(),
            reason: Some("the engine reported no landlock status".into()),
        }
    }
}

/// The engine's warnings, split: without a cgroup (`enabled` false) its cgroup warning is the
/// reason there is none (said once by the supervisor, with what is applied instead, and kept for
/// the record); returns that reason (None with a cgroup) and the other warnings.
pub fn no_cgroup_reason(warnings: &[String], enabled: bool) -> (Option<String>, Vec<String>) {
    let (why, rest): (Vec<String>, Vec<String>) = warnings
        .iter()
        .cloned()
        .partition(|w| !enabled && w.contains("cgroup"));
    if enabled {
        return (None, rest);
    }
    let why = why
        .into_iter()
        .next()
        .unwrap_or_else(|| "no cgroup (cgroups disabled)".into());
    (Some(why), rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_say_what_was_not_applied() {
        let sb = Sandbox::new("/w".into());
        let l = sb.limits(Some("no cgroup"), false);
        assert_eq!(l.not_applied, vec!["cpus"]);
        assert_eq!(l.pids.enforced_by.as_deref(), Some("RLIMIT_NPROC"));
        assert!(l
            .memory_bytes
            .enforced_by
            .as_deref()
            .unwrap()
            .contains("RLIMIT_DATA"));
        assert!(l.memory_bytes.reason.is_some());
        assert!(sb.limits(None, false).not_applied.is_empty());
    }

    fn outcome() -> Outcome {
        Outcome {
            exit_code: 137,
            signal: Some("SIGKILL".into()),
            timed_out: true,
            oom_killed: false,
            stdout: Output {
                bytes: 10,
                truncated: false,
                text: Some("hi".into()),
            },
            stderr: Output::default(),
            wall: Duration::from_millis(1500),
            cpu_user_ms: 3,
            cpu_sys_ms: 4,
            cgroup_peak: None,
            max_rss: 4096,
            no_cgroup: Some("no cgroup".into()),
            landlock: None,
            tty: false,
            caller: (1000, 1001),
        }
    }

    #[test]
    fn the_record_says_where_numbers_came_from() {
        let mut sb = Sandbox::new("/w".into());
        let r = sb.record(outcome());
        assert_eq!(
            (r.peak_memory_bytes, r.peak_memory_source.as_str()),
            (4096, "rusage")
        );
        assert_eq!((r.host_uid, r.host_gid, r.wall_ms), (1000, 1001, 1500));
        assert_eq!(r.limits.not_applied, vec!["cpus"]);
        assert_eq!(r.landlock, LandlockRecord::unreported());
        assert_eq!(r.stdout.as_deref(), Some("hi"));
        let v = serde_json::to_value(&r).unwrap();
        let keys = v.as_object().unwrap();
        assert!(RECORD_KEYS.iter().all(|k| keys.contains_key(*k)));
        assert!(!keys.contains_key("stderr"));
        sb.host_id = Some(7);
        let o = Outcome {
            cgroup_peak: Some(9),
            no_cgroup: None,
            ..outcome()
        };
        let r = sb.record(o);
        assert_eq!(
            (r.peak_memory_bytes, r.peak_memory_source.as_str()),
            (9, "cgroup")
        );
        assert_eq!((r.host_uid, r.host_gid), (7, 7));
        assert!(r.limits.not_applied.is_empty());
    }

    #[test]
    fn the_cgroup_warning_becomes_the_reason() {
        let w = vec!["cgroup: not delegated".to_string(), "other".to_string()];
        assert_eq!(no_cgroup_reason(&w, true), (None, w.clone()));
        let (why, rest) = no_cgroup_reason(&w, false);
        assert_eq!(why.as_deref(), Some("cgroup: not delegated"));
        assert_eq!(rest, ["other"]);
        let (why, _) = no_cgroup_reason(&[], false);
        assert_eq!(why.as_deref(), Some("no cgroup (cgroups disabled)"));
    }
}
