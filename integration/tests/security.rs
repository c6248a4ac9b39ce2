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
//! The assertions hold whether `lo` is up or down in the sandbox and whatever uid a root sandbox
//! maps to: a connection to the host's 127.0.0.1 may fail with ENETUNREACH (lo down) or
//! ECONNREFUSED (lo up, nothing listens in the new netns), and it is the host listener that must
//! have received nothing.

use crate::both;
use crate::harness::{host, Ctx, Launch, Mode, Out, DEADLINE};
use serde_json::{Map, Value};
use std::fs;
use std::io::ErrorKind;
use std::net::{TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

both!(
    // network
    net_tcp_to_host_loopback,
    net_udp_to_host_loopback,
    net_dns_lookup_and_exfiltration,
    net_tcp_to_other_addresses,
    net_unix_sockets_of_the_host,
    net_raw_sockets_and_interface_config,
    // host files, processes, ipc
    read_host_secret_files,
    read_host_proc,
    see_host_processes,
    signal_host_processes,
    ptrace_host_process,
    host_sysv_ipc,
    // privileges and kernel interfaces
    setuid_and_file_capabilities,
    setid_files_planted_in_the_workspace,
    keyctl_keyrings,
    bpf_programs,
    perf_event_open_counters,
    kernel_module_loading,
    mount_and_unmask,
    unshare_setns_user_namespaces,
    chroot_and_pivot_root,
    open_by_handle_at_shocker,
    kernel_log_kexec_io_ports,
    clock_setting,
    hostname_of_the_host,
    // writes outside the workspace
    write_outside_the_workspace,
    write_proc_sys_and_sysrq,
    write_sys,
    dev_mem_kmem_and_block_devices,
    cgroup_escape,
    proc_self_exe_overwrite,
    leaked_fds,
    tty_injection_through_stdin,
    core_dump,
    symlink_swapped_result_file,
    symlink_in_the_default_workspace,
    // resources and supervision
    rlimits_above_the_hard_limit,
    fork_bomb,
    memory_bomb,
    tmpfs_fill,
    output_flood,
    timeout_evasion_double_fork,
    timeout_evasion_setsid,
);

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
        let child = cmd
            .args(["-c", &script])
            .stdin(Stdio::null())
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
        let _ = self.child.kill();
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

// --- network -----------------------------------------------------------------------------------

const NO_NET: &[&str] = &[
    "ENETUNREACH",
    "ECONNREFUSED",
    "EADDRNOTAVAIL",
    "EHOSTUNREACH",
];

fn net_tcp_to_host_loopback(t: &Ctx) {
    let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let v6 = TcpListener::bind("[::1]:0").ok();
    let mut targets = vec![format!("127.0.0.1:{}", v4.local_addr().unwrap().port())];
    if let Some(l) = &v6 {
        targets.push(format!("[::1]:{}", l.local_addr().unwrap().port()));
    }
    let args: Vec<&str> = targets.iter().map(String::as_str).collect();
    let a = python(t, "net_tcp", &args, &[]);
    a.blocked(
        "tcp connect",
        NO_NET,
        "new network namespace: its loopback is not the host's",
    );
    assert_no_tcp_client(&v4, &a.label);
    if let Some(l) = &v6 {
        assert_no_tcp_client(l, &a.label);
    }
    a.say("host listeners on 127.0.0.1/::1 accepted nothing");
}

fn net_udp_to_host_loopback(t: &Ctx) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = format!("127.0.0.1:{}", s.local_addr().unwrap().port());
    let a = python(t, "net_udp", &[&target], &[]);
    a.blocked_or(
        "udp sendto",
        NO_NET,
        "new network namespace",
        "delivered to the sandbox's own loopback, not the host's",
    );
    assert_no_datagram(&s, &a.label);
    a.say("host UDP socket on 127.0.0.1 received nothing");
}

fn net_dns_lookup_and_exfiltration(t: &Ctx) {
    let fake_dns = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut servers = vec![format!(
        "127.0.0.1:{}",
        fake_dns.local_addr().unwrap().port()
    )];
    // The host's real resolvers, as the code might guess them.
    let resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    for ns in resolv
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .map(str::trim)
        .filter(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
    {
        servers.push(format!("{ns}:53"));
    }
    servers.push("8.8.8.8:53".into());
    let mut args = vec!["deb.debian.org"];
    args.extend(servers.iter().map(String::as_str));
    let a = python(t, "net_dns", &args, &[]);
    a.blocked(
        "getaddrinfo",
        &["EAI"],
        "no resolv.conf or hosts from the host, no network",
    );
    a.blocked(
        "dns query",
        &["ENETUNREACH", "ETIMEDOUT", "ECONNREFUSED"],
        "new empty network namespace: no route to any resolver",
    );
    assert_no_datagram(&fake_dns, &a.label);
    a.say("the host's fake resolver on 127.0.0.1 received no query");
}

fn net_tcp_to_other_addresses(t: &Ctx) {
    let any = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = any.local_addr().unwrap().port();
    let mut targets = vec![
        "1.1.1.1:443".to_string(),
        "8.8.8.8:53".into(),
        "169.254.169.254:80".into(),
        "10.0.2.2:80".into(),
        "[2001:4860:4860::8888]:443".into(),
    ];
    if let Some(ip) = host_ipv4() {
        targets.push(format!("{ip}:{port}"));
    }
    let args: Vec<&str> = targets.iter().map(String::as_str).collect();
    let a = python(t, "net_tcp", &args, &[]);
    a.blocked(
        "tcp connect",
        NO_NET,
        "new network namespace: no interface but lo, no route",
    );
    assert_no_tcp_client(&any, &a.label);
    a.say("host listener on 0.0.0.0 (reached via the host's address) accepted nothing");
}

fn net_unix_sockets_of_the_host(t: &Ctx) {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("husk-sec-{}", t.id("abs"));
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    let a = python(
        t,
        "net_unix",
        &[
            &name,
            "/run/docker.sock",
            "/var/run/dbus/system_bus_socket",
            "/run/containerd/containerd.sock",
        ],
        &[],
    );
    a.blocked(
        "unix connect @",
        &["ECONNREFUSED"],
        "abstract sockets belong to the network namespace",
    );
    a.blocked(
        "unix connect /",
        &["ENOENT"],
        "no host path is bound but the workspace",
    );
    listener.set_nonblocking(true).unwrap();
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == ErrorKind::WouldBlock),
        "{}: the host's abstract socket got a connection",
        a.label
    );
    a.say("host abstract socket accepted nothing");
}

