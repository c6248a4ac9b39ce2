//! A short BPF prefix put before libseccomp's program, for two things libseccomp does not do:
//!
//! - **ENOSYS for syscalls newer than the profile** (issue 13, runc's patchbpf "-ENOSYS stub"): a
//!   syscall numbered above every syscall the profile names (for that architecture) returns
//!   ENOSYS instead of the default action's errno, so a libc built for a newer kernel falls back
//!   (clone3 → clone, faccessat2 → faccessat, ...) instead of failing on EPERM. Only when the
//!   default action denies (not ALLOW, LOG or TRACE) and is not ENOSYS already, as in runc.
//! - **Rules with argument conditions on multiplexed syscalls** (issue 12): on i386 (and s390,
//!   ppc, mips o32) the socket calls are also reachable through `socketcall(call, args)` and SysV
//!   IPC through `ipc(call, ...)`, whose real arguments sit in memory a filter cannot read.
//!   libseccomp turns a conditional rule on `socket` into an unconditional one on
//!   `socketcall(SYS_SOCKET)`: `socket` allowed unless AF_VSOCK is any socket through the
//!   multiplexer. So every sub-call that a conditional rule names returns ENOSYS through the
//!   multiplexer (a libc falls back to the direct syscall, whose arguments the filter checks).
//!
//! Architectures are told apart by `seccomp_data.arch` (AUDIT_ARCH_*); x32 shares x86_64's and
//! is told by bit 30 of the syscall number. An architecture the prefix has no section for falls
//! through to libseccomp's program (and its bad-architecture action). The prefix never allows
//! anything: it returns ENOSYS or goes on to the filter.

use libseccomp::{ScmpArch, ScmpSyscall};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction};

const LD_W_ABS: u16 = 0x20;
const ALU_AND_K: u16 = 0x54;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGT_K: u16 = 0x25;
const JMP_JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `struct seccomp_data` offsets: nr, arch, then args[6] as u64 in the kernel's byte order.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARG0_LOW: u32 = if cfg!(target_endian = "little") {
    16
} else {
    20
};

/// socketcall(2) sub-call numbers (linux/net.h), by the name of the syscall they stand for.
const SOCKET_CALLS: &[(&str, u32)] = &[
    ("socket", 1),
    ("bind", 2),
    ("connect", 3),
    ("listen", 4),
    ("accept", 5),
    ("getsockname", 6),
    ("getpeername", 7),
    ("socketpair", 8),
    ("send", 9),
    ("recv", 10),
    ("sendto", 11),
    ("recvfrom", 12),
    ("shutdown", 13),
    ("setsockopt", 14),
    ("getsockopt", 15),
    ("sendmsg", 16),
    ("recvmsg", 17),
    ("accept4", 18),
    ("recvmmsg", 19),
    ("sendmmsg", 20),
];

/// ipc(2) call numbers (linux/ipc.h); the kernel looks at the low 16 bits only.
const IPC_CALLS: &[(&str, u32)] = &[
    ("semop", 1),
    ("semget", 2),
    ("semctl", 3),
    ("semtimedop", 4),
    ("msgsnd", 11),
    ("msgrcv", 12),
    ("msgget", 13),
    ("msgctl", 14),
    ("shmat", 21),
    ("shmdt", 22),
    ("shmget", 23),
    ("shmctl", 24),
];

/// The AUDIT_ARCH_* value the kernel puts in `seccomp_data.arch` (linux/audit.h); None for
/// architectures the prefix leaves to libseccomp alone.
fn audit_arch(arch: ScmpArch) -> Option<u32> {
    const B64: u32 = 0x8000_0000;
    const LE: u32 = 0x4000_0000;
    const N32: u32 = 0x2000_0000;
    Some(match arch {
        ScmpArch::X86 => 3 | LE,
        ScmpArch::X8664 | ScmpArch::X32 => 62 | B64 | LE,
        ScmpArch::Arm => 40 | LE,
        ScmpArch::Aarch64 => 183 | B64 | LE,
        ScmpArch::Mips => 8,
        ScmpArch::Mipsel => 8 | LE,
        ScmpArch::Mips64 => 8 | B64,
        ScmpArch::Mipsel64 => 8 | B64 | LE,
        ScmpArch::Mips64N32 => 8 | B64 | N32,
        ScmpArch::Mipsel64N32 => 8 | B64 | LE | N32,
        ScmpArch::Ppc => 20,
        ScmpArch::Ppc64 => 21 | B64,
        ScmpArch::Ppc64Le => 21 | B64 | LE,
        ScmpArch::S390 => 22,
        ScmpArch::S390X => 22 | B64,
        ScmpArch::Riscv64 => 243 | B64 | LE,
        ScmpArch::Loongarch64 => 258 | B64 | LE,
        _ => return None,
    })
}

