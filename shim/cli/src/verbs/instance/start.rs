//! `instance start` and the watcher it leaves behind. The watcher, not `start`, creates the
//! container: it is then the init's parent and learns of its exit at once, and the init inherits
//! the watcher's stdio (the log file). `start` waits until the container runs or the watcher dies.

use super::{read_record, remove, write_record, StartArgs};
use crate::cli::{CgroupLayout, Global};
use crate::supervise::launch::{make_dir, plan, Failed};
use crate::verbs::launch;
use crate::verbs::{options, usage, warn_all};
use anyhow::Context;
use husk_launcher::instance::{self as inst, Record};
use husk_runtime::cgroup::Driver;
use husk_runtime::container::{create, wait_exit, CreateMode};
use husk_runtime::state::Status;
use husk_runtime::{Container, CreateOptions, GlobalOptions};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long the watcher gives the program after SIGTERM when the TTL passes.
pub const TTL_GRACE: Duration = Duration::from_secs(10);

pub fn start(g: &Global, mut a: StartArgs) -> anyhow::Result<i32> {
    let mut words = vec![std::mem::take(&mut a.image), std::mem::take(&mut a.name)];
    words.append(&mut a.args);
    launch::ipc_mode_from(&mut a.launch, &mut words);
    if words.len() < 2 {
        return Err(usage("instance start: IMAGE and NAME needed"));
    }
    a.image = words.remove(0);
    a.name = words.remove(0);
    a.args = words;
    inst::validate_name(&a.name).map_err(|e| usage(e.to_string()))?;
    if a.launch.sandbox.sandbox {
        return Err(usage("instance start: --sandbox is not supported"));
    }
    let ttl = a
        .ttl
        .as_deref()
        .map(inst::parse_ttl)
        .transpose()
        .map_err(|e| usage(e.to_string()))?;
    let gopts = options(g)?;
    let dir = inst::dir_for(&gopts.root);
    let p = inst::paths(&dir, &a.name);
    let req = launch::Request {
        verb: husk_launcher::Verb::Run { args: a.args },
        image: a.image.clone(),
        flags: a.launch,
        env: a.env,
        tty: false,
        engine: CreateOptions::default(),
    };
    let (opts, plan) = plan(g, &req, &p.bundle)?;
    if req.flags.dry_run {
        print!("{}", plan.config_json());
        return Ok(0);
    }
    let what = || format!("start instance {}", a.name);
    let id = inst::container_id(&a.name);
    if p.record.exists() || super::open_container(&gopts, &id)?.is_some() {
        anyhow::bail!("{}: already exists", what());
    }
    // The launch directory is made exclusively: of two starts of one NAME, one fails here.
    make_dir(&p.bundle).with_context(what)?;
    let rec = Record {
        name: a.name.clone(),
        id,
        image: a.image.clone(),
        root: gopts.root.clone(),
        started: husk_runtime::state::now_rfc3339(),
        expires: ttl.map(|t| super::now_secs() + t.as_secs()),
        watcher: None,
    };
    let rootless_no_limits = !nix::unistd::geteuid().is_root() && !opts.resources.any();
    let res = plan
        .write(&p.bundle)
        .map_err(anyhow::Error::from)
        .and_then(|()| write_record(&dir, &rec))
        .and_then(|()| spawn_watcher(g, &gopts, &rec, rootless_no_limits));
    if let Err(e) = res {
        let _ = std::fs::remove_dir_all(&p.bundle);
        let _ = std::fs::remove_file(&p.record);
        return Err(e.context(what()));
    }
    println!("{}", a.name);
    Ok(0)
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
    let mut child = Command::new(exe)
        .args(global_args(g, opts, no_cgroup))
        .args(["instance", "__watch", &rec.name])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("spawn the instance watcher")?;
    loop {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                return Ok(()); // it ran and already exited
            }
            let text = std::fs::read_to_string(&p.log).unwrap_or_default();
            let last = text.lines().last().unwrap_or("no output").to_string();
            anyhow::bail!(
                "watcher failed ({status}): {last} (see {})",
                p.log.display()
            );
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
    let mut rec = read_record(&p.record)?;
    rec.watcher = Some(std::process::id() as i32);
    write_record(&dir, &rec)?;
    let engine = CreateOptions {
        bundle: p.bundle.clone(),
        ..Default::default()
    };
    let started = create(&opts, &rec.id, &engine, CreateMode::Run)
        .map_err(anyhow::Error::from)
        .and_then(|mut c| {
            warn_all(&c.warnings);
            warn_all(&c.release()?);
            Ok(c.spawned.pid)
        });
    let pid = match started {
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

/// Waits until the init exits (false) or the record's deadline passes (true), reaping the init.
fn wait_or_expire(opts: &GlobalOptions, rec: &Record, pid: Pid) -> bool {
    loop {
        let left = rec
            .expires
            .map(|e| inst::remaining(e, super::now_secs()))
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
