//! Real tests: each loads a filter, drops capabilities, switches ids or sets rlimits in a fresh
//! child process (see `testutil`), then checks the kernel's view (/proc/thread-self/status,
//! getresuid, getrlimit, syscall results). Tests marked "root" skip without root unless
//! HUSK_REQUIRE_PRIVILEGED=1; the others need nothing (seccomp under no_new_privs, lower rlimits).

use super::testutil::{cap_mask, is_child, privileged, run_child, status_field};
use super::{caps, identity, rlimit, seccomp, set_no_new_privs};
use ::caps::{CapSet, Capability as K};
use nix::errno::Errno;
use nix::sys::resource::{getrlimit, Resource};
use nix::unistd::Whence;
use oci_spec::runtime::{LinuxCapabilities, PosixRlimit, User};
use serde_json::{json, Value};
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;

fn name(test: &str) -> String {
    format!("security::privileged_tests::{test}")
}

fn program(v: Value) -> seccomp::Program {
    seccomp::compile(&serde_json::from_value(v).unwrap(), None).unwrap()
}

fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn mask(caps: &[K]) -> u64 {
    caps.iter().fold(0, |m, c| m | c.bitmask())
}

fn io_errno<T: std::fmt::Debug>(r: std::io::Result<T>) -> Option<i32> {
    r.unwrap_err().raw_os_error()
}

// ---- seccomp ---------------------------------------------------------------------------------

#[test]
fn seccomp_errno_hits_only_the_named_syscalls() {
    run_child(&name("child_seccomp_errno"), &[]).assert_passed();
}

#[test]
#[ignore = "child half; run by its parent test"]
fn child_seccomp_errno() {
    if !is_child(&name("child_seccomp_errno")) {
        return;
    }
    let prog = program(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getcwd", "mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 1}]
    }));
    set_no_new_privs().unwrap();
    prog.load().unwrap();
    assert_eq!(io_errno(std::env::current_dir()), Some(libc::EPERM));
    let dir = std::env::temp_dir().join(format!("husk-mkdir-{}", std::process::id()));
    assert_eq!(io_errno(std::fs::create_dir(dir)), Some(libc::EPERM));
    assert!(std::fs::read_to_string("/proc/self/status").is_ok());
    assert!(nix::unistd::getpid().as_raw() > 0);
    assert_eq!(status_field("Seccomp"), "2");
    assert_eq!(status_field("NoNewPrivs"), "1");
}

/// (op, value, valueTwo, offsets that must be blocked, offsets that must pass) on lseek's offset.
type OpCase = (&'static str, u64, u64, &'static [i64], &'static [i64]);

const OPS: [OpCase; 7] = [
    ("SCMP_CMP_NE", 100, 0, &[99, 101], &[100]),
    ("SCMP_CMP_LT", 100, 0, &[99], &[100, 101]),
    ("SCMP_CMP_LE", 100, 0, &[99, 100], &[101]),
    ("SCMP_CMP_EQ", 100, 0, &[100], &[99, 101]),
    ("SCMP_CMP_GE", 100, 0, &[100, 101], &[99]),
    ("SCMP_CMP_GT", 100, 0, &[101], &[99, 100]),
    (
        "SCMP_CMP_MASKED_EQ",
        0xf0,
        0x60,
        &[0x60, 0x65, 0x6f],
        &[0x70, 0x75, 0x05],
    ),
];

#[test]
fn seccomp_every_arg_op_in_the_kernel() {
    for (i, (op, ..)) in OPS.iter().enumerate() {
        let child = run_child(
            &name("child_seccomp_arg_op"),
            &[("HUSK_TEST_OP", &i.to_string())],
        );
        assert!(child.status.success(), "{op}");
        child.assert_passed();
    }
}

fn lseek_errno(fd: i32, offset: i64, whence: Whence) -> Option<Errno> {
    nix::unistd::lseek(fd, offset, whence).err()
}

#[test]
#[ignore = "child half; run by its parent test"]
fn child_seccomp_arg_op() {
    if !is_child(&name("child_seccomp_arg_op")) {
        return;
    }
    let i: usize = std::env::var("HUSK_TEST_OP").unwrap().parse().unwrap();
    let (op, value, value_two, blocked, passed) = OPS[i];
    let prog = program(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["lseek"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                      "args": [{"index": 1, "value": value, "valueTwo": value_two, "op": op}]}]
    }));
    let null = std::fs::File::open("/dev/null").unwrap();
    set_no_new_privs().unwrap();
    prog.load().unwrap();
    for &off in blocked {
        let got = lseek_errno(null.as_raw_fd(), off, Whence::SeekSet);
        assert_eq!(got, Some(Errno::EACCES), "{op} offset {off:#x}");
    }
    for &off in passed {
        assert_eq!(
            lseek_errno(null.as_raw_fd(), off, Whence::SeekSet),
            None,
            "{op} {off:#x}"
        );
    }
}

