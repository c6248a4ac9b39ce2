//! `husk events`: resource statistics (runc's JSON) every interval, and OOM events, until the
//! container stops; `--stats` prints one statistics record.

use super::{open, usage};
use crate::cli::Global;
use clap::Args;
use husk_runtime::state::Status;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Print one statistics record and exit
    #[arg(long)]
    pub stats: bool,
    /// Time between statistics records, e.g. 5s, 500ms, 1m
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// Container id
    pub id: String,
}

pub fn parse_duration(s: &str) -> Option<Duration> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

/// One event line, keys in runc's order (`{"type":..,"id":..,"data":..}`): tools match on the
/// line's start, and serde_json's maps would sort the keys.
#[derive(serde::Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<serde_json::Value>,
}

fn event(kind: &str, id: &str, data: Option<serde_json::Value>) -> String {
    serde_json::to_string(&Event { kind, id, data }).unwrap_or_default()
}

pub fn run(g: &Global, a: EventsArgs) -> anyhow::Result<i32> {
    let interval = parse_duration(&a.interval)
        .ok_or_else(|| usage(format!("invalid --interval {:?}", a.interval)))?;
    let (_, c) = open(g, &a.id)?;
    let rec = c.record()?;
    let cg = &rec.cgroup;
    if !cg.is_enabled() {
        anyhow::bail!("events for container {}: it runs without a cgroup", a.id);
    }
    if a.stats {
        println!("{}", event("stats", &a.id, Some(cg.stats()?)));
        return Ok(0);
    }
    let tick = interval.min(Duration::from_millis(200));
    let mut ooms = cg.oom_kills().unwrap_or(0);
    let mut next_stats = Instant::now();
    while c.status() != Status::Stopped {
        let now = Instant::now();
        if now >= next_stats {
            println!("{}", event("stats", &a.id, Some(cg.stats()?)));
            next_stats = now + interval;
        }
        let n = cg.oom_kills().unwrap_or(ooms);
        if n > ooms {
            println!("{}", event("oom", &a.id, None));
            ooms = n;
        }
        std::thread::sleep(tick);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_in_runc_order() {
        let line = event("stats", "c1", Some(serde_json::json!({"b": 1, "a": 2})));
        assert_eq!(line, r#"{"type":"stats","id":"c1","data":{"a":2,"b":1}}"#);
        assert_eq!(event("oom", "c1", None), r#"{"type":"oom","id":"c1"}"#);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("5x"), None);
    }
}
