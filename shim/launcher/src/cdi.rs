//! CDI, the Container Device Interface (cncf-tags/container-device-interface, SPEC.md): vendor spec
//! files in /etc/cdi and /var/run/cdi describe devices by fully qualified name
//! (`VENDOR/CLASS=NAME`, e.g. `nvidia.com/gpu=0`) and the container edits each needs: env, device
//! nodes, mounts (driver libraries), hooks. `--device NAME` (and `--gpu`, short for
//! `nvidia.com/gpu=all`) picks devices; their edits, plus the spec-wide edits of every spec used,
//! are merged into one [`Edits`] that spec building applies ([`plan`]).
//!
//! Rules kept from the spec: a later directory wins over an earlier one for the same device (so
//! /var/run/cdi, written at run time, overrides /etc/cdi); a spec's own `containerEdits` apply
//! once whenever any of its devices is used; `=all` means the spec's device named "all" when it
//! has one (nvidia-ctk writes one), else every device of the kind.
//!
//! Device nodes are bind mounts of the host's node (as the launcher does for /dev/fuse): a user
//! namespace cannot mknod, and with the host's /dev bound (the default) a node at its host path is
//! already there. A node (or mount) the host's /dev lacks would need a mount point made in the
//! host's /dev, which the launcher refuses ([`CdiError::NotOnHost`]): --contain gives the
//! container its own.
//!
//! Spec files are `*.json`, `*.yaml` or `*.yml`.

use crate::host::{Fs, Kind};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The kind `--gpu` stands for.
pub const GPU_KIND: &str = "nvidia.com/gpu";

/// Where spec files are looked for, lowest priority first.
pub const DEFAULT_DIRS: &[&str] = &["/etc/cdi", "/var/run/cdi"];

/// OCI hook names a CDI hook may use.
const HOOK_NAMES: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CdiError {
    #[error("parse --device {0:?}: want VENDOR/CLASS=NAME (e.g. nvidia.com/gpu=0 or nvidia.com/gpu=all)")]
    Name(String),
    #[error("read cdi spec {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("parse cdi spec {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("{device}: no CDI spec for {kind} in {dirs}")]
    NoSpec {
        device: String,
        kind: String,
        dirs: String,
    },
    #[error("{device}: unknown device; {kind} has {known}")]
    Unknown {
        device: String,
        kind: String,
        known: String,
    },
    #[error("cdi device node {0}: the host has no such device")]
    NoHostNode(PathBuf),
    #[error("cdi device node or mount {0}: not in the host's /dev, which the container shares; use --contain for a private /dev")]
    NotOnHost(PathBuf),
    #[error("cdi device node {0}: major and minor unknown (not given, and the host path is not a device)")]
    NoNumbers(PathBuf),
    #[error("cdi mount {0}: no such file or directory")]
    MountSource(PathBuf),
}

/// A spec file, as far as husk uses it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// cdiVersion is not checked: every version's fields husk reads mean the same.
    pub kind: String,
    pub devices: Vec<Device>,
    #[serde(default)]
    pub container_edits: Edits,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Name {
        S(String),
        N(u64),
    }
    Ok(match Name::deserialize(d)? {
        Name::S(s) => s,
        Name::N(n) => n.to_string(),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// YAML writes `name: 0` as easily as `name: "0"`.
    #[serde(deserialize_with = "string_or_number")]
    pub name: String,
    #[serde(default)]
    pub container_edits: Edits,
}

/// Container edits; several merge by concatenation ([`Edits::extend`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Edits {
    /// `KEY=VALUE`.
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub device_nodes: Vec<DeviceNode>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    #[serde(default)]
    pub hooks: Vec<Hook>,
    #[serde(default, alias = "additionalGids")]
    pub additional_gids: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceNode {
    /// In the container.
    pub path: PathBuf,
    /// On the host (default: `path`).
    pub host_path: Option<PathBuf>,
    /// "c", "b", "u" or "p"; default: the host node's.
    #[serde(rename = "type")]
    pub typ: Option<String>,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    /// cgroup access, default "rwm".
    pub permissions: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    pub host_path: PathBuf,
    pub container_path: PathBuf,
    #[serde(rename = "type")]
    pub typ: Option<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    pub hook_name: String,
    pub path: PathBuf,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    pub timeout: Option<i64>,
}

impl Edits {
    pub fn is_empty(&self) -> bool {
        *self == Edits::default()
    }

    pub fn extend(&mut self, other: &Edits) {
        self.env.extend(other.env.iter().cloned());
        self.device_nodes.extend(other.device_nodes.iter().cloned());
        self.mounts.extend(other.mounts.iter().cloned());
        self.hooks.extend(other.hooks.iter().cloned());
        for g in &other.additional_gids {
            if !self.additional_gids.contains(g) {
                self.additional_gids.push(*g);
            }
        }
    }
}

/// A requested device: `VENDOR/CLASS=NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub kind: String,
    pub name: String,
    /// How the user asked for it, for messages: `--device K=N` or `--gpu`.
    pub given: String,
}

