//! exec: a new process in a running container, joining the init's namespaces and cgroup, with the
//! container's seccomp filter and the process settings merged as runc merges them.

use super::create::connect_console;
use super::{Container, ContainerError, ExecOptions};
use crate::ns::{self, NsPlan};
use crate::process::{self, InitContext, Spawned, StartWait};
use crate::security::seccomp;
use crate::state::Status;
use nix::unistd::Pid;
use oci_spec::runtime::{Capability, Process, Spec};
use std::collections::HashSet;
use std::path::PathBuf;

/// What `husk exec` flags change in the container's configured process.
#[derive(Debug, Clone, Default)]
pub struct ExecOverrides {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// uid and optional gid.
    pub user: Option<(u32, Option<u32>)>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub tty: bool,
}

/// The process `exec` runs: the config's process with the flags applied (args replaced, env appended,
/// caps added to every set).
pub fn exec_process(spec: &Spec, o: &ExecOverrides) -> Result<Process, ContainerError> {
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(o.args.clone()));
    p.set_terminal(Some(o.tty));
    p.set_console_size(None);
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &o.env {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &o.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some((uid, gid)) = o.user {
        let mut u = p.user().clone();
        u.set_uid(uid);
        if let Some(g) = gid {
            u.set_gid(g);
        }
        p.set_user(u);
    }
    if !o.additional_gids.is_empty() {
        let mut u = p.user().clone();
        u.set_additional_gids(Some(o.additional_gids.clone()));
        p.set_user(u);
    }
    if o.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !o.caps.is_empty() {
        let mut add = HashSet::new();
        for c in &o.caps {
            // The names config.json takes: CAP_X or X, any case.
            let cap = serde_json::from_value::<Capability>(serde_json::Value::from(c.as_str()))
                .map_err(|_| ContainerError::Usage("unknown capability in --cap"))?;
            add.insert(cap);
        }
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let extend = |s: Option<HashSet<Capability>>| -> HashSet<Capability> {
            let mut s = s.unwrap_or_default();
            s.extend(add.iter().copied());
            s
        };
        caps.set_bounding(Some(extend(caps.bounding().clone())));
        caps.set_effective(Some(extend(caps.effective().clone())));
        caps.set_permitted(Some(extend(caps.permitted().clone())));
        caps.set_inheritable(Some(extend(caps.inheritable().clone())));
        caps.set_ambient(Some(extend(caps.ambient().clone())));
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

/// Starts `process` in container `c`. Returns the spawned process (a child of ours).
pub fn exec(c: &Container, process: Process, opts: ExecOptions) -> Result<Spawned, ContainerError> {
    match c.require("exec", &[Status::Created, Status::Running]) {
        Err(ContainerError::WrongState {
            status: Status::Paused,
            ..
        }) if opts.ignore_paused => {}
        Err(ContainerError::WrongState {
            status: Status::Paused,
            ..
        }) => return Err(ContainerError::ExecPaused(c.dir.id.clone())),
        other => {
            other?;
        }
    }
    let rec = c.record()?;
    let spec = crate::spec::load_file(&c.dir.saved_config())?.spec;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(ContainerError::Usage("exec needs a command"));
    }
    crate::spec::validate_rlimits(process.rlimits().as_deref().unwrap_or_default())?;
    // The container's own capabilities count too: its processes may ptrace this one.
    let userns =
        crate::spec::namespace(&spec, oci_spec::runtime::LinuxNamespaceType::User).is_some();
    let own = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref());
    let added = process.capabilities().as_ref();
    if super::create::needs_sealed(own, userns) || super::create::needs_sealed(added, userns) {
        return Err(ContainerError::NotSealed);
    }
    let mut joins = Vec::new();
    for (typ, path) in ns::differing(Pid::from_raw(rec.pid))? {
        let fd = ns::open_ns(&path)?;
        joins.push((typ, path, fd));
    }
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(seccomp::compile(s, None)?),
        None => None,
    };
    let mut opts = opts;
    let console = match (process.terminal().unwrap_or(false), &opts.console_socket) {
        (true, Some(p)) => Some(connect_console(p)?),
        // Foreground `exec --tty`: the caller keeps the other end and proxies the terminal.
        (true, None) => match opts.console_fd.take() {
            Some(fd) => Some(fd),
            None => return Err(ContainerError::Usage("exec --tty needs --console-socket")),
        },
        (false, Some(_)) => {
            return Err(ContainerError::Usage(
                "--console-socket given without --tty",
            ))
        }
        (false, None) => None,
    };
    let env = process.env().clone().unwrap_or_default();
    let sub_dirs = match opts.cgroup.is_empty() {
        true => None,
        false => Some(rec.cgroup.exec_dirs(&opts.cgroup)?),
    };
    let ctx = InitContext {
        process,
        env,
        ns: NsPlan {
            clone_flags: nix::sched::CloneFlags::empty(),
            new_time: false,
            joins,
        },
        rootfs: None,
        seccomp,
        console,
        console_size: None,
        start: StartWait::Channel,
        preserve_fds: opts.preserve_fds,
        no_new_keyring: true,
        setgroups_allowed: rec.setgroups_allowed,
        protect_exe: ns::privileged(),
        die_with_parent: !opts.detach,
        exec_stub: crate::process::exec_stub::ExecStub::wanted().map_err(|source| {
            ContainerError::Sys {
                op: "create exec stub",
                source,
            }
        })?,
        hostname: None,
        domainname: None,
        sysctl: Vec::new(),
        process_oom_score_adj: None,
        overlap_cgroup_setup: false,
        // v1: the process moves itself in (see Cgroup::self_join_files), through files the
        // intermediate child opens before it joins the container's namespaces.
        join_cgroup: match &sub_dirs {
            Some(dirs) if !rec.cgroup.self_join_files()?.is_empty() => {
                dirs.iter().map(|d| d.join("tasks")).collect()
            }
            _ => rec.cgroup.self_join_files()?,
        },
        landlock: crate::spec::landlock(&spec)?,
        time_offsets: String::new(),
        reset_cpu_affinity: opts.reset_cpu_affinity,
        fetch_bind_sources: false,
        hooks_create_container: Vec::new(),
        hooks_start_container: Vec::new(),
        state_json: Vec::new(),
    };
    let cgroup = rec.cgroup.clone();
    let pid_file = opts.pid_file.clone();
    let self_join = !ctx.join_cgroup.is_empty();
    process::spawn_exec(&ctx, |pid: Pid| -> Result<(), ContainerError> {
        match &sub_dirs {
            _ if self_join => {}
            Some(dirs) => crate::cgroup::attach_to(dirs, pid.as_raw())?,
            None => cgroup.add(pid.as_raw())?,
        }
        if let Some(path) = &pid_file {
            std::fs::write(path, pid.to_string()).map_err(|source| ContainerError::Io {
                op: "write pid file",
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    })
}
