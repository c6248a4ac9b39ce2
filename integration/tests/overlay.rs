//! The launcher's writable layers and host passthroughs: `--writable-tmpfs`, `--overlay DIR`,
//! `--fuse`, `--x11`. Images are this test's own rootfs copy, so "the image is unchanged" is
//! checked on a tree nothing else uses (rootless: its directories belong to the test user, as an
//! imported image's would; kernel overlayfs cannot copy up a directory owned by an unmapped id).

use crate::both;
use crate::harness::{debian, Ctx, Mode, Out};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

both!(
    writable_tmpfs_changes_are_thrown_away,
    overlay_dir_changes_persist,
    fuse_passes_dev_fuse,
    x11_passes_display_sockets_and_xauthority,
    x11_xauthority_under_a_bound_directory,
    writable_root_itself_with_tmpfs_and_contain,
    fuse_mounts_a_real_filesystem_inside,
    add_and_drop_caps,
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

/// Issue 14: XAUTHORITY under a directory that is bound anyway ($HOME, the cwd) was bound before
/// it: its mount point had to be made in the read-only image ("resolve ...: EROFS"), and the
/// directory bind would have covered it. Mounts go in order of depth, so the file lands on top.
fn x11_xauthority_under_a_bound_directory(t: &Ctx) {
    let home = match t.mode {
        Mode::Root => std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
        Mode::Rootless => crate::harness::host().user.clone().unwrap().2,
    };
    let image = t.rootfs().to_str().unwrap().to_string();
    let in_home = Path::new(&home).join(format!(".Xauthority-{}", t.id("x")));
    let in_cwd = t.dir.join(".Xauthority");
    for xauth in [&in_home, &in_cwd] {
        std::fs::write(xauth, "cookie").unwrap();
        t.give(xauth);
        let x = xauth.to_str().unwrap();
        let env = [("DISPLAY", ":99"), ("XAUTHORITY", x)];
        let out = t.rt_env(
            &["exec", "--x11", &image, "sh", "-c", "cat $XAUTHORITY"],
            &env,
        );
        let _ = std::fs::remove_file(&in_home);
        let out = out.ok();
        assert_eq!(out.stdout, "cookie", "{out}");
    }
    // No XAUTHORITY: X clients use ~/.Xauthority, bound even over --contain's empty home.
    let home = t.mkdir(&t.dir.join("h"));
    let xauth = home.join(".Xauthority");
    std::fs::write(&xauth, "default").unwrap();
    t.give(&xauth);
    let env = [("DISPLAY", ":99"), ("HOME", home.to_str().unwrap())];
    let args = [
        "exec",
        "--contain",
        "--x11",
        &image,
        "sh",
        "-c",
        "cat $HOME/.Xauthority",
    ];
    let out = t.rt_env(&args, &env).ok();
    assert_eq!(out.stdout, "default", "{out}");
    t.assert_nothing_left();
}

/// Issue 14: --writable-tmpfs left / itself read-only (only top-level directories were overlaid),
/// and with --contain (or --overlay) the launch failed: "mask /proc/keys: /dev/null is not the
/// null device".
fn writable_root_itself_with_tmpfs_and_contain(t: &Ctx) {
    let write = "echo top > /husk-top && cat /husk-top && echo e > /etc/husk-e && cat /etc/husk-e";
    for flags in [
        &["--writable-tmpfs"][..],
        &["--contain", "--writable-tmpfs"][..],
    ] {
        let out = exec_clean(t, flags, &["sh", "-c", write]);
        assert_eq!(out.stdout, "top\ne\n", "{flags:?}: {out}");
    }
    let dir = t.dir.join("ovl");
    let d = dir.to_str().unwrap();
    let out = exec_clean(t, &["--contain", "--overlay", d], &["sh", "-c", write]);
    assert_eq!(out.stdout, "top\ne\n", "{out}");
    let out = exec_clean(
        t,
        &["--contain", "--overlay", d],
        &["cat", "/dev/null", "/etc/husk-e"],
    );
    assert_eq!(out.stdout, "e\n", "{out}");
    assert!(!t.rootfs().join("husk-top").exists());
    assert!(!t.rootfs().join("etc/husk-e").exists());
    t.assert_nothing_left();
}

/// Issue 14: --fuse passed /dev/fuse but no FUSE mount could work (no CAP_SYS_ADMIN, and
/// no_new_privs defeats a setuid fusermount). With --fuse the container gets its own user
/// namespace and CAP_SYS_ADMIN in it, so a real FUSE filesystem (the host's fuse-overlayfs, run
/// in the Debian fixture) mounts inside. On this host /dev/fuse is 0600: rootless binds a
/// test-made 0666 node over it.
fn fuse_mounts_a_real_filesystem_inside(t: &Ctx) {
    let Ok(deb) = debian() else {
        return crate::harness::skip("no Debian fixture");
    };
    let bin = Path::new("/usr/bin/fuse-overlayfs");
    let lib = Path::new("/usr/lib/x86_64-linux-gnu/libfuse3.so.3");
    if !bin.exists() || !lib.exists() || !Path::new("/dev/fuse").exists() {
        return crate::harness::skip("no fuse-overlayfs or /dev/fuse (setup.sh installs it)");
    }
    let rootfs = deb.join("rootfs");
    let node = t.dir.join("fuse");
    let made = std::process::Command::new("mknod")
        .args([node.to_str().unwrap(), "c", "10", "229"])
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o666)).unwrap();
    let binds = format!(
        "{}:/opt/fuse/fuse-overlayfs:ro,{}:/opt/fuse/libfuse3.so.3:ro",
        bin.display(),
        lib.display()
    );
    let mut flags = vec!["--contain", "--fuse", "--bind", &binds];
    let dev = format!("{}:/dev/fuse", node.display());
    if t.mode == Mode::Rootless {
        flags.extend_from_slice(&["--bind", &dev]);
    }
    let script = "set -e; cd /tmp; mkdir l u w m; echo low > l/f; \
        LD_LIBRARY_PATH=/opt/fuse /opt/fuse/fuse-overlayfs -o lowerdir=l,upperdir=u,workdir=w m; \
        cat m/f; echo up > m/g; cat u/g; grep -c ' /tmp/m fuse' /proc/self/mounts; umount m";
    let mut args = vec!["exec"];
    args.extend_from_slice(&flags);
    let r = rootfs.to_str().unwrap();
    args.extend_from_slice(&[r, "sh", "-c", script]);
    let out = t.rt(&args).ok();
    assert_eq!(out.stdout, "low\nup\n1\n", "{out}");
    // Without --fuse no mount is possible.
    let mut args = vec!["exec", "--contain", "--bind", &binds, r, "sh", "-c", script];
    if t.mode == Mode::Rootless {
        args.splice(2..2, ["--bind", dev.as_str()]);
    }
    t.rt(&args).fails();
    t.assert_nothing_left();
}

