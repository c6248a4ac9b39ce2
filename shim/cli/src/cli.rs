//! The flag table: global flags and the verbs. Help, man pages and completions are generated from it.

use crate::logger::Format;
use crate::verbs;
use clap::{ArgMatches, Args, FromArgMatches, Parser, Subcommand, ValueEnum};
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
    Create(Lazy<verbs::create::CreateArgs>),
    /// Start a created container's process
    Start(Lazy<verbs::start::StartArgs>),
    /// Create and start a container, or run an IMAGE (run IMAGE [ARGS...]); exit with its status
    Run(Lazy<verbs::run::RunArgs>),
    /// Print a container's OCI state as JSON
    State(Lazy<verbs::state::StateArgs>),
    /// Send a signal to a container's init (or all its processes)
    Kill(Lazy<verbs::kill::KillArgs>),
    /// Delete a stopped container (or any, with --force)
    Delete(Lazy<verbs::delete::DeleteArgs>),
    /// List containers
    #[command(alias = "ls")]
    List(Lazy<verbs::list::ListArgs>),
    /// List a container's processes
    Ps(Lazy<verbs::ps::PsArgs>),
    /// Run a new process in a running container, or a command in an IMAGE (exec IMAGE CMD...)
    Exec(Lazy<verbs::exec::ExecArgs>),
    /// Run an interactive shell in an IMAGE
    Shell(Lazy<verbs::shell::ShellArgs>),
    /// Write the bundle (config.json + rootfs) that `run IMAGE` would run
    Bundle(Lazy<verbs::bundle::BundleArgs>),
    /// Import an image into the cache and print its digest
    Pull(Lazy<verbs::pull::PullArgs>),
    /// List the images in the cache
    Images(Lazy<verbs::images::ImagesArgs>),
    /// Remove an image from the cache (its layers stay until `cache clean`)
    Rmi(Lazy<verbs::rmi::RmiArgs>),
    /// Manage the image cache
    Cache(Lazy<verbs::cache::CacheArgs>),
    /// Freeze every process of a container
    Pause(Lazy<verbs::pause::PauseArgs>),
    /// Thaw a paused container
    Resume(Lazy<verbs::pause::ResumeArgs>),
    /// Change a container's resource limits
    Update(Lazy<verbs::update::UpdateArgs>),
    /// Print container events and resource statistics as JSON
    Events(Lazy<verbs::events::EventsArgs>),
    /// Write a new config.json
    Spec(Lazy<verbs::spec::SpecArgs>),
    /// Print the OCI features this runtime supports, as JSON
    ///
    /// Annotations husk acts on (listed under "annotations" as
    /// org.opencontainers.runtime-spec.features.husk.annotation.NAME):
    /// run.husk.landlock.write=PATH[:PATH...] limits the container's writes with Landlock to
    /// those absolute container paths (and /dev/null, zero, full, random, urandom, tty, ptmx,
    /// /dev/pts), whatever the mounts allow; reading and executing stay allowed. Best effort: on
    /// a kernel without Landlock the container runs with a warning; a bad value fails create.
    Features(Lazy<verbs::features::FeaturesArgs>),
    /// Run IMAGEs as named instances in the background (start, list, stop)
    Instance(Lazy<verbs::instance::InstanceArgs>),
    /// Run many sandboxed jobs (JSON lines) N at a time; one result line per job
    Batch(Lazy<verbs::batch::BatchArgs>),
    /// One job of a batch (run by `husk batch`)
    #[command(hide = true)]
    BatchJob(Lazy<verbs::batch::JobArgs>),
    /// Checkpoint a running container (runc's CRIU verb): not supported
    #[command(hide = true)]
    Checkpoint(Lazy<verbs::checkpoint::CriuArgs>),
    /// Restore a container from a checkpoint (runc's CRIU verb): not supported
    #[command(hide = true)]
    Restore(Lazy<verbs::checkpoint::CriuArgs>),
}

/// A verb's flags, added to its subcommand only when clap builds that subcommand: when it is the
/// verb being parsed, or for help and man pages. Building every verb's flags on every call was most
/// of the user-space work of a `husk exec IMAGE` or `husk state` (~0.75 M of 2 M instructions).
#[derive(Debug)]
pub struct Lazy<T>(pub T);

impl<T: Args> Args for Lazy<T> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.defer(|c| keep_about(c, T::augment_args))
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        cmd.defer(|c| keep_about(c, T::augment_args_for_update))
    }
    fn group_id() -> Option<clap::Id> {
        T::group_id()
    }
}

/// The verb's own description (from the `Command` variant) wins over the flags struct's doc comment,
/// as it does when the flags are added first.
fn keep_about(c: clap::Command, add: fn(clap::Command) -> clap::Command) -> clap::Command {
    let (about, long) = (c.get_about().cloned(), c.get_long_about().cloned());
    let c = add(c);
    let c = match about {
        Some(a) => c.about(a),
        None => c.about(None::<&str>),
    };
    match long {
        Some(l) => c.long_about(l),
        None => c.long_about(None::<&str>),
    }
}

impl<T: FromArgMatches> FromArgMatches for Lazy<T> {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches(m).map(Lazy)
    }
    fn from_arg_matches_mut(m: &mut ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches_mut(m).map(Lazy)
    }
    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(m)
    }
    fn update_from_arg_matches_mut(&mut self, m: &mut ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches_mut(m)
    }
}
