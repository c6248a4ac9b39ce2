//! The sandbox's host side around the container: what root's sandbox id must be able to reach
//! (the image, the workspace, the launch directory), handed over before the start and given back
//! after it, and the `--result` file, opened before the program starts.

use anyhow::Context;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Root's sandbox mounts as `id`, which has no privilege over host files: every directory above
/// `path` must let it search (others' x bit, or its own), or the mount fails with EACCES.
pub fn reachable(id: u32, path: &Path, what: &str) -> anyhow::Result<()> {
    for dir in path.ancestors().skip(1) {
        let m = std::fs::metadata(dir).with_context(|| format!("{what} {}", path.display()))?;
        let mode = m.mode();
        let ok = mode & 0o001 != 0
            || (m.uid() == id && mode & 0o100 != 0)
            || (m.gid() == id && mode & 0o010 != 0);
        if !ok {
            anyhow::bail!(
                "{what} {}: {} (mode {:o}) is not searchable by the sandbox's host id {id}; \
                 use a path every directory of which others may search",
                path.display(),
                dir.display(),
                mode & 0o7777
            );
        }
    }
    Ok(())
}

/// Root's image cache is 0700 (its images' set-id files must not be reachable by local users); root's
/// sandbox runs as `id`, which must reach the image it runs. Each cache directory above the image
/// that nobody else may search is given to group `id` with search only (0710): the sandbox's id,
/// and no local user, can then pass through (and its no_new_privs makes set-id files inert).
pub fn share_cache(id: u32, cache: &Path, image: &Path) -> anyhow::Result<()> {
    for dir in image.ancestors().skip(1) {
        if !dir.starts_with(cache) {
            break;
        }
        let m = std::fs::metadata(dir)?;
        if m.mode() & 0o011 != 0 || m.uid() != nix::unistd::geteuid().as_raw() {
            continue;
        }
        std::os::unix::fs::chown(dir, None, Some(id))
            .with_context(|| format!("share {} with the sandbox id {id}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o710))
            .with_context(|| format!("share {} with the sandbox id {id}", dir.display()))?;
    }
    Ok(())
}

/// A `--workspace` of the caller's, lent to the sandbox's id: its owner and mode before.
pub struct Lent {
    uid: u32,
    gid: u32,
    mode: u32,
}

/// Root's sandbox runs as `id` in a user namespace: the launch directory must be searchable by
/// it and the workspace its own. Returns the workspace's owner and mode to restore afterwards (a
/// `--workspace` of the caller's: the code, its owner meanwhile, may chmod it), or None.
pub fn hand_over(id: u32, dir: &Path, ws: &Path, given: bool) -> anyhow::Result<Option<Lent>> {
    let search = std::fs::Permissions::from_mode(0o711);
    for d in [dir.parent(), Some(dir)].into_iter().flatten() {
        std::fs::set_permissions(d, search.clone())
            .with_context(|| format!("open {} to the sandbox id", d.display()))?;
    }
    let before = std::fs::symlink_metadata(ws)?;
    std::os::unix::fs::lchown(ws, Some(id), Some(id))
        .with_context(|| format!("give --workspace {} to host id {id}", ws.display()))?;
    Ok(given.then(|| Lent {
        uid: before.uid(),
        gid: before.gid(),
        mode: before.mode() & 0o7777,
    }))
}

/// Gives a lent `--workspace` back (a warning when it cannot).
pub fn give_back(ws: &Path, lent: Lent) {
    let back = std::os::unix::fs::lchown(ws, Some(lent.uid), Some(lent.gid))
        .and_then(|()| std::fs::set_permissions(ws, std::fs::Permissions::from_mode(lent.mode)));
    if let Err(e) = back {
        log::warn!("give --workspace {} back: {e}", ws.display());
    }
}

/// `--result FILE`, opened (created, truncated, never through a symlink) before the program
/// starts; the record is written through this descriptor. The file may sit in the workspace, where
/// the program can replace it: a symlink it puts there must not aim husk's write (as root, maybe)
/// at a host file.
pub struct ResultFile {
    path: PathBuf,
    file: std::fs::File,
}

impl ResultFile {
    pub fn open(path: &Path) -> anyhow::Result<ResultFile> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
            .with_context(|| format!("open --result {}", path.display()))?;
        Ok(ResultFile {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Is `path` still the file we opened?
    fn still_ours(&self) -> bool {
        match (self.file.metadata(), std::fs::symlink_metadata(&self.path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }

    pub fn write(mut self, text: &str) -> anyhow::Result<()> {
        use std::io::Write;
        self.file
            .write_all(text.as_bytes())
            .with_context(|| format!("write --result {}", self.path.display()))?;
        if !self.still_ours() {
            log::warn!(
                "--result {}: the program replaced it; the record went to the file opened before \
                 the start, no longer at that path (keep --result outside the workspace)",
                self.path.display()
            );
        }
        Ok(())
    }

    /// Husk failed: leave nothing behind (but only our own, empty file).
    pub fn remove(self) {
        if self.still_ours() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