fn net_raw_sockets_and_interface_config(t: &Ctx) {
    let a = python(t, "net_raw", &[], &[]);
    a.blocked(
        "socket(",
        &["EPERM"],
        "no CAP_NET_RAW (no capabilities at all)",
    );
    a.blocked("ioctl(", &["EPERM"], "no CAP_NET_ADMIN");
    assert_eq!(
        a.fact("interfaces"),
        &serde_json::json!(["lo"]),
        "{}",
        a.dump()
    );
    a.say("interfaces: lo only");
}

// --- host files, processes, ipc ----------------------------------------------------------------

fn read_host_secret_files(t: &Ctx) {
    let marker = format!("husk-sec-secret-{}", t.id("home"));
    let home = match (t.mode, &host().user) {
        (Mode::Rootless, Some((_, _, home))) => PathBuf::from(home),
        _ => PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())),
    };
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.0);
        }
    }
    let secret = home.join(&marker);
    fs::write(&secret, "secret\n").unwrap();
    let _cleanup = Remove(secret.clone());
    let a = python(t, "read_host", &[&marker], &[]);
    if let Some(tr) = a.tries.iter().find(|t| t.what == "read /etc/shadow") {
        if tr.ok {
            let host_shadow = fs::read("/etc/shadow").unwrap();
            let host_sum = sha256_hex(&host_shadow);
            assert_ne!(
                tr.value,
                host_sum.as_str(),
                "{}: read the host's /etc/shadow",
                a.label
            );
            a.say("read /etc/shadow → the image's own file (differs from the host's): read-only image root, no host /etc");
        } else {
            a.say(format!(
                "read /etc/shadow → {}: the image's file, not readable by this uid",
                tr.errno
            ));
        }
    }
    assert_eq!(a.fact("HOME"), "/workspace", "{}", a.dump());
    assert_eq!(
        a.fact("marker_found"),
        &serde_json::json!([]),
        "{}",
        a.dump()
    );
    a.say(format!(
        "searched / for {} (in the caller's home {}) → not found: no host path but the workspace is bound; HOME=/workspace",
        marker,
        home.display()
    ));
}

/// sha256 as hex, through the host's sha256sum (no hashing crate in the tests).
fn sha256_hex(data: &[u8]) -> String {
    use std::io::Write;
    let mut c = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(data).unwrap();
    let out = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn read_host_proc(t: &Ctx) {
    let me = std::process::id().to_string();
    let a = python(t, "proc_host", &[&me], &[]);
    // The program is pid 1 (an init in front of it would make 2).
    let pids = a.fact("pids").as_array().unwrap();
    assert!(
        pids.len() <= 2 && pids.contains(&Value::from(1)),
        "{}",
        a.dump()
    );
    a.blocked(
        &format!("read /proc/{me}/"),
        &["ENOENT"],
        "new pid namespace: the host's pids do not exist here",
    );
    for masked in [
        "read /proc/kcore",
        "read /proc/sched_debug",
        "list /proc/scsi",
    ] {
        a.blocked_or(
            masked,
            &["ENOENT", "EACCES", "EPERM"],
            "masked path",
            "masked (empty)",
        );
    }
    for tr in a.tries.iter().filter(|t| t.what.starts_with("read /proc/")) {
        if tr.ok {
            assert_eq!(tr.value, 0, "{}: {} is not masked", a.label, tr.what);
        }
    }
    for tr in a.tries.iter().filter(|t| t.what.starts_with("list /proc/")) {
        if tr.ok {
            assert_eq!(
                tr.value,
                serde_json::json!([]),
                "{}: {} is not masked",
                a.label,
                tr.what
            );
        }
    }
    let k = a.fact("kallsyms_first_address").as_str().unwrap_or("0");
    assert!(
        k.chars().all(|c| c == '0'),
        "{}: kernel addresses: {k}",
        a.label
    );
    a.say("/proc shows the sandbox's own pids only; masked paths empty; kallsyms addresses zeroed");
}

fn see_host_processes(t: &Ctx) {
    let p = HostProc::start(t, "seen");
    let a = python(t, "host_procs", &[&p.marker], &[]);
    assert_eq!(
        a.fact("marker_seen"),
        &serde_json::json!([]),
        "{}",
        a.dump()
    );
    let alive = a.fact("kill0_alive").as_array().unwrap();
    assert!(
        alive.len() <= 2 && alive.contains(a.fact("own_pid")),
        "{}",
        a.dump()
    );
    a.say(format!(
        "scanned /proc and kill(pid, 0) for pids 1..65535 for the host's `{}` (pid {}) → saw only itself: new pid namespace",
        p.marker,
        p.pid()
    ));
}

fn signal_host_processes(t: &Ctx) {
    let mut p = HostProc::start(t, "victim");
    let pid = p.pid().to_string();
    let a = python(t, "signal_host", &[&pid], &[]);
    for prefix in [format!("kill({pid},"), format!("kill(-{pid},")] {
        a.blocked(
            &prefix,
            &["ESRCH"],
            "new pid namespace: host pids do not exist here",
        );
    }
    a.blocked("pidfd_open", &["ESRCH"], "new pid namespace");
    a.blocked_or(
        "kill(-1",
        &["ESRCH"],
        "nothing else in the pid namespace",
        "reaches only the sandbox's own processes",
    );
    assert!(p.alive(), "{}: the host process {pid} died", a.label);
    a.say(format!("host process {pid} (same uid) survived"));
}

fn ptrace_host_process(t: &Ctx) {
    let mut p = HostProc::start(t, "traced");
    let pid = p.pid().to_string();
    let a = python(t, "ptrace_host", &[&pid], &[]);
    a.blocked(
        "ptrace(",
        &["ESRCH", "EPERM"],
        "new pid namespace (and seccomp/no CAP_SYS_PTRACE)",
    );
    a.blocked("process_vm_readv", &["ESRCH", "EPERM"], "new pid namespace");
    a.blocked("open /proc/", &["ENOENT"], "new pid namespace");
    assert!(
        p.alive(),
        "{}: host process {pid} died or is traced",
        a.label
    );
    a.say(format!("host process {pid}: alive, TracerPid 0"));
}

fn host_sysv_ipc(t: &Ctx) {
    let out = Command::new("ipcmk")
        .args(["-M", "4096", "-p", "0666"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let id: String = text.chars().filter(char::is_ascii_digit).collect();
    struct Rm(String);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = Command::new("ipcrm").args(["-m", &self.0]).status();
        }
    }
    let _rm = Rm(id.clone());
    let shm = fs::read_to_string("/proc/sysvipc/shm").unwrap();
    let key = shm
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(1) == Some(&id.as_str()))
        .map(|f| f[0].to_string())
        .unwrap_or_else(|| panic!("host segment {id} not in /proc/sysvipc/shm ({text})"));
    let a = python(t, "ipc", &[&key], &[]);
    a.blocked(
        "shmget",
        &["ENOENT"],
        "new ipc namespace: the host's segment (mode 0666) does not exist here",
    );
    a.blocked("msgget", &["ENOENT"], "new ipc namespace");
    assert_eq!(
        a.fact("sysvipc_shm"),
        &serde_json::json!([]),
        "{}",
        a.dump()
    );
}

