//! The `--sandbox` preset for untrusted code: what it adds to [`Options`], how it rewrites the
//! config.json [`crate::build`] made, and the result record ([`record`]; docs/sandbox.md holds the
//! schema; keep it stable: add keys, never rename or remove them).
//!
//! On top of the `sandbox` profile (spec-templates/sandbox.json: every capability dropped,
//! no_new_privs, rlimits, runc's masked and read-only paths, fresh pid/network/ipc/uts/mount/cgroup
//! namespaces) the preset:
//! - binds nothing from the host but the workspace (`--workspace DIR` → /workspace, the working
//!   directory); /etc/passwd and /etc/group are generated files, not the host's;
//! - mounts a size-capped tmpfs on /tmp, a fresh sysfs (the network namespace is ours), a minimal /dev;
//! - sets the environment to an allow-list (PATH, HOME=/workspace, LANG=C.UTF-8, TERM with a tty)
//!   plus `--env`/`--env-file`: nothing of the host's passes (not even HUSKENV_*);
//! - installs spec-templates/seccomp-default.json (Docker's default profile for a process without
//!   capabilities), with one addition: the chmod family may not set the setuid or setgid bit. Run
//!   as root, the program is uid 0 on the host filesystem: `chmod 4755` on a copy of a shell in
//!   the workspace would leave a setuid-root binary on the host for any local user to run;
//!   rootless, a setuid-the-caller one;
//! - binds the workspace nosuid and nodev (no_new_privs already neutralises setuid files; this
//!   also keeps device nodes someone put there unusable);
//! - without a cgroup, adds RLIMIT_NPROC as the process limit (counted per user, in the container's
//!   user namespace) and RLIMIT_DATA as the memory limit of each process (not of all together);
//! - asks the engine for Landlock (annotation run.husk.landlock.write): writes only under
//!   [`LANDLOCK_WRITABLE`], whatever the mounts allow;
//! - binds each `--socket HOST:CONTAINER` as one read-only file (the host checks are the CLI's);
//! - run by root, maps the container's root to an unprivileged host id ([`DEFAULT_HOST_ID`] or
//!   `--host-id`) in a user namespace, so the code never runs as host root.
//!
//! Pure: nothing here touches the system.

use crate::options::{parse_memory, Bind, Ipc, Net, Options, OptionsError, Resources};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod record;

pub use record::{
    no_cgroup_reason, LandlockRecord, Limit, Limits, Outcome, Output, Record, RECORD_KEYS,
};

/// The seccomp profile, an OCI `linux.seccomp` object.
pub const SECCOMP_DEFAULT: &str = include_str!("../../../../spec-templates/seccomp-default.json");

/// Where the workspace appears inside.
pub const WORKSPACE: &str = "/workspace";

