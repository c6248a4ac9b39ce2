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
    let deadline = Instant::now() + sb.timeout;
    let mut w = Loop {
        pid,
        sfd,
        out: Stream::new(o, 1, keep, sb.output_limit),
        err: Stream::new(e, 2, keep, sb.output_limit),
        deadline,
        stop_at: deadline,
        status: None,
        exited_at: None,
        timed_out: false,
        killed: false,
    };
    loop {
        let now = Instant::now();
        if w.drained(now) {
            break;
        }
        let ready = w.poll(w.wait(now))?;
        w.pump(&ready);
        w.forward_signals();
        w.reap();
        w.enforce(&kill_all);
    }
    let (code, signal) = w.status.expect("the loop ends after the init exited");
    Ok(Watched {
        code,
        signal,
        timed_out: w.timed_out,
        out: w.out,
        err: w.err,
    })
}

/// The watch's state.
struct Loop {
    pid: Pid,
    sfd: SignalFd,
    out: Stream,
    err: Stream,
    deadline: Instant,
    /// The deadline, or sooner after a stop signal (GRACE after it).
    stop_at: Instant,
    status: Option<(i32, Option<Signal>)>,
    exited_at: Option<Instant>,
    timed_out: bool,
    killed: bool,
}

impl Loop {
    /// The init has exited and its output is read (or DRAIN has passed).
    fn drained(&self, now: Instant) -> bool {
        self.exited_at.is_some_and(|at| {
            (self.out.file.is_none() && self.err.file.is_none()) || now >= at + DRAIN
        })
    }

    /// How long the next poll may wait: until the drain ends, a little while once killed (to
    /// reap soon), else until the stop time; at most a second.
    fn wait(&self, now: Instant) -> Duration {
        let until = match self.exited_at {
            Some(at) => at + DRAIN,
            None if self.killed => now + Duration::from_millis(100),
            None => self.stop_at,
        };
        until
            .saturating_duration_since(now)
            .min(Duration::from_secs(1))
    }

    /// Polls the signalfd and the open streams; which of those (signalfd first) are ready.
    fn poll(&self, wait: Duration) -> anyhow::Result<Vec<bool>> {
        let mut fds = vec![PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN)];
        for s in [&self.out, &self.err] {
            if let Some(f) = &s.file {
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
            }
        }
        let ms = PollTimeout::try_from(wait.as_millis() as i32).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect())
    }

    /// Reads the streams that `ready` (from [`Loop::poll`]) says have data or hung up.
    fn pump(&mut self, ready: &[bool]) {
        let mut i = 1;
        for s in [&mut self.out, &mut self.err] {
            if s.file.is_some() {
                if ready.get(i).copied().unwrap_or(false) {
                    s.pump();
                }
                i += 1;
            }
        }
    }

    /// Passes every pending signal but SIGCHLD on to the init; a stop signal brings the stop time
    /// to GRACE from now.
    fn forward_signals(&mut self) {
        while let Ok(Some(si)) = self.sfd.read_signal() {
            match Signal::try_from(si.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) | Err(_) => {}
                Ok(sig) => {
                    let _ = nix::sys::signal::kill(self.pid, sig);
                    if matches!(sig, Signal::SIGINT | Signal::SIGTERM | Signal::SIGHUP) {
                        self.stop_at = self.stop_at.min(Instant::now() + GRACE);
                    }
                }
            }
        }
    }

    fn reap(&mut self) {
        if self.status.is_none() {
            self.status = reap(self.pid);
            if self.status.is_some() {
                self.exited_at = Some(Instant::now());
            }
        }
    }

    /// At the stop time, kills the whole container (once).
    fn enforce(&mut self, kill_all: &impl Fn()) {
        let now = Instant::now();
        if self.status.is_none() && !self.killed && now >= self.stop_at {
            self.timed_out = now >= self.deadline;
            log::debug!("sandbox: timeout or signal: killing the container");
            self.killed = true;
            kill_all();
        }
    }
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
