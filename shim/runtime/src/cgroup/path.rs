//! Validation of `linux.cgroupsPath` and the small path helpers the facade needs.
//!
//! Invariant: every path the facade acts on went through [`validate_fs`] or [`validate_systemd`]; a
//! validated cgroupfs path is relative, non-empty, made only of normal components (no `.`, `..`, empty
//! or over-long names, no NUL or newline), so joining it to a mount point can never name the mount
//! point itself or anything above it.
//!
//! Relative and absolute cgroupsPath values are both taken relative to the hierarchy root (as youki
//! does); runc resolves a relative value against its own cgroup instead. The runtime-spec leaves the
//! meaning of a relative path to the runtime.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::CgroupError;

/// Longest cgroup directory name the kernel accepts (NAME_MAX).
const NAME_MAX: usize = 255;

fn invalid(path: &OsStr, reason: &'static str) -> CgroupError {
    CgroupError::InvalidPath {
        path: path.to_string_lossy().into_owned(),
        reason,
    }
}

/// Validates a cgroupfs path and returns it relative to the hierarchy root.
pub fn validate_fs(raw: &Path) -> Result<PathBuf, CgroupError> {
    let os = raw.as_os_str();
    let text = os.to_str().ok_or_else(|| invalid(os, "not valid UTF-8"))?;
    if text.is_empty() {
        return Err(invalid(os, "empty"));
    }
    if text.bytes().any(|b| b == 0 || b == b'\n') {
        return Err(invalid(os, "contains a NUL or newline byte"));
    }
    if !text.contains('/') && text.matches(':').count() == 2 {
        return Err(invalid(
            os,
            "has the systemd form slice:prefix:name but the cgroupfs driver is in use",
        ));
    }
    let body = text.strip_prefix('/').unwrap_or(text);
    let body = body.strip_suffix('/').unwrap_or(body);
    if body.is_empty() {
        return Err(invalid(os, "names the hierarchy root"));
    }
    for part in body.split('/') {
        match part {
            "" => return Err(invalid(os, "contains an empty component (//)")),
            "." | ".." => return Err(invalid(os, "contains a . or .. component")),
            p if p.len() > NAME_MAX => return Err(invalid(os, "has a component over 255 bytes")),
            _ => {}
        }
    }
    Ok(PathBuf::from(body))
}

/// Parts of a systemd cgroupsPath, `slice:prefix:name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdPath {
    /// Parent slice; empty means the manager's default (system.slice, or user.slice when rootless).
    pub slice: String,
    pub prefix: String,
    pub name: String,
}

impl SystemdPath {
    /// The transient unit systemd creates: `<prefix>-<name>.scope`, or `<name>` when it is a slice.
    pub fn unit(&self) -> String {
        if self.name.ends_with(".slice") {
            self.name.clone()
        } else {
            format!("{}-{}.scope", self.prefix, self.name)
        }
    }

    /// The triple as libcgroups' systemd manager takes it.
    pub fn to_path(&self) -> PathBuf {
        PathBuf::from(format!("{}:{}:{}", self.slice, self.prefix, self.name))
    }
}

fn unit_word_ok(word: &str) -> bool {
    word.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:\\@".contains(&b))
}

/// Validates runc's systemd form `slice:prefix:name` (the slice may be empty).
pub fn validate_systemd(raw: &Path) -> Result<SystemdPath, CgroupError> {
    let os = raw.as_os_str();
    let text = os.to_str().ok_or_else(|| invalid(os, "not valid UTF-8"))?;
    let parts: Vec<&str> = text.split(':').collect();
    let [slice, prefix, name] = parts.as_slice() else {
        return Err(invalid(os, "systemd driver expects slice:prefix:name"));
    };
    if name.is_empty() {
        return Err(invalid(os, "systemd unit name is empty"));
    }
    if !slice.is_empty() {
        expand_slice(slice).ok_or_else(|| invalid(os, "slice must be a valid <name>.slice"))?;
    }
    for word in [prefix, name] {
        if word.contains('/') || !unit_word_ok(word) || word.starts_with('.') {
            return Err(invalid(
                os,
                "systemd prefix or name has a character systemd rejects",
            ));
        }
    }
    Ok(SystemdPath {
        slice: (*slice).to_owned(),
        prefix: (*prefix).to_owned(),
        name: (*name).to_owned(),
    })
}

/// systemd nests slices by dashes: `a-b.slice` lives at `a.slice/a-b.slice`. `-.slice` is the root.
pub fn expand_slice(slice: &str) -> Option<PathBuf> {
    let stem = slice.strip_suffix(".slice")?;
    if stem == "-" {
        return Some(PathBuf::new());
    }
    if stem.is_empty() || slice.contains('/') || !unit_word_ok(stem) {
        return None;
    }
    let mut path = PathBuf::new();
    let mut prefix = String::new();
    for word in stem.split('-') {
        if word.is_empty() {
            return None;
        }
        path.push(format!("{prefix}{word}.slice"));
        prefix.push_str(word);
        prefix.push('-');
    }
    Some(path)
}

