//! Container state under `<root>/<id>/`: `state.json` (written by temp file + rename), `config.json`
//! (the exact bytes create read), `exec.fifo` (present from create until start).
//!
//! The status is never trusted from disk: it is worked out from the pid and its start time (so a
//! recycled pid reads as stopped), the fifo, and the cgroup freezer.
//!
//! The root is a [`private_dir`] (the caller's, writable by nobody else); each container's
//! directory is 0700 and its files 0600: the saved config may hold secrets (environment values).

mod private;
pub use private::{open_private, private_dir, runtime_dir, tmp_fallback};

use crate::cgroup::Cgroup;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("invalid container id {0:?}: use letters, digits, '_', '+', '-' and '.'")]
    BadId(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container {0} already exists")]
    Exists(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parse {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("lock {path}: {source}")]
    Lock { path: PathBuf, source: nix::Error },
    #[error(
        "refuse directory {path}: {reason}; only a directory of your own that no one else may \
         write is used for state, launches and caches (remove it, or choose another)"
    )]
    NotPrivate { path: PathBuf, reason: String },
}

/// Where we are in the lifecycle, as recorded by the engine (the status adds liveness on top).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Creating,
    Created,
    Started,
}

/// OCI status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What state.json holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub pid: i32,
    /// Field 22 of /proc/PID/stat when the pid was recorded: tells a recycled pid apart.
    pub pid_start: u64,
    pub phase: Phase,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub cgroup: Cgroup,
    pub rootless: bool,
    /// Whether setgroups(2) works in the container's user namespace (exec needs to know).
    #[serde(default = "yes")]
    pub setgroups_allowed: bool,
}

fn yes() -> bool {
    true
}

/// The OCI state document, plus runc's extra keys (rootfs, created, owner), in runc's key order
/// (`list --format json` is matched textually by its users).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A container's state directory.
#[derive(Debug, Clone)]
pub struct Dir {
    pub path: PathBuf,
    pub id: String,
}

pub const FIFO: &str = "exec.fifo";
pub const SAVED_CONFIG: &str = "config.json";
const STATE: &str = "state.json";
const STARTED: &str = "started";

/// runc's id rule: `^[\w+.-]+$`, and not "." or "..".
pub fn validate_id(id: &str) -> Result<(), StateError> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(StateError::BadId(id.to_string()))
    }
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

impl Dir {
    /// Creates `<root>/<id>` (0700) atomically; fails if it exists. The root must be a
    /// [`private_dir`] (made if absent).
    pub fn create(root: &Path, id: &str) -> Result<Dir, StateError> {
        validate_id(id)?;
        private_dir(root)?;
        let path = root.join(id);
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StateError::Exists(id.to_string()))
            }
            Err(e) => return Err(io("create", &path)(e)),
        }
        Ok(Dir {
            path,
            id: id.to_string(),
        })
    }

    /// Opens an existing container's directory.
    pub fn open(root: &Path, id: &str) -> Result<Dir, StateError> {
        validate_id(id)?;
        if !checked_root(root)? {
            return Err(StateError::NotFound(id.to_string()));
        }
        let path = root.join(id);
        if !path.is_dir() {
            return Err(StateError::NotFound(id.to_string()));
        }
        Ok(Dir {
            path,
            id: id.to_string(),
        })
    }

    /// Takes an exclusive lock on the directory for the life of the returned guard.
    pub fn lock(&self) -> Result<Flock<File>, StateError> {
        let f = File::open(&self.path).map_err(io("open", &self.path))?;
        Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, source)| StateError::Lock {
            path: self.path.clone(),
            source,
        })
    }

    pub fn fifo(&self) -> PathBuf {
        self.path.join(FIFO)
    }

    /// `run`'s mark that its init has exec'd: an empty file, so the record is written only once
    /// (a rewrite is a rename over the old file: on ext4 that forces a block allocation, and
    /// deleting the blocks later waits for a discard where the filesystem is mounted with it).
    pub fn mark_started(&self) -> Result<(), StateError> {
        let p = self.path.join(STARTED);
        create_private(&p).map(drop).map_err(io("create", &p))
    }

    fn started(&self) -> bool {
        self.path.join(STARTED).exists()
    }

    pub fn saved_config(&self) -> PathBuf {
        self.path.join(SAVED_CONFIG)
    }

    /// Writes state.json atomically (temp file + rename).
    pub fn save(&self, rec: &Record) -> Result<(), StateError> {
        let tmp = self.path.join(".state.json.tmp");
        let data = serde_json::to_vec(rec).map_err(|source| StateError::Parse {
            path: tmp.clone(),
            source,
        })?;
        let mut f = create_private(&tmp).map_err(io("create", &tmp))?;
        f.write_all(&data).map_err(io("write", &tmp))?;
        let dst = self.path.join(STATE);
        std::fs::rename(&tmp, &dst).map_err(io("rename", &dst))
    }

    /// Writes a file (0600) into the directory (the saved config).
    pub fn write_file(&self, name: &str, data: &[u8]) -> Result<(), StateError> {
        let p = self.path.join(name);
        create_private(&p)
            .and_then(|mut f| f.write_all(data))
            .map_err(io("write", &p))
    }

    /// Reads state.json; `Ok(None)` when create died before writing it.
    pub fn load(&self) -> Result<Option<Record>, StateError> {
        let p = self.path.join(STATE);
        match std::fs::read(&p) {
            Ok(data) => serde_json::from_slice(&data)
                .map(Some)
                .map_err(|source| StateError::Parse { path: p, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &p)(e)),
        }
    }

    /// Removes the directory and everything in it: the files husk writes by name, then the
    /// directory; only if something else is left, a full recursive removal.
    pub fn remove(&self) -> Result<(), StateError> {
        for name in [STARTED, FIFO, SAVED_CONFIG, STATE] {
            match std::fs::remove_file(self.path.join(name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => break,
            }
        }
        match std::fs::remove_dir(&self.path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) => {}
        }
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", &self.path)(e)),
        }
    }
}