/// One libseccomp architecture of the filter, as the prefix needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Abi {
    arch: ScmpArch,
    audit: u32,
    /// The highest syscall number the profile names here (ENOSYS above it), when asked for.
    enosys_above: Option<u32>,
    /// (multiplexer syscall number, sub-calls to refuse, is it ipc(2)?).
    muxers: Vec<(u32, Vec<u32>, bool)>,
}

/// The prefix for `spec` with the filter's architectures `archs` (native included); empty when
/// there is nothing to do.
pub(super) fn prefix(spec: &LinuxSeccomp, archs: &[ScmpArch]) -> Vec<libc::sock_filter> {
    let abis = abis(spec, archs);
    if abis
        .iter()
        .all(|a| a.enosys_above.is_none() && a.muxers.is_empty())
    {
        return Vec::new();
    }
    assemble(&abis)
}

/// runc's rule: no ENOSYS stub under an allowing default action (a tracer or the kernel answers
/// new syscalls itself), nor when the default already is ENOSYS.
fn wants_enosys(spec: &LinuxSeccomp) -> bool {
    use LinuxSeccompAction as A;
    let allows = matches!(
        spec.default_action(),
        A::ScmpActAllow | A::ScmpActLog | A::ScmpActTrace
    );
    let already = spec.default_action() == A::ScmpActErrno
        && spec.default_errno_ret() == Some(libc::ENOSYS as u32);
    !allows && !already
}

fn abis(spec: &LinuxSeccomp, archs: &[ScmpArch]) -> Vec<Abi> {
    let rules = spec.syscalls().as_deref().unwrap_or_default();
    let conditional: Vec<&str> = rules
        .iter()
        .filter(|r| r.args().as_ref().is_some_and(|a| !a.is_empty()))
        .flat_map(|r| r.names().iter().map(String::as_str))
        .collect();
    let refused = |table: &[(&str, u32)]| -> Vec<u32> {
        let mut calls: Vec<u32> = table
            .iter()
            .filter(|(name, _)| conditional.contains(name))
            .map(|&(_, call)| call)
            .collect();
        calls.sort_unstable();
        calls
    };
    let (socket_calls, ipc_calls) = (refused(SOCKET_CALLS), refused(IPC_CALLS));
    let number = |name: &str, arch| {
        ScmpSyscall::from_name_by_arch(name, arch)
            .ok()
            .and_then(|s| u32::try_from(i32::from(s)).ok())
    };
    let enosys = wants_enosys(spec);
    let mut out: Vec<Abi> = Vec::new();
    for &arch in archs {
        let Some(audit) = audit_arch(arch) else {
            continue;
        };
        if out.iter().any(|a| a.arch == arch) {
            continue;
        }
        let enosys_above = enosys
            .then(|| {
                rules
                    .iter()
                    .flat_map(|r| r.names())
                    .filter_map(|n| number(n, arch))
                    .max()
            })
            .flatten();
        let mut muxers = Vec::new();
        for (mux, calls, ipc) in [
            ("socketcall", &socket_calls, false),
            ("ipc", &ipc_calls, true),
        ] {
            if let (Some(nr), false) = (number(mux, arch), calls.is_empty()) {
                muxers.push((nr, calls.clone(), ipc));
            }
        }
        out.push(Abi {
            arch,
            audit,
            enosys_above,
            muxers,
        });
    }
    out
}

/// A jump target in the program being assembled.
type Label = usize;

