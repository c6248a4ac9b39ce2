//! OCI hooks run on the host, in order, with the container state JSON on stdin; a failing
//! prestart hook fails create and leaves nothing behind.

use crate::both;
use crate::harness::{Bundle, Ctx};
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

both!(
    hooks_run_in_order_with_state,
    failing_prestart_hook_fails_create,
    all_six_hooks_run,
    failing_poststart_and_poststop_hooks_only_warn,
    hanging_prestart_hook_times_out_and_leaves_nothing,
    hung_hook_then_killed_runtime_is_swept_by_delete_force,
);

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A hook that saves its stdin to DIR/NAME.json and appends NAME to DIR/order.
fn marker_hook(dir: &Path, name: &str) -> Value {
    let d = dir.display();
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("cat > {d}/{name}.json && echo {name} >> {d}/order && echo \"$HUSK_HOOK\" > {d}/{name}.env")],
        "env": [PATH, format!("HUSK_HOOK={name}-env")],
    })
}

fn with_hooks(b: Bundle, dir: &Path, names: &[&str]) -> Bundle {
    let mut hooks = serde_json::Map::new();
    for name in names {
        hooks.insert(name.to_string(), json!([marker_hook(dir, name)]));
    }
    b.set("/hooks", Value::Object(hooks))
}

fn hooks_run_in_order_with_state(t: &Ctx) {
    let markers = t.mkdir(&t.dir.join("markers"));
    let names = ["prestart", "createRuntime", "poststart", "poststop"];
    let b = with_hooks(t.bundle().probe(&["exit", "0"]), &markers, &names);
    let id = t.id("hooks");
    let dir = t.write(&b);
    t.rt(&["run", "--bundle", dir.to_str().unwrap(), &id]).ok();
    let order = fs::read_to_string(markers.join("order")).unwrap_or_default();
    // runc runs prestart then createRuntime (both before pivot_root); poststart after start;
    // poststop on delete.
    assert_eq!(order.lines().collect::<Vec<_>>(), names, "hook order");
    let bundle = fs::canonicalize(&dir).unwrap();
    for name in names {
        let text = fs::read_to_string(markers.join(format!("{name}.json"))).unwrap();
        let state: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} stdin: {e}: {text}"));
        assert_eq!(state["id"], id.as_str(), "{name}: {state}");
        assert_eq!(state["bundle"], bundle.to_str().unwrap(), "{name}: {state}");
        assert!(
            state["status"].is_string() && state["ociVersion"].is_string(),
            "{name}: {state}"
        );
        let env = fs::read_to_string(markers.join(format!("{name}.env"))).unwrap();
        assert_eq!(env.trim(), format!("{name}-env"), "hook env");
    }
    let pre: Value =
        serde_json::from_str(&fs::read_to_string(markers.join("prestart.json")).unwrap()).unwrap();
    assert!(
        pre["pid"].as_i64().unwrap_or(0) > 0,
        "prestart sees the init pid: {pre}"
    );
}

fn failing_prestart_hook_fails_create(t: &Ctx) {
    let hook = json!({"path": "/bin/sh", "args": ["sh", "-c", "exit 3"], "env": [PATH]});
    let b = t
        .bundle()
        .probe(&["sleep", "600"])
        .set("/hooks", json!({"prestart": [hook]}));
    let id = t.id("badhook");
    let dir = t.write(&b);
    t.rt(&["create", "--bundle", dir.to_str().unwrap(), &id])
        .fails();
    t.assert_nothing_left();
}

/// All six kinds run, each with the state JSON (naming the id) on stdin. createContainer and
/// startContainer run in the container's namespaces (startContainer after pivot_root, with the
/// rootfs's /bin/sh): they write through a bind mount of the markers dir at /markers, or through
/// the host path while it is still reachable (createContainer runs before pivot_root).
fn all_six_hooks_run(t: &Ctx) {
    let markers = t.mkdir(&t.dir.join("markers"));
    let d = markers.display();
    let hook = |name: &str| {
        json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!(
                "d={d}; [ -d $d ] || d=/markers; cat > $d/{name}.json && echo {name} >> $d/order")],
            "env": [PATH],
        })
    };
    let names = [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ];
    let mut hooks = serde_json::Map::new();
    for name in names {
        hooks.insert(name.to_string(), json!([hook(name)]));
    }
    let b = t
        .bundle()
        .probe(&["exit", "0"])
        .set("/hooks", Value::Object(hooks))
        .edit(|c| {
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/markers", "type": "bind",
                "source": markers.to_str().unwrap(), "options": ["rbind", "rw"]
            }));
        });
    let id = t.id("six");
    let dir = t.write(&b);
    t.rt(&["run", "--bundle", dir.to_str().unwrap(), &id]).ok();
    let order = fs::read_to_string(markers.join("order")).unwrap_or_default();
    let order: Vec<&str> = order.lines().collect();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    let mut want = names.to_vec();
    want.sort_unstable();
    assert_eq!(sorted, want, "each hook ran once: {order:?}");
    let at = |n: &str| order.iter().position(|o| *o == n).unwrap();
    // startContainer and poststart race (one in the container, one in `start`): no order there.
    assert_eq!(
        &order[..3],
        &names[..3],
        "create-time hooks in order: {order:?}"
    );
    assert!(at("startContainer") > at("createContainer"), "{order:?}");
    assert_eq!(order.last(), Some(&"poststop"), "{order:?}");
    for name in names {
        let text = fs::read_to_string(markers.join(format!("{name}.json"))).unwrap();
        let state: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} stdin: {e}: {text}"));
        assert_eq!(state["id"], id.as_str(), "{name}: {state}");
    }
}

