//! Process lifecycle: clone the init straight into its namespaces, walk it through numbered sync
//! points ([`sync`]), exec into a running container, wait while forwarding signals.
//!
//! No re-exec of the husk binary: the child is a fork-like clone that already holds the parsed config,
//! the mount plan and the compiled seccomp program.

pub mod exec_stub;
mod finish;
pub mod hooks;
pub mod init;
pub mod sources;
pub mod sync;

use crate::ns::NsPlan;
use crate::security::seccomp::Program;
use crate::sys::{clone_fork, Forked};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::{Hook, Process};
use std::os::fd::OwnedFd;
use sync::{Channel, Msg};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("clone container process: {0}")]
    Clone(nix::Error),
    #[error("sync with container process: {0}")]
    Sync(nix::Error),
    #[error("container init: {0}")]
    Init(String),
    #[error("container process exited before it was set up ({0})")]
    Died(String),
    #[error("sync with container process: unexpected message {0:?}")]
    Protocol(Option<Msg>),
    #[error("wait for container process {pid}: {source}")]
    Wait { pid: i32, source: nix::Error },
}

/// How the created init learns it may exec.
#[derive(Debug)]
pub enum StartWait {
    /// `run`: a `Start` message on the sync channel.
    Channel,
    /// `create` + `start`: a byte written into exec.fifo (read and write ends opened by the parent).
    Fifo { read: OwnedFd, write: OwnedFd },
}

/// Everything the child needs, built by the parent before clone and read by the child in its copy.
#[derive(Debug)]
pub struct InitContext {
    pub process: Process,
    /// Final environment (process.env plus what husk adds, e.g. LISTEN_FDS).
    pub env: Vec<String>,
    pub ns: NsPlan,
    /// None for exec (the mount namespace is joined, not built).
    pub rootfs: Option<crate::rootfs::Plan>,
    pub seccomp: Option<Program>,
    /// Connected --console-socket when process.terminal is set.
    pub console: Option<OwnedFd>,
    pub console_size: Option<(u16, u16)>,
    pub start: StartWait,
    pub preserve_fds: u32,
    pub no_new_keyring: bool,
    pub setgroups_allowed: bool,
    /// Make the husk-image processes inside the container non-dumpable (CVE-2019-5736). Only when
    /// the caller is really root: then the host binary is root's and worth protecting, and root can
    /// still read a non-dumpable init's /proc files for `exec`. An unprivileged caller could not
    /// (EACCES on /proc/PID/ns/*), and its container root is the caller itself.
    pub protect_exe: bool,
    /// exec without --detach: the process gets SIGKILL when the husk that waits for it dies (even
    /// of SIGKILL, which it cannot forward), instead of running on unseen in the container.
    pub die_with_parent: bool,
    /// The program is exec'd through this stub ([`exec_stub`], CVE-2019-5736), when wanted.
    pub exec_stub: Option<exec_stub::ExecStub>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub sysctl: Vec<(String, String)>,
    pub process_oom_score_adj: Option<i32>,
    /// No prestart/createRuntime/createContainer hooks: the init sets up its mounts while the
    /// parent does the cgroup and state work, waiting for [1b] only where the cgroup matters.
    pub overlap_cgroup_setup: bool,
    /// v1 `tasks` files the init writes `0` to at [1b], moving itself into the container's cgroup
    /// ([`crate::cgroup::Cgroup::self_join_files`]); empty when the parent moves it in.
    pub join_cgroup: Vec<std::path::PathBuf>,
    /// Annotation run.husk.landlock.write: the only paths the container may write under.
    pub landlock: Option<Vec<std::path::PathBuf>>,
    /// `linux.timeOffsets` as /proc/PID/timens_offsets lines, for a new time namespace.
    pub time_offsets: String,
    /// The parent opens the bind sources for the init ([`sources`], sync point [1a']).
    pub fetch_bind_sources: bool,
    /// Give the process every CPU (the OCI verbs, as runc); the launcher keeps the caller's
    /// affinity (a Slurm task bound to its cores stays bound).
    pub reset_cpu_affinity: bool,
    pub hooks_create_container: Vec<Hook>,
    pub hooks_start_container: Vec<Hook>,
    /// OCI state JSON handed to container-side hooks.
    pub state_json: Vec<u8>,
}

/// A child that reached sync point [2] (init) or exec'd (exec).
#[derive(Debug)]
pub struct Spawned {
    pub pid: Pid,
    pub channel: Channel,
    /// What Landlock applied, when the config asked for it (init only).
    pub landlock: Option<crate::security::landlock::Status>,
}

