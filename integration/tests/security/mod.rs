//! The sandbox's attack suite (docs/security.md): each case runs one attack inside `husk exec
//! --sandbox`, as root and rootless, asserts containment on both sides (what the attacker saw,
//! and the host: listeners that received nothing, files unchanged, processes alive, nothing left
//! running) and prints what it tried and what stopped it (`cargo test ... -- --nocapture`).
//!
//! Two attackers: integration/attacks/escape.py, a Python sandbox-escape set run in the Debian 12
//! fixture (bundles/debian/make-rootfs, or $HUSK_DEBIAN_FIXTURE) with raw syscalls through ctypes;
//! and busybox shell + husk-probe on the busybox rootfs. The attack program reaches the sandbox
//! the way untrusted code does: copied into the workspace.
//!
//! This module holds the attack runner ([`Attack`], [`python`], [`busybox`]) and the host-side
//! fixtures; the cases are in net, host, privs, files and limits.
//!
//! The assertions hold whether `lo` is up or down in the sandbox and whatever uid a root sandbox
//! maps to: a connection to the host's 127.0.0.1 may fail with ENETUNREACH (lo down) or
//! ECONNREFUSED (lo up, nothing listens in the new netns), and it is the host listener that must
//! have received nothing.

use crate::harness::{host, Ctx, Launch, Mode, Out, DEADLINE};
use serde_json::{Map, Value};
use std::fs;
use std::io::ErrorKind;
use std::net::{TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod files;
mod host;
mod limits;
mod net;
mod privs;
mod state;

// --- the attack run and its report ------------------------------------------------------------

/// One attempt of an attack: what, whether it worked, the errno when not.
#[derive(Debug)]
struct Try {
    what: String,
    ok: bool,
    errno: String,
    value: Value,
}

/// A finished attack: the attempts, the facts it reported, husk's record.
struct Attack {
    label: String,
    tries: Vec<Try>,
    facts: Map<String, Value>,
    record: Value,
    out: Out,
}

impl Attack {
    fn parse(label: String, out: Out) -> Attack {
        let record: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{label}: no result record ({e}): {out}"));
        let text = record["stdout"].as_str().unwrap_or_default().to_string();
        let mut tries = Vec::new();
        let mut facts = Map::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("TRY|") {
                tries.push(shell_try(rest));
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if let Some(name) = v["fact"].as_str() {
                facts.insert(name.to_string(), v["value"].clone());
            } else if let Some(what) = v["try"].as_str() {
                tries.push(Try {
                    what: what.to_string(),
                    ok: v["ok"] == true,
                    errno: v["errno"].as_str().unwrap_or_default().to_string(),
                    value: v["value"].clone(),
                });
            } else if let Some(op) = v["op"].as_str() {
                // husk-probe's one-line results.
                let obj = v["path"].as_str().or(v["name"].as_str()).unwrap_or("");
                tries.push(Try {
                    what: format!("{op} {obj}"),
                    ok: v["ok"] == true,
                    errno: v["error"].as_str().unwrap_or_default().to_string(),
                    value: v.clone(),
                });
            }
        }
        Attack {
            label,
            tries,
            facts,
            record,
            out,
        }
    }

    /// Every try whose description starts with `prefix` (at least one) failed with one of
    /// `errnos`; prints each with `why`.
    #[track_caller]
    fn blocked(&self, prefix: &str, errnos: &[&str], why: &str) {
        let hits: Vec<&Try> = self
            .tries
            .iter()
            .filter(|t| t.what.starts_with(prefix))
            .collect();
        assert!(
            !hits.is_empty(),
            "{}: no try {prefix:?}: {}",
            self.label,
            self.dump()
        );
        for t in hits {
            assert!(
                !t.ok && errnos.contains(&t.errno.as_str()),
                "{}: ESCAPED or unexpected: {} -> ok={} errno={} ({}), want one of {errnos:?}\n{}",
                self.label,
                t.what,
                t.ok,
                t.errno,
                t.value,
                self.dump()
            );
            println!("{}: {} → {}: {why}", self.label, t.what, t.errno);
        }
    }

    /// Like [`Attack::blocked`], for tries that may also succeed harmlessly (`harmless` says why).
    #[track_caller]
    fn blocked_or(&self, prefix: &str, errnos: &[&str], why: &str, harmless: &str) {
        for t in self.tries.iter().filter(|t| t.what.starts_with(prefix)) {
            if t.ok {
                println!("{}: {} → ok: {harmless}", self.label, t.what);
            } else {
                assert!(
                    errnos.contains(&t.errno.as_str()),
                    "{}: {} -> {} ({}), want one of {errnos:?}",
                    self.label,
                    t.what,
                    t.errno,
                    t.value
                );
                println!("{}: {} → {}: {why}", self.label, t.what, t.errno);
            }
        }
    }

    /// A fact the shell reported as a string, as a number.
    #[track_caller]
    fn number(&self, name: &str) -> u64 {
        let v = self.fact(name);
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{}: fact {name} = {v} is not a number", self.label))
    }

    #[track_caller]
    fn fact(&self, name: &str) -> &Value {
        self.facts
            .get(name)
            .unwrap_or_else(|| panic!("{}: no fact {name}: {}", self.label, self.dump()))
    }

    fn say(&self, what: impl std::fmt::Display) {
        println!("{}: {what}", self.label);
    }

    fn dump(&self) -> String {
        format!(
            "tries {:?}\nfacts {:?}\n{}",
            self.tries, self.facts, self.out
        )
    }
}

/// `TRY|cmd|rc|message` from the shell prelude.
fn shell_try(rest: &str) -> Try {
    let mut f = rest.splitn(3, '|');
    let what = f.next().unwrap_or_default().to_string();
    let rc: i32 = f.next().and_then(|r| r.trim().parse().ok()).unwrap_or(-1);
    let msg = f.next().unwrap_or_default().trim().to_string();
    Try {
        what,
        ok: rc == 0,
        errno: if rc == 0 {
            String::new()
        } else {
            errno_of(&msg)
        },
        value: Value::String(msg),
    }
}

/// The errno a busybox message names (strerror text).
fn errno_of(msg: &str) -> String {
    const TEXTS: &[(&str, &str)] = &[
        ("Operation not permitted", "EPERM"),
        // busybox mount's wording of EPERM.
        ("permission denied (are you root?)", "EPERM"),
        ("Read-only file system", "EROFS"),
        ("Permission denied", "EACCES"),
        ("No such file or directory", "ENOENT"),
        ("No such device or address", "ENXIO"),
        ("No such device", "ENODEV"),
        ("Network is unreachable", "ENETUNREACH"),
        ("Connection refused", "ECONNREFUSED"),
        ("Function not implemented", "ENOSYS"),
        ("No space left on device", "ENOSPC"),
        ("File too large", "EFBIG"),
        ("Invalid argument", "EINVAL"),
        ("Resource temporarily unavailable", "EAGAIN"),
        ("can't fork", "EAGAIN"),
    ];
    TEXTS
        .iter()
        .find(|(text, _)| msg.contains(text))
        .map_or_else(|| format!("rc!=0 ({msg})"), |(_, e)| e.to_string())
}

/// The shell helper busybox attacks use: `t CMD ARGS` reports one TRY line.
/// `f NAME VALUE` reports a fact (a string).
const PRELUDE: &str = r#"t() { m=$("$@" 2>&1 >/dev/null); r=$?; echo "TRY|$*|$r|$(echo $m)"; }
f() { printf '{"fact":"%s","value":"%s"}\n' "$1" "$(echo $2)"; }
"#;

/// The Debian 12 rootfs with python3 (built once per test binary, or $HUSK_DEBIAN_FIXTURE).
fn debian() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let dir = match std::env::var_os("HUSK_DEBIAN_FIXTURE") {
            Some(d) => PathBuf::from(d),
            None => {
                let script = host().bundles.join("debian/make-rootfs");
                let out = Command::new(&script)
                    .stderr(Stdio::inherit())
                    .output()
                    .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
                assert!(out.status.success(), "{} failed", script.display());
                PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
            }
        };
        let rootfs = dir.join("rootfs");
        assert!(
            rootfs.join("usr/bin/python3").exists(),
            "{} has no usr/bin/python3 (bundles/debian/make-rootfs)",
            rootfs.display()
        );
        rootfs
    })
}

