//! `husk rmi IMAGE|KEY`: remove an image's record and rootfs from the cache; its layers stay (other
//! images may share them) until `husk cache clean`.

use crate::cli::Global;
use clap::Args;

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Digest (sha256:HEX), key (HEX or a unique prefix of at least 4), or a source as pulled
    #[arg(value_name = "IMAGE|KEY", required = true)]
    pub images: Vec<String>,
}

pub fn run(g: &Global, a: RmiArgs) -> anyhow::Result<i32> {
    let cache = super::cache(g);
    for key in &a.images {
        let img = cache.remove(key)?;
        match &img.digest {
            Some(d) => println!("{d}"),
            None => println!("{}", img.key),
        }
    }
    Ok(0)
}
