//! `husk kill`: send a signal (name or number; default SIGTERM).

use super::{context_id, open};
use crate::cli::Global;
use clap::Args;
use nix::sys::signal::Signal;
use std::str::FromStr;

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Send the signal to every process of the container
    #[arg(short, long)]
    pub all: bool,
    /// Container id
    pub id: String,
    /// Signal: KILL, SIGKILL, kill or 9 (0: only check that the init is alive)
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

/// Parses runc's signal forms: a number, or a name with or without SIG, any case.
pub fn parse_signal(s: &str) -> Option<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    Signal::from_str(&name).ok()
}

pub fn run(g: &Global, a: KillArgs) -> anyhow::Result<i32> {
    // 0: no signal, only the checks (is the init alive?), as kill(1) and runc take it.
    let sig = match a.signal.as_str() {
        "0" => None,
        s => Some(parse_signal(s).ok_or_else(|| {
            anyhow::anyhow!("kill container {}: unknown signal {:?}", a.id, a.signal)
        })?),
    };
    let (_, c) = open(g, &a.id)?;
    context_id(husk_runtime::container::kill(&c, sig, a.all), "kill", &a.id)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_forms() {
        for s in ["9", "KILL", "SIGKILL", "kill", "sigkill"] {
            assert_eq!(parse_signal(s), Some(Signal::SIGKILL), "{s}");
        }
        assert_eq!(parse_signal("hup"), Some(Signal::SIGHUP));
        for bad in ["SIGNOPE", "0x9", "", "999"] {
            assert_eq!(parse_signal(bad), None, "{bad}");
        }
    }
}
