//! The test harness: a per-test context ([`Ctx`]) owning a temp dir, a runtime `--root` and the
//! containers it made; [`Bundle`] (config.json edits on a copy of the busybox base config); the
//! runtime invocation ([`Out`], [`Running`]); and [`Probe`] (husk-probe's JSON).
//!
//! Invariants:
//! - Every invocation gets its own stdout/stderr files, owned by the runtime's user. Files, not
//!   pipes: a detached container keeps its stdio open, so "wait for EOF" would hang; and runc
//!   refuses (fchown) stdio owned by another user in rootless mode.
//! - Every wait is a poll with a deadline; nothing sleeps and hopes.
//! - Rootless mode, when the tests run as root, runs the runtime as `tuser` through
//!   `setpriv --reuid --regid --init-groups`; when the tests run unprivileged it runs as ourselves.
//! - Root-only cases skip with a reason when not root, and fail instead when
//!   HUSK_REQUIRE_PRIVILEGED=1 (CI).

use nix::fcntl::{fcntl, FcntlArg};
use nix::unistd::{close, dup2};
use serde_json::{json, Value};
use std::fmt;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long any single runtime call or state transition may take before the test fails: a hang
/// guard, not a timing assertion. Generous, because a 2-core CI machine under the full suite has
/// seen a `husk pull` of the Debian fixture take over 30 s.
pub const DEADLINE: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The runtime runs as root with the root base config.
    Root,
    /// The runtime runs unprivileged with the rootless base config (userns, one-id maps).
    Rootless,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Root => "root",
            Mode::Rootless => "rootless",
        })
    }
}

/// Host facts worked out once per test binary.
pub struct Host {
    pub runtime: PathBuf,
    pub base: PathBuf,
    pub rootfs: PathBuf,
    pub bundles: PathBuf,
    pub euid: u32,
    /// The unprivileged user the rootless mode runs as (uid, gid, home).
    pub user: Option<(u32, u32, String)>,
}

pub fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let top = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let top = top.canonicalize().unwrap_or(top);
        let euid = nix::unistd::geteuid().as_raw();
        let user = if euid == 0 {
            let name = std::env::var("HUSK_TEST_USER").unwrap_or_else(|_| "tuser".into());
            lookup_user(&name)
        } else {
            let home = std::env::var("HOME").unwrap_or_else(|_| "/".into());
            Some((euid, nix::unistd::getegid().as_raw(), home))
        };
        Host {
            runtime: find_runtime(&top),
            base: make_base(),
            rootfs: top.join("bundles/busybox/rootfs"),
            bundles: top.join("bundles"),
            euid,
            user,
        }
    })
}

/// `HUSK_RUNTIME`, else the newest of `$CARGO_TARGET_DIR|<workspace>/target/{release,debug}/husk`.
fn find_runtime(top: &Path) -> PathBuf {
    if let Some(r) = std::env::var_os("HUSK_RUNTIME") {
        return PathBuf::from(r);
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| top.join("target"), PathBuf::from);
    ["release", "debug"]
        .iter()
        .map(|p| target.join(p).join("husk"))
        .filter_map(|p| Some((fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| target.join("release/husk"))
}

fn lookup_user(name: &str) -> Option<(u32, u32, String)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[0] == name)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?, f[5].to_string())))?
    })
}

/// One base dir per test binary, `/tmp/husk-it-<pid>`, mode 0755 so the rootless user can
/// traverse to its bundles. Each passing test removes its own subdir; a failing one keeps it (and
/// so the base) for inspection.
fn make_base() -> PathBuf {
    let tmp =
        std::env::var_os("HUSK_TEST_TMPDIR").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    // Earlier runs leave their base behind (no global teardown): empty unless a test failed, but
    // for the [`shared_dir`]s, removed here once their run has exited.
    if let Ok(entries) = fs::read_dir(&tmp) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix("husk-it-") else {
                continue;
            };
            if !Path::new("/proc").join(pid).exists() {
                for sub in fs::read_dir(e.path()).into_iter().flatten().flatten() {
                    if sub.file_name().to_string_lossy().starts_with("shared-") {
                        let _ = fs::remove_dir_all(sub.path());
                    }
                }
            }
            let _ = fs::remove_dir(e.path());
        }
    }
    let base = tmp.join(format!("husk-it-{}", std::process::id()));
    fs::create_dir_all(&base).unwrap();
    fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
    base
}

