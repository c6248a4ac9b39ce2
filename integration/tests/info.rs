//! Verbs that need no container: `--version`, `features`, `spec`; and `list -q`.

use crate::both;
use crate::harness::Ctx;
use std::fs;

both!(
    version_prints_three_lines,
    features_reports_oci_versions,
    spec_refuses_to_overwrite,
    list_short_quiet_flag,
);

/// husk-specific: `husk version X`, `commit: ...`, `spec: ...` (runc adds `go:` and
/// `libseccomp:` lines and says `runc version`, so this case fails against runc by design).
fn version_prints_three_lines(t: &Ctx) {
    let out = t.rt(&["--version"]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("husk version "), "{out}");
    assert!(lines[1].starts_with("commit:"), "{out}");
    assert!(lines[2].starts_with("spec:"), "{out}");
}

fn features_reports_oci_versions(t: &Ctx) {
    let out = t.rt(&["features"]).ok();
    let v = out.json();
    assert!(
        v["ociVersionMin"]
            .as_str()
            .is_some_and(|s| s.starts_with("1.")),
        "{out}"
    );
    assert!(v["ociVersionMax"].is_string(), "{out}");
    assert!(
        v["hooks"].as_array().is_some_and(|h| !h.is_empty()),
        "{out}"
    );
}

fn spec_refuses_to_overwrite(t: &Ctx) {
    let dir = t.mkdir(&t.dir.join("spec"));
    let d = dir.to_str().unwrap();
    t.rt(&["spec", "--bundle", d]).ok();
    let path = dir.join("config.json");
    let first = fs::read_to_string(&path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert!(v["ociVersion"].is_string(), "{first}");
    assert!(v["process"]["args"].is_array(), "{first}");
    t.rt(&["spec", "--bundle", d]).fails();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        first,
        "config.json rewritten"
    );
}

fn list_short_quiet_flag(t: &Ctx) {
    let id = t.create(&t.bundle().probe(&["sleep", "600"]), "lq");
    let out = t.rt(&["list", "-q"]).ok();
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        [id.as_str()],
        "{out}"
    );
    t.rt(&["delete", "--force", &id]).ok();
    assert_eq!(t.rt(&["list", "-q"]).ok().stdout, "");
    assert!(t.list_ids().is_empty());
}
