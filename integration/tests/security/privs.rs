//! Privileges and kernel interfaces: setuid and file capabilities, setid files planted for the host,
//! keyrings, bpf, perf, modules, mount, namespaces, chroot, open_by_handle_at, kexec and friends,
//! the clock and the hostname.

use super::*;
use crate::both;

both!(
    seccomp_bypass_via_32bit_and_x32_abis,
    seccomp_vsock_through_other_abis,
    proc_self_knobs,
    setuid_and_file_capabilities,
    setid_files_planted_in_the_workspace,
    keyctl_keyrings,
    bpf_programs,
    perf_event_open_counters,
    kernel_module_loading,
    mount_and_unmask,
    unshare_setns_user_namespaces,
    chroot_and_pivot_root,
    open_by_handle_at_shocker,
    kernel_log_kexec_io_ports,
    clock_setting,
    hostname_of_the_host,
);

fn setuid_and_file_capabilities(t: &Ctx) {
    let ws = workspace(t);
    let probe = host().rootfs.join("bin/husk-probe");
    let suid = ws.join("suid");
    fs::copy(&probe, &suid).unwrap();
    std::os::unix::fs::chown(&suid, Some(0), Some(0)).unwrap();
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).unwrap();
    let fcap = ws.join("fcap");
    fs::copy(&probe, &fcap).unwrap();
    let setcap = Command::new("setcap")
        .args(["cap_sys_admin,cap_dac_override,cap_setuid+ep"])
        .arg(&fcap)
        .status()
        .unwrap();
    assert!(setcap.success(), "setcap (libcap2-bin) failed");
    let a = python(t, "suid", &["/workspace/suid", "/workspace/fcap"], &[]);
    let caller = a.fact("caller").clone();
    let fcap = a.fact("exec /workspace/fcap");
    if fcap
        .as_str()
        .is_some_and(|s| s.contains("Operation not permitted"))
    {
        a.say("exec /workspace/fcap (cap_sys_admin,cap_dac_override,cap_setuid+ep) → EPERM: the kernel refuses a +ep file whose capabilities the empty bounding set cannot grant");
    }
    for (exe, what) in [
        ("exec /workspace/suid", "a setuid-root file"),
        (
            "exec /workspace/fcap",
            "a cap_sys_admin,cap_dac_override,cap_setuid+ep file",
        ),
    ] {
        let r = a.fact(exe);
        if exe.ends_with("fcap") && r.is_string() {
            continue;
        }
        assert!(r.is_object(), "{}: {exe}: {r}", a.label);
        assert_eq!(
            r["euid"], caller["euid"],
            "{}: {exe} changed euid: {r}",
            a.label
        );
        assert_eq!(
            r["effective"],
            serde_json::json!([]),
            "{}: {exe}: {r}",
            a.label
        );
        assert_eq!(
            r["permitted"],
            serde_json::json!([]),
            "{}: {exe}: {r}",
            a.label
        );
        assert_eq!(r["no_new_privs"], 1, "{}: {r}", a.label);
        a.say(format!(
            "{exe} ({what}) → euid {} and no capabilities: nosuid workspace, no_new_privs, empty bounding set",
            r["euid"]
        ));
    }
    let ws_opts = a.fact("workspace_mount").as_str().unwrap_or_default();
    assert!(
        ws_opts.contains("nosuid") && ws_opts.contains("nodev"),
        "{}: /workspace is mounted {ws_opts}",
        a.label
    );
}