fn require_privileged() -> bool {
    std::env::var("HUSK_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1")
}

/// Skip (print why, return) or, under HUSK_REQUIRE_PRIVILEGED=1, fail.
pub fn skip(why: &str) {
    if require_privileged() {
        panic!("cannot run (HUSK_REQUIRE_PRIVILEGED=1): {why}");
    }
    eprintln!("SKIP: {why}");
}

/// Runs one test case in `mode`; called by the `both!` and `root_only!` macros.
pub fn run_case(mode: Mode, name: &str, case: fn(&Ctx)) {
    let h = host();
    match mode {
        Mode::Root if h.euid != 0 => return skip(&format!("{name}: root mode needs euid 0")),
        Mode::Rootless if h.user.is_none() => {
            return skip(&format!(
                "{name}: no unprivileged test user (useradd -m tuser)"
            ))
        }
        _ => {}
    }
    if !h.rootfs.join("bin/husk-probe").exists() {
        panic!(
            "{} has no bin/husk-probe: run bundles/busybox/make-rootfs after building the probe",
            h.rootfs.display()
        );
    }
    if !h.runtime.exists() {
        panic!(
            "runtime {} not found: build husk or set HUSK_RUNTIME",
            h.runtime.display()
        );
    }
    let ctx = Ctx::new(mode, name);
    case(&ctx);
}

/// Generates `mod <case> { #[test] fn root(); #[test] fn rootless(); }` for each case function.
#[macro_export]
macro_rules! both {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[test]
            fn root() {
                $crate::harness::run_case($crate::harness::Mode::Root, module_path!(), super::$case)
            }
            #[test]
            fn rootless() {
                $crate::harness::run_case($crate::harness::Mode::Rootless, module_path!(), super::$case)
            }
        }
    )*};
}

/// Cases that are inherently root-only on this kind of host (cgroup v1 without delegation, ids
/// outside a one-id map). Each still runs in CI (as root).
#[macro_export]
macro_rules! root_only {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[test]
            fn root() {
                $crate::harness::run_case($crate::harness::Mode::Root, module_path!(), super::$case)
            }
        }
    )*};
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A test case's world: temp dir, runtime --root, containers to clean up.
pub struct Ctx {
    pub mode: Mode,
    pub dir: PathBuf,
    pub state_root: PathBuf,
    name: String,
    tag: String,
    rootfs: OnceLock<PathBuf>,
    ids: std::sync::Mutex<Vec<String>>,
    calls: AtomicUsize,
}

impl Ctx {
    fn new(mode: Mode, name: &str) -> Self {
        let short = name.rsplit("::").next().unwrap_or(name).replace('_', "-");
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let tag = format!(
            "{}{}{}",
            if mode == Mode::Root { "r" } else { "u" },
            std::process::id(),
            n
        );
        let dir = host().base.join(format!("{short}-{mode}-{n}"));
        let _ = fs::remove_dir_all(&dir);
        let ctx = Ctx {
            mode,
            state_root: dir.join("state"),
            dir,
            name: format!("{name}[{mode}]"),
            tag,
            rootfs: OnceLock::new(),
            ids: Default::default(),
            calls: AtomicUsize::new(0),
        };
        ctx.mkdir(&ctx.dir);
        ctx.mkdir(&ctx.state_root);
        ctx.mkdir(&ctx.dir.join("io"));
        ctx
    }

    /// Creates `path` (0755) owned by the runtime's user.
    pub fn mkdir(&self, path: &Path) -> PathBuf {
        fs::create_dir_all(path).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
        self.give(path);
        path.to_path_buf()
    }

