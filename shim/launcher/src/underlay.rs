//! The session root: mount points without writing to the image.
//!
//! The engine creates a missing mount point inside the rootfs, which for an image would mean
//! writing into it (refused for a root-owned image when rootless, and never wanted). So the
//! container's root is a skeleton directory in the launch dir, and the image is bound into it entry
//! by entry. A directory of the image that lies on the way to a missing mount point ($HOME, the cwd,
//! a --bind destination) is "split": the skeleton gets a real directory there and binds each of the
//! image's entries inside it one by one, and the missing part is created in the skeleton. Everything
//! else is one bind per top-level entry. Symlinks are copied as symlinks.
//!
//! Pure: the image is looked at through [`Fs`]; the skeleton is created by `Launch::write`.

use crate::host::{Fs, Kind};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("list image directory {path} (on the way to mount point {destination}): {source}")]
pub struct UnderlayError {
    pub path: PathBuf,
    pub destination: PathBuf,
    pub source: std::io::Error,
}

/// One skeleton entry, at a container path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Entry {
    Dir,
    File,
    Symlink(PathBuf),
}

/// The skeleton and the image paths to bind into it (in order, before any other mount).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Underlay {
    /// Container path → what to create in the skeleton; parents sort before children.
    pub skeleton: BTreeMap<PathBuf, Entry>,
    /// Container paths bound from the same path under the image rootfs.
    pub binds: Vec<PathBuf>,
}

fn names(p: &Path) -> Vec<&std::ffi::OsStr> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect()
}

fn in_image(rootfs: &Path, p: &Path) -> PathBuf {
    rootfs.join(p.strip_prefix("/").unwrap_or(p))
}

/// `destinations`: every mount point (absolute, clean) and whether it is a directory.
pub fn plan(
    rootfs: &Path,
    destinations: &[(PathBuf, bool)],
    fs: &dyn Fs,
) -> Result<Underlay, UnderlayError> {
    // A mount point below another one is created inside that mount, not in the image.
    let needed: Vec<&(PathBuf, bool)> = destinations
        .iter()
        .filter(|(d, _)| {
            !destinations
                .iter()
                .any(|(o, _)| o != d && d.starts_with(o) && o != Path::new("/"))
        })
        .collect();
    let mut split: BTreeSet<PathBuf> = BTreeSet::from([PathBuf::from("/")]);
    let mut made: BTreeMap<PathBuf, Entry> = BTreeMap::new();
    for (dest, is_dir) in &needed {
        let parts = names(dest);
        let mut cur = PathBuf::from("/");
        let mut prefix = Vec::new();
        for (i, name) in parts.iter().enumerate() {
            let next = cur.join(name);
            match fs.lstat(&in_image(rootfs, &next)) {
                Some(Kind::Dir) => {
                    prefix.push(cur.clone());
                    cur = next;
                }
                // The engine follows the link (inside the root), or fails on a file: not ours.
                Some(_) => break,
                None => {
                    split.extend(prefix.drain(..));
                    split.insert(cur.clone());
                    for (j, n) in parts.iter().enumerate().skip(i) {
                        cur.push(n);
                        let last = j + 1 == parts.len();
                        let e = if last && !is_dir {
                            Entry::File
                        } else {
                            Entry::Dir
                        };
                        made.entry(cur.clone()).or_insert(e);
                    }
                    break;
                }
            }
        }
    }
    let dests: BTreeSet<&PathBuf> = needed.iter().map(|(d, _)| d).collect();
    let mut out = Underlay {
        skeleton: made,
        binds: Vec::new(),
    };
    for dir in &split {
        let listing = fs
            .list(&in_image(rootfs, dir))
            .map_err(|source| UnderlayError {
                path: in_image(rootfs, dir),
                destination: needed
                    .iter()
                    .map(|(d, _)| d.clone())
                    .find(|d| d.starts_with(dir))
                    .unwrap_or_else(|| dir.clone()),
                source,
            })?;
        for (name, kind) in listing {
            let p = dir.join(name);
            let entry = match kind {
                _ if split.contains(&p) => Entry::Dir,
                Kind::Symlink(t) => Entry::Symlink(t),
                Kind::Dir => Entry::Dir,
                Kind::File => Entry::File,
            };
            // Something is mounted right here anyway: the image's copy would only be covered.
            let covered = dests.contains(&p);
            if !split.contains(&p) && !covered && !matches!(entry, Entry::Symlink(_)) {
                out.binds.push(p.clone());
            }
            out.skeleton.insert(p, entry);
        }
    }
    out.skeleton.remove(Path::new("/"));
    Ok(out)
}

