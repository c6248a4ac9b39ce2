//! `husk run`: create and start; in the foreground, forward signals, proxy a terminal, clean up and
//! exit with the container's status (128+N when killed by signal N). With an IMAGE (a first
//! positional holding '/' or ':') instead of an id, the launcher face runs it ([`super::launch`]).

use super::create::BundleArgs;
use super::launch::{self, LaunchFlags};
use super::{options, usage};
use crate::cli::Global;
use crate::supervise::foreground;
use clap::Args;
use husk_launcher::image::is_image_arg;

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
