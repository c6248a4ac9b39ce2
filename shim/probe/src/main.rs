//! husk-probe: a small static helper run INSIDE test containers (crun's tests do the same). With
//! no argument (or `json`) it prints one JSON object of what the process observes: ids, caps,
//! no_new_privs, seccomp mode, cwd, hostname, env, rlimits, mounts, namespaces, cgroups, fds, tty.
//! Other subcommands act, so tests can check behaviour; each prints one JSON line.
//!
//! It must run in a rootfs with no libc, so it is linked statically. There is no musl target on the
//! build hosts; the gnu target with crt-static works:
//!
//! ```sh
//! RUSTFLAGS='-C target-feature=+crt-static' \
//!   cargo build -p husk-probe --release --target x86_64-unknown-linux-gnu
//! # -> target/x86_64-unknown-linux-gnu/release/husk-probe; bundles/busybox/make-rootfs copies it
//! ```
//!
//! (`--target` keeps RUSTFLAGS away from build scripts and proc macros of the rest of the
//! workspace.) std only, no dependencies: JSON is written by hand (json.rs), and the few libc calls
//! std lacks live in sys.rs.

mod json;
mod observe;
mod sys;

use json::Json;
use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str =
    "usage: husk-probe [json | exit N | sleep SECS | sig | raise N | write PATH [DATA] \
| read PATH | open PATH r|w | readlink PATH | exes | exe-race STOPFILE | chown PATH UID GID \
| syscall NAME|NR [ARGS..] | syscall32 NR [ARGS..] \
| socket FAMILY native|x32|i386|socketcall | alloc MB | fork N | fds | tty | echo WORDS.. | cat \
| unix PATH MSG | nolandlock CMD [ARGS..] | nest CMD [ARGS..]]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    match argv.as_slice() {
        [] | ["json"] => print(&observe::report()),
        ["exit", n] => return ExitCode::from(n.parse::<u8>().unwrap_or(255)),
        ["sleep", secs] => {
            let secs: f64 = secs.parse().unwrap_or(3600.0);
            std::thread::sleep(Duration::from_secs_f64(secs));
        }
        ["sig"] => return signals(),
        ["raise", n] => return raise(n),
        ["write", path] => print(&write(path, "husk-probe\n")),
        ["write", path, data] => print(&write(path, data)),
        ["read", path] => print(&read(path)),
        ["open", path, mode] => print(&open(path, mode)),
        ["readlink", path] => print(&readlink(path)),
        ["exes"] => print(&exes()),
        ["exe-race", stop] => print(&exe_race(stop)),
        ["chown", path, uid, gid] => print(&chown(path, uid, gid)),
        ["syscall", name, rest @ ..] => print(&syscall(name, rest)),
        ["syscall32", nr, rest @ ..] => print(&syscall32(nr, rest)),
        ["socket", family, abi] => print(&socket(family, abi)),
        ["alloc", mb] => alloc(mb.parse().unwrap_or(1024)),
        ["fork", n] => print(&fork(n.parse().unwrap_or(100))),
        ["fds"] => print(&Json::obj().with("fds", observe::fds())),
        ["tty"] => print(&observe::tty()),
        ["echo", words @ ..] => println!("{}", words.join(" ")),
        ["unix", path, msg] => print(&unix(path, msg)),
        // Runs CMD as on a kernel without Landlock (landlock_create_ruleset is ENOSYS).
        ["nolandlock", cmd, rest @ ..] => {
            use std::os::unix::process::CommandExt;
            if let Err(e) = sys::deny_syscall_enosys(444) {
                eprintln!("husk-probe: seccomp: {e}");
                return ExitCode::from(125);
            }
            let e = std::process::Command::new(cmd).args(rest).exec();
            eprintln!("husk-probe: exec {cmd}: {e}");
            return ExitCode::from(127);
        }
        // `unshare -mrpf CMD`: CMD as root of a new user, mount and pid namespace.
        ["nest", cmd, rest @ ..] => return nest(cmd, rest),
        ["cat"] => {
            let mut buf = Vec::new();
            let _ = io::stdin().read_to_end(&mut buf);
            let _ = io::stdout().write_all(&buf);
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

fn print(j: &Json) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{}", j.render());
    let _ = out.flush();
}

/// `{"ok":false,"errno":N,"error":"ENAME"}` fields for an io::Error (or ok:true).
fn outcome(mut j: Json, r: Result<(), io::Error>) -> Json {
    match r {
        Ok(()) => j.push("ok", true),
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(0);
            j.push("ok", false);
            j.push("errno", errno);
            j.push("error", errno_name(errno));
            j.push("message", e.to_string());
        }
    }
    j
}