#[test]
fn seccomp_same_index_is_or_distinct_indexes_are_and() {
    run_child(&name("child_seccomp_multi_arg"), &[]).assert_passed();
}

#[test]
#[ignore = "child half; run by its parent test"]
fn child_seccomp_multi_arg() {
    if !is_child(&name("child_seccomp_multi_arg")) {
        return;
    }
    let prog = program(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["lseek"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [{"index": 1, "value": 5, "op": "SCMP_CMP_EQ"},
                      {"index": 1, "value": 7, "op": "SCMP_CMP_EQ"}]},
            {"names": ["lseek"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [{"index": 1, "value": 50, "op": "SCMP_CMP_EQ"},
                      {"index": 2, "value": 1, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    let fd = std::fs::File::open("/dev/null").unwrap();
    let fd = fd.as_raw_fd();
    set_no_new_privs().unwrap();
    prog.load().unwrap();
    let eacces = Some(Errno::EACCES);
    assert_eq!(lseek_errno(fd, 5, Whence::SeekSet), eacces);
    assert_eq!(lseek_errno(fd, 7, Whence::SeekSet), eacces);
    assert_eq!(lseek_errno(fd, 6, Whence::SeekSet), None);
    assert_eq!(lseek_errno(fd, 50, Whence::SeekCur), eacces);
    assert_eq!(lseek_errno(fd, 50, Whence::SeekSet), None);
    assert_eq!(lseek_errno(fd, 6, Whence::SeekCur), None);
}

#[test]
fn seccomp_kill_process_and_trap_end_in_sigsys_and_log_allows() {
    for (action, signal) in [
        ("SCMP_ACT_KILL_PROCESS", Some(libc::SIGSYS)),
        ("SCMP_ACT_TRAP", Some(libc::SIGSYS)),
        ("SCMP_ACT_LOG", None),
    ] {
        let child = run_child(
            &name("child_seccomp_action"),
            &[("HUSK_TEST_ACTION", action)],
        );
        match signal {
            Some(sig) => assert_eq!(
                child.status.signal(),
                Some(sig),
                "{action}: {}",
                child.output
            ),
            None => child.assert_passed(),
        }
    }
}

#[test]
#[ignore = "child half; run by its parent test"]
fn child_seccomp_action() {
    if !is_child(&name("child_seccomp_action")) {
        return;
    }
    let action = std::env::var("HUSK_TEST_ACTION").unwrap();
    let prog = program(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getcwd"], "action": action}]
    }));
    set_no_new_privs().unwrap();
    prog.load().unwrap();
    let cwd = std::env::current_dir();
    assert_eq!(action, "SCMP_ACT_LOG", "{action} let getcwd return {cwd:?}");
    assert!(cwd.is_ok());
}

#[test]
fn seccomp_docker_sized_profile_from_cache() {
    let tmp = super::testutil::TempDir::new("privileged-cache");
    let dir = tmp.path().to_str().unwrap();
    let profile = super::testutil::docker_like_profile();
    assert!(
        !seccomp::compile(&profile, Some(tmp.path()))
            .unwrap()
            .from_cache
    );
    run_child(&name("child_seccomp_docker"), &[("HUSK_TEST_CACHE", dir)]).assert_passed();
}

#[test]
#[ignore = "child half; run by its parent test"]
fn child_seccomp_docker() {
    if !is_child(&name("child_seccomp_docker")) {
        return;
    }
    let dir = std::path::PathBuf::from(std::env::var("HUSK_TEST_CACHE").unwrap());
    let prog = seccomp::compile(&super::testutil::docker_like_profile(), Some(&dir)).unwrap();
    assert!(prog.from_cache, "the parent filled the cache");
    set_no_new_privs().unwrap();
    prog.load().unwrap();
    let mount = nix::mount::mount(
        Some("tmpfs"),
        "/mnt",
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    );
    assert_eq!(mount, Err(Errno::EPERM));
    let unshare = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER);
    assert_eq!(unshare, Err(Errno::EPERM));
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let vsock = socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::empty(),
        None,
    );
    assert_eq!(vsock.err(), Some(Errno::EPERM));
    let unix = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::empty(),
        None,
    );
    assert!(unix.is_ok());
    assert!(std::fs::read_to_string("/proc/self/status").is_ok());
    assert!(std::env::current_dir().is_ok());
}

