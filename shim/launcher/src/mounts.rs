//! The container's mounts (before the image underlay) and its working directory.
//!
//! Default (Apptainer's): host /proc (a fresh one with a pid namespace), /sys read-only, /dev,
//! /tmp, $HOME and the cwd bound from the host; without a user namespace, a read-only cgroupfs of
//! the container's own cgroup namespace on /sys/fs/cgroup; /etc/passwd and /etc/group from the launch dir;
//! /etc/resolv.conf and /etc/hosts from the host, read-only; then each --bind in order, so a
//! --bind wins over a default at the same place. --contain: a fresh /tmp, a minimal /dev and an
//! empty $HOME instead, and no cwd bind.

use crate::host::{Fs, HostFacts, Kind};
use crate::options::Options;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MountError {
    #[error("bind {0}: no such file or directory")]
    Source(PathBuf),
    #[error("bind {0}: cannot bind over /")]
    Root(PathBuf),
    #[error("--pwd {0}: not an absolute path")]
    Pwd(PathBuf),
    #[error("--fuse: /dev/fuse: no such device on this host (is the fuse module loaded?)")]
    NoFuse,
}

/// One entry of the spec's `mounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub destination: PathBuf,
    pub typ: &'static str,
    pub source: PathBuf,
    pub options: Vec<&'static str>,
    /// Is the mount point a directory (else a file)?
    pub is_dir: bool,
    /// For binds of host paths: the cwd is visible inside when it lies under one.
    pub host_bind: bool,
}

/// Mounts in order, the working directory, and notes for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    pub mounts: Vec<Mount>,
    pub pwd: PathBuf,
    pub warnings: Vec<String>,
}

/// Where the cwd is never bound: binding a host system directory over the image's would mix the
/// two distributions.
const SYSTEM: &[&str] = &[
    "/proc", "/sys", "/dev", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    "/usr", "/boot", "/run", "/var/lib", "/var/run",
];

fn fs_mount(dest: &str, typ: &'static str, opts: &[&'static str]) -> Mount {
    Mount {
        destination: dest.into(),
        typ,
        source: typ.into(),
        options: opts.to_vec(),
        is_dir: true,
        host_bind: false,
    }
}