fn errno_name(n: i32) -> String {
    let name = match n {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        4 => "EINTR",
        5 => "EIO",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        24 => "EMFILE",
        26 => "ETXTBSY",
        28 => "ENOSPC",
        30 => "EROFS",
        97 => "EAFNOSUPPORT",
        38 => "ENOSYS",
        95 => "EOPNOTSUPP",
        _ => return format!("E{n}"),
    };
    name.to_string()
}

/// Prints `{"ready":true}`, then one line per signal received; exits 0 after SIGTERM or SIGINT.
fn signals() -> ExitCode {
    let set = match sys::block_all_signals() {
        Ok(set) => set,
        Err(e) => {
            eprintln!("husk-probe: block signals: {e}");
            return ExitCode::from(1);
        }
    };
    print(&Json::obj().with("ready", true));
    loop {
        match sys::wait_signal(&set) {
            Ok(sig) => {
                print(
                    &Json::obj()
                        .with("signal", sig)
                        .with("name", signal_name(sig)),
                );
                if sig == 15 || sig == 2 {
                    return ExitCode::SUCCESS;
                }
            }
            Err(e) => {
                eprintln!("husk-probe: sigwait: {e}");
                return ExitCode::from(1);
            }
        }
    }
}

fn signal_name(sig: i32) -> String {
    const NAMES: [&str; 32] = [
        "",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(sig)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("SIGRT{sig}"), |n| n.to_string())
}

/// Dies by signal N. As pid 1 of a pid namespace the kernel drops it; then we say so and exit 1.
fn raise(n: &str) -> ExitCode {
    let sig: i32 = n.parse().unwrap_or(15);
    let r = sys::raise_default(sig);
    std::thread::sleep(Duration::from_millis(100));
    print(&outcome(
        Json::obj()
            .with("op", "raise")
            .with("signal", sig)
            .with("survived", true),
        r,
    ));
    ExitCode::from(1)
}

fn write(path: &str, data: &str) -> Json {
    let r = std::fs::write(path, data);
    outcome(Json::obj().with("op", "write").with("path", path), r)
}

/// Connects to the Unix stream socket at `path`, sends `msg`, shuts down writing and reads the
/// reply to EOF.
fn unix(path: &str, msg: &str) -> Json {
    let mut j = Json::obj().with("op", "unix").with("path", path);
    let r = std::os::unix::net::UnixStream::connect(path).and_then(|mut s| {
        s.write_all(msg.as_bytes())?;
        s.shutdown(std::net::Shutdown::Write)?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)?;
        j.push("reply", reply);
        Ok(())
    });
    outcome(j, r)
}

fn read(path: &str) -> Json {
    let mut j = Json::obj().with("op", "read").with("path", path);
    let r = match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path).map(|d| {
            let mut names: Vec<String> = d
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            j.push("entries", names);
        }),
        Ok(_) => std::fs::read(path).map(|bytes| {
            j.push("bytes", bytes.len());
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).into_owned();
            j.push("data", text);
        }),
        Err(e) => Err(e),
    };
    outcome(j, r)
}

/// Opens PATH for reading (`r`) or writing (`w`, no O_TRUNC and nothing written: a test that
/// expects a failure must not damage the file when the open wrongly succeeds).
fn open(path: &str, mode: &str) -> Json {
    let r = std::fs::OpenOptions::new()
        .read(mode == "r")
        .write(mode == "w")
        .open(path)
        .map(drop);
    outcome(
        Json::obj()
            .with("op", "open")
            .with("path", path)
            .with("mode", mode),
        r,
    )
}

fn readlink(path: &str) -> Json {
    let mut j = Json::obj().with("op", "readlink").with("path", path);
    let r = std::fs::read_link(path).map(|t| j.push("target", t.to_string_lossy().into_owned()));
    outcome(j, r)
}

/// CVE-2019-5736 class: for every other process visible in /proc, what opening its
/// /proc/PID/exe for writing (and reading, and readlink) gives. Nothing is written.
fn exes() -> Json {
    let me = std::process::id().to_string();
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    let rows: Vec<Json> = pids
        .into_iter()
        .filter(|p| p.to_string() != me)
        .map(|pid| {
            let exe = format!("/proc/{pid}/exe");
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            Json::obj()
                .with("pid", pid)
                .with("cmdline", cmdline.trim_end().to_string())
                .with("write", open(&exe, "w"))
                .with("read", open(&exe, "r"))
                .with("readlink", readlink(&exe))
        })
        .collect();
    Json::obj().with("op", "exes").with("procs", rows)
}

