//! The launcher's options (what the CLI flags mean, without clap) and the parsers for their values:
//! `--bind`, `--env`, `--env-file`, `--memory`, `--cpus`, `--ipc`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionsError {
    #[error("parse --bind {spec:?}: {reason}")]
    Bind { spec: String, reason: &'static str },
    #[error("parse --env {0:?}: want KEY=VALUE")]
    Env(String),
    #[error("parse --env-file {path} line {line}: want KEY=VALUE")]
    EnvFile { path: PathBuf, line: usize },
    #[error("parse --memory {0:?}: want BYTES with an optional k, m, g or t suffix")]
    Memory(String),
    #[error("parse --cpus {0:?}: want a positive number")]
    Cpus(String),
    #[error("--ipc {0:?}: unknown mode (host or private)")]
    Ipc(String),
    #[error("parse --add-caps/--drop-caps: unknown capability {0:?}")]
    Cap(String),
}

/// What runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    /// The image's entrypoint + cmd; non-empty `args` replace cmd.
    Run { args: Vec<String> },
    /// This command instead of the image's.
    Exec { command: Vec<String> },
    /// An interactive shell (`/bin/sh` unless given), PS1 set.
    Shell { shell: Option<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// The host's network namespace, even when the profile has its own.
    Host,
    /// A new network namespace with only a loopback interface.
    None,
}

/// `--ipc`: which IPC namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipc {
    /// The host's, even with --containall or a profile that has its own.
    Host,
    /// A new one.
    Private,
}

/// One `--bind`: SRC (host, relative to the cwd when relative), DST (container, default SRC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: PathBuf,
    pub destination: PathBuf,
    pub readonly: bool,
}

/// `--memory`, `--cpus`, `--pids-limit`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Resources {
    pub memory: Option<i64>,
    /// CPUs as a fraction: quota = cpus * period.
    pub cpus: Option<f64>,
    pub pids: Option<i64>,
}

impl Resources {
    /// `--memory`, `--cpus` (checked in that order) and `--pids-limit`.
    pub fn parse(
        memory: Option<&str>,
        cpus: Option<&str>,
        pids: Option<i64>,
    ) -> Result<Resources, OptionsError> {
        Ok(Resources {
            memory: memory.map(parse_memory).transpose()?,
            cpus: cpus.map(parse_cpus).transpose()?,
            pids,
        })
    }

    pub fn any(&self) -> bool {
        self.memory.is_some() || self.cpus.is_some() || self.pids.is_some()
    }

    /// `self`, with `fallback`'s limit where `self` sets none.
    pub fn or(self, fallback: Resources) -> Resources {
        Resources {
            memory: self.memory.or(fallback.memory),
            cpus: self.cpus.or(fallback.cpus),
            pids: self.pids.or(fallback.pids),
        }
    }
}

/// Where the writes to an overlaid image go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    /// `--writable-tmpfs`: an upper dir in the launch directory, removed at exit.
    Tmpfs,
    /// `--overlay DIR`: DIR/upper and DIR/work, kept.
    Dir(PathBuf),
}

/// Everything the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub verb: Verb,
    pub binds: Vec<Bind>,
    pub no_home: bool,
    /// No host binds but --bind; private /tmp, minimal /dev, tmpfs $HOME.
    pub contain: bool,
    /// --contain plus pid and ipc namespaces and a clean environment.
    pub containall: bool,
    pub pwd: Option<PathBuf>,
    pub pid: bool,
    /// None: the profile's (a new one with --containall).
    pub ipc: Option<Ipc>,
    pub net: Option<Net>,
    pub hostname: Option<String>,
    /// Map the caller to root in a user namespace.
    pub fakeroot: bool,
    /// Use a user namespace even as root.
    pub userns: bool,
    /// As root: a user namespace mapping the container's uid and gid 0 to this unprivileged host
    /// id (the sandbox), instead of 0→0.
    pub root_host_id: Option<u32>,
    /// The sandbox's `--user UID:GID`: the program runs as this uid and gid inside, the one id
    /// its user namespace maps (to the caller, or to `root_host_id`), instead of root.
    pub user: Option<(u32, u32)>,
    pub cleanenv: bool,
    /// `--env-file` entries first, then `--env`, in order (later wins).
    pub env: Vec<(String, String)>,
    pub tty: bool,
    pub writable: bool,
    /// Overlay the image: writable, the image itself untouched.
    pub overlay: Option<Overlay>,
    /// Pass /dev/fuse.
    pub fuse: bool,
    /// Pass DISPLAY, /tmp/.X11-unix and $XAUTHORITY.
    pub x11: bool,
    /// `--add-caps`, `--drop-caps`: capability names (CAP_X), added to or taken from every set.
    pub add_caps: Vec<String>,
    pub drop_caps: Vec<String>,
    pub resources: Resources,
    /// CDI devices' merged container edits (`--device`, `--gpu`).
    pub cdi: crate::cdi::Edits,
}

