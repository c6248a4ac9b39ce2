//! Why an unprivileged user namespace cannot be made: the sysctl knobs that forbid it, read from
//! /proc/sys (the caller's view: `user.*` limits are per user namespace). Consulted only after a
//! launch that needed a user namespace failed, never to refuse one up front (an AppArmor profile
//! may let husk through where the knob alone would say no).

use std::path::Path;

/// A knob whose current value blocks unprivileged user namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    /// sysctl name, e.g. `user.max_user_namespaces`.
    pub knob: &'static str,
    pub value: String,
    /// What an administrator can do about it.
    pub fix: &'static str,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "user namespaces are disabled on this host: {} = {} ({})",
            self.knob, self.value, self.fix
        )
    }
}

/// (sysctl, value that blocks, how to lift it), in the order they are checked.
const KNOBS: &[(&str, &str, &str)] = &[
    (
        "kernel.unprivileged_userns_clone",
        "0",
        "Debian and older kernels; an administrator can run sysctl -w kernel.unprivileged_userns_clone=1",
    ),
    (
        "user.max_user_namespaces",
        "0",
        "an administrator can run sysctl -w user.max_user_namespaces=15000",
    ),
    (
        "kernel.apparmor_restrict_unprivileged_userns",
        "1",
        "Ubuntu's AppArmor restriction; an administrator can run sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 or give husk an AppArmor profile with 'userns,'",
    ),
];

/// The first knob under `proc_sys` (normally /proc/sys) that blocks; a missing file blocks nothing.
pub fn diagnose(proc_sys: &Path) -> Option<Blocker> {
    KNOBS.iter().find_map(|&(knob, blocks, fix)| {
        let path = proc_sys.join(knob.replace('.', "/"));
        let value = std::fs::read_to_string(path).ok()?;
        let value = value.trim();
        (value == blocks).then(|| Blocker {
            knob,
            value: value.to_string(),
            fix,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tree(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("husk-userns-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (knob, value) in files {
            let p = dir.join(knob.replace('.', "/"));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, format!("{value}\n")).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn each_knob_is_named() {
        let open = [
            ("kernel.unprivileged_userns_clone", "1"),
            ("user.max_user_namespaces", "63204"),
            ("kernel.apparmor_restrict_unprivileged_userns", "0"),
        ];
        let dir = tree("open", &open);
        assert_eq!(diagnose(&dir), None);
        for (i, (knob, blocking)) in [
            ("kernel.unprivileged_userns_clone", "0"),
            ("user.max_user_namespaces", "0"),
            ("kernel.apparmor_restrict_unprivileged_userns", "1"),
        ]
        .iter()
        .enumerate()
        {
            let mut files = open.to_vec();
            files[i] = (knob, blocking);
            let dir = tree(&format!("k{i}"), &files);
            let b = diagnose(&dir).unwrap();
            assert_eq!(b.knob, *knob);
            let msg = b.to_string();
            assert!(msg.contains(&format!("{knob} = {blocking}")), "{msg}");
            assert!(!msg.contains('\n'));
            std::fs::remove_dir_all(&dir).unwrap();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_knobs_block_nothing() {
        // Upstream kernels have no unprivileged_userns_clone; non-Ubuntu ones no apparmor knob.
        let dir = tree("missing", &[("user.max_user_namespaces", "100")]);
        assert_eq!(diagnose(&dir), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
