//! `husk batch JOBS.jsonl`: many sandboxed jobs, N at a time, one result line each
//! (docs/sandbox.md, "Batches"). Parsing, result lines and the summary are husk_launcher::batch;
//! [`Pool`] runs the jobs, each in its own worker process, `husk batch-job` (hidden): `exec
//! --sandbox --json` with its signals blocked from the start (why one process per job: see
//! [`crate::supervise::pool`]).

use super::usage;
use crate::cli::Global;
use crate::supervise::pool::{self, Pool};
use anyhow::Context;
use clap::Args;
use husk_launcher::batch::{self, Defaults, Limits};
use husk_launcher::options::parse_env;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct BatchArgs {
    /// Jobs, one JSON object per line ("-": stdin); docs/sandbox.md lists the keys
    #[arg(value_name = "JOBS")]
    pub jobs: PathBuf,
    /// Jobs run at once [default: the number of CPUs]
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub parallel: Option<usize>,
    /// Write the result lines (JSON, one per job, in completion order) to FILE [default: stdout]
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write the summary (counts, wall-time percentiles) as JSON to FILE
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    /// Image for the jobs that name none
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Memory limit of each job [default: the sandbox's, 128M]
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPU limit of each job [default: 0.5]
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// Process limit of each job [default: 64]
    #[arg(long, value_name = "N")]
    pub pids_limit: Option<i64>,
    /// Wall-clock limit of each job [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Bytes of each job's stdout and of its stderr kept [default: 1M]
    #[arg(long, value_name = "SIZE")]
    pub output_limit: Option<String>,
    /// Size of each job's /tmp [default: 64M]
    #[arg(long, value_name = "SIZE")]
    pub tmp_size: Option<String>,
    /// Set a variable in every job (repeatable; a job's own "env" wins)
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
}

/// The worker: one job, its record on stdout (see the module comment).
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The batch's pid: when it dies the job is ended (SIGTERM) and cleaned up
    #[arg(long, value_name = "PID")]
    pub parent: i32,
    #[command(flatten)]
    pub exec: super::exec::ExecArgs,
}

fn defaults(a: &BatchArgs) -> anyhow::Result<Defaults> {
    let limits = Limits {
        memory: a.memory.clone(),
        cpus: a.cpus.clone(),
        pids: a.pids_limit.map(|n| n.to_string()),
        timeout: a.timeout.clone(),
        output_limit: a.output_limit.clone(),
        tmp_size: a.tmp_size.clone(),
    };
    if let Err((key, value)) = limits.validate() {
        return Err(usage(format!(
            "batch: --{}: invalid value {value:?}",
            key.replace('_', "-")
        )));
    }
    let mut env = Vec::new();
    for e in &a.env {
        env.push(parse_env(e).map_err(|e| usage(e.to_string()))?);
    }
    Ok(Defaults {
        image: a.image.clone(),
        limits,
        env,
    })
}

fn read_jobs(path: &std::path::Path) -> anyhow::Result<String> {
    let mut text = String::new();
    let r = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text))
    };
    r.map_err(|e| usage(format!("batch: read {}: {e}", path.display())))?;
    Ok(text)
}

pub fn run(g: &Global, a: BatchArgs) -> anyhow::Result<i32> {
    let d = defaults(&a)?;
    let parallel = match a.parallel {
        Some(0) => return Err(usage("batch: -j must be at least 1")),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let jobs = batch::parse_jobs(&read_jobs(&a.jobs)?, &d);
    let out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(
            std::fs::File::create(p)
                .map_err(|e| usage(format!("batch: create --output {}: {e}", p.display())))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let start = Instant::now();
    let bar = crate::progress::Counter::new(jobs.len(), std::io::stderr().is_terminal());
    let ended = Pool::new(g, parallel, out, bar)?.run(jobs.iter())?;
    let summary = ended
        .tally
        .summary(jobs.len(), start.elapsed().as_millis() as u64, ended.signal);
    eprintln!("{summary}");
    if let Some(p) = &a.summary {
        std::fs::write(p, serde_json::to_string_pretty(&summary)? + "\n")
            .with_context(|| format!("write --summary {}", p.display()))?;
    }
    match ended.fatal {
        // The jobs that ran are accounted for; the results may not all have been written.
        Some(e) => {
            log::error!("batch: {e:#}");
            Ok(3)
        }
        None => Ok(summary.exit_status),
    }
}

/// `husk batch-job`: run by [`Pool`], never by hand.
pub fn job(g: &Global, a: JobArgs) -> anyhow::Result<i32> {
    pool::become_worker(a.parent)?;
    if !(a.exec.launch.sandbox.sandbox && a.exec.launch.sandbox.json) {
        return Err(usage("batch-job: runs with --sandbox --json only"));
    }
    super::exec::run(g, a.exec)
}