/// The new namespaces made by clone(2) itself; the init unshares the others ([`init_unshares`]).
/// The cgroup namespace is always the init's to make, once it is in its cgroup. Without hooks the
/// parent has nothing to do in the container's namespaces before [1b], so only the pid and user
/// namespaces are cloned (the init must be born in them) and the init makes its mount, network,
/// UTS and IPC namespaces itself, while the parent does the cgroup and state work.
/// With [`InitContext::fetch_bind_sources`] the mount namespace is cloned too: the parent opens
/// the sources inside it at [1a'].
fn clone_flags(ctx: &InitContext) -> CloneFlags {
    let all = ctx.ns.clone_flags - CloneFlags::CLONE_NEWCGROUP;
    let mut born = CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUSER;
    if ctx.fetch_bind_sources {
        born |= CloneFlags::CLONE_NEWNS;
    }
    if ctx.overlap_cgroup_setup {
        all & born
    } else {
        all
    }
}

/// What the init unshares itself, before joining namespaces by path (see [`clone_flags`]).
pub(crate) fn init_unshares(ctx: &InitContext) -> CloneFlags {
    ctx.ns.clone_flags - CloneFlags::CLONE_NEWCGROUP - clone_flags(ctx)
}

/// Clones the init into its new namespaces ([`clone_flags`]; the init makes the rest). In the
/// parent, between clone and the sync points: `map` ([1a]: id maps) and then `after_map` ([1b]:
/// cgroup, state, prestart/createRuntime hooks). On any failure the child is killed and reaped
/// before the error returns, so nothing is left running.
pub fn spawn_init<E: From<ProcessError>>(
    ctx: &InitContext,
    map: impl FnOnce(Pid) -> Result<(), E>,
    after_map: impl FnOnce(Pid) -> Result<(), E>,
) -> Result<Spawned, E> {
    let (parent, child) = sync::pair().map_err(ProcessError::Sync)?;
    let via_userns = via_joined_userns(ctx);
    if !via_userns {
        ctx.ns
            .join_pid_for_children()
            .map_err(|e| ProcessError::Init(e.to_string()))?;
    }
    let first = match via_userns {
        true => CloneFlags::empty(),
        false => clone_flags(ctx),
    };
    match clone_fork(first).map_err(ProcessError::Clone)? {
        Forked::Child if via_userns => {
            drop(parent);
            init_in_joined_userns(ctx, &child)
        }
        Forked::Child => {
            drop(parent);
            init::main(ctx, &child)
        }
        Forked::Parent(first) => {
            drop(child);
            let pid = match via_userns {
                true => child_of_intermediate(first, &parent)?,
                false => first,
            };
            // The debug lines name runc's steps (nsexec, init(), the closing pipe): runc's users
            // and its integration suite look for those words in `--debug` output.
            log::debug!("nsexec container setup: init {pid} cloned into its namespaces");
            let res = map(pid).and_then(|()| {
                if ctx.ns.new_userns() {
                    // [1a] mapped.
                    parent.send(&Msg::Mapped).map_err(ProcessError::Sync)?;
                }
                if ctx.fetch_bind_sources {
                    // [1a'] bind sources.
                    sources::send(pid, ctx, &parent)?;
                }
                after_map(pid)?;
                // [1b] go.
                parent.send(&Msg::Go).map_err(ProcessError::Sync)?;
                // [2] created (after Landlock's status, when asked for).
                let mut landlock = None;
                loop {
                    match parent.recv().map_err(ProcessError::Sync)? {
                        Some(Msg::Landlock(s)) => {
                            landlock = Some(serde_json::from_str(&s).map_err(|_| {
                                ProcessError::Protocol(Some(Msg::Landlock(s.clone())))
                            })?)
                        }
                        Some(Msg::Created) => {
                            log::debug!("child process in init(): init {pid} is set up");
                            log::debug!("init: closing the pipe to signal completion");
                            return Ok(landlock);
                        }
                        other => return Err(child_failure(pid, other).into()),
                    }
                }
            });
            let res = res.map_err(|e| own_error(&parent).map_or(e, E::from));
            settle(pid, parent, res)
        }
    }
}

/// A user namespace given by path, and namespaces to make: they must be made *inside* it (owned
/// by it), or the container's root holds no capability over them (mount, proc: EPERM; Kubernetes
/// `hostUsers: false` pods join the sandbox's). clone(2) makes them in the caller's, so an
/// intermediate child joins the user namespace first and clones the init from there.
fn via_joined_userns(ctx: &InitContext) -> bool {
    ctx.ns.joins_userns() && !ctx.ns.clone_flags.is_empty()
}