/// Issue 14: Apptainer's --add-caps and --drop-caps for launches (also for a non-root user inside,
/// through the ambient set); refused with --sandbox, whose policy is fixed.
fn add_and_drop_caps(t: &Ctx) {
    let p = |flags: &[&str]| exec(t, flags, &["/bin/husk-probe"]).ok().probe();
    let added = p(&["--add-caps", "CAP_NET_ADMIN,sys_ptrace"]);
    for c in ["CAP_NET_ADMIN", "CAP_SYS_PTRACE"] {
        assert!(
            added.caps("effective").iter().any(|x| x == c),
            "{c}: {}",
            added.0
        );
    }
    if t.mode == Mode::Root {
        let base = p(&[]);
        assert!(
            base.caps("bounding").iter().any(|x| x == "CAP_KILL"),
            "{}",
            base.0
        );
        let dropped = p(&["--drop-caps", "CAP_KILL"]);
        assert!(
            !dropped.caps("bounding").iter().any(|x| x == "CAP_KILL"),
            "{}",
            dropped.0
        );
        assert!(
            !dropped.caps("effective").iter().any(|x| x == "CAP_KILL"),
            "{}",
            dropped.0
        );
    }
    let out = exec(t, &["--add-caps", "CAP_BOGUS"], &["true"]).code(2);
    assert!(out.stderr.contains("CAP_BOGUS"), "{out}");
    exec(t, &["--sandbox", "--add-caps", "CAP_NET_ADMIN"], &["true"]).code(2);
    exec(t, &["--sandbox", "--drop-caps", "CAP_KILL"], &["true"]).code(2);
}