#[test]
fn seccomp_load_needs_no_new_privs_or_cap_sys_admin() {
    if privileged("seccomp_load_needs_no_new_privs_or_cap_sys_admin") {
        run_child(&name("child_seccomp_nnp_rule"), &[]).assert_passed();
    }
}

#[test]
#[ignore = "child half; run by its parent test"]
fn child_seccomp_nnp_rule() {
    if !is_child(&name("child_seccomp_nnp_rule")) {
        return;
    }
    let prog = program(json!({"defaultAction": "SCMP_ACT_ALLOW"}));
    ::caps::drop(None, CapSet::Effective, K::CAP_SYS_ADMIN).unwrap();
    let err = prog.load().unwrap_err();
    assert!(
        matches!(err, seccomp::SeccompError::NeedsNoNewPrivs),
        "{err}"
    );
    assert_eq!(status_field("Seccomp"), "0");
    ::caps::raise(None, CapSet::Effective, K::CAP_SYS_ADMIN).unwrap();
    prog.load().unwrap();
    assert_eq!(status_field("NoNewPrivs"), "0");
    assert_eq!(status_field("Seccomp"), "2");
}

// ---- capabilities ----------------------------------------------------------------------------

#[test]
fn caps_bounding_and_sets_in_the_kernel() {
    if privileged("caps_bounding_and_sets_in_the_kernel") {
        run_child(&name("child_caps"), &[]).assert_passed();
    }
}

#[test]
#[ignore = "child half; run by its parent test"]
fn child_caps() {
    if !is_child(&name("child_caps")) {
        return;
    }
    let bounding = [
        K::CAP_CHOWN,
        K::CAP_DAC_OVERRIDE,
        K::CAP_KILL,
        K::CAP_NET_BIND_SERVICE,
        K::CAP_SETGID,
        K::CAP_SETPCAP,
        K::CAP_SETUID,
    ];
    // Inheritable holds DAC_OVERRIDE, which is not permitted: only valid because inheritable is
    // written while permitted is still full (see caps.rs).
    let spec: LinuxCapabilities = from_json(json!({
        "bounding": bounding.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
        "inheritable": ["CAP_NET_BIND_SERVICE", "CAP_CHOWN", "CAP_DAC_OVERRIDE"],
        "ambient": ["CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_BPF"]
    }));
    caps::drop_bounding(&spec).unwrap();
    assert_eq!(cap_mask("CapBnd"), mask(&bounding));
    caps::apply_sets(&spec).unwrap();
    assert_eq!(
        cap_mask("CapEff"),
        mask(&[K::CAP_KILL, K::CAP_NET_BIND_SERVICE])
    );
    let permitted = [K::CAP_KILL, K::CAP_NET_BIND_SERVICE, K::CAP_CHOWN];
    assert_eq!(cap_mask("CapPrm"), mask(&permitted));
    let inheritable = [K::CAP_NET_BIND_SERVICE, K::CAP_CHOWN, K::CAP_DAC_OVERRIDE];
    assert_eq!(cap_mask("CapInh"), mask(&inheritable));
    assert_eq!(cap_mask("CapAmb"), mask(&[K::CAP_NET_BIND_SERVICE]));
    assert_eq!(cap_mask("CapBnd"), mask(&bounding));
}

