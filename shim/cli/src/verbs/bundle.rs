//! `husk bundle IMAGE DIR`: write the bundle `husk run IMAGE` would run (DIR/config.json, the
//! session root DIR/rootfs, DIR/passwd, DIR/group), for `husk run --bundle DIR ID` or runc. The
//! config names host paths ($HOME, the cwd, the image) as they are now.

use super::launch::{self, LaunchFlags};
use super::usage;
use crate::cli::Global;
use crate::supervise::launch::{plan, Failed};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(trailing_var_arg = true)]
pub struct BundleArgs {
    /// Set a variable inside (repeatable)
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Give the process a pseudo-TTY (process.terminal)
    #[arg(short, long)]
    pub tty: bool,
    /// Image: a rootfs directory such as ./rootfs, or docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Bundle directory to create (must not exist)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Arguments replacing the image's cmd
    #[arg(allow_hyphen_values = true, value_name = "ARGS")]
    pub args: Vec<String>,
    #[command(flatten)]
    pub launch: LaunchFlags,
}

pub fn run(g: &Global, mut a: BundleArgs) -> anyhow::Result<i32> {
    if a.launch.ipc.as_deref() == Some("") {
        let mut words = vec![std::mem::take(&mut a.image), a.dir.display().to_string()];
        words.append(&mut a.args);
        launch::ipc_mode_from(&mut a.launch, &mut words);
        if words.len() > 1 {
            a.image = words.remove(0);
            a.dir = PathBuf::from(words.remove(0));
            a.args = words;
        } else {
            a.image = words.remove(0);
        }
    }
    if a.launch.sandbox.sandbox {
        // The preset is a config plus a supervisor (timeout, output caps, record): run it.
        return Err(usage("bundle: --sandbox applies to run and exec"));
    }
    if a.dir.exists() {
        return Err(usage(format!("bundle: {} exists", a.dir.display())));
    }
    let dir = std::path::absolute(&a.dir).context("bundle directory")?;
    let req = launch::Request {
        verb: husk_launcher::Verb::Run { args: a.args },
        image: a.image.clone(),
        flags: a.launch,
        env: a.env,
        tty: a.tty,
        engine: Default::default(),
    };
    let (_, l) = plan(g, &req, &dir)?;
    if req.flags.dry_run {
        print!("{}", l.config_json());
        return Ok(0);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    l.write(&dir).context(Failed(a.image))?;
    Ok(0)
}
