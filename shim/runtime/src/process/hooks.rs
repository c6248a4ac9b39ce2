//! OCI hooks: each runs with the container state JSON on stdin, its own args and env, and an
//! optional timeout after which it is killed and counts as failed.
//!
//! Environment and directory as under runc: a hook with no `env` inherits husk's environment (the
//! caller's), except startContainer hooks, which get the process's ([`At::default_env`]); a hook
//! with `env` gets exactly that. The runtime's hooks run in the bundle, createContainer hooks in
//! the rootfs, startContainer hooks in the process's cwd ([`At::cwd`]).

use oci_spec::runtime::Hook;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("run {kind} hook {path}: {source}")]
    Spawn {
        kind: &'static str,
        path: String,
        source: std::io::Error,
    },
    /// "error running hook": runc's words, which its callers look for.
    #[error("error running hook: {kind} hook {path}: {status}{stderr}")]
    Failed {
        kind: &'static str,
        path: String,
        status: String,
        stderr: String,
    },
    #[error("{kind} hook {path} timed out after {secs}s")]
    Timeout {
        kind: &'static str,
        path: String,
        secs: i64,
    },
}

/// Where and with what environment hooks run (the default: husk's cwd and environment).
#[derive(Debug, Default, Clone, Copy)]
pub struct At<'a> {
    /// The hooks' working directory.
    pub cwd: Option<&'a Path>,
    /// The environment of a hook without an `env` of its own (or an empty one).
    pub default_env: Option<&'a [String]>,
}

/// Runs `hooks` in order; the first failure stops the rest.
pub fn run(
    kind: &'static str,
    hooks: &[Hook],
    state_json: &[u8],
    at: &At<'_>,
) -> Result<(), HookError> {
    for hook in hooks {
        run_one(kind, hook, state_json, at)?;
    }
    Ok(())
}

/// Runs every hook even when some fail (poststart, poststop: "log a warning, the remaining hooks
/// and the lifecycle continue"); returns one warning per failure.
pub fn run_all(kind: &'static str, hooks: &[Hook], state_json: &[u8], at: &At<'_>) -> Vec<String> {
    hooks
        .iter()
        .filter_map(|h| run_one(kind, h, state_json, at).err())
        .map(|e| e.to_string())
        .collect()
}

fn set_env(cmd: &mut Command, env: &[String]) {
    cmd.env_clear();
    for kv in env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
}

fn run_one(
    kind: &'static str,
    hook: &Hook,
    state_json: &[u8],
    at: &At<'_>,
) -> Result<(), HookError> {
    let path = hook.path().display().to_string();
    let mut cmd = Command::new(hook.path());
    if let Some(args) = hook.args() {
        if let Some((argv0, rest)) = args.split_first() {
            cmd.arg0(argv0).args(rest);
        }
    }
    match (hook.env().as_deref(), at.default_env) {
        (Some(env), _) if !env.is_empty() => set_env(&mut cmd, env),
        (_, Some(env)) => set_env(&mut cmd, env),
        // `"env": []`: an empty environment, as Go's exec.Cmd gives runc's hooks.
        (Some(_), None) => set_env(&mut cmd, &[]),
        (None, None) => {}
    }
    // A bundle removed before `delete` must not fail the poststop hooks.
    if let Some(dir) = at.cwd.filter(|d| d.is_dir()) {
        cmd.current_dir(dir);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        // Its own process group: a timeout kills whatever the hook started too.
        .process_group(0);
    let spawn_err = |source| HookError::Spawn {
        kind,
        path: path.clone(),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn_err)?;
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let mut pipes = Pipes::new(&mut child, state_json);
    let status = loop {
        pipes.pump();
        match child.try_wait().map_err(spawn_err)? {
            Some(status) => break status,
            None => match deadline {
                Some(d) if Instant::now() >= d => {
                    let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
                    let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(HookError::Timeout {
                        kind,
                        path,
                        secs: hook.timeout().unwrap_or(0),
                    });
                }
                // Hooks are rare and short; a 2 ms poll keeps this simple and single-threaded.
                _ => std::thread::sleep(Duration::from_millis(2)),
            },
        }
    };
    if status.success() {
        return Ok(());
    }
    // What is there now: a process the hook left behind may hold stderr open for ever.
    pipes.pump();
    let stderr = String::from_utf8_lossy(&pipes.stderr);
    let stderr = stderr.trim();
    Err(HookError::Failed {
        kind,
        path,
        status: describe(status),
        stderr: if stderr.is_empty() {
            String::new()
        } else {
            format!(": {}", stderr.lines().last().unwrap_or_default())
        },
    })
}

/// The hook's stdin (the state, written as it reads) and stderr (its tail kept), both
/// non-blocking: a hook that never reads its stdin, floods stderr, or leaves a process holding
/// the pipe must not stall husk past the hook's timeout or its exit.
struct Pipes<'a> {
    stdin: Option<std::process::ChildStdin>,
    input: &'a [u8],
    stderr_pipe: Option<std::process::ChildStderr>,
    stderr: Vec<u8>,
}

/// How much of a failed hook's stderr is kept (its last line is shown).
const STDERR_TAIL: usize = 8192;

