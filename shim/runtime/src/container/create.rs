//! create and run: config → plan → clone → record. A failure at any step removes what was made
//! (process, cgroup, state directory), so no half-created container is ever left behind.

use super::{ContainerError, CreateOptions, GlobalOptions};
use crate::cgroup::Cgroup;
use crate::ns::{self, NsPlan};
use crate::process::{self, hooks, InitContext, Spawned, StartWait};
use crate::security::seccomp;
use crate::state::{self, Dir, Phase, Record, Status};
use crate::{rootfs, spec};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Whether the init waits on exec.fifo for `start` (create) or on the sync channel (run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMode {
    Create,
    Run,
}

/// A created container: the init is blocked before exec (create) or ready for [`Created::release`].
#[derive(Debug)]
pub struct Created {
    pub dir: Dir,
    pub record: Record,
    pub spawned: Spawned,
    pub spec: Spec,
    /// One-line warnings the CLI should log (e.g. running without cgroups).
    pub warnings: Vec<String>,
    /// With `run` and a terminal but no --console-socket: our end of the console socket.
    pub console: Option<OwnedFd>,
}

/// CVE-2019-5736 with CAP_SYS_PTRACE: see [`crate::process::exec_stub::ptrace_exposed`].
pub(super) fn needs_sealed(
    caps: Option<&oci_spec::runtime::LinuxCapabilities>,
    userns: bool,
) -> bool {
    use crate::process::exec_stub::{ptrace_exposed, running_sealed};
    ns::privileged() && ptrace_exposed(caps, userns) && !running_sealed()
}

/// Creates container `id` from `opts.bundle`.
pub fn create(
    g: &GlobalOptions,
    id: &str,
    opts: &CreateOptions,
    mode: CreateMode,
) -> Result<Created, ContainerError> {
    state::validate_id(id)?;
    let bundle = std::fs::canonicalize(&opts.bundle).map_err(|source| ContainerError::Io {
        op: "open bundle",
        path: opts.bundle.clone(),
        source,
    })?;
    let mut loaded = spec::load(&bundle)?;
    // Logged now, not handed back with Created: they explain a create that then fails (an unknown
    // capability dropped from the bounding set makes capset refuse the rest, as under runc).
    for w in std::mem::take(&mut loaded.warnings) {
        log::warn!("{w}");
    }
    spec::validate(&loaded.spec, &bundle)?;
    let process = loaded.spec.process().as_ref();
    let userns = spec::namespace(&loaded.spec, LinuxNamespaceType::User).is_some();
    let caps = process.and_then(|p| p.capabilities().as_ref());
    if needs_sealed(caps, userns) {
        return Err(ContainerError::NotSealed);
    }
    let dir = Dir::create(&g.root, id)?;
    let mut cgroup_made: Option<Cgroup> = None;
    let res = build(g, id, opts, mode, &bundle, loaded, &dir, &mut cgroup_made);
    if res.is_err() {
        if let Some(cg) = cgroup_made {
            if let Err(e) = cg.remove() {
                log::warn!("remove cgroup of failed container {id}: {e}");
            }
        }
        if let Err(e) = dir.remove() {
            log::warn!("remove state of failed container {id}: {e}");
        }
    }
    res
}

#[allow(clippy::too_many_arguments)]
fn build(
    g: &GlobalOptions,
    id: &str,
    opts: &CreateOptions,
    mode: CreateMode,
    bundle: &Path,
    loaded: spec::Loaded,
    dir: &Dir,
    cgroup_made: &mut Option<Cgroup>,
) -> Result<Created, ContainerError> {
    let spec = loaded.spec;
    let linux = spec.linux().clone().unwrap_or_default();
    let process = spec.process().clone().unwrap_or_default();
    let mut warnings = Vec::new();

    let (cgroup, warn) = Cgroup::prepare(
        linux.cgroups_path().as_deref(),
        id,
        &crate::cgroup::Options {
            rootless: g.rootless,
            ..g.cgroup.clone()
        },
    )?;
    warnings.extend(warn);
    // A process moved into a frozen cgroup stops: create would wait for it forever (runc
    // refuses the same way).
    if cgroup.is_frozen().unwrap_or(false) {
        return Err(ContainerError::Frozen(cgroup.path.display().to_string()));
    }
    let ns_plan = NsPlan::from_spec(&spec)?;
    if !ns_plan.has_mount_ns() {
        warnings.push(format!(
            "container {id} has no mount namespace: its rootfs is entered with chroot and its mounts, \
             masked and read-only paths are not applied (husk never mounts on the host)"
        ));
    }
    let userns = ns_plan.new_userns() || spec::namespace(&spec, LinuxNamespaceType::User).is_some();
    let euid = nix::unistd::geteuid();
    let rootfs_plan = rootfs::plan(
        &spec,
        bundle,
        &rootfs::Options {
            rootless: !euid.is_root() || ns::in_user_ns() || userns,
            userns,
            no_pivot: opts.no_pivot,
        },
    )?;
    let uid_maps = linux.uid_mappings().clone().unwrap_or_default();
    let gid_maps = linux.gid_mappings().clone().unwrap_or_default();
    let setgroups_allowed = !ns_plan.new_userns() || !ns::setgroups_denied(&gid_maps);
    let rootfs_path = rootfs_plan.rootfs.clone();
    let base = spec_context(
        &spec,
        process.clone(),
        ns_plan,
        rootfs_plan,
        opts,
        setgroups_allowed,
    )?;

    let (console, our_console) = console_for(&process, opts, mode)?;
    let start = match mode {
        CreateMode::Run => StartWait::Channel,
        CreateMode::Create => open_fifo(&dir.fifo())?,
    };
    let mut record = Record {
        id: id.to_string(),
        pid: 0,
        pid_start: 0,
        phase: Phase::Creating,
        bundle: bundle.to_path_buf(),
        rootfs: rootfs_path,
        created: state::now_rfc3339(),
        // Filled in after clone, with the other work the init does not wait for.
        owner: String::new(),
        annotations: spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        cgroup: cgroup.clone(),
        rootless: g.rootless,
        setgroups_allowed,
    };
    let hooks = spec.hooks().clone().unwrap_or_default();
    let none =
        |h: &Option<Vec<oci_spec::runtime::Hook>>| h.as_deref().unwrap_or_default().is_empty();
    let overlap =
        none(hooks.prestart()) && none(hooks.create_runtime()) && none(hooks.create_container());
    // The init moves itself into its cgroup at [1b] (see Cgroup::self_join_files) when nothing
    // needs it there earlier (no hooks before [1b]) and it can reach the host's cgroupfs as itself:
    // its mount namespace is new or the host's, and it is in no user namespace.
    let can_self_join = overlap
        && !base.ns.new_userns()
        && !base
            .ns
            .joins
            .iter()
            .any(|(t, _, _)| matches!(t, LinuxNamespaceType::Mount | LinuxNamespaceType::User));
    let join_cgroup = match can_self_join {
        true => cgroup.self_join_files()?,
        false => Vec::new(),
    };
    // Empty on v2, systemd and without cgroups: the parent attaches then.
    let self_join = !join_cgroup.is_empty();
    let ctx = InitContext {
        console,
        console_size: process
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16)),
        start,
        hooks_create_container: hooks.create_container().clone().unwrap_or_default(),
        hooks_start_container: hooks.start_container().clone().unwrap_or_default(),
        state_json: state_json(&record, Status::Creating),
        overlap_cgroup_setup: overlap,
        join_cgroup,
        fetch_bind_sources: process::sources::wanted(
            ns::privileged(),
            base.ns.new_userns(),
            base.rootfs.as_ref(),
        ),
        ..base
    };
    let resources = linux.resources().clone();
    let userns_new = ctx.ns.new_userns();
    let map = |pid: Pid| -> Result<(), ContainerError> {
        if userns_new {
            ns::write_id_maps(pid, &uid_maps, &gid_maps)?;
        }
        Ok(())
    };
    let spawned = process::spawn_init(&ctx, map, |pid: Pid| -> Result<(), ContainerError> {
        record.pid = pid.as_raw();
        record.pid_start = state::pid_start_time(pid.as_raw()).unwrap_or(0);
        // Saved before the cgroup is made: if husk dies from here on, delete --force knows the
        // init and the cgroup. (Dying earlier leaves no cgroup, and the init dies with us.) The
        // saved config first: whoever finds the record may read it.
        dir.write_file(state::SAVED_CONFIG, &loaded.raw)?;
        record.owner = owner_name(euid.as_raw());
        dir.save(&record)?;
        *cgroup_made = Some(cgroup.clone());
        if self_join {
            cgroup.make_for_self_join(resources.as_ref())?;
        } else {
            cgroup.enter(pid.as_raw(), resources.as_ref())?;
        }
        let json = state_json(&record, Status::Creating);
        let at = hooks::At {
            cwd: Some(bundle),
            ..hooks::At::default()
        };
        hooks::run(
            "prestart",
            hooks.prestart().as_deref().unwrap_or_default(),
            &json,
            &at,
        )?;
        hooks::run(
            "createRuntime",
            hooks.create_runtime().as_deref().unwrap_or_default(),
            &json,
            &at,
        )?;
        Ok(())
    })?;
    if let Some(l) = spawned.landlock.as_ref().filter(|l| !l.enforced) {
        warnings.push(format!(
            "container {id}: landlock not enforced ({}): writes are limited by the mounts only",
            l.reason.as_deref().unwrap_or("unknown reason")
        ));
    }
    // `create` must record Created: the caller exits here. `run` marks the start instead
    // (Created::release).
    let saved = match mode {
        CreateMode::Create => {
            record.phase = Phase::Created;
            dir.save(&record).map_err(ContainerError::from)
        }
        CreateMode::Run => Ok(()),
    };
    if let Err(e) = saved.and_then(|()| write_pid_file(opts.pid_file.as_deref(), spawned.pid)) {
        process::reap_killed(spawned.pid);
        return Err(e);
    }
    Ok(Created {
        dir: dir.clone(),
        record,
        spawned,
        spec,
        warnings,
        console: our_console,
    })
}

