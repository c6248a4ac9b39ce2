//! Instances: named launcher containers left running in the background (`husk instance`). No
//! engine work here: names, ids, TTL parsing, the per-instance record, where files live, and
//! reading and writing the records (under [`lock`]). The CLI spawns, watches and stops them
//! through the engine.
//!
//! Files, beside the state root `R` (so `/run/husk-instances`, `$XDG_RUNTIME_DIR/husk-instances`):
//! `R-instances/NAME.json` (this record), `NAME.log` (the instance's stdout and stderr, and the
//! watcher's own messages; kept after stop, replaced by the next start of NAME) and `NAME/` (the
//! launch directory: config.json and mounts, removed at stop).

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Container ids of instances are this prefix + the name.
pub const ID_PREFIX: &str = "inst-";

/// `husk exec instance://NAME` addresses a running instance.
pub const URI_SCHEME: &str = "instance://";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InstanceError {
    #[error("invalid instance name {0:?}: want 1-64 of [A-Za-z0-9_.-], starting alphanumeric")]
    Name(String),
    #[error("invalid --ttl {0:?}: want a number with s, m, h or d (e.g. 90s, 10m, 2h)")]
    Ttl(String),
}

/// Reading or writing the records.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
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
}

/// How long the watcher gives the program after SIGTERM when the TTL passes.
pub const TTL_GRACE: Duration = Duration::from_secs(10);

/// What `instance start` records and `list`/`stop`/the watcher read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    /// The engine's container id ([`ID_PREFIX`] + name).
    pub id: String,
    pub image: String,
    /// State root the container lives under.
    pub root: PathBuf,
    /// RFC 3339 start time.
    pub started: String,
    /// Seconds since the epoch after which the watcher stops the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// The watcher process (it waits for the container and enforces the TTL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watcher: Option<i32>,
    /// Once the program exited by itself (not stopped): its status (128+N for signal N). The
    /// record stays, listed as exited, until `instance stop` removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// RFC 3339 time the program exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    /// Started with `--sandbox`: `exec instance://NAME` passes none of the caller's environment.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sandbox: bool,
    /// The sandbox's `--workspace`, as it was lent: given back at stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lent: Option<crate::sandbox::Lent>,
    /// The sandbox's workspace made for it (no `--workspace`): removed at stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch: Option<PathBuf>,
}

impl Record {
    /// Well past its deadline (the TTL, the watcher's grace and half a minute): its watcher must
    /// have been killed, and whoever lists the instances reaps it.
    pub fn orphaned(&self, now: u64) -> bool {
        self.expires
            .is_some_and(|e| now > e + TTL_GRACE.as_secs() + 30)
    }
}

/// Checks NAME: short, and safe both as a file name and inside a container id.
pub fn validate_name(name: &str) -> Result<(), InstanceError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(InstanceError::Name(name.to_string()))
    }
}

pub fn container_id(name: &str) -> String {
    format!("{ID_PREFIX}{name}")
}

/// `instance://NAME` → `Some(NAME)`.
pub fn from_uri(arg: &str) -> Option<&str> {
    arg.strip_prefix(URI_SCHEME)
}

/// Parses `90`, `90s`, `10m`, `2h`, `1d`.
pub fn parse_ttl(s: &str) -> Result<Duration, InstanceError> {
    let bad = || InstanceError::Ttl(s.to_string());
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(bad()),
    };
    n.checked_mul(mult)
        .filter(|&s| s > 0)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

/// The instances directory for state root `root`: its sibling `<root>-instances`.
pub fn dir_for(root: &Path) -> PathBuf {
    let mut name = root.file_name().unwrap_or_default().to_os_string();
    name.push("-instances");
    root.with_file_name(name)
}

/// Paths of one instance under [`dir_for`].
pub struct Paths {
    pub record: PathBuf,
    pub log: PathBuf,
    pub bundle: PathBuf,
}