/// The intermediate of [`via_joined_userns`]: joins a pid namespace given by path (for its
/// children: it stays in ours, so the pid it reports is ours too; and first, while it holds our
/// capabilities), then the user namespace, clones the init (our child, with CLONE_PARENT) into
/// the new namespaces, reports its pid and exits.
fn init_in_joined_userns(ctx: &InitContext, chan: &Channel) -> ! {
    let run = || -> Result<Pid, init::InitError> {
        ctx.ns.join_pid_for_children()?;
        ctx.ns.join_userns()?;
        match clone_fork(clone_flags(ctx) | CloneFlags::CLONE_PARENT) {
            Ok(Forked::Parent(p)) => Ok(p),
            Ok(Forked::Child) => init::main(ctx, chan),
            Err(source) => Err(init::InitError::Sys {
                step: "clone container init in the joined user namespace",
                source,
            }),
        }
    };
    match run() {
        Ok(pid) => {
            let _ = chan.send(&Msg::Pid(pid.as_raw()));
            crate::sys::exit_now(0)
        }
        Err(e) => init::report_and_exit(chan, &e),
    }
}

/// The init's pid from the intermediate (which is reaped), or its error.
fn child_of_intermediate(mid: Pid, chan: &Channel) -> Result<Pid, ProcessError> {
    let got = chan.recv().map_err(ProcessError::Sync);
    let _ = waitpid(mid, None);
    match got? {
        Some(Msg::Pid(p)) => Ok(Pid::from_raw(p)),
        Some(Msg::Failed(m)) => Err(ProcessError::Init(m)),
        other => Err(ProcessError::Protocol(other)),
    }
}

/// The spawned process, or (on error) nothing left running: it is killed and reaped.
fn settle<E>(
    pid: Pid,
    channel: Channel,
    res: Result<Option<crate::security::landlock::Status>, E>,
) -> Result<Spawned, E> {
    match res {
        Ok(landlock) => Ok(Spawned {
            pid,
            channel,
            landlock,
        }),
        Err(e) => {
            reap_killed(pid);
            Err(e)
        }
    }
}

/// After a failure on our side of the sync (EPIPE, a map write refused because the child is
/// gone): the error the child sent before it exited, which is the real cause. Never blocks.
fn own_error(chan: &Channel) -> Option<ProcessError> {
    match chan.try_recv() {
        Ok(Some(Msg::Failed(m))) => Some(ProcessError::Init(m)),
        _ => None,
    }
}

/// Turns an unexpected sync result into the child's own error, or its exit status.
fn child_failure(pid: Pid, got: Option<Msg>) -> ProcessError {
    match got {
        Some(Msg::Failed(m)) => ProcessError::Init(m),
        Some(Msg::ExecFailed(errno, path)) => ProcessError::Init(format!(
            "exec {path}: {}",
            nix::errno::Errno::from_raw(errno)
        )),
        None => match waitpid(pid, None) {
            Ok(st) => ProcessError::Died(describe(st)),
            Err(e) => ProcessError::Died(e.to_string()),
        },
        other => ProcessError::Protocol(other),
    }
}

fn describe(st: WaitStatus) -> String {
    match st {
        WaitStatus::Exited(_, c) => format!("exit status {c}"),
        WaitStatus::Signaled(_, s, _) => format!("killed by {s}"),
        other => format!("{other:?}"),
    }
}

/// SIGKILL and reap; used only on failure paths.
pub fn reap_killed(pid: Pid) {
    let _ = kill(pid, Signal::SIGKILL);
    let _ = waitpid(pid, None);
}

/// `run` after create: lets the init exec ([3]) and reports whether execve failed.
pub fn release(spawned: &Spawned) -> Result<(), ProcessError> {
    spawned
        .channel
        .send(&Msg::Start)
        .map_err(ProcessError::Sync)?;
    expect_exec(spawned.pid, &spawned.channel)
}

/// After the last sync the child's end closes at execve (CLOEXEC): EOF means the exec happened.
fn expect_exec(pid: Pid, chan: &Channel) -> Result<(), ProcessError> {
    match chan.recv().map_err(ProcessError::Sync)? {
        None => Ok(()),
        other => Err(child_failure(pid, other)),
    }
}

/// Starts a process inside a running container: an intermediate child joins the container's
/// namespaces (user first, so it holds the capabilities for the others) and clones the final process
/// with CLONE_PARENT, so it is *our* child, already in the container's pid namespace.
/// `before_exec` runs in the parent with the final pid (cgroup join) before the process may exec.
pub fn spawn_exec<E: From<ProcessError>>(
    ctx: &InitContext,
    before_exec: impl FnOnce(Pid) -> Result<(), E>,
) -> Result<Spawned, E> {
    let (parent, child) = sync::pair().map_err(ProcessError::Sync)?;
    match clone_fork(CloneFlags::empty()).map_err(ProcessError::Clone)? {
        Forked::Child => {
            drop(parent);
            exec_intermediate(ctx, &child)
        }
        Forked::Parent(mid) => {
            drop(child);
            let got = parent.recv().map_err(ProcessError::Sync);
            let _ = waitpid(mid, None);
            let pid = match got? {
                Some(Msg::Pid(p)) => Pid::from_raw(p),
                Some(Msg::Failed(m)) => return Err(ProcessError::Init(m).into()),
                other => return Err(ProcessError::Protocol(other).into()),
            };
            log::debug!("nsexec container setup: exec process {pid} joined the namespaces");
            log::debug!("child process in init(): {pid} waits to join the cgroup and exec");
            let res = before_exec(pid).and_then(|()| {
                log::debug!("setns_init: about to exec ({pid})");
                parent.send(&Msg::Go).map_err(ProcessError::Sync)?;
                expect_exec(pid, &parent).map_err(E::from)
            });
            let res = res.map(|()| None);
            settle(pid, parent, res)
        }
    }
}