/// CVE-2019-5736 as an attacker inside the container does it: until STOPFILE exists (at most
/// 120 s), grab a read-only fd of /proc/PID/exe of every other process that shows up (pid 1
/// excepted), retrying while it is not dumpable yet. Once all of them are gone (nothing runs the
/// binary: no ETXTBSY), reopen each through /proc/self/fd/N for writing, as the attack does
/// before overwriting it; nothing is written. Reports each grab's identity (st_dev, st_ino) so
/// the host can tell whether it was the runtime's binary.
fn exe_race(stop: &str) -> Json {
    use std::os::unix::fs::MetadataExt;
    let me = std::process::id();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut grabbed: Vec<(u32, String, std::fs::File)> = Vec::new();
    while !std::path::Path::new(stop).exists() && std::time::Instant::now() < deadline {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            break;
        };
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if pid == me || pid == 1 || grabbed.iter().any(|g| g.0 == pid) {
                continue;
            }
            if let Ok(f) = std::fs::File::open(format!("/proc/{pid}/exe")) {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                    .unwrap_or_default();
                grabbed.push((pid, cmdline.trim_end().to_string(), f));
            }
        }
    }
    let rows: Vec<Json> = grabbed
        .iter()
        .map(|(pid, cmdline, f)| {
            let gone = std::time::Instant::now() + Duration::from_secs(10);
            while std::path::Path::new(&format!("/proc/{pid}")).exists()
                && std::time::Instant::now() < gone
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            let fd = std::os::fd::AsRawFd::as_raw_fd(f);
            let meta = f.metadata();
            Json::obj()
                .with("pid", *pid)
                .with("cmdline", cmdline.clone())
                .with("dev", meta.as_ref().map_or(0, |m| m.dev()))
                .with("ino", meta.as_ref().map_or(0, |m| m.ino()))
                .with("target", readlink(&format!("/proc/self/fd/{fd}")))
                .with("reopen", open(&format!("/proc/self/fd/{fd}"), "w"))
        })
        .collect();
    Json::obj().with("op", "exe-race").with("grabbed", rows)
}

/// Creates PATH if missing, chowns it to UID:GID and reports the owner the kernel then shows.
fn chown(path: &str, uid: &str, gid: &str) -> Json {
    use std::os::unix::fs::MetadataExt;
    let mut j = Json::obj().with("op", "chown").with("path", path);
    let (uid, gid) = (uid.parse().ok(), gid.parse().ok());
    let r = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|_| std::os::unix::fs::chown(path, uid, gid))
        .and_then(|()| std::fs::metadata(path))
        .map(|m| {
            j.push("uid", m.uid());
            j.push("gid", m.gid());
        });
    outcome(j, r)
}

/// Named syscalls go through std where it has them; anything else is `syscall NR [ARGS..]`.
fn syscall(name: &str, rest: &[&str]) -> Json {
    let j = Json::obj().with("op", "syscall").with("name", name);
    let arg = |i: usize| rest.get(i).and_then(|a| a.parse::<i64>().ok()).unwrap_or(0);
    let r = match name {
        "mkdir" => {
            let dir = rest.first().map_or_else(
                || format!("/tmp/husk-probe-mkdir-{}", std::process::id()),
                |d| d.to_string(),
            );
            std::fs::create_dir(&dir).and_then(|()| std::fs::remove_dir(&dir))
        }
        "getcwd" => std::env::current_dir().map(drop),
        "chmod" => {
            let path = rest.first().copied().unwrap_or("/tmp");
            std::fs::metadata(path).and_then(|m| std::fs::set_permissions(path, m.permissions()))
        }
        "getpid" => sys::raw_syscall(39, [0; 6]).map(drop),
        // unshare(CLONE_NEWUSER) / (CLONE_NEWNS): common seccomp and userns checks.
        "unshare-user" => sys::raw_syscall(272, [0x1000_0000, 0, 0, 0, 0, 0]).map(drop),
        "unshare-mnt" => sys::raw_syscall(272, [0x0002_0000, 0, 0, 0, 0, 0]).map(drop),
        nr => match nr.parse::<i64>() {
            Ok(nr) => {
                sys::raw_syscall(nr, [arg(0), arg(1), arg(2), arg(3), arg(4), arg(5)]).map(drop)
            }
            Err(_) => Err(io::Error::from_raw_os_error(22)),
        },
    };
    outcome(j, r)
}