#[cfg(test)]
pub(crate) mod fake {
    use crate::host::{Fs, Kind};
    use std::collections::BTreeMap;
    use std::ffi::OsString;
    use std::path::{Path, PathBuf};

    /// An in-memory tree: absolute path → kind (parents implied by their children).
    #[derive(Default)]
    pub struct FakeFs {
        pub nodes: BTreeMap<PathBuf, Kind>,
        pub files: BTreeMap<PathBuf, String>,
    }

    impl FakeFs {
        pub fn dir(mut self, p: &str) -> Self {
            let mut cur = PathBuf::from("/");
            for c in Path::new(p).components().skip(1) {
                cur.push(c);
                self.nodes.entry(cur.clone()).or_insert(Kind::Dir);
            }
            self
        }
        pub fn file(mut self, p: &str, text: &str) -> Self {
            let path = PathBuf::from(p);
            self = self.dir(path.parent().unwrap().to_str().unwrap());
            self.nodes.insert(path.clone(), Kind::File);
            self.files.insert(path, text.into());
            self
        }
        pub fn link(mut self, p: &str, target: &str) -> Self {
            let path = PathBuf::from(p);
            self = self.dir(path.parent().unwrap().to_str().unwrap());
            self.nodes.insert(path, Kind::Symlink(target.into()));
            self
        }
    }

    impl Fs for FakeFs {
        fn lstat(&self, path: &Path) -> Option<Kind> {
            if path == Path::new("/") {
                return Some(Kind::Dir);
            }
            self.nodes.get(path).cloned()
        }
        fn stat(&self, path: &Path) -> Option<Kind> {
            match self.lstat(path)? {
                Kind::Symlink(_) => Some(Kind::File),
                k => Some(k),
            }
        }
        fn list(&self, path: &Path) -> std::io::Result<Vec<(OsString, Kind)>> {
            if self.lstat(path) != Some(Kind::Dir) {
                return Err(std::io::ErrorKind::NotFound.into());
            }
            Ok(self
                .nodes
                .iter()
                .filter(|(p, _)| p.parent() == Some(path))
                .map(|(p, k)| (p.file_name().unwrap().to_owned(), k.clone()))
                .collect())
        }
        fn read(&self, path: &Path) -> Option<String> {
            self.files.get(path).cloned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeFs;
    use super::*;

    fn image() -> FakeFs {
        FakeFs::default()
            .dir("/img/usr/bin")
            .link("/img/bin", "usr/bin")
            .dir("/img/etc")
            .file("/img/etc/passwd", "")
            .dir("/img/home")
            .dir("/img/proc")
            .dir("/img/tmp")
    }

    fn d(p: &str) -> (PathBuf, bool) {
        (p.into(), true)
    }

    #[test]
    fn top_level_binds_and_symlinks() {
        let u = plan(
            "/img".as_ref(),
            &[d("/proc"), d("/tmp"), (PathBuf::from("/etc/passwd"), false)],
            &image(),
        )
        .unwrap();
        assert_eq!(
            u.binds,
            vec![PathBuf::from("/etc"), "/home".into(), "/usr".into()]
        );
        assert_eq!(
            u.skeleton[Path::new("/bin")],
            Entry::Symlink("usr/bin".into())
        );
        assert_eq!(u.skeleton[Path::new("/proc")], Entry::Dir);
        assert!(!u.skeleton.contains_key(Path::new("/etc/passwd")));
    }

    #[test]
    fn missing_mount_points_split_their_parents() {
        let u = plan(
            "/img".as_ref(),
            &[
                d("/home/u"),
                d("/home/u/sub"),
                d("/work/x"),
                (PathBuf::from("/etc/hosts"), false),
            ],
            &image(),
        )
        .unwrap();
        // /home and /etc are split (rebuilt in the skeleton), their existing entries bound.
        let binds = ["/proc", "/tmp", "/usr", "/etc/passwd"].map(PathBuf::from);
        assert_eq!(u.binds, binds);
        assert_eq!(u.skeleton[Path::new("/home")], Entry::Dir);
        assert_eq!(u.skeleton[Path::new("/home/u")], Entry::Dir);
        assert_eq!(u.skeleton[Path::new("/work/x")], Entry::Dir);
        assert_eq!(u.skeleton[Path::new("/etc/hosts")], Entry::File);
        assert_eq!(u.skeleton[Path::new("/etc/passwd")], Entry::File);
        // /home/u/sub is created inside the /home/u mount, not here.
        assert!(!u.skeleton.contains_key(Path::new("/home/u/sub")));
    }

    #[test]
    fn unlistable_dir_names_the_mount_point() {
        let e = plan("/nope".as_ref(), &[d("/x")], &image()).unwrap_err();
        assert!(e.to_string().contains("mount point /x"), "{e}");
    }
}
