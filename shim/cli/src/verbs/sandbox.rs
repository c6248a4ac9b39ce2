//! `husk run|exec IMAGE --sandbox`: the untrusted-code preset (husk_launcher::sandbox builds the
//! config) and its supervisor: the container's stdout/stderr come through pipes and are capped, a
//! wall-clock timeout kills the whole container, and a result record says what happened and which
//! limits were in force (docs/sandbox.md).
//!
//! The pipes are put on our fds 1 and 2 only while `create` clones the init (which inherits them),
//! then our own stdout/stderr are put back, so husk's messages never mix with the program's.

use super::launch::{self, Failed, Request};
use super::{usage, warn_all};
use crate::cli::Global;
use anyhow::Context;
use clap::Args;
use husk_launcher::image::{CachedImages, ImageSource};
use husk_launcher::sandbox::{self, LandlockRecord, Record, Sandbox};
use husk_launcher::{templates, HostFacts, RealFs};
use husk_runtime::container::{create, delete, kill, CreateMode};
use husk_runtime::{Container, GlobalOptions};
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::signal::Signal;
use std::path::PathBuf;
use std::time::Instant;

mod socket;
mod supervise;

/// Flags of `--sandbox` (on run and exec with an IMAGE).
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
#[command(next_help_heading = "Sandbox options (with an IMAGE)")]
pub struct SandboxFlags {
    /// Run untrusted code: no network, read-only image, only the workspace writable, no
    /// capabilities, seccomp, limits (docs/sandbox.md)
    #[arg(long)]
    pub sandbox: bool,
    /// Host directory bound read-write on /workspace, the working directory [default: a new
    /// empty one, removed afterwards]
    #[arg(long, value_name = "DIR", requires = "sandbox")]
    pub workspace: Option<PathBuf>,
    /// Size of the tmpfs on /tmp [default: 64M]
    #[arg(long, value_name = "SIZE", requires = "sandbox")]
    pub tmp_size: Option<String>,
    /// Wall-clock limit; then every process of the container is killed [default: 10s]
    #[arg(long, value_name = "DURATION", requires = "sandbox")]
    pub timeout: Option<String>,
    /// Bytes of stdout and of stderr passed on; the rest is dropped [default: 1M]
    #[arg(long, value_name = "SIZE", requires = "sandbox")]
    pub output_limit: Option<String>,
    /// Write the result record (JSON) to FILE
    #[arg(long, value_name = "FILE", requires = "sandbox")]
    pub result: Option<PathBuf>,
    /// Print the result record on stdout, the program's output captured into it
    #[arg(long, requires = "sandbox")]
    pub json: bool,
    /// Bind the Unix socket HOST_PATH (the socket itself: not a symlink, not a directory) on
    /// CONTAINER_PATH (absolute, not under /proc, /sys, /dev or /workspace); repeatable
    #[arg(long, value_name = "HOST_PATH:CONTAINER_PATH", requires = "sandbox")]
    pub socket: Vec<String>,
    /// Run by root: the unprivileged host uid and gid the code runs as (its root in a user
    /// namespace maps to ID) [default: 1000000000]
    #[arg(long, value_name = "ID", requires = "sandbox")]
    pub host_id: Option<String>,
}

/// Launcher flags the preset decides itself.
fn reject_conflicts(req: &Request) -> anyhow::Result<()> {
    let f = &req.flags;
    let bad = [
        (!f.bind.is_empty(), "--bind"),
        (f.writable, "--writable"),
        (f.writable_tmpfs, "--writable-tmpfs"),
        (f.overlay.is_some(), "--overlay"),
        (f.fakeroot, "--fakeroot"),
        (f.userns, "--userns"),
        (f.net.is_some(), "--net"),
        (f.profile.is_some(), "--profile"),
        (f.pwd.is_some(), "--pwd"),
        (f.hostname.is_some(), "--hostname"),
    ];
    match bad.iter().find(|(on, _)| *on) {
        Some((_, flag)) => Err(usage(format!("--sandbox: {flag} cannot be used with it"))),
        None => Ok(()),
    }
}

