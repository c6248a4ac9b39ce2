//! The batch's loop: up to N workers (`husk batch-job`, one per job) at a time, one poll over a
//! signalfd (SIGCHLD: a worker ended; SIGINT/SIGTERM/SIGHUP: stop), a result line written and
//! flushed as each job ends.
//!
//! Each job gets a directory under the launch base (`batch-<id>/<n>/`): its fresh workspace
//! (`ws/`, with the job's files), its stdin (`in`), and the worker's stdout (`out`: the sandbox
//! record) and stderr (`err`: husk's own log, JSON lines). Files, not pipes: nothing to drain
//! while other workers run, and a worker never blocks on us. The directory goes when its job
//! ends; the whole tree when the batch does.
//!
//! On a signal no job is started any more; the signal is passed to every running worker, whose
//! supervisor passes it on to its program and kills the container 2 s later if still running, then
//! deletes it (state dir, cgroup, mounts) and prints its record; we wait for all of them.
//!
//! Why a process per job: the sandbox supervisor is process-wide by design (it puts pipes on fds 1
//! and 2 while cloning, reaps any child, reads RUSAGE_CHILDREN, owns the signal mask) and the
//! engine clones from a single-threaded process, so one process per job is what lets jobs run side
//! by side; its cost (one exec of husk) is small beside a container's.

use super::launch::{make_dir, new_id, sandbox_base};
use crate::cli::Global;
use crate::progress::Counter;
use anyhow::Context;
use husk_launcher::batch::{self, result_line, Job, LogLine, Parsed, Status, Tally};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;
use serde_json::Value;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

/// How a batch ended.
pub struct Ended {
    pub tally: Tally,
    /// The signal that interrupted it.
    pub signal: Option<i32>,
    /// What stopped it otherwise (the results could not be written).
    pub fatal: Option<anyhow::Error>,
}

struct Running {
    id: Value,
    child: Child,
    dir: PathBuf,
    /// The batch passed it a signal: unless it still passed, it was interrupted.
    signalled: bool,
}

pub struct Pool {
    parallel: usize,
    out: Box<dyn Write>,
    bar: Counter,
    scratch: PathBuf,
    exe: PathBuf,
    globals: Vec<String>,
    /// Warnings of the workers already shown: each is said once per batch.
    warned: HashSet<String>,
    running: Vec<Running>,
    started: usize,
    tally: Tally,
    signal: Option<Signal>,
    fatal: Option<anyhow::Error>,
}

impl Pool {
    pub fn new(
        g: &Global,
        parallel: usize,
        out: Box<dyn Write>,
        bar: Counter,
    ) -> anyhow::Result<Pool> {
        let base = sandbox_base();
        sweep(&base);
        let scratch = base.join(batch::scratch_name(&new_id()));
        make_dir(&scratch)?;
        // The launch base too: a fresh one is 0700 until a sandbox has run from it.
        searchable_by_sandbox_id(&base)?;
        searchable_by_sandbox_id(&scratch)?;
        Ok(Pool {
            parallel,
            out,
            bar,
            scratch,
            exe: std::env::current_exe().context("find the husk binary")?,
            globals: global_args(g),
            warned: HashSet::new(),
            running: Vec::new(),
            started: 0,
            tally: Tally::default(),
            signal: None,
            fatal: None,
        })
    }