/// Runs `cmd` in a new user namespace (mapping root to our ids), mount namespace and pid namespace
/// (as its pid 1), and exits with its status.
fn nest(cmd: &str, rest: &[&str]) -> ExitCode {
    const NEWUSER_NS_PID: i64 = 0x1000_0000 | 0x0002_0000 | 0x2000_0000;
    // getuid(2), getgid(2): the ids our new root maps to.
    let (Ok(uid), Ok(gid)) = (sys::raw_syscall(102, [0; 6]), sys::raw_syscall(104, [0; 6])) else {
        eprintln!("husk-probe: nest: getuid/getgid failed");
        return ExitCode::from(125);
    };
    let setup = sys::raw_syscall(272, [NEWUSER_NS_PID, 0, 0, 0, 0, 0])
        .and_then(|_| std::fs::write("/proc/self/setgroups", "deny"))
        .and_then(|()| std::fs::write("/proc/self/uid_map", format!("0 {uid} 1")))
        .and_then(|()| std::fs::write("/proc/self/gid_map", format!("0 {gid} 1")));
    if let Err(e) = setup {
        eprintln!("husk-probe: nest: {e}");
        return ExitCode::from(125);
    }
    match std::process::Command::new(cmd).args(rest).status() {
        Ok(s) => ExitCode::from(s.code().unwrap_or(128) as u8),
        Err(e) => {
            eprintln!("husk-probe: exec {cmd}: {e}");
            ExitCode::from(127)
        }
    }
}

/// An i386 syscall (`int 0x80`) with integer arguments: what seccomp does on the IA-32 ABI.
fn syscall32(nr: &str, rest: &[&str]) -> Json {
    let arg = |i: usize| rest.get(i).and_then(|a| a.parse::<u32>().ok()).unwrap_or(0);
    let r = sys::syscall_i386(
        nr.parse().unwrap_or(u32::MAX),
        [arg(0), arg(1), arg(2), arg(3), arg(4)],
    );
    outcome(
        Json::obj().with("op", "syscall32").with("nr", nr),
        r.map(drop),
    )
}

/// socket(FAMILY, SOCK_STREAM, 0) through one syscall ABI: `native` (x86_64), `x32` (bit 30 of
/// the number), `i386` (the direct socket syscall, 359) or `socketcall` (i386 socketcall(2)
/// with SYS_SOCKET, whose arguments are in memory). The socket is closed again.
fn socket(family: &str, abi: &str) -> Json {
    let fam: u32 = family.parse().unwrap_or(0);
    let j = Json::obj()
        .with("op", "socket")
        .with("family", fam)
        .with("abi", abi);
    let fd = match abi {
        "native" => sys::raw_syscall(41, [fam.into(), 1, 0, 0, 0, 0]).map(|fd| fd as i32),
        "x32" => {
            sys::raw_syscall(0x4000_0000 + 41, [fam.into(), 1, 0, 0, 0, 0]).map(|fd| fd as i32)
        }
        "i386" => sys::syscall_i386(359, [fam, 1, 0, 0, 0]),
        "socketcall" => sys::low_page().and_then(|page| {
            page[..3].copy_from_slice(&[fam, 1, 0]);
            let args = page.as_ptr() as usize as u32;
            sys::syscall_i386(102, [1, args, 0, 0, 0])
        }),
        _ => Err(io::Error::from_raw_os_error(22)),
    };
    outcome(j, fd.map(sys::close_fd))
}

/// Allocates and touches `mb` MiB, one MiB at a time, so a memory limit triggers the OOM killer.
fn alloc(mb: usize) {
    let mut hold: Vec<Vec<u8>> = Vec::with_capacity(mb);
    for i in 0..mb {
        // Non-zero fill: every page is really written, not left as the shared zero page.
        hold.push(vec![(i % 251 + 1) as u8; 1 << 20]);
    }
    print(
        &Json::obj()
            .with("op", "alloc")
            .with("allocated_mb", hold.len()),
    );
}

/// Starts `n` children (`husk-probe sleep 60`) and reports how many started and the first error
/// (EAGAIN under a pids limit); then kills and reaps them.
fn fork(n: usize) -> Json {
    let exe = std::env::current_exe().unwrap_or_else(|_| "/bin/husk-probe".into());
    let mut children = Vec::new();
    let mut err = Ok(());
    for _ in 0..n {
        match std::process::Command::new(&exe)
            .args(["sleep", "60"])
            .spawn()
        {
            Ok(c) => children.push(c),
            Err(e) => {
                err = Err(e);
                break;
            }
        }
    }
    let started = children.len();
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    outcome(
        Json::obj()
            .with("op", "fork")
            .with("requested", n)
            .with("started", started),
        err,
    )
}
