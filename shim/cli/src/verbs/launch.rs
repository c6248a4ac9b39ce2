//! The launcher face: `husk run|exec|shell IMAGE`. Flags → husk_launcher::Options, the spec built
//! by husk-launcher, a launch dir written, then the same create/release/wait/delete as `husk run`.
//! Failures of the launcher itself exit 255, so they cannot be mistaken for the program's status.

use super::usage;
use crate::cli::Global;
use anyhow::Context;
use clap::{Args, ValueEnum};
use husk_launcher::image::{CachedImages, ImageSource};
use husk_launcher::options::{parse_binds, parse_cpus, parse_env, parse_env_file, parse_memory};
use husk_launcher::{
    cdi, templates, HostFacts, Ipc, Launch, Net, Options, Overlay, RealFs, Resources, Verb,
};
use husk_runtime::cgroup::Driver;
use husk_runtime::CreateOptions;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetArg {
    Host,
    None,
}

/// Flags of the launcher face, shared by run, exec, shell and bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
#[command(next_help_heading = "Launcher options (with an IMAGE)")]
pub struct LaunchFlags {
    /// Bind a host path: SRC[:DST[:ro|rw]] (repeatable, or comma-separated)
    #[arg(short = 'B', long, value_name = "SPEC")]
    pub bind: Vec<String>,
    /// Do not bind $HOME
    #[arg(long)]
    pub no_home: bool,
    /// Bind nothing from the host but --bind: fresh /tmp, minimal /dev, empty $HOME, no cwd
    #[arg(long)]
    pub contain: bool,
    /// --contain plus new pid and ipc namespaces and --cleanenv
    #[arg(short = 'C', long)]
    pub containall: bool,
    /// Working directory inside [default: the cwd when bound, else the image's, else /]
    #[arg(long, value_name = "DIR")]
    pub pwd: Option<PathBuf>,
    /// New pid namespace (the program is pid 1)
    #[arg(long)]
    pub pid: bool,
    /// IPC namespace: host (the host's) or private (a new one; so is a bare --ipc), given as
    /// --ipc=MODE or --ipc MODE [default: the profile's]
    #[arg(
        long,
        value_name = "MODE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = ""
    )]
    pub ipc: Option<String>,
    /// Network: the host's, or none (a new namespace with only loopback, up)
    /// [default: the profile's]
    #[arg(long, value_enum, value_name = "MODE")]
    pub net: Option<NetArg>,
    /// Hostname inside (in a new UTS namespace)
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Run as root inside, in a user namespace that maps you to it
    #[arg(short = 'f', long)]
    pub fakeroot: bool,
    /// Use a user namespace even when run as root
    #[arg(long)]
    pub userns: bool,
    /// Do not pass the host's environment (TERM and LANG are kept)
    #[arg(long)]
    pub cleanenv: bool,
    /// Set variables from KEY=VALUE lines of FILE (repeatable; --env wins)
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Spec template: hpc, default or rootless (see spec-templates/) [default: hpc]
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Memory limit in bytes (k, m, g, t suffixes), through cgroups where the host allows
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPU limit, e.g. 1.5
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// Maximum number of processes
    #[arg(long, value_name = "N")]
    pub pids_limit: Option<i64>,
    /// Mount the image read-write (writes go into the image directory; rootfs directories only)
    #[arg(short = 'w', long)]
    pub writable: bool,
    /// Make the root writable through an overlay whose changes are thrown away at exit (kept in
    /// the launch directory, a tmpfs under $XDG_RUNTIME_DIR or /run); the image is not touched
    #[arg(long, conflicts_with_all = ["writable", "overlay"])]
    pub writable_tmpfs: bool,
    /// Make the root writable through an overlay whose changes persist in DIR/upper (DIR/work
    /// beside it; both created if missing); the image is not touched
    #[arg(long, value_name = "DIR", conflicts_with = "writable")]
    pub overlay: Option<PathBuf>,
    /// Pass /dev/fuse into the container (usable by root only where it is mode 0600)
    #[arg(long)]
    pub fuse: bool,
    /// Pass the X11 display: DISPLAY, /tmp/.X11-unix and the $XAUTHORITY file (read-only)
    #[arg(long)]
    pub x11: bool,
    /// Add a CDI device: VENDOR/CLASS=NAME, NAME "all" for every device of the kind (repeatable);
    /// its vendor's spec file says which device nodes, mounts, env and hooks it needs
    #[arg(long, value_name = "VENDOR/CLASS=NAME")]
    pub device: Vec<String>,
    /// Every NVIDIA GPU, through its CDI spec: --device nvidia.com/gpu=all (nvidia-ctk cdi generate
    /// writes the spec)
    #[arg(long, alias = "nv")]
    pub gpu: bool,
    /// Where CDI spec files (*.json, *.yaml) are read, instead of /etc/cdi and /var/run/cdi (repeatable;
    /// later directories win)
    #[arg(long, value_name = "DIR", env = "HUSK_CDI_DIR", value_delimiter = ':')]
    pub cdi_dir: Vec<PathBuf>,
    /// Print the config.json that would run, and exit
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub sandbox: super::sandbox::SandboxFlags,
}

