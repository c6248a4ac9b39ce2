//! Device rules on cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program generated from the rule list
//! (deny-all first, the spec's rules, the defaults the v1 controller gets too), attached to the
//! container's cgroup. Semantics as runc's and crun's: the LAST rule that matches a device access
//! decides; nothing matching means deny. The program checks the rules from the last to the first
//! and returns at the first match.
//!
//! The program's context is `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`,
//! access_type holding the device type (1 block, 2 char) in its low 16 bits and the access asked
//! (1 mknod, 2 read, 4 write) in its high 16 bits. Its return value: 1 allow, 0 deny.

use std::os::fd::AsFd;
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::CgroupError;
use crate::sys::bpf::{self, Insn};

const BPF_DEVCG_DEV_BLOCK: i32 = 1;
const BPF_DEVCG_DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const ACC_ALL: i32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

// Opcodes (linux/bpf.h, bpf_common.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JMP_JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// Registers: r1 the context, then r2 type, r3 access, r4 major, r5 minor; r1 is reused as scratch.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// One rule as the program checks it: None for a wildcard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub typ: Option<i32>,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: i32,
}

impl Rule {
    /// From an OCI rule: type `a` (or none) is any type, a missing or negative major/minor any
    /// number, a missing access "rwm".
    pub fn from_oci(r: &LinuxDeviceCgroup) -> Rule {
        let typ = match r.typ() {
            Some(LinuxDeviceType::B) => Some(BPF_DEVCG_DEV_BLOCK),
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => Some(BPF_DEVCG_DEV_CHAR),
            _ => None,
        };
        let access = match r.access().as_deref() {
            None | Some("") => ACC_ALL,
            Some(a) => a.chars().fold(0, |acc, c| {
                acc | match c {
                    'r' => ACC_READ,
                    'w' => ACC_WRITE,
                    'm' => ACC_MKNOD,
                    _ => 0,
                }
            }),
        };
        Rule {
            allow: r.allow(),
            typ,
            major: r.major().filter(|m| *m >= 0),
            minor: r.minor().filter(|m| *m >= 0),
            access,
        }
    }

    /// From a v1 rule line, `c 1:3 rwm` (`*` a wildcard).
    pub fn parse_v1(line: &str, allow: bool) -> Option<Rule> {
        let mut parts = line.split_whitespace();
        let typ = match parts.next()? {
            "a" => None,
            "b" => Some(BPF_DEVCG_DEV_BLOCK),
            "c" => Some(BPF_DEVCG_DEV_CHAR),
            _ => return None,
        };
        let (major, minor) = parts.next()?.split_once(':')?;
        let num = |s: &str| match s {
            "*" => Some(None),
            n => n.parse().ok().map(Some),
        };
        let access = parts.next()?.chars().fold(0, |acc, c| {
            acc | match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => 0,
            }
        });
        Some(Rule {
            allow,
            typ,
            major: num(major)?,
            minor: num(minor)?,
            access,
        })
    }

    /// The rule's check: jumps past the block when a field differs, else returns its verdict.
    fn block(&self) -> Vec<Insn> {
        let mut checks: Vec<Vec<Insn>> = Vec::new();
        if let Some(t) = self.typ {
            checks.push(vec![insn(JMP_JNE_K, R2, 0, 0, t)]);
        }
        if self.access & ACC_ALL != ACC_ALL {
            // The access asked must be a subset of the rule's: (asked & rule) == asked.
            checks.push(vec![
                insn(ALU32_MOV_X, R1, R3, 0, 0),
                insn(ALU32_AND_K, R1, 0, 0, self.access),
                insn(JMP_JNE_X, R1, R3, 0, 0),
            ]);
        }
        if let Some(m) = self.major {
            checks.push(vec![insn(JMP_JNE_K, R4, 0, 0, m as i32)]);
        }
        if let Some(m) = self.minor {
            checks.push(vec![insn(JMP_JNE_K, R5, 0, 0, m as i32)]);
        }
        let mut out: Vec<Insn> = checks.into_iter().flatten().collect();
        out.push(insn(ALU64_MOV_K, R0, 0, 0, i32::from(self.allow)));
        out.push(insn(JMP_EXIT, 0, 0, 0, 0));
        // Each jump skips to the end of this block.
        let len = out.len();
        for (i, ins) in out.iter_mut().enumerate() {
            if ins.code == JMP_JNE_K || ins.code == JMP_JNE_X {
                ins.off = (len - i - 1) as i16;
            }
        }
        out
    }

    /// Whether the rule matches everything (type, numbers and access all wildcards).
    fn matches_all(&self) -> bool {
        self.typ.is_none() && self.major.is_none() && self.minor.is_none() && self.access == ACC_ALL
    }
}