impl Options {
    pub fn new(verb: Verb) -> Options {
        Options {
            verb,
            binds: Vec::new(),
            no_home: false,
            contain: false,
            containall: false,
            pwd: None,
            pid: false,
            ipc: None,
            net: None,
            hostname: None,
            fakeroot: false,
            userns: false,
            root_host_id: None,
            user: None,
            cleanenv: false,
            env: Vec::new(),
            tty: false,
            writable: false,
            overlay: None,
            fuse: false,
            x11: false,
            add_caps: Vec::new(),
            drop_caps: Vec::new(),
            resources: Resources::default(),
            cdi: Default::default(),
        }
    }

    pub fn contained(&self) -> bool {
        self.contain || self.containall
    }
}

/// One `--add-caps`/`--drop-caps` value: comma-separated names, with or without CAP_, any case
/// (Apptainer's form); returns them as CAP_NAME.
pub fn parse_caps(list: &str) -> Result<Vec<String>, OptionsError> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let upper = item.to_ascii_uppercase();
        let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
        bare.parse::<oci_spec::runtime::Capability>()
            .map_err(|_| OptionsError::Cap(item.to_string()))?;
        out.push(format!("CAP_{bare}"));
    }
    Ok(out)
}

/// One `--bind` value: a comma-separated list of `SRC[:DST[:ro|rw]]`.
pub fn parse_binds(spec: &str) -> Result<Vec<Bind>, OptionsError> {
    let bad = |reason| OptionsError::Bind {
        spec: spec.to_string(),
        reason,
    };
    let mut out = Vec::new();
    for item in spec.split(',').filter(|s| !s.is_empty()) {
        let mut parts = item.split(':');
        let source = parts.next().unwrap_or_default();
        let destination = parts.next().filter(|d| !d.is_empty()).unwrap_or(source);
        let readonly = match parts.next() {
            None | Some("rw") => false,
            Some("ro") => true,
            Some(_) => return Err(bad("options are ro or rw")),
        };
        if parts.next().is_some() {
            return Err(bad("too many ':'"));
        }
        if source.is_empty() {
            return Err(bad("empty source"));
        }
        if !destination.starts_with('/') {
            return Err(bad("the destination must be absolute"));
        }
        out.push(Bind {
            source: source.into(),
            destination: destination.into(),
            readonly,
        });
    }
    if out.is_empty() {
        return Err(bad("empty"));
    }
    Ok(out)
}

/// `KEY=VALUE` (a value may be empty; a key may not).
pub fn parse_env(s: &str) -> Result<(String, String), OptionsError> {
    match s.split_once('=') {
        Some((k, v)) if valid_key(k) => Ok((k.to_string(), v.to_string())),
        _ => Err(OptionsError::Env(s.to_string())),
    }
}

fn valid_key(k: &str) -> bool {
    !k.is_empty() && !k.contains(char::is_whitespace)
}