// --- privileges and kernel interfaces ------------------------------------------------------

fn setuid_and_file_capabilities(t: &Ctx) {
    let ws = workspace(t);
    let probe = host().rootfs.join("bin/husk-probe");
    let suid = ws.join("suid");
    fs::copy(&probe, &suid).unwrap();
    std::os::unix::fs::chown(&suid, Some(0), Some(0)).unwrap();
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).unwrap();
    let fcap = ws.join("fcap");
    fs::copy(&probe, &fcap).unwrap();
    let setcap = Command::new("setcap")
        .args(["cap_sys_admin,cap_dac_override,cap_setuid+ep"])
        .arg(&fcap)
        .status()
        .unwrap();
    assert!(setcap.success(), "setcap (libcap2-bin) failed");
    let a = python(t, "suid", &["/workspace/suid", "/workspace/fcap"], &[]);
    let caller = a.fact("caller").clone();
    let fcap = a.fact("exec /workspace/fcap");
    if fcap
        .as_str()
        .is_some_and(|s| s.contains("Operation not permitted"))
    {
        a.say("exec /workspace/fcap (cap_sys_admin,cap_dac_override,cap_setuid+ep) → EPERM: the kernel refuses a +ep file whose capabilities the empty bounding set cannot grant");
    }
    for (exe, what) in [
        ("exec /workspace/suid", "a setuid-root file"),
        (
            "exec /workspace/fcap",
            "a cap_sys_admin,cap_dac_override,cap_setuid+ep file",
        ),
    ] {
        let r = a.fact(exe);
        if exe.ends_with("fcap") && r.is_string() {
            continue;
        }
        assert!(r.is_object(), "{}: {exe}: {r}", a.label);
        assert_eq!(
            r["euid"], caller["euid"],
            "{}: {exe} changed euid: {r}",
            a.label
        );
        assert_eq!(
            r["effective"],
            serde_json::json!([]),
            "{}: {exe}: {r}",
            a.label
        );
        assert_eq!(
            r["permitted"],
            serde_json::json!([]),
            "{}: {exe}: {r}",
            a.label
        );
        assert_eq!(r["no_new_privs"], 1, "{}: {r}", a.label);
        a.say(format!(
            "{exe} ({what}) → euid {} and no capabilities: nosuid workspace, no_new_privs, empty bounding set",
            r["euid"]
        ));
    }
    let ws_opts = a.fact("workspace_mount").as_str().unwrap_or_default();
    assert!(
        ws_opts.contains("nosuid") && ws_opts.contains("nodev"),
        "{}: /workspace is mounted {ws_opts}",
        a.label
    );
}

/// Root in the sandbox is uid 0 on the host's filesystem (until root sandboxes get a user
/// namespace): a setuid copy of a binary in the workspace would be a setuid-root binary on the
/// host for any local user who can reach the directory.
fn setid_files_planted_in_the_workspace(t: &Ctx) {
    let a = python(t, "setid_files", &[], &[]);
    for prefix in ["chmod(rootshell, 0", "fchmod(", "fchmodat(", "fchmodat2("] {
        a.blocked(
            prefix,
            &["EPERM", "ENOSYS"],
            "seccomp: the chmod family may not set S_ISUID/S_ISGID",
        );
    }
    let control = a
        .tries
        .iter()
        .find(|t| t.what.starts_with("control"))
        .unwrap();
    assert!(control.ok, "{}: plain chmod refused: {}", a.label, a.dump());
    let mut setid = Vec::new();
    for e in fs::read_dir(workspace(t)).unwrap().flatten() {
        let m = e.path().symlink_metadata().unwrap();
        if m.mode() & 0o6000 != 0 && (m.is_dir() || m.len() > 0) {
            setid.push(format!(
                "{} {:o} {} bytes",
                e.path().display(),
                m.mode(),
                m.len()
            ));
        }
    }
    assert!(
        setid.is_empty(),
        "{}: ESCAPED: setuid/setgid files on the host: {setid:?}\n{}",
        a.label,
        a.dump()
    );
    a.say(format!(
        "open(O_CREAT, 04755)/mknod + write → the kernel cleared the bits (no CAP_FSETID); on the host: {}",
        a.fact("modes")
    ));
}

fn keyctl_keyrings(t: &Ctx) {
    let a = python(t, "keyctl", &[], &[]);
    a.blocked(
        "",
        &["EPERM"],
        "seccomp (add_key, keyctl, request_key refused): the keyrings are not namespaced",
    );
}

fn bpf_programs(t: &Ctx) {
    let a = python(t, "bpf", &[], &[]);
    a.blocked("bpf(", &["EPERM"], "seccomp (bpf refused), no CAP_BPF");
}

