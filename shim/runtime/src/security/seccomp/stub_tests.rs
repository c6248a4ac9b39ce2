//! The compiled programs (prefix + libseccomp) run on a small classic-BPF interpreter, for every
//! ABI the kernel accepts from an x86_64 process: nothing is loaded, so nothing is needed.

use super::*;
use serde_json::json;

const ALLOW: u32 = 0x7fff_0000;
const fn errno(e: i32) -> u32 {
    0x0005_0000 | e as u32
}
const ENOSYS: u32 = errno(libc::ENOSYS);

const AUDIT_I386: u32 = 0x4000_0003;
const AUDIT_X86_64: u32 = 0xc000_003e;
const X32: u32 = 0x4000_0000;

/// The sandbox's profile (Docker's default for a process without capabilities).
const SANDBOX: &str = include_str!("../../../../../spec-templates/seccomp-default.json");

/// Runs `prog` on a `struct seccomp_data` and returns the action (the opcodes libseccomp and the
/// prefix use; anything else fails the test).
fn run(prog: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = Vec::with_capacity(64);
    data.extend_from_slice(&nr.to_ne_bytes());
    data.extend_from_slice(&arch.to_ne_bytes());
    data.extend_from_slice(&0u64.to_ne_bytes());
    for a in args {
        data.extend_from_slice(&a.to_ne_bytes());
    }
    let (mut a, mut x, mut mem, mut pc) = (0u32, 0u32, [0u32; 16], 0usize);
    loop {
        let i = prog[pc];
        pc += 1;
        let k = i.k;
        let word = |off: u32| {
            let o = off as usize;
            u32::from_ne_bytes(data[o..o + 4].try_into().unwrap())
        };
        let mut branch = |cond: bool| pc += usize::from(if cond { i.jt } else { i.jf });
        match i.code {
            0x20 => a = word(k),
            0x00 => a = k,
            0x01 => x = k,
            0x60 => a = mem[k as usize],
            0x61 => x = mem[k as usize],
            0x02 => mem[k as usize] = a,
            0x03 => mem[k as usize] = x,
            0x54 => a &= k,
            0x44 => a |= k,
            0x07 => x = a,
            0x87 => a = x,
            0x05 => pc += k as usize,
            0x15 => branch(a == k),
            0x25 => branch(a > k),
            0x35 => branch(a >= k),
            0x45 => branch(a & k != 0),
            0x1d => branch(a == x),
            0x2d => branch(a > x),
            0x3d => branch(a >= x),
            0x4d => branch(a & x != 0),
            0x06 => return k,
            0x16 => return a,
            op => panic!("opcode {op:#x} at {}", pc - 1),
        }
    }
}

fn profile(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).unwrap()
}

fn bpf(spec: &LinuxSeccomp) -> Vec<libc::sock_filter> {
    compile(spec, None).unwrap().bpf
}

/// (socket family argument) for `socket(family, SOCK_STREAM, 0)`.
fn socket_args(family: u64) -> [u64; 6] {
    [family, 1, 0, 0, 0, 0]
}

