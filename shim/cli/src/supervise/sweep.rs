//! Leftovers of launches whose husk was killed (SIGKILL runs no cleanup): the program died with it
//! (the init's PR_SET_PDEATHSIG, `CreateOptions::die_with_parent`), but its launch directory, its
//! container's state and cgroup, a fresh workspace and a lent `--workspace` not yet given back
//! stay. The next launch, `delete --force`, `instance stop` and `cache clean` sweep them.
//!
//! Only entries named as [`super::launch::new_id`] names them (`husk-PID-XXXXXXXX`, and
//! `husk-PID-XXXXXXXX.workspace`) whose PID no longer runs are touched; a PID that runs (its husk,
//! or a reuse of the number) is left alone. A lent workspace is given back through
//! [`super::host::give_back`]: by descriptor, and only when the path is still the directory lent.

use super::host;
use super::launch::{launch_base, sandbox_base};
use husk_launcher::sandbox::Lent;
use husk_runtime::container::delete;
use husk_runtime::{Container, GlobalOptions};
use std::path::Path;

/// Where a run records the workspace it lent, in its launch directory.
pub const LENT_FILE: &str = "lent.json";

/// A launch entry's owner pid, and whether it is a workspace (`.workspace`) or a launch dir.
fn owner(name: &str) -> Option<(i32, bool)> {
    let (id, workspace) = match name.strip_suffix(".workspace") {
        Some(id) => (id, true),
        None => (name, false),
    };
    let (pid, hex) = id.strip_prefix("husk-")?.split_once('-')?;
    let hex_ok = hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    let pid: i32 = pid.parse().ok().filter(|&p| p > 0)?;
    hex_ok.then_some((pid, workspace))
}

/// Records `lent` in launch directory `dir` (0600), so a sweep can give it back.
pub fn record_lent(dir: &Path, lent: &Lent) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join(LENT_FILE))?;
    f.write_all(&serde_json::to_vec(lent)?)?;
    Ok(())
}

/// Sweeps both launch bases (the plain launcher's and the sandbox's).
pub fn sweep(g: &GlobalOptions) {
    let mut bases = vec![launch_base(), sandbox_base()];
    bases.dedup();
    for base in bases {
        sweep_base(g, &base);
    }
}

fn sweep_base(g: &GlobalOptions, base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some((pid, workspace)) = name.to_str().and_then(owner) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let path = e.path();
        log::debug!("sweep {}: its husk ({pid}) is gone", path.display());
        if !workspace {
            let id = name.to_string_lossy();
            if let Ok(text) = std::fs::read(path.join(LENT_FILE)) {
                if let Ok(lent) = serde_json::from_slice::<Lent>(&text) {
                    host::give_back(&lent);
                }
            }
            if let Ok(c) = Container::open(g, &id) {
                if let Err(err) = delete(&c, true) {
                    log::warn!("sweep container {id}: {err}");
                }
            }
        }
        let removed = if workspace {
            std::fs::remove_dir_all(&path)
        } else {
            husk_launcher::spec::remove_launch_dir(&path)
        };
        if let Err(err) = removed {
            log::warn!("sweep {}: {err}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::owner;

    #[test]
    fn only_launch_names_are_swept() {
        assert_eq!(owner("husk-123-0a1b2c3d"), Some((123, false)));
        assert_eq!(owner("husk-123-0a1b2c3d.workspace"), Some((123, true)));
        for other in [
            "husk-0-0a1b2c3d",
            "husk-x-0a1b2c3d",
            "husk-1-0a1b2c3",
            "batch-1",
            "husk-1-zzzzzzzz",
        ] {
            assert_eq!(owner(other), None, "{other}");
        }
    }
}