fn perf_event_open_counters(t: &Ctx) {
    let a = python(t, "perf", &[], &[]);
    a.blocked(
        "perf_event_open",
        &["EPERM"],
        "seccomp (perf_event_open refused), no CAP_PERFMON",
    );
}

fn kernel_module_loading(t: &Ctx) {
    let a = python(t, "modules", &[], &[]);
    a.blocked("init_module", &["EPERM"], "seccomp, no CAP_SYS_MODULE");
    a.blocked("finit_module", &["EPERM"], "seccomp, no CAP_SYS_MODULE");
    a.blocked("delete_module", &["EPERM"], "seccomp, no CAP_SYS_MODULE");
    a.blocked(
        "write /proc/sys/kernel/modprobe",
        &["EROFS", "EACCES", "ENOENT"],
        "/proc/sys read-only",
    );
}

fn mount_and_unmask(t: &Ctx) {
    let a = python(t, "mounts", &[], &[]);
    a.blocked(
        "mount",
        &["EPERM"],
        "seccomp (mount refused), no CAP_SYS_ADMIN",
    );
    a.blocked(
        "umount2",
        &["EPERM"],
        "seccomp (umount2 refused): masked paths stay masked",
    );
    a.blocked(
        "fsopen",
        &["EPERM", "ENOSYS"],
        "seccomp (new mount API refused)",
    );
    a.blocked("open_tree", &["EPERM", "ENOSYS"], "seccomp");
    assert_eq!(a.fact("mountinfo_unchanged"), true, "{}", a.dump());
}

fn unshare_setns_user_namespaces(t: &Ctx) {
    let a = python(t, "namespaces", &[], &[]);
    a.blocked(
        "unshare(",
        &["EPERM"],
        "seccomp (unshare refused; no user namespace to regain capabilities in)",
    );
    a.blocked(
        "clone(CLONE_NEWUSER)",
        &["EPERM"],
        "seccomp (clone with namespace flags refused)",
    );
    a.blocked(
        "clone3",
        &["ENOSYS", "EPERM"],
        "seccomp (clone3 → ENOSYS: its flags cannot be inspected)",
    );
    a.blocked(
        "setns(",
        &["EPERM"],
        "seccomp (setns refused), no CAP_SYS_ADMIN",
    );
}

fn chroot_and_pivot_root(t: &Ctx) {
    let a = busybox(
        t,
        "chroot_pivot_root",
        "mkdir -p /tmp/new/old; t chroot /tmp /bin/true; t chroot / /bin/true; \
         t pivot_root /tmp/new /tmp/new/old; husk-probe syscall 161 0",
        &[],
    );
    a.blocked("chroot", &["EPERM"], "no CAP_SYS_CHROOT (no capabilities)");
    a.blocked("pivot_root", &["EPERM"], "seccomp, no CAP_SYS_ADMIN");
    a.blocked(
        "syscall 161",
        &["EPERM", "EFAULT"],
        "chroot(NULL): no CAP_SYS_CHROOT",
    );
}

fn open_by_handle_at_shocker(t: &Ctx) {
    let a = python(t, "shocker", &[], &[]);
    a.blocked(
        "open_by_handle_at",
        &["EPERM"],
        "seccomp, no CAP_DAC_READ_SEARCH (the 2014 'shocker' escape)",
    );
}

fn kernel_log_kexec_io_ports(t: &Ctx) {
    let a = python(t, "kernel_interfaces", &[], &[]);
    a.blocked("syslog", &["EPERM"], "seccomp (syslog refused): no dmesg");
    a.blocked("kexec_load", &["EPERM"], "seccomp, no CAP_SYS_BOOT");
    a.blocked("iopl", &["EPERM"], "seccomp, no CAP_SYS_RAWIO");
    a.blocked("ioperm", &["EPERM"], "seccomp, no CAP_SYS_RAWIO");
    a.blocked("swapoff", &["EPERM"], "seccomp, no CAP_SYS_ADMIN");
    a.blocked("acct", &["EPERM"], "seccomp, no CAP_SYS_PACCT");
    a.blocked("quotactl", &["EPERM"], "seccomp");
    a.blocked(
        "io_uring_setup",
        &["EPERM", "ENOSYS"],
        "seccomp (io_uring refused)",
    );
    a.blocked("userfaultfd", &["EPERM"], "seccomp (userfaultfd refused)");
}

fn clock_setting(t: &Ctx) {
    let a = python(t, "clock", &[], &[]);
    a.blocked(
        "clock_settime",
        &["EPERM"],
        "no CAP_SYS_TIME (and seccomp): the clock is the host's",
    );
    a.blocked("settimeofday", &["EPERM"], "no CAP_SYS_TIME");
    a.blocked(
        "adjtimex(ADJ",
        &["EPERM"],
        "no CAP_SYS_TIME (reading is allowed)",
    );
    a.blocked("clock_adjtime", &["EPERM"], "no CAP_SYS_TIME");
    a.blocked("open /dev/rtc0", &["ENOENT"], "minimal /dev");
}

fn hostname_of_the_host(t: &Ctx) {
    let before = nix::unistd::gethostname().unwrap();
    let evil = format!("evil-{}", t.id("uts"));
    let script = format!(
        "t hostname {evil}; husk-probe write /proc/sys/kernel/hostname {evil}; \
         husk-probe write /proc/sys/kernel/domainname {evil}; f hostname \"$(hostname)\""
    );
    let a = busybox(t, "hostname", &script, &[]);
    a.blocked(
        "hostname",
        &["EPERM"],
        "no CAP_SYS_ADMIN (and its own uts namespace anyway)",
    );
    a.blocked(
        "write /proc/sys/kernel/",
        &["EROFS", "EACCES"],
        "/proc/sys read-only",
    );
    let inside = a.fact("hostname").as_str().unwrap().to_string();
    assert_ne!(inside, evil, "{}", a.dump());
    assert_ne!(
        inside,
        before.to_string_lossy(),
        "{}: sees the host's hostname",
        a.label
    );
    assert_eq!(nix::unistd::gethostname().unwrap(), before, "{}", a.label);
    a.say(format!(
        "hostname inside {inside:?}, the host's {:?} unchanged: new uts namespace",
        before
    ));
}

