//! config.json: load, validate. No syscalls beyond reading the file and checking the rootfs exists.
//! Every rule we reject lives here and the error names the config key.

pub mod sysctl;

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::path::{Path, PathBuf};

mod compat;

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parse {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("invalid config.json: {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// A loaded config and the exact bytes it came from (kept in the state dir, never re-serialised).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub spec: Spec,
    pub raw: Vec<u8>,
    /// What was ignored to accept it (unknown capabilities), one line each, for the caller to log.
    pub warnings: Vec<String>,
}

/// The paths annotation run.husk.landlock.write limits writes to; None without the annotation.
pub fn landlock(spec: &Spec) -> Result<Option<Vec<PathBuf>>, SpecError> {
    use crate::security::landlock::{parse, ANNOTATION};
    let Some(value) = spec.annotations().as_ref().and_then(|a| a.get(ANNOTATION)) else {
        return Ok(None);
    };
    parse(value)
        .map(Some)
        .map_err(|e| invalid("annotations", format!("{ANNOTATION}: {e}")))
}

/// Reads and parses `<bundle>/config.json`.
pub fn load(bundle: &Path) -> Result<Loaded, SpecError> {
    load_file(&bundle.join("config.json"))
}

/// Reads and parses a config (or saved copy) at `path`.
pub fn load_file(path: &Path) -> Result<Loaded, SpecError> {
    let raw = read_regular(path).map_err(|source| SpecError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let (spec, warnings) = parse(&raw).map_err(|source| SpecError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Loaded {
        spec,
        raw,
        warnings,
    })
}

/// Parses config.json's bytes (with [compat]'s fixes when the strict parse fails); the
/// warnings say what was dropped. The fuzz target `config_json` starts here.
pub fn parse(raw: &[u8]) -> Result<(Spec, Vec<String>), serde_json::Error> {
    match serde_json::from_slice(raw) {
        Ok(spec) => Ok((spec, Vec::new())),
        Err(e) => compat::reparse(raw).ok_or(e),
    }
}

/// The fuzz targets' entry point: parse, then validate what parses (against a bundle that has no
/// rootfs, so a relative root.path stops there; an absolute one goes on).
#[doc(hidden)]
pub fn fuzz_entry(raw: &[u8]) {
    if let Ok((spec, _)) = parse(raw) {
        let _ = validate(&spec, Path::new("/nonexistent-husk-bundle"));
        let _ = landlock(&spec);
    }
}

/// Reads a regular file whole. The type is checked on the open descriptor, which is opened
/// O_NONBLOCK: a FIFO (or a device) as config.json is an error at once, never a hang waiting for
/// a writer.
fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let m = f.metadata()?;
    if !m.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut raw = Vec::new();
    f.read_to_end(&mut raw)?;
    Ok(raw)
}

fn invalid(key: &'static str, reason: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// Checks the rules the engine relies on; `bundle` resolves a relative root.path.
pub fn validate(spec: &Spec, bundle: &Path) -> Result<(), SpecError> {
    if spec.version().is_empty() {
        return Err(invalid("ociVersion", "missing"));
    }
    if !spec.version().starts_with("1.") {
        return Err(invalid(
            "ociVersion",
            format!("unsupported version {:?}", spec.version()),
        ));
    }
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root", "missing"))?;
    let rootfs = bundle.join(root.path());
    if !rootfs.is_dir() {
        return Err(invalid(
            "root.path",
            format!("{} is not a directory", rootfs.display()),
        ));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid("process", "missing"))?;
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => return Err(invalid("process.args", "empty")),
    }
    if !process.cwd().is_absolute() {
        return Err(invalid(
            "process.cwd",
            format!("{} is not absolute", process.cwd().display()),
        ));
    }
    validate_rlimits(process.rlimits().as_deref().unwrap_or_default())?;
    validate_linux(spec)
}

/// `process.rlimits`: known types, each once, soft not above hard (setrlimit(2) would refuse it
/// in the child with a bare EINVAL; runc refuses it here too).
pub fn validate_rlimits(rlimits: &[oci_spec::runtime::PosixRlimit]) -> Result<(), SpecError> {
    let mut seen = Vec::new();
    for r in rlimits {
        let name = r.typ().to_string();
        if crate::security::rlimit::resource(&name).is_err() {
            return Err(invalid("process.rlimits", format!("unknown type {name}")));
        }
        if seen.contains(&name) {
            return Err(invalid("process.rlimits", format!("{name} listed twice")));
        }
        if r.soft() > r.hard() {
            return Err(invalid(
                "process.rlimits",
                format!(
                    "{name}: soft limit {} is above the hard limit {}",
                    r.soft(),
                    r.hard()
                ),
            ));
        }
        seen.push(name);
    }
    Ok(())
}

fn validate_linux(spec: &Spec) -> Result<(), SpecError> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    let mut seen = Vec::new();
    for ns in linux.namespaces().as_deref().unwrap_or_default() {
        if seen.contains(&ns.typ()) {
            return Err(invalid(
                "linux.namespaces",
                format!("{} listed twice", ns_name(ns.typ())),
            ));
        }
        seen.push(ns.typ());
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return Err(invalid(
                    "linux.namespaces.path",
                    format!("{} is not absolute", p.display()),
                ));
            }
        }
    }
    let userns = seen.contains(&LinuxNamespaceType::User);
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if userns && !has_maps && !user_ns_joined(spec) {
        return Err(invalid(
            "linux.uidMappings",
            "a new user namespace needs uid mappings",
        ));
    }
    if !userns && has_maps {
        return Err(invalid(
            "linux.uidMappings",
            "mappings given without a user namespace",
        ));
    }
    // runc's rule: setting a hostname without a UTS namespace of its own would rename the host.
    let uts = seen.contains(&LinuxNamespaceType::Uts);
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !uts {
        return Err(invalid(
            "hostname",
            "needs a uts namespace in linux.namespaces",
        ));
    }
    if spec.domainname().as_ref().is_some_and(|h| !h.is_empty()) && !uts {
        return Err(invalid(
            "domainname",
            "needs a uts namespace in linux.namespaces",
        ));
    }
    if linux.time_offsets().is_some() && namespace(spec, LinuxNamespaceType::Time) != Some(None) {
        return Err(invalid(
            "linux.timeOffsets",
            "needs a new time namespace in linux.namespaces",
        ));
    }
    for clock in linux.time_offsets().iter().flat_map(|m| m.keys()) {
        if clock != "monotonic" && clock != "boottime" {
            return Err(invalid(
                "linux.timeOffsets",
                format!("unknown clock {clock:?} (monotonic or boottime)"),
            ));
        }
    }
    sysctl::validate(spec)
}

