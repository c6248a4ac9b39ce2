//! `husk instance start|list|stop`: named launcher containers left running in the background.
//! `start` builds the launch like `husk run IMAGE`, then hands it to a watcher (`husk instance
//! __watch NAME`, its own session, stdout and stderr on the instance's log) that creates and
//! starts the container, waits for it to exit or for its TTL to pass, and cleans up
//! ([`crate::supervise::instance`]). `start` returns once the container runs. Files: see
//! [`husk_launcher::instance`].

mod start;

use super::launch::LaunchFlags;
use super::{options, usage};
use crate::cli::Global;
use crate::supervise::instance;
use anyhow::Context;
use clap::{Args, Subcommand};
use husk_launcher::instance::{self as inst, Record};
use husk_runtime::GlobalOptions;
use nix::sys::signal::Signal;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Args)]
pub struct InstanceArgs {
    #[command(subcommand)]
    pub command: InstanceCommand,
}

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// Start IMAGE in the background as instance NAME (prints NAME once it runs)
    Start(Box<StartArgs>),
    /// List instances
    #[command(alias = "ls")]
    List(ListArgs),
    /// Stop instances: the signal, then SIGKILL after the timeout; remove their containers
    /// (an exited instance: its record)
    Stop(StopArgs),
    /// Print an instance's log: its program's stdout and stderr, and the watcher's messages
    Logs(LogsArgs),
    /// The watcher of one instance (started by `instance start`)
    #[command(name = "__watch", hide = true)]
    Watch { name: String },
}

#[derive(Debug, Args)]
#[command(trailing_var_arg = true)]
pub struct StartArgs {
    /// Stop and remove the instance after DURATION (e.g. 90s, 10m, 2h, 1d), even if nobody asks
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Set a variable inside (repeatable)
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// The image (a path such as ./rootfs, or a reference such as docker://alpine)
    pub image: String,
    /// Instance name: 1-64 of [A-Za-z0-9_.-]; its container id is inst-NAME
    pub name: String,
    /// Arguments replacing the image's cmd
    #[arg(allow_hyphen_values = true, value_name = "ARGS")]
    pub args: Vec<String>,
    #[command(flatten)]
    pub launch: LaunchFlags,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print a JSON array instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Instance name
    pub name: String,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Stop every instance
    #[arg(short, long, conflicts_with = "name")]
    pub all: bool,
    /// Signal sent first: KILL, SIGKILL, kill or 9
    #[arg(short, long, default_value = "SIGTERM", value_name = "SIG")]
    pub signal: String,
    /// Seconds to wait after the signal before SIGKILL
    #[arg(short, long, default_value_t = 10, value_name = "SECS")]
    pub timeout: u64,
    /// Instance name
    #[arg(required_unless_present = "all")]
    pub name: Option<String>,
}

pub fn run(g: &Global, a: InstanceArgs) -> anyhow::Result<i32> {
    match a.command {
        InstanceCommand::Start(s) => start::start(g, *s),
        InstanceCommand::List(l) => list(g, l),
        InstanceCommand::Stop(s) => stop(g, s),
        InstanceCommand::Logs(l) => logs(g, l),
        InstanceCommand::Watch { name } => instance::watch(g, &name),
    }
}

/// The instances directory for the current state root, and the global options.
fn base(g: &Global) -> anyhow::Result<(GlobalOptions, PathBuf)> {
    let opts = options(g)?;
    let dir = inst::dir_for(&opts.root);
    Ok((opts, dir))
}

fn stop(g: &Global, a: StopArgs) -> anyhow::Result<i32> {
    let sig = super::kill::parse_signal(&a.signal)
        .ok_or_else(|| usage(format!("instance stop: unknown signal {:?}", a.signal)))?;
    let (opts, dir) = base(g)?;
    crate::supervise::sweep::sweep(&opts);
    let all = inst::records(&dir)?;
    let chosen: Vec<&Record> = match &a.name {
        Some(n) => {
            let r = all.iter().find(|r| &r.name == n);
            vec![r.ok_or_else(|| anyhow::anyhow!("stop instance {n}: no such instance"))?]
        }
        None => all.iter().collect(),
    };
    let t = Duration::from_secs(a.timeout);
    // In parallel: each waits up to the timeout for its program.
    let results: Vec<anyhow::Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = chosen
            .iter()
            .map(|rec| {
                let opts = &opts;
                let dir = &dir;
                s.spawn(move || {
                    instance::remove(opts, dir, rec, sig, t)
                        .with_context(|| format!("stop instance {}", rec.name))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("stop panicked")))
            })
            .collect()
    });
    let mut failed = None;
    for r in results {
        if let Err(e) = r {
            if failed.is_some() {
                log::error!("{e:#}");
            } else {
                failed = Some(e);
            }
        }
    }
    failed.map_or(Ok(0), Err)
}

