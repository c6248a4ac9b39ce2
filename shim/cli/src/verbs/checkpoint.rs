//! `husk checkpoint` and `husk restore`: runc's CRIU verbs, which husk does not implement. They
//! exist (hidden) so that a caller gets a plain "not supported" naming what it asked for, and
//! `-h`, instead of an unknown-verb usage error.

use clap::Args;

#[derive(Debug, Args)]
pub struct CriuArgs {
    /// runc's flags and the container id (not acted on)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

pub fn run(verb: &str, a: CriuArgs) -> anyhow::Result<i32> {
    anyhow::bail!(
        "{verb} {}: not supported (husk has no CRIU integration)",
        a.args.join(" ")
    )
}