impl<'a> Pipes<'a> {
    fn new(child: &mut std::process::Child, input: &'a [u8]) -> Self {
        let stdin = child.stdin.take();
        let stderr_pipe = child.stderr.take();
        for fd in [
            stdin.as_ref().map(|f| f.as_fd()),
            stderr_pipe.as_ref().map(|f| f.as_fd()),
        ]
        .into_iter()
        .flatten()
        {
            let _ = nix::fcntl::fcntl(
                fd.as_raw_fd(),
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
        }
        Pipes {
            stdin,
            input,
            stderr_pipe,
            stderr: Vec::new(),
        }
    }

    /// Writes what the pipe takes, reads what is there; never blocks.
    fn pump(&mut self) {
        use std::io::Read;
        if let Some(w) = self.stdin.as_mut() {
            match w.write(self.input) {
                Ok(n) => self.input = &self.input[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // EPIPE: a hook may exit without reading its stdin; not a failure.
                Err(_) => self.input = &[],
            }
            if self.input.is_empty() {
                self.stdin = None;
            }
        }
        let Some(r) = self.stderr_pipe.as_mut() else {
            return;
        };
        let mut buf = [0u8; 4096];
        loop {
            match r.read(&mut buf) {
                Ok(0) => {
                    self.stderr_pipe = None;
                    return;
                }
                Ok(n) => {
                    self.stderr.extend_from_slice(&buf[..n]);
                    let over = self.stderr.len().saturating_sub(STDERR_TAIL);
                    self.stderr.drain(..over);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

/// "exit status 3", or for a signal its number, name and description ("signal: 31 (SIGSYS: bad
/// system call)"), as a shell would say it.
fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(n) => {
            let name = nix::sys::signal::Signal::try_from(n).map_or("?", |s| s.as_str());
            let what = crate::sys::signal_description(n).to_lowercase();
            format!("signal: {n} ({name}: {what})")
        }
        None => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::HookBuilder;

    fn hook(args: &[&str], timeout: Option<i64>) -> Hook {
        let mut b = HookBuilder::default()
            .path("/bin/sh")
            .args(args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        if let Some(t) = timeout {
            b = b.timeout(t);
        }
        b.build().unwrap()
    }

    #[test]
    fn hook_gets_state_on_stdin() {
        let dir = std::env::temp_dir().join(format!("husk-hook-{}", std::process::id()));
        let out = dir.with_extension("out");
        let h = hook(&["sh", "-c", &format!("cat > {}", out.display())], None);
        run("prestart", &[h], br#"{"id":"x"}"#, &At::default()).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), r#"{"id":"x"}"#);
        let _ = std::fs::remove_file(out);
    }

    #[test]
    fn failing_hook_names_kind_and_stderr() {
        let h = hook(&["sh", "-c", "echo boom >&2; exit 3"], None);
        let e = run("poststart", &[h], b"{}", &At::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("error running hook: poststart hook /bin/sh"),
            "{e}"
        );
        assert!(e.ends_with("boom"), "{e}");
    }

    #[test]
    fn hook_killed_by_a_signal_names_it() {
        let h = hook(&["sh", "-c", "kill -SYS $$"], None);
        let e = run("startContainer", &[h], b"{}", &At::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("SIGSYS: bad system call"), "{e}");
    }

    #[test]
    fn env_and_cwd() {
        let dir = std::env::temp_dir().join(format!("husk-hook-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let script = format!("echo \"$PWD ${{HUSK_HOOK_T:-unset}}\" > {}", out.display());
        let h = hook(&["sh", "-c", &script], None);
        let env = ["HUSK_HOOK_T=from-process".to_string()];
        let at = At {
            cwd: Some(&dir),
            default_env: Some(&env),
        };
        run("startContainer", std::slice::from_ref(&h), b"{}", &at).unwrap();
        let got = std::fs::read_to_string(&out).unwrap();
        assert_eq!(got.trim(), format!("{} from-process", dir.display()));
        // No env and no default: husk's own environment is inherited.
        std::env::set_var("HUSK_HOOK_T", "inherited");
        run("prestart", &[h], b"{}", &At::default()).unwrap();
        let got = std::fs::read_to_string(&out).unwrap();
        assert!(got.trim().ends_with(" inherited"), "{got}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn hook_timeout_kills() {
        let h = hook(&["sh", "-c", "exec sleep 30"], Some(1));
        let e = run("createRuntime", &[h], b"{}", &At::default()).unwrap_err();
        assert!(matches!(e, HookError::Timeout { .. }));
    }

    /// The whole group goes at the timeout: a hook's own child (here holding stderr, so a read to
    /// EOF would wait for it) is killed too, and its pid file names a process that is gone.
    #[test]
    fn hook_timeout_kills_what_the_hook_started() {
        let pidfile = std::env::temp_dir().join(format!("husk-hook-grp-{}", std::process::id()));
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let h = hook(&["sh", "-c", &script], Some(1));
        let e = run("prestart", &[h], b"{}", &At::default()).unwrap_err();
        assert!(matches!(e, HookError::Timeout { .. }), "{e}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let _ = std::fs::remove_file(&pidfile);
        // Killed (a zombie until init reaps it, or gone). SIGKILL is delivered asynchronously: the
        // process may still be runnable for a moment on its way out, so wait (bounded) for it.
        let dead = |stat: &str| {
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .chars()
                .next();
            matches!(state, None | Some('Z') | Some('X'))
        };
        let mut stat = String::new();
        for _ in 0..1000 {
            stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if dead(&stat) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(dead(&stat), "{stat}");
    }

    /// A failing hook that leaves a process holding its stderr, and one that never reads a state
    /// bigger than a pipe: both end with the hook, not with the processes it left.
    #[test]
    fn failing_hook_with_a_leftover_child_and_unread_stdin_returns() {
        let h = hook(&["sh", "-c", "sleep 30 & echo gone >&2; exit 4"], None);
        let big = vec![b' '; 1 << 20];
        let e = run("poststop", &[h], &big, &At::default()).unwrap_err();
        assert!(matches!(e, HookError::Failed { .. }), "{e}");
        assert!(e.to_string().ends_with("gone"), "{e}");
    }
}