impl Created {
    /// `run` in the foreground, once the container is over: [`super::ops::delete`] (forced) from
    /// what is in memory, without reading the record and the config back.
    pub fn remove(self) -> Result<Vec<String>, ContainerError> {
        let spec = self.spec;
        let c = super::Container {
            dir: self.dir,
            record: Some(self.record),
        };
        super::ops::delete_with(&c, true, Some(&spec))
    }

    /// `run`: lets the init exec, records it as started, runs poststart hooks (failures are warnings,
    /// returned for the CLI to log).
    pub fn release(&mut self) -> Result<Vec<String>, ContainerError> {
        process::release(&self.spawned)?;
        self.dir.mark_started()?;
        self.record.phase = Phase::Started;
        Ok(poststart(&self.spec, &self.record))
    }
}

/// The init's context as the spec decides it, for both ways of starting a container (the cloned
/// init of create/run and the in-place run): seccomp compiled (cached), the final environment and
/// every namespace, rootfs and process setting. No console, a channel start, no container-side
/// hooks and no state JSON: callers that have them set those fields.
pub(super) fn spec_context(
    spec: &Spec,
    process: oci_spec::runtime::Process,
    ns: NsPlan,
    rootfs: rootfs::Plan,
    opts: &CreateOptions,
    setgroups_allowed: bool,
) -> Result<InitContext, ContainerError> {
    let linux = spec.linux().clone().unwrap_or_default();
    let seccomp = match linux.seccomp() {
        Some(s) => Some(seccomp::compile(s, seccomp_cache_dir().as_deref())?),
        None => None,
    };
    let (env, preserve_fds) = final_env(&process, opts.preserve_fds);
    Ok(InitContext {
        env,
        ns,
        rootfs: Some(rootfs),
        seccomp,
        console: None,
        console_size: None,
        start: StartWait::Channel,
        preserve_fds,
        no_new_keyring: opts.no_new_keyring,
        setgroups_allowed,
        protect_exe: ns::privileged(),
        die_with_parent: opts.die_with_parent,
        exec_stub: crate::process::exec_stub::ExecStub::wanted().map_err(|source| {
            ContainerError::Sys {
                op: "create exec stub",
                source,
            }
        })?,
        hostname: spec.hostname().clone(),
        domainname: spec.domainname().clone(),
        sysctl: linux
            .sysctl()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        process_oom_score_adj: process.oom_score_adj(),
        overlap_cgroup_setup: false,
        join_cgroup: Vec::new(),
        landlock: spec::landlock(spec)?,
        time_offsets: time_offsets(&linux),
        reset_cpu_affinity: opts.reset_cpu_affinity,
        fetch_bind_sources: false,
        hooks_create_container: Vec::new(),
        hooks_start_container: Vec::new(),
        state_json: Vec::new(),
        process,
    })
}

