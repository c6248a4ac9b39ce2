//! `unpack_layer` on crafted tarballs: escapes, entry kinds, metadata.

use crate::common::{gzip, is_root, zstd, Layer};
use husk_image::{unpack_layer, Error, UnpackOptions};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn unpack(tar: &[u8], target: &Path) -> husk_image::Result<husk_image::Unpacked> {
    unpack_layer(tar, target, &UnpackOptions::default())
}

struct Scratch {
    _tmp: tempfile::TempDir,
    target: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn scratch() -> Scratch {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("target");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), "host").unwrap();
    Scratch {
        target,
        outside,
        _tmp: tmp,
    }
}

fn outside_untouched(s: &Scratch) {
    let names: Vec<_> = std::fs::read_dir(&s.outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        ["secret"],
        "something was written outside the target"
    );
    let md = std::fs::metadata(s.outside.join("secret")).unwrap();
    assert_eq!(md.nlink(), 1, "host file got a hardlink");
    assert_eq!(
        std::fs::read_to_string(s.outside.join("secret")).unwrap(),
        "host"
    );
}

#[test]
fn dotdot_entry_is_refused() {
    let s = scratch();
    let tar = Layer::new().file("../outside/evil", b"x", 0o644).tar();
    let err = unpack(&tar, &s.target).unwrap_err();
    assert!(matches!(err, Error::UnsafeEntry { .. }), "{err}");
    assert!(err.to_string().contains("../outside/evil"), "{err}");
    outside_untouched(&s);
}

#[test]
fn absolute_entry_lands_inside() {
    let s = scratch();
    let evil = format!("{}/evil", s.outside.display());
    let tar = Layer::new().file(&evil, b"x", 0o644).tar();
    unpack(&tar, &s.target).unwrap();
    assert!(s.target.join(evil.trim_start_matches('/')).is_file());
    outside_untouched(&s);
}

#[test]
fn symlink_escape_resolves_inside() {
    let s = scratch();
    // a -> /etc, then a/passwd: written to target/etc/passwd, never the host's.
    let tar = Layer::new()
        .dir("etc", 0o755)
        .symlink("a", "/etc")
        .file("a/passwd", b"inside", 0o644)
        .symlink("up", "../../../../..")
        .file("up/uptop", b"inside", 0o644)
        .tar();
    unpack(&tar, &s.target).unwrap();
    assert_eq!(
        std::fs::read_to_string(s.target.join("etc/passwd")).unwrap(),
        "inside"
    );
    assert!(s.target.join("uptop").is_file());
    assert_eq!(
        std::fs::read_link(s.target.join("a")).unwrap(),
        Path::new("/etc")
    );

    // A symlink to the real outside dir: resolving it inside finds nothing there; refused.
    let s = scratch();
    let tar = Layer::new()
        .symlink("b", &s.outside.display().to_string())
        .file("b/secret", b"pwned", 0o644)
        .tar();
    assert!(unpack(&tar, &s.target).is_err());
    outside_untouched(&s);
}

#[test]
fn hardlink_escapes_are_refused() {
    let s = scratch();
    let tar = Layer::new().hardlink("h", "../outside/secret").tar();
    let err = unpack(&tar, &s.target).unwrap_err();
    assert!(matches!(err, Error::UnsafeEntry { .. }), "{err}");

    let abs = format!("{}/secret", s.outside.display());
    let tar = Layer::new().hardlink("h", &abs).tar();
    assert!(unpack(&tar, &s.target).is_err());

    let tar = Layer::new()
        .symlink("l", &s.outside.display().to_string())
        .hardlink("h", "l/secret")
        .tar();
    assert!(unpack(&tar, &s.target).is_err());
    outside_untouched(&s);
}