/// Root in the sandbox is uid 0 on the host's filesystem (until root sandboxes get a user
/// namespace): a setuid copy of a binary in the workspace would be a setuid-root binary on the
/// host for any local user who can reach the directory.
fn setid_files_planted_in_the_workspace(t: &Ctx) {
    let a = python(t, "setid_files", &[], &[]);
    for prefix in ["chmod(rootshell, 0", "fchmod(", "fchmodat(", "fchmodat2("] {
        a.blocked(
            prefix,
            &["EPERM", "ENOSYS"],
            "seccomp: the chmod family may not set S_ISUID/S_ISGID",
        );
    }
    let control = a
        .tries
        .iter()
        .find(|t| t.what.starts_with("control"))
        .unwrap();
    assert!(control.ok, "{}: plain chmod refused: {}", a.label, a.dump());
    let mut setid = Vec::new();
    for e in fs::read_dir(workspace(t)).unwrap().flatten() {
        let m = e.path().symlink_metadata().unwrap();
        if m.mode() & 0o6000 != 0 && (m.is_dir() || m.len() > 0) {
            setid.push(format!(
                "{} {:o} {} bytes",
                e.path().display(),
                m.mode(),
                m.len()
            ));
        }
    }
    assert!(
        setid.is_empty(),
        "{}: ESCAPED: setuid/setgid files on the host: {setid:?}\n{}",
        a.label,
        a.dump()
    );
    a.say(format!(
        "open(O_CREAT, 04755)/mknod + write → the kernel cleared the bits (no CAP_FSETID); on the host: {}",
        a.fact("modes")
    ));
}

fn keyctl_keyrings(t: &Ctx) {
    let a = python(t, "keyctl", &[], &[]);
    a.blocked(
        "",
        &["EPERM"],
        "seccomp (add_key, keyctl, request_key refused): the keyrings are not namespaced",
    );
}

fn bpf_programs(t: &Ctx) {
    let a = python(t, "bpf", &[], &[]);
    a.blocked("bpf(", &["EPERM"], "seccomp (bpf refused), no CAP_BPF");
}

fn perf_event_open_counters(t: &Ctx) {
    let a = python(t, "perf", &[], &[]);
    a.blocked(
        "perf_event_open",
        &["EPERM"],
        "seccomp (perf_event_open refused), no CAP_PERFMON",
    );
}

fn kernel_module_loading(t: &Ctx) {
    let a = python(t, "modules", &[], &[]);
    a.blocked("init_module", &["EPERM"], "seccomp, no CAP_SYS_MODULE");
    a.blocked("finit_module", &["EPERM"], "seccomp, no CAP_SYS_MODULE");
    a.blocked("delete_module", &["EPERM"], "seccomp, no CAP_SYS_MODULE");
    a.blocked(
        "write /proc/sys/kernel/modprobe",
        &["EROFS", "EACCES", "ENOENT"],
        "/proc/sys read-only",
    );
}

fn mount_and_unmask(t: &Ctx) {
    let a = python(t, "mounts", &[], &[]);
    a.blocked(
        "mount",
        &["EPERM"],
        "seccomp (mount refused), no CAP_SYS_ADMIN",
    );
    a.blocked(
        "umount2",
        &["EPERM"],
        "seccomp (umount2 refused): masked paths stay masked",
    );
    a.blocked(
        "fsopen",
        &["EPERM", "ENOSYS"],
        "seccomp (new mount API refused)",
    );
    a.blocked("open_tree", &["EPERM", "ENOSYS"], "seccomp");
    assert_eq!(a.fact("mountinfo_unchanged"), true, "{}", a.dump());
}

fn unshare_setns_user_namespaces(t: &Ctx) {
    let a = python(t, "namespaces", &[], &[]);
    a.blocked(
        "unshare(",
        &["EPERM"],
        "seccomp (unshare refused; no user namespace to regain capabilities in)",
    );
    a.blocked(
        "clone(CLONE_NEWUSER)",
        &["EPERM"],
        "seccomp (clone with namespace flags refused)",
    );
    a.blocked(
        "clone3",
        &["ENOSYS", "EPERM"],
        "seccomp (clone3 → ENOSYS: its flags cannot be inspected)",
    );
    a.blocked(
        "setns(",
        &["EPERM"],
        "seccomp (setns refused), no CAP_SYS_ADMIN",
    );
}