/// This process's cgroup in each hierarchy, from `/proc/self/cgroup` (`id:controllers:path`).
/// Returns (controllers, path relative to the hierarchy root); the v2 line has no controllers.
pub fn own_cgroups(proc_cgroup: &str) -> Vec<(Vec<String>, PathBuf)> {
    proc_cgroup
        .lines()
        .filter_map(|line| {
            let mut it = line.splitn(3, ':');
            let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
            let ctrls = ctrls
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
            let rel = path.trim_start_matches('/');
            Some((ctrls, PathBuf::from(rel)))
        })
        .collect()
}

/// True when `ours` (a validated relative cgroup path) is `theirs` or one of its ancestors: removing
/// it would mean removing the cgroup that holds `theirs`.
pub fn is_self_or_ancestor(ours: &Path, theirs: &Path) -> bool {
    theirs.starts_with(ours)
}

/// Raw bytes of a path for messages that must not lose information.
pub fn display(path: &Path) -> String {
    String::from_utf8_lossy(path.as_os_str().as_bytes()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    #[test]
    fn fs_paths_table() {
        let long = format!("a/{}", "x".repeat(256));
        let good: &[(&str, &str)] = &[
            ("/husk/abc", "husk/abc"),
            ("husk/abc", "husk/abc"),
            ("/a", "a"),
            ("/a/b/c/", "a/b/c"),
            ("/machine.slice/x.scope", "machine.slice/x.scope"),
            ("/a:b/c", "a:b/c"),
            ("/..a/b..", "..a/b.."),
        ];
        for (raw, want) in good {
            let got = validate_fs(Path::new(raw)).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(got, PathBuf::from(want), "{raw}");
        }
        let bad: &[&str] = &[
            "",
            "/",
            "//",
            "/..",
            "..",
            "../x",
            "/a/../../etc",
            "/a/..",
            "a/./b",
            "./a",
            "/a//b",
            "a\nb",
            "system.slice:husk:abc",
            &long,
        ];
        for raw in bad {
            assert!(
                matches!(
                    validate_fs(Path::new(raw)),
                    Err(CgroupError::InvalidPath { .. })
                ),
                "{raw:?} should be rejected"
            );
        }
    }

    #[test]
    fn fs_path_rejects_non_utf8_and_nul() {
        let raw = PathBuf::from(OsString::from_vec(vec![b'/', b'a', 0xff]));
        assert!(validate_fs(&raw).is_err());
        let raw = PathBuf::from(OsString::from_vec(vec![b'/', b'a', 0, b'b']));
        assert!(validate_fs(&raw).is_err());
        let raw = PathBuf::from(OsString::from_vec(vec![b'a', b':', 0xff, b':', b'c']));
        assert!(validate_systemd(&raw).is_err());
    }

    #[test]
    fn systemd_paths_table() {
        let p = validate_systemd(Path::new("system.slice:husk:abc")).unwrap();
        assert_eq!(p.unit(), "husk-abc.scope");
        assert_eq!(p.to_path(), PathBuf::from("system.slice:husk:abc"));
        let p = validate_systemd(Path::new(":husk:abc")).unwrap();
        assert_eq!(p.slice, "");
        let p = validate_systemd(Path::new("a-b.slice::c.slice")).unwrap();
        assert_eq!(p.unit(), "c.slice");
        for bad in [
            "",
            "/husk/abc",
            "a:b",
            "a:b:c:d",
            "system.slice:husk:",
            "system:husk:abc",
            "sys/tem.slice:husk:abc",
            "system.slice:hu/sk:abc",
            "system.slice:husk:..",
            "a--b.slice:husk:abc",
        ] {
            assert!(validate_systemd(Path::new(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn slices_expand() {
        assert_eq!(
            expand_slice("a-b-c.slice").unwrap(),
            PathBuf::from("a.slice/a-b.slice/a-b-c.slice")
        );
        assert_eq!(expand_slice("-.slice").unwrap(), PathBuf::new());
        assert!(expand_slice("a-.slice").is_none());
        assert!(expand_slice("a").is_none());
    }

    #[test]
    fn own_cgroup_lines() {
        let own = own_cgroups("4:memory:/process_api/x\n1:cpu,cpuacct:/\n0::/user.slice/a\n");
        assert_eq!(
            own[0],
            (vec!["memory".into()], PathBuf::from("process_api/x"))
        );
        assert_eq!(own[1].0, vec!["cpu".to_string(), "cpuacct".to_string()]);
        assert_eq!(own[2], (vec![], PathBuf::from("user.slice/a")));
        assert!(is_self_or_ancestor(
            Path::new("process_api"),
            Path::new("process_api/x")
        ));
        assert!(!is_self_or_ancestor(
            Path::new("process_api/x/y"),
            Path::new("process_api/x")
        ));
        assert!(!is_self_or_ancestor(Path::new("husk/a"), Path::new("")));
    }
}
