//! The default report: everything the process can see about itself, from /proc/self and a few
//! libc calls, as one JSON object. Each reader degrades to `null` instead of failing, since the
//! point is to report what a (possibly hostile) container setup left visible.

use crate::json::Json;
use crate::sys;
use std::fs;

/// Capability names by bit number (linux/capability.h, up to CAP_CHECKPOINT_RESTORE = 40).
pub const CAP_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// /proc/self/limits row titles → RLIMIT_* names as config.json spells them.
const RLIMITS: [(&str, &str); 16] = [
    ("Max cpu time", "RLIMIT_CPU"),
    ("Max file size", "RLIMIT_FSIZE"),
    ("Max data size", "RLIMIT_DATA"),
    ("Max stack size", "RLIMIT_STACK"),
    ("Max core file size", "RLIMIT_CORE"),
    ("Max resident set", "RLIMIT_RSS"),
    ("Max processes", "RLIMIT_NPROC"),
    ("Max open files", "RLIMIT_NOFILE"),
    ("Max locked memory", "RLIMIT_MEMLOCK"),
    ("Max address space", "RLIMIT_AS"),
    ("Max file locks", "RLIMIT_LOCKS"),
    ("Max pending signals", "RLIMIT_SIGPENDING"),
    ("Max msgqueue size", "RLIMIT_MSGQUEUE"),
    ("Max nice priority", "RLIMIT_NICE"),
    ("Max realtime priority", "RLIMIT_RTPRIO"),
    ("Max realtime timeout", "RLIMIT_RTTIME"),
];

const NAMESPACES: [&str; 10] = [
    "cgroup",
    "ipc",
    "mnt",
    "net",
    "pid",
    "pid_for_children",
    "time",
    "time_for_children",
    "user",
    "uts",
];

pub fn report() -> Json {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| status_field(&status, name);
    let ids = |name: &str| -> Json {
        field(name).map_or(Json::Null, |v| {
            Json::Arr(v.split_whitespace().filter_map(parse_int).collect())
        })
    };
    let int = |name: &str| -> Json { field(name).and_then(|v| parse_int(&v)).into() };
    let uid = ids("Uid");
    let gid = ids("Gid");
    Json::obj()
        .with("pid", std::process::id())
        .with("ppid", int("PPid"))
        .with("pgrp", sys::process_group())
        .with("sid", sys::session())
        .with("uid", nth(&uid, 0))
        .with("euid", nth(&uid, 1))
        .with("gid", nth(&gid, 0))
        .with("egid", nth(&gid, 1))
        .with("uids", uid)
        .with("gids", gid)
        .with("groups", ids("Groups"))
        .with("caps", caps(&status))
        .with("no_new_privs", int("NoNewPrivs"))
        .with("seccomp", int("Seccomp"))
        .with("seccomp_filters", int("Seccomp_filters"))
        .with("umask", umask(&status))
        .with("cwd", read_link("/proc/self/cwd"))
        .with("root", read_link("/proc/self/root"))
        .with("exe", read_link("/proc/self/exe"))
        .with("hostname", read_trim("/proc/sys/kernel/hostname"))
        .with("domainname", read_trim("/proc/sys/kernel/domainname"))
        .with("env", env())
        .with("args", std::env::args().collect::<Vec<_>>())
        .with("rlimits", rlimits())
        .with("mounts", mounts())
        .with("ns", namespaces())
        .with("cgroup", cgroups())
        .with("uid_map", read_lines("/proc/self/uid_map"))
        .with("gid_map", read_lines("/proc/self/gid_map"))
        .with("setgroups", read_trim("/proc/self/setgroups"))
        .with("oom_score_adj", read_trim("/proc/self/oom_score_adj"))
        .with("apparmor", read_trim("/proc/self/attr/current"))
        .with("fds", fds())
        .with("tty", tty())
}

fn nth(ids: &Json, i: usize) -> Json {
    match ids {
        Json::Arr(v) => v.get(i).cloned().unwrap_or(Json::Null),
        _ => Json::Null,
    }
}

fn parse_int(s: &str) -> Option<Json> {
    s.trim().parse::<i64>().ok().map(Json::Int)
}

pub fn status_field(status: &str, name: &str) -> Option<String> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == name).then(|| v.trim().to_string())
    })
}

fn read_trim(path: &str) -> Json {
    fs::read_to_string(path)
        .ok()
        .map(|s| s.trim_end().to_string())
        .into()
}

fn read_lines(path: &str) -> Json {
    fs::read_to_string(path).ok().map_or(Json::Null, |s| {
        s.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .into()
    })
}

fn read_link(path: &str) -> Json {
    fs::read_link(path)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
        .into()
}

