//! The launcher's session root ([`husk_launcher::underlay`]): an image lacking mount points
//! (/etc/hosts, $HOME, a --bind destination, a dangling /etc/resolv.conf link) still shows the host's
//! files there, is never written to, and stays read-only; the fast path and the supervised path
//! (HUSK_NO_FASTPATH=1) see the same. The image is this case's own copy of the busybox rootfs,
//! owned by the caller when rootless, so a stray write would succeed and show in its listing.

use crate::both;
use crate::harness::{host, overlayfs_for, Ctx, Mode, Out, Probe};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

both!(
    missing_mount_points_never_touch_the_image,
    a_missing_top_level_entry_gets_the_skeleton_root,
    writable_still_writes_into_the_image_only,
);

/// Every entry under `dir`: path, type, mode, size, mtime, link target. Sorted.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, rel: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let m = std::fs::symlink_metadata(&p).unwrap();
            let r = rel.join(p.file_name().unwrap());
            let link = std::fs::read_link(&p).map(|t| t.display().to_string());
            out.push(format!(
                "{} {:o} {} {} {} {}",
                r.display(),
                m.mode(),
                m.len(),
                m.mtime(),
                m.mtime_nsec(),
                link.unwrap_or_default()
            ));
            if m.is_dir() {
                walk(&p, &r, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, Path::new(""), &mut out);
    out
}

/// This case's image: the busybox rootfs copy, without /home/tuser (so a rootless $HOME has no
/// mount point) and with a dangling /etc/resolv.conf link as in Ubuntu-based images. busybox has
/// no /etc/hosts.
fn image(t: &Ctx) -> PathBuf {
    let img = t.rootfs().to_path_buf();
    let _ = std::fs::remove_dir(img.join("home/tuser"));
    let link = img.join("etc/resolv.conf");
    std::os::unix::fs::symlink("../run/systemd/resolve/stub-resolv.conf", &link).unwrap();
    t.give(&link);
    img
}

/// A host directory with a marker file, to --bind somewhere the image has nothing.
fn data(t: &Ctx) -> PathBuf {
    let d = t.mkdir(&t.dir.join("data"));
    std::fs::write(d.join("marker"), "from the host\n").unwrap();
    t.give(&d.join("marker"));
    d
}

/// `husk exec FLAGS IMAGE CMD` on the fast path and on the supervised one: both must succeed
/// with the same output, which is returned.
fn exec_both(t: &Ctx, flags: &[&str], img: &Path, cmd: &[&str]) -> String {
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.push(img.to_str().unwrap());
    args.extend_from_slice(cmd);
    let fast = t.rt(&args).ok();
    let slow = t.rt_env(&args, &[("HUSK_NO_FASTPATH", "1")]).ok();
    assert_eq!(
        fast.stdout, slow.stdout,
        "fast:\n{fast}\nsupervised:\n{slow}"
    );
    fast.stdout
}

fn probe(t: &Ctx, flags: &[&str], img: &Path) -> Probe {
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[img.to_str().unwrap(), "/bin/husk-probe"]);
    t.rt(&args).ok().probe()
}

/// Fails with "Read-only file system", inside.
fn read_only(t: &Ctx, flags: &[&str], img: &Path, path: &str) {
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[img.to_str().unwrap(), "touch", path]);
    let out: Out = t.rt(&args);
    assert!(
        out.code != 0 && out.stderr.contains("Read-only file system"),
        "touch {path}: {out}"
    );
}

fn host_file(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn missing_mount_points_never_touch_the_image(t: &Ctx) {
    let img = image(t);
    let data = data(t);
    let before = listing(&img);
    let bind = format!("{}:/home/husk-it/data", data.display());
    let flags = ["--bind", bind.as_str()];
    let out = exec_both(t, &flags, &img, &["cat", "/etc/hosts"]);
    assert_eq!(Some(out), host_file("/etc/hosts"));
    if let Some(want) = host_file("/etc/resolv.conf") {
        // Through the image's dangling link: its target is made in an overlay, then bound.
        let out = exec_both(t, &flags, &img, &["cat", "/etc/resolv.conf"]);
        assert_eq!(out, want);
    }
    let out = exec_both(t, &flags, &img, &["cat", "/home/husk-it/data/marker"]);
    assert_eq!(out, "from the host\n");
    // $HOME (missing from the image when rootless) is the caller's.
    let out = exec_both(t, &flags, &img, &["sh", "-c", "ls -d \"$HOME\""]);
    let home = match t.mode {
        Mode::Root => std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
        Mode::Rootless => host().user.clone().unwrap().2,
    };
    assert_eq!(out.trim(), home);
    for path in ["/newfile", "/etc/newfile", "/home/newfile"] {
        read_only(t, &flags, &img, path);
    }
    let p = probe(t, &flags, &img);
    assert!(
        p.mount("/etc/hosts").is_some(),
        "no /etc/hosts mount: {}",
        p.0
    );
    if overlayfs_for(t.mode) {
        // One overlay for /etc, not a bind of each of its entries; the root is the image.
        let under_etc: Vec<_> = p.0["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["target"].as_str().is_some_and(|s| s.starts_with("/etc/")))
            .collect();
        assert!(under_etc.len() <= 4, "binds under /etc: {under_etc:?}");
        assert_eq!(p.mount("/etc").unwrap()["fstype"], "overlay", "{}", p.0);
        assert_eq!(p.mount("/home").unwrap()["fstype"], "overlay", "{}", p.0);
    }
    assert_eq!(listing(&img), before, "the image changed");
    t.assert_nothing_left();
}

fn a_missing_top_level_entry_gets_the_skeleton_root(t: &Ctx) {
    let img = image(t);
    let data = data(t);
    let before = listing(&img);
    let bind = format!("{}:/newtop/data", data.display());
    let flags = ["--bind", bind.as_str()];
    let out = exec_both(t, &flags, &img, &["cat", "/newtop/data/marker"]);
    assert_eq!(out, "from the host\n");
    let out = exec_both(t, &flags, &img, &["ls", "/"]);
    for name in ["bin", "etc", "newtop", "usr"] {
        assert!(
            out.lines().any(|l| l == name),
            "{name} missing from /: {out}"
        );
    }
    // The image's entries are all there, hosts and a file of the image's /etc alike.
    let out = exec_both(t, &flags, &img, &["cat", "/etc/hostname", "/etc/hosts"]);
    assert_eq!(
        Some(out),
        host_file("/etc/hosts").map(|h| format!("husk\n{h}"))
    );
    for path in ["/newfile", "/newtop/newfile", "/etc/newfile"] {
        read_only(t, &flags, &img, path);
    }
    assert_eq!(listing(&img), before, "the image changed");
    t.assert_nothing_left();
}

fn writable_still_writes_into_the_image_only(t: &Ctx) {
    let img = image(t);
    // A new file in a directory of the image (the copy's directories are the caller's; its files
    // are hard links to the shared rootfs, so none is written to).
    let out = exec_both(
        t,
        &["--writable"],
        &img,
        &["sh", "-c", "echo w > /usr/written; cat /etc/hosts"],
    );
    assert_eq!(Some(out), host_file("/etc/hosts"));
    assert_eq!(
        std::fs::read_to_string(img.join("usr/written")).unwrap(),
        "w\n"
    );
    // Mount points the image lacks were not made in it.
    assert!(!img.join("etc/hosts").exists());
    assert!(std::fs::symlink_metadata(img.join("etc/resolv.conf"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!img.join("run/systemd").exists());
    if t.mode == Mode::Rootless {
        assert!(!img.join("home/tuser").exists());
    }
    t.assert_nothing_left();
}
