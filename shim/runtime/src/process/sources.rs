//! Bind sources for an init in a user namespace, opened by its privileged parent.
//!
//! Root mapped to an unprivileged range in a new user namespace is nobody to the host's files: a
//! bind source under a 0700 directory fails with EACCES in the init. As runc does, the parent
//! (host root) opens every bind source with O_PATH *inside the init's mount namespace* (a thread
//! of its own joins it; the init's mounts must come from its own namespace, or mount(2) refuses
//! them), and passes the fds over the sync channel at [1a']; the init binds from an fd only when
//! it cannot reach the path itself ([`crate::rootfs::Plan::prepare_gated`]). The mount flags the
//! host's namespace locked stay locked: the fds name mounts copied into the init's namespace.

use super::sync::{Channel, Msg};
use super::{InitContext, ProcessError};
use nix::sched::CloneFlags;
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Whether the parent hands bind sources over: only a privileged parent can see more than the
/// init, and only when the init has a user namespace of its own and something to bind.
pub fn wanted(privileged: bool, userns: bool, plan: Option<&crate::rootfs::Plan>) -> bool {
    privileged && userns && plan.is_some_and(|p| p.bind_sources().next().is_some())
}

/// Parent side of [1a']: opens the bind sources in `pid`'s mount namespace, sends them.
pub fn send(pid: Pid, ctx: &InitContext, chan: &Channel) -> Result<(), ProcessError> {
    let Some(plan) = &ctx.rootfs else {
        return Ok(());
    };
    let paths: Vec<&Path> = plan.bind_sources().collect();
    let fds = open_in_mount_ns(pid, &paths)?;
    for chunk in fds.chunks(crate::sys::FDS_PER_MESSAGE) {
        let have = chunk.iter().map(Option::is_some).collect();
        let raw: Vec<_> = chunk.iter().flatten().map(|fd| fd.as_raw_fd()).collect();
        chan.send_with_fds(&Msg::Sources(have), &raw)
            .map_err(ProcessError::Sync)?;
    }
    Ok(())
}

fn open_in_mount_ns(pid: Pid, paths: &[&Path]) -> Result<Vec<Option<OwnedFd>>, ProcessError> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt"))
        .map_err(|e| ProcessError::Sync(nix::Error::from_raw(e.raw_os_error().unwrap_or(0))))?;
    let opened = std::thread::scope(|s| {
        s.spawn(|| -> nix::Result<Vec<Option<OwnedFd>>> {
            // A thread of our own, with its own root and cwd: setns moves only it.
            nix::sched::unshare(CloneFlags::CLONE_FS)?;
            nix::sched::setns(&ns, CloneFlags::CLONE_NEWNS)?;
            Ok(paths.iter().map(|p| open_path(p)).collect())
        })
        .join()
    });
    match opened {
        Ok(r) => r.map_err(ProcessError::Sync),
        Err(_) => Err(ProcessError::Sync(nix::Error::EIO)),
    }
}

/// O_PATH, following symlinks as a bind of the path would. None when it does not open: the init
/// then tries the path and reports what it finds.
fn open_path(path: &Path) -> Option<OwnedFd> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(path)
        .ok()
        .map(OwnedFd::from)
}

/// Init side of [1a']: the fds, one entry per bind of the plan, in order.
pub fn receive(ctx: &InitContext, chan: &Channel) -> nix::Result<Vec<Option<OwnedFd>>> {
    let want = ctx.rootfs.as_ref().map_or(0, |p| p.bind_sources().count());
    let mut out = Vec::with_capacity(want);
    while out.len() < want {
        let (msg, fds) = chan.recv_with_fds()?;
        let Some(Msg::Sources(have)) = msg else {
            return Err(nix::Error::EPROTO);
        };
        let mut fds = fds.into_iter();
        out.extend(have.into_iter().map(|h| if h { fds.next() } else { None }));
    }
    Ok(out)
}
