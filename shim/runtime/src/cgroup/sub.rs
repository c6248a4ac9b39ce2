//! `exec --cgroup`: a process joins a sub-cgroup of its container's instead of the container's own,
//! as runc's `exec --cgroup [CONTROLLERS:]PATH` (repeatable). PATH is relative to the container's
//! cgroup and may not climb out of it; CONTROLLERS (v1 only) limits it to those hierarchies, the
//! others staying at the container's cgroup. The sub-cgroup must exist (the container made it).

use super::fs::{self, V1_CONTROLLERS};
use super::{Cgroup, CgroupError, Driver, Layout};
use std::path::{Component, Path, PathBuf};

/// One `--cgroup` value: the controllers it names (empty: all) and the relative path.
fn parse(value: &str) -> Result<(Vec<String>, PathBuf), CgroupError> {
    let (ctrls, sub) = match value.split_once(':') {
        Some((c, p)) => (c.split(',').map(str::to_string).collect(), p),
        None => (Vec::new(), value),
    };
    for c in &ctrls {
        if !V1_CONTROLLERS.contains(&c.as_str()) {
            return Err(CgroupError::ExecSub {
                value: value.to_string(),
                reason: format!("unknown controller {c:?}"),
            });
        }
    }
    let sub = Path::new(sub);
    let inside = sub.components().all(|c| {
        matches!(
            c,
            Component::Normal(_) | Component::RootDir | Component::CurDir
        )
    });
    if !inside {
        return Err(CgroupError::ExecSub {
            value: value.to_string(),
            // runc's wording.
            reason: format!("{} is not a sub cgroup path", sub.display()),
        });
    }
    let rel: PathBuf = sub
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    Ok((ctrls, rel))
}

impl Cgroup {
    /// The directories (one per hierarchy) an exec process joins for the `--cgroup` values `subs`:
    /// the container's own, each moved into the sub-cgroup a value names for it. Every directory
    /// must exist: the error names its cgroup.procs, as runc's does.
    pub fn exec_dirs(&self, subs: &[String]) -> Result<Vec<PathBuf>, CgroupError> {
        if !self.is_enabled() || self.driver != Driver::Cgroupfs {
            return Err(CgroupError::ExecSub {
                value: subs.join(" "),
                reason: "needs the cgroupfs driver and a container cgroup".into(),
            });
        }
        let base = self.leaf_dirs()?;
        let mut leaf = base.clone();
        let mounts = match self.layout {
            Layout::V1 => fs::v1_mounts()?,
            _ => Vec::new(),
        };
        for value in subs {
            let (ctrls, rel) = parse(value)?;
            if self.layout != Layout::V1 && !ctrls.is_empty() {
                return Err(CgroupError::ExecSub {
                    value: value.clone(),
                    reason: "controllers can be named on cgroup v1 only".into(),
                });
            }
            for ((ctrl, dir), (_, own)) in leaf.iter_mut().zip(&base) {
                let mount = mounts.iter().find(|(c, _)| c == ctrl).map(|(_, m)| m);
                let wanted = ctrls.is_empty()
                    || ctrls
                        .iter()
                        .any(|c| mount.is_some_and(|m| fs::serves(m, c)));
                if wanted {
                    *dir = own.join(&rel);
                }
            }
        }
        let dirs: Vec<PathBuf> = leaf.into_iter().map(|(_, d)| d).collect();
        for dir in &dirs {
            if !dir.is_dir() {
                return Err(CgroupError::ExecSubMissing {
                    procs: dir.join("cgroup.procs"),
                });
            }
        }
        Ok(dirs)
    }
}

/// Moves `pid` into each of `dirs` (from [`Cgroup::exec_dirs`]), when it cannot join by itself.
pub fn attach_to(dirs: &[PathBuf], pid: i32) -> Result<(), CgroupError> {
    fs::attach(dirs, pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_runc_takes_them() {
        assert_eq!(parse("foo").unwrap(), (vec![], PathBuf::from("foo")));
        assert_eq!(parse("/").unwrap(), (vec![], PathBuf::new()));
        let (c, p) = parse("cpu,cpuacct:a/b").unwrap();
        assert_eq!((c, p), (vec!["cpu".into(), "cpuacct".into()], "a/b".into()));
        let err = parse("..").unwrap_err().to_string();
        assert!(err.contains(" .. is not a sub cgroup path"), "{err}");
        assert!(parse("a/../../b").is_err());
        let err = parse("whaaat:/").unwrap_err().to_string();
        assert!(err.contains("unknown controller "), "{err}");
    }
}
