//! `husk run|exec IMAGE --sandbox`: the untrusted-code preset's flags, turned into
//! husk_launcher's [`Sandbox`] settings (which build and rewrite the config); the supervisor in
//! [`crate::supervise::sandbox`] runs it: the container's stdout/stderr come through pipes and are
//! capped, a wall-clock timeout kills the whole container, and a result record says what happened
//! and which limits were in force (docs/sandbox.md).

use super::launch::{LaunchFlags, Request};
use super::usage;
use crate::cli::Global;
use crate::supervise::launch::{make_dir, new_id, sandbox_base, Failed};
use crate::supervise::{self, check_socket, Pinned};
use anyhow::Context;
use clap::Args;
use husk_launcher::sandbox::{self, Sandbox, SandboxError};
use std::path::PathBuf;

/// Flags of `--sandbox` (on run and exec with an IMAGE).
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
#[command(next_help_heading = "Sandbox options (with an IMAGE)")]
pub struct SandboxFlags {
    /// Run untrusted code: no network, read-only image, only the workspace writable, no
    /// capabilities, seccomp, limits (docs/sandbox.md)
    #[arg(long)]
    pub sandbox: bool,
    /// Host directory bound read-write on /workspace, the working directory [default: a new
    /// empty one, removed afterwards]
    #[arg(long, value_name = "DIR", requires = "sandbox")]
    pub workspace: Option<PathBuf>,
    /// Size of the tmpfs on /tmp [default: 64M]
    #[arg(long, value_name = "SIZE", requires = "sandbox")]
    pub tmp_size: Option<String>,
    /// Wall-clock limit; then every process of the container is killed [default: 10s]
    #[arg(long, value_name = "DURATION", requires = "sandbox")]
    pub timeout: Option<String>,
    /// Bytes of stdout and of stderr passed on; the rest is dropped [default: 1M]
    #[arg(long, value_name = "SIZE", requires = "sandbox")]
    pub output_limit: Option<String>,
    /// Write the result record (JSON) to FILE
    #[arg(long, value_name = "FILE", requires = "sandbox")]
    pub result: Option<PathBuf>,
    /// Print the result record on stdout, the program's output captured into it
    #[arg(long, requires = "sandbox")]
    pub json: bool,
    /// Bind the Unix socket HOST_PATH (the socket itself: not a symlink, not a directory) on
    /// CONTAINER_PATH (absolute, not under /proc, /sys, /dev or /workspace); repeatable
    #[arg(long, value_name = "HOST_PATH:CONTAINER_PATH", requires = "sandbox")]
    pub socket: Vec<String>,
    /// Run by root: the unprivileged host uid and gid the code runs as (its root in a user
    /// namespace maps to ID) [default: 1000000000]
    #[arg(long, value_name = "ID", requires = "sandbox")]
    pub host_id: Option<String>,
    /// exec's `--user UID:GID`, handed over with --sandbox (the program's ids inside).
    #[arg(skip)]
    pub user: Option<String>,
}

/// The preset is an allow-list: these launcher flags keep their meaning with --sandbox (`--bind`
/// read-only only, checked by the preset), these are implied by it, and every other flag is a
/// usage error naming it. A flag added to [`LaunchFlags`] later is refused until it is listed here.
pub fn reject_conflicts(flags: &LaunchFlags) -> anyhow::Result<()> {
    let rest = LaunchFlags {
        // Compatible: read-only inputs, the environment, the limits, printing the config.
        bind: Vec::new(),
        env_file: Vec::new(),
        memory: None,
        cpus: None,
        pids_limit: None,
        dry_run: false,
        sandbox: SandboxFlags::default(),
        // Implied by the preset (saying them again changes nothing).
        no_home: false,
        contain: false,
        containall: false,
        pid: false,
        cleanenv: false,
        ipc: flags
            .ipc
            .clone()
            .filter(|m| !matches!(m.as_str(), "" | "private")),
        // Set from HUSK_CDI_DIR too; means nothing without a device (refused below).
        cdi_dir: Vec::new(),
        ..flags.clone()
    };
    if rest == LaunchFlags::default() {
        return Ok(());
    }
    let named = [
        (rest.writable, "--writable"),
        (rest.writable_tmpfs, "--writable-tmpfs"),
        (rest.overlay.is_some(), "--overlay"),
        (rest.fakeroot, "--fakeroot"),
        (rest.userns, "--userns"),
        (rest.net.is_some(), "--net"),
        (rest.ipc.is_some(), "--ipc"),
        (rest.profile.is_some(), "--profile"),
        (rest.pwd.is_some(), "--pwd"),
        (rest.hostname.is_some(), "--hostname"),
        (rest.fuse, "--fuse"),
        (rest.x11, "--x11"),
        (!rest.add_caps.is_empty(), "--add-caps"),
        (!rest.drop_caps.is_empty(), "--drop-caps"),
        (!rest.device.is_empty(), "--device"),
        (rest.gpu, "--gpu"),
    ];
    let flag = named
        .iter()
        .find(|(on, _)| *on)
        .map_or("a launcher flag it does not list", |(_, f)| *f);
    Err(usage(format!("--sandbox: {flag} cannot be used with it")))
}

