//! The container child: everything between clone and execve, as a flat list of named steps.
//!
//! Runs in a fork-like copy of the parent (single-threaded, no CLONE_VM), so it reads the context the
//! parent built without any serialisation. Every error is sent to the parent over the sync channel
//! and the child `_exit`s; nothing here returns to the caller.

use super::sync::{Channel, Msg};
use super::{hooks, InitContext, StartWait};
use crate::security;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::unistd::AccessFlags;
use oci_spec::runtime::Process;
use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

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
}

fn sys(step: &'static str) -> impl FnOnce(nix::Error) -> InitError {
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
    // Die with husk until the container is created; cleared at [2].
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(sys("set pdeathsig"))?;
    // [1a] with a new user namespace nothing can be done before the parent has written its maps.
    if ctx.ns.new_userns() {
        match chan.recv().map_err(sys("sync [1a]"))? {
            Some(Msg::Mapped) => {}
            other => return Err(InitError::Protocol(other)),
        }
    }
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
    build_root(ctx, &mut gate)?;
    gate.pass()?;
    setup_session(ctx)?;
    let exe = find_executable(&ctx.process)?;
    apply_apparmor(&ctx.process)?;
    // After the last mount (a Landlock-restricted process may not mount) and the AppArmor write to
    // /proc/self/attr; before [2], so the parent learns what was applied.
    if let Some(writable) = &ctx.landlock {
        let status = security::landlock::apply(writable)?;
        let json = serde_json::to_string(&status).unwrap_or_default();
        chan.send(&Msg::Landlock(json)).map_err(sys("sync [2]"))?;
    }
    nix::sys::prctl::set_pdeathsig(None).map_err(sys("clear pdeathsig"))?;
    // [2] created.
    chan.send(&Msg::Created).map_err(sys("sync [2]"))?;
    wait_for_start(ctx, chan)?;
    hooks::run(
        "startContainer",
        &ctx.hooks_start_container,
        &ctx.state_json,
    )?;
    finish_and_exec(ctx, &exe, Some(chan))
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
        let cgroupns = nix::sched::CloneFlags::CLONE_NEWCGROUP;
        if self.ctx.ns.clone_flags.contains(cgroupns) {
            nix::sched::unshare(cgroupns).map_err(sys("unshare cgroup namespace"))?;
        }
        Ok(())
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

/// The root filesystem: mounts, createContainer hooks, pivot_root, sysctls, masked and read-only
/// paths (or a plain chroot without a mount namespace).
/// `gate` is passed before the first cgroup mount (and before any hook).
fn build_root(ctx: &InitContext, gate: &mut CgroupGate<'_>) -> Result<(), InitError> {
    if let Some(plan) = ctx.rootfs.as_ref().filter(|_| !ctx.ns.has_mount_ns()) {
        // No mount namespace: mounting would change the host's mount table, so the rootfs is only
        // entered with chroot (the parent warned that config mounts are not applied).
        join_cgroup_before_root_changes(ctx, gate)?;
        nix::unistd::chroot(&plan.rootfs).map_err(sys("chroot into rootfs"))?;
        nix::unistd::chdir("/").map_err(sys("chdir to /"))?;
    } else if let Some(plan) = &ctx.rootfs {
        plan.prepare_gated(&mut || gate.pass())?;
        join_cgroup_before_root_changes(ctx, gate)?;
        hooks::run(
            "createContainer",
            &ctx.hooks_create_container,
            &ctx.state_json,
        )?;
        plan.pivot()?;
        // Before finalize: readonlyPaths usually has /proc/sys (Docker, podman), sysctls come first.
        write_sysctls(ctx)?;
        plan.finalize()?;
    } else {
        write_sysctls(ctx)?;
    }
    Ok(())
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
    build_root(ctx, &mut gate)?;
    let exe = find_executable(&ctx.process)?;
    apply_apparmor(&ctx.process)?;
    if let Some(writable) = &ctx.landlock {
        let status = security::landlock::apply(writable)?;
        if !status.enforced {
            log::warn!(
                "landlock not enforced ({}): writes are limited by the mounts only",
                status.reason.as_deref().unwrap_or("unknown reason")
            );
        }
    }
    finish_and_exec(ctx, &exe, None)
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
    let root_g = nix::unistd::Gid::from_raw(0);
    let root_u = nix::unistd::Uid::from_raw(0);
    // EINVAL: 0 is not mapped in this namespace; stay as we are (the identity switch decides later).
    match nix::unistd::setresgid(root_g, root_g, root_g) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) => {}
        Err(e) => return Err(sys("setresgid to userns root")(e)),
    }
    match nix::unistd::setresuid(root_u, root_u, root_u) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) => Ok(()),
        Err(e) => Err(sys("setresuid to userns root")(e)),
    }
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

/// A new session; with a console, the pty becomes its controlling terminal and our stdio.
pub(super) fn setup_session(ctx: &InitContext) -> Result<(), InitError> {
    if !setup_console(ctx)? {
        nix::unistd::setsid().map_err(sys("setsid"))?;
    }
    Ok(())
}