#[test]
fn caps_bounding_missing_empties_the_set() {
    if privileged("caps_bounding_missing_empties_the_set") {
        run_child(&name("child_caps_bounding_missing"), &[]).assert_passed();
    }
}

#[test]
#[ignore = "child half; run by its parent test"]
fn child_caps_bounding_missing() {
    if !is_child(&name("child_caps_bounding_missing")) {
        return;
    }
    assert_ne!(cap_mask("CapBnd"), 0);
    caps::drop_bounding(&from_json(json!({"effective": ["CAP_KILL"]}))).unwrap();
    assert_eq!(cap_mask("CapBnd"), 0);
}

// ---- identity --------------------------------------------------------------------------------

fn user_1001() -> User {
    from_json(json!({"uid": 1001, "gid": 1001, "additionalGids": [1002, 1003], "umask": 0o027}))
}

#[test]
fn identity_switch_keeps_caps_and_sets_every_id() {
    if privileged("identity_switch_keeps_caps_and_sets_every_id") {
        run_child(&name("child_identity"), &[]).assert_passed();
    }
}

#[test]
#[ignore = "child half; run by its parent test"]
fn child_identity() {
    if !is_child(&name("child_identity")) {
        return;
    }
    use nix::unistd::{getgroups, getresgid, getresuid, Gid, Uid};
    let permitted_before = cap_mask("CapPrm");
    identity::switch(&user_1001(), true).unwrap();
    let (u, g) = (Uid::from_raw(1001), Gid::from_raw(1001));
    let r = getresuid().unwrap();
    assert_eq!((r.real, r.effective, r.saved), (u, u, u));
    let r = getresgid().unwrap();
    assert_eq!((r.real, r.effective, r.saved), (g, g, g));
    let mut groups: Vec<u32> = getgroups().unwrap().iter().map(|g| g.as_raw()).collect();
    groups.sort();
    assert_eq!(groups, [1002, 1003], "additionalGids only, not the gid");
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    assert_eq!(old.bits(), 0o027);
    assert_eq!(
        cap_mask("CapPrm"),
        permitted_before,
        "PR_SET_KEEPCAPS kept permitted"
    );
    assert_eq!(cap_mask("CapEff"), 0, "setuid away from 0 clears effective");
    let nbs: LinuxCapabilities = from_json(json!({
        "effective": ["CAP_NET_BIND_SERVICE"], "permitted": ["CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_NET_BIND_SERVICE"], "ambient": ["CAP_NET_BIND_SERVICE"]
    }));
    caps::apply_sets(&nbs).unwrap();
    assert_eq!(cap_mask("CapEff"), mask(&[K::CAP_NET_BIND_SERVICE]));
    assert_eq!(cap_mask("CapAmb"), mask(&[K::CAP_NET_BIND_SERVICE]));
    // Without CAP_SETGID the way back fails, and the error names the id.
    let root: User = from_json(json!({"uid": 0, "gid": 0}));
    let err = identity::switch(&root, false).unwrap_err();
    assert!(err.to_string().starts_with("set gid to 0: EPERM"), "{err}");
}

#[test]
fn identity_switch_without_setgroups_keeps_groups() {
    if privileged("identity_switch_without_setgroups_keeps_groups") {
        run_child(&name("child_identity_no_setgroups"), &[]).assert_passed();
    }
}

#[test]
#[ignore = "child half; run by its parent test"]
fn child_identity_no_setgroups() {
    if !is_child(&name("child_identity_no_setgroups")) {
        return;
    }
    let before = nix::unistd::getgroups().unwrap();
    identity::switch(&user_1001(), false).unwrap();
    assert_eq!(nix::unistd::getgroups().unwrap(), before);
    assert_eq!(nix::unistd::getuid().as_raw(), 1001);
}