fn caps(status: &str) -> Json {
    let mut out = Json::obj();
    for (key, field) in [
        ("inheritable", "CapInh"),
        ("permitted", "CapPrm"),
        ("effective", "CapEff"),
        ("bounding", "CapBnd"),
        ("ambient", "CapAmb"),
    ] {
        let hex = status_field(status, field);
        let bits = hex.as_deref().and_then(|h| u64::from_str_radix(h, 16).ok());
        out.push(
            key,
            Json::obj()
                .with("hex", hex)
                .with("names", bits.map(cap_names)),
        );
    }
    out
}

pub fn cap_names(bits: u64) -> Vec<String> {
    (0..64)
        .filter(|b| bits & (1u64 << b) != 0)
        .map(|b| {
            CAP_NAMES
                .get(b)
                .map_or_else(|| format!("CAP_{b}"), |n| n.to_string())
        })
        .collect()
}

fn umask(status: &str) -> Json {
    // /proc shows the umask since Linux 4.7; fall back to the two-call dance.
    let mask = status_field(status, "Umask")
        .and_then(|m| u32::from_str_radix(&m, 8).ok())
        .unwrap_or_else(sys::read_umask);
    Json::from(format!("{mask:04o}"))
}

fn env() -> Json {
    let mut vars: Vec<String> = std::env::vars_os()
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect();
    vars.sort();
    vars.into()
}

fn rlimits() -> Json {
    let text = fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let mut out = Json::obj();
    for line in text.lines().skip(1) {
        let Some((title, name)) = RLIMITS.iter().find(|(t, _)| line.starts_with(t)) else {
            continue;
        };
        let mut cols = line[title.len()..].split_whitespace();
        let (soft, hard) = (cols.next(), cols.next());
        out.push(
            name,
            Json::obj()
                .with("soft", soft.map(limit_value))
                .with("hard", hard.map(limit_value)),
        );
    }
    out
}

/// "unlimited" stays a string; numbers become numbers (u64::MAX would overflow i64, so it is
/// reported as a string by [`Json::from`]).
fn limit_value(v: &str) -> Json {
    v.parse::<u64>().map_or_else(|_| Json::from(v), Json::from)
}

/// One entry per /proc/self/mountinfo line (proc(5)): target, fstype, source, per-mount options
/// and superblock options.
fn mounts() -> Json {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 6 || r.len() < 3 {
            continue;
        }
        out.push(
            Json::obj()
                .with("target", unescape(l[4]))
                .with("root", unescape(l[3]))
                .with("fstype", r[0])
                .with("source", unescape(r[1]))
                .with("options", l[5])
                .with("super", r[2])
                .with("optional", l[6..].join(" ")),
        );
    }
    Json::Arr(out)
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.len() >= i + 4 {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x");
            if let Ok(n) = u8::from_str_radix(digits, 8) {
                out.push(n);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn namespaces() -> Json {
    let mut out = Json::obj();
    for ns in NAMESPACES {
        let inode = fs::read_link(format!("/proc/self/ns/{ns}"))
            .ok()
            .and_then(|t| {
                let t = t.to_string_lossy().into_owned();
                let start = t.find('[')? + 1;
                t[start..t.len() - 1].parse::<u64>().ok()
            });
        out.push(ns, inode);
    }
    out
}

fn cgroups() -> Json {
    let text = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let rows: Vec<Json> = text
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (id, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
            Some(
                Json::obj()
                    .with("id", id)
                    .with("controllers", ctrl)
                    .with("path", path),
            )
        })
        .collect();
    Json::Arr(rows)
}

/// Open descriptors and what they point at. The directory handle used to list them shows up as
/// one extra entry pointing at /proc/<pid>/fd; it is left out.
pub fn fds() -> Json {
    let mut rows = Vec::new();
    let Ok(dir) = fs::read_dir("/proc/self/fd") else {
        return Json::Null;
    };
    let mut entries: Vec<(i64, String)> = dir
        .flatten()
        .filter_map(|e| {
            let fd = e.file_name().to_string_lossy().parse::<i64>().ok()?;
            let target = fs::read_link(e.path())
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_else(|err| format!("?{err}"));
            Some((fd, target))
        })
        .collect();
    entries.sort();
    let me = format!("/proc/{}/fd", std::process::id());
    for (fd, target) in entries {
        if target == me || target.starts_with("?") {
            continue;
        }
        rows.push(Json::obj().with("fd", fd).with("target", target));
    }
    Json::Arr(rows)
}

pub fn tty() -> Json {
    let mut out = Json::obj();
    for (name, fd) in [("stdin", 0), ("stdout", 1), ("stderr", 2)] {
        let path = format!("/proc/self/fd/{fd}");
        out.push(
            name,
            Json::obj()
                .with("isatty", sys::is_tty(fd))
                .with("ttyname", read_link(&path)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_names_decode_bits() {
        assert_eq!(
            cap_names(0x2000_0420),
            ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"]
        );
    }

    #[test]
    fn unescape_mountinfo() {
        assert_eq!(unescape(r"/a\040b\134c"), r"/a b\c");
    }

    #[test]
    fn report_is_an_object() {
        let r = report().render();
        assert!(r.starts_with('{') && r.contains("\"mounts\":["));
    }
}
