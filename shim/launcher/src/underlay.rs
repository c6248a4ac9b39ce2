//! The session root: mount points without writing to the image.
//!
//! The engine creates a missing mount point inside the rootfs, which for an image would mean
//! writing into it (refused for a root-owned image when rootless, and never wanted). [`plan`]
//! walks each mount point through the image the way the engine's resolver will (symlinks followed
//! inside the root, `..` stopping at /, mount points met on the way) and notes what it would
//! create, and in which existing directory of the image: a *split point*. Then:
//! - no split point: the root is the image itself (the engine binds it once, read-only);
//! - a split point P other than /, read-only overlays usable ([`Mode::overlay`]): one overlay at P
//!   whose layers are the image's P over `under/P`, which holds only what is missing; a split point
//!   below P joins P's overlay;
//! - otherwise P is *split*: `under/P` is bound at P with each of the image's entries of P bound
//!   into it, the missing part created there; only P, not its parents;
//! - the root is the skeleton `rootfs/` instead, each top-level entry of the image bound into it,
//!   when / itself lacks an entry, and whenever a directory is split: its entries are bound from
//!   paths under the image, which with the image as the root would lead through the mount at P.
//!
//! `rootfs/` and `under/` are in the launch directory; both are keyed by container path. Symlinks
//! of listed directories are copied as symlinks. Pure: the image is looked at through [`Fs`]; the
//! directories are created by `Launch::write`.

use crate::host::{Fs, Kind};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("list image directory {path} (on the way to mount point {destination}): {source}")]
pub struct UnderlayError {
    pub path: PathBuf,
    pub destination: PathBuf,
    pub source: std::io::Error,
}

/// One entry of `rootfs/` or `under/`, at a container path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Entry {
    Dir,
    File,
    Symlink(PathBuf),
}

/// One mount of the underlay, at a container path; all come before any other mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layer {
    /// The image's path, bound at the same place.
    Image(PathBuf),
    /// `under/P` bound at P: a split directory.
    Split(PathBuf),
    /// A read-only overlay at P: the image's P over `under/P`.
    Overlay(PathBuf),
}

impl Layer {
    pub fn path(&self) -> &Path {
        match self {
            Layer::Image(p) | Layer::Split(p) | Layer::Overlay(p) => p,
        }
    }
}

/// The session root's plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Underlay {
    /// The root is the skeleton `rootfs/` (else the image itself).
    pub skeleton_root: bool,
    /// `rootfs/`: container path → entry; parents sort before children.
    pub skeleton: BTreeMap<PathBuf, Entry>,
    /// `under/`: the split directories and the overlays' upper layers.
    pub under: BTreeMap<PathBuf, Entry>,
    /// In order: parents before children.
    pub mounts: Vec<Layer>,
}

/// What the launch allows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mode {
    /// Read-only overlays can be mounted (overlayfs there, Linux 5.11 or later in a user
    /// namespace, the image on a filesystem known to work as a lower layer: [`overlay_lower`])
    /// and the image is mounted read-only.
    pub overlay: bool,
    /// Always the skeleton root with every top-level entry bound (--writable keeps new top-level
    /// entries out of the image; --writable-tmpfs and --overlay turn the binds into writable
    /// overlays).
    pub skeleton_root: bool,
}

/// Symlinks followed in one resolution, as the engine's resolver and the kernel allow.
const MAX_LINKS: usize = 40;

