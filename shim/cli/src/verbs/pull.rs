//! `husk pull IMAGE`: import an image into the cache (layers verified and unpacked once) and print
//! its digest, or with --json what the import did (`cached` is true on a cache hit).

use crate::cli::Global;
use clap::Args;
use husk_launcher::CachedImages;
use serde_json::json;

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Print a JSON object (key, digest, rootfs, layers, and what this import did)
    #[arg(long)]
    pub json: bool,
    /// Image: docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE, or a path
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

pub fn run(g: &Global, a: PullArgs) -> anyhow::Result<i32> {
    let bar = crate::progress::Bar::new();
    let source = CachedImages {
        cache: super::cache(g),
        progress: &|p| bar.report(p),
    };
    let img = source.import(&a.image)?;
    drop(bar);
    super::warn_all(&img.warnings);
    let Some(digest) = &img.digest else {
        anyhow::bail!(
            "pull {}: a rootfs directory is used in place, not cached",
            a.image
        );
    };
    if a.json {
        let v = json!({
            "key": img.key,
            "digest": digest.to_string(),
            "rootfs": img.rootfs,
            "layers": img.layers.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "cached": img.stats.cached,
            "layers_unpacked": img.stats.layers_unpacked,
            "layers_cached": img.stats.layers_cached,
            "bytes_read": img.stats.bytes_read,
        });
        println!("{v}");
    } else {
        println!("{digest}");
    }
    Ok(0)
}