#[cfg(target_arch = "x86_64")]
#[test]
fn sandbox_vsock_rule_holds_on_every_abi() {
    let prog = bpf(&serde_json::from_str(SANDBOX).unwrap());
    let vsock = socket_args(40);
    let inet = socket_args(2);
    let eperm = errno(libc::EPERM);
    assert_eq!(run(&prog, AUDIT_X86_64, 41, inet), ALLOW);
    assert_eq!(run(&prog, AUDIT_X86_64, 41, vsock), eperm);
    assert_eq!(run(&prog, AUDIT_X86_64, X32 | 41, inet), ALLOW);
    assert_eq!(run(&prog, AUDIT_X86_64, X32 | 41, vsock), eperm);
    assert_eq!(
        run(&prog, AUDIT_I386, 359, inet),
        ALLOW,
        "i386 direct socket"
    );
    assert_eq!(run(&prog, AUDIT_I386, 359, vsock), eperm);
    // socketcall(SYS_SOCKET, args): the family sits in memory the filter cannot read.
    assert_eq!(run(&prog, AUDIT_I386, 102, [1, 0x1000, 0, 0, 0, 0]), ENOSYS);
    // Sub-calls no conditional rule names still go through the multiplexer.
    assert_eq!(run(&prog, AUDIT_I386, 102, [3, 0x1000, 0, 0, 0, 0]), ALLOW);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn newer_syscalls_get_enosys_older_ones_the_default() {
    let prog = bpf(&serde_json::from_str(SANDBOX).unwrap());
    let eperm = errno(libc::EPERM);
    // 169 reboot, 246 kexec_load: named nowhere, below the highest named number.
    assert_eq!(run(&prog, AUDIT_X86_64, 169, [0; 6]), eperm);
    assert_eq!(run(&prog, AUDIT_X86_64, 246, [0; 6]), eperm);
    assert_eq!(run(&prog, AUDIT_X86_64, 39, [0; 6]), ALLOW, "getpid");
    for nr in [470, 600, 1023] {
        assert_eq!(run(&prog, AUDIT_X86_64, nr, [0; 6]), ENOSYS, "x86_64 {nr}");
        assert_eq!(run(&prog, AUDIT_I386, nr + 20, [0; 6]), ENOSYS, "i386 {nr}");
    }
    // x32's own syscalls are numbered 512-547: its bound is above them.
    assert_eq!(
        run(&prog, AUDIT_X86_64, X32 | 470, [0; 6]),
        eperm,
        "x32 470"
    );
    for nr in [600, 1023] {
        assert_eq!(
            run(&prog, AUDIT_X86_64, X32 | nr, [0; 6]),
            ENOSYS,
            "x32 {nr}"
        );
    }
    assert_eq!(run(&prog, AUDIT_I386, 20, [0; 6]), ALLOW, "i386 getpid");
    assert_eq!(run(&prog, AUDIT_I386, 21, [0; 6]), eperm, "i386 mount");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn an_allowing_default_has_no_enosys_bound_but_keeps_the_multiplexer_rule() {
    let s = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [
            {"names": ["socket"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_EQ"}]},
            {"names": ["shmget"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 2, "value": 0o1000, "op": "SCMP_CMP_MASKED_EQ", "valueTwo": 0o1000}]}
        ]
    }));
    let prog = bpf(&s);
    assert_eq!(run(&prog, AUDIT_X86_64, 600, [0; 6]), ALLOW);
    assert_eq!(
        run(&prog, AUDIT_X86_64, 41, socket_args(40)),
        errno(libc::EPERM)
    );
    assert_eq!(run(&prog, AUDIT_I386, 102, [1, 0, 0, 0, 0, 0]), ENOSYS);
    // ipc(SHMGET) with the version in the high 16 bits of `call`.
    assert_eq!(
        run(&prog, AUDIT_I386, 117, [23 | 1 << 16, 0, 0, 0, 0, 0]),
        ENOSYS
    );
    assert_eq!(
        run(&prog, AUDIT_I386, 117, [21, 0, 0, 0, 0, 0]),
        ALLOW,
        "shmat"
    );
}

#[test]
fn nothing_to_add_adds_nothing() {
    let s = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]
    }));
    let archs = filter_archs(&s);
    assert!(stub::prefix(&s, &archs).is_empty());
    let enosys_default = profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ALLOW"}]
    }));
    assert!(stub::prefix(&enosys_default, &archs).is_empty());
    let eperm_default = profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ALLOW"}]
    }));
    assert!(!stub::prefix(&eperm_default, &archs).is_empty());
}

#[test]
fn every_architecture_at_once_assembles() {
    let all: Vec<&str> = [
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_ARM",
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_MIPS",
        "SCMP_ARCH_MIPS64",
        "SCMP_ARCH_MIPS64N32",
        "SCMP_ARCH_MIPSEL",
        "SCMP_ARCH_MIPSEL64",
        "SCMP_ARCH_MIPSEL64N32",
        "SCMP_ARCH_PPC",
        "SCMP_ARCH_PPC64",
        "SCMP_ARCH_PPC64LE",
        "SCMP_ARCH_S390",
        "SCMP_ARCH_S390X",
        "SCMP_ARCH_RISCV64",
    ]
    .to_vec();
    let mut s: serde_json::Value = serde_json::from_str(SANDBOX).unwrap();
    s["architectures"] = json!(all);
    let s: LinuxSeccomp = serde_json::from_value(s).unwrap();
    let prefix = stub::prefix(&s, &filter_archs(&s));
    assert!(prefix.len() > 17 * 3, "{}", prefix.len());
    // Every conditional jump stays in the program; the last instruction returns.
    for (i, insn) in prefix.iter().enumerate() {
        let reach = i + 1 + usize::from(insn.jt.max(insn.jf));
        let reach = if insn.code == 0x05 {
            i + 1 + insn.k as usize
        } else {
            reach
        };
        assert!(reach <= prefix.len(), "insn {i} jumps past the prefix");
    }
}