/// Container path `p` under the directory `root` (the image, the skeleton, a layer).
pub(crate) fn inside(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

/// Queues the components of `path` before what is already queued ("." and "/" dropped).
fn push_front(todo: &mut VecDeque<OsString>, path: &Path) {
    for c in path.components().rev() {
        match c {
            Component::Normal(n) => todo.push_front(n.to_os_string()),
            Component::ParentDir => todo.push_front("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

/// What the engine's resolver creates for mount point `dest` (in order, each in the directory
/// before it), given what earlier mount points made. None when the resolution fails or ends inside
/// an `earlier` mount point: then nothing is created in the image either.
fn walk(
    rootfs: &Path,
    (dest, is_dir): (&Path, bool),
    earlier: &[&Path],
    made: &BTreeMap<PathBuf, Entry>,
    fs: &dyn Fs,
) -> Option<Vec<(PathBuf, Entry)>> {
    let mut done = PathBuf::from("/");
    let mut todo = VecDeque::new();
    push_front(&mut todo, dest);
    let mut links = 0;
    let mut out: Vec<(PathBuf, Entry)> = Vec::new();
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            done.pop();
            continue;
        }
        let next = done.join(&name);
        if earlier.contains(&next.as_path()) {
            // Mounted over (nothing to create), or resolved inside that mount: not the image's.
            return todo.is_empty().then_some(out);
        }
        let known = out.iter().find(|(p, _)| *p == next).map(|(_, e)| e);
        let kind = match known.or_else(|| made.get(&next)) {
            Some(Entry::Dir) => Some(Kind::Dir),
            Some(_) => Some(Kind::File),
            None => fs.lstat(&inside(rootfs, &next)),
        };
        match kind {
            Some(Kind::Dir) => done = next,
            Some(Kind::Symlink(target)) => {
                links += 1;
                if links > MAX_LINKS {
                    return None;
                }
                if target.is_absolute() {
                    done = PathBuf::from("/");
                }
                push_front(&mut todo, &target);
            }
            Some(Kind::File) if todo.is_empty() => done = next,
            // ENOTDIR: the engine fails before creating anything.
            Some(Kind::File) => return None,
            None => {
                let e = if todo.is_empty() && !is_dir {
                    Entry::File
                } else {
                    Entry::Dir
                };
                out.push((next.clone(), e));
                done = next;
            }
        }
    }
    Some(out)
}

/// Filesystems an image may sit on to be an overlay's lower layer (statfs f_type): local disks,
/// tmpfs, squashfs, erofs, overlayfs itself, NFS and FUSE. Anything else (a cluster filesystem,
/// say) gets the binds of a split directory instead, which work on any filesystem.
const OVERLAY_LOWERS: &[i64] = &[
    0xEF53,      // ext2/3/4
    0x5846_5342, // xfs
    0x9123_683E, // btrfs
    0xF2F5_2010, // f2fs
    0x2FC1_2FC1, // zfs
    0x0102_1994, // tmpfs
    0x8584_58F6, // ramfs
    0x7371_7368, // squashfs
    0xE0F5_E1E2, // erofs
    0x794C_7630, // overlayfs
    0x6969,      // nfs
    0x6573_5546, // fuse
];

/// Can an image on a filesystem of this type be an overlay's lower layer?
pub fn overlay_lower(fs_type: Option<i64>) -> bool {
    fs_type.is_some_and(|t| OVERLAY_LOWERS.contains(&t))
}

/// A path overlayfs can take in its lowerdir option.
pub fn overlay_safe(p: &Path) -> bool {
    p.to_str().is_some_and(|t| !t.contains([',', ':', '\\']))
}

/// Adds `p` and its missing parents (as directories) to `tree`.
fn insert(tree: &mut BTreeMap<PathBuf, Entry>, p: &Path, e: Entry) {
    for a in p.ancestors().skip(1) {
        if a != Path::new("/") {
            tree.entry(a.to_path_buf()).or_insert(Entry::Dir);
        }
    }
    tree.insert(p.to_path_buf(), e);
}

/// The image directory made path `p` hangs from: its first ancestor that is not made.
fn split_of(made: &BTreeMap<PathBuf, Entry>, p: &Path) -> PathBuf {
    let mut q = p.parent().unwrap_or(Path::new("/"));
    while made.contains_key(q) {
        q = q.parent().unwrap_or(Path::new("/"));
    }
    q.to_path_buf()
}

/// Everything the engine would create for `needed` (in mount order), container path → entry.
fn missing(rootfs: &Path, needed: &[(&Path, bool)], fs: &dyn Fs) -> BTreeMap<PathBuf, Entry> {
    let mut made: BTreeMap<PathBuf, Entry> = BTreeMap::new();
    for (i, &dest) in needed.iter().enumerate() {
        let earlier: Vec<&Path> = needed[..i].iter().map(|(d, _)| *d).collect();
        for (p, e) in walk(rootfs, dest, &earlier, &made, fs).unwrap_or_default() {
            made.entry(p).or_insert(e);
        }
    }
    made
}

/// The plan being laid out: what is missing and how each split point gets it.
struct Layout<'a> {
    rootfs: &'a Path,
    made: BTreeMap<PathBuf, Entry>,
    overlays: Vec<PathBuf>,
    splits: BTreeSet<PathBuf>,
    /// The mount points: a listing does not bind the image's entry there.
    dests: BTreeSet<&'a Path>,
    destinations: &'a [(PathBuf, bool)],
}

impl Layout<'_> {
    /// Mounted by the underlay itself: a listing leaves it as an empty directory.
    fn own(&self, p: &Path) -> bool {
        self.splits.contains(p) || self.overlays.iter().any(|o| o == p)
    }

    /// Lays out `dir` (/, an overlay or a split directory) into `u`.
    fn dir(&self, u: &mut Underlay, dir: &Path, fs: &dyn Fs) -> Result<(), UnderlayError> {
        let root = dir == Path::new("/");
        let overlay = self.overlays.iter().any(|o| o == dir);
        let tree = if root { &mut u.skeleton } else { &mut u.under };
        insert(tree, dir, Entry::Dir);
        // An overlay's layer holds what its split points below lack too.
        let mine = |p: &Path| {
            let at = split_of(&self.made, p);
            if overlay {
                at.starts_with(dir)
            } else {
                at == dir
            }
        };
        for (p, e) in self.made.iter().filter(|(p, _)| mine(p)) {
            insert(tree, p, e.clone());
        }
        if overlay {
            u.mounts.push(Layer::Overlay(dir.to_path_buf()));
            return Ok(());
        }
        if !root && !dir.parent().is_some_and(|p| self.splits.contains(p)) {
            u.mounts.push(Layer::Split(dir.to_path_buf()));
        }
        let path = inside(self.rootfs, dir);
        let listing = fs.list(&path).map_err(|source| UnderlayError {
            path: path.clone(),
            destination: self.a_destination_in(dir),
            source,
        })?;
        for (name, kind) in listing {
            let p = dir.join(name);
            let entry = match kind {
                _ if self.own(&p) => Entry::Dir,
                Kind::Symlink(t) => Entry::Symlink(t),
                Kind::Dir => Entry::Dir,
                Kind::File => Entry::File,
            };
            // Something is mounted right here anyway: the image's copy would only be covered.
            let covered = self.own(&p) || self.dests.contains(p.as_path());
            if !covered && !matches!(entry, Entry::Symlink(_)) {
                u.mounts.push(Layer::Image(p.clone()));
            }
            tree.insert(p, entry);
        }
        Ok(())
    }

    /// A mount point `dir` is listed for, for an error message.
    fn a_destination_in(&self, dir: &Path) -> PathBuf {
        let mut all = self
            .made
            .keys()
            .chain(self.destinations.iter().map(|(d, _)| d));
        all.find(|p| p.starts_with(dir))
            .cloned()
            .unwrap_or_else(|| dir.to_path_buf())
    }
}

/// `destinations`: every mount point (absolute, clean) in mount order, and whether it is a
/// directory.
pub fn plan(
    rootfs: &Path,
    destinations: &[(PathBuf, bool)],
    mode: Mode,
    fs: &dyn Fs,
) -> Result<Underlay, UnderlayError> {
    // A mount point below another one is created inside that mount, not in the image.
    let needed: Vec<(&Path, bool)> = destinations
        .iter()
        .filter(|(d, _)| {
            !destinations
                .iter()
                .any(|(o, _)| o != d && d.starts_with(o) && o != Path::new("/"))
        })
        .map(|(d, is_dir)| (d.as_path(), *is_dir))
        .collect();
    let made = missing(rootfs, &needed, fs);
    let root = Path::new("/");
    let points: BTreeSet<PathBuf> = made.keys().map(|p| split_of(&made, p)).collect();
    let mut l = Layout {
        rootfs,
        made,
        overlays: Vec::new(),
        splits: BTreeSet::new(),
        dests: needed.iter().map(|(d, _)| *d).collect(),
        destinations,
    };
    for p in points.iter().filter(|p| *p != root) {
        if l.overlays.iter().any(|a| p.starts_with(a)) {
            continue;
        }
        if mode.overlay && overlay_safe(p) {
            l.overlays.push(p.clone());
        } else {
            l.splits.insert(p.clone());
        }
    }
    let skeleton_root = mode.skeleton_root || points.contains(root) || !l.splits.is_empty();
    let mut u = Underlay {
        skeleton_root,
        ..Underlay::default()
    };
    // Parents before children: a mount inside another comes after it.
    let mut order: BTreeSet<&Path> = l
        .splits
        .iter()
        .chain(&l.overlays)
        .map(|p| p.as_path())
        .collect();
    if skeleton_root {
        order.insert(root);
    }
    for dir in order {
        l.dir(&mut u, dir, fs)?;
    }
    u.skeleton.remove(root);
    Ok(u)
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
        /// statfs f_type of every path (default ext4).
        pub fs_type: Option<i64>,
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
        fn fs_type(&self, _path: &Path) -> Option<i64> {
            Some(self.fs_type.unwrap_or(0xEF53))
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
            .dir("/img/usr/share/doc")
            .link("/img/bin", "usr/bin")
            .dir("/img/etc/ssl")
            .file("/img/etc/passwd", "")
            .file("/img/etc/group", "")
            .dir("/img/home")
            .dir("/img/proc")
            .dir("/img/tmp")
            .dir("/img/run")
    }

    fn d(p: &str) -> (PathBuf, bool) {
        (p.into(), true)
    }

    fn f(p: &str) -> (PathBuf, bool) {
        (p.into(), false)
    }

    const OVERLAY: Mode = Mode {
        overlay: true,
        skeleton_root: false,
    };
    const NO_OVERLAY: Mode = Mode {
        overlay: false,
        skeleton_root: false,
    };

    fn mounts(u: &Underlay) -> Vec<String> {
        u.mounts.iter().map(|l| format!("{l:?}")).collect()
    }

    #[test]
    fn nothing_missing_is_the_image_itself() {
        let dests = [d("/proc"), d("/tmp"), f("/etc/passwd"), d("/home")];
        for mode in [OVERLAY, NO_OVERLAY] {
            let u = plan("/img".as_ref(), &dests, mode, &image()).unwrap();
            assert_eq!(u, Underlay::default(), "{mode:?}");
        }
    }

    #[test]
    fn a_missing_entry_overlays_only_its_directory() {
        let dests = [d("/tmp"), f("/etc/hosts"), d("/home/u"), d("/home/u/sub")];
        let u = plan("/img".as_ref(), &dests, OVERLAY, &image()).unwrap();
        assert!(!u.skeleton_root);
        assert!(u.skeleton.is_empty());
        assert_eq!(mounts(&u), [r#"Overlay("/etc")"#, r#"Overlay("/home")"#]);
        let under: Vec<_> = u
            .under
            .iter()
            .map(|(p, e)| (p.clone(), e.clone()))
            .collect();
        assert_eq!(
            under,
            [
                ("/etc".into(), Entry::Dir),
                ("/etc/hosts".into(), Entry::File),
                ("/home".into(), Entry::Dir),
                ("/home/u".into(), Entry::Dir),
            ]
        );
    }

    #[test]
    fn a_split_point_below_an_overlay_joins_it() {
        let dests = [
            f("/etc/hosts"),
            d("/etc/ssl/private"),
            d("/usr/share/doc/x/y"),
        ];
        let u = plan("/img".as_ref(), &dests, OVERLAY, &image()).unwrap();
        assert_eq!(
            mounts(&u),
            [r#"Overlay("/etc")"#, r#"Overlay("/usr/share/doc")"#]
        );
        assert_eq!(u.under[Path::new("/etc/ssl")], Entry::Dir);
        assert_eq!(u.under[Path::new("/etc/ssl/private")], Entry::Dir);
        // Parents of a layer are plain directories of under/, never mounted.
        assert_eq!(u.under[Path::new("/usr")], Entry::Dir);
        assert_eq!(u.under[Path::new("/usr/share/doc/x/y")], Entry::Dir);
    }

    #[test]
    fn without_overlays_only_the_lacking_directory_is_split() {
        let dests = [
            d("/proc"),
            d("/tmp"),
            f("/etc/passwd"),
            f("/etc/hosts"),
            d("/usr/share/data"),
        ];
        let u = plan("/img".as_ref(), &dests, NO_OVERLAY, &image()).unwrap();
        assert!(u.skeleton_root);
        assert_eq!(
            mounts(&u),
            [
                // The root's entries, but what is split or mounted over.
                r#"Image("/home")"#,
                r#"Image("/run")"#,
                r#"Image("/usr")"#,
                r#"Split("/etc")"#,
                r#"Image("/etc/group")"#,
                r#"Image("/etc/ssl")"#,
                // Inside the /usr bind: /usr itself is not split.
                r#"Split("/usr/share")"#,
                r#"Image("/usr/share/doc")"#,
            ]
        );
        assert_eq!(
            u.skeleton[Path::new("/bin")],
            Entry::Symlink("usr/bin".into())
        );
        assert_eq!(u.skeleton[Path::new("/etc")], Entry::Dir);
        assert_eq!(u.under[Path::new("/etc/hosts")], Entry::File);
        assert_eq!(u.under[Path::new("/etc/passwd")], Entry::File);
        assert_eq!(u.under[Path::new("/usr/share/data")], Entry::Dir);
        assert!(!u.skeleton.contains_key(Path::new("/etc/hosts")));
    }

    #[test]
    fn a_missing_top_level_entry_needs_the_skeleton_root() {
        let dests = [d("/tmp"), f("/etc/hosts"), d("/work/x")];
        let u = plan("/img".as_ref(), &dests, OVERLAY, &image()).unwrap();
        assert!(u.skeleton_root);
        assert_eq!(u.skeleton[Path::new("/work")], Entry::Dir);
        assert_eq!(u.skeleton[Path::new("/work/x")], Entry::Dir);
        assert_eq!(u.skeleton[Path::new("/etc")], Entry::Dir);
        let m = mounts(&u);
        assert!(m.contains(&r#"Overlay("/etc")"#.to_string()), "{m:?}");
        assert!(!m.contains(&r#"Image("/etc")"#.to_string()), "{m:?}");
        assert!(!m.contains(&r#"Image("/tmp")"#.to_string()), "{m:?}");
    }

    #[test]
    fn symlinks_are_followed_inside_the_image() {
        let fs = image()
            .link("/img/etc/resolv.conf", "../run/systemd/stub.conf")
            .link("/img/var/run", "/run")
            .link("/img/loop", "loop");
        let dests = [f("/etc/resolv.conf"), d("/var/run/user/1"), d("/loop/x")];
        let u = plan("/img".as_ref(), &dests, OVERLAY, &fs).unwrap();
        assert_eq!(mounts(&u), [r#"Overlay("/run")"#]);
        assert_eq!(u.under[Path::new("/run/systemd/stub.conf")], Entry::File);
        assert_eq!(u.under[Path::new("/run/user/1")], Entry::Dir);
        // A loop fails in the engine (ELOOP) before anything is made.
        assert!(!u.under.keys().any(|p| p.starts_with("/loop")));
    }

    #[test]
    fn a_link_into_an_earlier_mount_makes_nothing() {
        let fs = image().link("/img/etc/hosts", "/tmp/hosts");
        let u = plan("/img".as_ref(), &[d("/tmp"), f("/etc/hosts")], OVERLAY, &fs).unwrap();
        assert_eq!(u, Underlay::default());
    }

    #[test]
    fn a_directory_overlayfs_cannot_name_is_split() {
        let fs = image().dir("/img/a:b");
        let u = plan("/img".as_ref(), &[d("/a:b/c")], OVERLAY, &fs).unwrap();
        assert!(u.skeleton_root);
        assert!(mounts(&u).contains(&r#"Split("/a:b")"#.to_string()));
    }

    #[test]
    fn forced_skeleton_root_binds_every_entry() {
        let mode = Mode {
            overlay: false,
            skeleton_root: true,
        };
        let u = plan("/img".as_ref(), &[], mode, &image()).unwrap();
        assert!(u.skeleton_root);
        assert_eq!(u.mounts.len(), 6, "{:?}", u.mounts);
        assert_eq!(u.skeleton.len(), 7);
    }

    #[test]
    fn unlistable_dir_names_the_mount_point() {
        let e = plan("/nope".as_ref(), &[d("/x")], OVERLAY, &image()).unwrap_err();
        assert!(e.to_string().contains("mount point /x"), "{e}");
    }
}
