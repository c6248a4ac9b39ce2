//! runc parity of the root filesystem (issue 13 items 6 and 11): tmpfs modes and `tmpcopyup`,
//! read-only tmpfs and /dev, `rootfsPropagation: shared`, and a `--no-pivot` container that
//! cannot mount an unmasked /proc, proc and sysfs refused on a symlink or a file (CVE-2019-16884,
//! youki contest `prohibit_symlink`). Each case also runs against runc (HUSK_RUNTIME=runc).

use crate::harness::{Bundle, Ctx, Mode, Out};
use crate::{both, root_only};
use serde_json::json;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};

both!(
    tmpfs_takes_the_mount_points_mode,
    tmpcopyup_copies_what_it_covers,
    read_only_tmpfs_and_dev,
    rootfs_propagation_shared,
    proc_and_sysfs_need_an_ordinary_directory,
);

// Rootless, every mount inherited from the host is locked in the container's namespace: the
// host's proc can be neither unmounted nor hidden from the kernel's check (runc's test is
// root-only too).
root_only!(no_pivot_cannot_mount_a_bare_proc, bind_mount_onto_the_root,);

fn add_mount(b: Bundle, m: serde_json::Value) -> Bundle {
    b.edit(|c| c["mounts"].as_array_mut().unwrap().push(m))
}

fn run(t: &Ctx, b: &Bundle, what: &str, extra: &[&str]) -> Out {
    let id = t.id(what);
    let dir = t.write(b);
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--bundle", dir.to_str().unwrap(), &id]);
    t.rt(&args)
}

/// A directory `name` in this test's rootfs with exactly `mode`.
fn dir_with_mode(t: &Ctx, name: &str, mode: u32) {
    let p = t.rootfs().join(name);
    t.mkdir(&p);
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Item 6: no `mode=`: the tmpfs takes the mode of the directory it covers; an explicit one
/// wins; on a directory that had to be made, tmpfs's own 1777 (runc's mounts.bats).
fn tmpfs_takes_the_mount_points_mode(t: &Ctx) {
    dir_with_mode(t, "t-inherit", 0o710);
    dir_with_mode(t, "t-explicit", 0o710);
    let tmpfs = |dest: &str, opts: &[&str]| json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": opts});
    let b = t.bundle().args(&[
        "stat",
        "-c",
        "%a",
        "/t-inherit",
        "/t-explicit",
        "/t-made/deep",
    ]);
    let b = add_mount(b, tmpfs("/t-inherit", &["nosuid"]));
    let b = add_mount(b, tmpfs("/t-explicit", &["mode=1500"]));
    let b = add_mount(b, tmpfs("/t-made/deep", &[]));
    let out = run(t, &b, "tmode", &[]).ok();
    let modes: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(modes, ["710", "1500", "1777"], "{out}");
}

/// Item 6: `tmpcopyup` (podman): the tmpfs starts with a copy of the directory it covers, modes
/// and symlinks kept (runc's "runc run [tmpcopyup]").
fn tmpcopyup_copies_what_it_covers(t: &Ctx) {
    dir_with_mode(t, "dir1", 0o755);
    dir_with_mode(t, "dir1/dir2", 0o777);
    let f = t.rootfs().join("dir1/file");
    fs::write(&f, "copied\n").unwrap();
    t.give(&f);
    symlink("file", t.rootfs().join("dir1/link")).unwrap();
    let script = "stat -c %a /dir1/dir2; cat /dir1/link; grep -c ' /dir1 tmpfs ' /proc/mounts; \
                  echo new > /dir1/new && cat /dir1/new";
    let b = t.bundle().args(&["sh", "-c", script]);
    let b = add_mount(
        b,
        json!({"destination": "/dir1", "type": "tmpfs", "source": "tmpfs",
               "options": ["tmpcopyup"]}),
    );
    let out = run(t, &b, "copyup", &[]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines, ["777", "copied", "1", "new"], "{out}");
    assert!(
        !t.rootfs().join("dir1/new").exists(),
        "the write reached the image"
    );
}

/// Item 11: a read-only tmpfs, and a read-only /dev, are mounted writable first (devices go
/// in) and made read-only after, as runc does (before, `ro` on /dev failed the device setup).
fn read_only_tmpfs_and_dev(t: &Ctx) {
    let b = t
        .bundle()
        .args(&[
            "sh",
            "-c",
            "grep -E '^tmpfs /(dev|mnt) ' /proc/mounts; ls /dev/null",
        ])
        .edit(|c| {
            for m in c["mounts"].as_array_mut().unwrap() {
                if m["destination"] == "/dev" {
                    m["options"].as_array_mut().unwrap().push(json!("ro"));
                }
            }
        });
    let b = add_mount(
        b,
        json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
               "options": ["ro", "nodev", "nosuid", "mode=755"]}),
    );
    let out = run(t, &b, "rodev", &[]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for l in &lines[..2] {
        assert!(
            l.split(' ').nth(3).unwrap_or("").starts_with("ro,"),
            "{out}"
        );
    }
    assert_eq!(lines[2], "/dev/null", "{out}");
}

