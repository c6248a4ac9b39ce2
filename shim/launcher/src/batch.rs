//! `husk batch JOBS.jsonl`: the pure half. One JSON object per line is a job; [`parse_jobs`] turns
//! the lines into validated [`Job`]s (or a [`JobError`] that becomes that job's result line),
//! [`Job::exec_args`] into the `exec --sandbox` flags its worker runs with, and a finished job's
//! record into a [`Status`], a result line ([`worker_result`]) and, over the batch, a [`Summary`]
//! (docs/sandbox.md, "Batches", holds the formats).
//!
//! Pure: nothing here touches the system.

use crate::image::is_image_arg;
use crate::options::{parse_cpus, parse_memory};
use crate::sandbox::{parse_duration, parse_size};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

mod worker;

pub use worker::{
    scratch_name, scratch_owner, worker_log, worker_result, Finished, LogLine, WorkerLog,
};

/// What is wrong with one input line; the line's result line carries the message.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum JobError {
    #[error("line {line}: not a JSON object: {reason}")]
    Json { line: usize, reason: String },
    #[error("line {line}: id must be a string or an integer")]
    Id { line: usize },
    #[error("line {line}: {reason}")]
    Field { line: usize, reason: String },
    #[error("line {line}: id {id} is used by line {first} too")]
    Duplicate {
        line: usize,
        id: String,
        first: usize,
    },
    #[error("line {line}: no image (give \"image\" or --image)")]
    NoImage { line: usize },
    #[error("line {line}: image {image:?} is not an image (a path such as ./rootfs or oci:DIR)")]
    NotImage { line: usize, image: String },
    #[error("line {line}: give exactly one of \"command\" (an array) and \"cmd\" (a string)")]
    Command { line: usize },
    #[error("line {line}: files: {path:?} is not a relative path inside the workspace")]
    FilePath { line: usize, path: String },
    #[error("line {line}: \"files\" and \"workspace\" cannot both be given")]
    FilesAndWorkspace { line: usize },
    #[error("line {line}: workspace {path:?} must be an absolute path")]
    Workspace { line: usize, path: PathBuf },
    #[error("line {line}: env: invalid variable name {name:?}")]
    Env { line: usize, name: String },
    #[error("line {line}: {what} holds a NUL byte")]
    Nul { line: usize, what: &'static str },
    #[error("line {line}: limits.{key}: invalid value {value}")]
    Limit {
        line: usize,
        key: &'static str,
        value: String,
    },
}

/// The sandbox limits of a job, validated, in the flags' own syntax.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    pub memory: Option<String>,
    pub cpus: Option<String>,
    pub pids: Option<String>,
    pub timeout: Option<String>,
    pub output_limit: Option<String>,
    pub tmp_size: Option<String>,
}

impl Limits {
    /// Checks each value with the sandbox flag's parser; `key` names the failing one.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let check = |key: &'static str, v: &Option<String>, ok: &dyn Fn(&str) -> bool| match v {
            Some(s) if !ok(s) => Err((key, s.clone())),
            _ => Ok(()),
        };
        check("memory", &self.memory, &|s| parse_memory(s).is_ok())?;
        check("cpus", &self.cpus, &|s| parse_cpus(s).is_ok())?;
        check("pids", &self.pids, &|s| {
            s.parse::<i64>().is_ok_and(|n| n > 0)
        })?;
        check("timeout", &self.timeout, &|s| parse_duration(s).is_ok())?;
        let size = |s: &str| parse_size(s).is_ok_and(|n| n > 0);
        check("output_limit", &self.output_limit, &size)?;
        check("tmp_size", &self.tmp_size, &size)
    }

    /// `self`, with `defaults` where `self` has nothing.
    fn or(&self, d: &Limits) -> Limits {
        let pick = |a: &Option<String>, b: &Option<String>| a.clone().or_else(|| b.clone());
        Limits {
            memory: pick(&self.memory, &d.memory),
            cpus: pick(&self.cpus, &d.cpus),
            pids: pick(&self.pids, &d.pids),
            timeout: pick(&self.timeout, &d.timeout),
            output_limit: pick(&self.output_limit, &d.output_limit),
            tmp_size: pick(&self.tmp_size, &d.tmp_size),
        }
    }
}

/// What the command line gives every job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Defaults {
    pub image: Option<String>,
    pub limits: Limits,
    pub env: Vec<(String, String)>,
}