/// A tiny assembler: instructions with symbolic targets, resolved once all labels are placed.
#[derive(Default)]
struct Asm {
    insns: Vec<(u16, Option<Label>, Option<Label>, u32)>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn place(&mut self, l: Label) {
        self.labels[l] = Some(self.insns.len());
    }
    fn op(&mut self, code: u16, k: u32) {
        self.insns.push((code, None, None, k));
    }
    /// Conditional jump to `to` when true, on to the next instruction when false.
    fn jump_if(&mut self, code: u16, k: u32, to: Label) {
        self.insns.push((code, Some(to), None, k));
    }
    fn goto(&mut self, to: Label) {
        self.insns.push((JMP_JA, Some(to), None, 0));
    }
    /// Resolves the labels. Every jump goes forward (classic BPF has no other kind); a
    /// conditional one reaches at most 255 instructions, which [`assemble`] keeps to.
    fn finish(self) -> Vec<libc::sock_filter> {
        let at = |l: Label, from: usize| {
            let target = self.labels[l].expect("every label is placed");
            target - (from + 1)
        };
        self.insns
            .iter()
            .enumerate()
            .map(|(i, &(code, jt, jf, k))| {
                if code == JMP_JA {
                    let k = jt.map_or(k, |l| at(l, i) as u32);
                    return libc::sock_filter {
                        code,
                        jt: 0,
                        jf: 0,
                        k,
                    };
                }
                let short = |l: Option<Label>| {
                    l.map_or(0, |l| {
                        let d = at(l, i);
                        assert!(d <= 255, "seccomp prefix: conditional jump of {d}");
                        d as u8
                    })
                };
                libc::sock_filter {
                    code,
                    jt: short(jt),
                    jf: short(jf),
                    k,
                }
            })
            .collect()
    }
}

/// Dispatch on the architecture, then one section per audit architecture. Conditional jumps stay
/// inside a section (each is short); sections are reached and left with `ja`, which has no range
/// limit, so any number of architectures fits.
fn assemble(abis: &[Abi]) -> Vec<libc::sock_filter> {
    let mut a = Asm::default();
    let filter = a.label();
    let mut audits: Vec<u32> = abis.iter().map(|x| x.audit).collect();
    audits.dedup();
    let sections: Vec<(u32, Label)> = audits.iter().map(|&au| (au, a.label())).collect();
    a.op(LD_W_ABS, OFF_ARCH);
    for &(audit, section) in &sections {
        let next = a.label();
        a.insns.push((JMP_JEQ_K, None, Some(next), audit));
        a.goto(section);
        a.place(next);
    }
    a.goto(filter);
    for &(audit, section) in &sections {
        a.place(section);
        let members: Vec<&Abi> = abis.iter().filter(|x| x.audit == audit).collect();
        section_code(&mut a, &members, filter);
    }
    a.place(filter);
    a.finish()
}

/// One audit architecture: x86_64 and x32 share one (told apart by bit 30 of the number).
fn section_code(a: &mut Asm, members: &[&Abi], filter: Label) {
    let enosys = a.label();
    // One label per multiplexer check, parallel to each member's `muxers`.
    let muxes: Vec<Vec<Label>> = members
        .iter()
        .map(|m| m.muxers.iter().map(|_| a.label()).collect())
        .collect();
    a.op(LD_W_ABS, OFF_NR);
    let x32 = members.iter().position(|m| m.arch == ScmpArch::X32);
    let main = members.iter().position(|m| m.arch != ScmpArch::X32);
    let x32_part = a.label();
    if main.is_some_and(|i| members[i].arch == ScmpArch::X8664) || x32.is_some() {
        a.jump_if(JMP_JSET_K, X32_SYSCALL_BIT, x32_part);
    }
    if let Some(i) = main {
        abi_checks(a, members[i], &muxes[i], enosys);
    }
    a.goto(filter);
    a.place(x32_part);
    if let Some(i) = x32 {
        abi_checks(a, members[i], &muxes[i], enosys);
    }
    a.goto(filter);
    // Each multiplexer check loads an argument over the number, so it ends at the filter.
    for (m, labels) in members.iter().zip(&muxes) {
        for ((_, calls, ipc), &l) in m.muxers.iter().zip(labels) {
            a.place(l);
            a.op(LD_W_ABS, OFF_ARG0_LOW);
            if *ipc {
                a.op(ALU_AND_K, 0xffff);
            }
            for &call in calls {
                a.jump_if(JMP_JEQ_K, call, enosys);
            }
            a.goto(filter);
        }
    }
    a.place(enosys);
    a.op(RET_K, SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
}

/// The number checks of one ABI (the number is loaded): multiplexers first, then the ENOSYS
/// bound. The s390 multiplexer for large numbers, setup(2) = 0, gets ENOSYS as in runc: an
/// unknown syscall reaches the filter as 0 there.
fn abi_checks(a: &mut Asm, m: &Abi, muxes: &[Label], enosys: Label) {
    for ((nr, _, _), &l) in m.muxers.iter().zip(muxes) {
        a.jump_if(JMP_JEQ_K, *nr, l);
    }
    if let Some(max) = m.enosys_above {
        if matches!(m.arch, ScmpArch::S390 | ScmpArch::S390X) {
            a.jump_if(JMP_JEQ_K, 0, enosys);
        }
        a.jump_if(JMP_JGT_K, max, enosys);
    }
}
