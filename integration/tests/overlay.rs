//! The launcher's writable layers and host passthroughs: `--writable-tmpfs`, `--overlay DIR`,
//! `--fuse`, `--x11`. Images are this test's own rootfs copy, so "the image is unchanged" is
//! checked on a tree nothing else uses (rootless: its directories belong to the test user, as an
//! imported image's would; kernel overlayfs cannot copy up a directory owned by an unmapped id).

use crate::both;
use crate::harness::{Ctx, Mode, Out};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

both!(
    writable_tmpfs_changes_are_thrown_away,
    overlay_dir_changes_persist,
    fuse_passes_dev_fuse,
    x11_passes_display_sockets_and_xauthority,
);

fn exec(t: &Ctx, flags: &[&str], cmd: &[&str]) -> Out {
    let image = t.rootfs().to_str().unwrap().to_string();
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.push(&image);
    args.extend_from_slice(cmd);
    t.rt(&args)
}

/// Runs `cmd` and checks husk cleaned its launch directory up without a complaint.
fn exec_clean(t: &Ctx, flags: &[&str], cmd: &[&str]) -> Out {
    let out = exec(t, flags, cmd).ok();
    assert!(!out.stderr.contains("launch directory"), "{out}");
    out
}

fn writable_tmpfs_changes_are_thrown_away(t: &Ctx) {
    let write = "echo hi > /etc/husk-ovl && mkdir -p /usr/new/dir && cat /etc/husk-ovl";
    let out = exec_clean(t, &["--writable-tmpfs"], &["sh", "-c", write]);
    assert_eq!(out.stdout.trim(), "hi", "{out}");
    assert!(!t.rootfs().join("etc/husk-ovl").exists());
    assert!(!t.rootfs().join("usr/new").exists());
    exec_clean(
        t,
        &["--writable-tmpfs"],
        &["test", "!", "-e", "/etc/husk-ovl"],
    );
    // Without it the image stays read-only.
    exec(t, &[], &["sh", "-c", "echo x > /etc/husk-ovl || exit 7"]).code(7);
    t.assert_nothing_left();
}

fn overlay_dir_changes_persist(t: &Ctx) {
    let dir = t.dir.join("ovl");
    let d = dir.to_str().unwrap();
    exec_clean(
        t,
        &["--overlay", d],
        &["sh", "-c", "echo kept > /etc/husk-ovl"],
    );
    assert!(dir.join("upper/etc/husk-ovl").is_file());
    assert!(!t.rootfs().join("etc/husk-ovl").exists());
    let out = exec_clean(t, &["--overlay", d], &["cat", "/etc/husk-ovl"]);
    assert_eq!(out.stdout.trim(), "kept", "{out}");
    // --writable-tmpfs and --writable are the other ways to write: one at a time.
    exec(t, &["--overlay", d, "--writable"], &["true"]).code(2);
    exec(t, &["--writable-tmpfs", "--overlay", d], &["true"]).code(2);
    // The sandbox decides what is writable itself.
    exec(t, &["--sandbox", "--writable-tmpfs"], &["true"]).code(2);
    t.assert_nothing_left();
}

fn fuse_passes_dev_fuse(t: &Ctx) {
    let Ok(m) = std::fs::metadata("/dev/fuse") else {
        // No FUSE on this host: one clear error, not a container without it.
        let out = exec(t, &["--fuse"], &["true"]);
        assert!(out.stderr.contains("/dev/fuse"), "{out}");
        return;
    };
    // --contain: a minimal /dev, so the node is there only because of --fuse.
    let out = exec(t, &["--contain", "--fuse"], &["ls", "-l", "/dev/fuse"]).ok();
    assert!(out.stdout.starts_with('c'), "{out}");
    assert!(out.stdout.contains("10, 229"), "{out}");
    let closed = m.mode() & 0o006 != 0o006;
    let warned = out.stderr.contains("/dev/fuse is mode");
    assert_eq!(warned, t.mode == Mode::Rootless && closed, "{out}");
    if t.mode == Mode::Root {
        // Openable (the devices cgroup allows c 10:229): a read with no mount is ENODEV/EPERM, not
        // "operation not permitted" on open.
        let open = "exec 3<>/dev/fuse && echo opened";
        let out = exec(t, &["--contain", "--fuse"], &["sh", "-c", open]).ok();
        assert_eq!(out.stdout.trim(), "opened", "{out}");
    }
    t.assert_nothing_left();
}

fn x11_passes_display_sockets_and_xauthority(t: &Ctx) {
    let sockets = Path::new("/tmp/.X11-unix");
    if !sockets.exists() {
        std::fs::create_dir(sockets).unwrap();
        std::fs::set_permissions(sockets, std::fs::Permissions::from_mode(0o1777)).unwrap();
    }
    let marker = sockets.join(format!("husk-it-{}", t.id("x11")));
    std::fs::write(&marker, "").unwrap();
    let xauth = t.dir.join("xauthority");
    std::fs::write(&xauth, "cookie").unwrap();
    t.give(&xauth);
    let x = xauth.to_str().unwrap();
    let image = t.rootfs().to_str().unwrap().to_string();
    let script = format!(
        "echo $DISPLAY $XAUTHORITY; cat $XAUTHORITY; echo; test -e {m} && echo sockets; echo x >> $XAUTHORITY || echo ro",
        m = marker.display()
    );
    // --containall: a clean environment, a fresh /tmp and no cwd bind, so all of it is --x11's.
    let args = ["exec", "--containall", "--x11", &image, "sh", "-c", &script];
    let out = t.rt_env(&args, &[("DISPLAY", ":99"), ("XAUTHORITY", x)]);
    let _ = std::fs::remove_file(&marker);
    let out = out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [&format!(":99 {x}"), "cookie", "sockets", "ro"],
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&xauth).unwrap(), "cookie");
    // Without --x11 none of it.
    let args = [
        "exec",
        "--containall",
        &image,
        "sh",
        "-c",
        "echo \"$DISPLAY\"",
    ];
    let out = t.rt_env(&args, &[("DISPLAY", ":99")]).ok();
    assert_eq!(out.stdout.trim(), "", "{out}");
    t.assert_nothing_left();
}
