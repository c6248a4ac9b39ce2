//! The launcher face's plain path (`husk run|exec|shell IMAGE`): the request's flags as
//! husk_launcher::Options, the image resolved and the spec built by husk-launcher, a launch dir
//! written, then the same create/release/wait/delete as `husk run` ([`super::foreground`]). Also
//! where launch directories live, for the sandbox, batches and instances.
//!
//! Failures of the launcher itself are [`Failed`] (exit status 255), so they cannot be mistaken for
//! the program's status.

use crate::cli::Global;
use crate::verbs::launch::{NetArg, Request};
use crate::verbs::{cache, usage, warn_all};
use anyhow::Context;
use husk_launcher::image::{CachedImages, ImageSource, ResolvedImage};
use husk_launcher::options::{parse_binds, parse_caps, parse_env, parse_env_file, parse_ipc};
use husk_launcher::{cdi, templates, HostFacts, Launch, Net, Options, OptionsError, Overlay};
use husk_launcher::{RealFs, Resources};
use husk_runtime::cgroup::Driver;
use std::path::{Path, PathBuf};

/// Marks a failure of the launcher itself (exit status 255).
#[derive(Debug)]
pub struct Failed(pub String);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "launch {}", self.0)
    }
}

/// The launcher's options from the request's flags (usage errors for bad values).
pub fn options(req: &Request) -> anyhow::Result<Options> {
    let f = &req.flags;
    if let Some(p) = &f.profile {
        templates::known(p).map_err(|e| usage(e.to_string()))?;
    }
    let bad = |e: OptionsError| usage(e.to_string());
    let mut o = Options::new(req.verb.clone());
    for b in &f.bind {
        o.binds.extend(parse_binds(b).map_err(bad)?);
    }
    for path in &f.env_file {
        // A FIFO (or a device) would block the read, or never end it.
        if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
            anyhow::bail!("read --env-file {}: not a regular file", path.display());
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read --env-file {}", path.display()))?;
        o.env.extend(parse_env_file(&text, path)?);
    }
    for e in &req.env {
        o.env.push(parse_env(e).map_err(bad)?);
    }
    o.resources =
        Resources::parse(f.memory.as_deref(), f.cpus.as_deref(), f.pids_limit).map_err(bad)?;
    o.no_home = f.no_home;
    o.contain = f.contain;
    o.containall = f.containall;
    o.pwd = f.pwd.clone();
    o.pid = f.pid;
    o.ipc = f.ipc.as_deref().map(parse_ipc).transpose().map_err(bad)?;
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
    for c in &f.add_caps {
        o.add_caps.extend(parse_caps(c).map_err(bad)?);
    }
    for c in &f.drop_caps {
        o.drop_caps.extend(parse_caps(c).map_err(bad)?);
    }
    Ok(o)
}

/// Resolves the image and builds the launch that will live in `dir`.
pub fn plan(g: &Global, req: &Request, dir: &Path) -> anyhow::Result<(Options, Launch)> {
    let mut opts = options(req)?;
    let f = &req.flags;
    let devices = cdi::requests(f.gpu, &f.device).map_err(|e| usage(e.to_string()))?;
    let host = HostFacts::gather();
    let profile = f.profile.as_deref().unwrap_or(templates::DEFAULT_PROFILE);
    let launch = (|| -> anyhow::Result<Launch> {
        opts.cdi = cdi::load_edits(&f.cdi_dir, &devices)?;
        Ok(build(g, &req.image, profile, &opts, &host, dir)?.0)
    })()
    .context(Failed(req.image.clone()))?;
    warn_all(&launch.warnings);
    Ok((opts, launch))
}

/// Renders `profile`, resolves `image` (every IMAGE form `husk exec` takes: rootfs dir, oci:,
/// archives, docker://; cached, with a progress bar) and builds the launch for `dir`.
pub fn build(
    g: &Global,
    image: &str,
    profile: &str,
    opts: &Options,
    host: &HostFacts,
    dir: &Path,
) -> anyhow::Result<(Launch, ResolvedImage)> {
    let template = templates::render(profile, host.uid, host.gid)?;
    let bar = crate::progress::Bar::new();
    let source = CachedImages {
        cache: cache(g),
        progress: &|p| bar.report(p),
    };
    let image = source.resolve(image)?;
    drop(bar);
    warn_all(&image.warnings);
    let launch = husk_launcher::build(template, &image, opts, host, &RealFs, dir)?;
    Ok((launch, image))
}