// --- writes outside the workspace --------------------------------------------------------------

fn write_outside_the_workspace(t: &Ctx) {
    let tag = t.id("w");
    let targets = [
        format!("/evil-{tag}"),
        format!("/usr/evil-{tag}"),
        format!("/etc/evil-{tag}"),
        format!("/bin/evil-{tag}"),
        format!("/var/evil-{tag}"),
        format!("/root/evil-{tag}"),
        "/etc/passwd".to_string(),
        "/bin/busybox".to_string(),
    ];
    let mut script = String::new();
    for p in &targets {
        script += &format!("husk-probe write {p} pwned; ");
    }
    script += &format!(
        "husk-probe write /tmp/evil-{tag} x; husk-probe write /dev/evil-{tag} x; \
         husk-probe write /workspace/ok-{tag} x; t mknod /tmp/sda-{tag} b 8 0"
    );
    let rootfs_before = fs::read_dir(&host().rootfs).unwrap().count();
    let busybox_before = sha(&host().rootfs.join("bin/busybox"));
    let a = busybox(t, "write_outside", &script, &[]);
    for p in &targets {
        a.blocked(
            &format!("write {p}"),
            &["EROFS", "EACCES", "EPERM"],
            "read-only image root",
        );
    }
    // /tmp and /dev are the sandbox's own tmpfs: writable inside, never the host's.
    for (inside, host_path) in [
        (format!("write /tmp/evil-{tag}"), format!("/tmp/evil-{tag}")),
        (format!("write /dev/evil-{tag}"), format!("/dev/evil-{tag}")),
    ] {
        assert!(
            !Path::new(&host_path).exists(),
            "{}: {host_path} on the host",
            a.label
        );
        if let Some(tr) = a.tries.iter().find(|t| t.what == inside) {
            a.say(format!(
                "{inside} → {}: the sandbox's own tmpfs; host {host_path} absent",
                if tr.ok { "ok" } else { &tr.errno }
            ));
        }
    }
    a.blocked("mknod", &["EPERM"], "no CAP_MKNOD");
    assert!(
        workspace(t).join(format!("ok-{tag}")).exists(),
        "{}: the workspace is not writable: {}",
        a.label,
        a.dump()
    );
    for p in &targets[..6] {
        let on_host = host().rootfs.join(p.trim_start_matches('/'));
        assert!(
            !on_host.exists(),
            "{}: {} written",
            a.label,
            on_host.display()
        );
    }
    assert_eq!(
        fs::read_dir(&host().rootfs).unwrap().count(),
        rootfs_before,
        "{}",
        a.label
    );
    assert!(
        sha(&host().rootfs.join("bin/busybox")) == busybox_before,
        "{}: busybox changed",
        a.label
    );
    a.say("image unchanged; only the workspace got a file");
}

fn write_proc_sys_and_sysrq(t: &Ctx) {
    let knob = "/proc/sys/kernel/printk_ratelimit";
    let before = fs::read_to_string(knob).unwrap();
    let other = if before.trim() == "7" { "8" } else { "7" };
    let script = format!(
        "husk-probe write {knob} {other}; husk-probe open /proc/sysrq-trigger w; \
         husk-probe open /proc/sys/kernel/sysrq w; husk-probe open /proc/sys/kernel/core_pattern w; \
         husk-probe open /proc/sys/vm/overcommit_memory w; husk-probe open /proc/sys/fs/binfmt_misc/register w"
    );
    let a = busybox(t, "proc_sys", &script, &[]);
    let after = fs::read_to_string(knob).unwrap();
    if after != before {
        let _ = fs::write(knob, &before);
        panic!(
            "{}: ESCAPED: the sandbox changed the host's {knob}",
            a.label
        );
    }
    a.blocked(
        "write /proc/sys",
        &["EROFS", "EACCES"],
        "/proc/sys is read-only (runc's readonlyPaths)",
    );
    a.blocked(
        "open /proc/sys/",
        &["EROFS", "EACCES", "ENOENT"],
        "/proc/sys is read-only",
    );
    a.blocked(
        "open /proc/sysrq-trigger",
        &["EROFS", "EACCES", "ENOENT"],
        "/proc/sysrq-trigger is read-only (or absent)",
    );
    a.say(format!("host {knob} unchanged ({})", before.trim()));
}

fn write_sys(t: &Ctx) {
    let script = "for p in /sys/kernel/uevent_helper /sys/kernel/mm/transparent_hugepage/enabled \
        /sys/class/net/lo/mtu /sys/power/state /sys/kernel/profiling /sys/module/printk/parameters/time \
        /sys/firmware/efi/efivars/x; do husk-probe open $p w; done; husk-probe write /sys/evil x";
    let a = busybox(t, "write_sys", script, &[]);
    a.blocked(
        "open /sys",
        &["EROFS", "EACCES", "ENOENT"],
        "sysfs mounted read-only; /sys/firmware masked",
    );
    a.blocked("write /sys", &["EROFS", "EACCES"], "sysfs read-only");
    assert!(
        a.tries.iter().any(|t| t.errno == "EROFS"),
        "{}: nothing hit the read-only sysfs: {}",
        a.label,
        a.dump()
    );
}

