//! `husk run`: create and start; in the foreground, forward signals, proxy a terminal, clean up and
//! exit with the container's status (128+N when killed by signal N).

use super::create::BundleArgs;
use super::{context_id, options, warn_all};
use crate::cli::Global;
use anyhow::Context;
use clap::Args;
use husk_runtime::container::{create, delete, CreateMode};
use husk_runtime::process;
use husk_runtime::Container;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Return once the container has started, leaving it running
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the stopped container (state, cgroup) after it exits, for `state`/`delete` later
    #[arg(long)]
    pub keep: bool,
    #[command(flatten)]
    pub b: BundleArgs,
}

pub fn run(g: &Global, a: RunArgs) -> anyhow::Result<i32> {
    let opts = options(g)?;
    let id = a.b.id.clone();
    // Blocked before the container exists, so no signal meant for it is lost.
    let sigs = if a.detach {
        None
    } else {
        Some(process::block_signals()?)
    };
    let mut created = context_id(
        create(&opts, &id, &a.b.engine(), CreateMode::Run),
        "run",
        &id,
    )?;
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
    if (a.detach || a.keep) && result.is_ok() {
        return result;
    }
    // Foreground (or failed detach): the container is over; remove it.
    let c = Container::open(&opts, &id).with_context(|| format!("run container {id}"))?;
    match delete(&c, true) {
        Ok(w) => warn_all(&w),
        Err(e) => log::warn!("clean up container {id}: {e}"),
    }
    context_id(result, "run", &id)
}
