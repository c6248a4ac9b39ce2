//! The `log` backend: text or JSON lines (`{"level","msg","time"}`) to stderr or `--log FILE`.
//! containerd shows users the last `"level":"error"` record of the log file.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

static INSTALLED: OnceLock<&'static Logger> = OnceLock::new();

/// Sends records that would go to stderr to `w` instead, returning the writer they went to; None
/// (and `w` dropped) when records go to a --log file or no logger is installed. The sandbox uses it
/// while its pipes sit on fd 2, so husk's records never land in the program's stderr.
pub fn swap_stderr(w: Box<dyn Write + Send>) -> Option<Box<dyn Write + Send>> {
    let l = INSTALLED.get().filter(|l| !l.to_file)?;
    let mut out = l.out.lock().unwrap_or_else(|e| e.into_inner());
    Some(std::mem::replace(&mut *out, w))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub struct Logger {
    format: Format,
    out: Mutex<Box<dyn Write + Send>>,
    level: log::LevelFilter,
    to_file: bool,
}

impl Logger {
    /// Installs the logger. `file` is opened for append (created if missing).
    pub fn init(
        file: Option<&std::path::Path>,
        format: Format,
        debug: bool,
    ) -> anyhow::Result<&'static Logger> {
        let (out, to_file): (Box<dyn Write + Send>, bool) = match file {
            Some(p) => (
                Box::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)
                        .map_err(|e| anyhow::anyhow!("open log file {}: {e}", p.display()))?,
                ),
                true,
            ),
            None => (Box::new(std::io::stderr()), false),
        };
        let level = if debug {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Warn
        };
        let logger: &'static Logger = Box::leak(Box::new(Logger {
            format,
            out: Mutex::new(out),
            level,
            to_file,
        }));
        log::set_logger(logger).map_err(|e| anyhow::anyhow!("install logger: {e}"))?;
        let _ = INSTALLED.set(logger);
        log::set_max_level(level);
        Ok(logger)
    }

    /// Whether records go to a file (then errors are also printed plainly on stderr).
    pub fn to_file(&self) -> bool {
        self.to_file
    }
}

fn level_name(l: log::Level) -> &'static str {
    match l {
        log::Level::Error => "error",
        log::Level::Warn => "warning",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "trace",
    }
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= self.level
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let time = husk_runtime::state::now_rfc3339();
        let msg = r.args().to_string();
        let line = match self.format {
            Format::Json => serde_json::json!({
                "level": level_name(r.level()),
                "msg": msg,
                "time": time,
            })
            .to_string(),
            Format::Text => format!(
                "time=\"{time}\" level={} msg={:?}",
                level_name(r.level()),
                msg
            ),
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{line}");
        }
    }

    fn flush(&self) {
        if let Ok(mut out) = self.out.lock() {
            let _ = out.flush();
        }
    }
}
