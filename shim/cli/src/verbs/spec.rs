//! `husk spec`: write a starting config.json (the embedded `default` or `rootless` template).

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

const DEFAULT: &str = include_str!("../../../../spec-templates/default.json");
const ROOTLESS: &str = include_str!("../../../../spec-templates/rootless.json");

#[derive(Debug, Args)]
pub struct SpecArgs {
    /// Generate a config for an unprivileged user (user namespace mapping you to root)
    #[arg(long)]
    pub rootless: bool,
    /// Directory to write config.json into
    #[arg(short, long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
}

/// Renders a template: `{{UID}}` and `{{GID}}` become the caller's ids.
pub fn render(rootless: bool) -> String {
    if !rootless {
        return DEFAULT.to_string();
    }
    ROOTLESS
        .replace("{{UID}}", &nix::unistd::geteuid().to_string())
        .replace("{{GID}}", &nix::unistd::getegid().to_string())
}

pub fn run(a: SpecArgs) -> anyhow::Result<i32> {
    let path = a.bundle.join("config.json");
    if path.exists() {
        anyhow::bail!("write {}: file exists; remove it first", path.display());
    }
    std::fs::write(&path, render(a.rootless))
        .with_context(|| format!("write {}", path.display()))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_as_oci_specs_with_deny_all_devices() {
        for rootless in [false, true] {
            let s: oci_spec::runtime::Spec = serde_json::from_str(&render(rootless)).unwrap();
            let devs = s
                .linux()
                .as_ref()
                .unwrap()
                .resources()
                .as_ref()
                .unwrap()
                .devices();
            let first = &devs.as_ref().unwrap()[0];
            assert!(!first.allow(), "first device rule must deny all");
            assert_eq!(first.access().as_deref(), Some("rwm"));
        }
    }

    #[test]
    fn rootless_maps_caller() {
        let s: oci_spec::runtime::Spec = serde_json::from_str(&render(true)).unwrap();
        let m = &s.linux().as_ref().unwrap().uid_mappings().as_ref().unwrap()[0];
        assert_eq!(m.host_id(), nix::unistd::geteuid().as_raw());
    }
}