/// `linux.timeOffsets` as /proc/PID/timens_offsets lines.
fn time_offsets(linux: &oci_spec::runtime::Linux) -> String {
    linux
        .time_offsets()
        .iter()
        .flatten()
        .map(|(clock, o)| {
            format!(
                "{clock} {} {}\n",
                o.secs().unwrap_or(0),
                o.nanosecs().unwrap_or(0)
            )
        })
        .collect()
}

/// Runs poststart hooks; a failure is a warning and the others still run, as the spec says.
pub(super) fn poststart(spec: &Spec, record: &Record) -> Vec<String> {
    let Some(h) = spec.hooks() else {
        return Vec::new();
    };
    let json = state_json(record, Status::Running);
    let at = hooks::At {
        cwd: Some(&record.bundle),
        ..hooks::At::default()
    };
    hooks::run_all(
        "poststart",
        h.poststart().as_deref().unwrap_or_default(),
        &json,
        &at,
    )
}

pub(super) fn state_json(record: &Record, status: Status) -> Vec<u8> {
    serde_json::to_vec(&record.oci(status)).unwrap_or_default()
}

fn console_for(
    process: &oci_spec::runtime::Process,
    opts: &CreateOptions,
    mode: CreateMode,
) -> Result<(Option<OwnedFd>, Option<OwnedFd>), ContainerError> {
    if !process.terminal().unwrap_or(false) {
        if opts.console_socket.is_some() {
            return Err(ContainerError::Usage(
                "--console-socket given but process.terminal is false",
            ));
        }
        return Ok((None, None));
    }
    match (&opts.console_socket, mode) {
        (Some(path), _) => Ok((Some(connect_console(path)?), None)),
        (None, CreateMode::Run) => {
            let (a, b) = nix::sys::socket::socketpair(
                nix::sys::socket::AddressFamily::Unix,
                nix::sys::socket::SockType::Stream,
                None,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            )
            .map_err(|source| ContainerError::Sys {
                op: "make console socket",
                source,
            })?;
            Ok((Some(b), Some(a)))
        }
        (None, CreateMode::Create) => Err(ContainerError::Usage(
            "process.terminal is true: create needs --console-socket",
        )),
    }
}

