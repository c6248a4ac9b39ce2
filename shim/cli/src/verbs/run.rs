//! `husk run`: create and start; in the foreground, forward signals, proxy a terminal, clean up and
//! exit with the container's status (128+N when killed by signal N). With an IMAGE (a first
//! positional holding '/' or ':') instead of an id, the launcher face runs it ([`super::launch`]).

use super::create::BundleArgs;
use super::launch::{self, LaunchFlags};
use super::{context_id, options, usage, warn_all};
use crate::cli::Global;
use clap::Args;
use husk_launcher::image::is_image_arg;
use husk_runtime::container::{create, CreateMode};
use husk_runtime::{process, CreateOptions, GlobalOptions};

#[derive(Debug, Args)]
#[command(trailing_var_arg = true)]
pub struct RunArgs {
    /// Return once the container has started, leaving it running
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the stopped container (state, cgroup) after it exits, for `state`/`delete` later
    #[arg(long)]
    pub keep: bool,
    #[command(flatten)]
    pub b: BundleArgs,
    /// With an IMAGE: arguments replacing the image's cmd
    #[arg(allow_hyphen_values = true, value_name = "ARGS")]
    pub args: Vec<String>,
    /// Set a variable inside (repeatable)
    #[arg(
        short,
        long,
        value_name = "KEY=VALUE",
        help_heading = "Launcher options (with an IMAGE)"
    )]
    pub env: Vec<String>,
    /// Allocate a pseudo-TTY
    #[arg(short, long, help_heading = "Launcher options (with an IMAGE)")]
    pub tty: bool,
    #[command(flatten)]
    pub launch: LaunchFlags,
}

pub fn run(g: &Global, mut a: RunArgs) -> anyhow::Result<i32> {
    let mut words = vec![std::mem::take(&mut a.b.id)];
    words.append(&mut a.args);
    launch::ipc_mode_from(&mut a.launch, &mut words);
    a.b.id = words.remove(0);
    a.args = words;
    if is_image_arg(&a.b.id) {
        return run_image(g, a);
    }
    launch::reject_for_id("run", &a.b.id, &a.launch)?;
    if !a.args.is_empty() || !a.env.is_empty() || a.tty {
        return Err(usage(format!(
            "run: arguments, --env and --tty need an IMAGE; {:?} is a container id",
            a.b.id
        )));
    }
    let opts = options(g)?;
    foreground(&opts, &a.b.id, &a.b.engine(), a.detach, a.keep)
}

fn run_image(g: &Global, a: RunArgs) -> anyhow::Result<i32> {
    if a.detach || a.keep || a.b.console_socket.is_some() || a.b.bundle.is_some() {
        return Err(usage(
            "run IMAGE: --detach, --keep, --console-socket and --bundle apply to bundles only",
        ));
    }
    let engine = a.b.engine();
    launch::run(
        g,
        launch::Request {
            verb: husk_launcher::Verb::Run { args: a.args },
            image: a.b.id,
            flags: a.launch,
            env: a.env,
            tty: a.tty,
            engine,
        },
    )
}

/// Creates and releases container `id`; unless detached, waits (forwarding signals, proxying a
/// terminal) and, unless kept, deletes it. Returns the container's exit status.
pub fn foreground(
    opts: &GlobalOptions,
    id: &str,
    engine: &CreateOptions,
    detach: bool,
    keep: bool,
) -> anyhow::Result<i32> {
    // Blocked before the container exists, so no signal meant for it is lost.
    let sigs = if detach {
        None
    } else {
        Some(process::block_signals()?)
    };
    let mut created = context_id(create(opts, id, engine, CreateMode::Run), "run", id)?;
    warn_all(&created.warnings);
    let console = created.console.take();
    let released = created.release();
    let result = released.map_err(anyhow::Error::from).and_then(|w| {
        warn_all(&w);
        let Some(sigs) = sigs else { return Ok(0) };
        let proxy = match console {
            Some(sock) => Some(crate::tty::TtyProxy::start(&sock)?),
            None => None,
        };
        let code = process::wait_forwarding(created.spawned.pid, &sigs)?;
        drop(proxy);
        Ok(code)
    });
    if (detach || keep) && result.is_ok() {
        return result;
    }
    // Foreground (or failed detach): the container is over; remove it.
    match created.remove() {
        Ok(w) => warn_all(&w),
        Err(e) => log::warn!("clean up container {id}: {e}"),
    }
    context_id(result, "run", id)
}
