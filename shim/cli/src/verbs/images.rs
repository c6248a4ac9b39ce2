//! `husk images`: the images in the cache, as a table or (--json) their records.

use crate::cli::Global;
use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Print the cache records as a JSON array
    #[arg(long)]
    pub json: bool,
}

pub fn run(g: &Global, a: ImagesArgs) -> anyhow::Result<i32> {
    let cache = super::cache(g);
    let images = cache
        .list()
        .with_context(|| format!("list images in {}", cache.root().display()))?;
    if a.json {
        println!("{}", serde_json::to_string(&images)?);
        return Ok(0);
    }
    println!("{:<12}  {:>6}  SOURCES", "KEY", "LAYERS");
    for i in &images {
        println!(
            "{:<12}  {:>6}  {}",
            &i.key[..i.key.len().min(12)],
            i.layers.len(),
            i.sources.join(", ")
        );
    }
    Ok(0)
}