/// An env file: `KEY=VALUE` lines, optionally prefixed `export `; blank lines and `#` comments
/// skipped; one pair of matching quotes around the value removed. Nothing is expanded.
pub fn parse_env_file(
    text: &str,
    path: &std::path::Path,
) -> Result<Vec<(String, String)>, OptionsError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let (k, v) = match line.split_once('=') {
            Some((k, v)) if valid_key(k) => (k, v),
            _ => {
                return Err(OptionsError::EnvFile {
                    path: path.into(),
                    line: i + 1,
                })
            }
        };
        let v = ['"', '\'']
            .iter()
            .find_map(|q| v.strip_prefix(*q)?.strip_suffix(*q))
            .unwrap_or(v);
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// `512m`, `2G`, `1048576`.
pub fn parse_memory(s: &str) -> Result<i64, OptionsError> {
    let bad = || OptionsError::Memory(s.to_string());
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: i64 = match c.to_ascii_lowercase() {
                'b' => 1,
                'k' => 1 << 10,
                'm' => 1 << 20,
                'g' => 1 << 30,
                't' => 1 << 40,
                _ => return Err(bad()),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: i64 = num.parse().map_err(|_| bad())?;
    n.checked_mul(mult).filter(|&v| v > 0).ok_or_else(bad)
}

pub fn parse_cpus(s: &str) -> Result<f64, OptionsError> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(OptionsError::Cpus(s.to_string())),
    }
}

/// `--ipc MODE`: `host`, or `private` (so is a bare `--ipc`, which clap hands over as "").
pub fn parse_ipc(mode: &str) -> Result<Ipc, OptionsError> {
    match mode {
        "" | "private" => Ok(Ipc::Private),
        "host" => Ok(Ipc::Host),
        other => Err(OptionsError::Ipc(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn binds() {
        let b = parse_binds("/a,/b:/c:ro,rel:/d:rw").unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].destination, PathBuf::from("/a"));
        assert!(b[1].readonly && b[1].destination == Path::new("/c"));
        assert!(!b[2].readonly && b[2].source == Path::new("rel"));
        assert!(parse_binds("/a:/b:xx").is_err());
        assert!(parse_binds("/a:rel").is_err());
        assert!(parse_binds("/a:/b:ro:x").is_err());
        assert!(parse_binds(",").is_err());
    }

    #[test]
    fn env_and_files() {
        assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(parse_env("A=").unwrap(), ("A".into(), "".into()));
        assert!(parse_env("=x").is_err() && parse_env("novalue").is_err());
        let f =
            parse_env_file("# c\n\nA=1\nexport B=\"two words\"\nC='x'\n", "f".as_ref()).unwrap();
        assert_eq!(
            f,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x".into())
            ]
        );
        let e = parse_env_file("A=1\nbroken\n", "f".as_ref()).unwrap_err();
        assert_eq!(e.to_string(), "parse --env-file f line 2: want KEY=VALUE");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_memory("512m").unwrap(), 512 << 20);
        assert_eq!(parse_memory("2G").unwrap(), 2 << 30);
        assert_eq!(parse_memory("4096").unwrap(), 4096);
        assert!(parse_memory("0").is_err() && parse_memory("x").is_err());
        assert!((parse_cpus("1.5").unwrap() - 1.5).abs() < 1e-9);
        assert!(parse_cpus("-1").is_err());
        let r = Resources::parse(Some("1k"), None, Some(3)).unwrap();
        assert_eq!((r.memory, r.cpus, r.pids), (Some(1024), None, Some(3)));
        let e = Resources::parse(Some("x"), Some("y"), None).unwrap_err();
        assert_eq!(e, OptionsError::Memory("x".into()));
        let d = Resources::parse(Some("2k"), Some("1"), None).unwrap();
        let merged = r.or(d);
        assert_eq!(
            (merged.memory, merged.cpus, merged.pids),
            (Some(1024), Some(1.0), Some(3))
        );
    }

    #[test]
    fn ipc_modes() {
        assert_eq!(parse_ipc("").unwrap(), Ipc::Private);
        assert_eq!(parse_ipc("private").unwrap(), Ipc::Private);
        assert_eq!(parse_ipc("host").unwrap(), Ipc::Host);
        let e = parse_ipc("shared").unwrap_err().to_string();
        assert_eq!(e, "--ipc \"shared\": unknown mode (host or private)");
    }

    #[test]
    fn caps_in_apptainers_forms() {
        assert_eq!(
            parse_caps("CAP_NET_ADMIN,sys_ptrace, Chown").unwrap(),
            ["CAP_NET_ADMIN", "CAP_SYS_PTRACE", "CAP_CHOWN"]
        );
        let e = parse_caps("CAP_NET_ADMIN,CAP_BOGUS").unwrap_err();
        assert!(e.to_string().contains("CAP_BOGUS"), "{e}");
    }
}
