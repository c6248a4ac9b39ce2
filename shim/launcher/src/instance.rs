//! Instances: named launcher containers left running in the background (`husk instance`). Pure
//! pieces only: names, ids, TTL parsing, the per-instance record and where files live. The CLI
//! spawns, watches and stops them through the engine.
//!
//! Files, beside the state root `R` (so `/run/husk-instances`, `$XDG_RUNTIME_DIR/husk-instances`):
//! `R-instances/NAME.json` (this record), `NAME.log` (the instance's stdout and stderr, and the
//! watcher's own messages; kept after stop, replaced by the next start of NAME) and `NAME/` (the
//! launch directory: config.json and mounts, removed at stop).

use serde::{Deserialize, Serialize};
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
}
