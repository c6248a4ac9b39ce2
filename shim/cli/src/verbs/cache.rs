//! `husk cache clean [--all]`: remove what no cached image uses (and leftovers of interrupted
//! imports), or everything.

use crate::cli::Global;
use anyhow::Context;
use clap::{Args, Subcommand};
use husk_image::Clean;

#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub action: CacheAction,
}

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Remove unused layers and rootfs trees and import leftovers; print what was removed
    Clean {
        /// Remove every image too
        #[arg(long)]
        all: bool,
    },
}

pub fn run(g: &Global, a: CacheArgs) -> anyhow::Result<i32> {
    let cache = super::cache(g);
    // Launch leftovers of killed runs too (and the workspaces they had not given back).
    if let Ok(o) = super::options(g) {
        crate::supervise::sweep::sweep(&o);
    }
    match a.action {
        CacheAction::Clean { all } => {
            let what = if all { Clean::All } else { Clean::Unused };
            let n = cache
                .clean(what)
                .with_context(|| format!("clean cache {}", cache.root().display()))?;
            println!(
                "removed {} images, {} rootfs, {} layers, {} leftovers",
                n.images, n.rootfs, n.layers, n.tmp
            );
        }
    }
    Ok(0)
}
