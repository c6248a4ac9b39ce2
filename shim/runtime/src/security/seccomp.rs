//! seccomp: OCI rules → BPF with libseccomp in the parent (cached by hash), loaded in the child.
//!
//! The parent translates `linux.seccomp` with libseccomp, exports the classic-BPF program and hands
//! the child a plain instruction list ([`Program`]); the child only issues `seccomp(2)`
//! ([`crate::sys::seccomp_load`]), so no libseccomp state crosses the clone and the cache can skip
//! libseccomp entirely.
//!
//! Translation follows runc (libcontainer/seccomp/seccomp_linux.go):
//! - `SCMP_ACT_KILL` is `SCMP_ACT_KILL_THREAD`; ERRNO and TRACE without `errnoRet` return EPERM.
//! - syscall names libseccomp does not know are skipped (debug log): profiles list newer syscalls.
//! - a rule whose action equals the default action is skipped (libseccomp rejects it).
//! - several conditions on the same argument index cannot be AND-ed by libseccomp, so each
//!   condition becomes its own rule (an OR); otherwise all conditions form one rule (an AND).
//! - `SCMP_CMP_MASKED_EQ` takes `value` as the mask and `valueTwo` as the datum.
//! - TSYNC is ignored (the child is single-threaded); WAIT_KILLABLE_RECV needs a listener (NOTIFY).
//!
//! Before libseccomp's program goes a short prefix of our own ([`stub`]): ENOSYS for syscalls
//! newer than the profile (runc's patchbpf), and ENOSYS for the socketcall/ipc sub-calls that a
//! rule with argument conditions names (libseccomp drops those conditions on the multiplexer, so
//! i386 `socketcall(SYS_SOCKET)` would bypass a rule such as "socket, unless AF_VSOCK").
//!
//! Kernel rule (seccomp(2)): installing a filter needs no_new_privs or CAP_SYS_ADMIN in the
//! effective set; [`Program::load`] reports that case as [`SeccompError::NeedsNoNewPrivs`].

mod cache;
mod stub;

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext};
use libseccomp::{ScmpSyscall, ScmpVersion};
use nix::errno::Errno;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

type LibError = libseccomp::error::SeccompError;

/// Largest program the kernel accepts (`BPF_MAXINSNS`).
pub const BPF_MAXINSNS: usize = 4096;

/// Size of one `struct sock_filter` in the exported program.
const INSN_LEN: usize = 8;