fn chroot_and_pivot_root(t: &Ctx) {
    let a = busybox(
        t,
        "chroot_pivot_root",
        "mkdir -p /tmp/new/old; t chroot /tmp /bin/true; t chroot / /bin/true; \
         t pivot_root /tmp/new /tmp/new/old; husk-probe syscall 161 0",
        &[],
    );
    a.blocked("chroot", &["EPERM"], "no CAP_SYS_CHROOT (no capabilities)");
    a.blocked("pivot_root", &["EPERM"], "seccomp, no CAP_SYS_ADMIN");
    a.blocked(
        "syscall 161",
        &["EPERM", "EFAULT"],
        "chroot(NULL): no CAP_SYS_CHROOT",
    );
}

fn open_by_handle_at_shocker(t: &Ctx) {
    let a = python(t, "shocker", &[], &[]);
    a.blocked(
        "open_by_handle_at",
        &["EPERM"],
        "seccomp, no CAP_DAC_READ_SEARCH (the 2014 'shocker' escape)",
    );
}

fn kernel_log_kexec_io_ports(t: &Ctx) {
    let a = python(t, "kernel_interfaces", &[], &[]);
    a.blocked("syslog", &["EPERM"], "seccomp (syslog refused): no dmesg");
    a.blocked("kexec_load", &["EPERM"], "seccomp, no CAP_SYS_BOOT");
    a.blocked("iopl", &["EPERM"], "seccomp, no CAP_SYS_RAWIO");
    a.blocked("ioperm", &["EPERM"], "seccomp, no CAP_SYS_RAWIO");
    a.blocked("swapoff", &["EPERM"], "seccomp, no CAP_SYS_ADMIN");
    a.blocked("acct", &["EPERM"], "seccomp, no CAP_SYS_PACCT");
    a.blocked("quotactl", &["EPERM"], "seccomp");
    a.blocked(
        "io_uring_setup",
        &["EPERM", "ENOSYS"],
        "seccomp (io_uring refused)",
    );
    a.blocked("userfaultfd", &["EPERM"], "seccomp (userfaultfd refused)");
}

fn clock_setting(t: &Ctx) {
    let a = python(t, "clock", &[], &[]);
    a.blocked(
        "clock_settime",
        &["EPERM"],
        "no CAP_SYS_TIME (and seccomp): the clock is the host's",
    );
    a.blocked("settimeofday", &["EPERM"], "no CAP_SYS_TIME");
    a.blocked(
        "adjtimex(ADJ",
        &["EPERM"],
        "no CAP_SYS_TIME (reading is allowed)",
    );
    a.blocked("clock_adjtime", &["EPERM"], "no CAP_SYS_TIME");
    a.blocked("open /dev/rtc0", &["ENOENT"], "minimal /dev");
}

fn hostname_of_the_host(t: &Ctx) {
    let before = nix::unistd::gethostname().unwrap();
    let evil = format!("evil-{}", t.id("uts"));
    let script = format!(
        "t hostname {evil}; husk-probe write /proc/sys/kernel/hostname {evil}; \
         husk-probe write /proc/sys/kernel/domainname {evil}; f hostname \"$(hostname)\""
    );
    let a = busybox(t, "hostname", &script, &[]);
    a.blocked(
        "hostname",
        &["EPERM"],
        "no CAP_SYS_ADMIN (and its own uts namespace anyway)",
    );
    a.blocked(
        "write /proc/sys/kernel/",
        &["EROFS", "EACCES"],
        "/proc/sys read-only",
    );
    let inside = a.fact("hostname").as_str().unwrap().to_string();
    assert_ne!(inside, evil, "{}", a.dump());
    assert_ne!(
        inside,
        before.to_string_lossy(),
        "{}: sees the host's hostname",
        a.label
    );
    assert_eq!(nix::unistd::gethostname().unwrap(), before, "{}", a.label);
    a.say(format!(
        "hostname inside {inside:?}, the host's {:?} unchanged: new uts namespace",
        before
    ));
}

