//! `husk start`: let a created container's process run.

use super::{context_id, open, warn_all};
use crate::cli::Global;
use clap::Args;

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Container id
    pub id: String,
}

pub fn run(g: &Global, a: StartArgs) -> anyhow::Result<i32> {
    let (_, mut c) = open(g, &a.id)?;
    let warnings = context_id(c.start(), "start", &a.id)?;
    warn_all(&warnings);
    Ok(0)
}