pub const DEFAULT_MEMORY: i64 = 128 << 20;
pub const DEFAULT_CPUS: f64 = 0.5;
pub const DEFAULT_PIDS: i64 = 64;
pub const DEFAULT_TMP: i64 = 64 << 20;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_OUTPUT: u64 = 1 << 20;
/// RLIMIT_FSIZE, RLIMIT_NOFILE and RLIMIT_CORE as sandbox.json sets them.
pub const FSIZE: u64 = 64 << 20;
pub const NOFILE: u64 = 256;
/// The host uid and gid root's sandboxes run as: far above the ranges /etc/subuid hands out
/// (100000 + 65536·n), below 2^31 (tools that treat ids as signed), owned by no one.
pub const DEFAULT_HOST_ID: u32 = 1_000_000_000;
/// Where the program may write under Landlock (the rest of the container is read/execute only).
pub const LANDLOCK_WRITABLE: &[&str] = &[WORKSPACE, "/tmp", "/dev/shm"];
/// The engine's Landlock annotation (husk_runtime::security::landlock::ANNOTATION).
pub const LANDLOCK_ANNOTATION: &str = "run.husk.landlock.write";
/// Container paths a `--socket` may not be bound under.
const SOCKET_FORBIDDEN: &[&str] = &["/proc", "/sys", "/dev", WORKSPACE];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SandboxError {
    #[error("parse --timeout {0:?}: want a duration such as 10s, 500ms or 2m")]
    Timeout(String),
    #[error("--workspace {0}: a path holding ':' or ',' cannot be bound")]
    Workspace(PathBuf),
    #[error("--socket {0:?}: want HOST_PATH:CONTAINER_PATH")]
    SocketSyntax(String),
    #[error("--socket {spec:?}: container path {path:?} {why}")]
    SocketDest {
        spec: String,
        path: String,
        why: &'static str,
    },
    #[error("--host-id 0: the code would run as host root; give an unprivileged id")]
    HostIdZero,
    #[error("--host-id: only root's sandboxes choose a host id (yours run as you)")]
    HostIdNotRoot,
    #[error("parse --host-id {0:?}: want a uid such as 1000000000")]
    HostId(String),
    #[error("--sandbox: --bind {0}: only read-only binds are allowed (add :ro)")]
    BindWritable(String),
    #[error("--sandbox: --bind {spec}: container path {why}")]
    BindDest { spec: String, why: &'static str },
    #[error("--sandbox: --bind {0}: its destination is bound twice")]
    BindTwice(String),
    #[error("--sandbox: --pids-limit {0}: want at least 1 (a sandbox always has a process limit)")]
    Pids(i64),
    #[error("parse --user {0:?}: want UID:GID (numbers)")]
    User(String),
    #[error(transparent)]
    Size(#[from] OptionsError),
}

/// A `--socket`: one Unix socket of the host bound on one container path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketBind {
    pub host: PathBuf,
    pub container: PathBuf,
}

/// Parses `HOST_PATH:CONTAINER_PATH` and checks the container side: absolute, clean, a file
/// path (not `/`), not under /proc, /sys, /dev (kernel interfaces) or /workspace (the mount point
/// would be made in the host's workspace). The host side is checked on the host (the CLI).
pub fn parse_socket(spec: &str) -> Result<SocketBind, SandboxError> {
    let (host, dest) = spec
        .split_once(':')
        .filter(|(h, d)| !h.is_empty() && !d.is_empty())
        .ok_or_else(|| SandboxError::SocketSyntax(spec.into()))?;
    let bad = |why| SandboxError::SocketDest {
        spec: spec.into(),
        path: dest.into(),
        why,
    };
    let d = Path::new(dest);
    check_dest(dest).map_err(bad)?;
    Ok(SocketBind {
        host: host.into(),
        container: d.to_path_buf(),
    })
}

/// A container path the preset binds a host path on (a `--socket`, a read-only `--bind`): absolute,
/// clean, a file or directory below `/`, not under /proc, /sys, /dev (kernel interfaces) or
/// /workspace (the mount point would be made in the host's workspace).
fn check_dest(dest: &str) -> Result<(), &'static str> {
    if !dest.starts_with('/') {
        return Err("is not absolute");
    }
    let clean = dest
        .split('/')
        .skip(1)
        .all(|c| !matches!(c, "" | "." | ".."));
    if !clean || dest.contains(',') {
        return Err("is not a clean path (no '.', '..', '//', ',' or trailing '/')");
    }
    if SOCKET_FORBIDDEN
        .iter()
        .any(|f| Path::new(dest).starts_with(f))
    {
        return Err("is under /proc, /sys, /dev or /workspace");
    }
    Ok(())
}

/// `--user UID:GID` with `--sandbox`: both numbers (no names: the image's passwd is not the
/// host's, and a name would resolve differently in each).
pub fn parse_user(s: &str) -> Result<(u32, u32), SandboxError> {
    let bad = || SandboxError::User(s.into());
    let (u, g) = s.split_once(':').ok_or_else(bad)?;
    let id = |v: &str| v.parse::<u32>().ok().filter(|&n| n != u32::MAX);
    Ok((id(u).ok_or_else(bad)?, id(g).ok_or_else(bad)?))
}

