//! The sandbox's run, once `--sandbox`'s settings are known: the config built from the `sandbox`
//! profile and rewritten by the preset (husk_launcher::sandbox), the host made ready for root's
//! sandbox id ([`super::host`]), the container created with its output on pipes, watched
//! ([`super::watch`]: timeout, output caps, signals) and deleted, and the result record written
//! (docs/sandbox.md).
//!
//! The pipes are put on our fds 1 and 2 only while `create` clones the init (which inherits them),
//! then our own stdout/stderr are put back, so husk's messages never mix with the program's.

use super::host::{self, ResultFile};
use super::launch::{self, Failed};
use super::socket::{self, Pinned, PinnedInput};
use super::watch::{self, Capture, Watched};
use crate::cli::Global;
use crate::verbs::launch::Request;
use crate::verbs::{cache, context_id, usage, warn_all};
use anyhow::Context;
use husk_launcher::image::ResolvedImage;
use husk_launcher::sandbox::Lent;
use husk_launcher::sandbox::{self, LandlockRecord, Outcome, Output, Record, Sandbox};
use husk_launcher::{HostFacts, Launch};
use husk_runtime::container::{create, delete, kill, CreateMode, Created};
use husk_runtime::{Container, GlobalOptions};
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::signal::{SigSet, Signal};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Runs the sandbox `sb` in launch directory `dir` as container `id`; returns the program's status.
pub fn run(
    g: &Global,
    req: &mut Request,
    sb: Sandbox,
    pinned: &[Pinned],
    id: &str,
    dir: &Path,
) -> anyhow::Result<i32> {
    let image_arg = req.image.clone();
    let fail = || Failed(image_arg.clone());
    let (sb, launch, image, inputs) = prepare(g, req, sb, dir)?;
    if req.flags.dry_run {
        print!("{}", launch.config_json());
        return Ok(0);
    }
    let gopts = crate::verbs::options(g)?;
    let result_file = match &req.flags.sandbox.result {
        Some(path) => Some(ResultFile::open(path, &sb.workspace)?),
        None => None,
    };
    launch::make_dir(dir).context(fail())?;
    let started = Started {
        g,
        gopts: &gopts,
        sb: &sb,
        pinned,
        inputs: &inputs,
        id,
        dir,
    };
    let result = started.execute(req, &launch, &image).context(fail());
    if let Err(e) = std::fs::remove_dir_all(dir) {
        log::warn!("remove launch directory {}: {e}", dir.display());
    }
    report(req, result, result_file)
}

/// The launch for `sb`: the user's options made the preset's (its read-only input binds resolved
/// and pinned), the `sandbox` profile, the image, then the preset's rewrite of the config. The
/// pins returned (inputs, then the workspace) are checked once the container's mounts are made.
fn prepare(
    g: &Global,
    req: &Request,
    mut sb: Sandbox,
    dir: &Path,
) -> anyhow::Result<(Sandbox, Launch, ResolvedImage, Vec<PinnedInput>)> {
    let mut opts = launch::options(req)?;
    let inputs = std::mem::take(&mut opts.binds)
        .into_iter()
        .map(socket::pin_input)
        .collect::<anyhow::Result<Vec<_>>>()?;
    opts.binds = inputs.iter().map(|p| p.bind.clone()).collect();
    sb.resources = opts.resources.or(sb.resources);
    sb.options(&mut opts).map_err(|e| usage(e.to_string()))?;
    let host = HostFacts::gather();
    // Without root there is (here) no cgroup to count processes: RLIMIT_NPROC instead.
    let nproc = host.uid != 0;
    let (mut l, image) = launch::build(g, &req.image, "sandbox", &opts, &host, dir)
        .context(Failed(req.image.clone()))?;
    warn_all(&l.warnings);
    let term = std::env::var("TERM").ok();
    l.generate_hosts(dir);
    sb.apply(&mut l.config, &opts.env, term.as_deref(), nproc);
    // The workspace is bound by path too: what is mounted on /workspace must be that directory.
    let mut pins = inputs;
    pins.push(socket::pin_input(husk_launcher::Bind {
        source: sb.workspace.clone(),
        destination: sandbox::WORKSPACE.into(),
        readonly: false,
    })?);
    Ok((sb, l, image, pins))
}

/// A sandboxed instance's launch (`instance start --sandbox`), ready for its watcher.
pub struct Prepared {
    pub launch: Launch,
    sb: Sandbox,
    image: ResolvedImage,
    /// The workspace made for it (no `--workspace`).
    pub scratch: Option<PathBuf>,
}

