//! `husk state`: the OCI state of a container, as JSON on stdout.

use super::open;
use crate::cli::Global;
use clap::Args;

#[derive(Debug, Args)]
pub struct StateArgs {
    /// Container id
    pub id: String,
}

pub fn run(g: &Global, a: StateArgs) -> anyhow::Result<i32> {
    let (_, c) = open(g, &a.id)?;
    let st = c.state()?;
    println!("{}", serde_json::to_string_pretty(&st)?);
    Ok(0)
}