/// `--host-id`: any id but 0.
pub fn parse_host_id(s: &str) -> Result<u32, SandboxError> {
    match s.parse::<u32>() {
        Ok(0) => Err(SandboxError::HostIdZero),
        Ok(id) if id != u32::MAX => Ok(id),
        _ => Err(SandboxError::HostId(s.into())),
    }
}

/// The host id a sandbox runs as: root's, `--host-id` or [`DEFAULT_HOST_ID`]; anyone else's,
/// None (it runs as its caller, who may not choose).
pub fn host_id(given: Option<&str>, root: bool) -> Result<Option<u32>, SandboxError> {
    match (given, root) {
        (Some(id), true) => parse_host_id(id).map(Some),
        (Some(_), false) => Err(SandboxError::HostIdNotRoot),
        (None, true) => Ok(Some(DEFAULT_HOST_ID)),
        (None, false) => Ok(None),
    }
}

/// A workspace directory as it was before a run: which inode (so that nothing but that directory
/// is ever given back), its owner, mode and POSIX ACLs (`system.posix_acl_access`, `_default`;
/// None when it had none). Kept in an instance's record until its stop.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lent {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub acl_access: Option<Vec<u8>>,
    pub acl_default: Option<Vec<u8>>,
}

/// The preset's settings, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Sandbox {
    /// Host directory bound read-write on /workspace (absolute).
    pub workspace: PathBuf,
    pub tmp_size: i64,
    pub resources: Resources,
    pub timeout: Duration,
    /// Bytes of each of stdout and stderr passed on; the rest is read and dropped.
    pub output_limit: u64,
    /// `--socket`s, host paths already checked (and canonical).
    pub sockets: Vec<SocketBind>,
    /// Root only: the host uid/gid the container's root maps to. None: unprivileged (the caller).
    pub host_id: Option<u32>,
    /// `--user UID:GID`: the program's ids inside (the ones mapped to the host id) instead of 0.
    pub user: Option<(u32, u32)>,
    /// The user's read-only `--bind`s (inputs), once [`Sandbox::options`] has checked them.
    pub inputs: Vec<Bind>,
}

impl Sandbox {
    pub fn new(workspace: PathBuf) -> Sandbox {
        Sandbox {
            workspace,
            tmp_size: DEFAULT_TMP,
            resources: Resources {
                memory: Some(DEFAULT_MEMORY),
                cpus: Some(DEFAULT_CPUS),
                pids: Some(DEFAULT_PIDS),
            },
            timeout: DEFAULT_TIMEOUT,
            output_limit: DEFAULT_OUTPUT,
            sockets: Vec::new(),
            host_id: None,
            user: None,
            inputs: Vec::new(),
        }
    }

    /// `--tmp-size`, `--timeout` and `--output-limit` (checked in that order) over the defaults.
    pub fn set_limits(
        &mut self,
        tmp_size: Option<&str>,
        timeout: Option<&str>,
        output_limit: Option<&str>,
    ) -> Result<(), SandboxError> {
        if let Some(t) = tmp_size {
            self.tmp_size = parse_size(t)?;
        }
        if let Some(t) = timeout {
            self.timeout = parse_duration(t)?;
        }
        if let Some(o) = output_limit {
            self.output_limit = parse_size(o)? as u64;
        }
        Ok(())
    }

