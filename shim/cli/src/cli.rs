//! The flag table: global flags and the verbs. Help, man pages and completions are generated from it.

use crate::logger::Format;
use crate::verbs;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// husk: a daemonless, rootless container launcher and runc-compatible OCI runtime.
#[derive(Debug, Parser)]
#[command(name = "husk", disable_version_flag = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Tristate {
    True,
    False,
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CgroupManager {
    Cgroupfs,
    Systemd,
    Disabled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CgroupLayout {
    Auto,
    V1,
    V2,
}

/// Global flags (accepted before the verb, as runc's are).
#[derive(Debug, Args)]
pub struct Global {
    /// Directory for container state [default: /run/husk, or $XDG_RUNTIME_DIR/husk when not root]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Write log records to FILE instead of stderr
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Log record format
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: Format,
    /// Log each setup step
    #[arg(long)]
    pub debug: bool,
    /// Drive cgroups through systemd (needs systemd as PID 1)
    #[arg(long)]
    pub systemd_cgroup: bool,
    /// Rootless mode: cgroup failures become one warning; auto = not root, or inside a user namespace
    #[arg(long, value_enum, default_value = "auto", value_name = "BOOL")]
    pub rootless: Tristate,
    /// Cgroup manager (podman passes this)
    #[arg(long, value_enum, value_name = "MANAGER")]
    pub cgroup_manager: Option<CgroupManager>,
    /// Cgroup hierarchy to drive; auto detects v1/hybrid/v2 from /sys/fs/cgroup
    #[arg(long, value_enum, default_value = "auto", env = "HUSK_CGROUP_LAYOUT")]
    pub cgroup_layout: CgroupLayout,
    /// Accepted for runc compatibility; checkpointing is not supported
    #[arg(long, hide = true)]
    pub criu: Option<String>,
    /// Image cache directory [default: /var/cache/husk, or $XDG_CACHE_HOME/husk, ~/.cache/husk]
    #[arg(long, global = true, value_name = "DIR", env = "HUSK_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Print version, commit and OCI spec version
    #[arg(short = 'v', long)]
    pub version: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container from a bundle; its process waits for `start`
    Create(verbs::create::CreateArgs),
    /// Start a created container's process
    Start(verbs::start::StartArgs),
    /// Create and start a container, or run an IMAGE (run IMAGE [ARGS...]); exit with its status
    Run(verbs::run::RunArgs),
    /// Print a container's OCI state as JSON
    State(verbs::state::StateArgs),
    /// Send a signal to a container's init (or all its processes)
    Kill(verbs::kill::KillArgs),
    /// Delete a stopped container (or any, with --force)
    Delete(verbs::delete::DeleteArgs),
    /// List containers
    #[command(alias = "ls")]
    List(verbs::list::ListArgs),
    /// List a container's processes
    Ps(verbs::ps::PsArgs),
    /// Run a new process in a running container, or a command in an IMAGE (exec IMAGE CMD...)
    Exec(verbs::exec::ExecArgs),
    /// Run an interactive shell in an IMAGE
    Shell(verbs::shell::ShellArgs),
    /// Write the bundle (config.json + rootfs) that `run IMAGE` would run
    Bundle(verbs::bundle::BundleArgs),
    /// Import an image into the cache and print its digest
    Pull(verbs::pull::PullArgs),
    /// List the images in the cache
    Images(verbs::images::ImagesArgs),
    /// Remove an image from the cache (its layers stay until `cache clean`)
    Rmi(verbs::rmi::RmiArgs),
    /// Manage the image cache
    Cache(verbs::cache::CacheArgs),
    /// Freeze every process of a container
    Pause(verbs::pause::PauseArgs),
    /// Thaw a paused container
    Resume(verbs::pause::ResumeArgs),
    /// Change a container's resource limits
    Update(verbs::update::UpdateArgs),
    /// Print container events and resource statistics as JSON
    Events(verbs::events::EventsArgs),
    /// Write a new config.json
    Spec(verbs::spec::SpecArgs),
    /// Print the OCI features this runtime supports, as JSON
    ///
    /// Annotations husk acts on (listed under "annotations" as
    /// org.opencontainers.runtime-spec.features.husk.annotation.NAME):
    /// run.husk.landlock.write=PATH[:PATH...] limits the container's writes with Landlock to
    /// those absolute container paths (and /dev/null, zero, full, random, urandom, tty, ptmx,
    /// /dev/pts), whatever the mounts allow; reading and executing stay allowed. Best effort: on
    /// a kernel without Landlock the container runs with a warning; a bad value fails create.
    Features(verbs::features::FeaturesArgs),
    /// Run IMAGEs as named instances in the background (start, list, stop)
    Instance(verbs::instance::InstanceArgs),
    /// Run many sandboxed jobs (JSON lines) N at a time; one result line per job
    Batch(verbs::batch::BatchArgs),
    /// One job of a batch (run by `husk batch`)
    #[command(hide = true)]
    BatchJob(verbs::batch::JobArgs),
}