    /// Hands `path` to the runtime's user (no-op in root mode or when not root).
    pub fn give(&self, path: &Path) {
        if let Some((uid, gid)) = self.owner() {
            nix::unistd::fchownat(
                None,
                path,
                Some(uid.into()),
                Some(gid.into()),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
        }
    }

    fn owner(&self) -> Option<(u32, u32)> {
        let h = host();
        match (self.mode, h.euid, &h.user) {
            (Mode::Rootless, 0, Some((uid, gid, _))) => Some((*uid, *gid)),
            _ => None,
        }
    }

    /// Host uid/gid the container's root maps to (rootless) or 0.
    pub fn host_ids(&self) -> (u32, u32) {
        match self.mode {
            Mode::Root => (0, 0),
            Mode::Rootless => host().user.as_ref().map(|(u, g, _)| (*u, *g)).unwrap(),
        }
    }

    /// A fresh container id, unique on the host (root-mode cgroups are named after it), and
    /// remembered so Drop can force-delete it.
    pub fn id(&self, what: &str) -> String {
        let id = format!("it-{what}-{}-{}", self.tag, self.ids.lock().unwrap().len());
        self.ids.lock().unwrap().push(id.clone());
        id
    }

    /// The per-test rootfs: a hard-linked copy of bundles/busybox/rootfs with fresh directories
    /// and symlinks, so tests can write to it without touching the shared one. Rootless: the
    /// directories belong to the test user (container root); files stay hard links, never chowned.
    pub fn rootfs(&self) -> &Path {
        self.rootfs.get_or_init(|| {
            let dst = self.dir.join("rootfs");
            copy_tree(&host().rootfs, &dst, &|p| self.give(p));
            dst
        })
    }

    /// The base config for this mode (bundles/busybox[-rootless]/config.json), rootfs set to this
    /// test's copy, id maps pointing at the actual unprivileged user.
    pub fn bundle(&self) -> Bundle {
        let name = match self.mode {
            Mode::Root => "busybox",
            Mode::Rootless => "busybox-rootless",
        };
        let path = host().bundles.join(name).join("config.json");
        let text =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let mut config: Value = serde_json::from_str(&text).unwrap();
        config["root"]["path"] = json!(self.rootfs().to_str().unwrap());
        if self.mode == Mode::Rootless {
            let (uid, gid) = self.host_ids();
            config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
            config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        }
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        Bundle {
            dir: self.dir.join(format!("bundle-{n}")),
            config,
        }
    }

    /// Writes the bundle's config.json and returns its directory.
    pub fn write(&self, b: &Bundle) -> PathBuf {
        self.mkdir(&b.dir);
        let path = b.dir.join("config.json");
        fs::write(&path, serde_json::to_string_pretty(&b.config).unwrap()).unwrap();
        self.give(&path);
        b.dir.clone()
    }

    /// Writes `bundle` and runs `create --bundle DIR ID` (must succeed); returns the id.
    pub fn create(&self, b: &Bundle, what: &str) -> String {
        let id = self.id(what);
        let dir = self.write(b);
        self.rt(&["create", "--bundle", dir.to_str().unwrap(), &id])
            .ok();
        id
    }

    /// create + start + wait for "running"; returns the id.
    pub fn start_running(&self, b: &Bundle, what: &str) -> String {
        let id = self.create(b, what);
        self.rt(&["start", &id]).ok();
        self.wait_status(&id, "running");
        id
    }

    /// Runs the runtime with `--root <state> ARGS`, stdin from /dev/null; waits (bounded).
    pub fn rt(&self, args: &[&str]) -> Out {
        self.spawn(args, None).wait()
    }

    /// Like [`Ctx::rt`] with stdin read from a file holding `input`.
    pub fn rt_stdin(&self, args: &[&str], input: &str) -> Out {
        self.spawn(args, Some(input)).wait()
    }

    /// Starts the runtime without waiting (e.g. a foreground `run` to be killed).
    pub fn spawn(&self, args: &[&str], input: Option<&str>) -> Running {
        self.spawn_with(args, input, &Launch::default())
    }

    /// Like [`Ctx::rt`], with extra inherited fds and environment for the runtime.
    pub fn rt_with(&self, args: &[&str], launch: &Launch) -> Out {
        self.spawn_with(args, None, launch).wait()
    }

    /// Like [`Ctx::rt`] with extra environment variables for the runtime (launcher env tests).
    pub fn rt_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        self.spawn_env(args, None, env).wait()
    }