/// The launch of a sandboxed instance in `bundle` (no supervisor of ours: its watcher runs it).
pub fn prepare_instance(
    g: &Global,
    req: &Request,
    sb: Sandbox,
    bundle: &Path,
    scratch: Option<PathBuf>,
) -> anyhow::Result<Prepared> {
    let (sb, launch, image, _pins) = prepare(g, req, sb, bundle)?;
    Ok(Prepared {
        launch,
        sb,
        image,
        scratch,
    })
}

impl Prepared {
    /// Once the launch directory exists: for root's sandbox, what its id must reach, and the
    /// workspace given to it; the workspace's measure, to give it back as it came at stop.
    pub fn hand_over(&self, g: &Global, bundle: &Path) -> anyhow::Result<Option<Lent>> {
        let ws = &self.sb.workspace;
        let Some(hid) = self.sb.host_id else {
            return match self.scratch {
                Some(_) => Ok(None),
                None => Ok(Some(host::lend(ws, None, |_| Ok(()))?)),
            };
        };
        if self.image.cached {
            host::share_cache(hid, cache(g).root(), &self.image.rootfs)?;
        }
        host::open_launch_dir(bundle)?;
        host::reachable(hid, &self.image.rootfs, "the image")?;
        host::reachable(hid, ws, "--workspace")?;
        Ok(Some(host::lend(ws, Some(hid), |_| Ok(()))?))
    }

    /// The instance did not start: its fresh workspace goes.
    pub fn discard(&self) {
        if let Some(s) = &self.scratch {
            let _ = std::fs::remove_dir_all(s);
        }
    }
}

/// A sandboxed instance's workspace at its end: a lent one given back, a fresh one removed.
pub fn release_workspace(lent: Option<&Lent>, scratch: Option<&Path>) {
    if let Some(l) = lent {
        host::give_back(l);
    }
    if let Some(s) = scratch {
        if let Err(e) = std::fs::remove_dir_all(s) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::warn!("remove workspace {}: {e}", s.display());
            }
        }
    }
}

/// Writes the record to `--result` and, with `--json`, stdout; on failure removes `--result`.
fn report(
    req: &Request,
    result: anyhow::Result<(i32, Record)>,
    file: Option<ResultFile>,
) -> anyhow::Result<i32> {
    let (code, record) = match result {
        Ok(r) => r,
        Err(e) => {
            if let Some(f) = file {
                f.remove();
            }
            return Err(e);
        }
    };
    let text = serde_json::to_string_pretty(&record)? + "\n";
    if let Some(f) = file {
        f.write(&text)?;
    }
    if req.flags.sandbox.json {
        print!("{text}");
    }
    Ok(code)
}

/// What the run needs once its launch directory exists.
struct Started<'a> {
    g: &'a Global,
    gopts: &'a GlobalOptions,
    sb: &'a Sandbox,
    pinned: &'a [Pinned],
    inputs: &'a [PinnedInput],
    id: &'a str,
    dir: &'a Path,
}

impl Started<'_> {
    /// Hands the host over to root's sandbox id, writes the launch and supervises the container;
    /// gives a lent workspace back.
    fn execute(
        &self,
        req: &mut Request,
        launch: &Launch,
        image: &ResolvedImage,
    ) -> anyhow::Result<(i32, Record)> {
        let sb = self.sb;
        let given = req.flags.sandbox.workspace.is_some();
        let mut lent = None;
        let result = (|| -> anyhow::Result<(i32, Record)> {
            if let Some(hid) = sb.host_id {
                if image.cached {
                    host::share_cache(hid, cache(self.g).root(), &image.rootfs)?;
                }
                // First: a fresh workspace sits beside the launch directory.
                host::open_launch_dir(self.dir)?;
                host::reachable(hid, &image.rootfs, "the image")?;
                host::reachable(hid, &sb.workspace, "--workspace")?;
                for p in self.inputs {
                    host::reachable(hid, &p.bind.source, "--bind")?;
                }
            }
            // A workspace of the caller's comes back as it came (root's or not: the code may
            // chmod it, add ACLs); a fresh one is removed afterwards.
            if given || sb.host_id.is_some() {
                // Should husk be killed, the next launch gives it back (super::sweep).
                let keep = |l: &Lent| match given {
                    true => super::sweep::record_lent(self.dir, l),
                    false => Ok(()),
                };
                lent = Some(host::lend(&sb.workspace, sb.host_id, keep)?);
            }
            launch.write(self.dir)?;
            req.engine.bundle = self.dir.to_path_buf();
            self.supervised(req)
        })();
        if let Some(l) = lent.filter(|_| given) {
            host::give_back(&l);
        }
        result
    }

    /// Creates, releases and watches the container; always deletes it.
    fn supervised(&self, req: &Request) -> anyhow::Result<(i32, Record)> {
        let (g, id) = (self.gopts, self.id);
        let sigs = husk_runtime::process::block_signals()?;
        let capture = if req.tty {
            None
        } else {
            Some(Capture::redirect()?)
        };
        if let (Some(hid), Some(_)) = (self.sb.host_id, &capture) {
            give_pipes(hid);
        }
        let created = create(g, id, &req.engine, CreateMode::Run);
        let pipes = capture.map(Capture::restore).transpose()?;
        let mut created = context_id(created, "run", id)?;
        let cgroup = created.record.cgroup.clone();
        let no_cgroup = cgroup_reason(&created.warnings, cgroup.is_enabled());
        let console = created.console.take();
        let landlock = created.spawned.landlock.clone();
        let start = Instant::now();
        let watched = self.watch(&mut created, console, &sigs, pipes, req);
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
        Ok((w.code, record(w, facts, self.sb, req)?))
    }

    /// Checks the pinned sockets, releases the init and watches it (proxying a terminal).
    fn watch(
        &self,
        created: &mut Created,
        console: Option<OwnedFd>,
        sigs: &SigSet,
        pipes: Option<[OwnedFd; 2]>,
        req: &Request,
    ) -> anyhow::Result<Watched> {
        let init = created.spawned.pid;
        self.pinned
            .iter()
            .try_for_each(|p| socket::verify(init.as_raw(), p))
            .and_then(|()| {
                let pid = init.as_raw();
                self.inputs
                    .iter()
                    .try_for_each(|p| socket::verify_input(pid, p))
            })
            .and_then(|()| created.release().map_err(anyhow::Error::from))
            .and_then(|w| {
                warn_all(&w);
                let _proxy = match &console {
                    Some(sock) => Some(crate::tty::TtyProxy::start(sock)?),
                    None => None,
                };
                let kill_all = || kill_container(self.gopts, self.id, init);
                let keep = req.flags.sandbox.json;
                watch::watch(init, sigs, pipes, self.sb, keep, kill_all)
            })
    }
}

