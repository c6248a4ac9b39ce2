//! The sandbox supervisor's loop: one poll over a signalfd and the two output pipes; signals are
//! forwarded, children reaped, output copied up to the cap (the rest read and dropped, so the
//! program never blocks on a full pipe), and at the deadline the whole container is killed.

use husk_launcher::sandbox::Sandbox;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// How long to keep reading after the init exited: its pid namespace is gone by then, so only a
/// writer outside it (none in the sandbox) could hold a pipe open.
const DRAIN: Duration = Duration::from_secs(2);

/// After SIGINT, SIGTERM or SIGHUP (forwarded), how long the program may take before the whole
/// container is killed: a pid 1 without a handler ignores them, and husk must not outlive its
/// caller's wish by the full timeout.
const GRACE: Duration = Duration::from_secs(2);

/// Our stdout/stderr saved while the pipes' write ends sit on fds 1 and 2.
pub struct Capture {
    saved: [OwnedFd; 2],
    read: [OwnedFd; 2],
    /// The logger's writer while its records go to the saved stderr.
    log: Option<Box<dyn Write + Send>>,
}

impl Capture {
    pub fn redirect() -> anyhow::Result<Capture> {
        let (r1, w1) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let (r2, w2) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let saved = [
            std::io::stdout().as_fd().try_clone_to_owned()?,
            std::io::stderr().as_fd().try_clone_to_owned()?,
        ];
        std::io::stdout().flush()?;
        let log = crate::logger::swap_stderr(Box::new(File::from(saved[1].try_clone()?)));
        nix::unistd::dup2(w1.as_raw_fd(), 1)?;
        nix::unistd::dup2(w2.as_raw_fd(), 2)?;
        Ok(Capture {
            saved,
            read: [r1, r2],
            log,
        })
    }

    /// Puts our stdout/stderr back (dropping our copies of the write ends); returns the read ends.
    pub fn restore(self) -> anyhow::Result<[OwnedFd; 2]> {
        nix::unistd::dup2(self.saved[0].as_raw_fd(), 1)?;
        nix::unistd::dup2(self.saved[1].as_raw_fd(), 2)?;
        if let Some(w) = self.log {
            crate::logger::swap_stderr(w);
        }
        Ok(self.read)
    }
}

/// One captured stream.
pub struct Stream {
    file: Option<File>,
    /// Where the first `cap` bytes go: our stdout/stderr, or `kept` with --json.
    fd: i32,
    keep: bool,
    kept: Vec<u8>,
    cap: u64,
    /// Bytes the program wrote.
    pub seen: u64,
}

impl Stream {
    fn new(fd: Option<OwnedFd>, to: i32, keep: bool, cap: u64) -> Stream {
        Stream {
            file: fd.map(File::from),
            fd: to,
            keep,
            kept: Vec::new(),
            cap,
            seen: 0,
        }
    }

    pub fn truncated(&self) -> bool {
        self.seen > self.cap
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.kept).into_owned()
    }

    /// Reads what is there; closes the stream at end of file.
    fn pump(&mut self) {
        let Some(f) = self.file.as_mut() else { return };
        let mut buf = [0u8; 65536];
        match f.read(&mut buf) {
            Ok(0) => self.file = None,
            Ok(n) => {
                let room = self.cap.saturating_sub(self.seen).min(n as u64) as usize;
                self.seen += n as u64;
                if self.keep {
                    self.kept.extend_from_slice(&buf[..room]);
                } else if room > 0 {
                    let _ = write_all(self.fd, &buf[..room]);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => self.file = None,
        }
    }
}

fn write_all(fd: i32, buf: &[u8]) -> std::io::Result<()> {
    if fd == 1 {
        let mut o = std::io::stdout().lock();
        o.write_all(buf)?;
        o.flush()
    } else {
        std::io::stderr().lock().write_all(buf)
    }
}

/// How the program ended.
pub struct Watched {
    pub code: i32,
    pub signal: Option<Signal>,
    pub timed_out: bool,
    pub out: Stream,
    pub err: Stream,
}

/// Waits for `pid` (the container's init), forwarding signals, pumping output, enforcing the
/// timeout with `kill_all`.
pub fn watch(
    pid: Pid,
    sigs: &SigSet,
    pipes: Option<[OwnedFd; 2]>,
    sb: &Sandbox,
    keep: bool,
    kill_all: impl Fn(),
) -> anyhow::Result<Watched> {
    let sfd = SignalFd::with_flags(sigs, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
    let (o, e) = match pipes {
        Some([o, e]) => (Some(o), Some(e)),
        None => (None, None),
    };
    let mut out = Stream::new(o, 1, keep, sb.output_limit);
    let mut err = Stream::new(e, 2, keep, sb.output_limit);
    let deadline = Instant::now() + sb.timeout;
    let mut status: Option<(i32, Option<Signal>)> = None;
    let mut exited_at = None;
    let mut timed_out = false;
    let mut killed = false;
    let mut stop_at = deadline;
    loop {
        let now = Instant::now();
        if let Some(at) = exited_at {
            if (out.file.is_none() && err.file.is_none()) || now >= at + DRAIN {
                break;
            }
        }
        let until = match exited_at {
            Some(at) => at + DRAIN,
            None if killed => now + Duration::from_millis(100),
            None => stop_at,
        };
        let wait = until
            .saturating_duration_since(now)
            .min(Duration::from_secs(1));
        let ready = {
            let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
            for s in [&out, &err] {
                if let Some(f) = &s.file {
                    fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
                }
            }
            let ms = PollTimeout::try_from(wait.as_millis() as i32).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, ms) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
            fds.iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect::<Vec<bool>>()
        };
        let mut i = 1;
        for s in [&mut out, &mut err] {
            if s.file.is_some() {
                if ready.get(i).copied().unwrap_or(false) {
                    s.pump();
                }
                i += 1;
            }
        }
        while let Ok(Some(si)) = sfd.read_signal() {
            match Signal::try_from(si.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) | Err(_) => {}
                Ok(sig) => {
                    let _ = nix::sys::signal::kill(pid, sig);
                    if matches!(sig, Signal::SIGINT | Signal::SIGTERM | Signal::SIGHUP) {
                        stop_at = stop_at.min(Instant::now() + GRACE);
                    }
                }
            }
        }
        if status.is_none() {
            status = reap(pid);
            if status.is_some() {
                exited_at = Some(Instant::now());
            }
        }
        let now = Instant::now();
        if status.is_none() && !killed && now >= stop_at {
            timed_out = now >= deadline;
            log::debug!("sandbox: timeout or signal: killing the container");
            killed = true;
            kill_all();
        }
    }
    let (code, signal) = status.expect("the loop ends after the init exited");
    Ok(Watched {
        code,
        signal,
        timed_out,
        out,
        err,
    })
}

/// Reaps every exited child; returns `pid`'s status once it has exited.
fn reap(pid: Pid) -> Option<(i32, Option<Signal>)> {
    let mut found = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, c)) if p == pid => found = Some((c, None)),
            Ok(WaitStatus::Signaled(p, s, _)) if p == pid => {
                found = Some((128 + s as i32, Some(s)))
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return found,
            Ok(_) => {}
        }
    }
}
