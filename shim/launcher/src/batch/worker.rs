//! A finished worker, read. Each job runs in `husk batch-job`, which prints its sandbox record on
//! stdout and logs JSON lines on stderr; [`worker_log`] sorts the log into what to show and the
//! job's error, [`worker_result`] makes the job's [`Status`] and result line. The batch's scratch
//! tree is named after its launch id ([`scratch_name`]), so that a later batch can tell whose a
//! leftover tree was ([`scratch_owner`]).
//!
//! Pure: nothing here touches the system.

use super::{result_line, Status};
use serde_json::{Map, Value};

/// One record of a worker's log that is not its error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogLine {
    /// Shown as a warning of the batch (each text once per batch: the caller's to track).
    Warning(String),
    /// Any other level: debug output of the batch.
    Other(String),
}

/// A worker's log, read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerLog {
    /// Its error, which belongs in the result line: its last error record, else the first line
    /// that is not a record (a usage error says it first).
    pub error: Option<String>,
    /// The other records, in order.
    pub shown: Vec<LogLine>,
}

/// Reads a worker's stderr (husk's log with `--log-format json`).
pub fn worker_log(log: &str) -> WorkerLog {
    let mut errors = Vec::new();
    let mut other = None;
    let mut shown = Vec::new();
    for l in log.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<Value>(l) else {
            other.get_or_insert_with(|| l.to_string());
            continue;
        };
        let msg = v["msg"].as_str().unwrap_or(l).to_string();
        match v["level"].as_str() {
            Some("error") => errors.push(msg),
            Some("warning") => shown.push(LogLine::Warning(msg)),
            _ => shown.push(LogLine::Other(msg)),
        }
    }
    WorkerLog {
        error: errors.pop().or(other),
        shown,
    }
}

/// A finished job: how it counts, its result line, its `wall_ms` when it has a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub status: Status,
    pub line: String,
    pub wall_ms: Option<u64>,
}

/// The result of job `id` from its worker's stdout `out`: the record when it printed one; else
/// `error` (from its log) or, failing that, how the worker `exited`. A job the batch passed a
/// signal to (`signalled`) counts as interrupted unless it passed.
pub fn worker_result(
    id: &Value,
    out: &[u8],
    signalled: bool,
    error: Option<String>,
    exited: &str,
) -> Finished {
    let record = match serde_json::from_slice::<Value>(out) {
        Ok(Value::Object(m)) if m.contains_key("exit_code") => Some(m),
        _ => None,
    };
    match record {
        Some(rec) => {
            let status = match Status::of(&rec) {
                Status::Passed => Status::Passed,
                _ if signalled => Status::Interrupted,
                s => s,
            };
            let wall_ms = rec.get("wall_ms").and_then(Value::as_u64);
            Finished {
                status,
                line: result_line(id, status, None, Some(rec)),
                wall_ms,
            }
        }
        None => {
            let why = error.unwrap_or_else(|| format!("husk batch-job: {exited}"));
            let status = if signalled {
                Status::Interrupted
            } else {
                Status::Error
            };
            Finished {
                status,
                line: result_line(id, status, Some(&why), None::<Map<String, Value>>),
                wall_ms: None,
            }
        }
    }
}

/// The scratch tree (under the launch base) of the batch whose launch id is `id`.
pub fn scratch_name(id: &str) -> String {
    format!("batch-{id}")
}

/// The pid of the batch that made scratch tree `name` (`batch-husk-<pid>-<hex>`), if it is one.
pub fn scratch_owner(name: &str) -> Option<u32> {
    name.strip_prefix("batch-husk-")
        .and_then(|r| r.split('-').next())
        .and_then(|p| p.parse::<u32>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_log_gives_the_error_and_what_to_show() {
        let log = "usage: bad flag\n\n{\"level\":\"warning\",\"msg\":\"w\"}\n\
                   {\"level\":\"error\",\"msg\":\"e1\"}\n{\"level\":\"debug\",\"msg\":\"d\"}\n\
                   {\"level\":\"error\",\"msg\":\"e2\"}\n";
        let l = worker_log(log);
        assert_eq!(l.error.as_deref(), Some("e2"));
        assert_eq!(
            l.shown,
            [LogLine::Warning("w".into()), LogLine::Other("d".into())]
        );
        let l = worker_log("usage: bad flag\nmore\n{\"level\":\"info\"}\n");
        assert_eq!(l.error.as_deref(), Some("usage: bad flag"));
        assert_eq!(l.shown, [LogLine::Other("{\"level\":\"info\"}".into())]);
    }

    #[test]
    fn a_record_decides_unless_there_is_none() {
        let id = json!("a");
        let rec = br#"{"exit_code":1,"timed_out":false,"oom_killed":false,"wall_ms":12}"#;
        let f = worker_result(&id, rec, false, None, "exit status: 1");
        assert_eq!((f.status, f.wall_ms), (Status::Failed, Some(12)));
        assert!(f
            .line
            .starts_with(r#"{"id":"a","status":"failed","exit_code":1"#));
        let f = worker_result(&id, rec, true, None, "exit status: 1");
        assert_eq!(f.status, Status::Interrupted);
        let passed = br#"{"exit_code":0}"#;
        assert_eq!(
            worker_result(&id, passed, true, None, "").status,
            Status::Passed
        );
        let f = worker_result(&id, b"", false, None, "signal: 9 (SIGKILL)");
        assert_eq!((f.status, f.wall_ms), (Status::Error, None));
        assert!(f
            .line
            .contains(r#""error":"husk batch-job: signal: 9 (SIGKILL)""#));
        let f = worker_result(&id, b"{}", true, Some("no image".into()), "");
        assert_eq!(f.status, Status::Interrupted);
        assert!(f.line.contains(r#""error":"no image""#));
    }

    #[test]
    fn scratch_trees_name_their_batch() {
        let name = scratch_name("husk-42-0badcafe");
        assert_eq!(name, "batch-husk-42-0badcafe");
        assert_eq!(scratch_owner(&name), Some(42));
        assert_eq!(scratch_owner("husk-42-0badcafe"), None);
        assert_eq!(scratch_owner("batch-husk-x-1"), None);
    }
}
