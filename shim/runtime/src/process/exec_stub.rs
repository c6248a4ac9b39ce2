//! The exec stub (CVE-2019-5736): the container's process is husk's own clone until its final
//! execve, so its /proc/PID/exe is the husk binary on the host; and a program whose interpreter
//! is `#!/proc/self/exe` makes the kernel run *that* file inside the container, where container
//! root may then open it through /proc/PID/exe and, once it exits, rewrite it: husk, on the host.
//!
//! So the last exec husk does is of a tiny program from a sealed memfd (runc's "dmz", which runc
//! dropped only because it re-execs itself anyway): it execs the real program. Whatever a
//! `#!/proc/self/exe` or a /proc/PID/exe then reaches is a per-container, write-sealed copy of
//! these 617 bytes; run without husk's argv it exits 126 at once. Its errors come back on the
//! sync channel, so `run` and `exec` still report "exec PATH: ENOENT" as before. Cost: one memfd
//! (about 10 µs) in the parent and one extra exec of a static 617-byte ELF (tens of µs).
//!
//! Used when the runtime's user can write the husk binary (root always; an unprivileged user only
//! for a binary of its own): otherwise no container of that user can write it either. The window
//! before the stub runs is covered by non-dumpable (see `InitContext::protect_exe`). A container
//! that may hold CAP_SYS_PTRACE without a user namespace reads non-dumpable processes too: for it
//! husk itself must run from a sealed copy ([`ptrace_exposed`], [`reexec_sealed`]; runc-dmz's
//! fallback, at the cost of copying the binary, only for such containers).
//!
//! x86_64 only (the code is hand-written): elsewhere husk execs the program directly.
//! The code is exec_stub.S, assembled; the ELF headers are built around it here.