/// A failing poststart or poststop hook is a warning: the hooks after it still run and the
/// lifecycle goes on (runtime-spec; runc 1.1 fails here, husk must not).
fn failing_poststart_and_poststop_hooks_only_warn(t: &Ctx) {
    let markers = t.mkdir(&t.dir.join("markers"));
    let fail = json!({"path": "/bin/sh", "args": ["sh", "-c", "exit 7"]});
    let b = t.bundle().probe(&["sleep", "600"]).set(
        "/hooks",
        json!({
            "poststart": [fail.clone(), marker_hook(&markers, "poststart")],
            "poststop": [fail, marker_hook(&markers, "poststop")],
        }),
    );
    let id = t.create(&b, "hookwarn");
    t.rt(&["start", &id]).ok();
    assert_eq!(t.state(&id)["status"], "running");
    assert!(
        markers.join("poststart.json").exists(),
        "second poststart hook did not run"
    );
    t.rt(&["delete", "--force", &id]).ok();
    assert!(
        markers.join("poststop.json").exists(),
        "second poststop hook did not run"
    );
    t.assert_nothing_left();
}

/// Issue 12, item 12: a prestart hook that hangs (and has started a child of its own) is killed at
/// its `timeout`; create fails saying so, and the container's state, cgroup and init are gone.
fn hanging_prestart_hook_times_out_and_leaves_nothing(t: &Ctx) {
    let markers = t.mkdir(&t.dir.join("markers"));
    let pidfile = markers.join("child.pid");
    let script = format!("sleep 600 & echo $! > {}; wait", pidfile.display());
    let hook =
        json!({"path": "/bin/sh", "args": ["sh", "-c", script], "env": [PATH], "timeout": 1});
    let b = t
        .bundle()
        .probe(&["sleep", "600"])
        .set("/hooks", json!({"prestart": [hook]}));
    let id = t.id("hanghook");
    let dir = t.write(&b);
    let out = t
        .rt(&["create", "--bundle", dir.to_str().unwrap(), &id])
        .fails();
    assert!(
        out.stderr
            .contains("prestart hook /bin/sh timed out after 1s"),
        "{out}"
    );
    crate::cleanup::assert_clean(t, &id, &b.dir);
    let pid: i32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    t.wait_for("the hook's child to be killed", || {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        stat.is_empty() || state.starts_with('Z') || state.starts_with('X')
    });
}

/// Issue 12, item 12: a hook without a timeout hangs; the caller gives up and kills the runtime
/// (SIGKILL, as containerd does); `delete --force` then removes the state and the cgroup.
fn hung_hook_then_killed_runtime_is_swept_by_delete_force(t: &Ctx) {
    let markers = t.mkdir(&t.dir.join("markers"));
    let started = markers.join("started");
    let script = format!("echo $$ > {}; exec sleep 600", started.display());
    let hook = json!({"path": "/bin/sh", "args": ["sh", "-c", script], "env": [PATH]});
    let b = t
        .bundle()
        .probe(&["sleep", "600"])
        .set("/hooks", json!({"createRuntime": [hook]}));
    let id = t.id("hunghook");
    let dir = t.write(&b);
    let running = t.spawn(&["create", "--bundle", dir.to_str().unwrap(), &id], None);
    t.wait_for("the hook to start", || {
        fs::read_to_string(&started).is_ok_and(|s| s.ends_with('\n'))
    });
    // setpriv exec's the runtime: the spawned pid is the runtime's.
    let pid = nix::unistd::Pid::from_raw(running.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    running.wait_quiet();
    t.rt(&["delete", "--force", &id]).ok();
    crate::cleanup::assert_clean(t, &id, &b.dir);
    // The hook itself outlives its runtime (nothing is left to time it out): ours to end.
    if let Ok(hook) = fs::read_to_string(&started)
        .unwrap_or_default()
        .trim()
        .parse()
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(hook),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
