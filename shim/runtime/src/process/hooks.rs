//! OCI hooks: each runs with the container state JSON on stdin, its own args and env, and an
//! optional timeout after which it is killed and counts as failed.

use oci_spec::runtime::Hook;
use std::io::Write;
use std::os::unix::process::CommandExt;
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
    #[error("{kind} hook {path} failed: {status}{stderr}")]
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

/// Runs `hooks` in order; the first failure stops the rest.
pub fn run(kind: &'static str, hooks: &[Hook], state_json: &[u8]) -> Result<(), HookError> {
    for hook in hooks {
        run_one(kind, hook, state_json)?;
    }
    Ok(())
}

/// Runs every hook even when some fail (poststart, poststop: "log a warning, the remaining hooks
/// and the lifecycle continue"); returns one warning per failure.
pub fn run_all(kind: &'static str, hooks: &[Hook], state_json: &[u8]) -> Vec<String> {
    hooks
        .iter()
        .filter_map(|h| run_one(kind, h, state_json).err())
        .map(|e| e.to_string())
        .collect()
}

fn run_one(kind: &'static str, hook: &Hook, state_json: &[u8]) -> Result<(), HookError> {
    let path = hook.path().display().to_string();
    let mut cmd = Command::new(hook.path());
    if let Some(args) = hook.args() {
        if let Some((argv0, rest)) = args.split_first() {
            cmd.arg0(argv0).args(rest);
        }
    }
    cmd.env_clear();
    for kv in hook.env().as_deref().unwrap_or_default() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped());
    let spawn_err = |source| HookError::Spawn {
        kind,
        path: path.clone(),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may exit without reading its stdin; EPIPE is not a failure then.
        let _ = stdin.write_all(state_json);
    }
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let status = loop {
        match child.try_wait().map_err(spawn_err)? {
            Some(status) => break status,
            None => match deadline {
                Some(d) if Instant::now() >= d => {
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
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    let stderr = stderr.trim();
    Err(HookError::Failed {
        kind,
        path,
        status: status.to_string(),
        stderr: if stderr.is_empty() {
            String::new()
        } else {
            format!(": {}", stderr.lines().last().unwrap_or_default())
        },
    })
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
        run("prestart", &[h], br#"{"id":"x"}"#).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), r#"{"id":"x"}"#);
        let _ = std::fs::remove_file(out);
    }

    #[test]
    fn failing_hook_names_kind_and_stderr() {
        let h = hook(&["sh", "-c", "echo boom >&2; exit 3"], None);
        let e = run("poststart", &[h], b"{}").unwrap_err().to_string();
        assert!(e.starts_with("poststart hook /bin/sh failed"), "{e}");
        assert!(e.ends_with("boom"), "{e}");
    }

    #[test]
    fn hook_timeout_kills() {
        let h = hook(&["sh", "-c", "exec sleep 30"], Some(1));
        let e = run("createRuntime", &[h], b"{}").unwrap_err();
        assert!(matches!(e, HookError::Timeout { .. }));
    }
}
