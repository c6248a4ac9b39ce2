//! delete --force leaves nothing: no state dir, no cgroup named after the id, no mount that
//! mentions the id or the bundle.

use crate::both;
use crate::harness::Ctx;
use std::fs;
use std::path::Path;

both!(
    force_delete_running,
    force_delete_created,
    run_exit_cleans_up,
    failed_create_cleans_up
);

pub(crate) fn assert_clean(t: &Ctx, id: &str, bundle: &Path) {
    assert!(!t.state_root.join(id).exists(), "state dir {id} left");
    let hits = cgroup_dirs_named(Path::new("/sys/fs/cgroup"), id, 4);
    assert!(hits.is_empty(), "cgroups left: {hits:?}");
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let b = bundle.to_string_lossy();
    let left: Vec<&str> = mountinfo
        .lines()
        .filter(|l| l.contains(id) || l.contains(b.as_ref()))
        .collect();
    assert!(left.is_empty(), "mounts left: {left:?}");
    assert!(!t.list_ids().contains(&id.to_string()));
}

fn cgroup_dirs_named(dir: &Path, name: &str, depth: u32) -> Vec<String> {
    let mut hits = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return hits;
    };
    for e in entries.flatten() {
        if !e.file_type().is_ok_and(|f| f.is_dir()) {
            continue;
        }
        if e.file_name().to_string_lossy().contains(name) {
            hits.push(e.path().display().to_string());
        } else if depth > 0 {
            hits.extend(cgroup_dirs_named(&e.path(), name, depth - 1));
        }
    }
    hits
}

fn force_delete_running(t: &Ctx) {
    let b = t.bundle().probe(&["sleep", "600"]);
    let id = t.start_running(&b, "fdr");
    t.rt(&["exec", "--detach", &id, "/bin/husk-probe", "sleep", "600"])
        .ok();
    t.rt(&["delete", "--force", &id]).ok();
    assert_clean(t, &id, &b.dir);
}

fn force_delete_created(t: &Ctx) {
    let b = t.bundle().probe(&["sleep", "600"]);
    let id = t.create(&b, "fdc");
    t.rt(&["delete", "--force", &id]).ok();
    assert_clean(t, &id, &b.dir);
}

fn run_exit_cleans_up(t: &Ctx) {
    let b = t.bundle().probe(&["exit", "0"]);
    let id = t.id("rex");
    let dir = t.write(&b);
    t.rt(&["run", "--bundle", dir.to_str().unwrap(), &id]).ok();
    assert_clean(t, &id, &b.dir);
}

fn failed_create_cleans_up(t: &Ctx) {
    let b = t.bundle().args(&["/no/such/binary"]);
    let id = t.id("fcr");
    let dir = t.write(&b);
    let out = t.rt(&["run", "--bundle", dir.to_str().unwrap(), &id]);
    assert_ne!(out.code, 0, "{out}");
    assert_clean(t, &id, &b.dir);
}