fn dev_mem_kmem_and_block_devices(t: &Ctx) {
    let mut devs = vec![
        "/dev/mem".to_string(),
        "/dev/kmem".into(),
        "/dev/port".into(),
        "/dev/kmsg".into(),
        "/dev/sda".into(),
        "/dev/vda".into(),
        "/dev/nvme0n1".into(),
        "/dev/loop0".into(),
        "/dev/loop-control".into(),
        "/dev/mapper/control".into(),
        "/dev/fuse".into(),
        "/dev/net/tun".into(),
    ];
    // The host's real disks, by name.
    for e in fs::read_dir("/sys/class/block")
        .into_iter()
        .flatten()
        .flatten()
    {
        devs.push(format!("/dev/{}", e.file_name().to_string_lossy()));
    }
    let mut script = String::new();
    for d in &devs {
        script += &format!("husk-probe open {d} r; ");
    }
    script += "t mknod /tmp/mem c 1 1; t mknod /dev/vda2 b 254 0; t devmem 0x1000; \
        echo x > /tmp/node 2>/dev/null; husk-probe open /proc/self/root/dev/mem r";
    let a = busybox(t, "dev_mem", &script, &[]);
    a.blocked(
        "open /dev/",
        &["ENOENT"],
        "minimal /dev: null, zero, full, random, urandom, tty, pts, shm only",
    );
    a.blocked(
        "mknod",
        &["EPERM"],
        "no CAP_MKNOD; /tmp and /dev/shm are nodev",
    );
    a.blocked_or(
        "devmem",
        &["ENOENT", "EPERM", "EACCES"],
        "no /dev/mem",
        "impossible",
    );
    assert!(
        !a.tries.iter().any(|t| t.what.starts_with("devmem") && t.ok),
        "{}: devmem read memory",
        a.label
    );
}

fn cgroup_escape(t: &Ctx) {
    let script = "f before \"$(cat /proc/self/cgroup)\"; \
        for f in /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/*/cgroup.procs /sys/fs/cgroup/*/tasks; do \
          [ -e \"$f\" ] && husk-probe write \"$f\" $$; done; \
        husk-probe write /sys/fs/cgroup/cgroup.procs $$; \
        mkdir -p /tmp/cg; t mount -t cgroup2 none /tmp/cg; \
        t mount -t cgroup -o memory,release_agent=/workspace/x none /tmp/cg; \
        f after \"$(cat /proc/self/cgroup)\"";
    let a = busybox(t, "cgroup_escape", script, &[]);
    a.blocked(
        "write /sys/fs/cgroup",
        &["EROFS", "ENOENT", "EACCES"],
        "no cgroupfs in the sandbox; /sys read-only",
    );
    a.blocked(
        "mount",
        &["EPERM"],
        "seccomp/no CAP_SYS_ADMIN: no cgroupfs (and no release_agent, CVE-2022-0492)",
    );
    assert_eq!(a.fact("before"), a.fact("after"), "{}", a.dump());
    a.say(format!("cgroup unchanged: {}", a.fact("after")));
}

fn proc_self_exe_overwrite(t: &Ctx) {
    let husk_before = sha(&host().runtime);
    let python_bin = debian().join("usr/bin/python3.11");
    let py_meta = fs::metadata(&python_bin)
        .ok()
        .map(|m| (m.mtime(), m.size()));
    let a = python(t, "exe_overwrite", &[], &[]);
    a.blocked(
        "open",
        &["ETXTBSY", "EROFS", "EACCES"],
        "the binary is running (ETXTBSY), the image is read-only, not the caller's file",
    );
    a.blocked_or(
        "reopen",
        &["ETXTBSY", "EROFS", "EACCES"],
        "same",
        "impossible",
    );
    assert!(
        sha(&host().runtime) == husk_before,
        "{}: husk changed",
        a.label
    );
    assert_eq!(
        fs::metadata(&python_bin)
            .ok()
            .map(|m| (m.mtime(), m.size())),
        py_meta,
        "{}",
        a.label
    );
    a.say(
        "no husk process is visible inside (its init is the program); husk and the image unchanged",
    );
}

fn leaked_fds(t: &Ctx) {
    let hostdir = t.mkdir(&t.dir.join("host-only"));
    fs::write(hostdir.join("host-secret"), "x").unwrap();
    let fds = (3..10)
        .map(|n| {
            (
                n,
                std::os::fd::OwnedFd::from(fs::File::open(&hostdir).unwrap()),
            )
        })
        .collect();
    let launch = Launch {
        fds,
        ..Launch::default()
    };
    let a = python_with(t, "leaked_fds", &[], &[], &launch);
    assert_eq!(
        a.fact("open_fds"),
        &serde_json::json!([0, 1, 2]),
        "{}",
        a.dump()
    );
    for (n, target) in a.fact("targets").as_object().unwrap() {
        let tg = target.as_str().unwrap();
        assert!(
            tg == "/dev/null" || tg.starts_with("pipe:"),
            "{}: fd {n} is {tg}",
            a.label
        );
    }
    a.blocked(
        "openat(fd 3",
        &["EBADF"],
        "husk closes every fd but stdio before exec",
    );
    a.say("husk was started with a host directory on fds 3..9 → the program has 0, 1, 2 only (/dev/null and husk's pipes)");
}

/// husk's stdin is the caller's terminal (an interactive run): TIOCSTI would type commands into
/// the caller's shell for it to run after the sandbox ends.
fn tty_injection_through_stdin(t: &Ctx) {
    use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
    let pty = nix::pty::openpty(None, None).unwrap();
    let mut raw = tcgetattr(&pty.slave).unwrap();
    cfmakeraw(&mut raw);
    tcsetattr(&pty.slave, SetArg::TCSANOW, &raw).unwrap();
    let ours = pty.slave.try_clone().unwrap();
    // The caller's shell: a host session whose controlling terminal this is.
    let session = Command::new("setsid")
        .args(["--ctty", "sleep", "600"])
        .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .spawn()
        .unwrap();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let session = Kill(session);
    let sid = session.0.id();
    t.wait_for("the host session to own the terminal", || {
        // Field 7 of /proc/PID/stat: tty_nr, non-zero once it has a controlling terminal.
        fs::read_to_string(format!("/proc/{sid}/stat"))
            .ok()
            .and_then(|s| {
                let rest = s.rsplit_once(") ")?.1.to_string();
                rest.split_whitespace().nth(4).map(|v| v != "0")
            })
            .unwrap_or(false)
    });
    let launch = Launch {
        fds: vec![(0, pty.slave)],
        ..Launch::default()
    };
    let a = python_with(t, "tty_inject", &[], &[], &launch);
    assert_eq!(
        a.fact("isatty"),
        true,
        "{}: stdin is no terminal: {}",
        a.label,
        a.dump()
    );
    a.blocked(
        "ioctl(0, TIOCSTI",
        &["EPERM", "EIO"],
        "the program runs in its own session (setsid): the terminal is not its controlling tty",
    );
    a.blocked(
        "ioctl(0, TIOCSCTTY",
        &["EPERM"],
        "it is the caller's session's terminal; stealing needs CAP_SYS_ADMIN",
    );
    // Nothing reached the terminal's input queue.
    let flags = nix::fcntl::fcntl(ours.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL).unwrap();
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(ours.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(flags)).unwrap();
    let mut buf = [0u8; 64];
    match nix::unistd::read(ours.as_raw_fd(), &mut buf) {
        Err(nix::errno::Errno::EAGAIN) => {}
        other => panic!("{}: ESCAPED: the terminal got input: {other:?}", a.label),
    }
    a.say("the terminal's input queue is empty");
}