fn user_ns_joined(spec: &Spec) -> bool {
    namespace(spec, LinuxNamespaceType::User).is_some_and(|p| p.is_some())
}

/// `Some(path)` when the namespace is listed (path given = join), `None` when not listed.
pub fn namespace(spec: &Spec, typ: LinuxNamespaceType) -> Option<Option<PathBuf>> {
    spec.linux()
        .as_ref()?
        .namespaces()
        .as_ref()?
        .iter()
        .find(|n| n.typ() == typ)
        .map(|n| n.path().clone())
}

/// The kernel's name for a namespace kind (as in /proc/PID/ns/NAME).
pub fn ns_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_with(config: &str) -> (tempdir::Dir, Result<(), SpecError>) {
        let dir = tempdir::Dir::new();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        let res = load(dir.path()).and_then(|l| validate(&l.spec, dir.path()));
        (dir, res)
    }

    mod tempdir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                let p = std::env::temp_dir().join(format!(
                    "husk-spec-test-{}-{:?}",
                    std::process::id(),
                    std::thread::current().id()
                ));
                let _ = std::fs::remove_dir_all(&p);
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    const OK: &str = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
        "process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}}}"#;

    #[test]
    fn accepts_minimal_config() {
        let (_d, res) = bundle_with(OK);
        res.unwrap();
    }

    #[test]
    fn rejects_empty_args_naming_the_key() {
        let (_d, res) = bundle_with(&OK.replace(r#"["sh"]"#, "[]"));
        assert!(res.unwrap_err().to_string().contains("process.args"));
    }

    #[test]
    fn rejects_an_rlimit_soft_above_hard_or_twice() {
        let with = |rl: &str| {
            OK.replace(
                r#""args":["sh"]"#,
                &format!(r#""args":["sh"],"rlimits":{rl}"#),
            )
        };
        let (_d, res) = bundle_with(&with(
            r#"[{"type":"RLIMIT_NOFILE","soft":2048,"hard":1024}]"#,
        ));
        let e = res.unwrap_err().to_string();
        assert!(
            e.contains("process.rlimits") && e.contains("RLIMIT_NOFILE"),
            "{e}"
        );
        let twice = r#"[{"type":"RLIMIT_CORE","soft":0,"hard":0},{"type":"RLIMIT_CORE","soft":1,"hard":1}]"#;
        let (_d, res) = bundle_with(&with(twice));
        assert!(res.unwrap_err().to_string().contains("twice"));
        let (_d, res) = bundle_with(&with(
            r#"[{"type":"RLIMIT_NOFILE","soft":1024,"hard":1024}]"#,
        ));
        res.unwrap();
    }

    #[test]
    fn rejects_relative_cwd() {
        let (_d, res) = bundle_with(&OK.replace(r#""cwd":"/""#, r#""cwd":"tmp""#));
        assert!(res.unwrap_err().to_string().contains("process.cwd"));
    }

    #[test]
    fn rejects_missing_rootfs() {
        let (_d, res) = bundle_with(&OK.replace(r#""path":"rootfs""#, r#""path":"nope""#));
        assert!(res.unwrap_err().to_string().contains("root.path"));
    }

    #[test]
    fn rejects_malformed_json() {
        let (_d, res) = bundle_with("{");
        assert!(res.unwrap_err().to_string().starts_with("parse "));
    }

    #[test]
    fn rejects_userns_without_maps() {
        let cfg = OK.replace(
            r#""process""#,
            r#""linux":{"namespaces":[{"type":"user"}]},"process""#,
        );
        let (_d, res) = bundle_with(&cfg);
        assert!(res.unwrap_err().to_string().contains("linux.uidMappings"));
    }

    #[test]
    fn rejects_duplicate_namespace() {
        let cfg = OK.replace(
            r#""process""#,
            r#""linux":{"namespaces":[{"type":"pid"},{"type":"pid"}]},"process""#,
        );
        let (_d, res) = bundle_with(&cfg);
        assert!(res.unwrap_err().to_string().contains("pid listed twice"));
    }

    #[test]
    fn time_offsets_need_a_new_time_namespace_and_known_clocks() {
        let offsets = r#""timeOffsets":{"boottime":{"secs":5}}"#;
        let without = OK.replace(
            r#""process""#,
            &format!(r#""linux":{{{offsets}}},"process""#),
        );
        let (_d, res) = bundle_with(&without);
        assert!(res.unwrap_err().to_string().contains("linux.timeOffsets"));
        let with = OK.replace(
            r#""process""#,
            &format!(r#""linux":{{"namespaces":[{{"type":"time"}}],{offsets}}},"process""#),
        );
        let (_d, res) = bundle_with(&with);
        res.unwrap();
        let bad = with.replace("boottime", "realtime");
        let (_d, res) = bundle_with(&bad);
        assert!(res.unwrap_err().to_string().contains("unknown clock"));
    }
}