    /// Turns the user's options into the preset's: everything contained, no host binds but the
    /// workspace and the user's read-only input binds, no network, the sandbox's limits.
    pub fn options(&mut self, o: &mut Options) -> Result<(), SandboxError> {
        let ws = self.workspace.to_string_lossy();
        if ws.contains([':', ',']) {
            return Err(SandboxError::Workspace(self.workspace.clone()));
        }
        // 0 (or less) would mean "unlimited" to the cgroup while the record said "enforced".
        if let Some(n) = self.resources.pids.filter(|&n| n < 1) {
            return Err(SandboxError::Pids(n));
        }
        self.inputs = self.check_inputs(&o.binds)?;
        o.containall = true;
        o.contain = true;
        o.cleanenv = true;
        o.no_home = true;
        o.pid = true;
        o.ipc = Some(Ipc::Private);
        o.net = Some(Net::None);
        o.writable = false;
        o.fakeroot = false;
        o.binds = vec![Bind {
            source: self.workspace.clone(),
            destination: WORKSPACE.into(),
            readonly: false,
        }];
        o.binds.extend(self.inputs.iter().cloned());
        // Read-only: connect(2) needs no write access to the mount, and nothing can chmod, chown
        // or utime the host's socket inode through it.
        o.binds.extend(self.sockets.iter().map(|s| Bind {
            source: s.host.clone(),
            destination: s.container.clone(),
            readonly: true,
        }));
        o.root_host_id = self.host_id;
        o.user = self.user;
        o.pwd = Some(WORKSPACE.into());
        o.resources = self.resources;
        Ok(())
    }

    /// The user's `--bind`s: read-only inputs (test files, tool directories) only, each on its own
    /// clean container path outside /proc, /sys, /dev and /workspace, none on a `--socket`'s.
    fn check_inputs(&self, binds: &[Bind]) -> Result<Vec<Bind>, SandboxError> {
        let mut seen: Vec<&Path> = self.sockets.iter().map(|s| s.container.as_path()).collect();
        for b in binds {
            let spec = format!("{}:{}", b.source.display(), b.destination.display());
            if !b.readonly {
                return Err(SandboxError::BindWritable(spec));
            }
            let dest = b.destination.to_string_lossy();
            check_dest(&dest).map_err(|why| SandboxError::BindDest {
                spec: spec.clone(),
                why,
            })?;
            if seen.contains(&b.destination.as_path()) {
                return Err(SandboxError::BindTwice(spec));
            }
            seen.push(&b.destination);
        }
        Ok(binds.to_vec())
    }

    /// Rewrites the config [`crate::build`] made from the `sandbox` profile. `env` is `--env-file`
    /// then `--env` (later wins); `term` is the host's TERM, used only with a tty; `nproc` (no
    /// cgroup) adds RLIMIT_NPROC for the process limit and RLIMIT_DATA for the memory limit.
    pub fn apply(
        &self,
        config: &mut Value,
        env: &[(String, String)],
        term: Option<&str>,
        nproc: bool,
    ) {
        self.rewrite_mounts(config);
        let p = &mut config["process"];
        p["env"] = json!(environment(&p["env"], env, p["terminal"] == true, term));
        if nproc {
            self.add_rlimits(p);
        }
        let mut seccomp =
            serde_json::from_str(SECCOMP_DEFAULT).expect("seccomp-default.json is JSON");
        forbid_setid_modes(&mut seccomp);
        config["linux"]["seccomp"] = seccomp;
        config["annotations"][LANDLOCK_ANNOTATION] = json!(LANDLOCK_WRITABLE.join(":"));
    }