fn settings(req: &Request, workspace: PathBuf) -> anyhow::Result<(Sandbox, Vec<socket::Pinned>)> {
    let s = &req.flags.sandbox;
    let bad = |e: sandbox::SandboxError| usage(e.to_string());
    let mut sb = Sandbox::new(workspace);
    let root = nix::unistd::geteuid().is_root();
    sb.host_id = match (&s.host_id, root) {
        (Some(id), true) => Some(sandbox::parse_host_id(id).map_err(bad)?),
        (Some(_), false) => {
            return Err(usage(
                "--host-id: only root's sandboxes choose a host id (yours run as you)",
            ))
        }
        (None, true) => Some(sandbox::DEFAULT_HOST_ID),
        (None, false) => None,
    };
    let mut pinned = Vec::new();
    for spec in &s.socket {
        let bind = sandbox::parse_socket(spec).map_err(bad)?;
        pinned.push(socket::check(bind)?);
    }
    sb.sockets = pinned.iter().map(|p| p.bind.clone()).collect();
    if let Some(t) = &s.tmp_size {
        sb.tmp_size = sandbox::parse_size(t).map_err(bad)?;
    }
    if let Some(t) = &s.timeout {
        sb.timeout = sandbox::parse_duration(t).map_err(bad)?;
    }
    if let Some(o) = &s.output_limit {
        sb.output_limit = sandbox::parse_size(o).map_err(bad)? as u64;
    }
    Ok((sb, pinned))
}