/// The workspace (created once per case), owned by the runtime's user, holding escape.py.
fn workspace(t: &Ctx) -> PathBuf {
    let ws = t.dir.join("ws");
    if !ws.exists() {
        t.mkdir(&ws);
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("attacks/escape.py");
        let dst = ws.join("escape.py");
        fs::copy(&src, &dst).unwrap();
        t.give(&dst);
    }
    ws
}

fn label(t: &Ctx, name: &str) -> String {
    format!("[{}] {name}", t.mode)
}

/// `husk exec --sandbox --json --workspace WS FLAGS IMAGE CMD...` with `launch`'s fds.
fn sandboxed(t: &Ctx, image: &Path, cmd: &[&str], flags: &[&str], launch: &Launch) -> Out {
    let ws = workspace(t);
    let mut args = vec![
        "exec",
        "--sandbox",
        "--json",
        "--workspace",
        ws.to_str().unwrap(),
    ];
    args.extend_from_slice(flags);
    args.push(image.to_str().unwrap());
    args.extend_from_slice(cmd);
    t.spawn_with(&args, None, launch).wait()
}

/// escape.py ATTACK ARGS in the Debian rootfs.
fn python(t: &Ctx, attack: &str, args: &[&str], flags: &[&str]) -> Attack {
    python_with(t, attack, args, flags, &Launch::default())
}