impl LaunchFlags {
    /// Was any launcher flag given? (They mean nothing with a container id.)
    pub fn given(&self) -> bool {
        *self != LaunchFlags::default()
    }
}

/// Marks a failure of the launcher itself (exit status 255).
#[derive(Debug)]
pub struct Failed(pub String);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "launch {}", self.0)
    }
}

/// One launch as the verbs hand it over.
pub struct Request {
    pub verb: Verb,
    pub image: String,
    pub flags: LaunchFlags,
    /// `--env` values (KEY=VALUE).
    pub env: Vec<String>,
    pub tty: bool,
    /// Engine options that make sense here (pid file, preserved fds, no_pivot, keyring).
    pub engine: CreateOptions,
}

/// `--ipc host IMAGE ...`: clap takes the mode only after `=` (so that `husk exec --ipc IMAGE CMD`
/// keeps meaning a new namespace), which leaves a bare --ipc and "host" or "private" as the first
/// of `positionals`. When more follow, that word is the mode: take it off. (An image directory
/// named host or private, after a bare --ipc, is then written ./host.)
pub fn ipc_mode_from(flags: &mut LaunchFlags, positionals: &mut Vec<String>) {
    let bare = flags.ipc.as_deref() == Some("");
    if bare && positionals.len() > 1 && matches!(positionals[0].as_str(), "host" | "private") {
        flags.ipc = Some(positionals.remove(0));
    }
}

/// Checks a positional that would have been an IMAGE and says what went wrong with an id.
pub fn reject_for_id(verb: &str, id: &str, flags: &LaunchFlags) -> anyhow::Result<()> {
    if flags.given() {
        return Err(usage(format!(
            "{verb}: launcher options need an IMAGE (a path such as ./rootfs); {id:?} is a container id"
        )));
    }
    Ok(())
}

