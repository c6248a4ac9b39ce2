//! `instance start`: the launch built like `husk run IMAGE`'s, then handed to a watcher
//! ([`crate::supervise::instance`]) that creates and runs the container; returns once it runs.

use super::StartArgs;
use crate::cli::Global;
use crate::supervise::instance;
use crate::supervise::launch::plan;
use crate::verbs::launch;
use crate::verbs::{options, usage};
use anyhow::Context;
use husk_launcher::instance::{self as inst, Record};
use husk_runtime::CreateOptions;
use std::path::PathBuf;
use std::time::Duration;

/// IMAGE and NAME from the positionals (after `--ipc MODE`, which may have been parsed as one).
fn take_positionals(a: &mut StartArgs) -> anyhow::Result<()> {
    let mut words = vec![std::mem::take(&mut a.image), std::mem::take(&mut a.name)];
    words.append(&mut a.args);
    launch::ipc_mode_from(&mut a.launch, &mut words);
    if words.len() < 2 {
        return Err(usage("instance start: IMAGE and NAME needed"));
    }
    a.image = words.remove(0);
    a.name = words.remove(0);
    a.args = words;
    Ok(())
}

/// Checks the name and the flags; the TTL.
fn check(a: &StartArgs) -> anyhow::Result<Option<Duration>> {
    inst::validate_name(&a.name).map_err(|e| usage(e.to_string()))?;
    if a.launch.sandbox.sandbox {
        return Err(usage("instance start: --sandbox is not supported"));
    }
    a.ttl
        .as_deref()
        .map(inst::parse_ttl)
        .transpose()
        .map_err(|e| usage(e.to_string()))
}

fn record(a: &StartArgs, root: PathBuf, ttl: Option<Duration>) -> Record {
    Record {
        name: a.name.clone(),
        id: inst::container_id(&a.name),
        image: a.image.clone(),
        root,
        started: husk_runtime::state::now_rfc3339(),
        expires: ttl.map(|t| inst::now_secs() + t.as_secs()),
        watcher: None,
        exit_code: None,
        finished: None,
    }
}

pub fn start(g: &Global, mut a: StartArgs) -> anyhow::Result<i32> {
    take_positionals(&mut a)?;
    let ttl = check(&a)?;
    let gopts = options(g)?;
    let p = inst::paths(&inst::dir_for(&gopts.root), &a.name);
    // Its own pid namespace always: when the program (pid 1) ends, the kernel ends every other
    // process of the instance (`exec -d`, `sh -c 'cmd &'`), cgroup or not.
    a.launch.pid = true;
    let req = launch::Request {
        verb: husk_launcher::Verb::Run {
            args: std::mem::take(&mut a.args),
        },
        image: a.image.clone(),
        flags: std::mem::take(&mut a.launch),
        env: std::mem::take(&mut a.env),
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
    if let Ok(old) = inst::read_record(&p.record) {
        if let Some(code) = old.exit_code {
            anyhow::bail!(
                "{}: already exists (exited with status {code}; `husk instance stop {}` removes it)",
                what(),
                a.name
            );
        }
    }
    if p.record.exists() || instance::open_container(&gopts, &id)?.is_some() {
        anyhow::bail!("{}: already exists", what());
    }
    let rec = record(&a, gopts.root.clone(), ttl);
    let rootless_no_limits = !nix::unistd::geteuid().is_root() && !opts.resources.any();
    instance::start(g, &gopts, &plan, &rec, rootless_no_limits).with_context(what)?;
    println!("{}", a.name);
    Ok(0)
}