    /// No host resolv.conf or hosts (a generated hosts, [`crate::spec::Launch::generate_hosts`],
    /// stays); /tmp at the sandbox's size; the workspace nosuid and nodev; a fresh read-only
    /// sysfs instead of the host's /sys, and no cgroupfs on it.
    fn rewrite_mounts(&self, config: &mut Value) {
        let mounts = config["mounts"].as_array_mut().expect("mounts is an array");
        mounts.retain(|m| {
            let d = m["destination"].as_str().unwrap_or_default();
            let generated = m["source"].as_str().is_some_and(|s| s != "/etc/hosts");
            d != "/etc/resolv.conf" && (d != "/etc/hosts" || generated) && d != "/sys/fs/cgroup"
        });
        for m in mounts.iter_mut() {
            match m["destination"].as_str().unwrap_or_default() {
                "/tmp" => {
                    m["options"] = json!([
                        "nosuid",
                        "nodev",
                        "mode=1777",
                        format!("size={}", self.tmp_size)
                    ]);
                }
                d if d == WORKSPACE
                    || self.inputs.iter().any(|b| b.destination == Path::new(d)) =>
                {
                    if !m["options"].is_array() {
                        m["options"] = json!([]);
                    }
                    let opts = m["options"]
                        .as_array_mut()
                        .expect("bind options are an array");
                    for o in ["nosuid", "nodev"] {
                        if !opts.iter().any(|v| v == o) {
                            opts.push(json!(o));
                        }
                    }
                }
                "/sys" => {
                    *m = json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                        "options": ["nosuid", "noexec", "nodev", "ro"]});
                }
                _ => {}
            }
        }
    }

    /// Without a cgroup: RLIMIT_NPROC for the process limit, RLIMIT_DATA for the memory limit.
    fn add_rlimits(&self, process: &mut Value) {
        let rlimits = process["rlimits"]
            .as_array_mut()
            .expect("rlimits is an array");
        if let Some(pids) = self.resources.pids {
            rlimits.push(json!({"type": "RLIMIT_NPROC", "hard": pids, "soft": pids}));
        }
        // Heap and private writable mappings of each process: without it a memory bomb
        // takes the host's memory. Not a total (that needs the cgroup), and unlike
        // RLIMIT_AS it leaves address space reservations (JITs, Go) alone.
        if let Some(mem) = self.resources.memory {
            rlimits.push(json!({"type": "RLIMIT_DATA", "hard": mem, "soft": mem}));
        }
    }
}

/// The chmod family and the index of its mode argument.
const CHMODS: &[(&str, u32)] = &[
    ("chmod", 1),
    ("fchmod", 1),
    ("fchmodat", 2),
    ("fchmodat2", 2),
];

/// S_ISUID | S_ISGID.
const SETID_BITS: u32 = 0o6000;

/// Allows the chmod family (where the profile allows it unconditionally) only with a mode without
/// S_ISUID and S_ISGID; the rest falls to the default action (EPERM). Creating a file with those
/// bits (open, mknod) needs no rule: the kernel clears them on the first write or truncate by a
/// process without CAP_FSETID, so such a file stays empty.
fn forbid_setid_modes(seccomp: &mut Value) {
    let Some(rules) = seccomp["syscalls"].as_array_mut() else {
        return;
    };
    let mut found = Vec::new();
    for rule in rules.iter_mut() {
        if rule["action"] != "SCMP_ACT_ALLOW" || rule.get("args").is_some() {
            continue;
        }
        if let Some(names) = rule["names"].as_array_mut() {
            names.retain(|n| match CHMODS.iter().find(|(c, _)| n == c) {
                Some(c) => {
                    found.push(*c);
                    false
                }
                None => true,
            });
        }
    }
    for (name, index) in found {
        rules.push(json!({
            "names": [name],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": index, "value": SETID_BITS, "valueTwo": 0,
                "op": "SCMP_CMP_MASKED_EQ"}]
        }));
    }
}

