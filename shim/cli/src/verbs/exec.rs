//! `husk exec`: run a new process in a running container. With an IMAGE (a first positional holding
//! '/' or ':') instead of an id, the launcher face runs the command in it ([`super::launch`]).

use super::launch::{self, LaunchFlags};
use super::{open, usage};
use crate::cli::Global;
use anyhow::Context;
use clap::Args;
use husk_runtime::container::{exec_process, ExecOverrides};
use husk_runtime::{Container, ExecOptions};
use oci_spec::runtime::Process;
use std::path::PathBuf;

#[derive(Debug, Default, Args)]
#[command(trailing_var_arg = true)]
pub struct ExecArgs {
    /// Read the whole process (config.json's "process" object) from FILE
    #[arg(short, long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Unix socket that receives the pty master (SCM_RIGHTS)
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Return once the process has started
    #[arg(short, long)]
    pub detach: bool,
    /// Write the process's pid to FILE
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Working directory inside the container
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (repeatable)
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// User as UID[:GID]; with an IMAGE and --sandbox, UID:GID is who the program runs as inside
    #[arg(short, long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Additional group id (repeatable)
    #[arg(short = 'g', long = "additional-gids", value_name = "GID")]
    pub additional_gids: Vec<u32>,
    /// Add a capability (repeatable), e.g. CAP_NET_ADMIN
    #[arg(short, long, value_name = "CAP")]
    pub cap: Vec<String>,
    /// Set no_new_privs for the process
    #[arg(long)]
    pub no_new_privs: bool,
    /// Pass N extra fds (3 .. 3+N-1)
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    /// Exec into a paused container too; the process runs once it is resumed
    #[arg(long)]
    pub ignore_paused: bool,
    /// Join this sub-cgroup of the container's: PATH (every controller) or
    /// CONTROLLER[,CONTROLLER...]:PATH (repeatable; cgroup v1)
    #[arg(long = "cgroup", value_name = "[CONTROLLERS:]PATH")]
    pub cgroup: Vec<String>,
    /// Accepted for runc compatibility (no SELinux/AppArmor support)
    #[arg(long, hide = true)]
    pub process_label: Option<String>,
    #[arg(long, hide = true)]
    pub apparmor: Option<String>,
    /// Container id, instance://NAME, or an IMAGE (a path such as ./rootfs) for the launcher
    pub id: String,
    /// Command and arguments (unless --process is given)
    pub command: Vec<String>,
    #[command(flatten)]
    pub launch: LaunchFlags,
}

fn parse_user(s: &str) -> anyhow::Result<(u32, Option<u32>)> {
    let bad = || usage(format!("invalid --user {s:?}: want UID[:GID]"));
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let uid = u.parse().map_err(|_| bad())?;
    let gid = match g {
        Some(g) => Some(g.parse().map_err(|_| bad())?),
        None => None,
    };
    Ok((uid, gid))
}

fn run_image(g: &Global, mut a: ExecArgs) -> anyhow::Result<i32> {
    let sandbox = a.launch.sandbox.sandbox;
    if sandbox {
        // The sandbox's own flags: --user is the program's ids inside; the engine's fd and
        // pid-file options, and --cwd (the workspace is the working directory), are not among them.
        let refused = [
            (a.cwd.is_some(), "--cwd"),
            (a.pid_file.is_some(), "--pid-file"),
            (a.preserve_fds > 0, "--preserve-fds"),
        ];
        if let Some((_, flag)) = refused.iter().find(|(on, _)| *on) {
            return Err(usage(format!("--sandbox: {flag} cannot be used with it")));
        }
        a.launch.sandbox.user = a.user.take();
    }
    let oci_only = a.process.is_some()
        || a.console_socket.is_some()
        || a.detach
        || a.user.is_some()
        || !a.additional_gids.is_empty()
        || !a.cap.is_empty();
    if oci_only {
        return Err(usage(
            "exec IMAGE: --process, --console-socket, --detach, --user (but with --sandbox), \
             --additional-gids and --cap apply to running containers only (see --fakeroot)",
        ));
    }
    if a.command.is_empty() {
        return Err(usage("exec IMAGE needs a command"));
    }
    let mut flags = a.launch;
    if flags.pwd.is_none() {
        flags.pwd = a.cwd;
    }
    let engine = husk_runtime::CreateOptions {
        pid_file: a.pid_file,
        preserve_fds: a.preserve_fds,
        ..Default::default()
    };
    launch::run(
        g,
        launch::Request {
            verb: husk_launcher::Verb::Exec { command: a.command },
            image: a.id,
            flags,
            env: a.env,
            tty: a.tty,
            engine,
        },
    )
}

/// `exec IMAGE --ipc host CMD`: the IPC mode may have been parsed as the first positional.
fn take_ipc_mode(a: &mut ExecArgs) {
    let mut words = vec![std::mem::take(&mut a.id)];
    words.append(&mut a.command);
    launch::ipc_mode_from(&mut a.launch, &mut words);
    a.id = words.remove(0);
    a.command = words;
}

/// A --process FILE that cannot be read twice (a pipe, as `-p <(...)` gives), with what it held:
/// the re-exec from a sealed copy of husk (`main::reexec_if_not_sealed`) reads it again.
pub static PROCESS_READ_ONCE: std::sync::OnceLock<(PathBuf, Vec<u8>)> = std::sync::OnceLock::new();

