//! `husk shell IMAGE`: an interactive shell in an image (a terminal when stdin is one), PS1 set to
//! "Husk> ". Everything else is the launcher's `run` ([`super::launch`]).

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
    /// Image: a rootfs directory such as ./rootfs, or docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE
    #[arg(value_name = "IMAGE")]
    pub image: String,
    #[command(flatten)]
    pub launch: LaunchFlags,
}

pub fn run(g: &Global, a: ShellArgs) -> anyhow::Result<i32> {
    launch::run(
        g,
        launch::Request {
            verb: husk_launcher::Verb::Shell {
                shell: Some(a.shell),
            },
            image: a.image,
            flags: a.launch,
            env: a.env,
            tty: a.tty || std::io::stdin().is_terminal(),
            engine: Default::default(),
        },
    )
}
