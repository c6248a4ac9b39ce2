//! `instance start`: the launch built like `husk run IMAGE`'s (or, with `--sandbox`, like the
//! sandbox's: [`crate::verbs::sandbox::instance_launch`]), then handed to a watcher
//! ([`crate::supervise::instance`]) that creates and runs the container; returns once it runs.

use super::StartArgs;
use crate::cli::Global;
use crate::supervise::instance;
use crate::supervise::launch::plan;
use crate::verbs::{launch, sandbox};
use crate::verbs::{options, usage};
use anyhow::Context;
use husk_launcher::instance::{self as inst, Paths, Record};
use husk_runtime::{CreateOptions, GlobalOptions};
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
        sandbox::reject_for_instance(&a.launch)?;
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
        sandbox: a.launch.sandbox.sandbox,
        lent: None,
        scratch: None,
    }
}

/// NAME must be free: no record (an exited instance keeps its own until stopped), no container.
fn ensure_free(gopts: &GlobalOptions, p: &Paths, name: &str) -> anyhow::Result<()> {
    let what = || format!("start instance {name}");
    if let Ok(old) = inst::read_record(&p.record) {
        if let Some(code) = old.exit_code {
            anyhow::bail!(
                "{}: already exists (exited with status {code}; `husk instance stop {name}` removes it)",
                what()
            );
        }
    }
    if p.record.exists() || instance::open_container(gopts, &inst::container_id(name))?.is_some() {
        anyhow::bail!("{}: already exists", what());
    }
    Ok(())
}

pub fn start(g: &Global, mut a: StartArgs) -> anyhow::Result<i32> {
    take_positionals(&mut a)?;
    let ttl = check(&a)?;
    let gopts = options(g)?;
    let p = inst::paths(&inst::dir_for(&gopts.root), &a.name);
    // Its own pid namespace always: when the program (pid 1) ends, the kernel ends every other
    // process of the instance (`exec -d`, `sh -c 'cmd &'`), cgroup or not.
    a.launch.pid = true;
    let mut rec = record(&a, gopts.root.clone(), ttl);
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
    if !req.flags.dry_run {
        ensure_free(&gopts, &p, &a.name)?;
    }
    let what = || format!("start instance {}", a.name);
    if req.flags.sandbox.sandbox {
        let prepared = sandbox::instance_launch(g, &req, &p)?;
        if req.flags.dry_run {
            print!("{}", prepared.launch.config_json());
            prepared.discard();
            return Ok(0);
        }
        rec.scratch = prepared.scratch.clone();
        let hand_over = || prepared.hand_over(g, &p.bundle);
        let started = instance::start(g, &gopts, &prepared.launch, &rec, false, &hand_over);
        if started.is_err() {
            prepared.discard();
        }
        started.with_context(what)?;
    } else {
        let (opts, plan) = plan(g, &req, &p.bundle)?;
        if req.flags.dry_run {
            print!("{}", plan.config_json());
            return Ok(0);
        }
        let rootless_no_limits = !nix::unistd::geteuid().is_root() && !opts.resources.any();
        let nothing = || -> anyhow::Result<Option<husk_launcher::sandbox::Lent>> { Ok(None) };
        instance::start(g, &gopts, &plan, &rec, rootless_no_limits, &nothing).with_context(what)?;
    }
    println!("{}", a.name);
    Ok(0)
}
