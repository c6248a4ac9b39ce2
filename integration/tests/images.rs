//! Images from the cache: `husk pull|images|rmi|cache clean` and `husk run|exec` on OCI layouts and
//! archives built offline in each case (the busybox rootfs as one layer, umoci for the layout,
//! skopeo for the archives). Each case has its own cache (--cache-dir, or HUSK_CACHE_DIR). The
//! registry case runs Debian's docker-registry on a free 127.0.0.1 port (plain http on loopback).

use crate::both;
use crate::harness::{host, skip, Ctx, Mode, Out};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

both!(
    exec_from_an_oci_layout_runs_as_the_caller,
    image_env_workdir_and_cmd_are_honoured,
    archives_run_and_share_the_layer,
    second_pull_is_a_cache_hit,
    images_rmi_and_cache_clean,
    corrupt_blob_is_one_error_and_nothing_is_half_written,
    truncated_archive_is_one_error,
    unknown_tag_is_one_error,
    writable_is_refused_for_a_cached_image,
    writable_tmpfs_writes_over_a_cached_image,
    registry_pull_over_loopback,
    layer_without_a_root_entry_runs_in_the_sandbox,
);

/// A busybox image in every form, and a cache dir for the case.
struct Images {
    /// `oci:DIR:busybox`
    oci: String,
    oci_dir: PathBuf,
    oci_archive: String,
    docker_archive: String,
    cache: PathBuf,
}

fn tool(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// None (after a skip) without umoci and skopeo.
fn images(t: &Ctx) -> Option<Images> {
    if !(tool("umoci") && tool("skopeo")) {
        skip("umoci and skopeo are needed to build images (apt-get install umoci skopeo)");
        return None;
    }
    let dir = t.mkdir(&t.dir.join("img"));
    let layer = dir.join("layer.tar");
    let rootfs = &host().rootfs;
    let mut tar = Command::new("tar");
    tar.args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(rootfs)
        .arg("-cf")
        .arg(&layer);
    for e in std::fs::read_dir(rootfs).unwrap() {
        tar.arg(e.unwrap().file_name());
    }
    sh(&mut tar);
    let oci_dir = dir.join("oci");
    let oci = format!("oci:{}:busybox", oci_dir.display());
    let image = format!("{}:busybox", oci_dir.display());
    sh(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&oci_dir));
    sh(Command::new("umoci").args(["new", "--image", &image]));
    sh(Command::new("umoci")
        .args(["raw", "add-layer", "--image", &image])
        .arg(&layer));
    sh(Command::new("umoci").args([
        "config",
        "--image",
        &image,
        "--config.cmd",
        "/bin/husk-probe",
        "--config.env",
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        "--config.env",
        "FROM_IMAGE=yes",
        "--config.workingdir",
        "/tmp",
        "--config.label",
        "org.example.kind=test",
    ]));
    let oci_archive = format!("oci-archive:{}", dir.join("oci.tar").display());
    let docker_archive = format!("docker-archive:{}", dir.join("docker.tar").display());
    for to in [
        format!("{oci_archive}:busybox"),
        format!("{docker_archive}:busybox:latest"),
    ] {
        sh(Command::new("skopeo").args(["--insecure-policy", "copy", "-q", &oci, &to]));
    }
    // umoci writes some files 0600: hand the whole fixture to the runtime's user.
    give_all(t, &dir);
    Some(Images {
        oci,
        oci_dir,
        oci_archive,
        docker_archive,
        cache: dir.join("cache"),
    })
}

fn give_all(t: &Ctx, path: &Path) {
    t.give(path);
    if path.is_dir() && !path.is_symlink() {
        for e in std::fs::read_dir(path).unwrap() {
            give_all(t, &e.unwrap().path());
        }
    }
}

impl Images {
    fn rt(&self, t: &Ctx, args: &[&str]) -> Out {
        let mut all = vec!["--cache-dir", self.cache.to_str().unwrap()];
        all.extend_from_slice(args);
        t.rt(&all)
    }

    fn pull(&self, t: &Ctx, image: &str) -> Value {
        self.rt(t, &["pull", "--json", image]).ok().json()
    }