/// `instance logs NAME`: the log file, kept after stop until the next start of NAME.
fn logs(g: &Global, a: LogsArgs) -> anyhow::Result<i32> {
    inst::validate_name(&a.name).map_err(|e| usage(e.to_string()))?;
    let (_, dir) = base(g)?;
    let log = inst::paths(&dir, &a.name).log;
    let mut f = match std::fs::File::open(&log) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            anyhow::bail!("instance logs {}: no such instance", a.name)
        }
        Err(e) => return Err(e).with_context(|| format!("read {}", log.display())),
    };
    std::io::copy(&mut f, &mut std::io::stdout().lock())
        .with_context(|| format!("read {}", log.display()))?;
    Ok(0)
}

/// RFC 3339 of `secs` since the epoch, as `started` is written.
fn date(secs: u64) -> String {
    husk_runtime::state::rfc3339(secs as i64, 0)
}

/// One row of `list` per instance, each looked up in the engine; an instance found orphaned
/// ([`Record::orphaned`]: its watcher was killed) is stopped instead.
fn rows(opts: &GlobalOptions, dir: &Path) -> anyhow::Result<Vec<Value>> {
    let now = inst::now_secs();
    let mut rows = Vec::new();
    for rec in inst::records(dir)? {
        if rec.orphaned(now) {
            log::warn!(
                "instance {}: past its ttl with no watcher; stopping",
                rec.name
            );
            instance::remove(opts, dir, &rec, Signal::SIGKILL, Duration::ZERO)?;
            continue;
        }
        let (pid, status) = match rec.exit_code {
            Some(_) => (0, "exited".to_string()),
            None => instance::status(opts, &rec),
        };
        rows.push(serde_json::json!({
            "name": rec.name,
            "id": rec.id,
            "pid": pid,
            "image": rec.image,
            "started": rec.started,
            "status": status,
            "exit_code": rec.exit_code,
            "finished": rec.finished,
            "expires": rec.expires.map(date),
            "ttl": rec.expires.map(|e| inst::remaining(e, now)),
            "log": inst::paths(dir, &rec.name).log,
            "watcher": rec.watcher,
        }));
    }
    Ok(rows)
}

/// A table cell: the value's text, "-" for none.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An RFC 3339 date cell, to the second.
fn date_cell(v: &Value) -> String {
    match v.as_str() {
        Some(s) if s.len() > 19 => format!("{}Z", &s[..19]),
        _ => cell(v),
    }
}

fn print_table(rows: &[Value]) {
    let head = ["NAME", "PID", "STATUS", "STARTED", "EXPIRES", "IMAGE"];
    let mut table: Vec<Vec<String>> = vec![head.iter().map(|h| h.to_string()).collect()];
    for r in rows {
        let status = match r["exit_code"].as_i64() {
            Some(code) => format!("exited ({code})"),
            None => cell(&r["status"]),
        };
        let pid = if r["pid"] == 0 {
            "-".into()
        } else {
            cell(&r["pid"])
        };
        table.push(vec![
            cell(&r["name"]),
            pid,
            status,
            date_cell(&r["started"]),
            date_cell(&r["expires"]),
            cell(&r["image"]),
        ]);
    }
    let widths: Vec<usize> = (0..head.len())
        .map(|i| table.iter().map(|row| row[i].len()).max().unwrap_or(0))
        .collect();
    for row in table {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", line.trim_end());
    }
}

fn list(g: &Global, a: ListArgs) -> anyhow::Result<i32> {
    let (opts, dir) = base(g)?;
    let rows = rows(&opts, &dir)?;
    if a.json {
        println!("{}", Value::Array(rows));
    } else {
        print_table(&rows);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<super::InstanceCommand, clap::Error> {
        let cli = Cli::try_parse_from([&["husk", "instance"], args].concat())?;
        match cli.command {
            Some(Command::Instance(a)) => Ok(a.0.command),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn start_takes_launcher_flags_then_image_name_args() {
        let super::InstanceCommand::Start(s) = parse(&[
            "start", "--ttl", "2s", "-C", "./img", "web", "sh", "-c", "x",
        ])
        .unwrap() else {
            panic!("not start")
        };
        assert_eq!(s.ttl.as_deref(), Some("2s"));
        assert!(s.launch.containall);
        assert_eq!((s.image.as_str(), s.name.as_str()), ("./img", "web"));
        assert_eq!(s.args, ["sh", "-c", "x"]);
    }

    #[test]
    fn stop_needs_a_name_or_all_not_both() {
        assert!(parse(&["stop"]).is_err());
        assert!(parse(&["stop", "--all", "web"]).is_err());
        let super::InstanceCommand::Stop(s) =
            parse(&["stop", "-s", "KILL", "-t", "3", "web"]).unwrap()
        else {
            panic!("not stop")
        };
        assert_eq!(
            (s.signal.as_str(), s.timeout, s.name.as_deref()),
            ("KILL", 3, Some("web"))
        );
        assert!(parse(&["stop", "--all"]).is_ok());
    }
}
