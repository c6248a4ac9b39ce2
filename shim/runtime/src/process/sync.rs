//! The parent/child sync channel: a SOCK_SEQPACKET socketpair carrying small tagged messages.
//! No serde on this path: a tag byte and a fixed or string payload (and fds, for [1a']).
//!
//! Sync points (the same number is used in the parent's and the child's comments; the parent's
//! side is `process::spawn_init`, the child's `init::run`, each one straight function):
//! - [1a] parent → child `Mapped` (only with a new user namespace): id maps written.
//! - [1a'] parent → child `Sources` with fds (only root, a new user namespace and bind mounts):
//!   the bind sources, opened inside the child's mount namespace (`process::sources`).
//! - [1b] parent → child `Go`: cgroup joined, state saved, prestart/createRuntime hooks run. Without
//!   hooks the child waits for it only just before its first cgroup mount (or at the end of the
//!   rootfs), so its mounts overlap the parent's cgroup work; it unshares its cgroup namespace
//!   after it, so the namespace's root is the container's cgroup.
//! - [2] child → parent `Created` (or `Failed(msg)`): everything that can fail is done — rootfs,
//!   createContainer hooks, pivot, console, sysctls, cwd, argv resolved, AppArmor, Landlock,
//!   rlimits, bounding set, identity, capabilities, no_new_privs, seccomp — and the caller's fds
//!   are closed. With Landlock asked for, a `Landlock(status JSON)` comes just before it. After
//!   [2] only the wait for start, startContainer hooks and execve remain (runc: the init closes
//!   its sync pipe only once finalizeNamespace is done).
//! - [3] parent → child `Start` (run only; create/start uses exec.fifo instead).
//! - intermediate → parent `Pid(n)` of the process it cloned with CLONE_PARENT: exec, and an
//!   init that joins a user namespace given by path (`process::spawn_init`).
//!
//! A failure on the parent's side of a sync (EPIPE: the child has exited) gives way to the
//! child's own `Failed` message when one is queued (`process::own_error`).
//! - after the last point: the exec stub → parent `ExecFailed` when the program did not start
//!   (written by [`super::exec_stub`]'s machine code: tag 7, errno as u32 LE, the path).

use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Mapped,
    Go,
    Created,
    Start,
    Pid(i32),
    /// What Landlock applied (security::landlock::Status as JSON).
    Landlock(String),
    /// Bind sources opened by the parent: one byte per bind of this chunk, `1` when its fd is
    /// attached (in order), `0` when the parent could not open it.
    Sources(Vec<bool>),
    Failed(String),
    /// execve of the program failed in the exec stub: errno, path.
    ExecFailed(i32, String),
}

const GO: u8 = 1;
const CREATED: u8 = 2;
const START: u8 = 3;
const PID: u8 = 4;
const LANDLOCK: u8 = 5;
const MAPPED: u8 = 6;
// 7 is fixed in the exec stub's machine code.
const EXEC_FAILED: u8 = super::exec_stub::EXEC_FAILED;
const SOURCES: u8 = 8;
const FAILED: u8 = 0xff;

/// One end of the channel.
#[derive(Debug)]
pub struct Channel(pub OwnedFd);

/// A fresh close-on-exec pair: (parent end, child end).
pub fn pair() -> nix::Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((Channel(a), Channel(b)))
}

impl Msg {
    fn encode(&self) -> Vec<u8> {
        match self {
            Msg::Mapped => vec![MAPPED],
            Msg::Go => vec![GO],
            Msg::Created => vec![CREATED],
            Msg::Start => vec![START],
            Msg::Pid(p) => {
                let mut v = vec![PID];
                v.extend_from_slice(&p.to_le_bytes());
                v
            }
            Msg::Landlock(s) => {
                let mut v = vec![LANDLOCK];
                v.extend_from_slice(s.as_bytes());
                v
            }
            Msg::Sources(have) => {
                let mut v = vec![SOURCES];
                v.extend(have.iter().map(|&h| u8::from(h)));
                v
            }
            Msg::Failed(s) => {
                let mut v = vec![FAILED];
                v.extend_from_slice(s.as_bytes());
                v
            }
            Msg::ExecFailed(errno, path) => {
                let mut v = vec![EXEC_FAILED];
                v.extend_from_slice(&errno.to_le_bytes());
                v.extend_from_slice(path.as_bytes());
                v
            }
        }
    }

