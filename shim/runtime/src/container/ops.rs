//! start, kill, delete, pause, resume, update.

use super::create::{poststart, state_json};
use super::{Container, ContainerError};
use crate::process::hooks;
use crate::state::{Phase, Status};
use nix::errno::Errno;
use nix::sys::signal::{kill as send, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

impl Container {
    /// Lets a created container's init exec (writes one byte into exec.fifo). Returns poststart hook
    /// warnings.
    pub fn start(&mut self) -> Result<Vec<String>, ContainerError> {
        let _lock = self.dir.lock()?;
        self.require("start", &[Status::Created])?;
        let fifo = self.dir.fifo();
        let io = |op: &'static str| {
            let path = fifo.clone();
            move |source| ContainerError::Io { op, path, source }
        };
        // O_NONBLOCK: if the init is gone there is no reader and open fails with ENXIO at once.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .map_err(io("open exec fifo (is the container init still alive?)"))?;
        // Our own read end tells us when the init has exec'd: a fifo reports POLLHUP once no
        // writer is left, and the init's write end is close-on-exec.
        let watch = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .map_err(io("open exec fifo"))?;
        f.write_all(&[0]).map_err(io("write exec fifo"))?;
        drop(f);
        let _ = std::fs::remove_file(&fifo);
        wait_exec(&watch, Duration::from_secs(10))?;
        let rec = self
            .record
            .as_mut()
            .ok_or_else(|| ContainerError::Incomplete(self.dir.id.clone()))?;
        rec.phase = Phase::Started;
        self.dir.save(rec)?;
        let spec = crate::spec::load_file(&self.dir.saved_config())?.spec;
        Ok(poststart(&spec, rec))
    }
}

/// Waits until the fifo has no writer left (the init exec'd, or died). Until the init has read the
/// byte we wrote, POLLIN is reported at once; we never read it, we only wait for POLLHUP.
fn wait_exec(watch: &std::fs::File, timeout: Duration) -> Result<(), ContainerError> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(ContainerError::Sys {
                op: "wait for the container process to start",
                source: Errno::ETIMEDOUT,
            });
        }
        let mut fds = [PollFd::new(watch.as_fd(), PollFlags::POLLIN)];
        let ms =
            PollTimeout::try_from(left.as_millis().min(1000) as i32).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Ok(_) => {
                let ev = fds[0].revents().unwrap_or(PollFlags::empty());
                if ev.contains(PollFlags::POLLHUP) {
                    return Ok(());
                }
                if ev.contains(PollFlags::POLLIN) {
                    // The init is waking up to read it: give it the CPU.
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
            Err(Errno::EINTR) => continue,
            Err(source) => {
                return Err(ContainerError::Sys {
                    op: "wait for the container process to start",
                    source,
                })
            }
        }
    }
}

const LIVE: [Status; 4] = [
    Status::Created,
    Status::Running,
    Status::Paused,
    Status::Creating,
];

/// Sends `sig` (None: signal 0, only the checks) to the init, or with `all` to every process of
/// the container. As runc: `all` also works on a stopped container (its cgroup may still hold
/// processes of a shared or host pid namespace, which outlive the init); so does SIGKILL to a
/// container without a pid namespace of its own, which kills every process in its cgroup.
pub fn kill(
    c: &Container,
    sig: impl Into<Option<Signal>>,
    all: bool,
) -> Result<(), ContainerError> {
    let sig = sig.into();
    let rec = c.record()?;
    if all || (sig == Some(Signal::SIGKILL) && rec.cgroup.is_enabled() && !own_pidns(c)) {
        return kill_all(c, sig);
    }
    c.require("kill", &LIVE)?;
    send(Pid::from_raw(rec.pid), sig).map_err(|source| ContainerError::Sys {
        op: "signal container init",
        source,
    })
}

/// Every process of the container: from the cgroup whatever the init's state, else (no cgroup)
/// from the init's pid namespace while it lives.
fn kill_all(c: &Container, sig: Option<Signal>) -> Result<(), ContainerError> {
    let rec = c.record()?;
    let pids = if rec.cgroup.is_enabled() {
        // Gone (a systemd scope removed with its last process): nothing is left to signal.
        rec.cgroup.pids().unwrap_or_default()
    } else if LIVE.contains(&c.status()) {
        c.pids()?
    } else {
        Vec::new()
    };
    for pid in pids {
        let _ = send(Pid::from_raw(pid), sig);
    }
    // A frozen process only acts on SIGKILL once thawed.
    if sig == Some(Signal::SIGKILL) && rec.cgroup.is_frozen().unwrap_or(false) {
        rec.cgroup.thaw()?;
    }
    Ok(())
}

/// Whether the saved config gives the container a pid namespace of its own (a new one); unknown
/// counts as yes (the init's SIGKILL then ends it, and its pid namespace with it).
fn own_pidns(c: &Container) -> bool {
    crate::spec::load_file(&c.dir.saved_config()).map_or(true, |l| new_pidns(&l.spec))
}

/// A new pid namespace (not the host's, not one joined by path).
fn new_pidns(spec: &oci_spec::runtime::Spec) -> bool {
    matches!(
        crate::spec::namespace(spec, oci_spec::runtime::LinuxNamespaceType::Pid),
        Some(None)
    )
}

/// Removes a stopped container (with `force`, kills it first): processes, cgroup, state.
/// poststop hook failures are returned as warnings.
pub fn delete(c: &Container, force: bool) -> Result<Vec<String>, ContainerError> {
    delete_with(c, force, None)
}