/// One validated job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// As given (a string or an integer), or the line number.
    pub id: Value,
    /// 1-based line of the input.
    pub line: usize,
    pub image: String,
    pub argv: Vec<String>,
    pub stdin: Option<String>,
    /// Relative paths (checked) and their contents, for a fresh workspace.
    pub files: Vec<(PathBuf, String)>,
    /// An existing directory to bind instead of a fresh workspace.
    pub workspace: Option<PathBuf>,
    /// The defaults' variables, then the job's (the job's win).
    pub env: BTreeMap<String, String>,
    /// The job's limits, then the defaults'.
    pub limits: Limits,
}

/// A line, or an error that is its result; `id` is known either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub id: Value,
    pub job: Result<Job, JobError>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    /// Read before (see [`parse_line`]); listed so that it is a known key.
    #[serde(default, rename = "id")]
    _id: Value,
    image: Option<String>,
    command: Option<Vec<String>>,
    cmd: Option<String>,
    stdin: Option<String>,
    files: Option<BTreeMap<String, String>>,
    workspace: Option<PathBuf>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    limits: LineLimits,
}

/// A limit may be written as a string in the flag's syntax or as a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Number(serde_json::Number),
}

impl Scalar {
    fn text(self) -> String {
        match self {
            Scalar::Text(s) => s,
            Scalar::Number(n) => n.to_string(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LineLimits {
    memory: Option<Scalar>,
    cpus: Option<Scalar>,
    pids: Option<Scalar>,
    timeout: Option<Scalar>,
    output_limit: Option<Scalar>,
    tmp_size: Option<Scalar>,
}

impl LineLimits {
    fn limits(self) -> Limits {
        Limits {
            memory: self.memory.map(Scalar::text),
            cpus: self.cpus.map(Scalar::text),
            pids: self.pids.map(Scalar::text),
            timeout: self.timeout.map(Scalar::text),
            output_limit: self.output_limit.map(Scalar::text),
            tmp_size: self.tmp_size.map(Scalar::text),
        }
    }
}

/// Every non-blank line of `text` as a job; ids are unique (a repeated id is that line's error).
pub fn parse_jobs(text: &str, d: &Defaults) -> Vec<Parsed> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let line = i + 1;
        let mut p = parse_line(l, line, d);
        let key = p.id.to_string();
        match seen.get(&key) {
            Some(&first) => {
                p.job = Err(JobError::Duplicate {
                    line,
                    id: key,
                    first,
                })
            }
            None => {
                seen.insert(key, line);
            }
        }
        out.push(p);
    }
    out
}

/// One line: its id (the line number when it has none, or none that can be read) and the job.
pub fn parse_line(text: &str, line: usize, d: &Defaults) -> Parsed {
    let value: Value = match serde_json::from_str(text) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            let reason = "want an object".into();
            return failed(json!(line), JobError::Json { line, reason });
        }
        Err(e) => {
            let reason = e.to_string();
            return failed(json!(line), JobError::Json { line, reason });
        }
    };
    let id = match &value["id"] {
        Value::Null => json!(line),
        v @ Value::String(_) => v.clone(),
        v @ Value::Number(n) if n.is_i64() || n.is_u64() => v.clone(),
        _ => return failed(json!(line), JobError::Id { line }),
    };
    let job = serde_json::from_value::<Line>(value)
        .map_err(|e| JobError::Field {
            line,
            reason: e.to_string(),
        })
        .and_then(|l| validate(l, id.clone(), line, d));
    Parsed { id, job }
}

fn failed(id: Value, e: JobError) -> Parsed {
    Parsed { id, job: Err(e) }
}

fn validate(l: Line, id: Value, line: usize, d: &Defaults) -> Result<Job, JobError> {
    let image = l
        .image
        .or_else(|| d.image.clone())
        .ok_or(JobError::NoImage { line })?;
    if !is_image_arg(&image) {
        return Err(JobError::NotImage { line, image });
    }
    let argv = argv(l.command, l.cmd, line)?;
    let files = files(l.files.as_ref(), l.workspace.as_deref(), line)?;
    let env = env(l.env, &d.env, line)?;
    let limits = l.limits.limits();
    limits
        .validate()
        .map_err(|(key, value)| JobError::Limit { line, key, value })?;
    Ok(Job {
        id,
        line,
        image,
        argv,
        stdin: l.stdin,
        files,
        workspace: l.workspace,
        env,
        limits: limits.or(&d.limits),
    })
}

/// `Nul` when `s` holds a NUL byte.
fn no_nul(line: usize, what: &'static str, s: &str) -> Result<(), JobError> {
    if s.contains('\0') {
        Err(JobError::Nul { line, what })
    } else {
        Ok(())
    }
}