fn exec_intermediate(ctx: &InitContext, chan: &Channel) -> ! {
    let run = || -> Result<Pid, init::InitError> {
        if ctx.protect_exe {
            nix::sys::prctl::set_dumpable(false).map_err(|source| init::InitError::Sys {
                step: "set dumpable",
                source,
            })?;
        }
        // Opened here, in husk's own namespaces: the final process, in the container's mount
        // namespace, moves itself into the container's cgroup through them.
        let join = crate::cgroup::open_for_join(&ctx.join_cgroup)?;
        ctx.ns.join_all()?;
        match clone_fork(CloneFlags::CLONE_PARENT) {
            Ok(Forked::Parent(p)) => Ok(p),
            Ok(Forked::Child) => exec_final(ctx, chan, join),
            Err(source) => Err(init::InitError::Sys {
                step: "clone exec process",
                source,
            }),
        }
    };
    match run() {
        Ok(pid) => {
            let _ = chan.send(&Msg::Pid(pid.as_raw()));
            crate::sys::exit_now(0)
        }
        Err(e) => init::report_and_exit(chan, &e),
    }
}

fn exec_final(ctx: &InitContext, chan: &Channel, join: Vec<OwnedFd>) -> ! {
    // Our parent (CLONE_PARENT: the husk that runs exec) is alive until it has sent Go.
    let parent = ctx.die_with_parent.then(nix::unistd::getppid);
    let run = || -> Result<std::convert::Infallible, init::InitError> {
        match chan.recv().map_err(|source| init::InitError::Sys {
            step: "sync exec",
            source,
        })? {
            Some(Msg::Go) => {}
            other => return Err(init::InitError::Protocol(other)),
        }
        // Closed right after: nothing of the host's cgroupfs reaches the exec'd program.
        crate::cgroup::join_self_by_fd(join, &ctx.join_cgroup)?;
        if ctx.reset_cpu_affinity {
            init::reset_cpu_affinity();
        }
        init::setup_session(ctx, false)?;
        let exe = finish::find_executable(&ctx.process)?;
        finish::apply_apparmor(&ctx.process)?;
        // The same domain as the init's (the status is the init's to report).
        if let Some(writable) = &ctx.landlock {
            crate::security::landlock::apply(writable)?;
        }
        finish::prepare_and_exec(ctx, exe, parent, Some(chan))
    };
    let Err(e) = run();
    init::report_and_exit(chan, &e)
}

/// Signals a foreground husk passes on to the container.
const FORWARDED: [Signal; 10] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
    Signal::SIGTSTP,
    Signal::SIGPIPE,
];

/// Blocks the forwarded signals and SIGCHLD; call before spawning so none is lost.
pub fn block_signals() -> Result<SigSet, ProcessError> {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    set.thread_block().map_err(ProcessError::Sync)?;
    Ok(set)
}

/// Waits for `pid`, forwarding signals to it, reaping any other children. Returns the shell-style
/// status: the exit code, or 128+N when killed by signal N.
pub fn wait_forwarding(pid: Pid, set: &SigSet) -> Result<i32, ProcessError> {
    loop {
        if let Some(code) = reap(pid)? {
            return Ok(code);
        }
        let sig = set.wait().map_err(|source| ProcessError::Wait {
            pid: pid.as_raw(),
            source,
        })?;
        if sig != Signal::SIGCHLD {
            let _ = kill(pid, sig);
        }
    }
}

/// Reaps every exited child; returns `pid`'s status once it has exited.
fn reap(pid: Pid) -> Result<Option<i32>, ProcessError> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, c)) if p == pid => return Ok(Some(c)),
            Ok(WaitStatus::Signaled(p, s, _)) if p == pid => return Ok(Some(128 + s as i32)),
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(_) => continue,
            Err(nix::errno::Errno::ECHILD) => {
                return Err(ProcessError::Wait {
                    pid: pid.as_raw(),
                    source: nix::errno::Errno::ECHILD,
                })
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(source) => {
                return Err(ProcessError::Wait {
                    pid: pid.as_raw(),
                    source,
                })
            }
        }
    }
}