/// [`delete`], with the container's spec at hand (`run` still holds it) instead of reading the
/// saved config back for the poststop hooks.
pub(super) fn delete_with(
    c: &Container,
    force: bool,
    spec: Option<&oci_spec::runtime::Spec>,
) -> Result<Vec<String>, ContainerError> {
    let _lock = c.dir.lock()?;
    let Some(rec) = &c.record else {
        // create died before writing state: nothing ran, only the directory is left.
        c.dir.remove()?;
        return Ok(Vec::new());
    };
    let status = rec.status(&c.dir);
    let loaded = match spec {
        Some(s) => Some(std::borrow::Cow::Borrowed(s)),
        None => crate::spec::load_file(&c.dir.saved_config())
            .ok()
            .map(|l| std::borrow::Cow::Owned(l.spec)),
    };
    match status {
        // Without a pid namespace of its own the init's end did not end the rest: containerd's
        // cleanup deletes, and expects nothing left running. (With one, the kernel ended them
        // with the init: no cgroup walk on every `run`.)
        Status::Stopped if !loaded.as_deref().is_some_and(new_pidns) => sweep_cgroup(rec),
        Status::Stopped => {}
        // runc deletes a created (never started) container without --force.
        Status::Created => kill_and_wait(c)?,
        _ if force => kill_and_wait(c)?,
        _ => {
            return Err(ContainerError::WrongState {
                id: c.dir.id.clone(),
                status,
                op: "delete without --force",
            })
        }
    }
    let mut warnings = Vec::new();
    if let Some(spec) = loaded {
        if let Some(h) = spec.hooks() {
            let json = state_json(rec, Status::Stopped);
            let at = hooks::At {
                cwd: Some(&rec.bundle),
                ..hooks::At::default()
            };
            warnings = hooks::run_all(
                "poststop",
                h.poststop().as_deref().unwrap_or_default(),
                &json,
                &at,
            );
        }
    }
    rec.cgroup.remove()?;
    c.dir.remove()?;
    Ok(warnings)
}

/// SIGKILL to every process, thaw if frozen, then wait (bounded) for the init to be gone.
fn kill_and_wait(c: &Container) -> Result<(), ContainerError> {
    let rec = c.record()?;
    if !rec.alive() {
        return Ok(());
    }
    let pidfd = crate::sys::pidfd_open(Pid::from_raw(rec.pid)).ok();
    for pid in c.pids().unwrap_or_default() {
        let _ = send(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = send(Pid::from_raw(rec.pid), Signal::SIGKILL);
    if rec.cgroup.is_frozen().unwrap_or(false) {
        rec.cgroup.thaw()?;
    }
    match pidfd {
        Some(fd) => wait_fd(&fd, Duration::from_secs(10)),
        None => Ok(()),
    }?;
    sweep_cgroup(rec);
    Ok(())
}

/// Processes outside a pid namespace do not die with the init: SIGKILL what the cgroup holds
/// until it is empty (bounded: a process stuck in the kernel must not hang delete).
fn sweep_cgroup(rec: &crate::state::Record) {
    if !rec.cgroup.is_enabled() {
        return;
    }
    for _ in 0..100 {
        let pids = rec.cgroup.pids().unwrap_or_default();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            let _ = send(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if rec.cgroup.is_frozen().unwrap_or(false) {
            let _ = rec.cgroup.thaw();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn wait_fd(fd: &std::os::fd::OwnedFd, timeout: Duration) -> Result<(), ContainerError> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    let ms = PollTimeout::try_from(timeout.as_millis() as i32).unwrap_or(PollTimeout::MAX);
    loop {
        match poll(&mut fds, ms) {
            Ok(0) => {
                return Err(ContainerError::Sys {
                    op: "wait for container to die after SIGKILL",
                    source: Errno::ETIMEDOUT,
                })
            }
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(source) => {
                return Err(ContainerError::Sys {
                    op: "wait for container to die",
                    source,
                })
            }
        }
    }
}

/// Waits until the container's init has exited (used by tests and `run --detach` callers).
pub fn wait_exit(c: &Container, timeout: Duration) -> Result<(), ContainerError> {
    let rec = c.record()?;
    match crate::sys::pidfd_open(Pid::from_raw(rec.pid)) {
        Ok(fd) => wait_fd(&fd, timeout),
        Err(_) => Ok(()),
    }
}

pub fn pause(c: &Container) -> Result<(), ContainerError> {
    let _lock = c.dir.lock()?;
    c.require("pause", &[Status::Running, Status::Created])?;
    let cg = enabled_cgroup(c, "pause")?;
    Ok(cg.freeze()?)
}

pub fn resume(c: &Container) -> Result<(), ContainerError> {
    let _lock = c.dir.lock()?;
    c.require("resume", &[Status::Paused])?;
    let cg = enabled_cgroup(c, "resume")?;
    Ok(cg.thaw()?)
}

pub fn update(c: &Container, resources: &LinuxResources) -> Result<(), ContainerError> {
    let _lock = c.dir.lock()?;
    c.require(
        "update",
        &[Status::Created, Status::Running, Status::Paused],
    )?;
    let cg = enabled_cgroup(c, "update")?;
    Ok(cg.apply(resources)?)
}

fn enabled_cgroup<'a>(
    c: &'a Container,
    op: &'static str,
) -> Result<&'a crate::cgroup::Cgroup, ContainerError> {
    let rec = c.record()?;
    if rec.cgroup.is_enabled() {
        Ok(&rec.cgroup)
    } else {
        Err(ContainerError::NoCgroup(c.dir.id.clone(), op))
    }
}
