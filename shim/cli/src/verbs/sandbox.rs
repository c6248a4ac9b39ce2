//! `husk run|exec IMAGE --sandbox`: the untrusted-code preset's flags, turned into
//! husk_launcher's [`Sandbox`] settings (which build and rewrite the config); the supervisor in
//! [`crate::supervise::sandbox`] runs it: the container's stdout/stderr come through pipes and are
//! capped, a wall-clock timeout kills the whole container, and a result record says what happened
//! and which limits were in force (docs/sandbox.md).

use super::launch::Request;
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
}

/// Launcher flags the preset decides itself.
fn reject_conflicts(req: &Request) -> anyhow::Result<()> {
    let f = &req.flags;
    let bad = [
        (!f.bind.is_empty(), "--bind"),
        (f.writable, "--writable"),
        (f.writable_tmpfs, "--writable-tmpfs"),
        (f.overlay.is_some(), "--overlay"),
        (f.fakeroot, "--fakeroot"),
        (f.userns, "--userns"),
        (f.net.is_some(), "--net"),
        (f.profile.is_some(), "--profile"),
        (f.pwd.is_some(), "--pwd"),
        (f.hostname.is_some(), "--hostname"),
    ];
    match bad.iter().find(|(on, _)| *on) {
        Some((_, flag)) => Err(usage(format!("--sandbox: {flag} cannot be used with it"))),
        None => Ok(()),
    }
}

/// The preset's settings from the flags, each `--socket` checked on the host and pinned.
fn settings(req: &Request, workspace: PathBuf) -> anyhow::Result<(Sandbox, Vec<Pinned>)> {
    let s = &req.flags.sandbox;
    let bad = |e: SandboxError| usage(e.to_string());
    let mut sb = Sandbox::new(workspace);
    let root = nix::unistd::geteuid().is_root();
    sb.host_id = sandbox::host_id(s.host_id.as_deref(), root).map_err(bad)?;
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
    reject_conflicts(&req)?;
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