/// Item 11: `linux.rootfsPropagation: shared` leaves the container's `/` shared (runc's
/// mounts_propagation.bats), not private.
fn rootfs_propagation_shared(t: &Ctx) {
    let b = t
        .bundle()
        .probe(&[])
        .set("/linux/rootfsPropagation", json!("shared"));
    let p = run(t, &b, "shared", &[]).ok().probe();
    let root = p.mount("/").unwrap_or_else(|| panic!("no / in {}", p.0));
    let optional = root["optional"].as_str().unwrap_or("");
    assert!(optional.contains("shared:"), "/ is not shared: {root}");
}

/// Item 11: under --no-pivot the host's proc stays in the mount namespace, and while it is fully
/// visible the kernel lets a user namespace made inside mount a bare /proc (runc's no_pivot.bats:
/// `unshare -mrpf mount -t proc`). The mount must fail.
fn no_pivot_cannot_mount_a_bare_proc(t: &Ctx) {
    dir_with_mode(t, "newproc", 0o777);
    let script = "husk-probe nest mount -t proc proc /newproc; echo rc=$?";
    // Mapping root onto root in the nested namespace needs CAP_SETFCAP (Linux 5.12+).
    let b = t.bundle().args(&["sh", "-c", script]).edit(|c| {
        let caps = &mut c["process"]["capabilities"];
        for set in ["bounding", "effective", "permitted"] {
            caps[set].as_array_mut().unwrap().push(json!("CAP_SETFCAP"));
        }
    });
    let out = run(t, &b, "nopivot", &["--no-pivot"]).ok();
    assert!(
        out.stdout.contains("rc=") && !out.stdout.contains("rc=0"),
        "{out}"
    );
}

/// youki contest `prohibit_symlink`: a /proc or /sys in the image that is a symlink (here a loop
/// to itself, as the contest makes it) or a file fails create in runc's words, and leaves nothing.
fn proc_and_sysfs_need_an_ordinary_directory(t: &Ctx) {
    let root = t.rootfs();
    fs::remove_dir(root.join("proc")).unwrap();
    symlink(root.join("proc"), root.join("proc")).unwrap();
    let b = t.bundle().probe(&["exit", "0"]);
    let out = run(t, &b, "proclink", &[]).fails();
    assert!(
        out.stderr.contains("mount proc on /proc: filesystem"),
        "{out}"
    );
    assert!(
        out.stderr.contains("must be mounted on ordinary directory"),
        "{out}"
    );
    fs::remove_file(root.join("proc")).unwrap();
    t.mkdir(&root.join("proc"));
    // The rootless bundle binds the host's /sys (no sysfs of its own without a network namespace).
    if t.mode == Mode::Rootless {
        return t.assert_nothing_left();
    }
    let sys = root.join("sys");
    let _ = fs::remove_dir(&sys);
    fs::write(&sys, "").unwrap();
    t.give(&sys);
    let out = run(t, &b, "sysfile", &[]).fails();
    assert!(
        out.stderr.contains("mount sysfs on /sys: filesystem"),
        "{out}"
    );
    assert!(
        out.stderr.contains("must be mounted on ordinary directory"),
        "{out}"
    );
    t.assert_nothing_left();
}

/// crun's mount-bind-to-rootfs: a bind mount on / itself (listed first) covers the rootfs; the
/// mounts after it, /dev and pivot_root land on the new top, and the read-only root is remounted
/// there (before: "remount /: ENOENT", /proc being under the covered directory). Root only, as
/// crun's: rootless, the top directory would have to belong to the test user.
fn bind_mount_onto_the_root(t: &Ctx) {
    let top = t.mkdir(&t.dir.join("top"));
    t.mkdir(&top.join("bin"));
    fs::copy(
        t.rootfs().join("bin/husk-probe"),
        top.join("bin/husk-probe"),
    )
    .unwrap();
    let b = t
        .bundle()
        .probe(&[])
        .set("/root/readonly", json!(true))
        .edit(|c| {
            let bind =
                json!({"destination": "/", "type": "bind", "source": top, "options": ["bind"]});
            c["mounts"].as_array_mut().unwrap().insert(0, bind);
        });
    let p = run(t, &b, "bindroot", &[]).ok().probe();
    assert!(
        p.mount("/proc").is_some(),
        "no /proc on the new top: {}",
        p.0
    );
    assert!(top.join("proc").is_dir(), "/proc not made on the bound top");
    t.assert_nothing_left();
}
