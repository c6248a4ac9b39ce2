//! User namespaces with an id range: container 0 → the test user, 1..=65536 → 200000.. from
//! /etc/subuid and /etc/subgid. Rootless, one process cannot write such a map itself: the runtime
//! must go through newuidmap/newgidmap. As root it writes the map directly.

use crate::both;
use crate::harness::{host, skip, strings, Ctx};
use serde_json::json;
use std::fs;
use std::io::Write;
use std::sync::Mutex;

both!(uid_range_map_allows_chown);

pub(crate) const FIRST: u32 = 200_000;
pub(crate) const COUNT: u32 = 65_536;

/// Adds `USER:200000:65536` to /etc/subuid and /etc/subgid when missing (root only; idempotent,
/// serialised across the test threads). Returns false when the ranges are missing and cannot be
/// added.
pub(crate) fn ensure_subids() -> bool {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap();
    let user = std::env::var("HUSK_TEST_USER").unwrap_or_else(|_| "tuser".into());
    let line = format!("{user}:{FIRST}:{COUNT}");
    for path in ["/etc/subuid", "/etc/subgid"] {
        let text = fs::read_to_string(path).unwrap_or_default();
        if text.lines().any(|l| l.trim() == line) {
            continue;
        }
        if host().euid != 0 {
            return false;
        }
        let mut f = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap();
        let sep = if text.is_empty() || text.ends_with('\n') {
            ""
        } else {
            "\n"
        };
        writeln!(f, "{sep}{line}").unwrap();
    }
    true
}

fn uid_range_map_allows_chown(t: &Ctx) {
    if !ensure_subids() {
        return skip("no tuser:200000:65536 in /etc/subuid and /etc/subgid (add as root)");
    }
    // Container root is the test user in both modes (root mode adds a user namespace).
    let (uid, gid) = host().user.as_ref().map(|u| (u.0, u.1)).unwrap();
    let caps = json!(["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER"]);
    let bundle = |args: &[&str]| {
        t.bundle()
            .set(
                "/linux/uidMappings",
                json!([{"containerID": 0, "hostID": uid, "size": 1},
                       {"containerID": 1, "hostID": FIRST, "size": COUNT}]),
            )
            .set(
                "/linux/gidMappings",
                json!([{"containerID": 0, "hostID": gid, "size": 1},
                       {"containerID": 1, "hostID": FIRST, "size": COUNT}]),
            )
            .set(
                "/process/capabilities",
                json!({"bounding": caps, "effective": caps, "permitted": caps}),
            )
            .edit(|c| {
                let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
                if !ns.iter().any(|n| n["type"] == "user") {
                    ns.push(json!({"type": "user"}));
                }
                c["mounts"].as_array_mut().unwrap().push(json!({
                    "destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "nodev", "mode=1777", "size=1m"]
                }));
            })
            .probe(args)
    };
    let run = |args: &[&str]| {
        let id = t.id("range");
        let dir = t.write(&bundle(args));
        t.rt(&["run", "--bundle", dir.to_str().unwrap(), &id])
            .ok()
            .probe()
    };
    let p = run(&[]);
    assert_eq!(
        strings(p.get("uid_map")),
        [format!("0 {uid} 1"), format!("1 {FIRST} {COUNT}")],
        "uid_map"
    );
    assert_eq!(
        strings(p.get("gid_map")),
        [format!("0 {gid} 1"), format!("1 {FIRST} {COUNT}")],
        "gid_map"
    );
    let r = run(&["chown", "/tmp/owned", "1000", "1000"]);
    assert_eq!(r.get("ok"), true, "{}", r.0);
    assert_eq!(r.get("uid"), 1000, "{}", r.0);
    assert_eq!(r.get("gid"), 1000, "{}", r.0);
}
