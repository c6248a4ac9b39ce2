//! Instances' engine work: `instance start`'s launch directory, record and watcher; the watcher
//! (`husk instance __watch NAME`, its own session, stdout and stderr on the instance's log) that
//! creates and starts the container, waits for it to exit or for its TTL to pass, and cleans up;
//! and the stop that `instance stop`, `list` and the watcher share ([`remove`]).
//!
//! The watcher, not `start`, creates the container: it is then the init's parent and learns of its
//! exit at once, and the init inherits the watcher's stdio (the log file). `start` waits until the
//! container runs or the watcher dies.

use super::launch::{make_dir, Failed};
use crate::cli::{CgroupLayout, Global};
use crate::verbs::{options, warn_all};
use anyhow::Context;
use husk_launcher::instance::{self as inst, Record, TTL_GRACE};
use husk_launcher::Launch;
use husk_runtime::cgroup::Driver;
use husk_runtime::container::{create, delete, kill, wait_exit, ContainerError, CreateMode};
use husk_runtime::state::{StateError, Status};
use husk_runtime::{Container, CreateOptions, GlobalOptions};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Writes instance `rec`'s launch directory and record and spawns its watcher; returns once the
/// container runs. The launch directory is made exclusively: of two starts of one NAME, one fails
/// there. A later failure removes the directory and the record again.
pub fn start(
    g: &Global,
    opts: &GlobalOptions,
    launch: &Launch,
    rec: &Record,
    no_cgroup: bool,
) -> anyhow::Result<()> {
    let dir = inst::dir_for(&opts.root);
    let p = inst::paths(&dir, &rec.name);
    make_dir(&p.bundle)?;
    let res = launch
        .write(&p.bundle)
        .map_err(anyhow::Error::from)
        .and_then(|()| Ok(inst::write_record(&dir, rec)?))
        .and_then(|()| spawn_watcher(g, opts, rec, no_cgroup));
    if res.is_err() {
        let _ = std::fs::remove_dir_all(&p.bundle);
        let _ = std::fs::remove_file(&p.record);
    }
    res
}

/// The global flags the watcher needs to see the same state root and cgroup setup.
fn global_args(g: &Global, opts: &GlobalOptions, no_cgroup: bool) -> Vec<String> {
    let mut v = vec!["--root".to_string(), opts.root.display().to_string()];
    v.push(format!("--rootless={}", opts.rootless));
    let manager = match opts.cgroup.driver {
        _ if no_cgroup => "disabled",
        Driver::Disabled => "disabled",
        Driver::Systemd => "systemd",
        Driver::Cgroupfs => "cgroupfs",
    };
    v.push(format!("--cgroup-manager={manager}"));
    let layout = match g.cgroup_layout {
        CgroupLayout::Auto => "auto",
        CgroupLayout::V1 => "v1",
        CgroupLayout::V2 => "v2",
    };
    v.push(format!("--cgroup-layout={layout}"));
    if g.debug {
        v.push("--debug".into());
    }
    v
}

/// Spawns the watcher with its output on the log, and waits until the container runs (or the
/// watcher exits: then the log says why).
fn spawn_watcher(
    g: &Global,
    opts: &GlobalOptions,
    rec: &Record,
    no_cgroup: bool,
) -> anyhow::Result<()> {
    let dir = inst::dir_for(&rec.root);
    let p = inst::paths(&dir, &rec.name);
    let log =
        std::fs::File::create(&p.log).with_context(|| format!("create {}", p.log.display()))?;
    let exe = std::env::current_exe().context("find the husk binary")?;
    let child = Command::new(exe)
        .args(global_args(g, opts, no_cgroup))
        .args(["instance", "__watch", &rec.name])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("spawn the instance watcher")?;
    wait_running(child, opts, rec, &p.log)
}