#[test]
fn hardlinks_and_symlinks_within_layer() {
    let s = scratch();
    let tar = Layer::new()
        .file("bin/busybox", b"elf", 0o755)
        .hardlink("bin/sh", "bin/busybox")
        .hardlink("bin/abs", "/bin/busybox")
        .symlink("bin/ls", "busybox")
        .symlink("dangling", "/nowhere")
        .tar();
    unpack(&tar, &s.target).unwrap();
    let ino = |p: &str| std::fs::metadata(s.target.join(p)).unwrap().ino();
    assert_eq!(ino("bin/busybox"), ino("bin/sh"));
    assert_eq!(ino("bin/busybox"), ino("bin/abs"));
    assert_eq!(
        std::fs::read_link(s.target.join("bin/ls")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        std::fs::read_link(s.target.join("dangling")).unwrap(),
        Path::new("/nowhere")
    );
}

#[test]
fn modes_mtimes_and_deferred_dir_modes() {
    let s = scratch();
    let tar = Layer::new()
        .dir("ro", 0o555)
        .file("ro/child", b"x", 0o640)
        .file("suid", b"x", 0o4755)
        .fifo("pipe")
        .tar();
    unpack(&tar, &s.target).unwrap();
    let md = |p: &str| std::fs::symlink_metadata(s.target.join(p)).unwrap();
    assert_eq!(md("ro/child").permissions().mode() & 0o7777, 0o640);
    assert_eq!(md("ro/child").mtime(), 1_600_000_000);
    assert_eq!(md("suid").permissions().mode() & 0o7777, 0o4755);
    assert_eq!(md("pipe").permissions().mode() & 0o7777, 0o640);
    // Rootless, directories get u+rwx so the caller can manage its cache.
    let want = if is_root() { 0o555 } else { 0o755 };
    assert_eq!(md("ro").permissions().mode() & 0o7777, want);
    assert_eq!(md("ro").mtime(), 1_600_000_000);
}

#[test]
fn ownership_root_keeps_ids_rootless_owns() {
    let s = scratch();
    let tar = Layer::new().owned_file("f", b"x", 1234, 5678).tar();
    unpack(&tar, &s.target).unwrap();
    let md = std::fs::metadata(s.target.join("f")).unwrap();
    if is_root() {
        assert_eq!((md.uid(), md.gid()), (1234, 5678));
    } else {
        let me = nix::unistd::geteuid().as_raw();
        assert_eq!(md.uid(), me);
    }
    // Forced rootless behaviour, also as root.
    let s = scratch();
    let opts = UnpackOptions { same_owner: false };
    unpack_layer(&tar[..], &s.target, &opts).unwrap();
    let md = std::fs::metadata(s.target.join("f")).unwrap();
    assert_eq!(md.uid(), nix::unistd::geteuid().as_raw());
}

#[test]
fn device_nodes_need_privilege() {
    let s = scratch();
    let tar = Layer::new().char_dev("dev/null", 1, 3).tar();
    let u = unpack(&tar, &s.target).unwrap();
    let node = s.target.join("dev/null");
    if is_root() && u.warnings.is_empty() {
        use std::os::unix::fs::FileTypeExt;
        let md = std::fs::symlink_metadata(&node).unwrap();
        assert!(md.file_type().is_char_device());
        assert_eq!(md.rdev(), nix::sys::stat::makedev(1, 3));
    } else {
        assert!(!node.exists());
        assert!(
            u.warnings.iter().any(|w| w.contains("dev/null")),
            "{:?}",
            u.warnings
        );
    }
}

#[test]
fn xattrs_set_or_warned() {
    let s = scratch();
    let tar = Layer::new()
        .file_with_xattr("f", b"x", "user.husk", b"yes")
        .file_with_xattr("cap", b"x", "security.capability", b"\x01\x00\x00\x02")
        .tar();
    let u = unpack(&tar, &s.target).unwrap();
    match xattr::get(s.target.join("f"), "user.husk").unwrap_or(None) {
        Some(v) => assert_eq!(v, b"yes"),
        None => assert!(
            u.warnings.iter().any(|w| w.contains("user.husk")),
            "{:?}",
            u.warnings
        ),
    }
    // An invalid capability blob is refused by the kernel (EINVAL): a warning, never an error.
    let cap = xattr::get(s.target.join("cap"), "security.capability").unwrap_or(None);
    assert!(cap.is_some() || u.warnings.iter().any(|w| w.contains("security.capability")));
}

#[test]
fn later_entries_replace_earlier() {
    let s = scratch();
    let tar = Layer::new()
        .file("x", b"file", 0o644)
        .dir("x", 0o755)
        .file("x/y", b"child", 0o644)
        .dir("d", 0o755)
        .file("d/z", b"z", 0o644)
        .symlink("d", "x")
        .file("f", b"one", 0o644)
        .file("f", b"two", 0o644)
        .tar();
    unpack(&tar, &s.target).unwrap();
    assert!(s.target.join("x/y").is_file());
    assert!(std::fs::symlink_metadata(s.target.join("d"))
        .unwrap()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(s.target.join("f")).unwrap(), "two");
}

#[test]
fn compressed_layers_by_magic() {
    let tar = Layer::new().file("hello", b"world", 0o644).tar();
    for data in [gzip(&tar), zstd(&tar)] {
        let s = scratch();
        unpack(&data, &s.target).unwrap();
        assert_eq!(
            std::fs::read_to_string(s.target.join("hello")).unwrap(),
            "world"
        );
    }
}

#[test]
fn truncated_layer_is_corrupt() {
    let s = scratch();
    let big: Vec<u8> = (0..200_000u64).map(|i| (i * 7919 % 251) as u8).collect();
    let gz = gzip(&Layer::new().file("big", &big, 0o644).tar());
    let err = unpack(&gz[..gz.len() / 2], &s.target).unwrap_err();
    assert!(matches!(err, Error::CorruptArchive { .. }), "{err}");
}