    /// [`Ctx::spawn`] with extra environment variables.
    pub fn spawn_env(&self, args: &[&str], input: Option<&str>, env: &[(&str, &str)]) -> Running {
        let launch = Launch {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Launch::default()
        };
        self.spawn_with(args, input, &launch)
    }

    /// Like [`Ctx::spawn`], with extra inherited fds and environment for the runtime.
    pub fn spawn_with(&self, args: &[&str], input: Option<&str>, launch: &Launch) -> Running {
        let stdin = match input {
            Some(text) => {
                let n = self.calls.fetch_add(1, Ordering::Relaxed);
                let p = self.dir.join("io").join(format!("{n}.in"));
                fs::write(&p, text).unwrap();
                self.give(&p);
                Stdio::from(fs::File::open(&p).unwrap())
            }
            None => Stdio::null(),
        };
        self.spawn_stdin(args, stdin, launch).0
    }

    /// Like [`Ctx::rt_stdin`], with `input` written into a pipe (a real `echo x | husk ...`, not
    /// a file), closed after it.
    pub fn rt_pipe(&self, args: &[&str], input: &str) -> Out {
        let (running, stdin) = self.spawn_stdin(args, Stdio::piped(), &Launch::default());
        let mut stdin = stdin.expect("piped stdin");
        std::io::Write::write_all(&mut stdin, input.as_bytes()).unwrap();
        drop(stdin);
        running.wait()
    }

    fn spawn_stdin(
        &self,
        args: &[&str],
        stdin: Stdio,
        launch: &Launch,
    ) -> (Running, Option<std::process::ChildStdin>) {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let io = self.dir.join("io");
        let (out, err) = (io.join(format!("{n}.out")), io.join(format!("{n}.err")));
        let mut cmd = self.command(launch);
        cmd.envs(launch.env.iter().map(|(k, v)| (k, v)));
        launch.inherit(&mut cmd);
        cmd.arg("--root").arg(&self.state_root).args(args);
        cmd.current_dir(&self.dir);
        cmd.stdin(stdin)
            .stdout(self.io_file(&out))
            .stderr(self.io_file(&err));
        let line = format!("{} {}", host().runtime.display(), args.join(" "));
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {line}: {e}"));
        let stdin = child.stdin.take();
        let running = Running {
            child,
            out,
            err,
            line,
        };
        (running, stdin)
    }

    fn io_file(&self, p: &Path) -> Stdio {
        let f = fs::File::create(p).unwrap();
        self.give(p);
        Stdio::from(f)
    }

    /// The runtime command (through setpriv in rootless mode). `listen_pid`: exec the runtime
    /// from a shell that first exports LISTEN_PID=$$, so the runtime finds its own pid there (runc
    /// checks it; systemd sets it that way).
    fn command(&self, launch: &Launch) -> Command {
        let h = host();
        let mut argv: Vec<std::ffi::OsString> = Vec::new();
        if let (Mode::Rootless, Some((uid, gid))) = (self.mode, self.owner()) {
            argv.push("setpriv".into());
            argv.push(format!("--reuid={uid}").into());
            argv.push(format!("--regid={gid}").into());
            argv.push("--init-groups".into());
        }
        if launch.listen_pid {
            for a in ["/bin/sh", "-c", "export LISTEN_PID=$$; exec \"$@\"", "sh"] {
                argv.push(a.into());
            }
        }
        if launch.ignore_signals {
            for a in ["/bin/sh", "-c", "trap '' HUP USR1; exec \"$@\"", "sh"] {
                argv.push(a.into());
            }
        }
        argv.push(h.runtime.clone().into());
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        if let (Mode::Rootless, Some((uid, _))) = (self.mode, self.owner()) {
            let home = h.user.as_ref().map(|u| u.2.clone()).unwrap_or_default();
            c.env_clear()
                .env(
                    "PATH",
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                )
                .env("HOME", home)
                .env("XDG_RUNTIME_DIR", format!("/run/user/{uid}"));
        }
        c
    }

    /// `state ID` parsed; panics if it fails.
    pub fn state(&self, id: &str) -> Value {
        self.rt(&["state", id]).ok().json()
    }