impl Request {
    /// `--gpu`: every NVIDIA GPU.
    pub fn gpu() -> Request {
        Request {
            kind: GPU_KIND.into(),
            name: "all".into(),
            given: "--gpu".into(),
        }
    }
}

fn valid_kind(kind: &str) -> bool {
    let ok = |s: &str, extra: &[char]| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
    };
    match kind.split_once('/') {
        Some((vendor, class)) => ok(vendor, &['.', '-', '_']) && ok(class, &['-', '_']),
        None => false,
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

/// Parses `VENDOR/CLASS=NAME`.
pub fn parse_request(s: &str) -> Result<Request, CdiError> {
    match s.split_once('=') {
        Some((kind, name)) if valid_kind(kind) && valid_name(name) => Ok(Request {
            kind: kind.into(),
            name: name.into(),
            given: format!("--device {s}"),
        }),
        _ => Err(CdiError::Name(s.into())),
    }
}

/// The devices asked for: `--gpu` first, then each `--device` in order.
pub fn requests(gpu: bool, devices: &[String]) -> Result<Vec<Request>, CdiError> {
    let named = devices.iter().map(|d| parse_request(d));
    gpu.then(Request::gpu)
        .into_iter()
        .map(Ok)
        .chain(named)
        .collect()
}

/// The merged edits of `requests`, from the spec files in `dirs` ([`DEFAULT_DIRS`] when empty);
/// no request reads nothing.
pub fn load_edits(dirs: &[PathBuf], requests: &[Request]) -> Result<Edits, CdiError> {
    if requests.is_empty() {
        return Ok(Edits::default());
    }
    let defaults: Vec<PathBuf>;
    let dirs = if dirs.is_empty() {
        defaults = DEFAULT_DIRS.iter().map(PathBuf::from).collect();
        &defaults
    } else {
        dirs
    };
    Registry::load(dirs)?.resolve(requests)
}

/// Parses one spec file's text (YAML for `.yaml` and `.yml`, else JSON) and checks what husk
/// relies on.
pub fn parse(path: &Path, text: &str) -> Result<Spec, CdiError> {
    let bad = |reason: String| CdiError::Parse {
        path: path.into(),
        reason,
    };
    let yaml = matches!(
        path.extension().and_then(|x| x.to_str()),
        Some("yaml" | "yml")
    );
    let spec: Spec = if yaml {
        serde_yaml::from_str(text).map_err(|e| bad(e.to_string()))?
    } else {
        serde_json::from_str(text).map_err(|e| bad(e.to_string()))?
    };
    if !valid_kind(&spec.kind) {
        return Err(bad(format!("kind {:?}: want VENDOR/CLASS", spec.kind)));
    }
    let mut all = vec![&spec.container_edits];
    for d in &spec.devices {
        if !valid_name(&d.name) {
            return Err(bad(format!("device name {:?}", d.name)));
        }
        all.push(&d.container_edits);
    }
    for e in all {
        check_edits(e).map_err(bad)?;
    }
    Ok(spec)
}

fn check_edits(e: &Edits) -> Result<(), String> {
    if let Some(kv) = e.env.iter().find(|kv| !kv.contains('=')) {
        return Err(format!("env {kv:?}: want KEY=VALUE"));
    }
    for n in &e.device_nodes {
        if !n.path.is_absolute() {
            return Err(format!("device node {}: not absolute", n.path.display()));
        }
        if let Some(t) = n
            .typ
            .as_deref()
            .filter(|t| !["c", "b", "u", "p"].contains(t))
        {
            return Err(format!("device node {}: type {t:?}", n.path.display()));
        }
    }
    for m in &e.mounts {
        if !m.container_path.is_absolute() {
            return Err(format!(
                "mount {}: not absolute",
                m.container_path.display()
            ));
        }
    }
    for h in &e.hooks {
        if !HOOK_NAMES.contains(&h.hook_name.as_str()) {
            return Err(format!("hook name {:?}", h.hook_name));
        }
        if !h.path.is_absolute() {
            return Err(format!("hook {}: not absolute", h.path.display()));
        }
    }
    Ok(())
}

/// The spec files found, in priority order (lowest first).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    pub specs: Vec<(PathBuf, Spec)>,
    /// The directories searched, for messages.
    pub dirs: Vec<PathBuf>,
}