/// Syscalls have at most six arguments.
const MAX_ARGS: usize = 6;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("create seccomp filter (linux.seccomp.defaultAction): {0}")]
    Context(#[source] LibError),
    #[error("add seccomp architecture {arch} (linux.seccomp.architectures): {source}")]
    Arch {
        arch: String,
        #[source]
        source: LibError,
    },
    #[error("translate {key}: action {action} is not supported")]
    Unsupported { key: String, action: String },
    #[error("translate {key}: {reason}")]
    Invalid { key: String, reason: String },
    #[error("add seccomp rule for {syscall} ({key}): {source}")]
    Rule {
        key: String,
        syscall: String,
        #[source]
        source: LibError,
    },
    #[error("export seccomp bpf: {0}")]
    Export(#[source] LibError),
    #[error("read exported seccomp bpf: {0}")]
    ExportIo(#[source] std::io::Error),
    #[error("parse seccomp bpf: {0}")]
    Bpf(#[from] BpfError),
    #[error("load seccomp filter: no_new_privs is not set and CAP_SYS_ADMIN is not effective")]
    NeedsNoNewPrivs,
    #[error("load seccomp filter ({insns} instructions, flags {flags:#x}): {source}")]
    Load {
        insns: usize,
        flags: u32,
        #[source]
        source: nix::Error,
    },
}

/// A malformed classic-BPF byte stream (from libseccomp or the cache).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BpfError {
    #[error("length {0} is not a multiple of 8")]
    Length(usize),
    #[error("program is empty")]
    Empty,
    #[error("program has {0} instructions, the kernel accepts at most 4096")]
    TooLong(usize),
}

/// A compiled filter ready to load.
#[derive(Debug, Clone)]
pub struct Program {
    pub bpf: Vec<libc::sock_filter>,
    /// SECCOMP_FILTER_FLAG_* bits from `linux.seccomp.flags`.
    pub flags: u32,
    /// True when the program came from the on-disk cache and libseccomp was not used.
    pub from_cache: bool,
}

/// Compiles `spec` (parent side). `cache_dir`, when given, keeps BPF keyed by a hash of the rules.
///
/// Cache problems (unreadable, corrupt, unwritable) are logged and fall back to libseccomp; they
/// never fail the compile.
pub fn compile(spec: &LinuxSeccomp, cache_dir: Option<&Path>) -> Result<Program, SeccompError> {
    let flags = filter_flags(spec);
    // The stub is husk's own code, not libseccomp's: it goes into the key, so a build whose stub
    // differs never loads a program cached by another build (CLI binaries of several versions
    // share one cache directory).
    let mut bpf = stub::prefix(spec, &filter_archs(spec));
    let key = cache_dir.and_then(|_| cache_key(spec, &bpf));
    if let (Some(dir), Some(key)) = (cache_dir, key) {
        if let Some(bpf) = cache::lookup(dir, key, flags) {
            log::debug!("seccomp: cache hit {}", cache::file_name(key));
            return Ok(Program {
                bpf,
                flags,
                from_cache: true,
            });
        }
    }
    bpf.extend(parse_bpf(&export(&build_filter(spec)?)?)?);
    check_len(bpf.len())?;
    if let (Some(dir), Some(key)) = (cache_dir, key) {
        cache::store(dir, key, flags, &bpf);
    }
    Ok(Program {
        bpf,
        flags,
        from_cache: false,
    })
}

impl Program {
    /// Loads the filter into the calling thread (child side, right before execve).
    pub fn load(&self) -> Result<(), SeccompError> {
        check_len(self.bpf.len())?;
        crate::sys::seccomp_load(&self.bpf, self.flags).map_err(|source| match source {
            Errno::EACCES => SeccompError::NeedsNoNewPrivs,
            _ => SeccompError::Load {
                insns: self.bpf.len(),
                flags: self.flags,
                source,
            },
        })
    }
}

/// Cache key: the rules as JSON, the libseccomp version (its syscall tables and code generator) and
/// the native architecture. `None` (no caching) if the JSON or version cannot be had.
fn cache_key(spec: &LinuxSeccomp, stub: &[libc::sock_filter]) -> Option<u128> {
    let json = serde_json::to_vec(spec).ok()?;
    let version = ScmpVersion::current().ok()?;
    let context = format!(
        "husk-seccomp-v2 libseccomp {}.{}.{} arch {:?}",
        version.major,
        version.minor,
        version.micro,
        ScmpArch::native()
    );
    Some(cache::key(&[context.as_bytes(), &json, &bpf_bytes(stub)]))
}

/// The filter's architectures: the native one (always in a libseccomp filter) and those listed.
fn filter_archs(spec: &LinuxSeccomp) -> Vec<ScmpArch> {
    let mut archs = vec![ScmpArch::native()];
    for arch in spec.architectures().iter().flatten() {
        let a = match scmp_arch(*arch) {
            ScmpArch::Native => ScmpArch::native(),
            a => a,
        };
        if !archs.contains(&a) {
            archs.push(a);
        }
    }
    archs
}

/// Builds the libseccomp filter for `spec`.
fn build_filter(spec: &LinuxSeccomp) -> Result<ScmpFilterContext, SeccompError> {
    let default = action(
        spec.default_action(),
        spec.default_errno_ret(),
        "linux.seccomp.defaultAction",
    )?;
    let mut ctx = ScmpFilterContext::new(default).map_err(SeccompError::Context)?;
    for arch in spec.architectures().iter().flatten() {
        let scmp = scmp_arch(*arch);
        let present = ctx.is_arch_present(scmp).unwrap_or(false);
        if scmp != ScmpArch::Native && !present {
            ctx.add_arch(scmp).map_err(|source| SeccompError::Arch {
                arch: format!("{arch:?}"),
                source,
            })?;
        }
    }
    for (i, rule) in spec.syscalls().iter().flatten().enumerate() {
        add_syscall_rule(
            &mut ctx,
            rule,
            default,
            &format!("linux.seccomp.syscalls[{i}]"),
        )?;
    }
    Ok(ctx)
}

/// Adds one OCI syscall entry (possibly several names) to `ctx`.
fn add_syscall_rule(
    ctx: &mut ScmpFilterContext,
    rule: &LinuxSyscall,
    default: ScmpAction,
    key: &str,
) -> Result<(), SeccompError> {
    let act = action(rule.action(), rule.errno_ret(), key)?;
    if act == default {
        return Ok(());
    }
    let conditions = rule
        .args()
        .iter()
        .flatten()
        .map(|arg| condition(arg, key))
        .collect::<Result<Vec<_>, _>>()?;
    let groups = condition_groups(rule.args().as_deref().unwrap_or_default(), conditions);
    for name in rule.names() {
        let Ok(syscall) = ScmpSyscall::from_name(name) else {
            log::debug!("seccomp: unknown syscall {name:?} in {key} ignored");
            continue;
        };
        for group in &groups {
            let added = if group.is_empty() {
                ctx.add_rule(act, syscall)
            } else {
                ctx.add_rule_conditional(act, syscall, group)
            };
            added.map_err(|source| SeccompError::Rule {
                key: key.to_string(),
                syscall: name.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

/// The runc rule: conditions on distinct argument indexes form one rule (AND); if any index
/// appears twice, each condition becomes its own rule (OR), because libseccomp cannot AND two
/// comparisons of the same argument. No conditions: one unconditional rule.
fn condition_groups(
    args: &[LinuxSeccompArg],
    conditions: Vec<ScmpArgCompare>,
) -> Vec<Vec<ScmpArgCompare>> {
    let mut counts = [0usize; MAX_ARGS];
    for arg in args {
        counts[arg.index()] += 1;
    }
    if counts.iter().any(|&n| n > 1) {
        conditions.into_iter().map(|c| vec![c]).collect()
    } else {
        vec![conditions]
    }
}

/// OCI action (+ errno) → libseccomp action.
fn action(
    act: LinuxSeccompAction,
    errno_ret: Option<u32>,
    key: &str,
) -> Result<ScmpAction, SeccompError> {
    let ret = |what: &str| -> Result<u16, SeccompError> {
        match errno_ret {
            None => Ok(libc::EPERM as u16),
            Some(v) => u16::try_from(v).map_err(|_| SeccompError::Invalid {
                key: key.to_string(),
                reason: format!("{what} return value {v} does not fit in 16 bits"),
            }),
        }
    };
    Ok(match act {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(i32::from(ret("errno")?)),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(ret("trace")?),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(SeccompError::Unsupported {
                key: key.to_string(),
                action: "SCMP_ACT_NOTIFY".to_string(),
            })
        }
    })
}

/// OCI argument comparison → libseccomp condition.
fn condition(arg: &LinuxSeccompArg, key: &str) -> Result<ScmpArgCompare, SeccompError> {
    let index = arg.index();
    if index >= MAX_ARGS {
        return Err(SeccompError::Invalid {
            key: format!("{key}.args"),
            reason: format!("argument index {index} is not below {MAX_ARGS}"),
        });
    }
    let (op, datum) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    // `index < MAX_ARGS` was checked above, so the cast cannot truncate.
    Ok(ScmpArgCompare::new(index as u32, op, datum))
}

/// OCI architecture → libseccomp architecture.
fn scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// `linux.seccomp.flags` → SECCOMP_FILTER_FLAG_* bits for seccomp(2).
fn filter_flags(spec: &LinuxSeccomp) -> u32 {
    let mut bits = 0;
    for flag in spec.flags().iter().flatten() {
        match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => {
                bits |= libc::SECCOMP_FILTER_FLAG_LOG as u32
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                bits |= libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync
            | LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                log::debug!("seccomp: flag {flag:?} ignored (single-threaded child, no listener)")
            }
        }
    }
    bits
}

/// Exports `ctx` as raw BPF bytes. libseccomp 2.5 has no in-memory export, so it writes to a memfd.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>, SeccompError> {
    let io = SeccompError::ExportIo;
    let fd = nix::sys::memfd::memfd_create(
        c"husk-seccomp-bpf",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    )
    .map_err(|e| io(e.into()))?;
    ctx.export_bpf(&fd).map_err(SeccompError::Export)?;
    let mut file = std::fs::File::from(fd);
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io)?;
    Ok(bytes)
}

/// Raw bytes (native-endian `struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}`) → instructions.
pub fn parse_bpf(bytes: &[u8]) -> Result<Vec<libc::sock_filter>, BpfError> {
    let insns = bytes.chunks_exact(INSN_LEN);
    if !insns.remainder().is_empty() {
        return Err(BpfError::Length(bytes.len()));
    }
    check_len(insns.len())?;
    Ok(insns
        .map(|b| libc::sock_filter {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
        .collect())
}

/// Instructions → raw bytes, the inverse of [`parse_bpf`].
pub fn bpf_bytes(bpf: &[libc::sock_filter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bpf.len() * INSN_LEN);
    for insn in bpf {
        out.extend_from_slice(&insn.code.to_ne_bytes());
        out.push(insn.jt);
        out.push(insn.jf);
        out.extend_from_slice(&insn.k.to_ne_bytes());
    }
    out
}

/// The kernel's program-length limits; also guards the `u16` length in `sock_fprog`.
fn check_len(insns: usize) -> Result<(), BpfError> {
    match insns {
        0 => Err(BpfError::Empty),
        n if n > BPF_MAXINSNS => Err(BpfError::TooLong(n)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod stub_tests;
#[cfg(test)]
mod tests;
