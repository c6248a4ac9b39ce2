//! Real images built offline with umoci and skopeo from the host's static busybox, imported from
//! each source kind. Skipped (with a reason) without the tools, unless HUSK_REQUIRE_PRIVILEGED=1.

use crate::common::{have_tool, run, Layer};
use husk_image::{Cache, ImageRef};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const BUSYBOX: &str = "/bin/busybox";

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    /// `DIR` of `oci:DIR:busybox`.
    layout: PathBuf,
}

/// A busybox rootfs layer: the static binary, applet symlinks, passwd, tmp.
fn busybox_layer() -> Vec<u8> {
    let list = Command::new(BUSYBOX).arg("--list").output().unwrap();
    let mut l = Layer::new()
        .dir("bin", 0o755)
        .file("bin/busybox", &std::fs::read(BUSYBOX).unwrap(), 0o755)
        .dir("etc", 0o755)
        .file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
        .file("etc/motd", b"from the lower layer\n", 0o644)
        .dir("tmp", 0o1777);
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            l = l.symlink(&format!("bin/{applet}"), "busybox");
        }
    }
    l.tar()
}

/// None when a tool is missing (and that is allowed).
fn fixture() -> Option<Fixture> {
    if !(have_tool("umoci") && have_tool("skopeo")) {
        return None;
    }
    if !Path::new(BUSYBOX).is_file() {
        assert!(
            std::env::var("HUSK_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
            "{BUSYBOX} missing (busybox-static)"
        );
        eprintln!("skipped: {BUSYBOX} missing (apt-get install busybox-static)");
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let layout = dir.join("oci");
    let image = format!("{}:busybox", layout.display());
    let layer = dir.join("layer.tar");
    std::fs::write(&layer, busybox_layer()).unwrap();
    // A second layer deletes a file of the first (whiteout), as a real rebuild would.
    let wh = dir.join("wh.tar");
    std::fs::write(
        &wh,
        Layer::new()
            .dir("etc", 0o755)
            .file("etc/.wh.motd", b"", 0o644)
            .tar(),
    )
    .unwrap();
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    run(Command::new("umoci").args(["new", "--image", &image]));
    run(Command::new("umoci")
        .args(["raw", "add-layer", "--image", &image])
        .arg(&layer));
    run(Command::new("umoci")
        .args(["raw", "add-layer", "--image", &image])
        .arg(&wh));
    run(Command::new("umoci").args([
        "config",
        "--image",
        &image,
        "--config.cmd",
        "/bin/sh",
        "--config.env",
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        "--config.workingdir",
        "/tmp",
    ]));
    Some(Fixture {
        _tmp: tmp,
        dir,
        layout,
    })
}

fn skopeo_copy(from: &str, to: &str) {
    run(Command::new("skopeo").args(["--insecure-policy", "copy", "-q", from, to]));
}

fn check(img: &husk_image::Image) {
    assert!(img.rootfs.join("bin/busybox").is_file(), "{:?}", img.rootfs);
    assert_eq!(
        std::fs::read_link(img.rootfs.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert!(
        !img.rootfs.join("etc/motd").exists(),
        "whiteout layer not applied"
    );
    assert!(img.rootfs.join("etc/passwd").is_file());
    assert_eq!(img.config.cmd, ["/bin/sh"]);
    assert_eq!(img.config.env, ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]);
    assert_eq!(img.config.working_dir, "/tmp");
    assert_eq!(img.layers.len(), 2);
    let out = Command::new(img.rootfs.join("bin/busybox"))
        .arg("true")
        .status()
        .unwrap();
    assert!(out.success(), "unpacked busybox does not run");
}

#[test]
fn umoci_layout_imports_and_hits_cache() {
    let Some(f) = fixture() else { return };
    let cache = Cache::new(f.dir.join("cache"));
    let r = ImageRef::parse(&format!("oci:{}:busybox", f.layout.display())).unwrap();
    let img = cache.import(&r).unwrap();
    check(&img);
    assert_eq!(img.stats.layers_unpacked, 2);
    let again = cache.import(&r).unwrap();
    assert!(again.stats.cached);
    assert_eq!(again.rootfs, img.rootfs);
}

#[test]
fn skopeo_archives_import() {
    let Some(f) = fixture() else { return };
    let cache = Cache::new(f.dir.join("cache"));
    let src = format!("oci:{}:busybox", f.layout.display());
    let docker = f.dir.join("docker.tar");
    let ociar = f.dir.join("oci.tar");
    skopeo_copy(
        &src,
        &format!("docker-archive:{}:probe/busybox:latest", docker.display()),
    );
    skopeo_copy(&src, &format!("oci-archive:{}:busybox", ociar.display()));
    for r in [
        format!("docker-archive:{}", docker.display()),
        format!("docker-archive:{}:probe/busybox:latest", docker.display()),
        format!("oci-archive:{}:busybox", ociar.display()),
        format!("oci-archive:{}", ociar.display()),
        docker.display().to_string(),
        ociar.display().to_string(),
    ] {
        let img = cache.import(&ImageRef::parse(&r).unwrap()).unwrap();
        check(&img);
    }
    // Layers are keyed by diff_id: the docker-archive and the OCI archive share them.
    let layers = std::fs::read_dir(cache.root().join("layers/sha256"))
        .unwrap()
        .count();
    assert_eq!(layers, 2);
    assert_eq!(
        cache.list().unwrap().len(),
        2,
        "one docker-archive image, one OCI image"
    );
}

/// Not a timed test: prints import times for the report (`cargo test -- --ignored --nocapture`).
#[test]
#[ignore]
fn measure_import_against_skopeo_umoci() {
    let Some(f) = fixture() else { return };
    let docker = f.dir.join("docker.tar");
    skopeo_copy(
        &format!("oci:{}:busybox", f.layout.display()),
        &format!("docker-archive:{}:probe/busybox:latest", docker.display()),
    );
    let r = ImageRef::parse(&format!("docker-archive:{}", docker.display())).unwrap();
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for i in 0..5 {
        let cache = Cache::new(f.dir.join(format!("cache{i}")));
        let t = Instant::now();
        cache.import(&r).unwrap();
        cold.push(t.elapsed());
        let t = Instant::now();
        assert!(cache.import(&r).unwrap().stats.cached);
        warm.push(t.elapsed());
    }
    let mut theirs = Vec::new();
    for i in 0..5 {
        let out = f.dir.join(format!("u{i}"));
        let t = Instant::now();
        skopeo_copy(
            &format!("docker-archive:{}", docker.display()),
            &format!("oci:{}:bb", out.display()),
        );
        run(Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:bb", out.display()))
            .arg(f.dir.join(format!("bundle{i}"))));
        theirs.push(t.elapsed());
    }
    let med = |v: &mut Vec<std::time::Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    eprintln!(
        "busybox docker-archive import, median of 5: husk cold {:?}, husk cached {:?}, skopeo copy + umoci unpack {:?}",
        med(&mut cold),
        med(&mut warm),
        med(&mut theirs)
    );
}