pub fn options(req: &Request) -> anyhow::Result<Options> {
    let f = &req.flags;
    if let Some(p) = &f.profile {
        if !templates::PROFILES.iter().any(|(n, _)| n == p) {
            return Err(usage(
                templates::TemplateError::Unknown(p.clone()).to_string(),
            ));
        }
    }
    let mut o = Options::new(req.verb.clone());
    for b in &f.bind {
        o.binds
            .extend(parse_binds(b).map_err(|e| usage(e.to_string()))?);
    }
    for path in &f.env_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read --env-file {}", path.display()))?;
        o.env.extend(parse_env_file(&text, path)?);
    }
    for e in &req.env {
        o.env.push(parse_env(e).map_err(|e| usage(e.to_string()))?);
    }
    let bad = |e: husk_launcher::OptionsError| usage(e.to_string());
    o.resources = Resources {
        memory: f
            .memory
            .as_deref()
            .map(parse_memory)
            .transpose()
            .map_err(bad)?,
        cpus: f.cpus.as_deref().map(parse_cpus).transpose().map_err(bad)?,
        pids: f.pids_limit,
    };
    o.no_home = f.no_home;
    o.contain = f.contain;
    o.containall = f.containall;
    o.pwd = f.pwd.clone();
    o.pid = f.pid;
    o.ipc = match f.ipc.as_deref() {
        None => None,
        Some("" | "private") => Some(Ipc::Private),
        Some("host") => Some(Ipc::Host),
        Some(other) => {
            return Err(usage(format!(
                "--ipc {other:?}: unknown mode (host or private)"
            )))
        }
    };
    o.net = f.net.map(|n| match n {
        NetArg::Host => Net::Host,
        NetArg::None => Net::None,
    });
    o.hostname = f.hostname.clone();
    o.fakeroot = f.fakeroot;
    o.userns = f.userns;
    o.cleanenv = f.cleanenv;
    o.tty = req.tty;
    o.writable = f.writable;
    o.overlay = match (&f.overlay, f.writable_tmpfs) {
        (Some(d), _) => Some(Overlay::Dir(d.clone())),
        (None, true) => Some(Overlay::Tmpfs),
        (None, false) => None,
    };
    o.fuse = f.fuse;
    o.x11 = f.x11;
    Ok(o)
}

/// The requested CDI devices (usage errors for bad names).
fn device_requests(f: &LaunchFlags) -> anyhow::Result<Vec<cdi::Request>> {
    let mut out = Vec::new();
    if f.gpu {
        out.push(cdi::Request::gpu());
    }
    for d in &f.device {
        out.push(cdi::parse_request(d).map_err(|e| usage(e.to_string()))?);
    }
    Ok(out)
}

/// Reads the CDI specs and merges the requested devices' edits (nothing to do without any).
fn cdi_edits(f: &LaunchFlags, requests: &[cdi::Request]) -> anyhow::Result<cdi::Edits> {
    if requests.is_empty() {
        return Ok(cdi::Edits::default());
    }
    let dirs: Vec<PathBuf> = if f.cdi_dir.is_empty() {
        cdi::DEFAULT_DIRS.iter().map(PathBuf::from).collect()
    } else {
        f.cdi_dir.clone()
    };
    Ok(cdi::Registry::load(&dirs)?.resolve(requests)?)
}

/// Resolves the image and builds the launch that will live in `dir`.
pub fn plan(g: &Global, req: &Request, dir: &Path) -> anyhow::Result<(Options, Launch)> {
    let mut opts = options(req)?;
    let devices = device_requests(&req.flags)?;
    let fail = || Failed(req.image.clone());
    let host = HostFacts::gather();
    let profile = req
        .flags
        .profile
        .as_deref()
        .unwrap_or(templates::DEFAULT_PROFILE);
    let launch = (|| -> anyhow::Result<Launch> {
        opts.cdi = cdi_edits(&req.flags, &devices)?;
        let template = templates::render(profile, host.uid, host.gid)?;
        let bar = crate::progress::Bar::new();
        let source = CachedImages {
            cache: super::cache(g),
            progress: &|p| bar.report(p),
        };
        let image = source.resolve(&req.image)?;
        drop(bar);
        super::warn_all(&image.warnings);
        Ok(husk_launcher::build(
            template, &image, &opts, &host, &RealFs, dir,
        )?)
    })()
    .context(fail())?;
    super::warn_all(&launch.warnings);
    Ok((opts, launch))
}

