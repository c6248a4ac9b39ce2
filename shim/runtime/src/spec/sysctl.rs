//! `linux.sysctl`: only sysctls of a kernel namespace the container has to itself.
//!
//! The init writes each key under /proc/sys before the root is made read-only. A sysctl that is
//! not namespaced (kernel.core_pattern, vm.*, kernel.modprobe, ...) is global: writing it changes
//! the host (core_pattern = code execution as host root at the next crash). So, as runc
//! (libcontainer/configs/validate: sysctl), a key is accepted only for a namespace of the
//! container's own, listed in `linux.namespaces` and not the runtime's own namespace joined by path:
//! - ipc: kernel.msgmax, msgmnb, msgmni, sem, shmall, shmmax, shmmni, shm_rmid_forced, fs.mqueue.*
//! - net: net.*
//! - uts: kernel.domainname (kernel.hostname is refused: the `hostname` field sets it)
//! - user: user.*
//!
//! Everything else is refused when the container is created, naming the key.
//!
//! Keys use sysctl(8) syntax: dots separate the levels, or slashes when the key starts with one
//! ("net/ipv4/conf/eth0.100/rp_filter"); then a dot belongs to the name ("eth0.100").

use super::{invalid, namespace, ns_name, SpecError};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::path::Path;

/// Sysctls of the IPC namespace (besides the fs.mqueue.* prefix).
const IPC: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The levels of `key` ("net.ipv4.ip_forward" → ["net", "ipv4", "ip_forward"]); `None` when a level
/// is empty, `.` or `..`, or holds a `/` that would leave /proc/sys.
pub fn levels(key: &str) -> Option<Vec<String>> {
    let slashes = key
        .find(['.', '/'])
        .is_some_and(|i| key.as_bytes()[i] == b'/');
    let (sep, other) = if slashes { ('/', '.') } else { ('.', '/') };
    let levels: Vec<String> = key
        .split(sep)
        .map(|l| l.replace(other, "."))
        .collect::<Vec<_>>();
    let bad = |l: &String| l.is_empty() || l == "." || l == ".." || l.contains('/');
    (!levels.iter().any(bad)).then_some(levels)
}

/// The file under /proc/sys that `key` names (`key` passed [`validate`]).
pub fn path(key: &str) -> String {
    levels(key).unwrap_or_default().join("/")
}

/// Checks every key of `linux.sysctl` (see the module comment).
pub(super) fn validate(spec: &Spec) -> Result<(), SpecError> {
    let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    let mut keys: Vec<&String> = sysctl.keys().collect();
    keys.sort();
    for key in keys {
        let levels =
            levels(key).ok_or_else(|| invalid("linux.sysctl", format!("bad key {key:?}")))?;
        let dotted = levels.join(".");
        let needs = if IPC.contains(&dotted.as_str()) || dotted.starts_with("fs.mqueue.") {
            LinuxNamespaceType::Ipc
        } else if dotted.starts_with("net.") {
            LinuxNamespaceType::Network
        } else if dotted == "kernel.domainname" {
            LinuxNamespaceType::Uts
        } else if dotted.starts_with("user.") {
            LinuxNamespaceType::User
        } else if dotted == "kernel.hostname" {
            return Err(invalid(
                "linux.sysctl",
                format!("{key}: set the hostname field instead"),
            ));
        } else {
            return Err(invalid(
                "linux.sysctl",
                format!("{key}: not namespaced: writing it would change the host"),
            ));
        };
        if !owned(spec, needs)? {
            return Err(invalid(
                "linux.sysctl",
                format!(
                    "{key}: needs a {} namespace of the container's own in linux.namespaces",
                    ns_name(needs)
                ),
            ));
        }
    }
    Ok(())
}

