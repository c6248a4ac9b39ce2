//! `pause`/`resume` freeze the container's cgroup: root only on a cgroup v1 host. Rootless
//! without cgroups must refuse cleanly and leave the container running.

use crate::harness::{has_cgroups, Ctx};
use crate::{both, root_only};

root_only!(pause_and_resume);
both!(pause_without_cgroups_fails_cleanly, pause_stopped_fails);

fn pause_and_resume(t: &Ctx) {
    let b = t.bundle().probe(&["sleep", "600"]);
    let id = t.start_running(&b, "pause");
    let pid = t.state(&id)["pid"].to_string();
    t.rt(&["pause", &id]).ok();
    assert_eq!(t.state(&id)["status"], "paused");
    // The init is really frozen: the kernel reports it in the freezer's sleep state.
    let freezer = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        freezer.contains("freezer") || freezer.starts_with("0::"),
        "{freezer}"
    );
    t.rt(&["exec", &id, "/bin/husk-probe"]).exec_fails();
    t.rt(&["resume", &id]).ok();
    assert_eq!(t.state(&id)["status"], "running");
    t.rt(&["exec", &id, "/bin/husk-probe", "exit", "0"]).ok();
    t.rt(&["pause", &id]).ok();
    // delete --force of a paused container thaws and kills it.
    t.rt(&["delete", "--force", &id]).ok();
    t.assert_nothing_left();
}

fn pause_without_cgroups_fails_cleanly(t: &Ctx) {
    if has_cgroups(t.mode) {
        return; // covered by pause_and_resume
    }
    let id = t.start_running(&t.bundle().probe(&["sleep", "600"]), "pnc");
    t.rt(&["pause", &id]).fails();
    assert_eq!(t.state(&id)["status"], "running");
}

fn pause_stopped_fails(t: &Ctx) {
    let id = t.start_running(&t.bundle().probe(&["sleep", "600"]), "ps");
    t.rt(&["kill", &id, "KILL"]).ok();
    t.wait_status(&id, "stopped");
    t.rt(&["pause", &id]).fails();
    t.rt(&["resume", &id]).fails();
}