fn core_dump(t: &Ctx) {
    let a = python(t, "core_dump", &[], &[]);
    assert_eq!(
        a.fact("RLIMIT_CORE"),
        &serde_json::json!([0, 0]),
        "{}",
        a.dump()
    );
    a.blocked("prlimit64(RLIMIT_CORE", &["EPERM"], "hard RLIMIT_CORE 0");
    a.blocked(
        "open /proc/sys/kernel/core_pattern",
        &["EROFS", "EACCES"],
        "/proc/sys read-only: core_pattern cannot become a host-side pipe",
    );
    assert_eq!(a.fact("child_signal"), 6, "{}", a.dump());
    assert_eq!(a.fact("core_dumped"), false, "{}", a.dump());
    let cores: Vec<_> = fs::read_dir(workspace(t))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("core"))
        .collect();
    assert!(cores.is_empty(), "{}: core files {cores:?}", a.label);
    a.say("abort() in a child → SIGABRT, no core dumped, none in the workspace: RLIMIT_CORE 0");
}

fn symlink_swapped_result_file(t: &Ctx) {
    let ws = workspace(t);
    let victim = t.dir.join("victim.txt");
    fs::write(&victim, "precious\n").unwrap();
    // Rootless, husk runs as the test user: a victim it may write makes the attack real.
    t.give(&victim);
    let victim_dir = t.mkdir(&t.dir.join("victim-dir"));
    let out_dir = t.mkdir(&ws.join("out"));
    let result = ws.join("result.json");
    let nested = out_dir.join("result.json");
    let script = format!(
        "rm -f /workspace/result.json; ln -s {} /workspace/result.json; \
         rm -rf /workspace/out; ln -s {} /workspace/out; echo swapped",
        victim.display(),
        victim_dir.display()
    );
    for (path, what) in [(&result, "result.json"), (&nested, "out/result.json")] {
        let args = [
            "exec",
            "--sandbox",
            "--workspace",
            ws.to_str().unwrap(),
            "--result",
            path.to_str().unwrap(),
            host().rootfs.to_str().unwrap(),
            "sh",
            "-c",
            &script,
        ];
        let out = t.rt(&args);
        let l = label(t, "symlink_result");
        assert_eq!(
            fs::read_to_string(&victim).unwrap(),
            "precious\n",
            "{l}: {out}"
        );
        assert!(
            fs::read_dir(&victim_dir).unwrap().next().is_none(),
            "{l}: husk wrote into {}: {out}",
            victim_dir.display()
        );
        assert_eq!(out.code, 0, "{l}: {out}");
        assert!(out.stderr.contains("replaced"), "{l}: no warning: {out}");
        println!(
            "{l}: the program swapped {what} (--result) for a symlink to a host file/dir → husk exit {}; the victim untouched: husk opens --result before the program starts and writes through that fd",
            out.code
        );
        // Put the workspace back for the second round.
        let _ = fs::remove_file(&result);
        let _ = fs::remove_file(ws.join("out"));
        t.mkdir(&out_dir);
    }
}

fn symlink_in_the_default_workspace(t: &Ctx) {
    let victim_dir = t.mkdir(&t.dir.join("victim-dir"));
    fs::write(victim_dir.join("precious"), "x").unwrap();
    let script = format!(
        "ln -s {v} /workspace/link; mkdir /workspace/d; ln -s {v}/precious /workspace/d/f; \
         ln -s / /workspace/root; ls /workspace/link/ 2>&1; echo done",
        v = victim_dir.display()
    );
    // No --workspace: husk makes one and removes it afterwards.
    let out = t
        .rt(&[
            "exec",
            "--sandbox",
            host().rootfs.to_str().unwrap(),
            "sh",
            "-c",
            &script,
        ])
        .ok();
    let l = label(t, "default_workspace_symlinks");
    assert!(out.stdout.contains("done"), "{l}: {out}");
    assert!(
        !out.stdout.contains("precious"),
        "{l}: followed inside: {out}"
    );
    assert!(
        victim_dir.join("precious").exists(),
        "{l}: the cleanup followed a symlink: {out}"
    );
    println!("{l}: symlinks in the scratch workspace to a host dir, a host file and / → dangling inside (no such host path), and husk's cleanup removed the links, not their targets");
}

// --- resources and supervision -------------------------------------------------------------

fn rlimits_above_the_hard_limit(t: &Ctx) {
    let a = python(t, "rlimits", &[], &[]);
    a.blocked(
        "prlimit64(",
        &["EPERM"],
        "raising a hard limit needs CAP_SYS_RESOURCE",
    );
    assert_eq!(
        a.fact("RLIMIT_NOFILE"),
        &serde_json::json!([256, 256]),
        "{}",
        a.dump()
    );
    assert_eq!(
        a.fact("RLIMIT_CORE"),
        &serde_json::json!([0, 0]),
        "{}",
        a.dump()
    );
    assert_eq!(
        a.fact("RLIMIT_FSIZE"),
        &serde_json::json!([64 << 20, 64 << 20]),
        "{}",
        a.dump()
    );
}

