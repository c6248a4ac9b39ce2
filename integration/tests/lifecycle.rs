//! create → start → state → kill → delete, and what `state`/`list` report on the way.

use crate::both;
use crate::harness::Ctx;
use std::fs;

both!(
    create_start_kill_delete,
    create_does_not_run_the_process,
    state_reports_oci_fields,
    list_shows_containers,
    delete_created_container,
    run_detached,
    pid_file_matches_state,
);

fn create_start_kill_delete(t: &Ctx) {
    let b = t.bundle().probe(&["sleep", "600"]);
    let id = t.create(&b, "life");
    let s = t.state(&id);
    assert_eq!(s["status"], "created");
    assert_eq!(s["id"], id.as_str());
    assert!(
        s["pid"].as_i64().unwrap_or(0) > 0,
        "created container has a pid: {s}"
    );
    t.rt(&["start", &id]).ok();
    let s = t.wait_status(&id, "running");
    assert!(s["pid"].as_i64().unwrap_or(0) > 0);
    t.rt(&["kill", &id, "KILL"]).ok();
    t.wait_status(&id, "stopped");
    t.rt(&["delete", &id]).ok();
    t.rt(&["state", &id]).fails();
    assert!(!t.list_ids().contains(&id));
}

fn create_does_not_run_the_process(t: &Ctx) {
    let b = t.bundle().probe(&["echo", "hello from init"]);
    let id = t.id("lazy");
    let dir = t.write(&b);
    let create = t
        .rt(&["create", "--bundle", dir.to_str().unwrap(), &id])
        .ok();
    assert_eq!(t.state(&id)["status"], "created");
    assert!(
        !create.later_stdout().contains("hello"),
        "process ran before start: {create}"
    );
    t.rt(&["start", &id]).ok();
    t.wait_status(&id, "stopped");
    assert_eq!(create.later_stdout(), "hello from init\n");
    t.rt(&["delete", &id]).ok();
}

fn state_reports_oci_fields(t: &Ctx) {
    let b = t.bundle().probe(&["sleep", "600"]);
    let id = t.create(&b, "fields");
    let s = t.state(&id);
    for key in ["ociVersion", "id", "pid", "status", "bundle"] {
        assert!(!s[key].is_null(), "state lacks {key}: {s}");
    }
    let bundle = fs::canonicalize(&b.dir).unwrap();
    assert_eq!(s["bundle"], bundle.to_str().unwrap());
    let pid = s["pid"].to_string();
    assert!(
        fs::metadata(format!("/proc/{pid}")).is_ok(),
        "pid {pid} is not alive"
    );
}

fn list_shows_containers(t: &Ctx) {
    let b = t.bundle().probe(&["sleep", "600"]);
    let created = t.create(&b, "lc");
    let running = t.start_running(&t.bundle().probe(&["sleep", "600"]), "lr");
    let text = t.rt(&["list"]).ok().stdout;
    assert!(
        text.lines().next().unwrap_or("").starts_with("ID"),
        "list header: {text}"
    );
    assert!(text.contains(&created) && text.contains(&running), "{text}");
    let v = t.rt(&["list", "--format", "json"]).ok().json();
    let status = |id: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["status"].clone())
    };
    assert_eq!(status(&created).unwrap(), "created");
    assert_eq!(status(&running).unwrap(), "running");
    let quiet = t.rt(&["list", "--quiet"]).ok().stdout;
    let mut ids: Vec<&str> = quiet.lines().collect();
    ids.sort();
    let mut want = vec![created.as_str(), running.as_str()];
    want.sort();
    assert_eq!(ids, want);
}

fn delete_created_container(t: &Ctx) {
    let id = t.create(&t.bundle().probe(&["sleep", "600"]), "delc");
    let pid = t.state(&id)["pid"].to_string();
    t.rt(&["delete", &id]).ok();
    t.rt(&["state", &id]).fails();
    t.wait_for("the created init to go", || {
        !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists() || is_zombie(&pid)
    });
    t.assert_nothing_left();
}

fn is_zombie(pid: &str) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

fn run_detached(t: &Ctx) {
    let b = t.bundle().probe(&["sleep", "600"]);
    let id = t.id("det");
    let dir = t.write(&b);
    t.rt(&["run", "--detach", "--bundle", dir.to_str().unwrap(), &id])
        .ok();
    t.wait_status(&id, "running");
    t.rt(&["kill", &id, "KILL"]).ok();
    t.wait_status(&id, "stopped");
    t.rt(&["delete", &id]).ok();
    t.assert_nothing_left();
}

fn pid_file_matches_state(t: &Ctx) {
    let b = t.bundle().probe(&["sleep", "600"]);
    let id = t.id("pidf");
    let dir = t.write(&b);
    let pid_file = t.dir.join("pid");
    t.rt(&[
        "create",
        "--bundle",
        dir.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ])
    .ok();
    let written = fs::read_to_string(&pid_file).unwrap();
    assert_eq!(written.trim(), t.state(&id)["pid"].to_string());
}