/// The process to run: --process FILE whole, else the container's own with the flags' changes.
fn process(a: &ExecArgs, c: &Container) -> anyhow::Result<Process> {
    if let Some(path) = &a.process {
        let data = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
            let _ = PROCESS_READ_ONCE.set((path.clone(), data.clone()));
        }
        let mut value: serde_json::Value =
            serde_json::from_slice(&data).with_context(|| format!("parse {}", path.display()))?;
        // runc takes a process without `user` as root's (the spec's zero value).
        if let Some(p) = value.as_object_mut() {
            p.entry("user")
                .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
        }
        return serde_json::from_value(value).with_context(|| format!("parse {}", path.display()));
    }
    if a.command.is_empty() {
        return Err(usage("exec needs a command or --process"));
    }
    let spec = husk_runtime::spec::load_file(&c.dir.saved_config())?.spec;
    let overrides = ExecOverrides {
        args: a.command.clone(),
        env: a.env.clone(),
        cwd: a.cwd.clone(),
        user: a.user.as_deref().map(parse_user).transpose()?,
        additional_gids: a.additional_gids.clone(),
        caps: a.cap.clone(),
        no_new_privs: a.no_new_privs,
        tty: a.tty,
    };
    Ok(exec_process(&spec, &overrides)?)
}

/// `exec instance://NAME`: the caller's environment passes (as Apptainer's does), under the
/// instance's own variables and --env; --cleanenv keeps it out, and so does a sandboxed instance
/// (nothing of the host's environment reaches a sandbox).
fn instance_env(a: &mut ExecArgs, c: &Container, sandboxed: bool) -> anyhow::Result<()> {
    let clean = std::mem::take(&mut a.launch.cleanenv);
    if clean || sandboxed || a.process.is_some() {
        return Ok(());
    }
    let spec = husk_runtime::spec::load_file(&c.dir.saved_config())?.spec;
    let own: Vec<String> = spec
        .process()
        .as_ref()
        .and_then(|p| p.env().clone())
        .unwrap_or_default();
    let host: Vec<(String, String)> = std::env::vars().collect();
    a.env = husk_launcher::env::exec_environment(&own, &host, &a.env);
    Ok(())
}

/// Opens `id` for exec: an unknown id that names a directory here gets a hint (an image needs a
/// path), an unknown instance is named as the user wrote it.
fn open_for_exec(g: &Global, id: &str, instance: Option<&str>) -> anyhow::Result<Container> {
    use husk_runtime::container::ContainerError;
    use husk_runtime::state::StateError;
    match open(g, id) {
        Ok((_, c)) => Ok(c),
        Err(e) => {
            let missing = matches!(
                e.downcast_ref::<ContainerError>(),
                Some(ContainerError::State(StateError::NotFound(_)))
            );
            match (missing, instance) {
                (true, Some(name)) => Err(no_instance(g, name)),
                (true, None) if std::path::Path::new(id).is_dir() => Err(anyhow::anyhow!(
                    "exec: no container {id}; for the image directory {id} here, write ./{id}"
                )),
                _ => Err(e),
            }
        }
    }
}

/// Instance `name`'s record, when it has one.
fn instance_record(g: &Global, name: &str) -> Option<husk_launcher::instance::Record> {
    use husk_launcher::instance as inst;
    let o = super::options(g).ok()?;
    inst::read_record(&inst::paths(&inst::dir_for(&o.root), name).record).ok()
}

/// Why instance `name` has no container: it exited (its record says with what), or there is none.
fn no_instance(g: &Global, name: &str) -> anyhow::Error {
    let exited = instance_record(g, name).and_then(|r| r.exit_code);
    match exited {
        Some(code) => anyhow::anyhow!(
            "instance {name} has exited (status {code}); `husk instance logs {name}` shows its output"
        ),
        None => anyhow::anyhow!("no such instance {name}"),
    }
}

pub fn run(g: &Global, mut a: ExecArgs) -> anyhow::Result<i32> {
    take_ipc_mode(&mut a);
    let name = husk_launcher::instance::from_uri(&a.id).map(str::to_string);
    let instance = name.is_some();
    if let Some(name) = &name {
        a.id = husk_launcher::instance::container_id(name);
    } else if husk_launcher::image::is_image_arg(&a.id) {
        return run_image(g, a);
    }
    // --cleanenv is the one launcher flag an instance takes (for its environment, below).
    let cleanenv = name.is_some() && std::mem::take(&mut a.launch.cleanenv);
    launch::reject_for_id("exec", &a.id, &a.launch)?;
    let c = open_for_exec(g, &a.id, name.as_deref())?;
    if let Some(name) = &name {
        a.launch.cleanenv = cleanenv;
        let sandboxed = instance_record(g, name).is_some_and(|r| r.sandbox);
        instance_env(&mut a, &c, sandboxed)?;
    }
    let proc_ = process(&a, &c)?;
    let opts = ExecOptions {
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        console_fd: None,
        detach: a.detach,
        preserve_fds: a.preserve_fds,
        // An instance's process keeps the caller's affinity, as a launch does (Slurm binding).
        reset_cpu_affinity: !instance,
        ignore_paused: a.ignore_paused,
        cgroup: a.cgroup.clone(),
    };
    crate::supervise::exec_in(&c, &a.id, proc_, opts)
}