/// The program for `rules` (in spec order): the last matching rule decides, none means deny.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut out = vec![
        insn(LDX_MEM_W, R2, R1, 0, 0),
        insn(ALU32_AND_K, R2, 0, 0, 0xffff),
        insn(LDX_MEM_W, R3, R1, 0, 0),
        insn(ALU32_RSH_K, R3, 0, 0, 16),
        insn(LDX_MEM_W, R4, R1, 4, 0),
        insn(LDX_MEM_W, R5, R1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        out.extend(rule.block());
        if rule.matches_all() {
            // Nothing before it can be reached.
            return out;
        }
    }
    out.push(insn(ALU64_MOV_K, R0, 0, 0, 0));
    out.push(insn(JMP_EXIT, 0, 0, 0, 0));
    out
}

/// What the program answers for one access: an interpreter of [`program`]'s own output, for tests.
#[cfg(test)]
fn run(prog: &[Insn], typ: i32, access: i32, major: u32, minor: u32) -> u64 {
    let ctx = [(typ | (access << 16)) as u32, major, minor];
    let mut r = [0u64; 11];
    let mut pc = 0usize;
    loop {
        let i = prog[pc];
        let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
        pc += 1;
        match i.code {
            LDX_MEM_W => r[dst] = u64::from(ctx[i.off as usize / 4]),
            ALU32_AND_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
            ALU32_RSH_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
            ALU32_MOV_X => r[dst] = r[src] as u32 as u64,
            ALU64_MOV_K => r[dst] = i.imm as i64 as u64,
            JMP_JNE_K if r[dst] != i.imm as i64 as u64 => pc += i.off as usize,
            JMP_JNE_X if r[dst] != r[src] => pc += i.off as usize,
            JMP_JNE_K | JMP_JNE_X => {}
            JMP_EXIT => return r[0],
            c => panic!("unknown opcode {c:#x}"),
        }
    }
}