// ---- rlimits ---------------------------------------------------------------------------------

#[test]
fn rlimits_are_set_and_raising_the_hard_limit_names_it() {
    run_child(&name("child_rlimits"), &[]).assert_passed();
}

#[test]
#[ignore = "child half; run by its parent test"]
fn child_rlimits() {
    if !is_child(&name("child_rlimits")) {
        return;
    }
    // Without CAP_SYS_RESOURCE the hard limit can only go down.
    let _ = ::caps::drop(None, CapSet::Effective, K::CAP_SYS_RESOURCE);
    let (_, nofile_hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let hard = nofile_hard.min(1024);
    let limits: Vec<PosixRlimit> = from_json(json!([
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": hard},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        {"type": "RLIMIT_RTTIME", "soft": 1_000_000, "hard": 2_000_000},
    ]));
    rlimit::apply(&limits).unwrap();
    assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap(), (512, hard));
    assert_eq!(getrlimit(Resource::RLIMIT_CORE).unwrap(), (0, 0));
    assert_eq!(
        getrlimit(Resource::RLIMIT_RTTIME).unwrap(),
        (1_000_000, 2_000_000)
    );
    let raise: Vec<PosixRlimit> = from_json(json!([
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": hard + 1}
    ]));
    let err = rlimit::apply(&raise).unwrap_err();
    let want = format!(
        "set rlimit RLIMIT_NOFILE to 512/{}: hard limit is {hard}",
        hard + 1
    );
    assert!(err.to_string().starts_with(&want), "{err}");
}

// ---- the whole init sequence -----------------------------------------------------------------

#[test]
fn init_sequence_in_contract_order() {
    if privileged("init_sequence_in_contract_order") {
        run_child(&name("child_init_sequence"), &[]).assert_passed();
    }
}

#[test]
#[ignore = "child half; run by its parent test"]
fn child_init_sequence() {
    if !is_child(&name("child_init_sequence")) {
        return;
    }
    // The parent's half: compile before clone.
    let prog = seccomp::compile(&super::testutil::docker_like_profile(), None).unwrap();
    let docker_caps = [
        K::CAP_CHOWN,
        K::CAP_DAC_OVERRIDE,
        K::CAP_FSETID,
        K::CAP_FOWNER,
        K::CAP_MKNOD,
        K::CAP_NET_RAW,
        K::CAP_SETGID,
        K::CAP_SETUID,
        K::CAP_SETFCAP,
        K::CAP_SETPCAP,
        K::CAP_NET_BIND_SERVICE,
        K::CAP_SYS_CHROOT,
        K::CAP_KILL,
        K::CAP_AUDIT_WRITE,
    ];
    let names: Vec<String> = docker_caps.iter().map(|c| c.to_string()).collect();
    let spec: LinuxCapabilities = from_json(json!({
        "bounding": names, "effective": names, "permitted": names
    }));
    let limits: Vec<PosixRlimit> = from_json(json!([
        {"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512}
    ]));
    rlimit::apply(&limits).unwrap();
    caps::drop_bounding(&spec).unwrap();
    identity::switch(&user_1001(), true).unwrap();
    caps::apply_sets(&spec).unwrap();
    set_no_new_privs().unwrap();
    prog.load().unwrap();

    assert_eq!(nix::unistd::geteuid().as_raw(), 1001);
    assert_eq!(cap_mask("CapBnd"), mask(&docker_caps));
    assert_eq!(cap_mask("CapEff"), mask(&docker_caps));
    assert_eq!(cap_mask("CapInh"), 0);
    assert_eq!(cap_mask("CapAmb"), 0);
    assert_eq!(status_field("NoNewPrivs"), "1");
    assert_eq!(status_field("Seccomp"), "2");
    assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap(), (256, 512));
    let unshare = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS);
    assert_eq!(unshare, Err(Errno::EPERM));
}
