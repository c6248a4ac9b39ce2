//! `husk`: the flag table (defined once, here and in verbs/), logging, exit codes. Every verb is a
//! thin file that calls the engine in husk-runtime (or husk-launcher); the launcher verbs hand
//! their request to supervise/, which runs and watches the launch.

mod cli;
mod logger;
#[cfg(test)]
mod man;
mod progress;
mod supervise;
mod tty;
mod verbs;

use clap::{CommandFactory, FromArgMatches};

fn main() {
    std::process::exit(run(parse()));
}

/// `Cli::parse()`, minus freeing clap's tables: the process exits (or execs) soon after.
fn parse() -> cli::Cli {
    let mut cmd = cli::Cli::command();
    if std::env::args_os().any(|a| a == "-h" || a == "--help" || a == "help") {
        cmd = runc_help_layout(cmd);
    }
    let parsed = cmd
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|mut m| {
            let args = cli::Cli::from_arg_matches_mut(&mut m);
            std::mem::forget(m);
            args
        })
        .map_err(|e| e.format(&mut cmd));
    let args = parsed.unwrap_or_else(|e| {
        // runc's (urfave/cli's) line for an unknown verb, which its callers' scripts look for.
        if let Some(clap::error::ContextValue::String(verb)) =
            e.get(clap::error::ContextKind::InvalidSubcommand)
        {
            eprintln!("No help topic for '{verb}'");
        }
        e.exit()
    });
    std::mem::forget(cmd);
    args
}

/// Help laid out as runc's: a NAME section first ("runc - Open Container Initiative runtime",
/// "runc exec - ..."), which tools and runc's test suite read from `-h`. Only for a help request:
/// setting it on every verb costs a little on every call.
fn runc_help_layout(cmd: clap::Command) -> clap::Command {
    let bin = std::env::args_os()
        .next()
        .map(|a| {
            let p = std::path::PathBuf::from(a);
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_else(|| "husk".into());
    let rest = "{usage-heading} {usage}\n\n{all-args}{after-help}";
    let top = format!(
        "NAME:\n   {bin} - Open Container Initiative runtime\n\n{{about-with-newline}}\n{rest}"
    );
    cmd.help_template(top).mut_subcommands(|sub| {
        let verb = format!("NAME:\n   {bin} {} - {{about}}\n\n{rest}", sub.get_name());
        sub.help_template(verb)
    })
}

fn run(args: cli::Cli) -> i32 {
    if args.global.version {
        print!("{}", verbs::features::version_text());
        return 0;
    }
    let logger = match logger::Logger::init(
        args.global.log.as_deref(),
        args.global.log_format,
        args.global.debug,
    ) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("husk: {e:#}");
            return 1;
        }
    };
    let Some(cmd) = args.command else {
        let _ = cli::Cli::command().print_help();
        return 2;
    };
    // runc exits 255 when exec itself fails, so callers can tell it from the process's own status.
    let failure_code = if matches!(cmd, cli::Command::Exec(_)) {
        255
    } else {
        1
    };
    match verbs::dispatch(&args.global, cmd).map_err(reexec_if_not_sealed) {
        Ok(code) => code,
        Err(e) => {
            let msg = one_line(&e);
            log::error!("{msg}");
            if logger.to_file() || args.global.log_format == logger::Format::Json {
                eprintln!("husk: {msg}");
            }
            if e.downcast_ref::<verbs::UsageError>().is_some() {
                2
            } else if e.downcast_ref::<supervise::launch::Failed>().is_some() {
                255
            } else {
                failure_code
            }
        }
    }
}

/// A container that may ptrace husk's processes (CAP_SYS_PTRACE without a user namespace) needs
/// husk to run from a sealed copy of its binary (CVE-2019-5736): the engine refused before doing
/// anything; run the same command again from such a copy. Returns only when that fails.
fn reexec_if_not_sealed(e: anyhow::Error) -> anyhow::Error {
    use husk_runtime::container::ContainerError;
    let not_sealed = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<ContainerError>(),
            Some(ContainerError::NotSealed)
        )
    });
    if !not_sealed {
        return e;
    }
    log::debug!("running again from a sealed copy of the husk binary");
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some((path, data)) = verbs::exec::PROCESS_READ_ONCE.get() {
        replay_process_file(&mut argv, path, data);
    }
    let errno = husk_runtime::process::exec_stub::reexec_sealed(&argv);
    e.context(format!("run husk from a sealed copy of itself: {errno}"))
}

/// `exec -p FILE` where FILE was a pipe, now drained: the run from the sealed copy reads the same
/// bytes from a memfd (inherited, no CLOEXEC) named in FILE's place.
fn replay_process_file(argv: &mut [std::ffi::OsString], path: &std::path::Path, data: &[u8]) {
    use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
    use std::os::fd::IntoRawFd;
    let Ok(fd) = memfd_create(c"husk-process", MemFdCreateFlag::empty()) else {
        return;
    };
    let mut file = std::fs::File::from(fd);
    if std::io::Write::write_all(&mut file, data).is_err() {
        return;
    }
    let replay = format!("/proc/self/fd/{}", file.into_raw_fd());
    let long = format!("--process={}", path.display());
    for a in argv.iter_mut() {
        if a.as_os_str() == path.as_os_str() {
            *a = replay.clone().into();
        } else if *a == *long {
            *a = format!("--process={replay}").into();
        }
    }
}

/// The error chain on one line. Engine errors already embed their cause in their message, so a link
/// whose text the previous link ends with is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for link in e.chain() {
        let text = link.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
