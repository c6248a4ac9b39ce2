//! `Cache::import` on hand-built images: layering, whiteouts, cache hits, every error, the cache verbs.

use crate::common::{cache_entries, docker_archive, gzip, is_root, zstd, Layer, Layout};
use husk_image::{Cache, Clean, Error, ImageRef};
use std::path::{Path, PathBuf};

struct Env {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    cache: Cache,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let cache = Cache::new(dir.join("cache"));
    Env {
        _tmp: tmp,
        dir,
        cache,
    }
}

fn oci(dir: &Path, tag: &str) -> ImageRef {
    ImageRef::parse(&format!("oci:{}:{tag}", dir.display())).unwrap()
}

fn base_layer() -> Vec<u8> {
    Layer::new()
        .dir("bin", 0o755)
        .file("bin/busybox", b"elf", 0o755)
        .symlink("bin/sh", "busybox")
        .dir("etc", 0o755)
        .file("etc/gone", b"old", 0o644)
        .dir("etc/gonedir", 0o755)
        .file("etc/gonedir/f", b"old", 0o644)
        .dir("opq", 0o755)
        .file("opq/lower", b"lower", 0o644)
        .file("keep", b"lower", 0o644)
        .tar()
}

fn upper_layer() -> Vec<u8> {
    Layer::new()
        .dir("etc", 0o755)
        .file("etc/.wh.gone", b"", 0o644)
        .file("etc/.wh.gonedir", b"", 0o644)
        .dir("opq", 0o700)
        .file("opq/.wh..wh..opq", b"", 0o644)
        .file("opq/upper", b"upper", 0o644)
        .file("keep", b"upper", 0o600)
        .tar()
}

/// Nothing committed, nothing left in tmp/.
fn cache_is_clean(cache: &Path) {
    let left: Vec<String> = cache_entries(cache)
        .into_iter()
        .filter(|e| !e.starts_with("layers/"))
        .collect();
    assert!(left.is_empty(), "left in the cache: {left:?}");
}