/// Root's sandbox mounts as `id`, which has no privilege over host files: every directory above
/// `path` must let it search (others' x bit, or its own), or the mount fails with EACCES.
fn reachable(id: u32, path: &std::path::Path, what: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
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
fn share_cache(id: u32, cache: &std::path::Path, image: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
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

/// Root's sandbox runs as `id` in a user namespace: the launch directory must be searchable by
/// it and the workspace its own. Returns the workspace's owner and mode to restore afterwards (a
/// `--workspace` of the caller's: the code, its owner meanwhile, may chmod it), or None.
fn hand_over(
    id: u32,
    dir: &std::path::Path,
    ws: &std::path::Path,
    given: bool,
) -> anyhow::Result<Option<(u32, u32, u32)>> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let search = std::fs::Permissions::from_mode(0o711);
    for d in [dir.parent(), Some(dir)].into_iter().flatten() {
        std::fs::set_permissions(d, search.clone())
            .with_context(|| format!("open {} to the sandbox id", d.display()))?;
    }
    let before = std::fs::symlink_metadata(ws)?;
    std::os::unix::fs::lchown(ws, Some(id), Some(id))
        .with_context(|| format!("give --workspace {} to host id {id}", ws.display()))?;
    Ok(given.then(|| (before.uid(), before.gid(), before.mode() & 0o7777)))
}

pub fn run(g: &Global, mut req: Request) -> anyhow::Result<i32> {
    reject_conflicts(&req)?;
    let id = launch::new_id();
    let dir = launch::sandbox_base().join(&id);
    let scratch = launch::sandbox_base().join(format!("{id}.workspace"));
    let workspace = match &req.flags.sandbox.workspace {
        Some(w) => {
            std::fs::canonicalize(w).with_context(|| format!("--workspace {}", w.display()))?
        }
        None => {
            launch::make_dir(&scratch).context(Failed(req.image.clone()))?;
            scratch.clone()
        }
    };
    let result = settings(&req, workspace)
        .and_then(|(sb, pinned)| launch_in(g, &mut req, &sb, &pinned, &id, &dir));
    if req.flags.sandbox.workspace.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    result
}

fn launch_in(
    g: &Global,
    req: &mut Request,
    sb: &Sandbox,
    pinned: &[socket::Pinned],
    id: &str,
    dir: &std::path::Path,
) -> anyhow::Result<i32> {
    let image_arg = req.image.clone();
    let fail = || Failed(image_arg.clone());
    let mut opts = launch::options(req)?;
    let mut sb = sb.clone();
    let r = opts.resources;
    sb.resources.memory = r.memory.or(sb.resources.memory);
    sb.resources.cpus = r.cpus.or(sb.resources.cpus);
    sb.resources.pids = r.pids.or(sb.resources.pids);
    sb.options(&mut opts).map_err(|e| usage(e.to_string()))?;
    let host = HostFacts::gather();
    // Without root there is (here) no cgroup to count processes: RLIMIT_NPROC instead.
    let nproc = host.uid != 0;
    let (mut launch, rootfs, cached) =
        (|| -> anyhow::Result<(husk_launcher::Launch, PathBuf, bool)> {
            let template = templates::render("sandbox", host.uid, host.gid)?;
            // Every IMAGE form `husk exec` takes (rootfs dir, oci:, archives, docker://), cached.
            let bar = crate::progress::Bar::new();
            let source = CachedImages {
                cache: super::cache(g),
                progress: &|p| bar.report(p),
            };
            let image = source.resolve(&req.image)?;
            drop(bar);
            warn_all(&image.warnings);
            let launch = husk_launcher::build(template, &image, &opts, &host, &RealFs, dir)?;
            Ok((launch, image.rootfs, image.cached))
        })()
        .context(fail())?;
    warn_all(&launch.warnings);
    let term = std::env::var("TERM").ok();
    sb.apply(&mut launch.config, &opts.env, term.as_deref(), nproc);
    if req.flags.dry_run {
        print!("{}", launch.config_json());
        return Ok(0);
    }
    let gopts = super::options(g)?;
    let result_file = match &req.flags.sandbox.result {
        Some(path) => Some(ResultFile::open(path)?),
        None => None,
    };
    launch::make_dir(dir).context(fail())?;
    let mut restore = None;
    let result = (|| -> anyhow::Result<(i32, Record)> {
        if let Some(hid) = sb.host_id {
            if cached {
                share_cache(hid, super::cache(g).root(), &rootfs)?;
            }
            reachable(hid, &rootfs, "the image")?;
            reachable(hid, &sb.workspace, "--workspace")?;
            restore = hand_over(
                hid,
                dir,
                &sb.workspace,
                req.flags.sandbox.workspace.is_some(),
            )?;
        }
        launch.write(dir)?;
        req.engine.bundle = dir.to_path_buf();
        supervised(&gopts, id, req, &sb, pinned)
    })()
    .context(fail());
    if let Some((u, gid, mode)) = restore {
        use std::os::unix::fs::PermissionsExt;
        let ws = &sb.workspace;
        let back = std::os::unix::fs::lchown(ws, Some(u), Some(gid))
            .and_then(|()| std::fs::set_permissions(ws, std::fs::Permissions::from_mode(mode)));
        if let Err(e) = back {
            log::warn!("give --workspace {} back: {e}", ws.display());
        }
    }
    if let Err(e) = std::fs::remove_dir_all(dir) {
        log::warn!("remove launch directory {}: {e}", dir.display());
    }
    let (code, record) = match result {
        Ok(r) => r,
        Err(e) => {
            if let Some(f) = result_file {
                f.remove();
            }
            return Err(e);
        }
    };
    let text = serde_json::to_string_pretty(&record)? + "\n";
    if let Some(f) = result_file {
        f.write(&text)?;
    }
    if req.flags.sandbox.json {
        print!("{text}");
    }
    Ok(code)
}

/// `--result FILE`, opened (created, truncated, never through a symlink) before the program
/// starts; the record is written through this descriptor. The file may sit in the workspace, where
/// the program can replace it: a symlink it puts there must not aim husk's write (as root, maybe)
/// at a host file.
struct ResultFile {
    path: PathBuf,
    file: std::fs::File,
}

impl ResultFile {
    fn open(path: &std::path::Path) -> anyhow::Result<ResultFile> {
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
        use std::os::unix::fs::MetadataExt;
        match (self.file.metadata(), std::fs::symlink_metadata(&self.path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }

    fn write(mut self, text: &str) -> anyhow::Result<()> {
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
    fn remove(self) {
        if self.still_ours() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Creates, releases and watches the container; always deletes it.
fn supervised(
    g: &GlobalOptions,
    id: &str,
    req: &Request,
    sb: &Sandbox,
    pinned: &[socket::Pinned],
) -> anyhow::Result<(i32, Record)> {
    let sigs = husk_runtime::process::block_signals()?;
    let capture = if req.tty {
        None
    } else {
        Some(supervise::Capture::redirect()?)
    };
    if let (Some(hid), Some(_)) = (sb.host_id, &capture) {
        // The pipes on fds 1 and 2 are root's, mode 0600: the sandbox's id could write the fds it
        // inherits but not reopen them (/dev/stdout, /proc/self/fd/1). Give it the pipes.
        // Not fatal (only reopening is affected), and fds 1 and 2 must be restored below.
        for fd in [1, 2] {
            if let Err(e) = nix::unistd::fchown(fd, Some(hid.into()), Some(hid.into())) {
                log::warn!("sandbox: give output pipe {fd} to host id {hid}: {e}");
            }
        }
    }
    let created = create(g, id, &req.engine, CreateMode::Run);
    let pipes = capture.map(supervise::Capture::restore).transpose()?;
    let mut created = super::context_id(created, "run", id)?;
    let cgroup = created.record.cgroup.clone();
    let no_cgroup = cgroup_reason(&created.warnings, cgroup.is_enabled());
    let console = created.console.take();
    let landlock = created.spawned.landlock.clone();
    let start = Instant::now();
    let init = created.spawned.pid.as_raw();
    let watched = pinned
        .iter()
        .try_for_each(|p| socket::verify(init, p))
        .and_then(|()| created.release().map_err(anyhow::Error::from))
        .and_then(|w| {
            warn_all(&w);
            let _proxy = match &console {
                Some(sock) => Some(crate::tty::TtyProxy::start(sock)?),
                None => None,
            };
            let kill_all = || kill_container(g, id, created.spawned.pid);
            supervise::watch(
                created.spawned.pid,
                &sigs,
                pipes,
                sb,
                req.flags.sandbox.json,
                kill_all,
            )
        });
    let wall = start.elapsed();
    let oom = cgroup.is_enabled() && cgroup.oom_kills().unwrap_or(0) > 0;
    let cg_peak = cgroup
        .stats()
        .ok()
        .and_then(|s| s["memory"]["usage"]["max"].as_u64());
    match Container::open(g, id) {
        Ok(c) => match delete(&c, true) {
            Ok(w) => warn_all(&w),
            Err(e) => log::warn!("clean up container {id}: {e}"),
        },
        Err(e) => log::warn!("clean up container {id}: {e}"),
    }
    let facts = Facts {
        wall,
        oom,
        cg_peak,
        no_cgroup,
        landlock,
    };
    let w = watched?;
    Ok((w.code, record(w, facts, sb, req)?))
}

/// What is known of a finished container besides how its init ended.
struct Facts {
    wall: std::time::Duration,
    oom: bool,
    cg_peak: Option<u64>,
    /// Why there was no cgroup, when there was none.
    no_cgroup: Option<String>,
    landlock: Option<husk_runtime::security::landlock::Status>,
}

/// Logs the engine's warnings; without a cgroup its cgroup warning becomes the reason, said once
/// in our line (what is applied instead) and kept for the record.
fn cgroup_reason(warnings: &[String], enabled: bool) -> Option<String> {
    let (why, rest): (Vec<String>, Vec<String>) = warnings
        .iter()
        .cloned()
        .partition(|w| !enabled && w.contains("cgroup"));
    warn_all(&rest);
    if enabled {
        return None;
    }
    let why = why
        .into_iter()
        .next()
        .unwrap_or_else(|| "no cgroup (cgroups disabled)".into());
    log::warn!(
        "sandbox: {why}; cpu limit not applied, memory limited per process by RLIMIT_DATA, \
         processes by RLIMIT_NPROC"
    );
    Some(why)
}

fn record(w: supervise::Watched, f: Facts, sb: &Sandbox, req: &Request) -> anyhow::Result<Record> {
    let ru = getrusage(UsageWho::RUSAGE_CHILDREN)?;
    let ms = |t: nix::sys::time::TimeVal| (t.tv_sec() * 1000 + t.tv_usec() / 1000) as u64;
    let (peak, source) = match f.cg_peak {
        Some(p) => (p, "cgroup"),
        None => (ru.max_rss() as u64 * 1024, "rusage"),
    };
    let json = req.flags.sandbox.json;
    Ok(Record {
        exit_code: w.code,
        signal: w.signal.map(|s: Signal| s.as_str().to_string()),
        timed_out: w.timed_out,
        oom_killed: f.oom,
        stdout_truncated: w.out.truncated(),
        stderr_truncated: w.err.truncated(),
        stdout_bytes: w.out.seen,
        stderr_bytes: w.err.seen,
        wall_ms: f.wall.as_millis() as u64,
        cpu_user_ms: ms(ru.user_time()),
        cpu_sys_ms: ms(ru.system_time()),
        peak_memory_bytes: peak,
        peak_memory_source: source.into(),
        limits: sb.limits(f.no_cgroup.as_deref(), req.tty),
        landlock: landlock_record(f.landlock),
        host_uid: sb
            .host_id
            .unwrap_or_else(|| nix::unistd::geteuid().as_raw()),
        host_gid: sb
            .host_id
            .unwrap_or_else(|| nix::unistd::getegid().as_raw()),
        stdout: json.then(|| w.out.text()),
        stderr: json.then(|| w.err.text()),
    })
}

fn landlock_record(s: Option<husk_runtime::security::landlock::Status>) -> LandlockRecord {
    match s {
        // The engine warned already when it was not enforced.
        Some(s) => LandlockRecord {
            abi: s.abi,
            enforced: s.enforced,
            writable: s.writable.iter().map(|p| p.display().to_string()).collect(),
            reason: s.reason,
        },
        None => LandlockRecord {
            abi: 0,
            enforced: false,
            writable: Vec::new(),
            reason: Some("the engine reported no landlock status".into()),
        },
    }
}

/// Every process of the container: the cgroup's or the pid namespace's, then the init itself
/// (whose death ends the pid namespace).
fn kill_container(g: &GlobalOptions, id: &str, pid: nix::unistd::Pid) {
    if let Ok(c) = Container::open(g, id) {
        if let Err(e) = kill(&c, Signal::SIGKILL, true) {
            log::debug!("kill container {id}: {e}");
        }
    }
    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
}
