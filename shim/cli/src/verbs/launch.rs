//! The launcher face: `husk run|exec|shell IMAGE`. Its flags (shared by run, exec, shell, bundle
//! and instance start) and the [`Request`] the verbs hand over; [`crate::supervise::launch`] runs
//! it, or [`super::sandbox`] with `--sandbox`. Failures of the launcher itself exit 255, so they
//! cannot be mistaken for the program's status.

use super::usage;
use crate::cli::Global;
use clap::{Args, ValueEnum};
use husk_launcher::Verb;
use husk_runtime::CreateOptions;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetArg {
    Host,
    None,
}

/// Flags of the launcher face, shared by run, exec, shell and bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
#[command(next_help_heading = "Launcher options (with an IMAGE)")]
pub struct LaunchFlags {
    /// Bind a host path: SRC[:DST[:ro|rw]] (repeatable, or comma-separated)
    #[arg(short = 'B', long, value_name = "SPEC")]
    pub bind: Vec<String>,
    /// Do not bind $HOME
    #[arg(long)]
    pub no_home: bool,
    /// Bind nothing from the host but --bind: fresh /tmp, minimal /dev, empty $HOME, no cwd
    #[arg(long)]
    pub contain: bool,
    /// --contain plus new pid and ipc namespaces and --cleanenv
    #[arg(short = 'C', long)]
    pub containall: bool,
    /// Working directory inside [default: the cwd when bound, else the image's, else /]
    #[arg(long, value_name = "DIR")]
    pub pwd: Option<PathBuf>,
    /// New pid namespace (the program is pid 1)
    #[arg(long)]
    pub pid: bool,
    /// IPC namespace: host (the host's) or private (a new one; so is a bare --ipc), given as
    /// --ipc=MODE or --ipc MODE [default: the profile's]
    #[arg(
        long,
        value_name = "MODE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = ""
    )]
    pub ipc: Option<String>,
    /// Network: the host's, or none (a new namespace with only loopback, up)
    /// [default: the profile's]
    #[arg(long, value_enum, value_name = "MODE")]
    pub net: Option<NetArg>,
    /// Hostname inside (in a new UTS namespace)
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Run as root inside, in a user namespace that maps you to it
    #[arg(short = 'f', long)]
    pub fakeroot: bool,
    /// Use a user namespace even when run as root
    #[arg(long)]
    pub userns: bool,
    /// Do not pass the host's environment (TERM and LANG are kept)
    #[arg(long)]
    pub cleanenv: bool,
    /// Set variables from KEY=VALUE lines of FILE (repeatable; --env wins)
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Spec template: hpc, default or rootless (see spec-templates/) [default: hpc]
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Memory limit in bytes (k, m, g, t suffixes), through cgroups where the host allows
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPU limit, e.g. 1.5
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// Maximum number of processes
    #[arg(long, value_name = "N")]
    pub pids_limit: Option<i64>,
    /// Mount the image read-write (writes go into the image directory; rootfs directories only)
    #[arg(short = 'w', long)]
    pub writable: bool,
    /// Make the root writable through an overlay whose changes are thrown away at exit (kept in
    /// the launch directory, a tmpfs under $XDG_RUNTIME_DIR or /run); the image is not touched
    #[arg(long, conflicts_with_all = ["writable", "overlay"])]
    pub writable_tmpfs: bool,
    /// Make the root writable through an overlay whose changes persist in DIR/upper (DIR/work
    /// beside it; both created if missing; new entries right under / do not persist); the image
    /// is not touched
    #[arg(long, value_name = "DIR", conflicts_with = "writable")]
    pub overlay: Option<PathBuf>,
    /// Let the program mount FUSE filesystems: /dev/fuse passed (usable by root only where it is
    /// mode 0600) and CAP_SYS_ADMIN, in a user namespace of the container's own
    #[arg(long)]
    pub fuse: bool,
    /// Pass the X11 display: DISPLAY, /tmp/.X11-unix and the $XAUTHORITY file (else
    /// ~/.Xauthority), read-only
    #[arg(long)]
    pub x11: bool,
    /// Add capabilities to the program (comma-separated, e.g. CAP_NET_ADMIN,sys_ptrace), in every
    /// set, also for a non-root user inside
    #[arg(long, value_name = "CAPS")]
    pub add_caps: Vec<String>,
    /// Take capabilities away from the program (comma-separated)
    #[arg(long, value_name = "CAPS")]
    pub drop_caps: Vec<String>,
    /// Add a CDI device: VENDOR/CLASS=NAME, NAME "all" for every device of the kind (repeatable);
    /// its vendor's spec file says which device nodes, mounts, env and hooks it needs
    #[arg(long, value_name = "VENDOR/CLASS=NAME")]
    pub device: Vec<String>,
    /// Every NVIDIA GPU, through its CDI spec: --device nvidia.com/gpu=all (nvidia-ctk cdi generate
    /// writes the spec)
    #[arg(long, alias = "nv")]
    pub gpu: bool,
    /// Where CDI spec files (*.json, *.yaml) are read, instead of /etc/cdi and /var/run/cdi (repeatable;
    /// later directories win)
    #[arg(long, value_name = "DIR", env = "HUSK_CDI_DIR", value_delimiter = ':')]
    pub cdi_dir: Vec<PathBuf>,
    /// Print the config.json that would run, and exit
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub sandbox: super::sandbox::SandboxFlags,
}

impl LaunchFlags {
    /// Was any launcher flag given? (They mean nothing with a container id.)
    pub fn given(&self) -> bool {
        *self != LaunchFlags::default()
    }
}

/// One launch as the verbs hand it over.
pub struct Request {
    pub verb: Verb,
    pub image: String,
    pub flags: LaunchFlags,
    /// `--env` values (KEY=VALUE).
    pub env: Vec<String>,
    pub tty: bool,
    /// Engine options that make sense here (pid file, preserved fds, no_pivot, keyring).
    pub engine: CreateOptions,
}

/// `--ipc host IMAGE ...`: clap takes the mode only after `=` (so that `husk exec --ipc IMAGE CMD`
/// keeps meaning a new namespace), which leaves a bare --ipc and "host" or "private" as the first
/// of `positionals`. When more follow, that word is the mode: take it off. (An image directory
/// named host or private, after a bare --ipc, is then written ./host.)
pub fn ipc_mode_from(flags: &mut LaunchFlags, positionals: &mut Vec<String>) {
    let bare = flags.ipc.as_deref() == Some("");
    if bare && positionals.len() > 1 && matches!(positionals[0].as_str(), "host" | "private") {
        flags.ipc = Some(positionals.remove(0));
    }
}

/// Checks a positional that would have been an IMAGE and says what went wrong with an id.
pub fn reject_for_id(verb: &str, id: &str, flags: &LaunchFlags) -> anyhow::Result<()> {
    if flags.given() {
        return Err(usage(format!(
            "{verb}: launcher options need an IMAGE (a path such as ./rootfs); {id:?} is a container id"
        )));
    }
    Ok(())
}

pub fn run(g: &Global, mut req: Request) -> anyhow::Result<i32> {
    // husk supervises the launch: killed, it must not leave the program running.
    req.engine.die_with_parent = true;
    if req.flags.sandbox.sandbox {
        return super::sandbox::run(g, req);
    }
    crate::supervise::launch::run(g, req)
}