fn fork_bomb(t: &Ctx) {
    let a = python(
        t,
        "fork_bomb",
        &["2"],
        &["--pids-limit", "24", "--timeout", "20s"],
    );
    let most = a.fact("max_processes").as_u64().unwrap();
    assert!(
        most <= 24,
        "{}: {most} processes under --pids-limit 24",
        a.label
    );
    a.blocked("fork() by pid 1", &["EAGAIN"], "the pids limit is reached");
    let by = &a.record["limits"]["pids"]["enforced_by"];
    assert_eq!(a.record["timed_out"], false, "{}", a.dump());
    assert_pidns_empty(t, a.fact("pidns").as_str().unwrap(), &a.label);
    a.say(format!(
        "a forking-forever bomb peaked at {most} processes (limit 24, enforced by {by}); pid 1 exited and the pid namespace took every bomb process with it"
    ));
}

fn memory_bomb(t: &Ctx) {
    let a = python(t, "memory_bomb", &["1024"], &["--memory", "64M"]);
    let limits = &a.record["limits"]["memory_bytes"];
    let got = a
        .facts
        .get("allocated_mb")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    assert!(
        got <= 64,
        "{}: allocated {got} MB under --memory 64M",
        a.label
    );
    if a.record["oom_killed"] == true {
        assert_eq!(a.record["exit_code"], 137, "{}", a.dump());
        a.say(format!(
            "allocated up to {got} MB of 1024 → OOM-killed: {}",
            limits["enforced_by"]
        ));
    } else {
        assert_eq!(a.fact("stopped_by"), "MemoryError", "{}", a.dump());
        a.say(format!(
            "allocated {got} MB of 1024 → MemoryError: {} (record: {limits})",
            limits["enforced_by"]
        ));
    }
    assert!(
        limits["enforced_by"].is_string(),
        "{}: nothing enforced the memory limit: {limits}",
        a.label
    );
}

fn tmpfs_fill(t: &Ctx) {
    let script = "dd if=/dev/zero of=/tmp/fill bs=1M count=64 2>/dev/null; \
        f tmp_kb \"$(du -k /tmp/fill | cut -f1)\"; \
        dd if=/dev/zero of=/dev/shm/fill bs=1M count=100 2>/dev/null; \
        f shm_kb \"$(du -k /dev/shm/fill | cut -f1)\"; \
        (dd if=/dev/zero of=/workspace/big bs=1M count=80 2>/dev/null); f dd_status $?";
    let a = busybox(t, "tmpfs_fill", script, &["--tmp-size", "8M"]);
    let tmp = a.number("tmp_kb");
    let shm = a.number("shm_kb");
    assert!(tmp <= 8 * 1024, "{}: /tmp took {tmp} kB (8M)", a.label);
    assert!(
        shm <= 64 * 1024,
        "{}: /dev/shm took {shm} kB (64M)",
        a.label
    );
    let big = fs::metadata(workspace(t).join("big"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(
        big <= 64 << 20,
        "{}: a {big}-byte file in the workspace",
        a.label
    );
    assert_eq!(
        a.number("dd_status"),
        128 + 25,
        "{}: want SIGXFSZ",
        a.dump()
    );
    a.say(format!(
        "/tmp full at {tmp} kB (--tmp-size 8M), /dev/shm at {shm} kB (64M tmpfs), one workspace file stopped at {big} bytes by RLIMIT_FSIZE (SIGXFSZ)"
    ));
}

fn output_flood(t: &Ctx) {
    let result = t.dir.join("flood.json");
    let ws = workspace(t);
    let out = t.rt(&[
        "exec",
        "--sandbox",
        "--workspace",
        ws.to_str().unwrap(),
        "--timeout",
        "2s",
        "--output-limit",
        "64k",
        "--result",
        result.to_str().unwrap(),
        host().rootfs.to_str().unwrap(),
        "sh",
        "-c",
        "(yes BBBBBBBBBBBBBBBB >&2 &); echo x > /dev/tty; echo x > /dev/console; yes AAAAAAAAAAAAAAAA",
    ]);
    let l = label(t, "output_flood");
    let r: Value = serde_json::from_slice(&fs::read(&result).unwrap()).unwrap();
    assert_eq!(out.code, 137, "{l}: {out}");
    assert_eq!(
        out.stdout.len(),
        64 << 10,
        "{l}: stdout {} bytes",
        out.stdout.len()
    );
    let flood_err = out.stderr.matches("BBBB").count() * 4;
    assert!(
        flood_err <= 64 << 10,
        "{l}: {flood_err} bytes of stderr flood passed"
    );
    assert_eq!(r["timed_out"], true, "{l}: {r}");
    assert_eq!(r["stdout_truncated"], true, "{l}: {r}");
    assert_eq!(r["stderr_truncated"], true, "{l}: {r}");
    let seen = r["stdout_bytes"].as_u64().unwrap();
    assert!(
        seen > 1 << 20,
        "{l}: the flood was throttled, not drained: {r}"
    );
    println!(
        "{l}: yes(1) on stdout and stderr for 2 s → {seen} bytes written, 64 KiB passed per stream, the rest drained and dropped; /dev/tty, /dev/console: no terminal; killed at the timeout"
    );
}

fn timeout_evasion_double_fork(t: &Ctx) {
    let a = python(t, "timeout_double_fork", &["x"], &["--timeout", "1s"]);
    assert_eq!(a.fact("daemonized"), true, "{}", a.dump());
    assert_eq!(a.record["timed_out"], true, "{}", a.dump());
    assert_eq!(a.record["exit_code"], 137, "{}", a.dump());
    assert_pidns_empty(t, a.fact("pidns").as_str().unwrap(), &a.label);
    a.say("a double-forked daemon ignoring SIGTERM/SIGHUP/SIGINT → killed at the 1 s timeout with the whole container (SIGKILL to the cgroup or the pid namespace)");
}

fn timeout_evasion_setsid(t: &Ctx) {
    let a = python(t, "timeout_setsid", &["x"], &["--timeout", "20s"]);
    assert_eq!(a.fact("detached"), true, "{}", a.dump());
    assert_eq!(a.record["timed_out"], false, "{}", a.dump());
    assert_pidns_empty(t, a.fact("pidns").as_str().unwrap(), &a.label);
    a.say("setsid() + a second fork + ignored signals + a kworker name, then pid 1 returned → the detached session died with the pid namespace; husk returned at once");
}
