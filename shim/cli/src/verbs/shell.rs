//! `husk shell IMAGE`: an interactive shell in an image (a terminal when stdin is one), PS1 set to
//! "Husk> ". Everything else is the launcher's `run` ([`super::launch`]). `husk shell
//! instance://NAME`: the same shell exec'd into a running instance ([`super::exec`]).

use super::launch::{self, LaunchFlags};
use crate::cli::Global;
use clap::Args;
use std::io::IsTerminal;

#[derive(Debug, Args)]
pub struct ShellArgs {
    /// Shell to run inside
    #[arg(short, long, value_name = "PATH", default_value = "/bin/sh")]
    pub shell: String,
    /// Set a variable inside (repeatable)
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Allocate a pseudo-TTY even when stdin is not a terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Image: a rootfs directory such as ./rootfs, or docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE; or instance://NAME for a shell in a running instance
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Nothing, but the IMAGE after `--ipc host` (see [`launch::ipc_mode_from`])
    #[arg(hide = true)]
    pub rest: Vec<String>,
    #[command(flatten)]
    pub launch: LaunchFlags,
}

pub fn run(g: &Global, mut a: ShellArgs) -> anyhow::Result<i32> {
    let mut words = vec![std::mem::take(&mut a.image)];
    words.append(&mut a.rest);
    launch::ipc_mode_from(&mut a.launch, &mut words);
    if let Some(extra) = words.get(1) {
        return Err(super::usage(format!(
            "shell: unexpected argument {extra:?}"
        )));
    }
    a.image = words.remove(0);
    let tty = a.tty || std::io::stdin().is_terminal();
    if husk_launcher::instance::from_uri(&a.image).is_some() {
        launch::reject_for_id("shell", &a.image, &a.launch)?;
        let mut env = vec![format!("PS1={}", husk_launcher::env::PS1)];
        env.extend(a.env);
        let exec = super::exec::ExecArgs {
            tty,
            env,
            id: a.image,
            command: vec![a.shell],
            ..Default::default()
        };
        return super::exec::run(g, exec);
    }
    launch::run(
        g,
        launch::Request {
            verb: husk_launcher::Verb::Shell {
                shell: Some(a.shell),
            },
            image: a.image,
            flags: a.launch,
            env: a.env,
            tty,
            engine: Default::default(),
        },
    )
}
