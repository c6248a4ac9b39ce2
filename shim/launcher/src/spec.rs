//! Template + image + options + host facts → config.json ([`build`]), and the launch directory
//! that goes with it ([`Launch::write`]).
//!
//! Identity (the caller's uid U, gid G):
//! - unprivileged: a user namespace mapping U→U and G→G only; the process runs as U:G with no
//!   capabilities (every set empty);
//! - unprivileged --fakeroot: U→0, G→0; the process runs as 0:0 with the profile's capabilities,
//!   which hold in the user namespace only;
//! - real root: no user namespace, root with the profile's capabilities; --fakeroot/--userns add
//!   a user namespace mapping 0→0;
//! - real root with [`Options::root_host_id`] X (the sandbox): a user namespace mapping 0→X, so
//!   the container's root is an unprivileged id on the host.

use crate::cdi::{self, CdiError};
use crate::env::environment;
use crate::host::{Fs, HostFacts};
use crate::image::ResolvedImage;
use crate::mounts::{self, MountError};
use crate::options::{Ipc, Net, Options, Overlay, Verb};
use crate::passwd;
use crate::templates::TemplateError;
use crate::underlay::{self, Entry, Layer, Underlay, UnderlayError};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(transparent)]
    Underlay(#[from] UnderlayError),
    #[error(transparent)]
    Cdi(#[from] CdiError),
    #[error("mount image {0} read-write: it is in the image cache, whose files it shares; use a rootfs directory with --writable")]
    WritableCached(String),
    #[error("overlay {0}: a path with ',', ':' or '\\' cannot be an overlay option")]
    OverlayPath(PathBuf),
    #[error("--writable with --writable-tmpfs or --overlay: choose one")]
    WritableOverlay,
    #[error("exec: no command given")]
    NoCommand,
    #[error("build config.json: {0}")]
    Spec(serde_json::Error),
}

#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct WriteError {
    pub op: &'static str,
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// A launch ready to be written: config.json, the session root skeleton, the /etc files.
#[derive(Debug, Clone)]
pub struct Launch {
    pub config: Value,
    pub underlay: Underlay,
    /// (file name in the launch dir, contents).
    pub files: Vec<(&'static str, String)>,
    /// Degradations worth one line each (e.g. $HOME missing).
    pub warnings: Vec<String>,
    /// Host directories to create (overlay upper and work dirs).
    pub dirs: Vec<PathBuf>,
}

/// Namespaces in the order runc's spec lists them.
const NS_ORDER: &[&str] = &["pid", "network", "ipc", "uts", "mount", "cgroup", "user"];

/// runc's default device rules, for a minimal /dev.
const MINIMAL_DEVICES: &[(&str, i64, i64)] = &[
    ("c", 1, 3),
    ("c", 1, 5),
    ("c", 1, 7),
    ("c", 1, 8),
    ("c", 1, 9),
    ("c", 5, 0),
    ("c", 5, 1),
    ("c", 5, 2),
    ("c", 136, -1),
];

/// Builds the launch; `bundle` is the directory it will be written to (absolute).
pub fn build(
    template: Value,
    image: &ResolvedImage,
    opts: &Options,
    host: &HostFacts,
    fs: &dyn Fs,
    bundle: &Path,
) -> Result<Launch, PlanError> {
    check(image, opts)?;
    let mut t = template;
    let (uid, gid) = identity(opts, host);
    // --fuse: CAP_SYS_ADMIN to mount, which only a user namespace of its own keeps harmless.
    let userns = !host.is_root()
        || opts.fakeroot
        || opts.userns
        || opts.fuse
        || opts.root_host_id.is_some()
        || opts.user.is_some();
    let nss = namespaces(&t, opts, userns);
    let has = |n: &str| nss.iter().any(|x| x == n);
    let plan = mounts::plan(
        opts,
        host,
        fs,
        has("pid"),
        userns,
        bundle,
        image.config.working_dir.as_deref(),
    )?;
    // With the host's /dev bound, CDI device nodes are already there (or refused).
    let devices = cdi::plan(&opts.cdi, fs, !opts.contained())?;
    let dests = mount_points(opts, &plan.mounts, &devices);
    let mode = underlay_mode(opts, host, fs, &image.rootfs, bundle, userns);
    let under = underlay::plan(&image.rootfs, &dests, mode, fs)?;
    let upper = upper_dir(opts, host, bundle);
    let ctx = ImageMounts {
        rootfs: &image.rootfs,
        bundle,
        opts,
        upper: upper.as_deref(),
        userns,
        later: &plan.mounts,
    };
    let (image_mounts, dirs) = ctx.build(&under, fs)?;
    t["mounts"] = Value::Array(all_mounts(image_mounts, &plan.mounts, &devices));
    set_root(&mut t, image, opts, &under);
    set_hostname(&mut t, opts, has("uts"));
    set_process(&mut t, image, opts, host, &plan.pwd, (uid, gid))?;
    linux(&mut t, opts, host, &nss, userns);
    let mut warnings = plan.warnings;
    apply_cdi(&mut t, &devices, &opts.cdi, userns, &mut warnings);
    for (k, v) in &image.config.labels {
        t["annotations"][k] = json!(v);
    }
    serde_json::from_value::<oci_spec::runtime::Spec>(t.clone()).map_err(PlanError::Spec)?;
    Ok(Launch {
        config: t,
        underlay: under,
        files: etc_files(image, host, fs, opts.user.is_some(), (uid, gid)),
        warnings,
        dirs,
    })
}

/// Option combinations the image refuses.
fn check(image: &ResolvedImage, opts: &Options) -> Result<(), PlanError> {
    if opts.writable && image.cached {
        return Err(PlanError::WritableCached(image.reference.clone()));
    }
    if opts.writable && opts.overlay.is_some() {
        return Err(PlanError::WritableOverlay);
    }
    Ok(())
}

/// The process's uid and gid inside: the sandbox's `--user`, root with --fakeroot or for root,
/// else the caller's.
fn identity(opts: &Options, host: &HostFacts) -> (u32, u32) {
    if let Some(user) = opts.user {
        user
    } else if opts.fakeroot || host.is_root() {
        (0, 0)
    } else {
        (host.uid, host.gid)
    }
}

/// The mount points the underlay must provide (container path, is a directory): none when
/// overlaid, where the image's directories are writable without touching it (the engine makes the
/// missing mount points in the upper directory, and nothing needs splitting).
fn mount_points(
    opts: &Options,
    later: &[mounts::Mount],
    devices: &cdi::Plan,
) -> Vec<(PathBuf, bool)> {
    if opts.overlay.is_some() {
        return Vec::new();
    }
    later
        .iter()
        .map(|m| (m.destination.clone(), m.is_dir))
        .chain(devices.destinations.iter().cloned())
        .collect()
}

/// With --writable-tmpfs or --overlay: where the overlay's upper and work directories go.
fn upper_dir(opts: &Options, host: &HostFacts, bundle: &Path) -> Option<PathBuf> {
    opts.overlay.as_ref().map(|o| match o {
        Overlay::Tmpfs => bundle.join("overlay"),
        Overlay::Dir(d) => mounts::clean(&host.cwd, d),
    })
}

/// config.json's `mounts`: the underlay's, then the launcher's, then CDI's.
fn all_mounts(
    image_mounts: Vec<Value>,
    later: &[mounts::Mount],
    devices: &cdi::Plan,
) -> Vec<Value> {
    let mut all = image_mounts;
    all.extend(later.iter().map(|m| {
        json!({"destination": m.destination, "type": m.typ, "source": m.source, "options": m.options})
    }));
    all.extend(devices.mounts.iter().cloned());
    all
}

/// `root`: the skeleton or the image, read-only unless --writable.
fn set_root(t: &mut Value, image: &ResolvedImage, opts: &Options, under: &Underlay) {
    let root = if under.skeleton_root {
        PathBuf::from(SKELETON)
    } else {
        image.rootfs.clone()
    };
    // An overlaid root is writable whole (as Apptainer's): new top-level entries land in the
    // skeleton, in the launch directory.
    let writable = opts.writable || opts.overlay.is_some();
    t["root"] = json!({"path": root, "readonly": !writable});
    if opts.overlay.is_none() {
        // Every mount point exists (the underlay saw to it): the engine may make the root
        // read-only before mounting anything, so that nothing can be created in the image.
        t["annotations"][EARLY_READONLY] = json!("true");
    }
}

/// --hostname in a UTS namespace; no hostname without one.
fn set_hostname(t: &mut Value, opts: &Options, uts: bool) {
    if uts {
        if let Some(h) = &opts.hostname {
            t["hostname"] = json!(h);
        }
    } else if let Some(o) = t.as_object_mut() {
        // Without a UTS namespace a hostname would be the host's.
        o.remove("hostname");
    }
}

/// `process`: args, env, cwd, terminal, user; no capabilities for a non-root user.
fn set_process(
    t: &mut Value,
    image: &ResolvedImage,
    opts: &Options,
    host: &HostFacts,
    pwd: &Path,
    (uid, gid): (u32, u32),
) -> Result<(), PlanError> {
    let profile_env: Vec<String> = strings(&t["process"]["env"]);
    let p = &mut t["process"];
    p["args"] = json!(args(image, &opts.verb)?);
    p["env"] = json!(environment(
        &profile_env,
        &image.config,
        opts,
        host,
        &host.home
    ));
    p["cwd"] = json!(pwd);
    p["terminal"] = json!(opts.tty);
    p["user"] = json!({"uid": uid, "gid": gid});
    set_caps(p, opts, uid);
    Ok(())
}

/// The capability sets: the profile's for root inside, none for another user; then --fuse's
/// CAP_SYS_ADMIN (to mount, in the container's own user namespace) and --add-caps in every set
/// (ambient too, so that a non-root program has them), and --drop-caps out of every set.
fn set_caps(p: &mut Value, opts: &Options, uid: u32) {
    const SETS: [&str; 5] = [
        "bounding",
        "effective",
        "permitted",
        "inheritable",
        "ambient",
    ];
    if uid != 0 {
        let none: Vec<String> = Vec::new();
        p["capabilities"] = json!({"bounding": none, "effective": none, "permitted": none,
            "inheritable": none, "ambient": none});
    }
    let mut add = opts.add_caps.clone();
    if opts.fuse {
        add.push("CAP_SYS_ADMIN".into());
    }
    if add.is_empty() && opts.drop_caps.is_empty() {
        return;
    }
    for set in SETS {
        let mut names = strings(&p["capabilities"][set]);
        for c in &add {
            if !names.contains(c) {
                names.push(c.clone());
            }
        }
        names.retain(|c| !opts.drop_caps.contains(c));
        p["capabilities"][set] = json!(names);
    }
}

/// The launch dir's /etc/passwd and /etc/group: the image's, with the user's entries.
fn etc_files(
    image: &ResolvedImage,
    host: &HostFacts,
    fs: &dyn Fs,
    chosen: bool,
    (uid, gid): (u32, u32),
) -> Vec<(&'static str, String)> {
    let etc = |name: &str| fs.read(&image.rootfs.join("etc").join(name));
    // A uid chosen with --user is nobody on the host: the image's own line for it, else
    // `sandbox` with the workspace as home (never the caller's name, which may be root).
    let (user, gecos, home) = if chosen {
        ("sandbox", "", "/workspace".to_string())
    } else {
        (
            host.user.as_str(),
            host.gecos.as_str(),
            host.home.display().to_string(),
        )
    };
    let image_passwd = etc("passwd");
    let known = |text: &String| {
        text.lines()
            .any(|l| l.split(':').nth(2) == Some(uid.to_string().as_str()))
    };
    let passwd = match image_passwd {
        Some(text) if chosen && known(&text) => text,
        other => passwd::passwd(other.as_deref(), uid, gid, user, gecos, &home),
    };
    vec![
        ("passwd", passwd),
        ("group", passwd::group(etc("group").as_deref(), gid, user)),
    ]
}

/// What the underlay may do for this launch ([`underlay::Mode`]).
fn underlay_mode(
    opts: &Options,
    host: &HostFacts,
    fs: &dyn Fs,
    rootfs: &Path,
    bundle: &Path,
    userns: bool,
) -> underlay::Mode {
    if opts.overlay.is_some() {
        return underlay::Mode {
            overlay: false,
            skeleton_root: true,
        };
    }
    let overlay = !opts.writable
        && host.overlay_in(userns)
        && underlay::overlay_lower(fs.fs_type(rootfs))
        && underlay::overlay_safe(rootfs)
        && underlay::overlay_safe(&bundle.join(UNDER));
    // --writable keeps the skeleton root of old: a new top-level entry lands in the launch
    // directory as before, not in the image.
    underlay::Mode {
        overlay,
        skeleton_root: opts.writable,
    }
}

/// The launch directory's skeleton root (when the root is not the image itself).
pub const SKELETON: &str = "rootfs";
/// The launch directory's split directories and overlay layers ([`underlay`]).
pub const UNDER: &str = "under";
/// The engine's annotation: every mount point exists, make a read-only root read-only first
/// (husk_runtime::rootfs::EARLY_READONLY).
pub const EARLY_READONLY: &str = "run.husk.rootfs.early-readonly";

/// What the underlay's mounts are made of.
struct ImageMounts<'a> {
    rootfs: &'a Path,
    bundle: &'a Path,
    opts: &'a Options,
    /// --writable-tmpfs or --overlay: where the upper and work directories go.
    upper: Option<&'a Path>,
    userns: bool,
    /// The mounts after the underlay.
    later: &'a [mounts::Mount],
}

/// An overlay's options: `head`, then each (option, paths joined with ':'); no path may hold ',',
/// ':' or '\\'. `userxattr` in a user namespace, where trusted.* xattrs are out of reach.
fn overlay_options(
    head: &[&str],
    layers: &[(&str, &[&Path])],
    userns: bool,
) -> Result<Vec<String>, PlanError> {
    let mut o: Vec<String> = head.iter().map(|s| s.to_string()).collect();
    for (k, paths) in layers {
        let mut texts = Vec::new();
        for p in *paths {
            let t = p.to_str().filter(|_| underlay::overlay_safe(p));
            texts.push(t.ok_or_else(|| PlanError::OverlayPath(p.to_path_buf()))?);
        }
        o.push(format!("{k}={}", texts.join(":")));
    }
    if userns {
        o.push("userxattr".into());
    }
    Ok(o)
}

impl ImageMounts<'_> {
    /// The underlay's mounts, first (everything else is mounted over them): read-only binds of the
    /// image's entries and of split directories, read-only overlays for missing entries. With an
    /// upper directory each directory bound from the image is an overlay instead (`upper/P` and
    /// `work/P` for image path P), except where a later mount covers the directory whole (/proc,
    /// /dev, /tmp...). Also returns the host directories those overlays need.
    fn build(
        &self,
        under: &Underlay,
        fs: &dyn Fs,
    ) -> Result<(Vec<Value>, Vec<PathBuf>), PlanError> {
        let covered = |p: &Path| self.later.iter().any(|m| m.is_dir && m.destination == p);
        let ro: &[&str] = if self.opts.writable { &[] } else { &["ro"] };
        let mut out = Vec::new();
        let mut dirs = Vec::new();
        for layer in &under.mounts {
            let p = layer.path();
            let src = underlay::inside(self.rootfs, p);
            let skeleton = underlay::inside(&self.bundle.join(UNDER), p);
            let bind = |source: &Path, first: &str| {
                let o: Vec<&str> = std::iter::once(first).chain(ro.iter().copied()).collect();
                json!({"destination": p, "type": "bind", "source": source, "options": o})
            };
            match (layer, self.upper) {
                (Layer::Split(_), _) => out.push(bind(&skeleton, "bind")),
                (Layer::Overlay(_), _) => {
                    // The image's P on top: P keeps its owner and mode.
                    let lower: &[&Path] = &[&src, &skeleton];
                    let o = overlay_options(&["ro"], &[("lowerdir", lower)], self.userns)?;
                    out.push(json!({"destination": p, "type": "overlay", "source": "overlay", "options": o}));
                }
                (Layer::Image(_), Some(base))
                    if !covered(p) && fs.stat(&src) == Some(crate::host::Kind::Dir) =>
                {
                    let (up, work) = (
                        underlay::inside(&base.join("upper"), p),
                        underlay::inside(&base.join("work"), p),
                    );
                    let layers: [(&str, &[&Path]); 3] = [
                        ("lowerdir", &[&src]),
                        ("upperdir", &[&up]),
                        ("workdir", &[&work]),
                    ];
                    let o = overlay_options(&[], &layers, self.userns)?;
                    out.push(json!({"destination": p, "type": "overlay", "source": "overlay", "options": o}));
                    dirs.extend([up, work]);
                }
                (Layer::Image(_), _) => out.push(bind(&src, "rbind")),
            }
        }
        Ok((out, dirs))
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

fn args(image: &ResolvedImage, verb: &Verb) -> Result<Vec<String>, PlanError> {
    let c = &image.config;
    let a = match verb {
        Verb::Run { args } => {
            let tail = if args.is_empty() { &c.cmd } else { args };
            c.entrypoint.iter().chain(tail).cloned().collect()
        }
        Verb::Exec { command } if command.is_empty() => return Err(PlanError::NoCommand),
        Verb::Exec { command } => command.clone(),
        Verb::Shell { shell } => vec![shell.clone().unwrap_or_else(|| "/bin/sh".into())],
    };
    Ok(if a.is_empty() {
        vec!["/bin/sh".into()]
    } else {
        a
    })
}

/// The profile's namespaces (but user) plus what the options and identity ask for.
fn namespaces(t: &Value, opts: &Options, userns: bool) -> Vec<String> {
    let mut want: Vec<String> = t["linux"]["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["type"].as_str().map(String::from))
        .filter(|n| n != "user")
        .collect();
    let mut add = |n: &str, on: bool| {
        if on && !want.iter().any(|x| x == n) {
            want.push(n.into());
        }
    };
    add("mount", true);
    // Its own cgroup namespace: /proc/self/cgroup and a cgroupfs mount show only its subtree.
    add("cgroup", true);
    add("user", userns);
    add("pid", opts.containall || opts.pid);
    add("ipc", opts.ipc == Some(Ipc::Private) || opts.containall);
    add("uts", opts.hostname.is_some());
    if opts.net == Some(Net::None) {
        add("network", true);
    }
    // An explicit "host" wins over the profile and --containall.
    if opts.ipc == Some(Ipc::Host) {
        want.retain(|n| n != "ipc");
    }
    if opts.net == Some(Net::Host) {
        want.retain(|n| n != "network");
    }
    NS_ORDER
        .iter()
        .filter(|n| want.iter().any(|w| w == *n))
        .map(|n| n.to_string())
        .collect()
}

fn linux(t: &mut Value, opts: &Options, host: &HostFacts, nss: &[String], userns: bool) {
    let l = &mut t["linux"];
    l["namespaces"] = Value::Array(nss.iter().map(|n| json!({"type": n})).collect());
    let obj = l.as_object_mut().expect("linux is an object");
    obj.remove("uidMappings");
    obj.remove("gidMappings");
    if userns {
        let (inside_u, inside_g) = identity(opts, host);
        let (host_u, host_g) = match opts.root_host_id.filter(|_| host.is_root()) {
            Some(id) => (id, id),
            None => (host.uid, host.gid),
        };
        l["uidMappings"] = json!([{"containerID": inside_u, "hostID": host_u, "size": 1}]);
        l["gidMappings"] = json!([{"containerID": inside_g, "hostID": host_g, "size": 1}]);
    }
    let mut devices = vec![json!({"allow": false, "access": "rwm"})];
    if opts.contained() {
        devices.push(json!({"allow": true, "type": "c", "access": "m"}));
        devices.push(json!({"allow": true, "type": "b", "access": "m"}));
        for (kind, major, minor) in MINIMAL_DEVICES {
            let mut d = json!({"allow": true, "type": kind, "major": major, "access": "rwm"});
            if *minor >= 0 {
                d["minor"] = json!(minor);
            }
            devices.push(d);
        }
    } else {
        // The host's /dev is bound: every character device it has (GPUs, InfiniBand, fuse) is
        // usable; block devices (disks) are not.
        devices.push(json!({"allow": true, "type": "c", "access": "rwm"}));
    }
    if opts.fuse {
        devices
            .push(json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"}));
    }
    let r = &mut l["resources"];
    r["devices"] = Value::Array(devices);
    let res = &opts.resources;
    if let Some(m) = res.memory {
        r["memory"]["limit"] = json!(m);
    }
    if let Some(c) = res.cpus {
        let period = 100_000u64;
        r["cpu"]["period"] = json!(period);
        r["cpu"]["quota"] = json!((c * period as f64).round() as i64);
    }
    if let Some(p) = res.pids {
        r["pids"]["limit"] = json!(p);
    }
}

/// CDI device rules, hooks and additional groups (mounts and env are placed with the others).
fn apply_cdi(
    t: &mut Value,
    devices: &cdi::Plan,
    edits: &cdi::Edits,
    userns: bool,
    warnings: &mut Vec<String>,
) {
    if let Some(rules) = t["linux"]["resources"]["devices"].as_array_mut() {
        rules.extend(devices.device_rules.iter().cloned());
    }
    for (name, hook) in &devices.hooks {
        match t["hooks"][name].as_array_mut() {
            Some(list) => list.push(hook.clone()),
            None => t["hooks"][name] = json!([hook]),
        }
    }
    if edits.additional_gids.is_empty() {
        return;
    }
    if userns {
        warnings.push(format!(
            "cdi additionalGids {:?}: not mapped in the user namespace; ignored",
            edits.additional_gids
        ));
    } else {
        t["process"]["user"]["additionalGids"] = json!(edits.additional_gids);
    }
}

/// The sandbox's /etc/hosts: loopback names only, never the host's.
pub const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

impl Launch {
    /// Makes /etc/hosts a generated file of the launch directory `bundle` ([`HOSTS`]) instead of
    /// the host's, where the launch binds one (its mount point is planned).
    pub fn generate_hosts(&mut self, bundle: &Path) {
        let Some(mounts) = self.config["mounts"].as_array_mut() else {
            return;
        };
        let Some(m) = mounts.iter_mut().find(|m| m["destination"] == "/etc/hosts") else {
            return;
        };
        m["source"] = json!(bundle.join("hosts"));
        self.files.push(("hosts", HOSTS.to_string()));
    }

    /// Does the config ask for a user namespace? (A failed launch that did may owe it to the
    /// host's sysctls: [`crate::userns::diagnose`].)
    pub fn userns(&self) -> bool {
        let nss = self.config["linux"]["namespaces"].as_array();
        nss.is_some_and(|n| n.iter().any(|n| n["type"] == "user"))
    }

    /// config.json's text.
    pub fn config_json(&self) -> String {
        serde_json::to_string_pretty(&self.config).expect("a Value serialises") + "\n"
    }

    /// Writes config.json (0600: its environment may hold secrets, e.g. the sandbox's `--env`),
    /// the /etc files and the underlay's directories into `dir` (which exists).
    pub fn write(&self, dir: &Path) -> Result<(), WriteError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let cfg = dir.join("config.json");
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&cfg)
            .and_then(|mut f| {
                // An existing file keeps its mode through open(O_CREAT).
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                f.write_all(self.config_json().as_bytes())
            })
            .map_err(|source| WriteError {
                op: "write",
                path: cfg.clone(),
                source,
            })?;
        self.write_files(dir)
    }

    /// Everything but config.json (for a launch whose config is handed over in memory).
    pub fn write_files(&self, dir: &Path) -> Result<(), WriteError> {
        let err = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| WriteError { op, path, source }
        };
        for (name, text) in &self.files {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(err("write", &p))?;
        }
        for d in &self.dirs {
            std::fs::create_dir_all(d).map_err(err("create", d))?;
        }
        let trees = [
            (
                SKELETON,
                &self.underlay.skeleton,
                self.underlay.skeleton_root,
            ),
            (UNDER, &self.underlay.under, !self.underlay.under.is_empty()),
        ];
        for (name, tree, wanted) in trees {
            if !wanted {
                continue;
            }
            let base = dir.join(name);
            std::fs::create_dir(&base).map_err(err("create", &base))?;
            for (path, entry) in tree {
                let p = underlay::inside(&base, path);
                match entry {
                    Entry::Dir => std::fs::create_dir(&p),
                    Entry::File => std::fs::File::create(&p).map(drop),
                    Entry::Symlink(target) => std::os::unix::fs::symlink(target, &p),
                }
                .map_err(err("create", &p))?;
            }
        }
        Ok(())
    }
}

/// Removes a launch directory. Overlay leaves `work/.../work` at mode 0, which even its owner
/// cannot list: make every directory under `overlay/work` searchable first.
pub fn remove_launch_dir(dir: &Path) -> std::io::Result<()> {
    fn open_up(d: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))?;
        for e in std::fs::read_dir(d)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                open_up(&e.path())?;
            }
        }
        Ok(())
    }
    let work = dir.join("overlay/work");
    if work.is_dir() {
        open_up(&work)?;
    }
    std::fs::remove_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nss(profile: &[&str], edit: impl FnOnce(&mut Options)) -> Vec<String> {
        let list: Vec<Value> = profile.iter().map(|n| json!({"type": n})).collect();
        let t = json!({"linux": {"namespaces": list}});
        let mut o = Options::new(Verb::Exec {
            command: vec!["true".into()],
        });
        edit(&mut o);
        namespaces(&t, &o, false)
    }

    #[test]
    fn ipc_host_private_and_containall() {
        assert_eq!(nss(&["mount"], |_| {}), ["mount", "cgroup"]);
        let private = |o: &mut Options| o.ipc = Some(Ipc::Private);
        assert_eq!(nss(&["mount"], private), ["ipc", "mount", "cgroup"]);
        assert_eq!(
            nss(&["mount"], |o| o.containall = true),
            ["pid", "ipc", "mount", "cgroup"]
        );
        // An explicit host wins over --containall and over the profile's own namespace.
        let host = |o: &mut Options| {
            o.containall = true;
            o.ipc = Some(Ipc::Host);
        };
        assert_eq!(nss(&["mount"], host), ["pid", "mount", "cgroup"]);
        let host = |o: &mut Options| o.ipc = Some(Ipc::Host);
        assert_eq!(
            nss(&["ipc", "network", "mount"], host),
            ["network", "mount", "cgroup"]
        );
    }
}