fn bind(source: &Path, dest: &Path, opts: &[&'static str], is_dir: bool, host: bool) -> Mount {
    Mount {
        destination: dest.into(),
        typ: "bind",
        source: source.into(),
        options: opts.to_vec(),
        is_dir,
        host_bind: host,
    }
}

/// Absolute, lexically clean ("a/../b" → "/b").
pub fn clean(base: &Path, p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in base.join(p).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// The mounts in order (see the module comment), the working directory, and notes for the user.
pub fn plan(
    opts: &Options,
    host: &HostFacts,
    fs: &dyn Fs,
    pidns: bool,
    userns: bool,
    bundle: &Path,
    working_dir: Option<&str>,
) -> Result<MountPlan, MountError> {
    let mut m = Vec::new();
    let mut warnings = Vec::new();
    let contained = opts.contained();
    kernel_fs(&mut m, pidns, contained);
    sys(&mut m, host, userns);
    tmp(&mut m, contained);
    etc_files(&mut m, fs, bundle);
    if opts.fuse {
        // A --bind onto /dev/fuse brings its own node (e.g. a 0666 one made for the user).
        let own = opts
            .binds
            .iter()
            .any(|b| clean(Path::new("/"), &b.destination) == Path::new(FUSE));
        fuse(host, fs, contained, own, &mut m, &mut warnings)?;
    }
    if opts.x11 {
        x11(host, fs, &mut m, &mut warnings);
    }
    if !opts.no_home {
        home(host, fs, contained, &mut m, &mut warnings);
    }
    let user = user_binds(opts, host, fs)?;
    if !contained {
        m.extend(cwd_bind(&host.cwd, &m, &user));
    }
    m.extend(user);
    // Parents before what lies under them, whatever added them in which order: a file bound under
    // a directory that is bound too ($XAUTHORITY under $HOME or the cwd) must land on top of it,
    // not under it. Stable, so of two mounts at one place the later (a --bind) still wins.
    m.sort_by_key(|x| x.destination.components().count());
    let pwd = pwd(opts, &m, &host.cwd, working_dir)?;
    Ok(MountPlan {
        mounts: m,
        pwd,
        warnings,
    })
}

/// /proc, /dev (a minimal one when contained) and /sys.
fn kernel_fs(m: &mut Vec<Mount>, pidns: bool, contained: bool) {
    if pidns {
        m.push(fs_mount("/proc", "proc", &["nosuid", "noexec", "nodev"]));
    } else {
        // A user namespace may not mount a proc of a pid namespace it does not own.
        let sys_opts = ["rbind", "nosuid", "noexec", "nodev"];
        m.push(bind(
            "/proc".as_ref(),
            "/proc".as_ref(),
            &sys_opts,
            true,
            false,
        ));
    }
    if contained {
        m.extend(minimal_dev());
    } else {
        m.push(bind(
            "/dev".as_ref(),
            "/dev".as_ref(),
            &["rbind", "nosuid"],
            true,
            false,
        ));
    }
}

/// /sys: the host's, read-only down to every mount below it (`rro`: the cgroup hierarchies,
/// debugfs, bpf, ...; plain `ro` makes only the top mount read-only). Then, without a user
/// namespace, where the process may be real root with Docker's capabilities (CAP_DAC_OVERRIDE):
/// a read-only cgroupfs of the launch's own cgroup namespace on /sys/fs/cgroup, so it can neither
/// move itself out of its cgroup nor raise its limits, and sees only its own subtree. In a user
/// namespace the host's cgroup files are not its to write, and cgroup v1 cannot be mounted there.
/// mount_setattr(2), behind `rro`, came with Linux 5.12: before it, `ro` and the cgroupfs.
fn sys(m: &mut Vec<Mount>, host: &HostFacts, userns: bool) {
    let ro: &'static str = if host.kernel >= (5, 12) { "rro" } else { "ro" };
    m.push(bind(
        "/sys".as_ref(),
        "/sys".as_ref(),
        &["rbind", "nosuid", "noexec", "nodev", ro],
        true,
        false,
    ));
    if !userns {
        m.push(fs_mount(
            "/sys/fs/cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        ));
    }
}

/// A tmpfs /dev with its own devpts and /dev/shm.
fn minimal_dev() -> [Mount; 3] {
    [
        fs_mount(
            "/dev",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        fs_mount(
            "/dev/pts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
            ],
        ),
        fs_mount(
            "/dev/shm",
            "tmpfs",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
    ]
}

/// A fresh /tmp when contained, else the host's.
fn tmp(m: &mut Vec<Mount>, contained: bool) {
    if contained {
        m.push(fs_mount("/tmp", "tmpfs", &["nosuid", "nodev", "mode=1777"]));
    } else {
        m.push(bind(
            "/tmp".as_ref(),
            "/tmp".as_ref(),
            &["rbind"],
            true,
            true,
        ));
    }
}

/// /etc/passwd and /etc/group from the launch dir; the host's resolv.conf and hosts, if any.
fn etc_files(m: &mut Vec<Mount>, fs: &dyn Fs, bundle: &Path) {
    let ro_file = ["bind", "ro", "nosuid", "nodev"];
    for name in ["passwd", "group"] {
        let dest = PathBuf::from("/etc").join(name);
        m.push(bind(&bundle.join(name), &dest, &ro_file, false, false));
    }
    for name in ["/etc/resolv.conf", "/etc/hosts"] {
        if fs.stat(name.as_ref()).is_some() {
            m.push(bind(name.as_ref(), name.as_ref(), &ro_file, false, false));
        }
    }
}

/// $HOME: an empty tmpfs when contained, else the host's (when it is a directory).
fn home(
    host: &HostFacts,
    fs: &dyn Fs,
    contained: bool,
    m: &mut Vec<Mount>,
    warnings: &mut Vec<String>,
) {
    let home = &host.home;
    if home == Path::new("/") {
        return;
    }
    if contained {
        let mut t = fs_mount("/", "tmpfs", &["nosuid", "nodev", "mode=700"]);
        t.destination = home.clone();
        m.push(t);
    } else if fs.stat(home) == Some(Kind::Dir) {
        m.push(bind(home, home, &["rbind"], true, true));
    } else {
        warnings.push(format!(
            "home {} is not a directory: not bound",
            home.display()
        ));
    }
}

/// Each --bind, in order: the source relative to the cwd, never over /.
fn user_binds(opts: &Options, host: &HostFacts, fs: &dyn Fs) -> Result<Vec<Mount>, MountError> {
    let mut user = Vec::new();
    for b in &opts.binds {
        let source = clean(&host.cwd, &b.source);
        let dest = clean(Path::new("/"), &b.destination);
        if dest == Path::new("/") {
            return Err(MountError::Root(b.destination.clone()));
        }
        let is_dir = match fs.stat(&source) {
            Some(k) => k == Kind::Dir,
            None => return Err(MountError::Source(b.source.clone())),
        };
        let o: &[&'static str] = if b.readonly {
            &["rbind", "ro"]
        } else {
            &["rbind"]
        };
        user.push(bind(&source, &dest, o, is_dir, true));
    }
    Ok(user)
}

/// The cwd bound on itself, unless it is a system directory or already visible through a bind
/// (`defaults`, or the user's).
fn cwd_bind(cwd: &Path, defaults: &[Mount], user: &[Mount]) -> Option<Mount> {
    let system = cwd == Path::new("/") || SYSTEM.iter().any(|s| cwd.starts_with(s));
    let visible = |ms: &[Mount]| visible_at(ms, cwd);
    if system || visible(defaults).is_some() || visible(user).is_some() {
        return None;
    }
    Some(bind(cwd, cwd, &["rbind"], true, true))
}

/// --pwd, else where the cwd is visible, else the image's absolute working dir, else /.
fn pwd(
    opts: &Options,
    mounts: &[Mount],
    cwd: &Path,
    working_dir: Option<&str>,
) -> Result<PathBuf, MountError> {
    Ok(match &opts.pwd {
        Some(p) if !p.is_absolute() => return Err(MountError::Pwd(p.clone())),
        Some(p) => p.clone(),
        None => visible_at(mounts, cwd)
            .or_else(|| {
                working_dir
                    .filter(|w| w.starts_with('/'))
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from("/")),
    })
}

const FUSE: &str = "/dev/fuse";

fn fuse(
    host: &HostFacts,
    fs: &dyn Fs,
    contained: bool,
    own_node: bool,
    m: &mut Vec<Mount>,
    warnings: &mut Vec<String>,
) -> Result<(), MountError> {
    if fs.stat(FUSE.as_ref()).is_none() {
        return Err(MountError::NoFuse);
    }
    if let Some((mode, owner)) = fs.mode(FUSE.as_ref()) {
        let usable =
            host.is_root() || mode & 0o006 == 0o006 || (owner == host.uid && mode & 0o600 == 0o600);
        if !usable && !own_node {
            warnings.push(format!(
                "--fuse: {FUSE} is mode {mode:04o} owned by uid {owner}: only root can open it on this host; FUSE mounts will fail inside"
            ));
        }
    }
    if contained {
        m.push(bind(
            FUSE.as_ref(),
            FUSE.as_ref(),
            &["bind", "nosuid"],
            false,
            false,
        ));
    }
    Ok(())
}

fn x11(host: &HostFacts, fs: &dyn Fs, m: &mut Vec<Mount>, warnings: &mut Vec<String>) {
    let var = |k: &str| {
        host.env
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    if var("DISPLAY").is_none() {
        warnings.push("--x11: DISPLAY is not set".into());
    }
    let sockets = Path::new("/tmp/.X11-unix");
    if fs.stat(sockets) == Some(Kind::Dir) {
        m.push(bind(
            sockets,
            sockets,
            &["rbind", "nosuid", "nodev"],
            true,
            false,
        ));
    }
    // X clients default to ~/.Xauthority when XAUTHORITY is unset: bind that one then (it matters
    // with --contain, whose home is an empty tmpfs).
    let given = var("XAUTHORITY").filter(|x| x.starts_with('/'));
    let default = host.home.join(".Xauthority");
    let x = match given {
        Some(x) => PathBuf::from(x),
        None if fs.stat(&default) == Some(Kind::File) => default,
        None => return,
    };
    if fs.stat(&x) == Some(Kind::File) {
        m.push(bind(
            &x,
            &x,
            &["bind", "ro", "nosuid", "nodev"],
            false,
            false,
        ));
    } else {
        warnings.push(format!(
            "--x11: XAUTHORITY {} is not a file: not bound",
            x.display()
        ));
    }
}

/// Where host path `p` appears inside, through the last host bind that contains it.
fn visible_at(mounts: &[Mount], p: &Path) -> Option<PathBuf> {
    mounts.iter().rev().filter(|m| m.host_bind).find_map(|m| {
        let rel = p.strip_prefix(&m.source).ok()?;
        Some(if rel.as_os_str().is_empty() {
            m.destination.clone()
        } else {
            m.destination.join(rel)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{Bind, Verb};
    use crate::underlay::fake::FakeFs;

    fn host(cwd: &str) -> HostFacts {
        HostFacts {
            uid: 1001,
            gid: 1001,
            user: "u".into(),
            gecos: String::new(),
            home: "/home/u".into(),
            cwd: cwd.into(),
            env: vec![],
            kernel: (6, 1),
            overlayfs: true,
        }
    }

    fn fs() -> FakeFs {
        FakeFs::default()
            .dir("/home/u/proj")
            .dir("/data/in")
            .dir("/scratch/job")
            .file("/etc/hosts", "")
    }

    fn opts() -> Options {
        Options::new(Verb::Exec { command: vec![] })
    }

    fn dests(p: &MountPlan) -> Vec<String> {
        p.mounts
            .iter()
            .map(|m| m.destination.display().to_string())
            .collect()
    }

    #[test]
    fn cwd_under_home_is_not_bound_twice() {
        let p = plan(
            &opts(),
            &host("/home/u/proj"),
            &fs(),
            false,
            true,
            "/b".as_ref(),
            None,
        )
        .unwrap();
        assert_eq!(
            dests(&p),
            [
                "/proc",
                "/dev",
                "/sys",
                "/tmp",
                "/etc/passwd",
                "/etc/group",
                "/etc/hosts",
                "/home/u"
            ]
        );
        assert_eq!(p.pwd, PathBuf::from("/home/u/proj"));
    }

    /// Issue 14: $XAUTHORITY under the bound home was mounted before the home, so the home bind
    /// covered it (and its mount point had to be made in the read-only image).
    #[test]
    fn a_file_under_a_bound_directory_is_mounted_after_it() {
        let mut h = host("/");
        h.env = vec![
            ("DISPLAY".into(), ":1".into()),
            ("XAUTHORITY".into(), "/home/u/.Xauthority".into()),
        ];
        let fs = fs().file("/home/u/.Xauthority", "c").dir("/home/u");
        let mut o = opts();
        o.x11 = true;
        o.binds = vec![Bind {
            source: "/data/in".into(),
            destination: "/home/u/in".into(),
            readonly: true,
        }];
        let p = plan(&o, &h, &fs, false, true, "/b".as_ref(), None).unwrap();
        let d = dests(&p);
        let at = |x: &str| d.iter().position(|y| y == x).unwrap();
        assert!(at("/home/u") < at("/home/u/.Xauthority"), "{d:?}");
        assert!(at("/home/u") < at("/home/u/in"), "{d:?}");
        let depths: Vec<usize> = p
            .mounts
            .iter()
            .map(|m| m.destination.components().count())
            .collect();
        assert!(depths.windows(2).all(|w| w[0] <= w[1]), "{d:?}");
    }

    /// Without XAUTHORITY, X clients use ~/.Xauthority: --x11 binds it, also over --contain's
    /// empty home.
    #[test]
    fn x11_binds_the_default_xauthority_over_a_contained_home() {
        let mut h = host("/");
        h.env = vec![("DISPLAY".into(), ":1".into())];
        let fs = fs().file("/home/u/.Xauthority", "c");
        let mut o = opts();
        o.x11 = true;
        o.contain = true;
        let p = plan(&o, &h, &fs, false, true, "/b".as_ref(), None).unwrap();
        let d = dests(&p);
        let at = |x: &str| d.iter().position(|y| y == x).unwrap();
        assert!(at("/home/u") < at("/home/u/.Xauthority"), "{d:?}");
        let p = plan(
            &o,
            &h,
            &super::tests::fs(),
            false,
            true,
            "/b".as_ref(),
            None,
        )
        .unwrap();
        assert!(!dests(&p).contains(&"/home/u/.Xauthority".to_string()));
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[test]
    fn cwd_bound_or_mapped_through_a_bind() {
        let p = plan(
            &opts(),
            &host("/scratch/job"),
            &fs(),
            false,
            true,
            "/b".as_ref(),
            None,
        )
        .unwrap();
        assert!(
            dests(&p).contains(&"/scratch/job".to_string()),
            "{:?}",
            dests(&p)
        );
        let mut o = opts();
        o.binds = vec![Bind {
            source: "/scratch".into(),
            destination: "/s".into(),
            readonly: false,
        }];
        let p = plan(
            &o,
            &host("/scratch/job"),
            &fs(),
            false,
            true,
            "/b".as_ref(),
            None,
        )
        .unwrap();
        let d = dests(&p);
        assert!(
            d.contains(&"/s".to_string()) && !d.contains(&"/scratch/job".to_string()),
            "{d:?}"
        );
        assert_eq!(p.pwd, PathBuf::from("/s/job"));
    }

    #[test]
    fn contain_uses_fresh_mounts_and_image_workdir() {
        let mut o = opts();
        o.contain = true;
        let p = plan(
            &o,
            &host("/scratch/job"),
            &fs(),
            true,
            true,
            "/b".as_ref(),
            Some("/app"),
        )
        .unwrap();
        let m = &p.mounts;
        assert_eq!(m[0].typ, "proc");
        assert!(m.iter().any(|x| x.destination == Path::new("/dev/pts")));
        assert!(m.iter().all(|x| !x.host_bind));
        assert_eq!(p.pwd, PathBuf::from("/app"));
    }

    #[test]
    fn sys_read_only_to_the_bottom_and_a_cgroupfs_without_userns() {
        let sys = |p: &MountPlan| {
            p.mounts
                .iter()
                .find(|m| m.destination == Path::new("/sys"))
                .cloned()
        };
        let cgroupfs = |p: &MountPlan| {
            p.mounts
                .iter()
                .find(|m| m.destination == Path::new("/sys/fs/cgroup"))
                .cloned()
        };
        let root = plan(
            &opts(),
            &host("/"),
            &fs(),
            false,
            false,
            "/b".as_ref(),
            None,
        )
        .unwrap();
        assert!(sys(&root).unwrap().options.contains(&"rro"));
        let cg = cgroupfs(&root).expect("a cgroupfs without a user namespace");
        assert_eq!((cg.typ, cg.options[0]), ("cgroup", "ro"));
        let userns = plan(&opts(), &host("/"), &fs(), false, true, "/b".as_ref(), None).unwrap();
        assert!(cgroupfs(&userns).is_none());
        let mut old = host("/");
        old.kernel = (5, 11);
        let p = plan(&opts(), &old, &fs(), false, false, "/b".as_ref(), None).unwrap();
        let o = sys(&p).unwrap().options;
        assert!(o.contains(&"ro") && !o.contains(&"rro"), "{o:?}");
    }

    #[test]
    fn bind_errors_name_the_source() {
        let mut o = opts();
        o.binds = vec![Bind {
            source: "/nope".into(),
            destination: "/x".into(),
            readonly: true,
        }];
        let e = plan(&o, &host("/"), &fs(), false, true, "/b".as_ref(), None).unwrap_err();
        assert_eq!(e.to_string(), "bind /nope: no such file or directory");
        o.pwd = Some("rel".into());
        o.binds.clear();
        assert!(plan(&o, &host("/"), &fs(), false, true, "/b".as_ref(), None).is_err());
    }
}