    fn list(&self, t: &Ctx) -> Vec<Value> {
        let v = self.rt(t, &["images", "--json"]).ok().json();
        v.as_array().unwrap().clone()
    }

    /// Names under `<cache>/<sub>`.
    fn entries(&self, sub: &str) -> Vec<String> {
        match std::fs::read_dir(self.cache.join(sub)) {
            Ok(d) => d
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

fn caller_uid(t: &Ctx) -> u64 {
    match t.mode {
        Mode::Root => 0,
        Mode::Rootless => host().user.as_ref().unwrap().0.into(),
    }
}

/// The last non-empty stderr line, asserting it is the only error line.
#[track_caller]
fn one_error(out: &Out) -> String {
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("level=error") || l.starts_with("husk:"))
        .collect();
    assert_eq!(errors.len(), 1, "expected one error line: {out}");
    errors[0].to_string()
}

fn exec_from_an_oci_layout_runs_as_the_caller(t: &Ctx) {
    let Some(img) = images(t) else { return };
    let out = img.rt(t, &["exec", &img.oci, "/bin/husk-probe"]).ok();
    let p = out.probe();
    assert_eq!(p.get("uid").as_u64(), Some(caller_uid(t)), "{}", p.0);
    assert_eq!(p.get("cwd").as_str(), t.dir.to_str(), "{}", p.0);
    assert!(
        !out.stderr.contains('\r'),
        "progress drawn without a terminal: {out}"
    );
    assert_eq!(img.list(t).len(), 1);
    t.assert_nothing_left();
}

fn image_env_workdir_and_cmd_are_honoured(t: &Ctx) {
    let Some(img) = images(t) else { return };
    // No ARGS: the image's Cmd (husk-probe) runs; --contain does not bind the cwd, so the
    // image's WorkingDir applies.
    let p = img.rt(t, &["run", "--contain", &img.oci]).ok().probe();
    assert_eq!(p.env("FROM_IMAGE").as_deref(), Some("yes"), "{}", p.0);
    assert_eq!(p.get("cwd").as_str(), Some("/tmp"), "{}", p.0);
    assert_eq!(p.get("uid").as_u64(), Some(caller_uid(t)), "{}", p.0);
    let cfg = img.rt(t, &["run", "--dry-run", &img.oci]).ok().json();
    assert_eq!(
        cfg.pointer("/annotations/org.example.kind")
            .and_then(Value::as_str),
        Some("test"),
        "{cfg}"
    );
    t.assert_nothing_left();
}

fn archives_run_and_share_the_layer(t: &Ctx) {
    let Some(img) = images(t) else { return };
    let first = img.pull(t, &img.oci);
    assert_eq!(first["layers_unpacked"], 1, "{first}");
    for src in [&img.oci_archive, &img.docker_archive] {
        let again = img.pull(t, src);
        // Same layer (diff_id) whatever the transport: unpacked once.
        assert_eq!(again["layers_unpacked"], 0, "{src}: {again}");
        let p = img.rt(t, &["exec", src, "/bin/husk-probe"]).ok().probe();
        assert_eq!(p.get("uid").as_u64(), Some(caller_uid(t)), "{}", p.0);
    }
    assert_eq!(img.entries("layers/sha256").len(), 1);
    t.assert_nothing_left();
}

fn second_pull_is_a_cache_hit(t: &Ctx) {
    let Some(img) = images(t) else { return };
    let a = img.pull(t, &img.oci);
    assert_eq!(a["cached"], false, "{a}");
    let b = img.pull(t, &img.oci);
    assert_eq!(b["cached"], true, "{b}");
    assert_eq!(b["layers_unpacked"], 0, "{b}");
    assert_eq!(a["key"], b["key"]);
    // Plain output: the digest, the same again.
    let plain = img.rt(t, &["pull", &img.oci]).ok();
    assert_eq!(plain.stdout.trim(), a["digest"].as_str().unwrap());
}

fn images_rmi_and_cache_clean(t: &Ctx) {
    let Some(img) = images(t) else { return };
    let key = img.pull(t, &img.oci)["key"].as_str().unwrap().to_string();
    // HUSK_CACHE_DIR names the same cache as --cache-dir.
    let env = [("HUSK_CACHE_DIR", img.cache.to_str().unwrap())];
    let listed = t.rt_env(&["images", "--json"], &env).ok().json();
    assert_eq!(listed[0]["key"], key.as_str(), "{listed}");
    assert_eq!(listed[0]["sources"][0], img.oci.as_str(), "{listed}");
    let table = img.rt(t, &["images"]).ok();
    assert!(table.stdout.contains(&key[..12]), "{table}");
    // rmi by the source as pulled; a second rmi finds nothing.
    img.rt(t, &["rmi", &img.oci]).ok();
    assert!(img.list(t).is_empty());
    assert!(img.entries("rootfs").is_empty());
    let again = img.rt(t, &["rmi", &key]).fails();
    assert!(one_error(&again).contains(&key), "{again}");
    // The layer stays until clean.
    assert_eq!(img.entries("layers/sha256").len(), 1);
    img.rt(t, &["cache", "clean"]).ok();
    assert!(img.entries("layers/sha256").is_empty());
    // clean --all removes images in use too.
    img.pull(t, &img.docker_archive);
    img.rt(t, &["cache", "clean", "--all"]).ok();
    assert!(img.list(t).is_empty());
    assert!(img.entries("rootfs").is_empty());
    assert!(img.entries("layers/sha256").is_empty());
}

/// Flips a byte in the middle of the (only) layer blob of an OCI layout: wrong digest.
fn corrupt_layer(oci_dir: &Path) {
    let blobs = oci_dir.join("blobs/sha256");
    let biggest = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap();
    let mut data = std::fs::read(&biggest).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&biggest, data).unwrap();
}

fn corrupt_blob_is_one_error_and_nothing_is_half_written(t: &Ctx) {
    let Some(img) = images(t) else { return };
    corrupt_layer(&img.oci_dir);
    let out = img.rt(t, &["pull", &img.oci]).fails();
    let line = one_error(&out);
    assert!(line.contains("import image"), "{out}");
    let out = img.rt(t, &["exec", &img.oci, "/bin/true"]).exec_fails();
    one_error(&out);
    assert!(img.list(t).is_empty());
    assert!(
        img.entries("rootfs").is_empty(),
        "{:?}",
        img.entries("rootfs")
    );
    assert!(img.entries("layers/sha256").is_empty());
    assert!(img.entries("tmp").is_empty(), "{:?}", img.entries("tmp"));
}

fn truncated_archive_is_one_error(t: &Ctx) {
    let Some(img) = images(t) else { return };
    let file = img.docker_archive.strip_prefix("docker-archive:").unwrap();
    let len = std::fs::metadata(file).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.set_len(len / 2).unwrap();
    let out = img.rt(t, &["pull", &img.docker_archive]).fails();
    one_error(&out);
    assert!(img.list(t).is_empty());
    assert!(img.entries("rootfs").is_empty());
    assert!(img.entries("tmp").is_empty(), "{:?}", img.entries("tmp"));
}

fn unknown_tag_is_one_error(t: &Ctx) {
    let Some(img) = images(t) else { return };
    let bad = format!("oci:{}:nosuchtag", img.oci_dir.display());
    let out = img.rt(t, &["exec", &bad, "/bin/true"]).exec_fails();
    assert!(one_error(&out).contains("nosuchtag"), "{out}");
    let out = img.rt(t, &["pull", "oci-archive:/nonexistent.tar"]).fails();
    assert!(one_error(&out).contains("/nonexistent.tar"), "{out}");
}

fn writable_is_refused_for_a_cached_image(t: &Ctx) {
    let Some(img) = images(t) else { return };
    let out = img
        .rt(t, &["exec", "--writable", &img.oci, "/bin/true"])
        .exec_fails();
    let line = one_error(&out);
    assert!(
        line.contains("image cache") && line.contains("rootfs directory"),
        "{out}"
    );
    t.assert_nothing_left();
}

/// The cached image shares inodes with the layer cache: an overlay copies a file up before it
/// changes, so the cache (and the next run) sees the original.
fn writable_tmpfs_writes_over_a_cached_image(t: &Ctx) {
    let Some(img) = images(t) else { return };
    let original = std::fs::read_to_string(host().rootfs.join("etc/hostname")).unwrap();
    let write = "echo changed > /etc/hostname && echo new > /etc/new && cat /etc/hostname";
    let args = ["exec", "--writable-tmpfs", &img.oci, "sh", "-c", write];
    let out = img.rt(t, &args).ok();
    assert_eq!(out.stdout.trim(), "changed", "{out}");
    let read = "cat /etc/hostname; if test -e /etc/new; then echo leaked; fi";
    let out = img.rt(t, &["exec", &img.oci, "sh", "-c", read]).ok();
    assert_eq!(out.stdout, original, "{out}");
    t.assert_nothing_left();
}

/// A docker-registry on 127.0.0.1, stopped on drop.
struct Registry {
    child: std::process::Child,
    addr: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn registry(dir: &Path) -> Option<Registry> {
    const BIN: &str = "/usr/bin/docker-registry";
    if !Path::new(BIN).exists() {
        skip("docker-registry is needed for the registry case (apt-get install docker-registry)");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {addr}\n",
            dir.join("registry").display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("registry.log")).unwrap();
    let child = Command::new(BIN)
        .arg("serve")
        .arg(&config)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let r = Registry { child, addr };
    for _ in 0..100 {
        if std::net::TcpStream::connect(&r.addr).is_ok() {
            return Some(r);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("docker-registry did not listen on {}", r.addr);
}

fn registry_pull_over_loopback(t: &Ctx) {
    let Some(img) = images(t) else { return };
    let Some(reg) = registry(&t.dir) else { return };
    let remote = format!("docker://{}/busybox:latest", reg.addr);
    sh(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        "-q",
        "--dest-tls-verify=false",
        &img.oci,
        &remote,
    ]));
    let a = img.pull(t, &remote);
    assert_eq!(a["cached"], false, "{a}");
    assert_eq!(a["layers_unpacked"], 1, "{a}");
    let b = img.pull(t, &remote);
    assert_eq!(b["cached"], true, "{b}");
    // By digest: the same image.
    let pinned = format!(
        "docker://{}/busybox@{}",
        reg.addr,
        a["digest"].as_str().unwrap()
    );
    assert_eq!(img.pull(t, &pinned)["key"], a["key"]);
    let p = img
        .rt(t, &["exec", &remote, "/bin/husk-probe"])
        .ok()
        .probe();
    assert_eq!(p.get("uid").as_u64(), Some(caller_uid(t)), "{}", p.0);
    let out = img
        .rt(
            t,
            &["pull", &format!("docker://{}/nosuch:latest", reg.addr)],
        )
        .fails();
    assert!(one_error(&out).contains("UNKNOWN"), "{out}");
    assert!(img.entries("tmp").is_empty(), "{:?}", img.entries("tmp"));
    t.assert_nothing_left();
}

/// Issue 12, item 13: the fixture's layer is `tar -C rootfs bin etc ...`, with no "./" entry.
/// Imported, the image's root is root's 0755 (not the 0700 work directory), so a sandbox (root's
/// runs as an unprivileged host id) can enter it.
fn layer_without_a_root_entry_runs_in_the_sandbox(t: &Ctx) {
    use std::os::unix::fs::MetadataExt;
    let Some(img) = images(t) else { return };
    let pulled = img.pull(t, &img.oci);
    let rootfs = PathBuf::from(pulled["rootfs"].as_str().unwrap());
    let mode = std::fs::metadata(&rootfs).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o755, "{}", rootfs.display());
    let ws = t.mkdir(&t.dir.join("ws"));
    let out = img.rt(
        t,
        &[
            "exec",
            "--sandbox",
            "--workspace",
            ws.to_str().unwrap(),
            &img.oci,
            "/bin/husk-probe",
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    t.assert_nothing_left();
}