impl Registry {
    /// Reads `*.json`, `*.yaml` and `*.yml` in each directory (missing directories are skipped), by name within one.
    pub fn load(dirs: &[PathBuf]) -> Result<Registry, CdiError> {
        let mut r = Registry {
            dirs: dirs.to_vec(),
            ..Registry::default()
        };
        for dir in dirs {
            let rd = match std::fs::read_dir(dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(CdiError::Read {
                        path: dir.clone(),
                        reason: e.to_string(),
                    })
                }
            };
            let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for path in files {
                let ext = path.extension().and_then(|x| x.to_str());
                if !matches!(ext, Some("json" | "yaml" | "yml")) {
                    continue;
                }
                let text = std::fs::read_to_string(&path).map_err(|e| CdiError::Read {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                let spec = parse(&path, &text)?;
                r.specs.push((path, spec));
            }
        }
        Ok(r)
    }

    /// The merged edits for `requests`.
    pub fn resolve(&self, requests: &[Request]) -> Result<Edits, CdiError> {
        let mut out = Edits::default();
        let mut used_specs: Vec<usize> = Vec::new();
        let mut used_devices: Vec<(usize, usize)> = Vec::new();
        for req in requests {
            let picked = self.pick(req)?;
            for (s, d) in picked {
                if !used_specs.contains(&s) {
                    used_specs.push(s);
                    out.extend(&self.specs[s].1.container_edits);
                }
                if !used_devices.contains(&(s, d)) {
                    used_devices.push((s, d));
                    out.extend(&self.specs[s].1.devices[d].container_edits);
                }
            }
        }
        Ok(out)
    }

    /// (spec index, device index) for one request; a later spec wins for the same device name.
    fn pick(&self, req: &Request) -> Result<Vec<(usize, usize)>, CdiError> {
        let mut by_name: Vec<(String, usize, usize)> = Vec::new();
        for (s, (_, spec)) in self.specs.iter().enumerate() {
            if spec.kind != req.kind {
                continue;
            }
            for (d, dev) in spec.devices.iter().enumerate() {
                by_name.retain(|(n, _, _)| *n != dev.name);
                by_name.push((dev.name.clone(), s, d));
            }
        }
        if by_name.is_empty() {
            return Err(self.no_spec(req));
        }
        let named = |n: &str| by_name.iter().find(|(name, _, _)| name == n);
        if let Some((_, s, d)) = named(&req.name) {
            return Ok(vec![(*s, *d)]);
        }
        if req.name == "all" {
            return Ok(by_name.iter().map(|(_, s, d)| (*s, *d)).collect());
        }
        let mut known: Vec<&str> = by_name.iter().map(|(n, _, _)| n.as_str()).collect();
        known.sort();
        Err(CdiError::Unknown {
            device: req.given.clone(),
            kind: req.kind.clone(),
            known: known.join(", "),
        })
    }

    fn no_spec(&self, req: &Request) -> CdiError {
        let dirs: Vec<String> = self.dirs.iter().map(|p| p.display().to_string()).collect();
        CdiError::NoSpec {
            device: req.given.clone(),
            kind: req.kind.clone(),
            dirs: dirs.join(", "),
        }
    }
}

/// What the edits add to a config.json.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// `mounts` entries, after the launcher's own.
    pub mounts: Vec<Value>,
    /// Mount points (container path, is a directory) for the session root.
    pub destinations: Vec<(PathBuf, bool)>,
    /// `linux.resources.devices` allow rules.
    pub device_rules: Vec<Value>,
    /// `hooks.<name>` entries, in order.
    pub hooks: Vec<(String, Value)>,
}

/// Turns `edits` into spec pieces. `host_dev`: the host's /dev is bound into the container.
pub fn plan(edits: &Edits, fs: &dyn Fs, host_dev: bool) -> Result<Plan, CdiError> {
    let mut p = Plan::default();
    for n in &edits.device_nodes {
        p.device_node(n, fs, host_dev)?;
    }
    for m in &edits.mounts {
        p.mount(m, fs, host_dev)?;
    }
    for h in &edits.hooks {
        p.hooks.push((h.hook_name.clone(), hook(h)));
    }
    Ok(p)
}