fn python_with(t: &Ctx, attack: &str, args: &[&str], flags: &[&str], l: &Launch) -> Attack {
    let mut cmd = vec!["python3", "/workspace/escape.py", attack];
    cmd.extend_from_slice(args);
    let out = sandboxed(t, debian(), &cmd, flags, l);
    let a = Attack::parse(label(t, attack), out);
    assert!(
        !a.record["stderr"]
            .as_str()
            .unwrap_or_default()
            .contains("Traceback"),
        "{}: the attack program crashed: {}",
        a.label,
        a.dump()
    );
    a
}

/// A busybox shell script (with the `t` helper) on the busybox rootfs.
fn busybox(t: &Ctx, name: &str, script: &str, flags: &[&str]) -> Attack {
    let script = format!("{PRELUDE}{script}");
    let out = sandboxed(
        t,
        &host().rootfs,
        &["sh", "-c", &script],
        flags,
        &Launch::default(),
    );
    Attack::parse(label(t, name), out)
}

// --- host-side fixtures ------------------------------------------------------------------------

/// A process on the host, running as the sandbox's user (root, or the rootless user), with a
/// marker in its command line; killed on drop.
struct HostProc {
    child: Child,
    marker: String,
}

impl HostProc {
    fn start(t: &Ctx, what: &str) -> HostProc {
        let marker = format!("husk-sec-{}", t.id(what));
        let script = format!("sleep 600; : {marker}");
        let mut cmd = match (t.mode, &host().user) {
            (Mode::Rootless, Some((uid, gid, _))) if host().euid == 0 => {
                let mut c = Command::new("setpriv");
                c.args([
                    format!("--reuid={uid}"),
                    format!("--regid={gid}"),
                    "--clear-groups".into(),
                    "sh".into(),
                ]);
                c
            }
            _ => Command::new("sh"),
        };
        // Its own process group, so a kill(-pid) that got out would hit this group only.
        let child = cmd
            .args(["-c", &script])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let p = HostProc { child, marker };
        let pid = p.pid();
        t.wait_for("the host process", || {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&p.marker))
        });
        p
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Running, not a zombie, not traced.
    fn alive(&mut self) -> bool {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        self.child.try_wait().unwrap().is_none()
            && !status.contains("State:\tZ")
            && status.contains("TracerPid:\t0\n")
    }
}

impl Drop for HostProc {
    fn drop(&mut self) {
        // The whole group: the shell's `sleep` child too (killing only the shell would leave it).
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

#[track_caller]
fn assert_no_tcp_client(l: &TcpListener, what: &str) {
    l.set_nonblocking(true).unwrap();
    match l.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("{what}: the host listener got a connection: {other:?}"),
    }
}

#[track_caller]
fn assert_no_datagram(s: &UdpSocket, what: &str) {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    match s.recv_from(&mut buf) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("{what}: the host socket received {other:?}"),
    }
}

/// Host processes in pid namespace `ns` ("pid:[N]"), polled until none are left (bounded).
fn assert_pidns_empty(t: &Ctx, ns: &str, what: &str) {
    let members = || -> Vec<String> {
        fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
            .filter(|e| {
                fs::read_link(e.path().join("ns/pid")).is_ok_and(|l| l.to_string_lossy() == ns)
            })
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let start = Instant::now();
    while !members().is_empty() {
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: processes of the sandbox's pid namespace {ns} outlived husk: {:?}",
            members()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    t.assert_nothing_left();
}

/// The host's main IPv4 address (the source of its default route), if it has one.
fn host_ipv4() -> Option<String> {
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("10.255.255.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then(|| ip.to_string())
}

fn sha(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}