/// Replaces the device programs attached to the cgroup at `dir` by one built from `rules`: the new
/// one is attached first (programs attached together must all allow, so the cgroup is never less
/// restricted meanwhile), then every older one is detached, as runc does.
pub fn apply(dir: &Path, rules: &[Rule]) -> Result<(), CgroupError> {
    let err = |op: &'static str| {
        move |e: nix::errno::Errno| CgroupError::Io {
            op,
            path: dir.to_path_buf(),
            source: e.into(),
        }
    };
    let cgroup = std::fs::File::open(dir).map_err(|source| CgroupError::Io {
        op: "open cgroup for the device program",
        path: dir.to_path_buf(),
        source,
    })?;
    let old = bpf::query_device_programs(cgroup.as_fd()).map_err(err("list device programs of"))?;
    let prog =
        bpf::load_device_program(&program(rules)).map_err(err("load the device program for"))?;
    bpf::attach_device_program(cgroup.as_fd(), prog.as_fd())
        .map_err(err("attach the device program to"))?;
    for id in old {
        let fd = bpf::program_by_id(id).map_err(err("open an old device program of"))?;
        match bpf::detach_device_program(cgroup.as_fd(), fd.as_fd()) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(err("detach an old device program from")(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    fn rule(
        allow: bool,
        typ: Option<i32>,
        major: Option<i64>,
        minor: Option<i64>,
        acc: &str,
    ) -> Rule {
        let mut b = LinuxDeviceCgroupBuilder::default().allow(allow).access(acc);
        b = match typ {
            Some(BPF_DEVCG_DEV_BLOCK) => b.typ(LinuxDeviceType::B),
            Some(_) => b.typ(LinuxDeviceType::C),
            None => b.typ(LinuxDeviceType::A),
        };
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        Rule::from_oci(&b.build().unwrap())
    }

    const B: i32 = BPF_DEVCG_DEV_BLOCK;
    const C: i32 = BPF_DEVCG_DEV_CHAR;

    #[test]
    fn empty_list_denies_everything() {
        let p = program(&[]);
        assert_eq!(run(&p, C, ACC_READ, 1, 3), 0);
        assert_eq!(run(&p, B, ACC_MKNOD, 8, 0), 0);
    }

    #[test]
    fn deny_all_then_allowed_devices() {
        let rules = [
            rule(false, None, None, None, "rwm"),
            rule(true, Some(C), Some(1), Some(3), "rwm"),
            rule(true, Some(C), None, None, "m"),
            rule(true, Some(B), None, None, "m"),
            rule(true, Some(C), Some(136), None, "rw"),
        ];
        let p = program(&rules);
        assert_eq!(run(&p, C, ACC_READ | ACC_WRITE, 1, 3), 1, "/dev/null rw");
        assert_eq!(run(&p, C, ACC_READ, 1, 5), 0, "/dev/zero not listed");
        assert_eq!(run(&p, B, ACC_MKNOD, 254, 0), 1, "mknod of a block device");
        assert_eq!(run(&p, B, ACC_READ, 254, 0), 0, "reading the disk");
        assert_eq!(run(&p, B, ACC_WRITE, 8, 0), 0, "writing a disk");
        assert_eq!(run(&p, C, ACC_READ, 136, 4), 1, "a pty");
        assert_eq!(run(&p, C, ACC_MKNOD, 136, 4), 1, "mknod of any char device");
        assert_eq!(
            run(&p, C, ACC_READ | ACC_MKNOD, 136, 4),
            0,
            "rm is not within rw"
        );
        assert_eq!(run(&p, B, ACC_READ, 1, 3), 0, "block 1:3 is not char 1:3");
    }

    #[test]
    fn last_matching_rule_wins() {
        let allow_then_deny = [
            rule(true, None, None, None, "rwm"),
            rule(false, Some(B), Some(8), None, "rwm"),
        ];
        let p = program(&allow_then_deny);
        assert_eq!(run(&p, B, ACC_READ, 8, 1), 0);
        assert_eq!(run(&p, B, ACC_READ, 9, 1), 1);
        assert_eq!(run(&p, C, ACC_WRITE, 8, 1), 1);
        // An allow-all at the end makes everything before it unreachable, and is not followed
        // by the default deny.
        let deny_then_allow = [
            rule(false, Some(B), Some(8), None, "rwm"),
            rule(true, None, None, None, "rwm"),
        ];
        let p = program(&deny_then_allow);
        assert_eq!(run(&p, B, ACC_READ, 8, 1), 1);
        assert_eq!(p.last().unwrap().code, JMP_EXIT);
        assert_eq!(p.len(), 6 + 2);
    }

    #[test]
    fn partial_access_deny_is_partial() {
        let rules = [
            rule(true, None, None, None, "rwm"),
            rule(false, Some(C), Some(1), Some(3), "w"),
        ];
        let p = program(&rules);
        assert_eq!(run(&p, C, ACC_WRITE, 1, 3), 0);
        assert_eq!(run(&p, C, ACC_READ, 1, 3), 1);
        // Asking read and write: the deny of w does not cover it wholly, allow-all does.
        assert_eq!(run(&p, C, ACC_READ | ACC_WRITE, 1, 3), 1);
    }

    #[test]
    fn v1_lines_parse() {
        assert_eq!(
            Rule::parse_v1("c 136:* rwm", true),
            Some(Rule {
                allow: true,
                typ: Some(C),
                major: Some(136),
                minor: None,
                access: ACC_ALL
            })
        );
        assert_eq!(Rule::parse_v1("b *:* m", true).unwrap().access, ACC_MKNOD);
        assert!(Rule::parse_v1("x 1:2 r", true).is_none());
    }

    #[test]
    fn wildcards_from_oci() {
        let r = Rule::from_oci(
            &LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .major(-1)
                .build()
                .unwrap(),
        );
        assert_eq!(
            r,
            Rule {
                allow: true,
                typ: None,
                major: None,
                minor: None,
                access: ACC_ALL
            }
        );
        let jumps_in_range = program(&[r.clone(), rule(false, Some(C), Some(5), Some(1), "r")]);
        for (i, ins) in jumps_in_range.iter().enumerate() {
            assert!(i + 1 + (ins.off as usize) <= jumps_in_range.len());
        }
    }
}