/// Polls until the container runs (Ok), or the watcher exits: Ok when it succeeded (the container
/// ran and already exited), else the last line of its log.
fn wait_running(
    mut child: Child,
    opts: &GlobalOptions,
    rec: &Record,
    log: &Path,
) -> anyhow::Result<()> {
    loop {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                return Ok(()); // it ran and already exited
            }
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let last = text.lines().last().unwrap_or("no output").to_string();
            anyhow::bail!("watcher failed ({status}): {last} (see {})", log.display());
        }
        if let Ok(c) = Container::open(opts, &rec.id) {
            // Running: the init has exec'd (the record is past creating, or `run` marked it).
            if c.status() == Status::Running {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `instance __watch NAME`: create and start the container, wait for its exit or its TTL, clean up.
pub fn watch(g: &Global, name: &str) -> anyhow::Result<i32> {
    // Its own session: no SIGHUP when the starting terminal goes away.
    let _ = nix::unistd::setsid();
    let opts = options(g)?;
    let dir = inst::dir_for(&opts.root);
    let p = inst::paths(&dir, name);
    let mut rec = inst::read_record(&p.record)?;
    rec.watcher = Some(std::process::id() as i32);
    inst::write_record(&dir, &rec)?;
    let pid = match create_container(&opts, &rec, &p.bundle) {
        Ok(pid) => pid,
        Err(e) => {
            let _ = remove(&opts, &dir, &rec, Signal::SIGKILL, Duration::ZERO);
            return Err(e.context(Failed(rec.image.clone())));
        }
    };
    log::info!("instance {name}: container {} runs as pid {pid}", rec.id);
    let expired = wait_or_expire(&opts, &rec, pid);
    if expired {
        log::info!("instance {name}: ttl passed, stopping");
    }
    remove(&opts, &dir, &rec, Signal::SIGTERM, TTL_GRACE)?;
    let _ = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
    Ok(0)
}

/// Creates and releases the instance's container from `bundle`; its init's pid.
fn create_container(opts: &GlobalOptions, rec: &Record, bundle: &Path) -> anyhow::Result<Pid> {
    let engine = CreateOptions {
        bundle: bundle.to_path_buf(),
        ..Default::default()
    };
    let mut c = create(opts, &rec.id, &engine, CreateMode::Run)?;
    warn_all(&c.warnings);
    warn_all(&c.release()?);
    Ok(c.spawned.pid)
}

/// Waits until the init exits (false) or the record's deadline passes (true), reaping the init.
fn wait_or_expire(opts: &GlobalOptions, rec: &Record, pid: Pid) -> bool {
    loop {
        let left = rec
            .expires
            .map(|e| inst::remaining(e, inst::now_secs()))
            .unwrap_or(3600);
        if rec.expires.is_some() && left == 0 {
            return true;
        }
        let Ok(c) = Container::open(opts, &rec.id) else {
            return false;
        };
        // wait_exit returns early when the init exits; a timeout means it still runs.
        if wait_exit(&c, Duration::from_secs(left.min(3600))).is_ok() {
            let _ = nix::sys::wait::waitpid(pid, None);
            return false;
        }
    }
}

/// Container `id`, or None when there is none.
pub fn open_container(opts: &GlobalOptions, id: &str) -> anyhow::Result<Option<Container>> {
    match Container::open(opts, id) {
        Ok(c) => Ok(Some(c)),
        Err(ContainerError::State(StateError::NotFound(_))) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The pid and status of instance `rec`'s container (0 and "stopped" when it has none).
pub fn status(opts: &GlobalOptions, rec: &Record) -> (i32, String) {
    let o = GlobalOptions {
        root: rec.root.clone(),
        ..opts.clone()
    };
    match open_container(&o, &rec.id).ok().flatten() {
        Some(c) => (
            c.record.as_ref().map_or(0, |r| r.pid),
            c.status().to_string(),
        ),
        None => (0, "stopped".to_string()),
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
        Ok(w) => warn_all(&w),
        Err(ContainerError::State(StateError::NotFound(_))) => {}
        Err(e) => return Err(e).with_context(|| format!("delete container {id}")),
    }
    Ok(())
}

/// Stops instance `rec` and removes its container, launch directory and record (not its log).
/// Under the directory lock; a record already gone means someone else did it.
pub fn remove(
    opts: &GlobalOptions,
    dir: &Path,
    rec: &Record,
    sig: Signal,
    t: Duration,
) -> anyhow::Result<()> {
    let _lock = inst::lock(dir)?;
    let p = inst::paths(dir, &rec.name);
    match inst::read_record(&p.record) {
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