    pub fn run<'a>(mut self, jobs: impl Iterator<Item = &'a Parsed>) -> anyhow::Result<Ended> {
        let mut sigs = SigSet::empty();
        for s in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGCHLD,
        ] {
            sigs.add(s);
        }
        sigs.thread_block()?;
        let sfd = SignalFd::with_flags(&sigs, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        let mut jobs = jobs.peekable();
        loop {
            while !self.stopping() && self.running.len() < self.parallel {
                let Some(p) = jobs.next() else { break };
                self.start(p);
            }
            if self.running.is_empty() && (self.stopping() || jobs.peek().is_none()) {
                break;
            }
            self.draw();
            let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(250u16)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
            while let Ok(Some(si)) = sfd.read_signal() {
                match Signal::try_from(si.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) | Err(_) => {}
                    Ok(sig) => {
                        self.signal.get_or_insert(sig);
                        self.pass_on(sig);
                    }
                }
            }
            self.reap();
        }
        self.bar.clear();
        if let Err(e) = fs::remove_dir_all(&self.scratch) {
            log::warn!("remove {}: {e}", self.scratch.display());
        }
        Ok(Ended {
            tally: self.tally,
            signal: self.signal.map(|s| s as i32),
            fatal: self.fatal,
        })
    }

    fn stopping(&self) -> bool {
        self.signal.is_some() || self.fatal.is_some()
    }

    fn draw(&mut self) {
        let failed = self.tally.not_passed();
        self.bar.draw(self.tally.done(), self.running.len(), failed);
    }

    fn pass_on(&mut self, sig: Signal) {
        for r in &mut self.running {
            r.signalled = true;
            let _ = kill(Pid::from_raw(r.child.id() as i32), sig);
        }
    }

    fn start(&mut self, p: &Parsed) {
        let job = match &p.job {
            Ok(job) => job,
            Err(e) => {
                return self.emit(
                    result_line(&p.id, Status::Error, Some(&e.to_string()), None),
                    Status::Error,
                    None,
                )
            }
        };
        self.started += 1;
        let dir = self.scratch.join(self.started.to_string());
        match self.spawn(job, &dir) {
            Ok(child) => self.running.push(Running {
                id: p.id.clone(),
                child,
                dir,
                signalled: false,
            }),
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                let line = result_line(&p.id, Status::Error, Some(&format!("{e:#}")), None);
                self.emit(line, Status::Error, None);
            }
        }
    }

    fn spawn(&self, job: &Job, dir: &Path) -> anyhow::Result<Child> {
        make_dir(dir)?;
        searchable_by_sandbox_id(dir)?;
        let ws = match &job.workspace {
            Some(w) => {
                let c =
                    fs::canonicalize(w).with_context(|| format!("workspace {}", w.display()))?;
                if !c.is_dir() {
                    anyhow::bail!("workspace {}: not a directory", w.display());
                }
                c
            }
            None => {
                let ws = dir.join("ws");
                make_dir(&ws)?;
                write_files(&ws, &job.files)?;
                ws
            }
        };
        let stdin = match &job.stdin {
            Some(text) => {
                let p = dir.join("in");
                fs::write(&p, text).with_context(|| format!("write {}", p.display()))?;
                Stdio::from(File::open(&p)?)
            }
            None => Stdio::null(),
        };
        Command::new(&self.exe)
            .args(&self.globals)
            .arg("batch-job")
            .arg("--parent")
            .arg(std::process::id().to_string())
            .args(job.exec_args(&ws))
            .stdin(stdin)
            .stdout(File::create(dir.join("out"))?)
            .stderr(File::create(dir.join("err"))?)
            .spawn()
            .with_context(|| format!("start {}", self.exe.display()))
    }

    fn reap(&mut self) {
        let mut i = 0;
        while i < self.running.len() {
            match self.running[i].child.try_wait() {
                Ok(Some(status)) => {
                    let r = self.running.swap_remove(i);
                    self.finish(r, status);
                }
                Ok(None) => i += 1,
                Err(e) => {
                    // Not ours to wait for any more (cannot happen): count it, never spin on it.
                    let r = self.running.swap_remove(i);
                    let line = result_line(
                        &r.id,
                        Status::Error,
                        Some(&format!("wait for worker: {e}")),
                        None,
                    );
                    let _ = fs::remove_dir_all(&r.dir);
                    self.emit(line, Status::Error, None);
                }
            }
        }
    }

    fn finish(&mut self, r: Running, status: ExitStatus) {
        let out = fs::read(r.dir.join("out")).unwrap_or_default();
        let err = fs::read_to_string(r.dir.join("err")).unwrap_or_default();
        let error = self.relay(&r.id, &err);
        if let Err(e) = fs::remove_dir_all(&r.dir) {
            log::warn!("remove {}: {e}", r.dir.display());
        }
        let exited = status.to_string();
        let f = batch::worker_result(&r.id, &out, r.signalled, error, &exited);
        self.emit(f.line, f.status, f.wall_ms);
    }

    /// Shows the worker's warnings (each text once per batch) and debug records; returns its
    /// error, which belongs in the result line.
    fn relay(&mut self, id: &Value, log: &str) -> Option<String> {
        let read = batch::worker_log(log);
        for l in read.shown {
            match l {
                LogLine::Warning(msg) => {
                    if self.warned.insert(msg.clone()) {
                        self.bar.clear();
                        log::warn!("{msg}");
                    }
                }
                LogLine::Other(msg) => log::debug!("job {id}: {msg}"),
            }
        }
        read.error
    }

    fn emit(&mut self, line: String, s: Status, wall: Option<u64>) {
        self.tally.add(s, wall);
        if self.fatal.is_some() {
            return;
        }
        let written = writeln!(self.out, "{line}").and_then(|()| self.out.flush());
        if let Err(e) = written {
            self.fatal = Some(anyhow::Error::from(e).context("write a result line"));
            self.pass_on(Signal::SIGTERM);
        }
    }
}

