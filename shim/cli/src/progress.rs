//! A one-line import progress bar on stderr, drawn only when stderr is a terminal (so logs, pipes
//! and tests stay clean). Redrawn when the percentage changes; the line is ended on drop.

use std::cell::Cell;
use std::io::{IsTerminal, Write};

pub struct Bar {
    on: bool,
    /// (layer index, percent) last drawn; `None` before the first draw.
    last: Cell<Option<(usize, u64)>>,
}

impl Bar {
    pub fn new() -> Self {
        Bar {
            on: std::io::stderr().is_terminal(),
            last: Cell::new(None),
        }
    }

    pub fn report(&self, p: &husk_image::Progress) {
        if !self.on {
            return;
        }
        let pct = (p.done * 100).checked_div(p.total).unwrap_or(100).min(100);
        if self.last.get() == Some((p.index, pct)) {
            return;
        }
        self.last.set(Some((p.index, pct)));
        let hex = p.layer.hex();
        let filled = (pct / 5) as usize;
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[Klayer {}/{} {} [{}{}] {pct:>3}% {}",
            p.index + 1,
            p.count,
            &hex[..hex.len().min(12)],
            "#".repeat(filled),
            " ".repeat(20 - filled),
            size(p.total),
        );
        let _ = err.flush();
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if self.last.get().is_some() {
            eprintln!();
        }
    }
}

fn size(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// `husk batch`'s line: jobs done of total, running, not passed, elapsed time. Drawn only when
/// stderr is a terminal; [`Counter::clear`] before anything else is written to stderr.
pub struct Counter {
    on: bool,
    total: usize,
    start: std::time::Instant,
    drawn: bool,
}

impl Counter {
    pub fn new(total: usize, on: bool) -> Self {
        Counter {
            on,
            total,
            start: std::time::Instant::now(),
            drawn: false,
        }
    }

    pub fn draw(&mut self, done: usize, running: usize, failed: usize) {
        if !self.on {
            return;
        }
        let filled = (done * 20).checked_div(self.total).unwrap_or(20).min(20);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[K[{}{}] {done}/{} done, {running} running, {failed} failed, {}s",
            "#".repeat(filled),
            " ".repeat(20 - filled),
            self.total,
            self.start.elapsed().as_secs(),
        );
        let _ = err.flush();
        self.drawn = true;
    }

    pub fn clear(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[K");
            self.drawn = false;
        }
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.clear();
    }
}
