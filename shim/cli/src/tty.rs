//! Foreground terminal: receive the pty master the container sent over our console socket, put our
//! own terminal in raw mode, and copy bytes both ways until the container closes its side.

use anyhow::Context;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

pub struct TtyProxy {
    saved: Option<Termios>,
    out: Option<std::thread::JoinHandle<()>>,
}

/// Receives the console master sent with SCM_RIGHTS on `sock`.
pub fn recv_fd(sock: &OwnedFd) -> anyhow::Result<OwnedFd> {
    husk_runtime::sys::recv_fd(sock.as_fd()).context("receive console master")
}

impl TtyProxy {
    pub fn start(sock: &OwnedFd) -> anyhow::Result<TtyProxy> {
        let master = recv_fd(sock)?;
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            cfmakeraw(&mut raw);
            let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
            if let Ok((rows, cols)) = husk_runtime::sys::get_winsize(stdin.as_raw_fd()) {
                let _ = husk_runtime::sys::set_winsize(master.as_raw_fd(), rows, cols);
            }
        }
        let mut from = std::fs::File::from(master.try_clone().context("dup console master")?);
        let mut to = std::fs::File::from(master);
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let mut input = std::io::stdin().lock();
            while let Ok(n) = input.read(&mut buf) {
                if n == 0 || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        let out = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let mut stdout = std::io::stdout().lock();
            // EIO once every slave fd is closed: the container is done.
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || stdout.write_all(&buf[..n]).is_err() {
                    break;
                }
                let _ = stdout.flush();
            }
        });
        Ok(TtyProxy {
            saved,
            out: Some(out),
        })
    }
}

impl Drop for TtyProxy {
    fn drop(&mut self) {
        if let Some(h) = self.out.take() {
            let _ = h.join();
        }
        if let Some(t) = &self.saved {
            let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, t);
        }
    }
}