/// Is namespace `typ` the container's own: new, or joined by a path that is not ours?
fn owned(spec: &Spec, typ: LinuxNamespaceType) -> Result<bool, SpecError> {
    match namespace(spec, typ) {
        None => Ok(false),
        Some(None) => Ok(true),
        Some(Some(path)) => Ok(
            !same_file(&path, &format!("/proc/self/ns/{}", ns_name(typ))).map_err(|e| {
                invalid("linux.namespaces.path", format!("{}: {e}", path.display()))
            })?,
        ),
    }
}

fn same_file(a: &Path, b: &str) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (std::fs::metadata(a)?, std::fs::metadata(b)?);
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(namespaces: &str, sysctl: &str) -> Spec {
        serde_json::from_str(&format!(
            r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},
            "process":{{"cwd":"/","args":["sh"],"user":{{"uid":0,"gid":0}}}},
            "linux":{{"namespaces":[{namespaces}],"sysctl":{{{sysctl}}}}}}}"#
        ))
        .unwrap()
    }

    fn check(namespaces: &str, sysctl: &str) -> Result<(), String> {
        validate(&spec(namespaces, sysctl)).map_err(|e| e.to_string())
    }

    #[test]
    fn levels_in_both_syntaxes() {
        assert_eq!(
            levels("net.ipv4.ip_forward").unwrap(),
            ["net", "ipv4", "ip_forward"]
        );
        assert_eq!(
            levels("net/ipv4/conf/eth0.100/rp_filter").unwrap(),
            ["net", "ipv4", "conf", "eth0.100", "rp_filter"]
        );
        assert_eq!(
            path("net.ipv4.conf.eth0/100.rp_filter"),
            "net/ipv4/conf/eth0.100/rp_filter"
        );
        for bad in [
            "",
            "net..x",
            "net.ipv4.",
            "/net/x",
            "net/../kernel/core_pattern",
            "a/./b",
        ] {
            assert!(levels(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn not_namespaced_refused_naming_the_key() {
        let e = check(
            r#"{"type":"ipc"},{"type":"network"},{"type":"uts"}"#,
            r#""kernel.core_pattern":"|/tmp/x""#,
        )
        .unwrap_err();
        assert!(
            e.contains("linux.sysctl: kernel.core_pattern: not namespaced"),
            "{e}"
        );
        let e = check(r#"{"type":"network"}"#, r#""vm/overcommit_memory":"1""#).unwrap_err();
        assert!(e.contains("vm/overcommit_memory"), "{e}");
    }

    #[test]
    fn each_needs_its_own_namespace() {
        let cases = [
            ("kernel.shmmax", "ipc"),
            ("fs.mqueue.msg_max", "ipc"),
            ("net.ipv4.ip_forward", "network"),
            ("kernel.domainname", "uts"),
            ("user.max_user_namespaces", "user"),
        ];
        for (key, ns) in cases {
            let kv = format!(r#""{key}":"1""#);
            let e = check("", &kv).unwrap_err();
            assert!(
                e.contains(key) && e.contains("namespace of the container's own"),
                "{e}"
            );
            let listed = format!(r#"{{"type":"{ns}"}}"#);
            check(&listed, &kv).unwrap_or_else(|e| panic!("{key} with {ns}: {e}"));
        }
    }

    #[test]
    fn hostname_refused_even_with_uts() {
        let e = check(r#"{"type":"uts"}"#, r#""kernel.hostname":"x""#).unwrap_err();
        assert!(
            e.contains("kernel.hostname: set the hostname field instead"),
            "{e}"
        );
    }

    #[test]
    fn joining_our_own_namespace_is_not_owning_one() {
        let ours = r#"{"type":"network","path":"/proc/self/ns/net"}"#;
        let e = check(ours, r#""net.ipv4.ip_forward":"1""#).unwrap_err();
        assert!(e.contains("net.ipv4.ip_forward"), "{e}");
        let e = check(
            r#"{"type":"ipc","path":"/nonexistent/ns"}"#,
            r#""kernel.sem":"1""#,
        )
        .unwrap_err();
        assert!(e.contains("linux.namespaces.path: /nonexistent/ns"), "{e}");
    }
}
