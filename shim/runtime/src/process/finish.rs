//! The process's last steps, shared by the init, exec and the in-place run: everything that can
//! fail ([`prepare`]: environment, limits, bounding set, identity, cwd, capabilities, seccomp) and
//! then only execve ([`Prepared::exec`]). The init runs [`prepare`] before it reports created ([2]),
//! so a bad rlimit, user or cwd fails `create` itself, as under runc (standard_init_linux.go: all
//! of finalizeNamespace before the exec fifo); only startContainer hooks and execve come after
//! `start`.

use super::init::{cstring, sys, InitError};
use super::sync::Channel;
use super::InitContext;
use crate::security;
use nix::errno::Errno;
use nix::unistd::AccessFlags;
use oci_spec::runtime::Process;
use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

/// A process ready for execve: identity, capabilities, limits and seccomp are in place.
#[derive(Debug)]
pub struct Prepared {
    pub exe: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// The final environment, as startContainer hooks without an `env` of their own get it.
    pub env: Vec<String>,
}

impl Prepared {
    /// execve, through the context's exec stub when it has one (CVE-2019-5736); returns only its
    /// error. `report`: the sync channel the stub answers a failed execve on.
    pub fn exec(&self, ctx: &InitContext, report: Option<&Channel>) -> InitError {
        let source = match &ctx.exec_stub {
            Some(stub) => {
                let report = report.map_or(-1, |c| c.0.as_raw_fd());
                let min_fd = 3 + ctx.preserve_fds as i32;
                stub.exec(report, min_fd, &self.exe, &self.argv, &self.envp)
            }
            None => {
                let Err(e) = nix::unistd::execve(&self.exe, &self.argv, &self.envp);
                e
            }
        };
        InitError::Exec {
            path: self.exe.to_string_lossy().into_owned(),
            source,
        }
    }
}

/// Everything between the finished root and execve that can fail, in runc's order
/// (finalizeNamespace): limits, bounding set, seccomp (without no_new_privs: while CAP_SYS_ADMIN
/// is held), cwd as the caller, stdio to the user, identity, cwd as the user if the first try was
/// refused, capabilities, no_new_privs and seccomp (as late as possible).
/// `parent`: die with that parent (SIGKILL), which must still be ours; armed after the identity
/// switch, which clears the parent-death signal.
pub(super) fn prepare(
    ctx: &InitContext,
    exe: CString,
    parent: Option<nix::unistd::Pid>,
) -> Result<Prepared, InitError> {
    let p = &ctx.process;
    let nnp = p.no_new_privileges().unwrap_or(false);
    let env = final_env(&ctx.env, p.user().uid());
    let argv = p
        .args()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|a| cstring(a))
        .collect();
    let envp = env.iter().map(|kv| cstring(kv)).collect();
    // A foreground husk blocks the signals it forwards, Rust ignores SIGPIPE and the caller may
    // ignore others: the program must start with an empty mask and default dispositions.
    nix::sys::signal::SigSet::all()
        .thread_unblock()
        .map_err(sys("unblock signals"))?;
    crate::sys::default_signals().map_err(sys("reset signal dispositions"))?;
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
    // As the caller first (a cwd only root may enter, `-u 1000 -w /root`), then as the user if
    // that was refused (a volume only the container user may enter), as runc does.
    let cwd = p.cwd();
    let entered = match nix::unistd::chdir(cwd) {
        Ok(()) => true,
        Err(Errno::EACCES | Errno::EPERM) => false,
        Err(source) => return Err(cwd_err(cwd, source)),
    };
    give_stdio(p.user().uid(), ctx.console.is_some())?;
    security::identity::switch(p.user(), setgroups_allowed(ctx))?;
    if !entered {
        nix::unistd::chdir(cwd).map_err(|e| cwd_err(cwd, e))?;
    }
    verify_cwd(cwd)?;
    if let Some(c) = p.capabilities() {
        security::caps::apply_sets(c)?;
    }
    if let Some(parent) = parent {
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
            .map_err(sys("set pdeathsig"))?;
        // Reparented already: the caller died before the signal was armed.
        if nix::unistd::getppid() != parent {
            return Err(InitError::Sys {
                step: "exec: the caller is gone",
                source: Errno::ESRCH,
            });
        }
    }
    if nnp {
        security::set_no_new_privs()?;
        // As late as possible: only the sync with `start` and execve follow.
        if let Some(prog) = &ctx.seccomp {
            prog.load()?;
        }
    }
    Ok(Prepared {
        exe,
        argv,
        envp,
        env,
    })
}

