//! The host's files, /proc, processes (seeing, signalling, tracing) and SysV IPC.

use super::*;
use crate::both;

both!(
    read_host_secret_files,
    read_host_proc,
    see_host_processes,
    signal_host_processes,
    ptrace_host_process,
    host_sysv_ipc,
);

fn read_host_secret_files(t: &Ctx) {
    let marker = format!("husk-sec-secret-{}", t.id("home"));
    let home = match (t.mode, &host().user) {
        (Mode::Rootless, Some((_, _, home))) => PathBuf::from(home),
        _ => PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())),
    };
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.0);
        }
    }
    let secret = home.join(&marker);
    fs::write(&secret, "secret\n").unwrap();
    let _cleanup = Remove(secret.clone());
    let a = python(t, "read_host", &[&marker], &[]);
    if let Some(tr) = a.tries.iter().find(|t| t.what == "read /etc/shadow") {
        if tr.ok {
            let host_shadow = fs::read("/etc/shadow").unwrap();
            let host_sum = sha256_hex(&host_shadow);
            assert_ne!(
                tr.value,
                host_sum.as_str(),
                "{}: read the host's /etc/shadow",
                a.label
            );
            a.say("read /etc/shadow → the image's own file (differs from the host's): read-only image root, no host /etc");
        } else {
            a.say(format!(
                "read /etc/shadow → {}: the image's file, not readable by this uid",
                tr.errno
            ));
        }
    }
    assert_eq!(a.fact("HOME"), "/workspace", "{}", a.dump());
    assert_eq!(
        a.fact("marker_found"),
        &serde_json::json!([]),
        "{}",
        a.dump()
    );
    a.say(format!(
        "searched / for {} (in the caller's home {}) → not found: no host path but the workspace is bound; HOME=/workspace",
        marker,
        home.display()
    ));
}

/// sha256 as hex, through the host's sha256sum (no hashing crate in the tests).
fn sha256_hex(data: &[u8]) -> String {
    use std::io::Write;
    let mut c = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(data).unwrap();
    let out = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn read_host_proc(t: &Ctx) {
    let me = std::process::id().to_string();
    let a = python(t, "proc_host", &[&me], &[]);
    // The program is pid 1 (an init in front of it would make 2).
    let pids = a.fact("pids").as_array().unwrap();
    assert!(
        pids.len() <= 2 && pids.contains(&Value::from(1)),
        "{}",
        a.dump()
    );
    a.blocked(
        &format!("read /proc/{me}/"),
        &["ENOENT"],
        "new pid namespace: the host's pids do not exist here",
    );
    for masked in [
        "read /proc/kcore",
        "read /proc/sched_debug",
        "list /proc/scsi",
    ] {
        a.blocked_or(
            masked,
            &["ENOENT", "EACCES", "EPERM"],
            "masked path",
            "masked (empty)",
        );
    }
    for tr in a.tries.iter().filter(|t| t.what.starts_with("read /proc/")) {
        if tr.ok {
            assert_eq!(tr.value, 0, "{}: {} is not masked", a.label, tr.what);
        }
    }
    for tr in a.tries.iter().filter(|t| t.what.starts_with("list /proc/")) {
        if tr.ok {
            assert_eq!(
                tr.value,
                serde_json::json!([]),
                "{}: {} is not masked",
                a.label,
                tr.what
            );
        }
    }
    let k = a.fact("kallsyms_first_address").as_str().unwrap_or("0");
    assert!(
        k.chars().all(|c| c == '0'),
        "{}: kernel addresses: {k}",
        a.label
    );
    a.say("/proc shows the sandbox's own pids only; masked paths empty; kallsyms addresses zeroed");
}

fn see_host_processes(t: &Ctx) {
    let p = HostProc::start(t, "seen");
    let a = python(t, "host_procs", &[&p.marker], &[]);
    assert_eq!(
        a.fact("marker_seen"),
        &serde_json::json!([]),
        "{}",
        a.dump()
    );
    let alive = a.fact("kill0_alive").as_array().unwrap();
    assert!(
        alive.len() <= 2 && alive.contains(a.fact("own_pid")),
        "{}",
        a.dump()
    );
    a.say(format!(
        "scanned /proc and kill(pid, 0) for pids 1..65535 for the host's `{}` (pid {}) → saw only itself: new pid namespace",
        p.marker,
        p.pid()
    ));
}

fn signal_host_processes(t: &Ctx) {
    let mut p = HostProc::start(t, "victim");
    let pid = p.pid().to_string();
    let a = python(t, "signal_host", &[&pid], &[]);
    for prefix in [format!("kill({pid},"), format!("kill(-{pid},")] {
        a.blocked(
            &prefix,
            &["ESRCH"],
            "new pid namespace: host pids do not exist here",
        );
    }
    a.blocked("pidfd_open", &["ESRCH"], "new pid namespace");
    a.blocked_or(
        "kill(-1",
        &["ESRCH"],
        "nothing else in the pid namespace",
        "reaches only the sandbox's own processes",
    );
    assert!(p.alive(), "{}: the host process {pid} died", a.label);
    a.say(format!("host process {pid} (same uid) survived"));
}

fn ptrace_host_process(t: &Ctx) {
    let mut p = HostProc::start(t, "traced");
    let pid = p.pid().to_string();
    let a = python(t, "ptrace_host", &[&pid], &[]);
    a.blocked(
        "ptrace(",
        &["ESRCH", "EPERM"],
        "new pid namespace (and seccomp/no CAP_SYS_PTRACE)",
    );
    a.blocked("process_vm_readv", &["ESRCH", "EPERM"], "new pid namespace");
    a.blocked("open /proc/", &["ENOENT"], "new pid namespace");
    assert!(
        p.alive(),
        "{}: host process {pid} died or is traced",
        a.label
    );
    a.say(format!("host process {pid}: alive, TracerPid 0"));
}

fn host_sysv_ipc(t: &Ctx) {
    let out = Command::new("ipcmk")
        .args(["-M", "4096", "-p", "0666"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let id: String = text.chars().filter(char::is_ascii_digit).collect();
    struct Rm(String);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = Command::new("ipcrm").args(["-m", &self.0]).status();
        }
    }
    let _rm = Rm(id.clone());
    let shm = fs::read_to_string("/proc/sysvipc/shm").unwrap();
    let key = shm
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(1) == Some(&id.as_str()))
        .map(|f| f[0].to_string())
        .unwrap_or_else(|| panic!("host segment {id} not in /proc/sysvipc/shm ({text})"));
    let a = python(t, "ipc", &[&key], &[]);
    a.blocked(
        "shmget",
        &["ENOENT"],
        "new ipc namespace: the host's segment (mode 0666) does not exist here",
    );
    a.blocked("msgget", &["ENOENT"], "new ipc namespace");
    assert_eq!(
        a.fact("sysvipc_shm"),
        &serde_json::json!([]),
        "{}",
        a.dump()
    );
}
