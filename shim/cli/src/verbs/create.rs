//! `husk create`: set the container up; its process waits for `husk start`.

use super::{context_id, options, warn_all};
use crate::cli::Global;
use clap::Args;
use husk_runtime::container::{create, CreateMode};
use husk_runtime::CreateOptions;
use std::path::PathBuf;

/// Flags shared by create and run.
#[derive(Debug, Args)]
pub struct BundleArgs {
    /// Path to the bundle directory (config.json and the rootfs) [default: .]
    #[arg(short, long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// Write the container process's pid to FILE
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master (SCM_RIGHTS) when process.terminal is true
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Pass N extra fds (3 .. 3+N-1) to the container process
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    /// Use MS_MOVE + chroot instead of pivot_root (for ramdisk roots)
    #[arg(long)]
    pub no_pivot: bool,
    /// Keep the caller's session keyring instead of a new one
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Container id (run: or an IMAGE, a path such as ./rootfs, for the launcher)
    pub id: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub b: BundleArgs,
}

impl BundleArgs {
    pub fn engine(&self) -> CreateOptions {
        CreateOptions {
            bundle: self.bundle.clone().unwrap_or_else(|| PathBuf::from(".")),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            preserve_fds: self.preserve_fds,
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            reset_cpu_affinity: true,
            die_with_parent: false,
        }
    }
}

pub fn run(g: &Global, a: CreateArgs) -> anyhow::Result<i32> {
    let opts = options(g)?;
    let created = context_id(
        create(&opts, &a.b.id, &a.b.engine(), CreateMode::Create),
        "create",
        &a.b.id,
    )?;
    warn_all(&created.warnings);
    Ok(0)
}