/// Creates or truncates `path` with mode 0600 (an existing file keeps its mode: ours, 0600).
fn create_private(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// False when `root` does not exist; an error when it is not a private directory of the caller's
/// (records in a root others can write are theirs to forge: a pid to kill, a cgroup to remove).
fn checked_root(root: &Path) -> Result<bool, StateError> {
    match open_private(root) {
        Ok(_) => Ok(true),
        Err(StateError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Lists container ids under `root` (sorted).
pub fn list(root: &Path) -> Result<Vec<String>, StateError> {
    if !checked_root(root)? {
        return Ok(Vec::new());
    }
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("read", root)(e)),
    };
    let mut ids: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| validate_id(n).is_ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// Start time (clock ticks since boot) of `pid`, from field 22 of /proc/PID/stat.
pub fn pid_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

impl Record {
    /// True when the recorded pid still names the same, living process.
    pub fn alive(&self) -> bool {
        self.pid > 0 && pid_start_time(self.pid) == Some(self.pid_start)
    }

    /// Works the status out from liveness, the fifo and the freezer.
    pub fn status(&self, dir: &Dir) -> Status {
        if !self.alive() {
            return Status::Stopped;
        }
        match self.phase {
            Phase::Creating if !dir.started() => Status::Creating,
            _ if self.cgroup.is_frozen().unwrap_or(false) => Status::Paused,
            _ if dir.fifo().exists() => Status::Created,
            _ => Status::Running,
        }
    }

    pub fn oci(&self, status: Status) -> OciState {
        OciState {
            oci_version: oci_spec::runtime::VERSION.to_string(),
            id: self.id.clone(),
            status,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: self.owner.clone(),
            annotations: self.annotations.clone(),
        }
    }
}

/// Now as RFC 3339 UTC with nanoseconds, as runc prints `created`.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_runc_rules() {
        for ok in ["a", "abc-1.2_x+y", "A9"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", "../x"] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn oci_state_keys_in_runc_order() {
        let s = OciState {
            oci_version: "1.0.2".into(),
            id: "c".into(),
            pid: 7,
            status: Status::Running,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "t".into(),
            owner: "root".into(),
            annotations: BTreeMap::new(),
        };
        let json = serde_json::to_string(&s).unwrap();
        let keys = [
            "ociVersion",
            "id",
            "pid",
            "status",
            "bundle",
            "rootfs",
            "created",
            "owner",
        ];
        let at: Vec<usize> = keys
            .iter()
            .map(|k| json.find(&format!("\"{k}\"")).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{json}");
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951782400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1795392000, 0), "2026-11-23T00:00:00.000000000Z");
    }

    #[test]
    fn own_start_time_is_readable_and_stable() {
        let me = std::process::id() as i32;
        let a = pid_start_time(me).unwrap();
        assert_eq!(Some(a), pid_start_time(me));
    }
}