/// `instance start --sandbox`: the preset's flags but those of one supervised run (the TTL is the
/// instance's limit; its output goes to its log) and, for now, the binds checked after create.
pub fn reject_for_instance(flags: &LaunchFlags) -> anyhow::Result<()> {
    reject_conflicts(flags)?;
    let s = &flags.sandbox;
    let refused = [
        (s.timeout.is_some(), "--timeout (use --ttl)"),
        (
            s.output_limit.is_some(),
            "--output-limit (the output goes to its log)",
        ),
        (s.result.is_some(), "--result"),
        (s.json, "--json"),
        (!s.socket.is_empty(), "--socket"),
        (!flags.bind.is_empty(), "--bind"),
    ];
    match refused.iter().find(|(on, _)| *on) {
        Some((_, flag)) => Err(usage(format!(
            "instance start --sandbox: {flag} cannot be used with it"
        ))),
        None => Ok(()),
    }
}

/// The launch of a sandboxed instance in its launch directory `p.bundle`, with `--workspace` or a
/// fresh one beside it (`NAME.workspace`, removed at stop).
pub fn instance_launch(
    g: &Global,
    req: &Request,
    p: &husk_launcher::instance::Paths,
) -> anyhow::Result<supervise::sandbox::Prepared> {
    let (workspace, scratch) = match &req.flags.sandbox.workspace {
        Some(w) => {
            let ws =
                std::fs::canonicalize(w).with_context(|| format!("--workspace {}", w.display()))?;
            (ws, None)
        }
        None => {
            let s = PathBuf::from(format!("{}.workspace", p.bundle.display()));
            make_dir(&s).context(Failed(req.image.clone()))?;
            (s.clone(), Some(s))
        }
    };
    let prepared = settings(req, workspace).and_then(|(sb, _)| {
        supervise::sandbox::prepare_instance(g, req, sb, &p.bundle, scratch.clone())
    });
    if prepared.is_err() {
        if let Some(s) = &scratch {
            let _ = std::fs::remove_dir_all(s);
        }
    }
    prepared
}

/// The preset's settings from the flags, each `--socket` checked on the host and pinned.
fn settings(req: &Request, workspace: PathBuf) -> anyhow::Result<(Sandbox, Vec<Pinned>)> {
    let s = &req.flags.sandbox;
    let bad = |e: SandboxError| usage(e.to_string());
    let mut sb = Sandbox::new(workspace);
    let root = nix::unistd::geteuid().is_root();
    sb.host_id = sandbox::host_id(s.host_id.as_deref(), root).map_err(bad)?;
    sb.user = s
        .user
        .as_deref()
        .map(sandbox::parse_user)
        .transpose()
        .map_err(bad)?;
    let mut pinned = Vec::new();
    for spec in &s.socket {
        let bind = sandbox::parse_socket(spec).map_err(bad)?;
        pinned.push(check_socket(bind)?);
    }
    sb.sockets = pinned.iter().map(|p| p.bind.clone()).collect();
    let (tmp, timeout, output) = (&s.tmp_size, &s.timeout, &s.output_limit);
    sb.set_limits(tmp.as_deref(), timeout.as_deref(), output.as_deref())
        .map_err(bad)?;
    Ok((sb, pinned))
}

pub fn run(g: &Global, mut req: Request) -> anyhow::Result<i32> {
    reject_conflicts(&req.flags)?;
    if let Ok(o) = super::options(g) {
        supervise::sweep::sweep(&o);
    }
    let id = new_id();
    let dir = sandbox_base().join(&id);
    let scratch = sandbox_base().join(format!("{id}.workspace"));
    let workspace = match &req.flags.sandbox.workspace {
        Some(w) => {
            std::fs::canonicalize(w).with_context(|| format!("--workspace {}", w.display()))?
        }
        None => {
            make_dir(&scratch).context(Failed(req.image.clone()))?;
            scratch.clone()
        }
    };
    let result = settings(&req, workspace)
        .and_then(|(sb, pinned)| supervise::sandbox::run(g, &mut req, sb, &pinned, &id, &dir));
    if req.flags.sandbox.workspace.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    result
}