/// "command" as given, or "cmd" run by /bin/sh -c: exactly one of them.
fn argv(
    command: Option<Vec<String>>,
    cmd: Option<String>,
    line: usize,
) -> Result<Vec<String>, JobError> {
    let argv = match (command, cmd) {
        (Some(c), None) if !c.is_empty() => c,
        (None, Some(s)) => vec!["/bin/sh".into(), "-c".into(), s],
        _ => return Err(JobError::Command { line }),
    };
    for a in &argv {
        no_nul(line, "command", a)?;
    }
    Ok(argv)
}

/// "files" (relative paths) and "workspace" (absolute), never both.
fn files(
    files: Option<&BTreeMap<String, String>>,
    workspace: Option<&Path>,
    line: usize,
) -> Result<Vec<(PathBuf, String)>, JobError> {
    let mut out = Vec::new();
    for (path, content) in files.into_iter().flatten() {
        out.push((
            relative(path).ok_or_else(|| JobError::FilePath {
                line,
                path: path.clone(),
            })?,
            content.clone(),
        ));
    }
    if files.is_some() && workspace.is_some() {
        return Err(JobError::FilesAndWorkspace { line });
    }
    if let Some(w) = workspace {
        if !w.is_absolute() {
            return Err(JobError::Workspace {
                line,
                path: w.to_path_buf(),
            });
        }
    }
    Ok(out)
}

/// The batch's variables, then the job's own (which win).
fn env(
    job: BTreeMap<String, String>,
    defaults: &[(String, String)],
    line: usize,
) -> Result<BTreeMap<String, String>, JobError> {
    let mut env: BTreeMap<String, String> = defaults.iter().cloned().collect();
    for (k, v) in job {
        if k.is_empty() || k.contains(['=', '\0']) || k.contains(char::is_whitespace) {
            return Err(JobError::Env { line, name: k });
        }
        no_nul(line, "env", &v)?;
        env.insert(k, v);
    }
    Ok(env)
}

/// `path` if it is relative, names a file (not `.` or empty) and never leaves its base.
fn relative(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    let mut normal = 0;
    for c in p.components() {
        match c {
            Component::Normal(_) => normal += 1,
            Component::CurDir => {}
            _ => return None,
        }
    }
    (normal > 0 && !path.contains('\0') && !path.ends_with('/')).then(|| p.to_path_buf())
}

impl Job {
    /// The flags of `husk exec` for this job (`--sandbox --json` first), then IMAGE -- ARGV.
    pub fn exec_args(&self, workspace: &Path) -> Vec<String> {
        let mut a: Vec<String> = ["--sandbox", "--json", "--workspace"]
            .map(String::from)
            .into();
        a.push(workspace.to_string_lossy().into_owned());
        let l = &self.limits;
        for (flag, v) in [
            ("--memory", &l.memory),
            ("--cpus", &l.cpus),
            ("--pids-limit", &l.pids),
            ("--timeout", &l.timeout),
            ("--output-limit", &l.output_limit),
            ("--tmp-size", &l.tmp_size),
        ] {
            if let Some(v) = v {
                a.push(flag.into());
                a.push(v.clone());
            }
        }
        for (k, v) in &self.env {
            a.push("--env".into());
            a.push(format!("{k}={v}"));
        }
        a.push(self.image.clone());
        a.push("--".into());
        a.extend(self.argv.iter().cloned());
        a
    }
}

/// How a job ended; each job counts under exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Exit status 0.
    Passed,
    /// Another exit status, or killed by a signal (not the timeout, not the OOM killer).
    Failed,
    TimedOut,
    Oom,
    /// Could not be run: a bad line, image or workspace; `error` says why.
    Error,
    /// Running when the batch was interrupted.
    Interrupted,
}

impl Status {
    /// From a sandbox result record: the timeout first, then the OOM killer, then the exit code.
    pub fn of(record: &Map<String, Value>) -> Status {
        if record.get("timed_out") == Some(&Value::Bool(true)) {
            Status::TimedOut
        } else if record.get("oom_killed") == Some(&Value::Bool(true)) {
            Status::Oom
        } else if record.get("exit_code").and_then(Value::as_i64) == Some(0) {
            Status::Passed
        } else {
            Status::Failed
        }
    }
}

