//! The container child: everything between clone and execve, as a flat list of named steps.
//!
//! Runs in a fork-like copy of the parent (single-threaded, no CLONE_VM), so it reads the context the
//! parent built without any serialisation. Every error is sent to the parent over the sync channel
//! and the child `_exit`s; nothing here returns to the caller.
//!
//! Everything that can fail happens before [2] (see [`super::sync`] for the table): `create`
//! fails with the cause, as under runc; after `start` only startContainer hooks and execve run.

use super::finish::{self, Prepared};
use super::sync::{Channel, Msg};
use super::{hooks, InitContext, StartWait};
use crate::security;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{step}: {source}")]
    Sys {
        step: &'static str,
        source: nix::Error,
    },
    #[error("{step}: {source}")]
    Io {
        step: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Ns(#[from] crate::ns::NsError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroup::CgroupError),
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::RootfsError),
    #[error(transparent)]
    Hook(#[from] hooks::HookError),
    #[error(transparent)]
    Rlimit(#[from] security::rlimit::RlimitError),
    #[error(transparent)]
    Caps(#[from] security::caps::CapsError),
    #[error(transparent)]
    Identity(#[from] security::identity::IdentityError),
    #[error(transparent)]
    Seccomp(#[from] security::seccomp::SeccompError),
    #[error(transparent)]
    Security(#[from] security::SecurityError),
    #[error(transparent)]
    AppArmor(#[from] security::apparmor::AppArmorError),
    #[error(transparent)]
    Landlock(#[from] security::landlock::LandlockError),
    #[error("exec: {path:?}: stat {path}: {source}")]
    Stat {
        path: String,
        source: std::io::Error,
    },
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
    #[error("exec {path}: {source}")]
    Exec { path: String, source: nix::Error },
    #[error("sysctl {key}: {source}")]
    Sysctl { key: String, source: std::io::Error },
    #[error("sync with parent: unexpected message {0:?}")]
    Protocol(Option<Msg>),
    #[error("cwd {path}: {source}")]
    Cwd { path: PathBuf, source: nix::Error },
    #[error("create cwd {path}: {source}")]
    MakeCwd {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub(super) fn sys(step: &'static str) -> impl FnOnce(nix::Error) -> InitError {
    move |source| InitError::Sys { step, source }
}

/// Entry of the cloned init. Never returns.
pub fn main(ctx: &InitContext, chan: &Channel) -> ! {
    let Err(err) = run(ctx, chan);
    report_and_exit(chan, &err)
}

pub(super) fn report_and_exit(chan: &Channel, err: &dyn std::fmt::Display) -> ! {
    let msg = err.to_string();
    if chan.send(&Msg::Failed(msg.clone())).is_err() {
        // The parent is gone (create returned, start is not listening): stderr is all we have.
        eprintln!("husk: container init: {msg}");
    }
    crate::sys::exit_now(127)
}

fn run(ctx: &InitContext, chan: &Channel) -> Result<Infallible, InitError> {
    // Our parent is the husk that creates us (CLONE_PARENT); a supervised container keeps dying
    // with it after exec (finish::prepare re-arms the signal after the identity switch).
    let parent = ctx.die_with_parent.then(nix::unistd::getppid);
    // Die with husk until the last setup steps (see below).
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(sys("set pdeathsig"))?;
    // [1a] with a new user namespace nothing can be done before the parent has written its maps.
    if ctx.ns.new_userns() {
        match chan.recv().map_err(sys("sync [1a]"))? {
            Some(Msg::Mapped) => {}
            other => return Err(InitError::Protocol(other)),
        }
    }
    // [1a'] bind sources the parent opened for us.
    let sources = match ctx.fetch_bind_sources {
        true => super::sources::receive(ctx, chan).map_err(sys("sync [1a']"))?,
        false => Vec::new(),
    };
    let unshare = super::init_unshares(ctx);
    if !unshare.is_empty() {
        nix::sched::unshare(unshare).map_err(sys("unshare namespaces"))?;
    }
    let mut gate = CgroupGate {
        ctx,
        chan: Some(chan),
    };
    if !ctx.overlap_cgroup_setup {
        gate.pass()?;
    }
    enter(ctx)?;
    build_root(ctx, &mut gate, true, &sources)?;
    gate.pass()?;
    let exe = finish::find_executable(&ctx.process)?;
    finish::apply_apparmor(&ctx.process)?;
    // After the last mount (a Landlock-restricted process may not mount) and the AppArmor write to
    // /proc/self/attr; before [2], so the parent learns what was applied.
    if let Some(writable) = &ctx.landlock {
        let status = security::landlock::apply(writable)?;
        let json = serde_json::to_string(&status).unwrap_or_default();
        chan.send(&Msg::Landlock(json)).map_err(sys("sync [2]"))?;
    }
    // The container outlives `create`. A husk that dies from here on leaves an init whose [2]
    // fails with EPIPE, and it exits. (The identity switch would clear it too, but not for root.)
    if parent.is_none() {
        nix::sys::prctl::set_pdeathsig(None).map_err(sys("clear pdeathsig"))?;
    }
    // Before prepare: its seccomp filter may deny close_range (a profile that predates it).
    close_inherited(ctx, chan)?;
    let ready = finish::prepare(ctx, exe, parent)?;
    // [2] created: everything that can fail has been done.
    chan.send(&Msg::Created).map_err(sys("sync [2]"))?;
    wait_for_start(ctx, chan)?;
    start_container_hooks(ctx, &ready)?;
    Err(ready.exec(ctx, Some(chan)))
}

/// startContainer hooks run in the container after `start`, as the process user, under its
/// seccomp filter; one without an `env` of its own gets the process's (as under runc).
fn start_container_hooks(ctx: &InitContext, ready: &Prepared) -> Result<(), InitError> {
    if ctx.hooks_start_container.is_empty() {
        return Ok(());
    }
    let at = hooks::At {
        default_env: Some(&ready.env),
        ..hooks::At::default()
    };
    Ok(hooks::run(
        "startContainer",
        &ctx.hooks_start_container,
        &ctx.state_json,
        &at,
    )?)
}

/// The init is a fork of husk: it holds whatever husk was given (a caller's pipe, say) and the
/// console socket. While it waits for `start` it must hold nothing but its stdio, the preserved
/// fds and what it still needs: the sync channel, exec.fifo and the exec stub.
fn close_inherited(ctx: &InitContext, chan: &Channel) -> Result<(), InitError> {
    let mut keep = vec![chan.0.as_raw_fd()];
    keep.extend(ctx.exec_stub.as_ref().map(|s| s.as_raw_fd()));
    if let StartWait::Fifo { read, write } = &ctx.start {
        keep.extend([read.as_raw_fd(), write.as_raw_fd()]);
    }
    crate::sys::close_from_except(3 + ctx.preserve_fds, &keep).map_err(sys("close inherited fds"))
}

/// Sync point [1b]: the parent has made the container's cgroup and put us in it, or left that last
/// step to us (`join_cgroup`), and saved the state, run its hooks. Only then may the cgroup
/// namespace be made: its root is the cgroup we are in.
struct CgroupGate<'a> {
    ctx: &'a InitContext,
    /// None once passed, or with nothing to wait for (the in-place run).
    chan: Option<&'a Channel>,
}

impl CgroupGate<'_> {
    fn pass(&mut self) -> Result<(), InitError> {
        let Some(chan) = self.chan.take() else {
            return Ok(());
        };
        match chan.recv().map_err(sys("sync [1b]"))? {
            Some(Msg::Go) => {}
            other => return Err(InitError::Protocol(other)),
        }
        crate::cgroup::join_self(&self.ctx.join_cgroup)?;
        if self.ctx.reset_cpu_affinity {
            reset_cpu_affinity();
        }
        let cgroupns = nix::sched::CloneFlags::CLONE_NEWCGROUP;
        if self.ctx.ns.clone_flags.contains(cgroupns) {
            crate::rootfs::note_own_cgroup();
            nix::sched::unshare(cgroupns).map_err(sys("unshare cgroup namespace"))?;
        }
        Ok(())
    }
}

/// Every CPU, as runc does (tryResetCPUAffinity): the container must not inherit the affinity of
/// whoever ran husk (a shell pinned with taskset, a daemon's worker). The kernel clamps the mask
/// to the CPUs that exist and to the cgroup's cpuset. Best effort: a failure keeps the inherited
/// one.
pub(super) fn reset_cpu_affinity() {
    let mut all = nix::sched::CpuSet::new();
    for cpu in 0..nix::sched::CpuSet::count() {
        let _ = all.set(cpu);
    }
    if let Err(e) = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &all) {
        log::debug!("reset cpu affinity: {e}");
    }
}

/// After the id maps are written: joins, identity inside the user namespace, time namespace,
/// names, loopback, keyring, oom_score_adj.
fn enter(ctx: &InitContext) -> Result<(), InitError> {
    ctx.ns.join_all()?;
    become_userns_root(ctx)?;
    if ctx.ns.new_time {
        enter_new_time_ns(&ctx.time_offsets)?;
    }
    // Non-dumpable: other processes in the container cannot open /proc/<us>/exe (our host binary)
    // while we run (CVE-2019-5736 class). execve resets it for the container's own program. Only
    // after [1] and the time namespace: a non-dumpable process's /proc files belong to root, so an
    // unprivileged parent could no longer write its uid_map, nor we our timens_offsets.
    if ctx.protect_exe {
        nix::sys::prctl::set_dumpable(false).map_err(sys("set dumpable"))?;
    }
    set_names(ctx)?;
    if ctx
        .ns
        .clone_flags
        .contains(nix::sched::CloneFlags::CLONE_NEWNET)
    {
        loopback_up()?;
    }
    if !ctx.no_new_keyring {
        // Not fatal: some kernels/LSMs refuse new keyrings in a user namespace; runc ignores it too.
        if let Err(e) = crate::sys::join_session_keyring(c"_ses.husk") {
            log::debug!("join session keyring: {e}");
        }
    }
    if let Some(adj) = ctx.process_oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(|source| {
            InitError::Io {
                step: "write oom_score_adj",
                source,
            }
        })?;
    }
    Ok(())
}

/// The root filesystem: mounts, createContainer hooks, pivot_root, the console (with `session`),
/// sysctls, the cwd, masked and read-only paths (or a plain chroot without a mount namespace).
/// `gate` is passed before the first cgroup mount (and before any hook).
fn build_root(
    ctx: &InitContext,
    gate: &mut CgroupGate<'_>,
    session: bool,
    sources: &[Option<std::os::fd::OwnedFd>],
) -> Result<(), InitError> {
    let Some(plan) = &ctx.rootfs else {
        if session {
            setup_session(ctx, false)?;
        }
        return write_sysctls(ctx);
    };
    if !ctx.ns.has_mount_ns() {
        // No mount namespace: mounting would change the host's mount table, so the rootfs is only
        // entered with chroot (the parent warned that config mounts are not applied).
        join_cgroup_before_root_changes(ctx, gate)?;
        nix::unistd::chroot(&plan.rootfs).map_err(sys("chroot into rootfs"))?;
        nix::unistd::chdir("/").map_err(sys("chdir to /"))?;
        if session {
            setup_session(ctx, false)?;
        }
        return make_cwd(ctx);
    }
    plan.prepare_gated(&mut || gate.pass(), sources)?;
    join_cgroup_before_root_changes(ctx, gate)?;
    if !ctx.hooks_create_container.is_empty() {
        // In the rootfs, before pivot_root (runc: "the old root is still available").
        let rootfs = plan.rootfs_real.as_deref().unwrap_or(&plan.rootfs);
        let at = hooks::At {
            cwd: Some(rootfs),
            ..hooks::At::default()
        };
        hooks::run(
            "createContainer",
            &ctx.hooks_create_container,
            &ctx.state_json,
            &at,
        )?;
    }
    plan.pivot()?;
    if session {
        // After pivot_root (the pty comes from the container's /dev/ptmx), before finalize (a
        // read-only /dev or root would refuse /dev/console).
        setup_session(ctx, true)?;
    }
    // Before finalize: readonlyPaths usually has /proc/sys (Docker, podman), sysctls come first.
    write_sysctls(ctx)?;
    make_cwd(ctx)?;
    plan.finalize()?;
    Ok(())
}

/// A process.cwd missing from the image is made (0755, by the container's root, as runc does:
/// Kubernetes workingDir, `nerdctl run -w`). Inside the new root, so nothing outside is reached.
fn make_cwd(ctx: &InitContext) -> Result<(), InitError> {
    use std::os::unix::fs::DirBuilderExt;
    let cwd = ctx.process.cwd();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(cwd)
        .map_err(|source| InitError::MakeCwd {
            path: cwd.clone(),
            source,
        })
}

/// A self-joining init ([`InitContext::join_cgroup`]) reaches the host's cgroupfs only until its
/// root changes: without a cgroup mount in the config (whose gate comes first), [1b] is passed
/// here, before pivot_root or chroot, instead of after the root is built.
fn join_cgroup_before_root_changes(
    ctx: &InitContext,
    gate: &mut CgroupGate<'_>,
) -> Result<(), InitError> {
    if ctx.join_cgroup.is_empty() {
        return Ok(());
    }
    gate.pass()
}

/// The init's steps run by the calling process itself, with no parent to report to (the launcher's
/// fast path): the caller has already unshared the namespaces of `ctx.ns.clone_flags` and written
/// its own id maps. No session of its own (the program stays in the caller's process group and
/// terminal), no hooks (the caller checked there are none), no sync points. Returns only on error.
pub fn in_place(ctx: &InitContext) -> Result<Infallible, InitError> {
    enter(ctx)?;
    // The caller unshared every namespace itself; there is no parent to wait for.
    let mut gate = CgroupGate { ctx, chan: None };
    build_root(ctx, &mut gate, false, &[])?;
    let exe = finish::find_executable(&ctx.process)?;
    finish::apply_apparmor(&ctx.process)?;
    if let Some(writable) = &ctx.landlock {
        let status = security::landlock::apply(writable)?;
        if !status.enforced {
            log::warn!(
                "landlock not enforced ({}): writes are limited by the mounts only",
                status.reason.as_deref().unwrap_or("unknown reason")
            );
        }
    }
    finish::prepare_and_exec(ctx, exe, None, None)
}

/// In a user namespace, become its root: our host ids may be unmapped there (root creating a
/// container mapped to 100000+), and files made with an unmapped fsuid fail with EOVERFLOW.
fn become_userns_root(ctx: &InitContext) -> Result<(), InitError> {
    let in_userns = ctx.ns.new_userns()
        || ctx
            .ns
            .joins
            .iter()
            .any(|(t, _, _)| *t == oci_spec::runtime::LinuxNamespaceType::User);
    if !in_userns {
        return Ok(());
    }
    // EINVAL: 0 is not mapped in this namespace (a map of only the process's own ids, as root's
    // sandbox with `--user` makes): become the process's user instead, whose ids are; else stay as
    // we are (the identity switch decides later).
    let user = ctx.process.user();
    for gid in [0, user.gid()] {
        match nix::unistd::setresgid(gid.into(), gid.into(), gid.into()) {
            Ok(()) => break,
            Err(nix::errno::Errno::EINVAL) => {}
            Err(e) => return Err(sys("setresgid to userns root")(e)),
        }
    }
    for uid in [0, user.uid()] {
        match nix::unistd::setresuid(uid.into(), uid.into(), uid.into()) {
            Ok(()) => break,
            Err(nix::errno::Errno::EINVAL) => {}
            Err(e) => return Err(sys("setresuid to userns root")(e)),
        }
    }
    Ok(())
}

/// A new network namespace has only `lo`, and it is down: bring it up, as runc (a "loopback"
/// network for every private network namespace) and crun do, so 127.0.0.1 works inside.
fn loopback_up() -> Result<(), InitError> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(sys("socket for loopback"))?;
    crate::sys::loopback_up(sock.as_fd()).map_err(sys("bring loopback up"))
}

/// clone(2) cannot make a time namespace: unshare one (it becomes our time_for_children), set its
/// clock offsets while no process is in it yet, then move ourselves in with setns.
fn enter_new_time_ns(offsets: &str) -> Result<(), InitError> {
    let flag = nix::sched::CloneFlags::from_bits_retain(crate::sys::CLONE_NEWTIME);
    nix::sched::unshare(flag).map_err(sys("unshare time namespace"))?;
    if !offsets.is_empty() {
        std::fs::write("/proc/self/timens_offsets", offsets).map_err(|source| InitError::Io {
            step: "write timens_offsets",
            source,
        })?;
    }
    let ns =
        std::fs::File::open("/proc/self/ns/time_for_children").map_err(|source| InitError::Io {
            step: "open time_for_children",
            source,
        })?;
    nix::sched::setns(ns, flag).map_err(sys("enter time namespace"))
}

fn set_names(ctx: &InitContext) -> Result<(), InitError> {
    if let Some(h) = &ctx.hostname {
        nix::unistd::sethostname(h).map_err(sys("sethostname"))?;
    }
    if let Some(d) = &ctx.domainname {
        crate::sys::set_domainname(d).map_err(sys("setdomainname"))?;
    }
    Ok(())
}

fn write_sysctls(ctx: &InitContext) -> Result<(), InitError> {
    for (key, value) in &ctx.sysctl {
        let path = format!("/proc/sys/{}", crate::spec::sysctl::path(key));
        std::fs::write(&path, value).map_err(|source| InitError::Sysctl {
            key: key.clone(),
            source,
        })?;
    }
    Ok(())
}

/// A new session; with a console, the pty becomes its controlling terminal and our stdio, and
/// with `bind_console` (an init with a mount namespace) also the container's /dev/console.
pub(super) fn setup_session(ctx: &InitContext, bind_console: bool) -> Result<(), InitError> {
    if !setup_console(ctx, bind_console)? {
        nix::unistd::setsid().map_err(sys("setsid"))?;
    }
    Ok(())
}

/// With `process.terminal`: a pty made inside the container, its master sent over the console
/// socket, its slave our controlling terminal and stdio. Returns whether a terminal was set up.
fn setup_console(ctx: &InitContext, bind_console: bool) -> Result<bool, InitError> {
    let Some(sock) = &ctx.console else {
        return Ok(false);
    };
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(sys("open /dev/ptmx"))?;
    grantpt(&master).map_err(sys("grantpt"))?;
    unlockpt(&master).map_err(sys("unlockpt"))?;
    let slave_path = ptsname_r(&master).map_err(sys("ptsname"))?;
    if let Some((rows, cols)) = ctx.console_size {
        crate::sys::set_winsize(master.as_raw_fd(), rows, cols).map_err(sys("set console size"))?;
    }
    if bind_console {
        crate::rootfs::bind_console(std::path::Path::new(&slave_path))?;
    }
    send_fd(sock.as_fd(), master.as_raw_fd(), &slave_path)?;
    drop(master);
    nix::unistd::setsid().map_err(sys("setsid"))?;
    let slave = nix::fcntl::open(
        slave_path.as_str(),
        OFlag::O_RDWR,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys("open console slave"))?;
    crate::sys::set_controlling_tty(slave).map_err(sys("set controlling tty"))?;
    for fd in 0..3 {
        nix::unistd::dup2(slave, fd).map_err(sys("dup console onto stdio"))?;
    }
    if slave > 2 {
        let _ = nix::unistd::close(slave);
    }
    Ok(true)
}

/// Sends `fd` with SCM_RIGHTS, the pty's path as payload (as runc does).
pub(super) fn send_fd(
    sock: std::os::fd::BorrowedFd<'_>,
    fd: std::os::fd::RawFd,
    name: &str,
) -> Result<(), InitError> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let fds = [fd];
    let iov = [std::io::IoSlice::new(name.as_bytes())];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .map(drop)
        .map_err(sys("send console master to --console-socket"))
}

fn wait_for_start(ctx: &InitContext, chan: &Channel) -> Result<(), InitError> {
    match &ctx.start {
        StartWait::Channel => match chan.recv().map_err(sys("sync [3]"))? {
            Some(Msg::Start) => Ok(()),
            other => Err(InitError::Protocol(other)),
        },
        StartWait::Fifo { read, .. } => {
            // Our own write end keeps read() from seeing EOF: it blocks until `start` writes a byte.
            let flags = fcntl(read.as_raw_fd(), FcntlArg::F_GETFL).map_err(sys("fifo flags"))?;
            let flags = OFlag::from_bits_retain(flags) & !OFlag::O_NONBLOCK;
            fcntl(read.as_raw_fd(), FcntlArg::F_SETFL(flags)).map_err(sys("fifo flags"))?;
            let mut b = [0u8; 1];
            loop {
                match nix::unistd::read(read.as_raw_fd(), &mut b) {
                    Ok(_) => break,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(sys("wait for start on exec.fifo")(e)),
                }
            }
            Ok(())
        }
    }
}

pub(super) fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}