    /// Polls `state` until status == `want` (bounded by [`DEADLINE`]).
    pub fn wait_status(&self, id: &str, want: &str) -> Value {
        let start = Instant::now();
        loop {
            let out = self.rt(&["state", id]);
            if out.code == 0 {
                let s = out.json();
                if s["status"] == want {
                    return s;
                }
                if start.elapsed() > DEADLINE {
                    panic!(
                        "{id}: status {} after {DEADLINE:?}, want {want}",
                        s["status"]
                    );
                }
            } else if start.elapsed() > DEADLINE {
                panic!("{id}: state failed for {DEADLINE:?}: {out}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls until `cond` holds (bounded).
    pub fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(
                start.elapsed() < DEADLINE,
                "{}: timed out waiting for {what}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ids `list --format json` reports (runc prints `null` for none).
    pub fn list_ids(&self) -> Vec<String> {
        let v = self.rt(&["list", "--format", "json"]).ok().json();
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn assert_nothing_left(&self) {
        let ids = self.list_ids();
        assert!(
            ids.is_empty(),
            "{}: containers left behind: {ids:?}",
            self.name
        );
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        let ids = std::mem::take(&mut *self.ids.lock().unwrap());
        for id in &ids {
            let _ = self.spawn(&["delete", "--force", id], None).wait_quiet();
        }
        if std::thread::panicking() || std::env::var_os("HUSK_KEEP").is_some() {
            eprintln!("{}: kept {}", self.name, self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn copy_tree(src: &Path, dst: &Path, give: &dyn Fn(&Path)) {
    fs::create_dir_all(dst).unwrap();
    let mode = fs::metadata(src).unwrap().permissions().mode();
    fs::set_permissions(dst, fs::Permissions::from_mode(mode)).unwrap();
    give(dst);
    // Unprivileged test runs cannot read root's 0700 dirs (/root): copy them empty.
    let Ok(entries) = fs::read_dir(src) else {
        return;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let ft = entry.file_type().unwrap();
        if ft.is_dir() {
            copy_tree(&from, &to, give);
        } else if ft.is_symlink() {
            symlink(fs::read_link(&from).unwrap(), &to).unwrap();
            give(&to);
        } else if fs::hard_link(&from, &to).is_err() {
            fs::copy(&from, &to).unwrap();
        }
    }
}

/// A config.json being edited; written by [`Ctx::write`].
pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
}

impl Bundle {
    /// process.args = ["/bin/husk-probe", ARGS...].
    pub fn probe(mut self, args: &[&str]) -> Self {
        let mut v = vec!["/bin/husk-probe"];
        v.extend_from_slice(args);
        self.config["process"]["args"] = json!(v);
        self
    }

    /// process.args verbatim.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.config["process"]["args"] = json!(args);
        self
    }

    /// Sets a value by JSON pointer ("/process/cwd"), creating missing objects on the way.
    pub fn set(mut self, pointer: &str, value: Value) -> Self {
        let mut cur = &mut self.config;
        for key in pointer.trim_start_matches('/').split('/') {
            if !cur.is_object() {
                *cur = json!({});
            }
            cur = cur
                .as_object_mut()
                .unwrap()
                .entry(key.to_string())
                .or_insert(Value::Null);
        }
        *cur = value;
        self
    }

    pub fn edit(mut self, f: impl FnOnce(&mut Value)) -> Self {
        f(&mut self.config);
        self
    }
}

/// Extra set-up for one runtime invocation.
#[derive(Default)]
pub struct Launch {
    /// `(n, fd)`: `fd` becomes fd `n` of the runtime, inheritable (no FD_CLOEXEC).
    pub fds: Vec<(RawFd, OwnedFd)>,
    pub env: Vec<(String, String)>,
    /// Set LISTEN_PID to the runtime's own pid (systemd socket activation).
    pub listen_pid: bool,
    /// Start the runtime with SIGHUP and SIGUSR1 ignored (as under nohup, or a shell's trap "").
    pub ignore_signals: bool,
}

impl Launch {
    /// Places the fds in the child only, between fork and exec: the test binary runs cases on
    /// many threads, so clearing FD_CLOEXEC in the parent would leak them into every runtime
    /// another case spawns meanwhile.
    #[allow(unsafe_code)]
    fn inherit(&self, cmd: &mut Command) {
        if self.fds.is_empty() {
            return;
        }
        const MAX: usize = 16;
        assert!(self.fds.len() <= MAX, "at most {MAX} inherited fds");
        let mut fds = [(0 as RawFd, 0 as RawFd); MAX];
        for (slot, (n, f)) in fds.iter_mut().zip(&self.fds) {
            *slot = (*n, f.as_raw_fd());
        }
        let count = self.fds.len();
        // SAFETY: the closure runs in the forked child before exec and only makes raw
        // fcntl/dup2/close syscalls (async-signal-safe; it allocates nothing: the fixed arrays
        // are copied in). Every source is first copied to a fresh fd >= 1000, so a target number
        // that happens to be another source cannot clobber it; then each copy lands on its target
        // via dup2, which leaves FD_CLOEXEC clear, and the copies are closed.
        unsafe {
            cmd.pre_exec(move || {
                let mut high = [0 as RawFd; MAX];
                for i in 0..count {
                    high[i] = fcntl(fds[i].1, FcntlArg::F_DUPFD(1000))?;
                }
                for i in 0..count {
                    dup2(high[i], fds[i].0)?;
                }
                for h in &high[..count] {
                    close(*h)?;
                }
                Ok(())
            });
        }
    }
}

/// A runtime invocation in flight.
pub struct Running {
    child: Child,
    out: PathBuf,
    err: PathBuf,
    line: String,
}

impl Running {
    /// The pid of the process the test spawned (the runtime, or setpriv that exec'd it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn wait(self) -> Out {
        let line = self.line.clone();
        self.wait_quiet()
            .unwrap_or_else(|| panic!("{line}: still running after {DEADLINE:?}"))
    }

    /// Waits (bounded); on timeout kills the runtime and returns None.
    pub fn wait_quiet(mut self) -> Option<Out> {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > DEADLINE {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        Some(Out {
            code,
            stdout: fs::read_to_string(&self.out).unwrap_or_default(),
            stderr: fs::read_to_string(&self.err).unwrap_or_default(),
            line: self.line,
            out_path: self.out,
        })
    }
}

/// A finished runtime invocation.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub line: String,
    /// The file the invocation's stdout went to; a detached container keeps writing there.
    pub out_path: PathBuf,
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited {}\n--- stdout\n{}--- stderr\n{}",
            self.line, self.code, self.stdout, self.stderr
        )
    }
}

impl Out {
    /// Asserts exit 0.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "expected success: {self}");
        self
    }

    /// Asserts a clean failure: exit 1, a non-empty error on stderr, no panic or crash.
    #[track_caller]
    pub fn fails(self) -> Self {
        self.clean_failure(1, "a clean failure (exit 1)")
    }

    /// Asserts a clean failure of `exec` itself: runc exits 255 there (exec.go: fatalWithCode
    /// 255), so it cannot be mistaken for the exec'd process exiting 1.
    #[track_caller]
    pub fn exec_fails(self) -> Self {
        self.clean_failure(255, "exec to fail with 255")
    }

    #[track_caller]
    fn clean_failure(self, code: i32, what: &str) -> Self {
        assert_eq!(self.code, code, "expected {what}: {self}");
        assert!(
            !self.stderr.trim().is_empty(),
            "expected an error message on stderr: {self}"
        );
        assert!(
            !self.stderr.contains("panicked at"),
            "runtime panicked: {self}"
        );
        self
    }

    /// Asserts exit `code`.
    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "expected exit {code}: {self}");
        self
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self}"))
    }

    /// The first stdout line that is a JSON object (husk-probe output).
    #[track_caller]
    pub fn probe(&self) -> Probe {
        Probe::parse(&self.stdout).unwrap_or_else(|| panic!("no probe JSON in stdout: {self}"))
    }

    /// Reads what a detached container wrote to this invocation's stdout so far.
    pub fn later_stdout(&self) -> String {
        fs::read_to_string(&self.out_path).unwrap_or_default()
    }
}

/// husk-probe's report (or one of its one-line action results).
pub struct Probe(pub Value);

impl Probe {
    pub fn parse(text: &str) -> Option<Probe> {
        text.lines()
            .filter(|l| l.starts_with('{'))
            .find_map(|l| serde_json::from_str(l).ok())
            .map(Probe)
    }

