//! `husk instance start|list|stop`: named launcher containers left running in the background.
//! `start` builds the launch like `husk run IMAGE`, then hands it to a watcher (`husk instance
//! __watch NAME`, its own session, stdout and stderr on the instance's log) that creates and
//! starts the container, waits for it to exit or for its TTL to pass, and cleans up. `start`
//! returns once the container runs. Files: see [`husk_launcher::instance`].

mod watch;

use super::launch::LaunchFlags;
use super::{options, usage};
use crate::cli::Global;
use anyhow::Context;
use clap::{Args, Subcommand};
use husk_launcher::instance::{self as inst, Record};
use husk_runtime::container::{delete, kill, wait_exit, ContainerError};
use husk_runtime::state::{StateError, Status};
use husk_runtime::{Container, GlobalOptions};
use nix::sys::signal::Signal;
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
    Stop(StopArgs),
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
        InstanceCommand::Start(s) => watch::start(g, *s),
        InstanceCommand::List(l) => list(g, l),
        InstanceCommand::Stop(s) => stop(g, s),
        InstanceCommand::Watch { name } => watch::watch(g, &name),
    }
}

/// The instances directory for the current state root, and the global options.
fn base(g: &Global) -> anyhow::Result<(GlobalOptions, PathBuf)> {
    let opts = options(g)?;
    let dir = inst::dir_for(&opts.root);
    Ok((opts, dir))
}

fn read_record(path: &Path) -> anyhow::Result<Record> {
    let data = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&data).with_context(|| format!("parse {}", path.display()))
}

/// Writes by temp file + rename, so readers never see half a record.
fn write_record(dir: &Path, rec: &Record) -> anyhow::Result<()> {
    let p = inst::paths(dir, &rec.name);
    let tmp = dir.join(format!(".{}.json.tmp", rec.name));
    std::fs::write(&tmp, serde_json::to_vec(rec)?)
        .with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, &p.record).with_context(|| format!("write {}", p.record.display()))
}

/// Every record in `dir`, by name.
fn records(dir: &Path) -> anyhow::Result<Vec<Record>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("read {}", dir.display())),
    };
    let mut out: Vec<Record> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| read_record(&p).ok())
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Serialises cleanups of `dir` (stop vs. the watcher seeing the exit).
fn lock(dir: &Path) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    let path = dir.join(".lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .with_context(|| format!("lock {}", path.display()))
}

fn open_container(opts: &GlobalOptions, id: &str) -> anyhow::Result<Option<Container>> {
    match Container::open(opts, id) {
        Ok(c) => Ok(Some(c)),
        Err(ContainerError::State(StateError::NotFound(_))) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Sends `sig`, waits up to `timeout`, then SIGKILLs every process; deletes the container.
fn stop_container(
    opts: &GlobalOptions,
    id: &str,
    sig: Signal,
    timeout: Duration,
) -> anyhow::Result<()> {
    let Some(c) = open_container(opts, id)? else {
        return Ok(());
    };
    if matches!(c.status(), Status::Running | Status::Created) {
        if let Err(e) = kill(&c, sig, false) {
            log::debug!("signal container {id}: {e}");
        }
        if wait_exit(&c, timeout).is_err() {
            log::info!("container {id} still running after {timeout:?}: SIGKILL");
            if let Err(e) = kill(&c, Signal::SIGKILL, true) {
                log::debug!("kill container {id}: {e}");
            }
        }
    }
    match delete(&c, true) {
        Ok(w) => super::warn_all(&w),
        Err(ContainerError::State(StateError::NotFound(_))) => {}
        Err(e) => return Err(e).with_context(|| format!("delete container {id}")),
    }
    Ok(())
}

/// Stops instance `rec` and removes its container, launch directory and record (not its log).
/// Under the directory lock; a record already gone means someone else did it.
fn remove(
    opts: &GlobalOptions,
    dir: &Path,
    rec: &Record,
    sig: Signal,
    t: Duration,
) -> anyhow::Result<()> {
    let _lock = lock(dir)?;
    let p = inst::paths(dir, &rec.name);
    match read_record(&p.record) {
        Ok(now) if now.started == rec.started => {}
        _ => return Ok(()),
    }
    let opts = GlobalOptions {
        root: rec.root.clone(),
        ..opts.clone()
    };
    stop_container(&opts, &rec.id, sig, t)?;
    if let Err(e) = std::fs::remove_dir_all(&p.bundle) {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!("remove {}: {e}", p.bundle.display());
        }
    }
    std::fs::remove_file(&p.record).with_context(|| format!("remove {}", p.record.display()))
}

fn stop(g: &Global, a: StopArgs) -> anyhow::Result<i32> {
    let sig = super::kill::parse_signal(&a.signal)
        .ok_or_else(|| usage(format!("instance stop: unknown signal {:?}", a.signal)))?;
    let (opts, dir) = base(g)?;
    let all = records(&dir)?;
    let chosen: Vec<&Record> = match &a.name {
        Some(n) => {
            let r = all.iter().find(|r| &r.name == n);
            vec![r.ok_or_else(|| anyhow::anyhow!("stop instance {n}: no such instance"))?]
        }
        None => all.iter().collect(),
    };
    let t = Duration::from_secs(a.timeout);
    for rec in chosen {
        remove(&opts, &dir, rec, sig, t).with_context(|| format!("stop instance {}", rec.name))?;
    }
    Ok(0)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn list(g: &Global, a: ListArgs) -> anyhow::Result<i32> {
    let (opts, dir) = base(g)?;
    let now = now_secs();
    let mut rows = Vec::new();
    for rec in records(&dir)? {
        // Belt and braces for a watcher that was killed: well past its deadline, reap it here.
        if rec
            .expires
            .is_some_and(|e| now > e + watch::TTL_GRACE.as_secs() + 30)
        {
            log::warn!(
                "instance {}: past its ttl with no watcher; stopping",
                rec.name
            );
            remove(&opts, &dir, &rec, Signal::SIGKILL, Duration::ZERO)?;
            continue;
        }
        let o = GlobalOptions {
            root: rec.root.clone(),
            ..opts.clone()
        };
        let c = open_container(&o, &rec.id).ok().flatten();
        let (pid, status) = match &c {
            Some(c) => (
                c.record.as_ref().map_or(0, |r| r.pid),
                c.status().to_string(),
            ),
            None => (0, "stopped".to_string()),
        };
        rows.push(serde_json::json!({
            "name": rec.name,
            "id": rec.id,
            "pid": pid,
            "image": rec.image,
            "started": rec.started,
            "status": status,
            "expires": rec.expires,
            "ttl": rec.expires.map(|e| inst::remaining(e, now)),
            "log": inst::paths(&dir, &rec.name).log,
            "watcher": rec.watcher,
        }));
    }
    if a.json {
        println!("{}", serde_json::Value::Array(rows));
        return Ok(0);
    }
    println!(
        "{:<20} {:>8} {:<8} {:<26} {:>8}  IMAGE",
        "NAME", "PID", "STATUS", "STARTED", "TTL"
    );
    for r in &rows {
        let ttl = r["ttl"]
            .as_u64()
            .map_or("-".to_string(), |s| format!("{s}s"));
        println!(
            "{:<20} {:>8} {:<8} {:<26} {:>8}  {}",
            r["name"].as_str().unwrap_or_default(),
            r["pid"],
            r["status"].as_str().unwrap_or_default(),
            r["started"].as_str().unwrap_or_default(),
            ttl,
            r["image"].as_str().unwrap_or_default()
        );
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
