//! `delete --force` after the runtime was SIGKILLed at each lifecycle step leaves no mounts,
//! cgroups, state or processes behind.
//!
//! The kill comes from a hook: a host hook's parent is the runtime process that runs it, so
//! `kill -9 $PPID` in `sh -c` kills exactly that invocation (the shell's own pid is not the
//! target; `kill` is a builtin, so no extra process sits in between).
//!
//! husk-specific for the create step (killstep_create_runtime_hook): husk writes its state
//! before clone, so an interrupted create still leaves a record `delete --force` can act on.
//! runc saves state.json only once create is done, so there `delete --force` just removes the
//! directory and leaves the `runc init` process and its cgroup behind.

use crate::both;
use crate::cleanup::assert_clean;
use crate::harness::{Bundle, Ctx};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

both!(
    killstep_create_runtime_hook,
    killstep_poststart_hook,
    killstep_foreground_run,
    killstep_init_killed_from_outside,
);

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A container whose init's command line names its id (so a leftover is findable by id), with a
/// hook of `kind` that SIGKILLs the runtime running it if that runtime's command line has the
/// word `verb`.
fn bundle_for(t: &Ctx, id: &str, kind: Option<(&str, &str)>) -> Bundle {
    let b = t.bundle().args(&[
        "/bin/sh",
        "-c",
        &format!("/bin/husk-probe sleep 600; : {id}"),
    ]);
    match kind {
        Some((kind, verb)) => {
            let script = format!(
                "tr '\\0' ' ' < /proc/$PPID/cmdline | grep -q ' {verb} ' && kill -9 $PPID; exit 0"
            );
            let hook = json!({"path": "/bin/sh", "args": ["sh", "-c", script], "env": [PATH]});
            let mut hooks = serde_json::Map::new();
            hooks.insert(kind.to_string(), json!([hook]));
            b.set("/hooks", Value::Object(hooks))
        }
        None => b,
    }
}

/// Host processes whose command line mentions `id` (zombies have none).
fn processes_naming(id: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().into_owned();
            if pid == me || !pid.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let cmd = fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(id).then(|| format!("{pid}: {cmd}"))
        })
        .collect()
}

/// After the runtime was killed: `delete --force` succeeds and nothing is left.
fn force_delete_leaves_nothing(t: &Ctx, id: &str, bundle: &Path) {
    let s = t.rt(&["state", id]);
    if s.code == 0 {
        let status = s.json()["status"].clone();
        assert!(
            ["created", "running", "stopped", "creating"].contains(&status.as_str().unwrap_or("")),
            "status {status}: {s}"
        );
    }
    t.rt(&["delete", "--force", id]).ok();
    t.wait_for(&format!("processes naming {id} to go"), || {
        processes_naming(id).is_empty()
    });
    assert_clean(t, id, bundle);
    let rootfs = t.rootfs().to_string_lossy().into_owned();
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.lines().any(|l| l.contains(&rootfs)),
        "rootfs still mounted on the host"
    );
    t.assert_nothing_left();
}

fn killstep_create_runtime_hook(t: &Ctx) {
    let id = t.id("kcr");
    let b = bundle_for(t, &id, Some(("createRuntime", "create")));
    let dir = t.write(&b);
    t.rt(&["create", "--bundle", dir.to_str().unwrap(), &id])
        .code(128 + 9);
    force_delete_leaves_nothing(t, &id, &dir);
}

/// The spec runs poststart hooks in `start`; runc 1.1 runs them in `create` already (fixed in
/// runc 1.2), so against runc 1.1 `start` is never killed and this case fails there.
fn killstep_poststart_hook(t: &Ctx) {
    let id = t.id("kps");
    let b = bundle_for(t, &id, Some(("poststart", "start")));
    let dir = t.write(&b);
    t.rt(&["create", "--bundle", dir.to_str().unwrap(), &id])
        .ok();
    t.rt(&["start", &id]).code(128 + 9);
    force_delete_leaves_nothing(t, &id, &dir);
}

fn killstep_foreground_run(t: &Ctx) {
    let id = t.id("krun");
    let b = bundle_for(t, &id, None);
    let dir = t.write(&b);
    let run = t.spawn(&["run", "--bundle", dir.to_str().unwrap(), &id], None);
    t.wait_status(&id, "running");
    let pid = i32::try_from(run.pid()).unwrap();
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    run.wait().code(128 + 9);
    force_delete_leaves_nothing(t, &id, &dir);
}

fn killstep_init_killed_from_outside(t: &Ctx) {
    let id = t.id("kinit");
    let b = bundle_for(t, &id, None);
    let dir = t.write(&b);
    t.rt(&["run", "--detach", "--bundle", dir.to_str().unwrap(), &id])
        .ok();
    let s = t.wait_status(&id, "running");
    let pid = i32::try_from(s["pid"].as_i64().unwrap()).unwrap();
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    t.wait_status(&id, "stopped");
    force_delete_leaves_nothing(t, &id, &dir);
}