impl Plan {
    /// A device node: its allow rule, and a bind of the host's node unless the host's /dev
    /// already holds it at the same path.
    fn device_node(&mut self, n: &DeviceNode, fs: &dyn Fs, host_dev: bool) -> Result<(), CdiError> {
        let host = n.host_path.clone().unwrap_or_else(|| n.path.clone());
        let node = fs.device(&host);
        if fs.stat(&host).is_none() {
            return Err(CdiError::NoHostNode(host));
        }
        self.device_rules.push(device_rule(n, node)?);
        let under_dev = n.path.starts_with("/dev");
        if host_dev && under_dev {
            if fs.lstat(&n.path).is_none() {
                return Err(CdiError::NotOnHost(n.path.clone()));
            }
            if host == n.path {
                return Ok(());
            }
        }
        self.mounts.push(
            json!({"destination": n.path, "type": "bind", "source": host,
            "options": ["bind", "nosuid"]}),
        );
        if !(host_dev && under_dev) {
            self.destinations.push((n.path.clone(), false));
        }
        Ok(())
    }

    /// A mount; a bind (the default type) gets `rbind` unless its options say bind or rbind.
    fn mount(&mut self, m: &Mount, fs: &dyn Fs, host_dev: bool) -> Result<(), CdiError> {
        if host_dev && m.container_path.starts_with("/dev") && fs.lstat(&m.container_path).is_none()
        {
            return Err(CdiError::NotOnHost(m.container_path.clone()));
        }
        let typ = m.typ.clone().unwrap_or_else(|| "bind".into());
        let mut options = m.options.clone();
        let is_dir = if typ == "bind" {
            let kind = fs
                .stat(&m.host_path)
                .ok_or_else(|| CdiError::MountSource(m.host_path.clone()))?;
            if !options.iter().any(|o| o == "bind" || o == "rbind") {
                options.insert(0, "rbind".into());
            }
            kind == Kind::Dir
        } else {
            true
        };
        self.mounts
            .push(json!({"destination": m.container_path, "type": typ,
            "source": m.host_path, "options": options}));
        self.destinations.push((m.container_path.clone(), is_dir));
        Ok(())
    }
}

/// The allow rule for device node `n`: type and numbers as given, else the host node's (`node`:
/// type, major, minor); "u" (unbuffered) is a "c".
fn device_rule(n: &DeviceNode, node: Option<(char, u64, u64)>) -> Result<Value, CdiError> {
    let typ = n
        .typ
        .clone()
        .or_else(|| node.map(|(t, _, _)| t.to_string()));
    let numbers = match (n.major, n.minor, node) {
        (Some(ma), Some(mi), _) => Some((ma, mi)),
        (_, _, Some((_, ma, mi))) => Some((ma as i64, mi as i64)),
        _ => None,
    };
    let (Some(typ), Some((major, minor))) = (typ, numbers) else {
        return Err(CdiError::NoNumbers(n.path.clone()));
    };
    let typ = if typ == "u" { "c".to_string() } else { typ };
    let access = n.permissions.clone().unwrap_or_else(|| "rwm".into());
    Ok(json!({"allow": true, "type": typ, "major": major, "minor": minor, "access": access}))
}