    fn decode(buf: &[u8]) -> Option<Msg> {
        let (&tag, rest) = buf.split_first()?;
        Some(match tag {
            MAPPED => Msg::Mapped,
            GO => Msg::Go,
            CREATED => Msg::Created,
            START => Msg::Start,
            PID => Msg::Pid(i32::from_le_bytes(rest.get(..4)?.try_into().ok()?)),
            LANDLOCK => Msg::Landlock(String::from_utf8_lossy(rest).into_owned()),
            SOURCES => Msg::Sources(rest.iter().map(|&b| b == 1).collect()),
            FAILED => Msg::Failed(String::from_utf8_lossy(rest).into_owned()),
            EXEC_FAILED => {
                let errno = i32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
                Msg::ExecFailed(errno, String::from_utf8_lossy(&rest[4..]).into_owned())
            }
            _ => return None,
        })
    }
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> nix::Result<()> {
        let buf = msg.encode();
        // MSG_NOSIGNAL: a peer that died must give EPIPE, not kill us with SIGPIPE.
        send(self.0.as_raw_fd(), &buf, MsgFlags::MSG_NOSIGNAL).map(drop)
    }

    /// Next message; `Ok(None)` when the peer closed its end (exited, or exec'd with CLOEXEC).
    pub fn recv(&self) -> nix::Result<Option<Msg>> {
        self.recv_flags(MsgFlags::empty())
    }

    /// `msg` with `fds` attached (SCM_RIGHTS; at most [`crate::sys::FDS_PER_MESSAGE`]).
    pub fn send_with_fds(&self, msg: &Msg, fds: &[RawFd]) -> nix::Result<()> {
        use nix::sys::socket::{sendmsg, ControlMessage};
        let buf = msg.encode();
        let iov = [std::io::IoSlice::new(&buf)];
        let cmsg = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
        sendmsg::<()>(
            self.0.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map(drop)
    }

    /// The next message and the fds that came with it.
    pub fn recv_with_fds(&self) -> nix::Result<(Option<Msg>, Vec<OwnedFd>)> {
        let mut buf = [0u8; 4096];
        let (n, fds) = crate::sys::recv_with_fds(self.0.as_fd(), &mut buf)?;
        Ok(((n > 0).then(|| Msg::decode(&buf[..n])).flatten(), fds))
    }

    /// A message already queued, without waiting (EAGAIN when there is none).
    pub fn try_recv(&self) -> nix::Result<Option<Msg>> {
        self.recv_flags(MsgFlags::MSG_DONTWAIT)
    }

    fn recv_flags(&self, flags: MsgFlags) -> nix::Result<Option<Msg>> {
        let mut buf = [0u8; 4096];
        loop {
            match recv(self.0.as_raw_fd(), &mut buf, flags) {
                Ok(0) => return Ok(None),
                Ok(n) => return Ok(Msg::decode(&buf[..n])),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let (a, b) = pair().unwrap();
        for m in [
            Msg::Mapped,
            Msg::Go,
            Msg::Created,
            Msg::Start,
            Msg::Pid(4242),
            Msg::Sources(vec![true, false, true]),
            Msg::Failed("mount /proc: permission denied".into()),
            Msg::ExecFailed(2, "/bin/nope".into()),
        ] {
            a.send(&m).unwrap();
            assert_eq!(b.recv().unwrap(), Some(m));
        }
        drop(a);
        assert_eq!(b.recv().unwrap(), None);
    }
}