/// Connects to a --console-socket (a path on the host, reachable only before pivot_root).
pub(super) fn connect_console(path: &Path) -> Result<OwnedFd, ContainerError> {
    std::os::unix::net::UnixStream::connect(path)
        .map(OwnedFd::from)
        .map_err(|source| ContainerError::Io {
            op: "connect to --console-socket",
            path: path.to_path_buf(),
            source,
        })
}

/// exec.fifo: the init holds both ends and blocks reading until `start` writes one byte.
fn open_fifo(path: &Path) -> Result<StartWait, ContainerError> {
    let io = |op: &'static str| {
        move |e: nix::Error| ContainerError::Io {
            op,
            path: path.to_path_buf(),
            source: std::io::Error::from(e),
        }
    };
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o600)).map_err(io("make exec fifo"))?;
    let open = |flags: OFlag| -> Result<OwnedFd, ContainerError> {
        std::fs::OpenOptions::new()
            .read(flags.contains(OFlag::O_RDONLY) && !flags.contains(OFlag::O_WRONLY))
            .write(flags.contains(OFlag::O_WRONLY))
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map(OwnedFd::from)
            .map_err(|source| ContainerError::Io {
                op: "open exec fifo",
                path: path.to_path_buf(),
                source,
            })
    };
    use std::os::unix::fs::OpenOptionsExt;
    let read = open(OFlag::O_RDONLY)?;
    let write = open(OFlag::O_WRONLY)?;
    Ok(StartWait::Fifo { read, write })
}

/// process.env, plus systemd socket activation passed through (LISTEN_FDS become preserved fds).
fn final_env(process: &oci_spec::runtime::Process, preserve: u32) -> (Vec<String>, u32) {
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    let listen: u32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if listen > 0 {
        env.retain(|kv| !kv.starts_with("LISTEN_FDS=") && !kv.starts_with("LISTEN_PID="));
        env.push(format!("LISTEN_FDS={listen}"));
        env.push("LISTEN_PID=1".to_string());
    }
    (env, preserve.max(listen))
}

fn write_pid_file(path: Option<&Path>, pid: Pid) -> Result<(), ContainerError> {
    let Some(path) = path else { return Ok(()) };
    let tmp = tmp_sibling(path);
    std::fs::write(&tmp, pid.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| ContainerError::Io {
            op: "write pid file",
            path: path.to_path_buf(),
            source,
        })
}

pub(super) fn tmp_sibling(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".husk-tmp");
    path.with_file_name(format!(".{}", name.to_string_lossy()))
}

/// The user name for `uid` from /etc/passwd, or the number. Read directly, as runc does, rather than
/// through NSS: no nsswitch.conf/nscd round trips on every create, and it works in a static build,
/// where glibc's NSS cannot load its modules.
fn owner_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| passwd_name(&text, uid))
        .unwrap_or_else(|| uid.to_string())
}

fn passwd_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?;
        (!name.is_empty() && id.parse() == Ok(uid)).then(|| name.to_string())
    })
}

/// $XDG_CACHE_HOME/husk/seccomp (or ~/.cache), /var/cache/husk/seccomp for root; only a
/// private directory (whoever writes it chooses the filters), else no cache.
fn seccomp_cache_dir() -> Option<PathBuf> {
    let dir = if nix::unistd::geteuid().is_root() && !ns::in_user_ns() {
        PathBuf::from("/var/cache/husk/seccomp")
    } else {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        base.join("husk/seccomp")
    };
    match state::private_dir(&dir) {
        Ok(_) => Some(dir),
        Err(e) => {
            log::warn!("seccomp cache not used: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::passwd_name;

    #[test]
    fn passwd_lookup() {
        let text = "root:x:0:0:root:/root:/bin/bash\n# comment\nbad\ntuser:x:1001:1001::/home/tuser:/bin/sh\n";
        assert_eq!(passwd_name(text, 0).as_deref(), Some("root"));
        assert_eq!(passwd_name(text, 1001).as_deref(), Some("tuser"));
        assert_eq!(passwd_name(text, 7), None);
    }
}
