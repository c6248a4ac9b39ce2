//! `husk delete`: remove a stopped container; --force kills it first.

use super::{context_id, options, warn_all};
use crate::cli::Global;
use clap::Args;
use husk_runtime::Container;

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Kill the container if it is still running, then delete it
    #[arg(short, long)]
    pub force: bool,
    /// Container id
    pub id: String,
}

pub fn run(g: &Global, a: DeleteArgs) -> anyhow::Result<i32> {
    let opts = options(g)?;
    if a.force {
        // A killed launch's container is swept with its launch directory and workspace.
        crate::supervise::sweep::sweep(&opts);
    }
    let c = match Container::open(&opts, &a.id) {
        Ok(c) => c,
        // runc: deleting a missing container with --force is not an error.
        Err(husk_runtime::container::ContainerError::State(
            husk_runtime::state::StateError::NotFound(_),
        )) if a.force => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let warnings = context_id(
        husk_runtime::container::delete(&c, a.force),
        "delete",
        &a.id,
    )?;
    warn_all(&warnings);
    Ok(0)
}