#[test]
fn two_layers_whiteouts_opaque_and_cache_hit() {
    let e = env();
    let mut layout = Layout::new(&e.dir.join("oci"));
    let built = layout.image("v1", &[base_layer(), upper_layer()]);
    let img = e.cache.import(&oci(&layout.dir, "v1")).unwrap();
    assert_eq!(img.digest.as_ref(), Some(&built.manifest));
    assert_eq!(img.key, built.manifest.hex());
    assert_eq!(img.stats.layers_unpacked, 2);
    assert!(!img.stats.cached);
    let r = &img.rootfs;
    assert!(r.starts_with(e.cache.root().join("rootfs")));
    assert_eq!(std::fs::read(r.join("bin/busybox")).unwrap(), b"elf");
    assert!(
        !r.join("etc/gone").exists(),
        "whiteout did not delete the file"
    );
    assert!(
        !r.join("etc/gonedir").exists(),
        "whiteout did not delete the dir"
    );
    assert!(
        !r.join("etc/.wh.gone").exists(),
        "whiteout marker leaked into the rootfs"
    );
    assert!(
        !r.join("opq/lower").exists(),
        "opaque dir kept a lower entry"
    );
    assert!(r.join("opq/upper").exists());
    assert!(!r.join("opq/.wh..wh..opq").exists());
    assert_eq!(std::fs::read_to_string(r.join("keep")).unwrap(), "upper");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(r.join("opq"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700, "upper dir metadata wins");
    let c = &img.config;
    assert_eq!(c.cmd, ["/bin/sh"]);
    assert_eq!(c.env, ["PATH=/bin", "A=b"]);
    assert_eq!(
        (c.working_dir.as_str(), c.user.as_str()),
        ("/tmp", "1000:1000")
    );
    assert_eq!(c.labels.get("k").map(String::as_str), Some("v"));
    assert!(c.entrypoint.is_empty());

    let again = e.cache.import(&oci(&layout.dir, "v1")).unwrap();
    assert!(again.stats.cached);
    assert_eq!(again.stats.layers_unpacked, 0);
    assert_eq!(again.rootfs, img.rootfs);
    assert_eq!(again.config, img.config);

    // Another image sharing the base layer unpacks only its own.
    let other = layout.image("v2", &[base_layer()]);
    let img2 = e.cache.import(&oci(&layout.dir, "v2")).unwrap();
    assert_eq!(img2.digest.as_ref(), Some(&other.manifest));
    assert_eq!(
        (img2.stats.layers_cached, img2.stats.layers_unpacked),
        (1, 0)
    );
    assert!(img2.rootfs.join("etc/gone").is_file());
}

#[test]
fn tag_defaults_and_errors() {
    let e = env();
    let mut layout = Layout::new(&e.dir.join("oci"));
    layout.image("only", &[base_layer()]);
    let bare = ImageRef::parse(&format!("oci:{}", layout.dir.display())).unwrap();
    e.cache.import(&bare).unwrap();
    layout.image("second", &[upper_layer()]);
    let err = e.cache.import(&bare).unwrap_err();
    assert!(matches!(err, Error::AmbiguousTag { .. }), "{err}");
    assert!(err.to_string().contains("only, second"), "{err}");
    let err = e.cache.import(&oci(&layout.dir, "nope")).unwrap_err();
    assert!(matches!(err, Error::TagNotFound { .. }), "{err}");
    // A bare path to a layout works too (tag "latest" or the only one).
    let e2 = env();
    let mut l2 = Layout::new(&e2.dir.join("oci"));
    l2.image("latest", &[base_layer()]);
    l2.image("other", &[upper_layer()]);
    let img = e2.cache.import(&ImageRef::Path(l2.dir.clone())).unwrap();
    assert!(img.rootfs.join("bin/busybox").exists());
}

#[test]
fn missing_image_paths() {
    let e = env();
    let missing = e.dir.join("nope");
    for r in [
        ImageRef::Path(missing.clone()),
        oci(&missing, "t"),
        ImageRef::parse(&format!("oci-archive:{}", missing.display())).unwrap(),
        ImageRef::parse(&format!("docker-archive:{}", missing.display())).unwrap(),
    ] {
        let err = e.cache.import(&r).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{r}: {err}");
        assert!(err.to_string().contains("nope"), "{err}");
    }
    std::fs::create_dir(&missing).unwrap();
    let err = e.cache.import(&oci(&missing, "t")).unwrap_err();
    assert!(matches!(err, Error::NotOciLayout { .. }), "{err}");
    let junk = e.dir.join("junk");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    let err = e.cache.import(&ImageRef::Path(junk)).unwrap_err();
    assert!(matches!(err, Error::NotAnImage { .. }), "{err}");
}

#[test]
fn plain_rootfs_dir_is_used_in_place() {
    let e = env();
    let root = e.dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    let img = e.cache.import(&ImageRef::Path(root.clone())).unwrap();
    assert_eq!(img.rootfs, root.canonicalize().unwrap());
    assert!(img.digest.is_none());
    assert!(
        !e.cache.root().exists(),
        "a plain dir must not touch the cache"
    );
}

#[test]
fn unreachable_registry_is_one_error_and_leaves_no_litter() {
    let e = env();
    // Port 1 on loopback: nothing listens (plain http, so no TLS in the way).
    let err = e
        .cache
        .import(&ImageRef::parse("docker://127.0.0.1:1/busybox").unwrap())
        .unwrap_err();
    assert!(matches!(err, Error::RegistryTransport { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("http://127.0.0.1:1/v2/busybox/manifests/latest"),
        "{err}"
    );
    assert!(std::fs::read_dir(e.cache.root().join("tmp"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn wrong_layer_digest_leaves_nothing() {
    let e = env();
    let mut layout = Layout::new(&e.dir.join("oci"));
    let built = layout.image("t", &[base_layer()]);
    // Same size, different bytes: a flipped gzip payload byte is a mismatch (or corrupt).
    let blob = layout.blob_path(&built.layers[0]);
    let mut data = std::fs::read(&blob).unwrap();
    let tamper = gzip(&Layer::new().file("evil", b"x", 0o644).tar());
    data = tamper
        .into_iter()
        .chain(std::iter::repeat(0))
        .take(data.len().max(1))
        .collect();
    std::fs::write(&blob, data).unwrap();
    let err = e.cache.import(&oci(&layout.dir, "t")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::DigestMismatch { .. } | Error::CorruptArchive { .. }
        ),
        "{err}"
    );
    assert!(
        cache_entries(e.cache.root()).is_empty(),
        "{:?}",
        cache_entries(e.cache.root())
    );
}

#[test]
fn wrong_digest_of_valid_layer_is_a_mismatch() {
    let e = env();
    let mut layout = Layout::new(&e.dir.join("oci"));
    let built = layout.image("t", &[base_layer()]);
    // A valid gzip of a valid tar under the old name: only the digest can tell.
    let blob = layout.blob_path(&built.layers[0]);
    std::fs::write(&blob, gzip(&upper_layer())).unwrap();
    let err = e.cache.import(&oci(&layout.dir, "t")).unwrap_err();
    // Its size differs from the descriptor's too, which is checked first (issue 12, item 13).
    assert!(
        matches!(
            err,
            Error::DigestMismatch { .. } | Error::SizeMismatch { .. }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains(&built.layers[0].to_string()),
        "{err}"
    );
    assert!(cache_entries(e.cache.root()).is_empty());
    // A tampered config is caught before any layer is read.
    std::fs::write(layout.blob_path(&built.config), b"{}").unwrap();
    let err = e.cache.import(&oci(&layout.dir, "t")).unwrap_err();
    assert!(err.to_string().starts_with("verify config"), "{err}");
}

#[test]
fn missing_blob() {
    let e = env();
    let mut layout = Layout::new(&e.dir.join("oci"));
    let built = layout.image("t", &[base_layer()]);
    std::fs::remove_file(layout.blob_path(&built.layers[0])).unwrap();
    let err = e.cache.import(&oci(&layout.dir, "t")).unwrap_err();
    assert!(matches!(err, Error::MissingBlob { .. }), "{err}");
    assert!(err.to_string().contains(built.layers[0].hex()), "{err}");
    cache_is_clean(e.cache.root());
}

#[test]
fn unsupported_media_type() {
    let e = env();
    let mut layout = Layout::new(&e.dir.join("oci"));
    layout.image_with(
        "t",
        &[base_layer()],
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
        gzip,
    );
    let err = e.cache.import(&oci(&layout.dir, "t")).unwrap_err();
    assert!(matches!(err, Error::UnsupportedMediaType { .. }), "{err}");
    assert!(err.to_string().contains("helm"), "{err}");
    cache_is_clean(e.cache.root());
}

#[test]
fn corrupt_layer_leaves_nothing() {
    let e = env();
    let mut layout = Layout::new(&e.dir.join("oci"));
    let big: Vec<u8> = (0..300_000u64).map(|i| (i * 7919 % 251) as u8).collect();
    let truncate = |d: &[u8]| {
        let gz = gzip(d);
        gz[..gz.len() / 2].to_vec()
    };
    // The blob digest matches the truncated bytes, so only the decompressor can notice.
    let tar = Layer::new().file("big", &big, 0o644).tar();
    layout.image_with(
        "t",
        &[tar],
        "application/vnd.oci.image.layer.v1.tar+gzip",
        truncate,
    );
    let err = e.cache.import(&oci(&layout.dir, "t")).unwrap_err();
    assert!(matches!(err, Error::CorruptArchive { .. }), "{err}");
    assert!(cache_entries(e.cache.root()).is_empty());
}

#[test]
fn zstd_and_uncompressed_layers() {
    let e = env();
    let mut layout = Layout::new(&e.dir.join("oci"));
    let mt = "application/vnd.oci.image.layer.v1.tar+zstd";
    layout.image_with("z", &[base_layer()], mt, zstd);
    let plain = |d: &[u8]| d.to_vec();
    layout.image_with(
        "p",
        &[upper_layer()],
        "application/vnd.oci.image.layer.v1.tar",
        plain,
    );
    for tag in ["z", "p"] {
        let img = e.cache.import(&oci(&layout.dir, tag)).unwrap();
        assert!(img.rootfs.join("keep").is_file(), "{tag}");
    }
}

#[test]
fn docker_archive_verifies_diff_ids() {
    let e = env();
    let (base, upper) = (base_layer(), upper_layer());
    let file = e.dir.join("d.tar");
    // Layers stored gzip'd: diff_id is still the uncompressed digest.
    docker_archive(
        &file,
        "probe/x:1",
        &[base.clone(), upper.clone()],
        &[gzip(&base), upper.clone()],
    );
    let r = ImageRef::parse(&format!("docker-archive:{}", file.display())).unwrap();
    let img = e.cache.import(&r).unwrap();
    assert!(img.rootfs.join("opq/upper").exists() && !img.rootfs.join("etc/gone").exists());
    assert_eq!(img.config.cmd, ["/bin/sh"]);
    let by_tag = ImageRef::parse(&format!("docker-archive:{}:probe/x:1", file.display())).unwrap();
    assert!(e.cache.import(&by_tag).unwrap().stats.cached);
    let bad_tag = ImageRef::parse(&format!("docker-archive:{}:probe/y:1", file.display())).unwrap();
    assert!(matches!(
        e.cache.import(&bad_tag).unwrap_err(),
        Error::TagNotFound { .. }
    ));
    // Bare path: sniffed as a docker-archive, same image.
    let sniffed = e.cache.import(&ImageRef::Path(file.clone())).unwrap();
    assert_eq!(sniffed.key, img.key);

    // Stored content that does not match its diff_id.
    let e = env();
    let file = e.dir.join("bad.tar");
    docker_archive(
        &file,
        "probe/x:1",
        std::slice::from_ref(&base),
        std::slice::from_ref(&upper),
    );
    let r = ImageRef::parse(&format!("docker-archive:{}", file.display())).unwrap();
    let err = e.cache.import(&r).unwrap_err();
    assert!(
        matches!(
            err,
            Error::DigestMismatch {
                what: "layer diff_id",
                ..
            }
        ),
        "{err}"
    );
    assert!(cache_entries(e.cache.root()).is_empty());
}

#[test]
fn progress_reports_each_layer_to_completion() {
    let e = env();
    let mut layout = Layout::new(&e.dir.join("oci"));
    // Incompressible, so the blob spans several 256 KiB progress steps.
    let mut x = 88172645463325252u64;
    let big: Vec<u8> = (0..1_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let built = layout.image(
        "t",
        &[base_layer(), Layer::new().file("big", &big, 0o644).tar()],
    );
    let mut seen = Vec::new();
    e.cache
        .import_with_progress(&oci(&layout.dir, "t"), &mut |p| seen.push(p))
        .unwrap();
    for (i, _) in built.layers.iter().enumerate() {
        let last = seen
            .iter()
            .rev()
            .find(|p| p.index == i)
            .expect("no progress for a layer");
        assert_eq!(last.done, last.total);
        assert_eq!(last.count, 2);
    }
    assert!(
        seen.iter().any(|p| p.done < p.total),
        "no intermediate progress"
    );
}

#[test]
fn launcher_mount_points_are_added_to_the_cached_rootfs() {
    use std::os::unix::fs::PermissionsExt;
    let e = env();
    let mut layout = Layout::new(&e.dir.join("oci"));
    // Like a docker image: no /etc/hosts, /etc/resolv.conf a dangling link, no /tmp or /home.
    let layer = Layer::new()
        .dir("etc", 0o755)
        .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644)
        .symlink("etc/resolv.conf", "../run/resolv.conf")
        .tar();
    layout.image("v1", &[layer]);
    let img = e.cache.import(&oci(&layout.dir, "v1")).unwrap();
    let r = &img.rootfs;
    let mode = |p: &str| {
        std::fs::symlink_metadata(r.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(std::fs::read(r.join("etc/hosts")).unwrap(), b"");
    assert_eq!(mode("etc/hosts"), 0o644);
    assert_eq!(mode("tmp"), 0o1777);
    for d in ["proc", "sys", "dev", "home"] {
        assert!(r.join(d).is_dir(), "{d}");
        assert_eq!(mode(d), 0o755, "{d}");
    }
    // What the image has is left as it is, a link included (nothing made through it).
    assert_eq!(
        std::fs::read_to_string(r.join("etc/passwd")).unwrap(),
        "root:x:0:0::/root:/bin/sh\n"
    );
    assert_eq!(
        std::fs::read_link(r.join("etc/resolv.conf")).unwrap(),
        Path::new("../run/resolv.conf")
    );
    assert!(!r.join("run").exists());
    // The layer itself (shared with other images) gets nothing.
    let layer_dir = e
        .cache
        .root()
        .join("layers/sha256")
        .join(img.layers[0].hex());
    assert!(!layer_dir.join("etc/hosts").exists());

    // An image whose /etc is a link gets no files through it.
    let layer = Layer::new().dir("real", 0o755).symlink("etc", "real").tar();
    layout.image("v2", &[layer]);
    let img = e.cache.import(&oci(&layout.dir, "v2")).unwrap();
    assert!(std::fs::symlink_metadata(img.rootfs.join("etc"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::read_dir(img.rootfs.join("real"))
        .unwrap()
        .next()
        .is_none());
    assert!(img.rootfs.join("tmp").is_dir());
}

#[test]
fn list_remove_clean() {
    let e = env();
    let mut layout = Layout::new(&e.dir.join("oci"));
    let a = layout.image("a", &[base_layer()]);
    let b = layout.image("b", &[base_layer(), upper_layer()]);
    let ra = oci(&layout.dir, "a");
    e.cache.import(&ra).unwrap();
    let img_b = e.cache.import(&oci(&layout.dir, "b")).unwrap();
    let keys: Vec<String> = e.cache.list().unwrap().into_iter().map(|i| i.key).collect();
    let mut want = vec![a.manifest.hex().to_string(), b.manifest.hex().to_string()];
    want.sort();
    assert_eq!(keys, want);

    // By source; layers stay until clean.
    let removed = e.cache.remove(&ra.to_string()).unwrap();
    assert_eq!(removed.key, a.manifest.hex());
    assert!(!removed.rootfs.exists());
    assert!(matches!(
        e.cache.remove(a.manifest.hex()),
        Err(Error::UnknownImage { .. })
    ));
    let n = e.cache.clean(Clean::Unused).unwrap();
    assert_eq!(n.layers, 0, "base layer is still used by b");
    assert!(img_b.rootfs.join("keep").exists());

    e.cache.remove(&b.manifest.to_string()[..20]).unwrap();
    let n = e.cache.clean(Clean::Unused).unwrap();
    assert_eq!(n.layers, 2);
    assert!(cache_entries(e.cache.root()).is_empty());

    e.cache.import(&ra).unwrap();
    let n = e.cache.clean(Clean::All).unwrap();
    assert_eq!((n.images, n.rootfs, n.layers), (1, 1, 1));
    assert!(e.cache.list().unwrap().is_empty());
}

#[test]
fn concurrent_imports_unpack_once() {
    let e = env();
    let mut layout = Layout::new(&e.dir.join("oci"));
    layout.image("t", &[base_layer(), upper_layer()]);
    let r = oci(&layout.dir, "t");
    // flock locks belong to open file descriptions, so threads exclude each other like processes.
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| Cache::new(e.cache.root()).import(&r).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let unpacked: usize = results.iter().map(|i| i.stats.layers_unpacked).sum();
    assert_eq!(unpacked, 2);
    assert_eq!(results.iter().filter(|i| !i.stats.cached).count(), 1);
    assert!(results.iter().all(|i| i.rootfs == results[0].rootfs));
    let tmp: Vec<_> = std::fs::read_dir(e.cache.root().join("tmp"))
        .unwrap()
        .collect();
    assert!(tmp.is_empty());
}

#[test]
fn interrupted_import_is_never_used() {
    let e = env();
    let mut layout = Layout::new(&e.dir.join("oci"));
    let built = layout.image("t", &[base_layer()]);
    // What a crash mid-unpack leaves: a work dir in tmp/. It is ignored and cleaned.
    let junk = e
        .cache
        .root()
        .join(format!("tmp/layer-{}-999999", built.layers[0].hex()));
    std::fs::create_dir_all(&junk).unwrap();
    let img = e.cache.import(&oci(&layout.dir, "t")).unwrap();
    assert_eq!(img.stats.layers_unpacked, 1);
    assert_eq!(e.cache.clean(Clean::Unused).unwrap().tmp, 1);
    assert!(img.rootfs.join("bin/busybox").exists());
}

/// A full disk: a 1 MiB tmpfs holding the cache, a 3 MiB layer. Root only (mount).
#[test]
fn no_space_is_reported_and_nothing_committed() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let e = env();
    let small = e.dir.join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "husk-enospc"])
        .arg(&small)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(
            std::env::var("HUSK_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
            "mount tmpfs failed"
        );
        eprintln!("skipped: cannot mount tmpfs");
        return;
    }
    let cache = Cache::new(small.join("cache"));
    let mut layout = Layout::new(&e.dir.join("oci"));
    let big: Vec<u8> = (0..3_000_000u64).map(|i| (i * 7919 % 251) as u8).collect();
    layout.image("t", &[Layer::new().file("big", &big, 0o644).tar()]);
    let err = cache.import(&oci(&layout.dir, "t")).unwrap_err();
    let entries = cache_entries(cache.root());
    let _ = std::process::Command::new("umount").arg(&small).status();
    assert!(err.is_no_space(), "{err}");
    assert!(err.to_string().contains("no space left on device"), "{err}");
    assert!(entries.is_empty(), "{entries:?}");
}

/// Issue 12, item 13: a layer longer or shorter than its descriptor's size, or a size of i64::MAX
/// (which must not be allocated or waited for), is refused before anything is unpacked.
#[test]
fn layer_size_must_match_its_descriptor() {
    let layer = base_layer();
    let real = gzip(&layer).len() as u64;
    for (what, size) in [
        ("shorter than its blob", real - 1),
        ("longer than its blob", real + 1),
        ("i64::MAX", i64::MAX as u64),
        ("u64::MAX", u64::MAX),
        ("zero", 0),
    ] {
        let e = env();
        let mut layout = Layout::new(&e.dir.join("oci"));
        let built = layout.image_sized(
            "t",
            std::slice::from_ref(&layer),
            "application/vnd.oci.image.layer.v1.tar+gzip",
            gzip,
            &[size],
        );
        let err = e.cache.import(&oci(&layout.dir, "t")).unwrap_err();
        assert!(
            matches!(err, Error::SizeMismatch { expected, actual, .. }
                if expected == size && actual == real),
            "{what}: {err}"
        );
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("verify layer {}: {real} bytes", built.layers[0])),
            "{what}: {msg}"
        );
        cache_is_clean(e.cache.root());
    }
}

/// Issue 12, item 13: the manifest's (and config's) descriptor size is checked like a layer's.
#[test]
fn manifest_and_config_sizes_are_checked() {
    let e = env();
    let mut layout = Layout::new(&e.dir.join("oci"));
    let built = layout.image("t", &[base_layer()]);
    // The index says the manifest is one byte longer than it is.
    let index_path = layout.dir.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let size = index["manifests"][0]["size"].as_u64().unwrap();
    index["manifests"][0]["size"] = (size + 1).into();
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    let err = e.cache.import(&oci(&layout.dir, "t")).unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("verify manifest {}", built.manifest)),
        "{err}"
    );
    cache_is_clean(e.cache.root());
}

/// Issue 12, item 13: a layer without a "./" entry (tar -C dir *) still gives the image a root
/// directory others may search (root's, 0755), not the 0700 work directory it was unpacked in.
#[test]
fn image_without_a_root_entry_gets_a_searchable_root() {
    use std::os::unix::fs::MetadataExt;
    let e = env();
    let mut layout = Layout::new(&e.dir.join("oci"));
    let no_root = Layer::new()
        .dir("bin", 0o755)
        .file("bin/busybox", b"elf", 0o755)
        .tar();
    layout.image("t", &[no_root]);
    let img = e.cache.import(&oci(&layout.dir, "t")).unwrap();
    let m = std::fs::metadata(&img.rootfs).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o755, "rootfs root mode");
    if is_root() {
        assert_eq!((m.uid(), m.gid()), (0, 0));
    }
    // A root entry of its own still wins.
    let mut layout = Layout::new(&e.dir.join("oci2"));
    let own_root = Layer::new().dir("./", 0o750).file("f", b"x", 0o644).tar();
    layout.image("t", &[own_root]);
    let img = e.cache.import(&oci(&layout.dir, "t")).unwrap();
    let mode = std::fs::metadata(&img.rootfs).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o750);
}

/// Issue 12, item 9: a cache directory another user could write (or made) is refused, not used.
#[test]
fn cache_dir_open_to_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let e = env();
    let mut layout = Layout::new(&e.dir.join("oci"));
    layout.image("t", &[base_layer()]);
    let open = e.dir.join("open-cache");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = Cache::new(&open)
        .import(&oci(&layout.dir, "t"))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("refuse directory") && msg.contains("writable by group or others"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read_dir(&open).unwrap().count(),
        0,
        "the cache wrote into it"
    );
}