/// `$XDG_RUNTIME_DIR/husk-launch` (root: /run/husk-launch): beside the state root, not in it, so
/// `husk list` never sees a launch directory.
pub fn launch_base() -> PathBuf {
    let euid = nix::unistd::geteuid();
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("husk-launch"),
        _ if euid.is_root() => PathBuf::from("/run/husk-launch"),
        _ => std::env::temp_dir().join(format!("husk-launch-{euid}")),
    }
}

/// Where sandboxes (and batches) put their launch directories and workspaces: root's sandbox runs
/// as an unprivileged host id that must reach them, and root's $XDG_RUNTIME_DIR (/run/user/0) is
/// 0700: root uses /run/husk-launch whatever XDG_RUNTIME_DIR says.
pub fn sandbox_base() -> PathBuf {
    if nix::unistd::geteuid().is_root() && !husk_runtime::ns::in_user_ns() {
        return PathBuf::from("/run/husk-launch");
    }
    launch_base()
}

/// Creates `dir` mode 0700 (and its parent, which must then be ours).
pub fn make_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let mut b = std::fs::DirBuilder::new();
    b.mode(0o700).recursive(true);
    if let Some(parent) = dir.parent() {
        b.create(parent)
            .with_context(|| format!("create {}", parent.display()))?;
        let m = std::fs::symlink_metadata(parent)?;
        if m.uid() != nix::unistd::geteuid().as_raw() || !m.is_dir() {
            anyhow::bail!("create {}: exists and is not ours", parent.display());
        }
    }
    b.recursive(false)
        .create(dir)
        .with_context(|| format!("create {}", dir.display()))
}

/// A launch with a user namespace that failed on a host whose sysctls forbid them: the knob is
/// the one line worth showing (the engine's errno alone does not say why).
pub fn explain_userns(e: anyhow::Error, launch: &Launch) -> anyhow::Error {
    let nss = launch.config["linux"]["namespaces"].as_array();
    let userns = nss.is_some_and(|n| n.iter().any(|n| n["type"] == "user"));
    match husk_launcher::userns::diagnose(Path::new("/proc/sys")) {
        Some(b) if userns => {
            log::debug!("launch failed: {e:#}");
            anyhow::anyhow!("{b}")
        }
        _ => e,
    }
}

pub fn new_id() -> String {
    use std::io::Read;
    let mut b = [0u8; 4];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    format!("husk-{}-{:08x}", std::process::id(), u32::from_ne_bytes(b))
}

pub fn run(g: &Global, mut req: Request) -> anyhow::Result<i32> {
    if req.flags.sandbox.sandbox {
        if req.flags.gpu || !req.flags.device.is_empty() {
            // The sandbox builds its own spec; a device must never be dropped silently.
            return Err(usage("--sandbox with --gpu or --device: not supported"));
        }
        return super::sandbox::run(g, req);
    }
    let id = new_id();
    let dir = launch_base().join(&id);
    let (opts, launch) = plan(g, &req, &dir)?;
    if req.flags.dry_run {
        print!("{}", launch.config_json());
        return Ok(0);
    }
    let fail = || Failed(req.image.clone());
    let mut gopts = super::options(g)?;
    if !nix::unistd::geteuid().is_root() && !opts.resources.any() {
        // Rootless without limits: no cgroup, and no warning about one on every launch. Root keeps
        // its cgroup (delete cleans up strays); so does anyone asking for limits.
        gopts.cgroup.driver = Driver::Disabled;
    }
    super::inplace::try_exec(&gopts, &req, &opts, &launch, &dir)?;
    make_dir(&dir).context(fail())?;
    let result = launch
        .write(&dir)
        .map_err(anyhow::Error::from)
        .context(fail())
        .and_then(|()| {
            req.engine.bundle = dir.clone();
            super::run::foreground(&gopts, &id, &req.engine, false, false)
                .map_err(|e| explain_userns(e, &launch))
                .context(fail())
        });
    if let Err(e) = husk_launcher::spec::remove_launch_dir(&dir) {
        log::warn!("remove launch directory {}: {e}", dir.display());
    }
    result
}
