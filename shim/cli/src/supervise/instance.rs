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
use husk_launcher::sandbox::Lent;
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
/// there. `hand_over` then runs (a sandbox's host side; what it lends is recorded, to be given
/// back at stop). A later failure removes the directory and the record again.
pub fn start(
    g: &Global,
    opts: &GlobalOptions,
    launch: &Launch,
    rec: &Record,
    no_cgroup: bool,
    hand_over: &dyn Fn() -> anyhow::Result<Option<Lent>>,
) -> anyhow::Result<()> {
    let dir = inst::dir_for(&opts.root);
    let p = inst::paths(&dir, &rec.name);
    make_dir(&p.bundle)?;
    let mut rec = rec.clone();
    let res = hand_over().and_then(|lent| {
        rec.lent = lent;
        launch.write(&p.bundle)?;
        inst::write_record(&dir, &rec)?;
        spawn_watcher(g, opts, &rec, no_cgroup)
    });
    if res.is_err() {
        let _ = std::fs::remove_dir_all(&p.bundle);
        let _ = std::fs::remove_file(&p.record);
        super::sandbox::release_workspace(rec.lent.as_ref(), None);
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
    // 0600: a root sandbox's instance directory is searchable by its host id (0711).
    let log = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&p.log)
            .with_context(|| format!("create {}", p.log.display()))?
    };
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
    match wait_or_expire(&opts, &rec, pid) {
        Ended::Expired => {
            log::info!("instance {name}: ttl passed, stopping");
            remove(&opts, &dir, &rec, Signal::SIGTERM, TTL_GRACE)?;
        }
        Ended::Exited(code) => {
            log::info!("instance {name}: exited with status {code}");
            finish(&opts, &dir, &rec, code)?;
        }
    }
    let _ = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
    Ok(0)
}

/// How the watcher's wait ended.
enum Ended {
    Expired,
    /// The init exited by itself (or was stopped), with this status.
    Exited(i32),
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

/// Waits until the init exits or the record's deadline passes, reaping the init.
fn wait_or_expire(opts: &GlobalOptions, rec: &Record, pid: Pid) -> Ended {
    loop {
        let left = rec
            .expires
            .map(|e| inst::remaining(e, inst::now_secs()))
            .unwrap_or(3600);
        if rec.expires.is_some() && left == 0 {
            return Ended::Expired;
        }
        let done = match Container::open(opts, &rec.id) {
            // wait_exit returns early when the init exits; a timeout means it still runs.
            Ok(c) => wait_exit(&c, Duration::from_secs(left.clamp(1, 3600))).is_ok(),
            Err(_) => true,
        };
        if done {
            return Ended::Exited(reap(pid));
        }
    }
}

/// Waits for the init (our child) and returns its status as a shell would (128+N for signal N).
fn reap(pid: Pid) -> i32 {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return -1,
        }
    }
}

/// The program exited by itself: the container and launch directory go, the record stays with
/// its status (listed as exited until `instance stop`). A record that is gone or replaced means
/// a stop got there first.
fn finish(opts: &GlobalOptions, dir: &Path, rec: &Record, code: i32) -> anyhow::Result<()> {
    let _lock = inst::lock(dir, &rec.name)?;
    let p = inst::paths(dir, &rec.name);
    let mut now = match inst::read_record(&p.record) {
        Ok(now) if now.started == rec.started => now,
        _ => return Ok(()),
    };
    let opts = GlobalOptions {
        root: rec.root.clone(),
        ..opts.clone()
    };
    stop_container(&opts, &rec.id, Signal::SIGKILL, Duration::ZERO)?;
    remove_launch_dir(&p.bundle);
    super::sandbox::release_workspace(now.lent.take().as_ref(), now.scratch.take().as_deref());
    now.exit_code = Some(code);
    now.finished = Some(husk_runtime::state::now_rfc3339());
    now.watcher = None;
    inst::write_record(dir, &now)?;
    Ok(())
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
        let init = c.record.as_ref().map_or(0, |r| r.pid);
        let dropped = sig != Signal::SIGKILL && !handles(init, sig);
        if dropped || wait_exit(&c, timeout).is_err() {
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

/// Does process `pid` catch or ignore `sig` (SigCgt, SigIgn of its status)? An instance's init is
/// pid 1 of its own pid namespace, and the kernel drops a signal sent to it from outside that it
/// neither catches nor ignores: the signal's own default (to end it) would never come, so stop
/// sends SIGKILL at once instead of waiting out the timeout.
fn handles(pid: i32, sig: Signal) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    let bit = 1u64 << (sig as i32 - 1);
    text.lines()
        .filter(|l| l.starts_with("SigCgt:") || l.starts_with("SigIgn:"))
        .filter_map(|l| u64::from_str_radix(l[7..].trim(), 16).ok())
        .any(|mask| mask & bit != 0)
}

fn remove_launch_dir(bundle: &Path) {
    if let Err(e) = husk_launcher::spec::remove_launch_dir(bundle) {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!("remove {}: {e}", bundle.display());
        }
    }
}

/// Stops instance `rec` and removes its container, launch directory and record (not its log).
/// Under the instance's lock; a record already gone means someone else did it.
pub fn remove(
    opts: &GlobalOptions,
    dir: &Path,
    rec: &Record,
    sig: Signal,
    t: Duration,
) -> anyhow::Result<()> {
    let _lock = inst::lock(dir, &rec.name)?;
    let p = inst::paths(dir, &rec.name);
    let now = match inst::read_record(&p.record) {
        Ok(now) if now.started == rec.started => now,
        _ => return Ok(()),
    };
    let opts = GlobalOptions {
        root: rec.root.clone(),
        ..opts.clone()
    };
    stop_container(&opts, &rec.id, sig, t)?;
    remove_launch_dir(&p.bundle);
    super::sandbox::release_workspace(now.lent.as_ref(), now.scratch.as_deref());
    std::fs::remove_file(&p.record).with_context(|| format!("remove {}", p.record.display()))
}
