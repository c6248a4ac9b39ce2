//! Test helpers: temporary directories, the root check, and running one test in a fresh process.
//!
//! Loading seccomp, dropping capabilities and switching uid cannot be undone, so each such test has
//! a parent half, which re-runs this test binary with `--exact <name> --ignored` and an environment
//! variable naming the child, and an `#[ignore]`d child half that does the irreversible work and
//! asserts (a panic there becomes a non-zero exit in the parent's assertion).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

const CHILD_ENV: &str = "HUSK_SECURITY_CHILD";

/// A directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("husk-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// True when running as root. Otherwise prints why the test is skipped and returns false, or
/// panics when `HUSK_REQUIRE_PRIVILEGED=1` (CI), so a privileged test never silently passes there.
pub(crate) fn privileged(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("HUSK_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{test} needs root and HUSK_REQUIRE_PRIVILEGED=1 forbids skipping it");
    }
    eprintln!("skipped {test}: needs root");
    false
}

/// True inside the child process started by [`run_child`] for `name`.
pub(crate) fn is_child(name: &str) -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok(name)
}

/// Result of one child run.
pub(crate) struct Child {
    pub status: ExitStatus,
    pub output: String,
}

impl Child {
    /// Asserts the child test ran (exactly one) and passed.
    pub(crate) fn assert_passed(&self) {
        assert!(
            self.status.success() && self.output.contains("1 passed"),
            "child failed ({}):\n{}",
            self.status,
            self.output
        );
    }
}

/// Runs the ignored test `name` (path without the crate name) alone in a new process, with extra
/// environment `env`.
pub(crate) fn run_child(name: &str, env: &[(&str, &str)]) -> Child {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, name)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Child {
        status: out.status,
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// A field of /proc/thread-self/status ("CapEff", "Seccomp", ...); capabilities and seccomp are
/// per-thread, and libtest may run the test on a thread other than the main one.
pub(crate) fn status_field(field: &str) -> String {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in /proc/thread-self/status"))
        .trim()
        .to_string()
}

/// A capability mask field of /proc/thread-self/status as a number.
pub(crate) fn cap_mask(field: &str) -> u64 {
    u64::from_str_radix(&status_field(field), 16).unwrap()
}

/// Syscalls a container must not make unconditionally (namespace, mount, module, clock, key,
/// tracing and NUMA policy changes); everything else the native table knows is allowed.
#[rustfmt::skip]
const DENY: &[&str] = &[
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "clone", "clone3", "create_module",
    "delete_module", "finit_module", "fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms",
    "get_mempolicy", "init_module", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load",
    "keyctl", "lookup_dcookie", "mbind", "mount", "mount_setattr", "move_mount", "move_pages",
    "name_to_handle_at", "nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open",
    "personality", "pivot_root", "process_vm_readv", "process_vm_writev", "ptrace", "query_module",
    "quotactl", "quotactl_fd", "reboot", "request_key", "set_mempolicy", "setns", "settimeofday",
    "socket", "swapoff", "swapon", "sysfs", "_sysctl", "syslog", "umount2", "unshare", "uselib",
    "userfaultfd", "ustat", "vhangup", "vm86", "vm86old",
];

/// A profile shaped like Docker's default: default ERRNO(EPERM), the native x86 family of
/// architectures, one big ALLOW list built from libseccomp's native and compat syscall tables
/// minus [`DENY`] (about 400 names on x86_64), and Docker's kinds of argument rules (personality
/// values, clone without namespace flags, socket without AF_VSOCK, clone3 → ENOSYS), plus one name
/// libseccomp does not know.
pub(crate) fn docker_like_profile() -> oci_spec::runtime::LinuxSeccomp {
    use libseccomp::{ScmpArch, ScmpSyscall};
    let native = ScmpArch::native();
    // Like Docker's list, the names of the compat architecture (x86 on x86_64) are included too.
    let tables = match native {
        ScmpArch::X8664 => vec![native, ScmpArch::X86],
        ScmpArch::Aarch64 => vec![native, ScmpArch::Arm],
        _ => vec![native],
    };
    let name = |arch: ScmpArch, n: i32| ScmpSyscall::from_raw_syscall(n).get_name_by_arch(arch);
    let mut allow: Vec<String> = tables
        .iter()
        .flat_map(|&arch| (0..1024).filter_map(move |n| name(arch, n).ok()))
        .filter(|name| !DENY.contains(&name.as_str()))
        .collect();
    allow.sort();
    allow.dedup();
    allow.push("husk_not_a_syscall".to_string());
    let arches = match native {
        ScmpArch::X8664 => vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        ScmpArch::Aarch64 => vec!["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        _ => vec![],
    };
    let personality: Vec<_> = [0u64, 8, 0x20000, 0x20008, 0xffff_ffff]
        .iter()
        .map(|v| {
            serde_json::json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]})
        })
        .collect();
    let mut syscalls = vec![serde_json::json!({"names": allow, "action": "SCMP_ACT_ALLOW"})];
    syscalls.extend(personality);
    syscalls.extend([
        serde_json::json!({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 0x7E02_0000u64, "valueTwo": 0,
                      "op": "SCMP_CMP_MASKED_EQ"}]}),
        serde_json::json!({"names": ["socket"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]}),
        serde_json::json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}),
    ]);
    serde_json::from_value(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": arches,
        "syscalls": syscalls,
    }))
    .unwrap()
}