    pub fn get(&self, key: &str) -> &Value {
        &self.0[key]
    }

    /// The fd numbers of a report's "fds" list (the probe's `fds` or full report).
    pub fn fds(&self) -> Vec<i64> {
        self.0["fds"]
            .as_array()
            .unwrap_or_else(|| panic!("no fds in probe report: {}", self.0))
            .iter()
            .map(|f| f["fd"].as_i64().unwrap())
            .collect()
    }

    /// Capability names in set `which` ("bounding", "effective", ...).
    pub fn caps(&self, which: &str) -> Vec<String> {
        strings(&self.0["caps"][which]["names"])
    }

    pub fn env(&self, key: &str) -> Option<String> {
        let prefix = format!("{key}=");
        strings(&self.0["env"])
            .into_iter()
            .find_map(|e| e.strip_prefix(&prefix).map(String::from))
    }

    /// The mount at `target` (the last one wins, as in the kernel).
    pub fn mount(&self, target: &str) -> Option<&Value> {
        self.0["mounts"]
            .as_array()?
            .iter()
            .rev()
            .find(|m| m["target"] == target)
    }

    pub fn ns(&self, which: &str) -> u64 {
        self.0["ns"][which]
            .as_u64()
            .unwrap_or_else(|| panic!("no ns {which} in {}", self.0))
    }
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The inode of /proc/<pid>/ns/<which> as seen from the host.
pub fn host_ns(pid: &str, which: &str) -> u64 {
    let t = fs::read_link(format!("/proc/{pid}/ns/{which}")).unwrap();
    let t = t.to_string_lossy();
    t[t.find('[').unwrap() + 1..t.len() - 1].parse().unwrap()
}

/// A directory shared by the cases of one mode in this run (e.g. an image cache several cases
/// import the same image into), owned by that mode's user: `<base>/shared-<name>-<mode>`. Kept
/// until the next run's start removes it.
pub fn shared_dir(t: &Ctx, name: &str) -> PathBuf {
    t.mkdir(&host().base.join(format!("shared-{name}-{}", t.mode)))
}

/// The Debian 12 fixture directory (rootfs/, oci/ with tag bookworm, debian-docker.tar): from
/// HUSK_DEBIAN_FIXTURE, else what `bundles/debian/make-rootfs` prints (instant once built: setup.sh
/// builds it as root; the script needs root only to build). Err says why there is none.
pub fn debian() -> Result<&'static Path, String> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        if let Some(d) = std::env::var_os("HUSK_DEBIAN_FIXTURE") {
            return Ok(PathBuf::from(d));
        }
        let script = host().bundles.join("debian/make-rootfs");
        let out = Command::new(&script)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run {}: {e}", script.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        match stdout.lines().last() {
            Some(d) if out.status.success() => Ok(PathBuf::from(d)),
            _ => Err(format!(
                "no Debian fixture ({} failed: {}); run it as root, or setup.sh",
                script.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    });
    match dir {
        Ok(d) if d.join(".done").exists() => Ok(d.as_path()),
        Ok(d) => Err(format!("Debian fixture {} is incomplete", d.display())),
        Err(e) => Err(e.clone()),
    }
}

/// Does this host give the runtime's user cgroups to manage? Root: yes. Rootless: only on a
/// cgroup v2 host with a delegated, writable subtree (this project's CI VMs are v1: no).
pub fn has_cgroups(mode: Mode) -> bool {
    match mode {
        Mode::Root => true,
        Mode::Rootless => {
            let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
            v2 && std::env::var_os("HUSK_ROOTLESS_CGROUPS").is_some()
        }
    }
}

/// Can `mode`'s launches mount read-only overlays (overlayfs there; Linux 5.11+ in a user
/// namespace)? The launcher uses them for directories an image lacks mount points in.
pub fn overlayfs_for(mode: Mode) -> bool {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut n = release.split(|c: char| !c.is_ascii_digit());
    let mut num = || n.next().and_then(|x| x.parse::<u32>().ok()).unwrap_or(0);
    let version = (num(), num());
    Path::new("/sys/module/overlay").exists() && (mode == Mode::Root || version >= (5, 11))
}