/// With `process.terminal`: a pty made inside the container, its master sent over the console
/// socket, its slave our controlling terminal and stdio. Returns whether a terminal was set up.
fn setup_console(ctx: &InitContext) -> Result<bool, InitError> {
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

/// The last steps, shared with exec: limits, identity, capabilities, no_new_privs, seccomp, execve.
/// `report`: the sync channel an exec stub answers a failed execve on.
pub(super) fn finish_and_exec(
    ctx: &InitContext,
    exe: &CString,
    report: Option<&Channel>,
) -> Result<Infallible, InitError> {
    let p = &ctx.process;
    let nnp = p.no_new_privileges().unwrap_or(false);
    let argv: Vec<CString> = p
        .args()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|a| cstring(a))
        .collect();
    let mut envp: Vec<CString> = ctx.env.iter().map(|a| cstring(a)).collect();
    if !ctx.env.iter().any(|kv| kv.starts_with("HOME=")) {
        envp.push(cstring(&format!("HOME={}", home_of(p.user().uid()))));
    }
    // A foreground husk blocks the signals it forwards, and Rust ignores SIGPIPE: the program must
    // start with an empty mask and default dispositions, as under runc.
    nix::sys::signal::SigSet::all()
        .thread_unblock()
        .map_err(sys("unblock signals"))?;
    crate::sys::default_sigpipe().map_err(sys("reset SIGPIPE"))?;
    security::rlimit::apply(p.rlimits().as_deref().unwrap_or_default())?;
    crate::sys::cloexec_from(3 + ctx.preserve_fds).map_err(sys("close inherited fds"))?;
    if let Some(c) = p.capabilities() {
        security::caps::drop_bounding(c)?;
    }
    // Without no_new_privs the kernel loads a filter only for a holder of CAP_SYS_ADMIN: load it
    // now, before the identity switch drops it (as runc does); the filter must allow what follows.
    if !nnp {
        if let Some(prog) = &ctx.seccomp {
            prog.load()?;
        }
    }
    security::identity::switch(p.user(), ctx.setgroups_allowed)?;
    let cwd = p.cwd();
    nix::unistd::chdir(cwd).map_err(|source| InitError::Cwd {
        path: cwd.clone(),
        source,
    })?;
    // CVE-2024-21626: a cwd reached through an inherited fd (e.g. /proc/self/fd/N of a host
    // directory) lies outside our root, and getcwd then fails with ENOENT ("(unreachable)").
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => {}
        Ok(_) => {
            return Err(InitError::Cwd {
                path: cwd.clone(),
                source: nix::errno::Errno::ENOENT,
            })
        }
        Err(source) => {
            return Err(InitError::Cwd {
                path: cwd.clone(),
                source,
            })
        }
    }
    if let Some(c) = p.capabilities() {
        security::caps::apply_sets(c)?;
    }
    if nnp {
        security::set_no_new_privs()?;
        // As late as possible: only execve follows.
        if let Some(prog) = &ctx.seccomp {
            prog.load()?;
        }
    }
    let source = match &ctx.exec_stub {
        Some(stub) => {
            let report = report.map_or(-1, |c| c.0.as_raw_fd());
            let min_fd = 3 + ctx.preserve_fds as i32;
            stub.exec(report, min_fd, exe, &argv, &envp)
        }
        None => {
            let Err(e) = nix::unistd::execve(exe, &argv, &envp);
            e
        }
    };
    Err(InitError::Exec {
        path: exe.to_string_lossy().into_owned(),
        source,
    })
}

/// The home directory of `uid` in the container's /etc/passwd, "/" when unknown (as runc sets HOME).
fn home_of(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
            })
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".to_string())
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

/// Before [2], so a profile that cannot be applied fails `create` (it takes effect at execve).
pub(super) fn apply_apparmor(p: &Process) -> Result<(), InitError> {
    if let Some(profile) = p.apparmor_profile().as_deref().filter(|s| !s.is_empty()) {
        security::apparmor::apply(profile)?;
    }
    Ok(())
}

/// Resolves argv[0] against the container's PATH, as the shell would.
pub(super) fn find_executable(p: &Process) -> Result<CString, InitError> {
    let argv0 = p
        .args()
        .as_ref()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or_default();
    if argv0.contains('/') {
        // Checked here, at create, so a missing program fails `create` (containerd shows it as
        // "OCI runtime create failed"), not the container after `start`.
        return match std::fs::metadata(&argv0) {
            Ok(_) => Ok(cstring(&argv0)),
            Err(e) => Err(InitError::Stat {
                path: argv0,
                source: e,
            }),
        };
    }
    let path = p
        .env()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .to_string();
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let cand = Path::new(dir).join(&argv0);
        if cand.is_file() && nix::unistd::access(&cand, AccessFlags::X_OK).is_ok() {
            return Ok(cstring(&cand.to_string_lossy()));
        }
    }
    Err(InitError::NotFound(argv0))
}