fn seccomp_bypass_via_32bit_and_x32_abis(t: &Ctx) {
    let a = python(t, "other_abis", &[], &[]);
    if a.fact("ia32") == true {
        let control = a.tries.iter().find(|t| t.what.contains("control")).unwrap();
        assert!(control.ok, "{}: i386 getpid failed: {}", a.label, a.dump());
        a.blocked(
            "i386 ",
            &["EPERM"],
            "the filter covers the i386 ABI (SCMP_ARCH_X86): same rules, i386 numbers",
        );
    } else {
        a.say("no IA-32 emulation in this kernel: int 0x80 is not an entry point here");
    }
    a.blocked(
        "x32 ",
        &["EPERM", "ENOSYS"],
        "the filter covers the x32 ABI (SCMP_ARCH_X32), or the kernel has none (ENOSYS)",
    );
}

/// The profile's one argument rule that matters most, "socket unless AF_VSOCK" (vsock reaches the
/// hypervisor's port space; no namespace covers it), on every ABI. On i386, socketcall(2) carries
/// the family in memory: libseccomp drops the condition there, so husk refuses the sub-call
/// (ENOSYS: a libc falls back to the direct socket syscall, which the filter checks).
fn seccomp_vsock_through_other_abis(t: &Ctx) {
    let a = python(t, "vsock_other_abis", &[], &[]);
    let control = |what: &str| {
        let c = a.tries.iter().find(|t| t.what == what).unwrap();
        assert!(c.ok, "{}: {what} failed: {}", a.label, a.dump());
    };
    control("control: x86_64 socket(AF_INET)");
    a.blocked(
        "x86_64 socket(AF_VSOCK)",
        &["EPERM"],
        "seccomp: socket(AF_VSOCK) refused",
    );
    a.blocked(
        "x32 socket(AF_VSOCK)",
        &["EPERM"],
        "the same rule on the x32 ABI",
    );
    if a.fact("ia32") == true {
        control("control: i386 socket(AF_INET)");
        a.blocked(
            "i386 socket(AF_VSOCK)",
            &["EPERM"],
            "the same rule on the i386 ABI",
        );
        a.blocked(
            "i386 socketcall(SYS_SOCKET, AF_VSOCK)",
            &["ENOSYS"],
            "socketcall's socket sub-call is refused: its arguments cannot be checked",
        );
    } else {
        a.say("no IA-32 emulation in this kernel: int 0x80 is not an entry point here");
    }
}

fn proc_self_knobs(t: &Ctx) {
    let a = python(t, "proc_self_knobs", &[], &[]);
    a.blocked(
        "write /proc/self/oom_score_adj",
        &["EACCES", "EPERM"],
        "lowering oom_score_adj (to make the host's OOM killer pick host processes) needs CAP_SYS_RESOURCE",
    );
    a.blocked(
        "write /proc/self/uid_map",
        &["EPERM", "EACCES"],
        "the map of an existing user namespace is written once, by a privileged parent",
    );
    a.blocked("write /proc/self/gid_map", &["EPERM", "EACCES"], "same");
    a.blocked_or(
        "write /proc/self/setgroups",
        &["EPERM", "EACCES", "ENOENT"],
        "fixed once the gid map is written",
        "impossible",
    );
    a.blocked_or(
        "write /proc/self/loginuid",
        &["EPERM", "EACCES", "ENOENT", "EINVAL"],
        "no CAP_AUDIT_CONTROL (or not in the initial user namespace)",
        "the kernel lets a process set an unset audit loginuid once: audit attribution only, \
         no privilege (docs/security.md)",
    );
    assert_ne!(a.fact("oom_score_adj"), "-1000", "{}", a.dump());
}
