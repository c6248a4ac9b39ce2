//! The facade the CLI calls: create, start, state, kill, delete, exec, pause, resume, ps, update,
//! events. Each operation opens the state directory, takes its lock, and works the status out from
//! the living process (see [`crate::state`]).

mod create;
mod exec;
mod inplace;
mod ops;

pub use create::{create, CreateMode, Created};
pub use exec::{exec, exec_process, ExecOverrides};
pub use inplace::{blocker as in_place_blocker, InPlace};
pub use ops::{delete, kill, pause, resume, update, wait_exit};

use crate::cgroup::{self, Cgroup};
use crate::state::{self, Dir, Record, Status};
use std::path::PathBuf;

/// Errors of container operations. Each names the container and the step.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    #[error(transparent)]
    Ns(#[from] crate::ns::NsError),
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::RootfsError),
    #[error(transparent)]
    Cgroup(#[from] cgroup::CgroupError),
    #[error(transparent)]
    Seccomp(#[from] crate::security::seccomp::SeccompError),
    #[error(transparent)]
    Process(#[from] crate::process::ProcessError),
    #[error(transparent)]
    Hook(#[from] crate::process::hooks::HookError),
    #[error("container {id} is {status}: cannot {op}")]
    WrongState {
        id: String,
        status: Status,
        op: &'static str,
    },
    /// runc's wording: tools match on it.
    #[error("container {0} is paused: cannot exec in a paused container (resume it first)")]
    ExecPaused(String),
    #[error("container {0} has no state yet (its create is still running, or died); delete --force removes it")]
    Incomplete(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{op}: {source}")]
    Sys {
        op: &'static str,
        source: nix::Error,
    },
    #[error("{0}")]
    Usage(&'static str),
    #[error("container's cgroup unexpectedly frozen: {0} (thaw or remove it)")]
    Frozen(String),
    #[error("container {0} runs without a cgroup: {1} needs one")]
    NoCgroup(String, &'static str),
    /// The container may ptrace husk's processes (CAP_SYS_PTRACE, no user namespace): husk must
    /// run from a sealed copy of itself first (`process::exec_stub::reexec_sealed`).
    #[error("the container can ptrace the runtime (CAP_SYS_PTRACE without a user namespace): run husk from a sealed copy of itself (husk's CLI does)")]
    NotSealed,
}

/// Global options (from the CLI's global flags).
#[derive(Debug, Clone)]
pub struct GlobalOptions {
    /// State root (/run/husk, or $XDG_RUNTIME_DIR/husk when rootless).
    pub root: PathBuf,
    /// Resolved `--rootless`: cgroup failures degrade to a warning instead of an error.
    pub rootless: bool,
    pub cgroup: cgroup::Options,
}

/// Options of create/run.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// Give the container every CPU instead of the caller's affinity (the OCI verbs, as runc).
    pub reset_cpu_affinity: bool,
    /// The init keeps PR_SET_PDEATHSIG (SIGKILL) through exec: a supervisor that is killed (the
    /// launcher's `exec|run IMAGE`, `--sandbox`) takes the container with it, its pid namespace
    /// and all. Off for the OCI verbs, whose containers outlive `create`, as runc's do.
    pub die_with_parent: bool,
}

/// Options of exec.
#[derive(Debug, Default)]
pub struct ExecOptions {
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// Our end is kept by the caller (foreground `exec --tty` proxies the terminal itself).
    pub console_fd: Option<std::os::fd::OwnedFd>,
    pub detach: bool,
    pub preserve_fds: u32,
    /// See [`CreateOptions::reset_cpu_affinity`].
    pub reset_cpu_affinity: bool,
    /// Exec into a paused container too (runc's `--ignore-paused`): the process starts frozen
    /// and runs once the container is resumed.
    pub ignore_paused: bool,
    /// `exec --cgroup` values: sub-cgroups of the container's to join (see `Cgroup::exec_dirs`).
    pub cgroup: Vec<String>,
}

/// A container known to the engine: its directory and (when create got that far) its record.
#[derive(Debug)]
pub struct Container {
    pub dir: Dir,
    pub record: Option<Record>,
}

impl Container {
    /// Opens `id` under the global root.
    pub fn open(g: &GlobalOptions, id: &str) -> Result<Container, ContainerError> {
        let dir = Dir::open(&g.root, id)?;
        let record = dir.load()?;
        Ok(Container { dir, record })
    }

    pub fn id(&self) -> &str {
        &self.dir.id
    }

    /// The record, or an error telling the user how to clean up a half-created container.
    pub fn record(&self) -> Result<&Record, ContainerError> {
        self.record
            .as_ref()
            .ok_or_else(|| ContainerError::Incomplete(self.dir.id.clone()))
    }

    pub fn status(&self) -> Status {
        match &self.record {
            Some(r) => r.status(&self.dir),
            None => Status::Stopped,
        }
    }

    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.record.as_ref().map(|r| &r.cgroup)
    }

    /// OCI state document.
    pub fn state(&self) -> Result<state::OciState, ContainerError> {
        let r = self.record()?;
        Ok(r.oci(r.status(&self.dir)))
    }

    /// Pids of every process in the container: from the cgroup, or from the pid namespace.
    pub fn pids(&self) -> Result<Vec<i32>, ContainerError> {
        let r = self.record()?;
        if !r.alive() {
            return Ok(Vec::new());
        }
        if r.cgroup.is_enabled() {
            return Ok(r.cgroup.pids()?);
        }
        Ok(pids_in_pidns_of(r.pid))
    }

    pub(crate) fn require(
        &self,
        op: &'static str,
        ok: &[Status],
    ) -> Result<Status, ContainerError> {
        let status = self.status();
        if ok.contains(&status) {
            Ok(status)
        } else {
            Err(ContainerError::WrongState {
                id: self.dir.id.clone(),
                status,
                op,
            })
        }
    }
}

/// Every pid whose pid namespace is that of `init` (used when there is no cgroup to ask).
fn pids_in_pidns_of(init: i32) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(format!("/proc/{init}/ns/pid")) else {
        return Vec::new();
    };
    let mine = std::fs::metadata("/proc/self/ns/pid").map(|m| m.ino()).ok();
    if mine == Some(target.ino()) {
        // The container shares our pid namespace: only the init is known to be its.
        return vec![init];
    }
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::metadata(format!("/proc/{p}/ns/pid"))
                .map(|m| m.ino() == target.ino() && m.dev() == target.dev())
                .unwrap_or(false)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Ids under the root with their containers (for `list`).
pub fn list(g: &GlobalOptions) -> Result<Vec<Container>, ContainerError> {
    let mut out = Vec::new();
    for id in state::list(&g.root)? {
        if let Ok(c) = Container::open(g, &id) {
            out.push(c);
        }
    }
    Ok(out)
}
