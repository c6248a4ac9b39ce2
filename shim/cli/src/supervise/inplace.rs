//! The launcher's fast path: when nothing needs a supervising parent (no cgroup, no pid namespace,
//! no hooks, no terminal to proxy, no overlay), husk itself becomes the container and execs the
//! program, as ch-run does. The config stays in memory; the launch directory's files go into a
//! tmpfs only the container's mount namespace sees, so nothing is written to disk and nothing is
//! left to clean up. `HUSK_NO_FASTPATH=1` forces the normal path.

use super::launch::{launch_base, Failed};
use crate::verbs::launch::Request;
use anyhow::Context;
use husk_launcher::{Launch, Options};
use husk_runtime::container::{in_place_blocker, InPlace};
use husk_runtime::GlobalOptions;
use oci_spec::runtime::Spec;
use std::path::Path;

/// Why this launch takes the normal path, or None when it can run in place.
fn blocker(
    g: &GlobalOptions,
    req: &Request,
    opts: &Options,
    launch: &Launch,
    spec: &Spec,
) -> Option<&'static str> {
    if std::env::var_os("HUSK_NO_FASTPATH").is_some_and(|v| !v.is_empty() && v != "0") {
        return Some("HUSK_NO_FASTPATH is set");
    }
    if req.tty {
        return Some("a terminal (the parent proxies it)");
    }
    if opts.overlay.is_some() || !launch.dirs.is_empty() {
        return Some("an overlay");
    }
    in_place_blocker(g, spec, &req.engine)
}

/// Runs the launch in place when it can: never returns `Ok` once the namespaces are entered (the
/// program replaced husk). `Ok(())` means "not taken": the caller runs the normal path.
pub fn try_exec(
    g: &GlobalOptions,
    req: &Request,
    opts: &Options,
    launch: &Launch,
    dir: &Path,
) -> anyhow::Result<()> {
    // The launcher checked this conversion when it built the config.
    let Ok(spec) = serde_json::from_value::<Spec>(launch.config.clone()) else {
        return Ok(());
    };
    if let Some(why) = blocker(g, req, opts, launch, &spec) {
        log::debug!("launch through the engine's run: {why}");
        return Ok(());
    }
    let Some(base) = dir.parent().filter(|b| *b == launch_base()) else {
        return Ok(());
    };
    let planned = InPlace::plan(&spec, dir, &req.engine).and_then(|p| {
        make_base(base)?;
        p.unshare()?;
        Ok(p)
    });
    let inplace = match planned {
        Ok(p) => p,
        Err(e) => {
            // Nothing has changed yet: the normal path will report the same problem its own way.
            log::debug!("launch through the engine's run: {e}");
            return Ok(());
        }
    };
    log::debug!("launch in place in {}", dir.display());
    // From here on we are in the new namespaces: a failure ends the launch.
    let fail = || Failed(req.image.clone());
    inplace.setup(base).context(fail())?;
    std::fs::create_dir(dir)
        .with_context(|| format!("create {}", dir.display()))
        .context(fail())?;
    launch.write_files(dir).context(fail())?;
    let Err(e) = inplace.exec(&spec, dir);
    Err(anyhow::Error::from(e).context(fail()))
}

/// The launch base must exist to carry the tmpfs; created mode 0700 once, and must be ours.
fn make_base(base: &Path) -> Result<(), husk_runtime::container::ContainerError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let io = |source| husk_runtime::container::ContainerError::Io {
        op: "create",
        path: base.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(base)
        .map_err(io)?;
    let m = std::fs::symlink_metadata(base).map_err(io)?;
    if m.uid() != nix::unistd::geteuid().as_raw() || !m.is_dir() {
        return Err(io(std::io::Error::other("exists and is not ours")));
    }
    Ok(())
}