pub fn paths(dir: &Path, name: &str) -> Paths {
    Paths {
        record: dir.join(format!("{name}.json")),
        log: dir.join(format!("{name}.log")),
        bundle: dir.join(name),
    }
}

/// Seconds left before `expires` at `now` (0 once past).
pub fn remaining(expires: u64, now: u64) -> u64 {
    expires.saturating_sub(now)
}

/// Seconds since the epoch, now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { op, path, source }
}

pub fn read_record(path: &Path) -> Result<Record, StoreError> {
    let data = std::fs::read(path).map_err(io_error("read", path))?;
    serde_json::from_slice(&data).map_err(|source| StoreError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes by temp file + rename, so readers never see half a record.
pub fn write_record(dir: &Path, rec: &Record) -> Result<(), StoreError> {
    let p = paths(dir, &rec.name);
    let tmp = dir.join(format!(".{}.json.tmp", rec.name));
    let data = serde_json::to_vec(rec).expect("a Record serialises");
    std::fs::write(&tmp, data).map_err(io_error("write", &tmp))?;
    std::fs::rename(&tmp, &p.record).map_err(io_error("write", &p.record))
}

/// Every record in `dir`, by name.
pub fn records(dir: &Path) -> Result<Vec<Record>, StoreError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("read", dir)(e)),
    };
    let mut out: Vec<Record> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| read_record(&p).ok())
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Serialises the cleanups of instance `name` (stop vs. the watcher seeing the exit); one lock per
/// instance, so that stopping several runs in parallel.
pub fn lock(dir: &Path, name: &str) -> Result<Flock<File>, StoreError> {
    let path = dir.join(format!(".{name}.lock"));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_error("open", &path))?;
    Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, source)| StoreError::Lock { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["web", "a", "db-1", "x_y.z", "A9"] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "-x", ".x", "a/b", "a b", "a:b", &"n".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_ttl("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_ttl("1d"), Ok(Duration::from_secs(86400)));
        for bad in ["", "0", "s", "1.5h", "5x", "-1s", "99999999999999999999d"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn layout() {
        assert_eq!(
            dir_for(Path::new("/run/husk")),
            PathBuf::from("/run/husk-instances")
        );
        let p = paths(Path::new("/run/husk-instances"), "web");
        assert_eq!(p.log, PathBuf::from("/run/husk-instances/web.log"));
        assert_eq!(p.bundle, PathBuf::from("/run/husk-instances/web"));
        assert_eq!(from_uri("instance://web"), Some("web"));
        assert_eq!(from_uri("./web"), None);
        assert_eq!(container_id("web"), "inst-web");
        assert_eq!(remaining(10, 4), 6);
        assert_eq!(remaining(10, 40), 0);
    }

    #[test]
    fn records_round_trip_sorted_by_name() {
        let dir = std::env::temp_dir().join(format!("husk-instances-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rec = |name: &str, expires| Record {
            name: name.into(),
            id: container_id(name),
            image: "./img".into(),
            root: "/run/husk".into(),
            started: "2024-01-01T00:00:00Z".into(),
            expires,
            watcher: None,
            exit_code: None,
            finished: None,
            sandbox: false,
            lent: None,
            scratch: None,
        };
        let _lock = lock(&dir, "web").unwrap();
        for r in [rec("web", Some(100)), rec("db", None)] {
            write_record(&dir, &r).unwrap();
        }
        std::fs::write(dir.join("junk.json"), "{").unwrap();
        let all = records(&dir).unwrap();
        assert_eq!(all, [rec("db", None), rec("web", Some(100))]);
        assert_eq!(read_record(&paths(&dir, "web").record).unwrap(), all[1]);
        let e = read_record(&dir.join("junk.json")).unwrap_err();
        assert!(e.to_string().starts_with("parse "), "{e}");
        assert!(!all[1].orphaned(100 + TTL_GRACE.as_secs() + 30));
        assert!(all[1].orphaned(100 + TTL_GRACE.as_secs() + 31));
        assert!(!all[0].orphaned(u64::MAX));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(records(&dir).unwrap().is_empty());
    }
}
