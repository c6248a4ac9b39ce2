//! What runs a launch once a verb has read its flags: the launch built and written
//! ([`launch`]), run in place when nothing needs a parent ([`inplace`]), or created, waited for and
//! deleted ([`foreground`]); a process run in a running container and waited for ([`exec_in`]);
//! an instance's watcher and its stop ([`instance`]); the sandbox's supervisor ([`sandbox`]: output pipes, timeout, result
//! record) and the batch's pool of workers ([`pool`]).
//!
//! Not verbs (no flags are defined here: they stay in verbs/) and not engine work: these loops print
//! the program's output, swap the logger's stderr, proxy terminals and start husk itself as
//! workers, which husk-runtime (never prints, never exits) must not do. Pure decisions (options,
//! records, result lines) are husk-launcher's; this module gathers the facts and acts on them.

pub mod inplace;
pub mod instance;
pub mod launch;
pub mod pool;
pub mod sandbox;
pub mod sweep;

mod host;
mod socket;
mod watch;

pub use socket::{check as check_socket, Pinned};

use crate::verbs::{context_id, warn_all};
use husk_runtime::container::{create, exec, CreateMode};
use husk_runtime::{process, Container, CreateOptions, ExecOptions, GlobalOptions};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use oci_spec::runtime::Process;

/// Creates and releases container `id`; unless detached, waits (forwarding signals, proxying a
/// terminal) and, unless kept, deletes it. Returns the container's exit status.
pub fn foreground(
    opts: &GlobalOptions,
    id: &str,
    engine: &CreateOptions,
    detach: bool,
    keep: bool,
) -> anyhow::Result<i32> {
    // Blocked before the container exists, so no signal meant for it is lost.
    let sigs = if detach {
        None
    } else {
        Some(process::block_signals()?)
    };
    let mut created = context_id(create(opts, id, engine, CreateMode::Run), "run", id)?;
    warn_all(&created.warnings);
    let console = created.console.take();
    let released = created.release();
    let result = released.map_err(anyhow::Error::from).and_then(|w| {
        warn_all(&w);
        let Some(sigs) = sigs else { return Ok(0) };
        let proxy = match console {
            Some(sock) => Some(crate::tty::TtyProxy::start(&sock)?),
            None => None,
        };
        let code = process::wait_forwarding(created.spawned.pid, &sigs)?;
        drop(proxy);
        Ok(code)
    });
    if (detach || keep) && result.is_ok() {
        return result;
    }
    // Foreground (or failed detach): the container is over; remove it.
    match created.remove() {
        Ok(w) => warn_all(&w),
        Err(e) => log::warn!("clean up container {id}: {e}"),
    }
    context_id(result, "run", id)
}

/// Runs `proc_` in container `c` (id `id`). Unless detached, waits for it (signals blocked before
/// it exists and forwarded; its terminal proxied when no --console-socket takes the pty) and
/// returns its exit status.
pub fn exec_in(
    c: &Container,
    id: &str,
    proc_: Process,
    mut opts: ExecOptions,
) -> anyhow::Result<i32> {
    let sigs = if opts.detach {
        None
    } else {
        Some(process::block_signals()?)
    };
    let tty = proc_.terminal().unwrap_or(false);
    let ours = if tty && opts.console_socket.is_none() && !opts.detach {
        let flags = SockFlag::SOCK_CLOEXEC;
        let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::Stream, None, flags)?;
        opts.console_fd = Some(theirs);
        Some(ours)
    } else {
        None
    };
    let spawned = context_id(exec(c, proc_, opts), "exec in", id)?;
    let Some(sigs) = sigs else { return Ok(0) };
    let proxy = match &ours {
        Some(sock) => Some(crate::tty::TtyProxy::start(sock)?),
        None => None,
    };
    let code = process::wait_forwarding(spawned.pid, &sigs)?;
    drop(proxy);
    Ok(code)
}
