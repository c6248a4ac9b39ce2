//! The spec templates (`--profile`), embedded from spec-templates/ and rendered.
//!
//! The launcher keeps a profile's process rlimits, capabilities (used when the container runs as
//! root: real root or --fakeroot), noNewPrivileges, apparmor/selinux labels, its namespaces (except
//! user, which the identity decides), masked and read-only paths, seccomp, sysctl and resources other
//! than devices. It replaces mounts, root, args, env, cwd, user, id maps and devices.

use serde_json::Value;

pub const DEFAULT_PROFILE: &str = "hpc";

/// (name, template text).
pub const PROFILES: &[(&str, &str)] = &[
    (
        "default",
        include_str!("../../../spec-templates/default.json"),
    ),
    (
        "rootless",
        include_str!("../../../spec-templates/rootless.json"),
    ),
    ("hpc", include_str!("../../../spec-templates/hpc.json")),
    (
        "sandbox",
        include_str!("../../../spec-templates/sandbox.json"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("--profile {0}: unknown profile (known: default, rootless, hpc, sandbox)")]
    Unknown(String),
    #[error("parse profile {name}: {source}")]
    Parse {
        name: String,
        source: serde_json::Error,
    },
}

/// Is `name` a profile? (`--profile` is checked before anything is resolved.)
pub fn known(name: &str) -> Result<(), TemplateError> {
    if PROFILES.iter().any(|(n, _)| *n == name) {
        Ok(())
    } else {
        Err(TemplateError::Unknown(name.to_string()))
    }
}

/// The template `name` with `{{UID}}`/`{{GID}}` replaced.
pub fn render(name: &str, uid: u32, gid: u32) -> Result<Value, TemplateError> {
    let text = PROFILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .ok_or_else(|| TemplateError::Unknown(name.to_string()))?;
    let text = text
        .replace("{{UID}}", &uid.to_string())
        .replace("{{GID}}", &gid.to_string());
    serde_json::from_str(&text).map_err(|source| TemplateError::Parse {
        name: name.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_renders_to_an_oci_spec_with_deny_all_first() {
        for (name, _) in PROFILES {
            let v = render(name, 1001, 1001).unwrap();
            let s: oci_spec::runtime::Spec = serde_json::from_value(v.clone()).unwrap();
            assert!(s.process().is_some(), "{name}");
            let first = &v["linux"]["resources"]["devices"][0];
            assert_eq!(first["allow"], false, "{name}");
            assert_eq!(first["access"], "rwm", "{name}");
        }
        assert!(render("nope", 0, 0).is_err());
        assert!(known("hpc").is_ok() && known("nope").is_err());
    }
}
