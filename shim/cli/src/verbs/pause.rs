//! `husk pause` / `husk resume`: freeze and thaw through the cgroup freezer.

use super::{context_id, open};
use crate::cli::Global;
use clap::Args;

#[derive(Debug, Args)]
pub struct PauseArgs {
    /// Container id
    pub id: String,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Container id
    pub id: String,
}

pub fn pause(g: &Global, a: PauseArgs) -> anyhow::Result<i32> {
    let (_, c) = open(g, &a.id)?;
    context_id(husk_runtime::container::pause(&c), "pause", &a.id)?;
    Ok(0)
}

pub fn resume(g: &Global, a: ResumeArgs) -> anyhow::Result<i32> {
    let (_, c) = open(g, &a.id)?;
    context_id(husk_runtime::container::resume(&c), "resume", &a.id)?;
    Ok(0)
}