/// One output line (no newline): `id`, `status`, `error` when there is no record (or it is
/// incomplete), then the record's keys.
pub fn result_line(
    id: &Value,
    status: Status,
    error: Option<&str>,
    record: Option<Map<String, Value>>,
) -> String {
    let mut head = Map::new();
    head.insert("id".into(), id.clone());
    head.insert("status".into(), json!(status));
    if let Some(e) = error {
        head.insert("error".into(), json!(e));
    }
    let mut text = String::from("{");
    let fields = ["id", "status", "error"]
        .iter()
        .filter_map(|k| Some((k.to_string(), head.get(*k)?.clone())))
        .chain(
            record
                .into_iter()
                .flatten()
                .filter(|(k, _)| !head.contains_key(k)),
        );
    for (n, (k, v)) in fields.enumerate() {
        if n > 0 {
            text.push(',');
        }
        text.push_str(&Value::String(k).to_string());
        text.push(':');
        text.push_str(&v.to_string());
    }
    text.push('}');
    text
}

/// Counts over a batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
    pub timed_out: usize,
    pub oom: usize,
    pub errors: usize,
    pub interrupted: usize,
    /// `wall_ms` of every job that has a record.
    walls: Vec<u64>,
}

impl Tally {
    pub fn add(&mut self, s: Status, wall_ms: Option<u64>) {
        let n = match s {
            Status::Passed => &mut self.passed,
            Status::Failed => &mut self.failed,
            Status::TimedOut => &mut self.timed_out,
            Status::Oom => &mut self.oom,
            Status::Error => &mut self.errors,
            Status::Interrupted => &mut self.interrupted,
        };
        *n += 1;
        self.walls.extend(wall_ms);
    }

    /// Jobs with a result line.
    pub fn done(&self) -> usize {
        self.passed + self.failed + self.timed_out + self.oom + self.errors + self.interrupted
    }

    /// Every job that did not pass.
    pub fn not_passed(&self) -> usize {
        self.done() - self.passed
    }

    /// husk batch's exit status: 128+N when interrupted by signal N; else 3 when a job could not
    /// be run; else 1 when a job failed (exit status, signal, timeout, OOM); else 0.
    pub fn exit_status(&self, interrupted_by: Option<i32>) -> i32 {
        match interrupted_by {
            Some(sig) => 128 + sig,
            None if self.errors > 0 => 3,
            None if self.not_passed() > 0 => 1,
            None => 0,
        }
    }

    pub fn summary(&self, total: usize, elapsed_ms: u64, interrupted_by: Option<i32>) -> Summary {
        let mut w = self.walls.clone();
        w.sort_unstable();
        Summary {
            total,
            passed: self.passed,
            failed: self.failed,
            timed_out: self.timed_out,
            oom: self.oom,
            errors: self.errors,
            interrupted: self.interrupted,
            not_started: total.saturating_sub(self.done()),
            wall_ms: Walls {
                p50: percentile(&w, 50),
                p95: percentile(&w, 95),
                max: w.last().copied(),
            },
            elapsed_ms,
            jobs_per_second: if elapsed_ms == 0 {
                0.0
            } else {
                (self.done() as f64 * 1000.0 / elapsed_ms as f64 * 10.0).round() / 10.0
            },
            exit_status: self.exit_status(interrupted_by),
        }
    }
}

/// The batch's summary (stderr as one line, `--summary FILE` as JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    pub timed_out: usize,
    pub oom: usize,
    pub errors: usize,
    pub interrupted: usize,
    pub not_started: usize,
    pub wall_ms: Walls,
    pub elapsed_ms: u64,
    pub jobs_per_second: f64,
    pub exit_status: i32,
}

/// Percentiles of the jobs' `wall_ms` (null with no job run).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Walls {
    pub p50: Option<u64>,
    pub p95: Option<u64>,
    pub max: Option<u64>,
}

/// The nearest-rank percentile `p` (1..=100) of ascending `sorted`.
pub fn percentile(sorted: &[u64], p: u32) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p as usize * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v} ms"));
        write!(
            f,
            "batch: {} of {} jobs in {:.1} s ({} jobs/s): {} passed, {} failed, {} timed out, \
             {} OOM, {} errors",
            self.total - self.not_started,
            self.total,
            self.elapsed_ms as f64 / 1000.0,
            self.jobs_per_second,
            self.passed,
            self.failed,
            self.timed_out,
            self.oom,
            self.errors,
        )?;
        if self.interrupted > 0 || self.not_started > 0 {
            write!(
                f,
                ", {} interrupted, {} not started",
                self.interrupted, self.not_started
            )?;
        }
        write!(
            f,
            "; wall p50 {}, p95 {}",
            ms(self.wall_ms.p50),
            ms(self.wall_ms.p95)
        )
    }
}

#[cfg(test)]
mod tests;
