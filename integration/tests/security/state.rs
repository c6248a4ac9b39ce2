//! Issue 12, items 8 and 9: what husk keeps on disk for a container (its state directory, the
//! saved config.json, a launch's bundle) is the caller's alone, and a state root or launch base
//! that someone else made, or may write, is refused rather than used. A third user (nobody, uid
//! 65534: neither root nor the runtime's user) tries to read the secrets.

use super::*;
use crate::both;

both!(
    state_dir_and_saved_config_are_private,
    sandbox_launch_dir_config_is_private,
    squatted_state_root_is_refused,
    squatted_launch_base_is_refused,
);

const NOBODY: u32 = 65534;

/// Can uid `uid` (its gid the same, no supplementary groups) read `path`?
fn readable_by(uid: u32, path: &Path) -> bool {
    Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .arg("cat")
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// Someone other than the runtime's user: nobody for root's runs, root for the rootless user's.
fn other_owner(t: &Ctx) -> u32 {
    match t.mode {
        Mode::Root => NOBODY,
        Mode::Rootless => 0,
    }
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
}

fn state_dir_and_saved_config_are_private(t: &Ctx) {
    let secret = format!("HUSK_SECRET=hunter2-{}", t.id("s"));
    let b = t.bundle().probe(&["sleep", "600"]).edit(|c| {
        c["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(secret.clone().into());
    });
    let id = t.create(&b, "priv");
    let dir = t.state_root.join(&id);
    let cfg = dir.join("config.json");
    assert!(fs::read_to_string(&cfg).unwrap().contains(&secret));
    assert_eq!(mode(&dir), 0o700, "state dir {}", dir.display());
    for f in ["config.json", "state.json"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    // The state root itself (0755 here, made by the harness) lets nobody through to the dir:
    // only the dir's own mode keeps the secret.
    assert!(!readable_by(NOBODY, &cfg), "nobody read {}", cfg.display());
    assert!(!readable_by(NOBODY, &dir.join("state.json")));
    t.rt(&["delete", "--force", &id]).ok();
}

/// The sandbox's `--env` value sits in its launch directory's config.json while it runs: 0600 in
/// a 0700 (root: 0711, for the sandbox's host id to pass) directory, unreadable by nobody.
fn sandbox_launch_dir_config_is_private(t: &Ctx) {
    let marker = format!("hunter2-{}", t.id("l"));
    let ws = workspace(t);
    let go = ws.join("go");
    let xdg = t.mkdir(&t.dir.join("xdg"));
    fs::set_permissions(&xdg, fs::Permissions::from_mode(0o700)).unwrap();
    let script = "while [ ! -e /workspace/go ]; do sleep 0.05; done";
    let env = format!("HUSK_SECRET={marker}");
    let args = [
        "exec",
        "--sandbox",
        "--workspace",
        ws.to_str().unwrap(),
        "--env",
        &env,
        host().rootfs.to_str().unwrap(),
        "sh",
        "-c",
        script,
    ];
    let xdg_env = [("XDG_RUNTIME_DIR", xdg.to_str().unwrap())];
    let running = t.spawn_env(&args, None, &xdg_env);
    // Root's sandboxes launch from /run/husk-launch whatever XDG_RUNTIME_DIR says.
    let base = match t.mode {
        Mode::Root => PathBuf::from("/run/husk-launch"),
        Mode::Rootless => xdg.join("husk-launch"),
    };
    let mut found = None;
    t.wait_for("the launch directory holding the secret", || {
        found = fs::read_dir(&base).ok().and_then(|rd| {
            rd.flatten()
                .map(|e| e.path().join("config.json"))
                .find(|p| fs::read_to_string(p).is_ok_and(|s| s.contains(&marker)))
        });
        found.is_some()
    });
    let cfg = found.unwrap();
    let dir = cfg.parent().unwrap();
    let readable_by_nobody = readable_by(NOBODY, &cfg);
    let (cfg_mode, dir_mode, base_mode) = (mode(&cfg), mode(dir), mode(&base));
    fs::write(&go, "").unwrap();
    t.give(&go);
    let out = running.wait();
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(cfg_mode, 0o600, "{}", cfg.display());
    assert_eq!(dir_mode & 0o077 & !0o011, 0, "launch dir mode {dir_mode:o}");
    assert_eq!(base_mode & 0o022, 0, "launch base mode {base_mode:o}");
    assert!(!readable_by_nobody, "nobody read {}", cfg.display());
}

/// A state root another user owns (mode 0777: they made it first), or one of ours that others
/// may write, is refused with an error naming it; nothing is created in it.
fn squatted_state_root_is_refused(t: &Ctx) {
    let b = t.bundle().probe(&["exit", "0"]);
    let dir = t.write(&b);
    let root = &t.state_root;
    let me = fs::metadata(root).unwrap().uid();
    fs::set_permissions(root, fs::Permissions::from_mode(0o777)).unwrap();
    let open = t.rt(&["create", "--bundle", dir.to_str().unwrap(), &t.id("sq")]);
    // Records in a root others may write are not read either (a forged pid or cgroup).
    let listed = t.rt(&["list"]);
    let state = t.rt(&["state", "forged"]);
    chown(root, other_owner(t));
    let theirs = t.rt(&["run", "--bundle", dir.to_str().unwrap(), &t.id("sq")]);
    chown(root, me);
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    let open = open.fails();
    assert!(
        open.stderr
            .contains(&format!("refuse directory {}", root.display()))
            && open
                .stderr
                .contains("writable by group or others (mode 777)"),
        "{open}"
    );
    for out in [listed.fails(), state.fails()] {
        assert!(out.stderr.contains("refuse directory"), "{out}");
    }
    let theirs = theirs.fails();
    assert!(
        theirs
            .stderr
            .contains(&format!("owned by uid {}, not by you", other_owner(t))),
        "{theirs}"
    );
    assert_eq!(fs::read_dir(root).unwrap().count(), 0, "written into");
    // Put right, the same root works.
    let id = t.id("sq");
    t.rt(&["run", "--bundle", dir.to_str().unwrap(), &id]).ok();
}

/// A launch base ($XDG_RUNTIME_DIR/husk-launch) someone else made is refused; the launch does not
/// write its config (and secrets) there.
fn squatted_launch_base_is_refused(t: &Ctx) {
    let xdg = t.mkdir(&t.dir.join("xdg"));
    let base = xdg.join("husk-launch");
    fs::create_dir(&base).unwrap();
    chown(&base, other_owner(t));
    fs::set_permissions(&base, fs::Permissions::from_mode(0o777)).unwrap();
    let env = [
        ("XDG_RUNTIME_DIR", xdg.to_str().unwrap()),
        ("HUSK_NO_FASTPATH", "1"),
    ];
    let rootfs = host().rootfs.to_str().unwrap();
    let out = t
        .rt_env(&["exec", "--env", "HUSK_SECRET=x", rootfs, "true"], &env)
        .exec_fails();
    assert!(
        out.stderr
            .contains(&format!("refuse directory {}", base.display())),
        "{out}"
    );
    assert_eq!(fs::read_dir(&base).unwrap().count(), 0, "written into");
    chown(&base, fs::metadata(&xdg).unwrap().uid());
}