/// A `hooks.<name>` entry.
fn hook(h: &Hook) -> Value {
    let mut v = json!({"path": h.path});
    if !h.args.is_empty() {
        v["args"] = json!(h.args);
    }
    if !h.env.is_empty() {
        v["env"] = json!(h.env);
    }
    if let Some(t) = h.timeout {
        v["timeout"] = json!(t);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::underlay::fake::FakeFs;

    const VENDOR: &str = r#"{
      "cdiVersion": "0.6.0",
      "kind": "example.com/gpu",
      "containerEdits": {
        "env": ["DRIVER=1"],
        "mounts": [{"hostPath": "/opt/drv", "containerPath": "/usr/lib/drv", "options": ["ro"]}],
        "hooks": [{"hookName": "createContainer", "path": "/usr/bin/ldconfig-hook", "args": ["x"]}]
      },
      "devices": [
        {"name": "0", "containerEdits": {"env": ["GPU0=yes"],
          "deviceNodes": [{"path": "/dev/ex/gpu0", "hostPath": "/dev/zero", "type": "c", "major": 1, "minor": 5}]}},
        {"name": "1", "containerEdits": {
          "deviceNodes": [{"path": "/dev/ex/gpu1", "hostPath": "/dev/null", "major": 1, "minor": 3, "type": "c", "permissions": "rw"}]}}
      ]
    }"#;

    fn registry(files: &[&str]) -> Registry {
        Registry {
            specs: files
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let p = PathBuf::from(format!("/etc/cdi/{i}.json"));
                    let s = parse(&p, t).unwrap();
                    (p, s)
                })
                .collect(),
            dirs: vec!["/etc/cdi".into(), "/var/run/cdi".into()],
        }
    }

    fn req(s: &str) -> Request {
        parse_request(s).unwrap()
    }

    #[test]
    fn names() {
        assert_eq!(req("nvidia.com/gpu=all").kind, "nvidia.com/gpu");
        assert_eq!(req("vendor.io/fpga=GPU-3c1a:0").name, "GPU-3c1a:0");
        for bad in [
            "nvidia.com/gpu",
            "gpu=0",
            "a/b/c=0",
            "x.com/gpu=",
            "x.com/=1",
        ] {
            assert!(parse_request(bad).is_err(), "{bad}");
        }
        let asked = requests(true, &["x.com/fpga=1".into()]).unwrap();
        assert_eq!(asked, [Request::gpu(), req("x.com/fpga=1")]);
        assert!(requests(false, &["bad".into()]).is_err());
        assert_eq!(load_edits(&[], &[]).unwrap(), Edits::default());
    }

    #[test]
    fn one_device_gets_spec_and_device_edits_once() {
        let r = registry(&[VENDOR]);
        let e = r
            .resolve(&[req("example.com/gpu=0"), req("example.com/gpu=0")])
            .unwrap();
        assert_eq!(e.env, ["DRIVER=1", "GPU0=yes"]);
        assert_eq!(e.device_nodes.len(), 1);
        assert_eq!(e.mounts.len(), 1);
        assert_eq!(e.hooks.len(), 1);
    }

    #[test]
    fn all_is_every_device_unless_one_is_named_all() {
        let r = registry(&[VENDOR]);
        let e = r.resolve(&[req("example.com/gpu=all")]).unwrap();
        let paths: Vec<_> = e.device_nodes.iter().map(|n| n.path.clone()).collect();
        assert_eq!(
            paths,
            [Path::new("/dev/ex/gpu0"), Path::new("/dev/ex/gpu1")]
        );
        assert_eq!(e.env.iter().filter(|v| *v == "DRIVER=1").count(), 1);
        let with_all = VENDOR.replacen(r#"{"name": "1""#, r#"{"name": "all""#, 1);
        let e = registry(&[&with_all])
            .resolve(&[req("example.com/gpu=all")])
            .unwrap();
        assert_eq!(e.device_nodes.len(), 1);
        assert_eq!(e.device_nodes[0].path, Path::new("/dev/ex/gpu1"));
    }

    #[test]
    fn yaml_specs_as_nvidia_ctk_writes_them() {
        let text = "---\ncdiVersion: 0.5.0\nkind: nvidia.com/gpu\ncontainerEdits:\n  env:\n  - NVIDIA_VISIBLE_DEVICES=void\n  hooks:\n  - hookName: createContainer\n    path: /usr/bin/nvidia-ctk\n    args: [nvidia-ctk, hook, update-ldcache]\ndevices:\n- name: 0\n  containerEdits:\n    deviceNodes:\n    - path: /dev/nvidia0\n- name: all\n  containerEdits:\n    deviceNodes:\n    - path: /dev/nvidia0\n";
        let spec = parse(Path::new("/etc/cdi/nvidia.yaml"), text).unwrap();
        assert_eq!(spec.devices.len(), 2);
        assert_eq!(spec.devices[0].name, "0");
        assert_eq!(spec.container_edits.hooks[0].args.len(), 3);
        let e = parse(Path::new("/etc/cdi/x.yml"), "kind: [").unwrap_err();
        assert!(
            e.to_string().starts_with("parse cdi spec /etc/cdi/x.yml: "),
            "{e}"
        );
    }

    #[test]
    fn a_later_spec_wins_for_the_same_device() {
        let later = r#"{"cdiVersion": "0.6.0", "kind": "example.com/gpu",
            "devices": [{"name": "0", "containerEdits": {"env": ["RUNTIME=1"]}}]}"#;
        let e = registry(&[VENDOR, later])
            .resolve(&[req("example.com/gpu=0")])
            .unwrap();
        assert_eq!(e.env, ["RUNTIME=1"]);
    }

    #[test]
    fn errors_name_what_is_missing() {
        let r = registry(&[VENDOR]);
        let e = r.resolve(&[Request::gpu()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--gpu: no CDI spec for nvidia.com/gpu in /etc/cdi, /var/run/cdi"
        );
        let e = r.resolve(&[req("example.com/gpu=7")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--device example.com/gpu=7: unknown device; example.com/gpu has 0, 1"
        );
        let p = Path::new("/etc/cdi/bad.json");
        for (text, why) in [
            ("{", "EOF"),
            (
                r#"{"cdiVersion":"0.6.0","kind":"nokind","devices":[]}"#,
                "kind",
            ),
            (
                r#"{"cdiVersion":"0.6.0","kind":"a.b/c","devices":[{"name":"0","containerEdits":{"hooks":[{"hookName":"later","path":"/x"}]}}]}"#,
                "hook name",
            ),
            (
                r#"{"cdiVersion":"0.6.0","kind":"a.b/c","devices":[{"name":"0","containerEdits":{"env":["NOEQ"]}}]}"#,
                "NOEQ",
            ),
        ] {
            let msg = parse(p, text).unwrap_err().to_string();
            assert!(
                msg.starts_with("parse cdi spec /etc/cdi/bad.json: "),
                "{msg}"
            );
            assert!(msg.contains(why), "{msg}");
        }
    }

    fn fs() -> FakeFs {
        FakeFs::default()
            .file("/dev/zero", "")
            .file("/dev/null", "")
            .dir("/opt/drv")
    }

    #[test]
    fn plan_contained_binds_nodes_and_allows_them() {
        let e = registry(&[VENDOR])
            .resolve(&[req("example.com/gpu=all")])
            .unwrap();
        let p = plan(&e, &fs(), false).unwrap();
        assert_eq!(p.mounts.len(), 3, "{:?}", p.mounts);
        assert_eq!(p.mounts[0]["source"], "/dev/zero");
        assert_eq!(p.mounts[0]["destination"], "/dev/ex/gpu0");
        assert_eq!(p.mounts[2]["options"], json!(["rbind", "ro"]));
        assert_eq!(
            p.device_rules[1],
            json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"})
        );
        assert!(p
            .destinations
            .contains(&(PathBuf::from("/usr/lib/drv"), true)));
        assert_eq!(p.hooks[0].0, "createContainer");
        assert_eq!(p.hooks[0].1["args"], json!(["x"]));
    }

    #[test]
    fn plan_with_the_hosts_dev() {
        let mut e = Edits::default();
        e.device_nodes.push(DeviceNode {
            path: "/dev/zero".into(),
            host_path: None,
            typ: Some("c".into()),
            major: Some(1),
            minor: Some(5),
            permissions: None,
        });
        // Already there through the /dev bind: only the cgroup rule.
        let p = plan(&e, &fs(), true).unwrap();
        assert!(p.mounts.is_empty() && p.device_rules.len() == 1);
        // A node the host's /dev lacks would need a mount point made there.
        e.device_nodes[0].path = "/dev/ex/gpu0".into();
        e.device_nodes[0].host_path = Some("/dev/zero".into());
        let err = plan(&e, &fs(), true).unwrap_err();
        assert_eq!(err, CdiError::NotOnHost("/dev/ex/gpu0".into()));
        let mut m = Edits::default();
        m.mounts.push(Mount {
            host_path: "/opt/drv".into(),
            container_path: "/dev/ex".into(),
            typ: None,
            options: Vec::new(),
        });
        assert_eq!(
            plan(&m, &fs(), true).unwrap_err(),
            CdiError::NotOnHost("/dev/ex".into())
        );
        assert_eq!(plan(&m, &fs(), false).unwrap().mounts.len(), 1);
        e.device_nodes[0].host_path = Some("/dev/nvidia9".into());
        let err = plan(&e, &fs(), false).unwrap_err();
        assert_eq!(err, CdiError::NoHostNode("/dev/nvidia9".into()));
        e.device_nodes[0].host_path = Some("/dev/null".into());
        e.device_nodes[0].major = None;
        let err = plan(&e, &fs(), false).unwrap_err();
        assert_eq!(err, CdiError::NoNumbers("/dev/ex/gpu0".into()));
    }
}
