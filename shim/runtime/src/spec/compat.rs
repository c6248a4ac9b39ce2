//! What a strict parse of config.json refuses but the runtime spec allows (or runc accepts), put
//! right before a second parse. Only taken when the direct parse fails, so a config without
//! these pays nothing.
//!
//! - Capability names the `oci-spec` crate (or this kernel) does not know: the spec (1.1) says a
//!   runtime must log a warning and go on, not fail; they are dropped, with one warning in runc's
//!   words (`ignoring unknown or unavailable capabilities: [A B]`, which tools match on).
//! - `process.scheduler.flags` as the spec spells them (`SCHED_FLAG_RESET_ON_FORK`), where the
//!   crate expects `SCHED_RESET_ON_FORK`.

use oci_spec::runtime::{Capability, Spec};
use serde_json::Value;

const CAP_SETS: [&str; 5] = [
    "bounding",
    "effective",
    "inheritable",
    "permitted",
    "ambient",
];

/// The spec from `raw` after [the fixes](self), with one warning per dropped name; None when the
/// failure was not one of them (the caller reports the original error).
pub fn reparse(raw: &[u8]) -> Option<(Spec, Vec<String>)> {
    let mut config: Value = serde_json::from_slice(raw).ok()?;
    let mut unknown = std::collections::BTreeSet::new();
    let process = &mut config["process"];
    if let Some(sets) = process
        .get_mut("capabilities")
        .and_then(Value::as_object_mut)
    {
        for set in CAP_SETS {
            let Some(names) = sets.get_mut(set).and_then(Value::as_array_mut) else {
                continue;
            };
            names.retain(|n| {
                let known = serde_json::from_value::<Capability>(n.clone()).is_ok();
                if !known {
                    unknown.insert(n.as_str().map_or_else(|| n.to_string(), str::to_string));
                }
                known
            });
        }
    }
    if let Some(flags) = process
        .pointer_mut("/scheduler/flags")
        .and_then(Value::as_array_mut)
    {
        for f in flags.iter_mut() {
            if f == "SCHED_FLAG_RESET_ON_FORK" {
                *f = Value::from("SCHED_RESET_ON_FORK");
            }
        }
    }
    let spec = serde_json::from_value(config).ok()?;
    let warnings = match unknown.is_empty() {
        true => Vec::new(),
        false => vec![format!(
            "ignoring unknown or unavailable capabilities: [{}]",
            unknown.into_iter().collect::<Vec<_>>().join(" ")
        )],
    };
    Some((spec, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_caps_dropped_and_spec_flag_spelled() {
        let raw = serde_json::json!({
            "ociVersion": "1.1.0",
            "process": {
                "user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["sh"],
                "capabilities": {"bounding": ["CAP_KILL", "CAP_NO_SUCH_THING"], "effective": ["CAP_KILL"]},
                "scheduler": {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_RESET_ON_FORK"]}
            }
        });
        let raw = serde_json::to_vec(&raw).unwrap();
        assert!(serde_json::from_slice::<Spec>(&raw).is_err());
        let (spec, warnings) = reparse(&raw).unwrap();
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .clone()
            .unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 1);
        assert_eq!(
            warnings,
            ["ignoring unknown or unavailable capabilities: [CAP_NO_SUCH_THING]"]
        );
    }

    #[test]
    fn other_errors_stay_errors() {
        assert!(reparse(br#"{"ociVersion": 5}"#).is_none());
        assert!(reparse(b"{").is_none());
    }
}