use nix::errno::Errno;
use nix::fcntl::{fcntl, AtFlags, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use oci_spec::runtime::{Capability, LinuxCapabilities};
use std::ffi::{CStr, CString, OsString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// argv[0] the stub wants: 8 bytes with the NUL, compared as one word.
const MAGIC: &CStr = c"huskexe";

/// Tag of the stub's failure record on the sync channel: [7][errno u32 LE][path].
pub const EXEC_FAILED: u8 = 7;

/// exec_stub.S assembled (`.text` only; no relocations: it refers to itself rip-relative).
#[rustfmt::skip]
const CODE: [u8; 441] = [
    0x48, 0x8b, 0x1c, 0x24, 0x4c, 0x8d, 0x64, 0x24, 0x08, 0x48, 0x83, 0xfb, 0x04, 0x0f, 0x82, 0x6a,
    0x01, 0x00, 0x00, 0x49, 0x8b, 0x04, 0x24, 0x48, 0x8b, 0x00, 0x48, 0xb9, 0x68, 0x75, 0x73, 0x6b,
    0x65, 0x78, 0x65, 0x00, 0x48, 0x39, 0xc8, 0x0f, 0x85, 0x50, 0x01, 0x00, 0x00, 0x49, 0x8b, 0x74,
    0x24, 0x08, 0x45, 0x31, 0xed, 0x0f, 0xb6, 0x06, 0x85, 0xc0, 0x74, 0x0f, 0x83, 0xe8, 0x30, 0x45,
    0x6b, 0xed, 0x0a, 0x41, 0x01, 0xc5, 0x48, 0xff, 0xc6, 0xeb, 0xea, 0xb8, 0x48, 0x00, 0x00, 0x00,
    0x44, 0x89, 0xef, 0xbe, 0x02, 0x00, 0x00, 0x00, 0xba, 0x01, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x48,
    0x85, 0xc0, 0x79, 0x10, 0xb8, 0x03, 0x00, 0x00, 0x00, 0x44, 0x89, 0xef, 0x0f, 0x05, 0x41, 0xbd,
    0xff, 0xff, 0xff, 0xff, 0x49, 0x8b, 0x7c, 0x24, 0x10, 0x49, 0x8d, 0x74, 0x24, 0x18, 0x49, 0x8d,
    0x54, 0xdc, 0x08, 0xb8, 0x3b, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xf7, 0xd8, 0x41, 0x89, 0xc6, 0x4d,
    0x8b, 0x7c, 0x24, 0x10, 0x31, 0xed, 0x41, 0x80, 0x3c, 0x2f, 0x00, 0x74, 0x05, 0x48, 0xff, 0xc5,
    0xeb, 0xf4, 0x48, 0x81, 0xec, 0x80, 0x00, 0x00, 0x00, 0xc6, 0x04, 0x24, 0x07, 0x44, 0x89, 0x74,
    0x24, 0x01, 0x48, 0x89, 0x64, 0x24, 0x10, 0x48, 0xc7, 0x44, 0x24, 0x18, 0x05, 0x00, 0x00, 0x00,
    0x4c, 0x89, 0x7c, 0x24, 0x20, 0x48, 0x89, 0x6c, 0x24, 0x28, 0x31, 0xc0, 0x48, 0x89, 0x44, 0x24,
    0x30, 0x48, 0x89, 0x44, 0x24, 0x38, 0x48, 0x8d, 0x4c, 0x24, 0x10, 0x48, 0x89, 0x4c, 0x24, 0x40,
    0x48, 0xc7, 0x44, 0x24, 0x48, 0x02, 0x00, 0x00, 0x00, 0x48, 0x89, 0x44, 0x24, 0x50, 0x48, 0x89,
    0x44, 0x24, 0x58, 0x48, 0x89, 0x44, 0x24, 0x60, 0xb8, 0x2e, 0x00, 0x00, 0x00, 0x44, 0x89, 0xef,
    0x48, 0x8d, 0x74, 0x24, 0x30, 0xba, 0x00, 0x40, 0x00, 0x00, 0x0f, 0x05, 0x48, 0x85, 0xc0, 0x79,
    0x60, 0x48, 0x8d, 0x35, 0x7e, 0x00, 0x00, 0x00, 0xba, 0x1b, 0x00, 0x00, 0x00, 0xe8, 0x67, 0x00,
    0x00, 0x00, 0x4c, 0x89, 0xfe, 0x48, 0x89, 0xea, 0xe8, 0x5c, 0x00, 0x00, 0x00, 0x48, 0x8d, 0x35,
    0x7d, 0x00, 0x00, 0x00, 0xba, 0x08, 0x00, 0x00, 0x00, 0xe8, 0x4b, 0x00, 0x00, 0x00, 0x48, 0x8d,
    0x7c, 0x24, 0x7f, 0xc6, 0x07, 0x0a, 0x44, 0x89, 0xf0, 0xb9, 0x0a, 0x00, 0x00, 0x00, 0x31, 0xd2,
    0xf7, 0xf1, 0x80, 0xc2, 0x30, 0x48, 0xff, 0xcf, 0x88, 0x17, 0x85, 0xc0, 0x75, 0xf0, 0x48, 0x89,
    0xfe, 0x48, 0x8d, 0x94, 0x24, 0x80, 0x00, 0x00, 0x00, 0x48, 0x29, 0xfa, 0xe8, 0x18, 0x00, 0x00,
    0x00, 0xb8, 0xe7, 0x00, 0x00, 0x00, 0xbf, 0x7f, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xb8, 0xe7, 0x00,
    0x00, 0x00, 0xbf, 0x7e, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xb8, 0x01, 0x00, 0x00, 0x00, 0xbf, 0x02,
    0x00, 0x00, 0x00, 0x0f, 0x05, 0xc3, 0x68, 0x75, 0x73, 0x6b, 0x3a, 0x20, 0x63, 0x6f, 0x6e, 0x74,
    0x61, 0x69, 0x6e, 0x65, 0x72, 0x20, 0x69, 0x6e, 0x69, 0x74, 0x3a, 0x20, 0x65, 0x78, 0x65, 0x63,
    0x20, 0x3a, 0x20, 0x65, 0x72, 0x72, 0x6e, 0x6f, 0x20,
];

/// Where the one PT_LOAD segment is mapped (a static, non-PIE executable).
const BASE: u64 = 0x40_0000;
const EHDR: usize = 64;
const PHDR: usize = 56;

/// The stub as an ELF file: header, PT_LOAD (R+X, the whole file), PT_GNU_STACK (RW), code.
fn elf() -> Vec<u8> {
    let code_at = EHDR + 2 * PHDR;
    let total = (code_at + CODE.len()) as u64;
    let mut f = Vec::with_capacity(total as usize);
    f.extend_from_slice(b"\x7fELF");
    f.extend_from_slice(&[2, 1, 1, 0]); // 64-bit, little-endian, version 1, System V
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&(BASE + code_at as u64).to_le_bytes()); // e_entry
    f.extend_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    f.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for half in [EHDR as u16, PHDR as u16, 2, 0, 0, 0] {
        f.extend_from_slice(&half.to_le_bytes()); // ehsize, phentsize, phnum, sh*
    }
    let phdr = |f: &mut Vec<u8>, typ: u32, flags: u32, addr: u64, size: u64, align: u64| {
        f.extend_from_slice(&typ.to_le_bytes());
        f.extend_from_slice(&flags.to_le_bytes());
        for v in [0, addr, addr, size, size, align] {
            f.extend_from_slice(&v.to_le_bytes());
        }
    };
    phdr(&mut f, 1, 5, BASE, total, 0x1000); // PT_LOAD, PF_R|PF_X
    phdr(&mut f, 0x6474_e551, 6, 0, 0, 16); // PT_GNU_STACK, PF_R|PF_W
    f.extend_from_slice(&CODE);
    f
}

/// A sealed memfd holding the stub, made by the parent; the child execs it.
#[derive(Debug)]
pub struct ExecStub(OwnedFd);

impl std::os::fd::AsRawFd for ExecStub {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

impl ExecStub {
    /// The stub when this runtime needs it (see the module comment), else None.
    pub fn wanted() -> Result<Option<ExecStub>, Errno> {
        let writable = nix::unistd::access("/proc/self/exe", nix::unistd::AccessFlags::W_OK);
        if !cfg!(target_arch = "x86_64") || writable.is_err() {
            return Ok(None);
        }
        ExecStub::new().map(Some)
    }

    /// Writes the stub into a new memfd and seals it (no writes, no size change, no more seals).
    pub fn new() -> Result<ExecStub, Errno> {
        let fd = exec_memfd(c"husk-exec")?;
        let bytes = elf();
        let written = nix::unistd::write(&fd, &bytes)?;
        if written != bytes.len() {
            return Err(Errno::EIO);
        }
        seal(&fd)?;
        Ok(ExecStub(fd))
    }

    /// Execs `path` with `argv` and `envp` through the stub (the process's last step). `report`
    /// is the sync channel the stub answers an execve failure on (-1: none); it is duplicated
    /// above `min_fd` without close-on-exec, and the stub closes it when `path` starts.
    /// Returns only on failure to start the stub itself.
    pub fn exec(
        &self,
        report: RawFd,
        min_fd: RawFd,
        path: &CStr,
        argv: &[CString],
        envp: &[CString],
    ) -> Errno {
        let fd = if report < 0 {
            -1
        } else {
            match fcntl(report, FcntlArg::F_DUPFD(min_fd)) {
                Ok(fd) => fd,
                Err(e) => return e,
            }
        };
        let fd_arg = CString::new(fd.to_string()).expect("digits have no NUL");
        let mut args: Vec<&CStr> = vec![MAGIC, &fd_arg, path];
        args.extend(argv.iter().map(CString::as_c_str));
        let stub = self.0.as_raw_fd();
        let Err(e) = nix::unistd::execveat(Some(stub), c"", &args, envp, AtFlags::AT_EMPTY_PATH);
        // execveat denied (a seccomp profile that allows execve only) or missing (Linux < 3.19):
        // the same file through /proc.
        let proc = CString::new(format!("/proc/self/fd/{stub}")).expect("no NUL");
        match e {
            Errno::ENOSYS | Errno::EPERM | Errno::EACCES => {
                let Err(e) = nix::unistd::execve(&proc, &args, envp);
                e
            }
            e => e,
        }
    }
}

/// A new close-on-exec memfd that may be sealed and executed.
fn exec_memfd(name: &CStr) -> Result<OwnedFd, Errno> {
    let flags = MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING;
    // MFD_EXEC (Linux 6.3): executable even where vm.memfd_noexec makes memfds no-exec by
    // default; older kernels do not know the flag (EINVAL) and need none.
    let exec = MemFdCreateFlag::from_bits_retain(0x10);
    match memfd_create(name, flags | exec) {
        Err(Errno::EINVAL) => memfd_create(name, flags),
        r => r,
    }
}

/// No writes, no size change, no more seals.
fn seal(fd: &OwnedFd) -> Result<(), Errno> {
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(fd.as_raw_fd(), FcntlArg::F_ADD_SEALS(seals)).map(drop)
}

/// May a process of a container with these capabilities read (and ptrace) husk's non-dumpable
/// processes in it? Only with CAP_SYS_PTRACE in the host's user namespace: without a user
/// namespace of its own, and with CAP_SYS_PTRACE in its bounding, inheritable or ambient set
/// (runc's rule for its dmz), or with no `capabilities` at all (every set left as it is).
pub fn ptrace_exposed(caps: Option<&LinuxCapabilities>, userns: bool) -> bool {
    if userns {
        return false;
    }
    let Some(c) = caps else {
        return true;
    };
    [c.bounding(), c.inheritable(), c.ambient()]
        .into_iter()
        .flatten()
        .any(|set| set.contains(&Capability::SysPtrace))
}

/// Is this process running from a sealed copy of its binary (see [`reexec_sealed`])?
pub fn running_sealed() -> bool {
    std::fs::File::open("/proc/self/exe")
        .ok()
        .and_then(|f| fcntl(f.as_raw_fd(), FcntlArg::F_GET_SEALS).ok())
        .is_some_and(|seals| seals & libc::F_SEAL_WRITE != 0)
}

/// Execs this program again, with `argv` and the current environment, from a write-sealed memfd
/// copy of its binary: its /proc/PID/exe, and its children's, is then no file on the host.
/// Returns only on failure.
pub fn reexec_sealed(argv: &[OsString]) -> Errno {
    let run = || -> Result<std::convert::Infallible, Errno> {
        let mut exe = std::fs::File::open("/proc/self/exe").map_err(io_errno)?;
        let fd = exec_memfd(c"husk-sealed")?;
        let mut copy = std::fs::File::from(fd);
        std::io::copy(&mut exe, &mut copy).map_err(io_errno)?;
        let fd = OwnedFd::from(copy);
        seal(&fd)?;
        let cstr = |s: &std::ffi::OsStr| CString::new(s.as_bytes()).map_err(|_| Errno::EINVAL);
        let args = argv
            .iter()
            .map(|a| cstr(a))
            .collect::<Result<Vec<_>, _>>()?;
        let env = std::env::vars_os()
            .map(|(k, v)| {
                let mut kv = k;
                kv.push("=");
                kv.push(v);
                cstr(&kv)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let flags = AtFlags::AT_EMPTY_PATH;
        nix::unistd::execveat(Some(fd.as_raw_fd()), c"", &args, &env, flags)
    };
    match run() {
        Err(e) => e,
        Ok(never) => match never {},
    }
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn ptrace_exposed_only_without_a_userns_and_with_the_capability() {
        let caps = |v: serde_json::Value| serde_json::from_value::<LinuxCapabilities>(v).unwrap();
        let with = caps(serde_json::json!({"bounding": ["CAP_KILL", "CAP_SYS_PTRACE"]}));
        let without =
            caps(serde_json::json!({"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]}));
        let inheritable = caps(serde_json::json!({"inheritable": ["CAP_SYS_PTRACE"]}));
        assert!(ptrace_exposed(Some(&with), false));
        assert!(ptrace_exposed(Some(&inheritable), false));
        assert!(
            ptrace_exposed(None, false),
            "no capabilities object: all kept"
        );
        assert!(!ptrace_exposed(Some(&without), false));
        assert!(!ptrace_exposed(Some(&with), true));
        assert!(!running_sealed(), "the test binary is a file");
    }

    /// Runs the stub directly (through /proc/self/fd, as a fallback would), with argv0 `magic`.
    fn run(magic: &str, rest: &[&str]) -> std::process::Output {
        let stub = ExecStub::new().unwrap();
        let path = format!("/proc/self/fd/{}", stub.0.as_raw_fd());
        let out = Command::new(&path)
            .arg0(magic)
            .args(rest)
            .env_clear()
            .env("HUSK_STUB_TEST", "1")
            .output()
            .unwrap();
        drop(stub);
        out
    }

    use std::os::unix::process::CommandExt;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn execs_the_program_with_its_argv_and_env() {
        let script = "echo \"$0|$1|$HUSK_STUB_TEST\"";
        let out = run(
            "huskexe",
            &["-1", "/bin/sh", "sh", "-c", script, "zero", "one"],
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "zero|one|1\n",
            "{out:?}"
        );
        assert_eq!(out.status.code(), Some(0));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn refuses_to_run_without_the_magic() {
        // What "#!/proc/self/exe" in an image gives: [/proc/self/exe, script, ...].
        let out = run("/proc/self/exe", &["/bin/sh", "/bin/sh", "-c", "echo ran"]);
        assert_eq!(out.status.code(), Some(126), "{out:?}");
        assert!(out.stdout.is_empty());
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn a_failed_exec_says_so_on_stderr_without_a_channel() {
        let out = run("huskexe", &["-1", "/nonexistent/prog", "prog"]);
        assert_eq!(out.status.code(), Some(127), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "husk: container init: exec /nonexistent/prog: errno 2\n"
        );
    }

    #[test]
    fn the_stub_is_sealed() {
        let stub = ExecStub::new().unwrap();
        let seals = fcntl(stub.0.as_raw_fd(), FcntlArg::F_GET_SEALS).unwrap();
        assert_eq!(seals & 0xf, 0xf, "seal, shrink, grow, write: {seals:#x}");
        let path = format!("/proc/self/fd/{}", stub.0.as_raw_fd());
        let w = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"x"));
        assert_eq!(w.unwrap_err().raw_os_error(), Some(libc::EPERM));
    }

    /// The bytes above are exec_stub.S assembled (checked where binutils are installed).
    #[test]
    fn code_matches_the_source() {
        let dir = std::env::temp_dir().join(format!("husk-stub-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src/process/exec_stub.S");
        let obj = dir.join("s.o");
        let bin = dir.join("s.bin");
        let assembled = Command::new("as")
            .args(["--64", "-o"])
            .arg(&obj)
            .arg(src)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new("objcopy")
                .args(["-O", "binary", "-j", ".text"])
                .arg(&obj)
                .arg(&bin)
                .status()
                .is_ok_and(|s| s.success());
        if !assembled {
            eprintln!("skipped: no binutils (as, objcopy) to assemble exec_stub.S");
            return;
        }
        let bytes = std::fs::read(&bin).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(bytes, CODE);
    }
}
