//! The container's environment, in layers (later wins):
//!
//! 1. the profile's env (defaults: PATH, TERM);
//! 2. the host's environment, minus [`DENY`] and the prefixed variables below (with --cleanenv or
//!    --containall only [`CLEAN_KEEP`]); with --x11 always DISPLAY and XAUTHORITY;
//! 3. the image's Env, then the CDI devices' env (`--device`, `--gpu`);
//! 4. `SINGULARITYENV_NAME`, then `APPTAINERENV_NAME`, then `HUSKENV_NAME` from the host: NAME;
//! 5. `--env-file`, then `--env`, in order;
//! 6. HOME (the caller's home, unless layer 4 or 5 set it) and, for `shell`, PS1="Husk> ".
//!
//! Output is sorted by name, so a spec is the same whatever order the host listed its variables in.

use crate::host::HostFacts;
use crate::image::ImageConfig;
use crate::options::{Options, Verb};
use std::collections::BTreeMap;
use std::path::Path;

/// Host variables never passed through. PATH: the host's names host directories (modules, spack
/// views) the image does not have; the image's or the profile's PATH applies (pass one with
/// HUSKENV_PATH). LD_*: host libraries loaded into the image's programs break them (another libc).
/// PS1: `shell` sets its own.
pub const DENY: &[&str] = &["PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "PS1"];

/// What --cleanenv keeps from the host.
pub const CLEAN_KEEP: &[&str] = &["TERM", "LANG"];

/// Prefixes that set NAME inside, lowest precedence first.
pub const PREFIXES: &[&str] = &["SINGULARITYENV_", "APPTAINERENV_", "HUSKENV_"];

pub const PS1: &str = "Husk> ";

fn split(kv: &str) -> Option<(&str, &str)> {
    kv.split_once('=').filter(|(k, _)| !k.is_empty())
}

/// The final `KEY=VALUE` list.
pub fn environment(
    profile_env: &[String],
    image: &ImageConfig,
    opts: &Options,
    host: &HostFacts,
    home: &Path,
) -> Vec<String> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for kv in profile_env {
        if let Some((k, v)) = split(kv) {
            env.insert(k.into(), v.into());
        }
    }
    pass_host(&mut env, opts, host);
    for kv in image.env.iter().chain(&opts.cdi.env) {
        if let Some((k, v)) = split(kv) {
            env.insert(k.into(), v.into());
        }
    }
    let explicit = explicit(opts, host);
    let home_set = explicit.iter().any(|(k, _)| k == "HOME");
    let ps1_set = explicit.iter().any(|(k, _)| k == "PS1");
    env.extend(explicit);
    if !home_set {
        env.insert("HOME".into(), home.display().to_string());
    }
    if matches!(opts.verb, Verb::Shell { .. }) && !ps1_set {
        env.insert("PS1".into(), PS1.into());
    }
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// The environment of `exec instance://NAME`: the caller's variables (minus [`DENY`]; the
/// prefixed ones set NAME), under the instance's own (`own`, its process env), under `given`
/// (--env). Sorted by name.
pub fn exec_environment(
    own: &[String],
    host: &[(String, String)],
    given: &[String],
) -> Vec<String> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in host {
        let prefixed = PREFIXES.iter().any(|p| k.starts_with(p));
        if !prefixed && !DENY.contains(&k.as_str()) {
            env.insert(k.clone(), v.clone());
        }
    }
    for kv in own {
        if let Some((k, v)) = split(kv) {
            env.insert(k.into(), v.into());
        }
    }
    for prefix in PREFIXES {
        for (k, v) in host {
            match k.strip_prefix(prefix) {
                Some(name) if !name.is_empty() => {
                    env.insert(name.into(), v.clone());
                }
                _ => {}
            }
        }
    }
    for kv in given {
        if let Some((k, v)) = split(kv) {
            env.insert(k.into(), v.into());
        }
    }
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Layer 2: the host's variables that pass.
fn pass_host(env: &mut BTreeMap<String, String>, opts: &Options, host: &HostFacts) {
    let clean = opts.cleanenv || opts.containall;
    for (k, v) in &host.env {
        let prefixed = PREFIXES.iter().any(|p| k.starts_with(p));
        let pass = if clean {
            CLEAN_KEEP.contains(&k.as_str())
        } else {
            !prefixed && !DENY.contains(&k.as_str())
        };
        if pass {
            env.insert(k.clone(), v.clone());
        }
    }
    if opts.x11 {
        // The display is the point of --x11, --cleanenv or not.
        for (k, v) in host
            .env
            .iter()
            .filter(|(k, _)| k == "DISPLAY" || k == "XAUTHORITY")
        {
            env.insert(k.clone(), v.clone());
        }
    }
}

/// Layers 4 and 5: the prefixed host variables, then --env-file and --env, in order.
fn explicit(opts: &Options, host: &HostFacts) -> Vec<(String, String)> {
    let mut explicit: Vec<(String, String)> = Vec::new();
    for prefix in PREFIXES {
        for (k, v) in &host.env {
            match k.strip_prefix(prefix) {
                Some(name) if !name.is_empty() => explicit.push((name.into(), v.clone())),
                _ => {}
            }
        }
    }
    explicit.extend(opts.env.iter().cloned());
    explicit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(env: &[(&str, &str)]) -> HostFacts {
        HostFacts {
            uid: 1001,
            gid: 1001,
            user: "u".into(),
            gecos: String::new(),
            home: "/home/u".into(),
            cwd: "/".into(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            kernel: (6, 1),
            overlayfs: true,
        }
    }

    fn get(env: &[String], key: &str) -> Option<String> {
        env.iter()
            .find_map(|e| e.strip_prefix(&format!("{key}=")).map(String::from))
    }

    const PROFILE: &[&str] = &["PATH=/usr/bin:/bin", "TERM=xterm"];

    fn profile() -> Vec<String> {
        PROFILE.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn layers() {
        let h = host(&[
            ("FOO", "host"),
            ("PATH", "/opt/modules/bin"),
            ("LD_PRELOAD", "x.so"),
            ("TERM", "screen"),
            ("SINGULARITYENV_A", "s"),
            ("APPTAINERENV_A", "a"),
            ("HUSKENV_B", "h"),
            ("APPTAINERENV_C", "a"),
        ]);
        let image = ImageConfig {
            env: vec!["PATH=/img/bin".into(), "FOO=image".into()],
            ..Default::default()
        };
        let mut opts = Options::new(Verb::Exec { command: vec![] });
        opts.env = vec![("C".into(), "flag".into())];
        let env = environment(&profile(), &image, &opts, &h, Path::new("/home/u"));
        assert_eq!(get(&env, "PATH").as_deref(), Some("/img/bin"));
        assert_eq!(get(&env, "FOO").as_deref(), Some("image"));
        assert_eq!(get(&env, "TERM").as_deref(), Some("screen"));
        assert_eq!(get(&env, "A").as_deref(), Some("a"));
        assert_eq!(get(&env, "B").as_deref(), Some("h"));
        assert_eq!(get(&env, "C").as_deref(), Some("flag"));
        assert_eq!(get(&env, "HOME").as_deref(), Some("/home/u"));
        assert_eq!(get(&env, "LD_PRELOAD"), None);
        assert_eq!(get(&env, "HUSKENV_B"), None);
        assert_eq!(get(&env, "PS1"), None);
    }

    #[test]
    fn cdi_env_after_the_image_before_flags() {
        let image = ImageConfig {
            env: vec!["GPU=image".into(), "LIB=image".into()],
            ..Default::default()
        };
        let mut opts = Options::new(Verb::Exec { command: vec![] });
        opts.cdi.env = vec!["GPU=cdi".into(), "LIB=cdi".into()];
        opts.env = vec![("LIB".into(), "flag".into())];
        let env = environment(&profile(), &image, &opts, &host(&[]), "/h".as_ref());
        assert_eq!(get(&env, "GPU").as_deref(), Some("cdi"));
        assert_eq!(get(&env, "LIB").as_deref(), Some("flag"));
    }

    #[test]
    fn cleanenv_keeps_little_and_shell_sets_ps1() {
        let h = host(&[("FOO", "host"), ("LANG", "C.UTF-8"), ("HUSKENV_X", "1")]);
        let mut opts = Options::new(Verb::Shell { shell: None });
        opts.cleanenv = true;
        let env = environment(
            &profile(),
            &ImageConfig::default(),
            &opts,
            &h,
            "/home/u".as_ref(),
        );
        assert_eq!(get(&env, "FOO"), None);
        assert_eq!(get(&env, "LANG").as_deref(), Some("C.UTF-8"));
        assert_eq!(get(&env, "X").as_deref(), Some("1"));
        assert_eq!(get(&env, "PATH").as_deref(), Some("/usr/bin:/bin"));
        assert_eq!(get(&env, "PS1").as_deref(), Some(PS1));
    }

    /// Issue 14: `exec instance://NAME` passes the caller's environment under the instance's own
    /// and --env; PATH and LD_* stay out; prefixes set names.
    #[test]
    fn exec_environment_layers() {
        let own: Vec<String> = ["PATH=/usr/bin", "MODE=inst"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let host: Vec<(String, String)> = [
            ("PATH", "/host/bin"),
            ("LD_PRELOAD", "x.so"),
            ("MODE", "caller"),
            ("EDITOR", "vi"),
            ("HUSKENV_TOOL", "gcc"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let env = exec_environment(&own, &host, &["EDITOR=nano".to_string()]);
        assert_eq!(
            env,
            ["EDITOR=nano", "MODE=inst", "PATH=/usr/bin", "TOOL=gcc"]
        );
    }
}