/// The worker's side (`husk batch-job`), first of all: a Ctrl-C for the batch (a terminal sends it
/// to the worker too) must wait for the sandbox supervisor's signalfd, which forwards it and cleans
/// up; it must never kill the worker half-way through creating the container. The worker is ended
/// (SIGTERM, so that it cleans up) when the batch, `parent`, dies.
pub fn become_worker(parent: i32) -> anyhow::Result<()> {
    husk_runtime::process::block_signals()?;
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
    if nix::unistd::getppid().as_raw() != parent {
        anyhow::bail!("batch process {parent} is gone");
    }
    Ok(())
}

/// Removes the scratch trees of batches that were killed (SIGKILL: no chance to clean up; their
/// jobs were torn down by their workers). Named `batch-husk-<pid>-<hex>`: gone when no process
/// `<pid>` lives (a reused pid only delays the sweep).
fn sweep(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = batch::scratch_owner(&name) else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            log::debug!("remove the scratch tree of a killed batch: {name}");
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// Root's sandboxes run as an unprivileged host id (docs/sandbox.md), which must be able to reach
/// the fresh workspace under the scratch tree: search (not list) for others, as root only.
fn searchable_by_sandbox_id(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o711))
        .with_context(|| format!("open {} to the sandbox id", dir.display()))
}

/// The job's files in its fresh workspace (paths already checked: relative, no `..`).
fn write_files(ws: &Path, files: &[(PathBuf, String)]) -> anyhow::Result<()> {
    for (rel, content) in files {
        let path = ws.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("files: create {}", rel.display()))?;
        }
        fs::write(&path, content).with_context(|| format!("files: write {}", rel.display()))?;
    }
    Ok(())
}

/// The global flags a worker needs to see the same state root and cgroups as we would; its log in
/// JSON, so that we can tell its warnings from its errors.
fn global_args(g: &Global) -> Vec<String> {
    use clap::ValueEnum;
    let mut a = vec!["--log-format".to_string(), "json".to_string()];
    let mut flag = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            a.push(format!("--{name}"));
            a.push(v);
        }
    };
    let name = |v: Option<clap::builder::PossibleValue>| v.map(|v| v.get_name().to_string());
    flag(
        "root",
        g.root.as_ref().map(|r| r.to_string_lossy().into_owned()),
    );
    flag("rootless", name(g.rootless.to_possible_value()));
    flag(
        "cgroup-manager",
        name(g.cgroup_manager.and_then(|m| m.to_possible_value())),
    );
    flag("cgroup-layout", name(g.cgroup_layout.to_possible_value()));
    flag(
        "cache-dir",
        g.cache_dir
            .as_ref()
            .map(|r| r.to_string_lossy().into_owned()),
    );
    if g.systemd_cgroup {
        a.push("--systemd-cgroup".into());
    }
    if g.debug {
        a.push("--debug".into());
    }
    a
}