/// Runs the request: in place when it can ([`super::inplace`]), else through the engine; the
/// launch directory is removed afterwards.
pub fn run(g: &Global, mut req: Request) -> anyhow::Result<i32> {
    let id = new_id();
    let dir = launch_base().join(&id);
    let (opts, launch) = plan(g, &req, &dir)?;
    if req.flags.dry_run {
        print!("{}", launch.config_json());
        return Ok(0);
    }
    let fail = || Failed(req.image.clone());
    let mut gopts = crate::verbs::options(g)?;
    if !nix::unistd::geteuid().is_root() && !opts.resources.any() {
        // Rootless without limits: no cgroup, and no warning about one on every launch. Root keeps
        // its cgroup (delete cleans up strays); so does anyone asking for limits.
        gopts.cgroup.driver = Driver::Disabled;
    }
    super::sweep::sweep(&gopts);
    super::inplace::try_exec(&gopts, &req, &opts, &launch, &dir)?;
    make_dir(&dir).context(fail())?;
    let result = launch
        .write(&dir)
        .map_err(anyhow::Error::from)
        .context(fail())
        .and_then(|()| {
            req.engine.bundle = dir.clone();
            super::foreground(&gopts, &id, &req.engine, false, false)
                .map_err(|e| explain_userns(e, &launch))
                .context(fail())
        });
    if let Err(e) = husk_launcher::spec::remove_launch_dir(&dir) {
        log::warn!("remove launch directory {}: {e}", dir.display());
    }
    result
}

/// `$XDG_RUNTIME_DIR/husk-launch` (root: /run/husk-launch; others without the variable:
/// /run/user/UID/husk-launch, else /tmp/husk-launch-UID): beside the state root, not in it, so
/// `husk list` never sees a launch directory.
pub fn launch_base() -> PathBuf {
    let euid = nix::unistd::geteuid();
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("husk-launch"),
        _ if euid.is_root() => PathBuf::from("/run/husk-launch"),
        _ => match husk_runtime::state::runtime_dir() {
            Some(d) => d.join("husk-launch"),
            None => husk_runtime::state::tmp_fallback("husk-launch"),
        },
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

/// Whether `dir` is root's sandbox base, which sandbox ids must be able to search.
fn is_root_sandbox_base(dir: &Path) -> bool {
    nix::unistd::geteuid().is_root() && !husk_runtime::ns::in_user_ns() && dir == sandbox_base()
}

/// Creates `dir` mode 0700; its parent (made if absent) must be a private directory of ours
/// (husk_runtime::state::private_dir: not someone else's, not writable by others). Root's sandbox
/// base (/run/husk-launch) is then made 0711: root's sandbox runs as an unprivileged host id that
/// must search it to reach its workspace and launch directory (issue 11 item 6: a fresh boot's
/// base was 0700 and `--sandbox` without `--workspace` was refused).
pub fn make_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    if let Some(parent) = dir.parent() {
        let base = husk_runtime::state::private_dir(parent)?;
        if is_root_sandbox_base(parent) && base.metadata()?.mode() & 0o111 != 0o111 {
            // On the checked descriptor, not the path: the directory cannot be swapped between.
            base.set_permissions(std::fs::Permissions::from_mode(0o711))
                .with_context(|| format!("open {} to the sandbox id", parent.display()))?;
        }
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("create {}", dir.display()))
}

/// A launch with a user namespace that failed on a host whose sysctls forbid them: the knob is
/// the one line worth showing (the engine's errno alone does not say why).
pub fn explain_userns(e: anyhow::Error, launch: &Launch) -> anyhow::Error {
    match husk_launcher::userns::diagnose(Path::new("/proc/sys")) {
        Some(b) if launch.userns() => {
            log::debug!("launch failed: {e:#}");
            anyhow::anyhow!("{b}")
        }
        _ => e,
    }
}

/// A fresh launch id: `husk-<pid>-<8 hex digits>` (a batch's scratch tree is named after its own:
/// husk_launcher::batch::scratch_owner reads the pid back).
pub fn new_id() -> String {
    use std::io::Read;
    let mut b = [0u8; 4];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    format!("husk-{}-{:08x}", std::process::id(), u32::from_ne_bytes(b))
}