/// [`prepare`] then execve, for exec and the in-place run (nothing waits in between).
pub(super) fn prepare_and_exec(
    ctx: &InitContext,
    exe: CString,
    parent: Option<nix::unistd::Pid>,
    report: Option<&Channel>,
) -> Result<Infallible, InitError> {
    Err(prepare(ctx, exe, parent)?.exec(ctx, report))
}

/// Whether setgroups(2) works here. A user namespace we made says so itself (the parent wrote
/// its setgroups file); one we joined (another container's, or exec's) may deny it, which only
/// its /proc/self/setgroups tells (runc reads it the same way).
fn setgroups_allowed(ctx: &InitContext) -> bool {
    if !ctx.setgroups_allowed {
        return false;
    }
    if !ctx.ns.joins_userns() {
        return true;
    }
    std::fs::read_to_string("/proc/self/setgroups").map_or(true, |s| s.trim() != "deny")
}

fn cwd_err(cwd: &Path, source: Errno) -> InitError {
    InitError::Cwd {
        path: cwd.to_path_buf(),
        source,
    }
}

/// CVE-2024-21626: a cwd reached through an inherited fd (e.g. /proc/self/fd/N of a host
/// directory) lies outside our root, and getcwd then fails with ENOENT ("(unreachable)").
fn verify_cwd(cwd: &Path) -> Result<(), InitError> {
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => Ok(()),
        Ok(_) => Err(cwd_err(cwd, Errno::ENOENT)),
        Err(source) => Err(cwd_err(cwd, source)),
    }
}

/// The container's stdio belongs to the process user, so it may reopen /dev/stdout or
/// /proc/self/fd/N and control its terminal, as under runc (fixStdioPermissions): its pty
/// (`console`), and the pipes, sockets and files it was given. Only the owner changes (the pty
/// keeps devpts's gid, tty). Unlike runc, a character device that is not the container's own pty
/// is left alone: /dev/null, and above all a host terminal handed over as stdio, which must not
/// become the container user's. Stdio already the user's is skipped; EPERM (an owner not mapped
/// in our user namespace) and EROFS are ignored, as runc does.
fn give_stdio(uid: u32, console: bool) -> Result<(), InitError> {
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    for fd in [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()] {
        let Ok(st) = nix::sys::stat::fstat(fd.as_raw_fd()) else {
            continue;
        };
        let is_char = st.st_mode & libc::S_IFMT == libc::S_IFCHR;
        if st.st_uid == uid || (is_char && !console) {
            continue;
        }
        match nix::unistd::fchown(fd.as_raw_fd(), Some(uid.into()), None) {
            Ok(()) | Err(Errno::EPERM | Errno::EROFS | Errno::EINVAL) => {}
            Err(source) => return Err(sys("give stdio to the process user")(source)),
        }
    }
    Ok(())
}

/// process.env as the program gets it, as runc prepares it (prepareEnv): one entry per name, the
/// last one kept where it stands; an empty HOME counts as none, and a missing HOME comes from the
/// container's /etc/passwd ("/" when unknown).
pub(crate) fn final_env(env: &[String], uid: u32) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<String> = Vec::with_capacity(env.len() + 1);
    for kv in env.iter().rev() {
        let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
        if !seen.insert(key) || kv == "HOME=" {
            continue;
        }
        out.push(kv.clone());
    }
    out.reverse();
    if !out.iter().any(|kv| kv.starts_with("HOME=")) {
        out.push(format!("HOME={}", home_of(uid)));
    }
    out
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
    // The last PATH wins, as in the environment the program gets.
    let path = p
        .env()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .rev()
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

#[cfg(test)]
mod tests {
    use super::final_env;

    fn env(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn last_duplicate_wins_in_first_order() {
        let got = final_env(&env(&["A=1", "B=2", "A=3", "HOME=/h"]), 0);
        assert_eq!(got, env(&["B=2", "A=3", "HOME=/h"]));
    }

    #[test]
    fn empty_home_is_replaced() {
        let got = final_env(&env(&["HOME=/override", "HOME=", "P=1"]), 4242);
        assert_eq!(got.iter().filter(|kv| kv.starts_with("HOME=")).count(), 1);
        assert!(got.contains(&"P=1".to_string()));
        assert!(!got.contains(&"HOME=/override".to_string()), "{got:?}");
    }
}