/// The pipes on fds 1 and 2 are root's, mode 0600: the sandbox's id could write the fds it
/// inherits but not reopen them (/dev/stdout, /proc/self/fd/1). Give it the pipes. Not fatal
/// (only reopening is affected), and fds 1 and 2 must be restored after create.
fn give_pipes(hid: u32) {
    for fd in [1, 2] {
        if let Err(e) = nix::unistd::fchown(fd, Some(hid.into()), Some(hid.into())) {
            log::warn!("sandbox: give output pipe {fd} to host id {hid}: {e}");
        }
    }
}

/// Logs the engine's warnings; without a cgroup its cgroup warning becomes the reason, said once
/// in our line (what is applied instead) and kept for the record.
fn cgroup_reason(warnings: &[String], enabled: bool) -> Option<String> {
    let (why, rest) = sandbox::no_cgroup_reason(warnings, enabled);
    warn_all(&rest);
    if let Some(why) = &why {
        log::warn!(
            "sandbox: {why}; cpu limit not applied, memory limited per process by RLIMIT_DATA, \
             processes by RLIMIT_NPROC"
        );
    }
    why
}

/// What is known of a finished container besides how its init ended.
struct Facts {
    wall: Duration,
    oom: bool,
    cg_peak: Option<u64>,
    /// Why there was no cgroup, when there was none.
    no_cgroup: Option<String>,
    landlock: Option<husk_runtime::security::landlock::Status>,
}

/// The record: what the watch saw, the facts, and our children's resource usage (the container's
/// processes, all reaped by now).
fn record(w: Watched, f: Facts, sb: &Sandbox, req: &Request) -> anyhow::Result<Record> {
    let ru = getrusage(UsageWho::RUSAGE_CHILDREN)?;
    let ms = |t: nix::sys::time::TimeVal| (t.tv_sec() * 1000 + t.tv_usec() / 1000) as u64;
    let json = req.flags.sandbox.json;
    let output = |s: &watch::Stream| Output {
        bytes: s.seen,
        truncated: s.truncated(),
        text: json.then(|| s.text()),
    };
    // The engine warned already when Landlock was not enforced.
    let landlock = f.landlock.map(|s| LandlockRecord {
        abi: s.abi,
        enforced: s.enforced,
        writable: s.writable.iter().map(|p| p.display().to_string()).collect(),
        reason: s.reason,
    });
    Ok(sb.record(Outcome {
        exit_code: w.code,
        signal: w.signal.map(|s: Signal| s.as_str().to_string()),
        timed_out: w.timed_out,
        oom_killed: f.oom,
        stdout: output(&w.out),
        stderr: output(&w.err),
        wall: f.wall,
        cpu_user_ms: ms(ru.user_time()),
        cpu_sys_ms: ms(ru.system_time()),
        cgroup_peak: f.cg_peak,
        max_rss: ru.max_rss() as u64 * 1024,
        no_cgroup: f.no_cgroup,
        landlock,
        tty: req.tty,
        caller: (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        ),
    }))
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