/// PATH from the built env (the image's or the profile's), HOME, LANG, TERM with a tty, then the
/// user's variables; sorted by name.
fn environment(
    built: &Value,
    user: &[(String, String)],
    tty: bool,
    term: Option<&str>,
) -> Vec<String> {
    let mut env = std::collections::BTreeMap::new();
    let path = built
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|kv| kv.strip_prefix("PATH="));
    if let Some(path) = path {
        env.insert("PATH".to_string(), path.to_string());
    }
    env.insert("HOME".into(), WORKSPACE.into());
    env.insert("LANG".into(), "C.UTF-8".into());
    if tty {
        env.insert("TERM".into(), term.unwrap_or("xterm").to_string());
    }
    env.extend(user.iter().cloned());
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// `10s`, `500ms`, `2m`, `1h`, or plain seconds (`1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, SandboxError> {
    let bad = || SandboxError::Timeout(s.to_string());
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `--output-limit` and `--tmp-size`: sizes as `--memory` takes them.
pub fn parse_size(s: &str) -> Result<i64, SandboxError> {
    Ok(parse_memory(s)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Verb;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("0").is_err() && parse_duration("5x").is_err());
        assert_eq!(parse_size("1M").unwrap(), 1 << 20);
        let mut sb = Sandbox::new("/w".into());
        sb.set_limits(Some("1k"), Some("2s"), Some("3")).unwrap();
        assert_eq!((sb.tmp_size, sb.output_limit), (1024, 3));
        assert_eq!(sb.timeout, Duration::from_secs(2));
        let e = sb.set_limits(Some("x"), Some("y"), None).unwrap_err();
        assert!(e.to_string().contains("--memory"), "{e}");
    }

    #[test]
    fn options_bind_the_workspace_and_read_only_inputs_only() {
        let mut sb = Sandbox::new("/w".into());
        let mut o = Options::new(Verb::Exec { command: vec![] });
        let input = |src: &str, dst: &str, readonly| Bind {
            source: src.into(),
            destination: dst.into(),
            readonly,
        };
        o.binds = vec![input("/srv/tests", "/tests", true)];
        o.writable = true;
        sb.user = Some((1000, 1000));
        sb.options(&mut o).unwrap();
        assert_eq!(o.binds.len(), 2);
        assert_eq!(o.binds[0].destination, PathBuf::from(WORKSPACE));
        assert!(o.binds[1].readonly && o.binds[1].destination == Path::new("/tests"));
        assert!(o.containall && o.no_home && !o.writable && o.net == Some(Net::None));
        assert_eq!(o.user, Some((1000, 1000)));
        let mut bad = Sandbox::new("/a:b".into());
        assert!(bad.options(&mut o).is_err());
        let mut unlimited = Sandbox::new("/w".into());
        unlimited.resources.pids = Some(0);
        let e = unlimited.options(&mut o).unwrap_err().to_string();
        assert!(e.contains("--pids-limit 0"), "{e}");
        let refused = |b: Bind| {
            let mut o = Options::new(Verb::Exec { command: vec![] });
            o.binds = vec![b];
            Sandbox::new("/w".into())
                .options(&mut o)
                .unwrap_err()
                .to_string()
        };
        let e = refused(input("/etc", "/x", false));
        assert!(e.contains("only read-only") && e.contains("/etc:/x"), "{e}");
        for dst in [
            "/workspace",
            "/workspace/t",
            "/proc/x",
            "/dev/x",
            "/sys",
            "/",
            "/a/../b",
        ] {
            let e = refused(input("/etc", dst, true));
            assert!(e.contains("container path"), "{dst}: {e}");
        }
    }

    #[test]
    fn users_are_numbers() {
        assert_eq!(parse_user("1000:100").unwrap(), (1000, 100));
        for bad in ["1000", "alice:1", "1:", ":1", "-1:1", "1:4294967295"] {
            assert!(parse_user(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn apply_sets_env_tmp_seccomp_and_nproc() {
        let sb = Sandbox::new("/w".into());
        let mut c = json!({
            "process": {"env": ["PATH=/bin", "SECRET=x", "HOME=/root"], "terminal": false,
                "rlimits": []},
            "mounts": [{"destination": "/tmp", "type": "tmpfs", "options": []},
                {"destination": "/etc/hosts", "type": "bind"},
                {"destination": "/workspace", "type": "bind", "options": ["rbind"]}],
            "linux": {}
        });
        let env = vec![("A".to_string(), "1".to_string())];
        sb.apply(&mut c, &env, Some("screen"), true);
        assert_eq!(
            c["process"]["env"],
            json!(["A=1", "HOME=/workspace", "LANG=C.UTF-8", "PATH=/bin"])
        );
        assert_eq!(c["mounts"].as_array().unwrap().len(), 2);
        assert_eq!(
            c["mounts"][1]["options"],
            json!(["rbind", "nosuid", "nodev"])
        );
        assert!(c["mounts"][0]["options"]
            .as_array()
            .unwrap()
            .contains(&json!("size=67108864")));
        assert_eq!(c["process"]["rlimits"][0]["type"], "RLIMIT_NPROC");
        assert_eq!(c["process"]["rlimits"][1]["type"], "RLIMIT_DATA");
        assert_eq!(c["process"]["rlimits"][1]["hard"], DEFAULT_MEMORY);
        assert_eq!(c["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(
            c["annotations"][LANDLOCK_ANNOTATION],
            "/workspace:/tmp:/dev/shm"
        );
        let s: oci_spec::runtime::LinuxSeccomp =
            serde_json::from_value(c["linux"]["seccomp"].clone()).unwrap();
        assert!(s.syscalls().as_ref().unwrap().len() > 5);
        // chmod only without the setuid/setgid bits.
        let rules = c["linux"]["seccomp"]["syscalls"].as_array().unwrap();
        let chmod: Vec<&Value> = rules
            .iter()
            .filter(|r| r["names"].as_array().unwrap().contains(&json!("chmod")))
            .collect();
        assert_eq!(chmod.len(), 1);
        assert_eq!(chmod[0]["args"][0]["value"], 0o6000);
        assert_eq!(chmod[0]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
    }

    #[test]
    fn socket_specs() {
        let s = parse_socket("/run/agent.sock:/run/tool.sock").unwrap();
        assert_eq!(s.host, PathBuf::from("/run/agent.sock"));
        assert_eq!(s.container, PathBuf::from("/run/tool.sock"));
        for bad in [
            "/a",
            ":/b",
            "/a:",
            "/a:rel",
            "/a:/",
            "/a:/x/../etc",
            "/a:/x/./y",
            "/a:/x/",
        ] {
            assert!(parse_socket(bad).is_err(), "{bad} accepted");
        }
        for kernel in ["/proc/x", "/sys/x", "/dev/log", "/workspace/s", "/proc"] {
            let e = parse_socket(&format!("/a:{kernel}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("under /proc"), "{kernel}: {e}");
        }
        // Only the exact prefixes: /devices is fine.
        assert!(parse_socket("/a:/devices.sock").is_ok());
        assert_eq!(parse_host_id("123").unwrap(), 123);
        assert!(parse_host_id("0").is_err() && parse_host_id("x").is_err());
        assert_eq!(host_id(None, true).unwrap(), Some(DEFAULT_HOST_ID));
        assert_eq!(host_id(Some("5"), true).unwrap(), Some(5));
        assert_eq!(host_id(None, false).unwrap(), None);
        assert_eq!(host_id(Some("5"), false), Err(SandboxError::HostIdNotRoot));
    }

    #[test]
    fn sockets_bind_read_only_and_root_maps_to_the_host_id() {
        let mut sb = Sandbox::new("/w".into());
        sb.sockets = vec![parse_socket("/h/s.sock:/run/s.sock").unwrap()];
        sb.host_id = Some(DEFAULT_HOST_ID);
        let mut o = Options::new(Verb::Exec { command: vec![] });
        sb.options(&mut o).unwrap();
        assert_eq!(o.binds.len(), 2);
        assert!(o.binds[1].readonly && o.binds[1].destination == Path::new("/run/s.sock"));
        assert_eq!(o.root_host_id, Some(DEFAULT_HOST_ID));
    }
}
