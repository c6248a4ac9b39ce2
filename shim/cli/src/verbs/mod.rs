//! One file per verb; each turns its flags into an engine call and prints the result.

pub mod batch;
pub mod bundle;
pub mod cache;
pub mod checkpoint;
pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod images;
pub mod instance;
pub mod kill;
pub mod launch;
pub mod list;
pub mod pause;
pub mod ps;
pub mod pull;
pub mod rmi;
pub mod run;
pub mod sandbox;
pub mod shell;
pub mod spec;
pub mod start;
pub mod state;
pub mod update;

use crate::cli::{CgroupLayout, CgroupManager, Command, Global, Tristate};
use anyhow::Context;
use husk_runtime::cgroup::{Driver, Layout, Options as CgroupOptions};
use husk_runtime::{Container, GlobalOptions};
use std::path::PathBuf;

/// A usage mistake found after parsing (exit status 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::error::Error for UsageError {}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

pub fn dispatch(g: &Global, cmd: Command) -> anyhow::Result<i32> {
    match cmd {
        Command::Create(a) => create::run(g, a.0),
        Command::Start(a) => start::run(g, a.0),
        Command::Run(a) => run::run(g, a.0),
        Command::State(a) => state::run(g, a.0),
        Command::Kill(a) => kill::run(g, a.0),
        Command::Delete(a) => delete::run(g, a.0),
        Command::List(a) => list::run(g, a.0),
        Command::Ps(a) => ps::run(g, a.0),
        Command::Exec(a) => exec::run(g, a.0),
        Command::Pause(a) => pause::pause(g, a.0),
        Command::Resume(a) => pause::resume(g, a.0),
        Command::Update(a) => update::run(g, a.0),
        Command::Events(a) => events::run(g, a.0),
        Command::Shell(a) => shell::run(g, a.0),
        Command::Bundle(a) => bundle::run(g, a.0),
        Command::Pull(a) => pull::run(g, a.0),
        Command::Images(a) => images::run(g, a.0),
        Command::Rmi(a) => rmi::run(g, a.0),
        Command::Cache(a) => cache::run(g, a.0),
        Command::Spec(a) => spec::run(a.0),
        Command::Features(a) => features::run(a.0),
        Command::Instance(a) => instance::run(g, a.0),
        Command::Batch(a) => batch::run(g, a.0),
        Command::BatchJob(a) => batch::job(g, a.0),
        Command::Checkpoint(a) => checkpoint::run("checkpoint", a.0),
        Command::Restore(a) => checkpoint::run("restore", a.0),
    }
}

/// The engine's global options from the flags.
pub fn options(g: &Global) -> anyhow::Result<GlobalOptions> {
    let euid = nix::unistd::geteuid();
    let rootless = match g.rootless {
        Tristate::True => true,
        Tristate::False => false,
        Tristate::Auto => !euid.is_root() || husk_runtime::ns::in_user_ns(),
    };
    let root = match &g.root {
        Some(r) => r.clone(),
        None => default_root(euid),
    };
    let driver = match (g.systemd_cgroup, g.cgroup_manager) {
        (_, Some(CgroupManager::Disabled)) => Driver::Disabled,
        (true, _) | (_, Some(CgroupManager::Systemd)) => Driver::Systemd,
        _ => Driver::Cgroupfs,
    };
    let layout = match g.cgroup_layout {
        CgroupLayout::Auto => Layout::Auto,
        CgroupLayout::V1 => Layout::V1,
        CgroupLayout::V2 => Layout::V2,
    };
    Ok(GlobalOptions {
        root,
        rootless,
        cgroup: CgroupOptions {
            driver,
            rootless,
            layout,
            ..CgroupOptions::default()
        },
    })
}

/// runc's rule: $XDG_RUNTIME_DIR/husk for an unprivileged user, and for "root" inside a user
/// namespace that is not really root (rootless podman runs us as uid 0 in its namespace, with
/// XDG_RUNTIME_DIR set and USER unset or its own name); /run/husk otherwise. Unprivileged without
/// XDG_RUNTIME_DIR: /run/user/UID/husk when that directory is the caller's, else /tmp/husk-UID
/// (refused at use if someone else made it: husk_runtime::state::private_dir).
fn default_root(euid: nix::unistd::Uid) -> PathBuf {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty());
    let userns_non_root =
        husk_runtime::ns::in_user_ns() && std::env::var("USER").map_or(true, |u| u != "root");
    match xdg {
        Some(d) if !euid.is_root() || userns_non_root => PathBuf::from(d).join("husk"),
        None if !euid.is_root() => match husk_runtime::state::runtime_dir() {
            Some(d) => d.join("husk"),
            None => husk_runtime::state::tmp_fallback("husk"),
        },
        _ => PathBuf::from("/run/husk"),
    }
}

/// Opens container `id`, with the id in the error.
pub fn open(g: &Global, id: &str) -> anyhow::Result<(GlobalOptions, Container)> {
    let opts = options(g)?;
    let c = Container::open(&opts, id)?;
    Ok((opts, c))
}

/// The image cache: --cache-dir (or HUSK_CACHE_DIR), else husk-image's default.
pub fn cache(g: &Global) -> husk_image::Cache {
    match &g.cache_dir {
        Some(d) => husk_image::Cache::new(d),
        None => husk_image::Cache::open_default(),
    }
}

/// Logs warnings the engine handed back (it returns them; printing is ours).
pub fn warn_all(warnings: &[String]) {
    for w in warnings {
        log::warn!("{w}");
    }
}

/// Adds "<verb> container <id>" to an engine error.
pub fn context_id<T>(
    r: Result<T, impl Into<anyhow::Error>>,
    verb: &str,
    id: &str,
) -> anyhow::Result<T> {
    r.map_err(Into::into)
        .with_context(|| format!("{verb} container {id}"))
}
