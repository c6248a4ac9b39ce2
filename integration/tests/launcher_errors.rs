//! The launcher's failures that need a host set up for them: user namespaces disabled by a sysctl,
//! an image cache with no room, an unknown image. Each: one clear line, a non-zero exit, nothing
//! half-written in the image cache.

use crate::both;
use crate::harness::{host, skip, Ctx, Mode, Out, DEADLINE};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

both!(
    userns_disabled_names_the_knob,
    full_cache_is_one_line_and_leaves_nothing,
    unknown_image_is_one_line_and_leaves_nothing,
    missing_bind_source_leaves_the_cache_whole,
    wrong_layer_digest_is_one_line_and_leaves_nothing,
    a_directory_named_like_an_id_gets_a_hint,
    unknown_instance_is_named_as_the_user_wrote_it,
);

fn image() -> &'static str {
    host().rootfs.to_str().unwrap()
}

/// The runtime's argv and environment for `t`'s mode, run through `wrapper` (e.g. unshare)
/// after setpriv: [setpriv ...] WRAPPER... husk --root STATE ARGS...
pub fn command(t: &Ctx, wrapper: &[&str], args: &[&str]) -> Command {
    let h = host();
    let mut argv: Vec<String> = Vec::new();
    let user = h
        .user
        .clone()
        .filter(|_| t.mode == Mode::Rootless && h.euid == 0);
    if let Some((uid, gid, _)) = &user {
        argv.extend([
            "setpriv".into(),
            format!("--reuid={uid}"),
            format!("--regid={gid}"),
            "--init-groups".into(),
        ]);
    }
    argv.extend(wrapper.iter().map(|s| s.to_string()));
    argv.push(h.runtime.display().to_string());
    argv.push("--root".into());
    argv.push(t.state_root.display().to_string());
    argv.extend(args.iter().map(|s| s.to_string()));
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]).current_dir(&t.dir);
    if let Some((uid, _, home)) = user {
        c.env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", home)
            .env("XDG_RUNTIME_DIR", format!("/run/user/{uid}"));
    }
    c
}

/// Runs `command(t, wrapper, args)` with stdout and stderr in files; bounded by [`DEADLINE`].
pub fn run_wrapped(t: &Ctx, wrapper: &[&str], args: &[&str]) -> Out {
    let io = t.dir.join("io");
    let n = std::fs::read_dir(&io).map_or(0, |d| d.count());
    let (out, err) = (io.join(format!("w{n}.out")), io.join(format!("w{n}.err")));
    let file = |p: &Path| {
        let f = std::fs::File::create(p).unwrap();
        t.give(p);
        Stdio::from(f)
    };
    let mut cmd = command(t, wrapper, args);
    cmd.stdin(Stdio::null())
        .stdout(file(&out))
        .stderr(file(&err));
    let line = format!("{} {}", wrapper.join(" "), args.join(" "));
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("{line}: still running after {DEADLINE:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    Out {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
        line,
        out_path: out,
    }
}

/// The error lines of `out`: exactly one, returned.
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

/// Inside `unshare -Ur` the namespace's root may lower its own user.max_user_namespaces (the
/// limit is per user namespace; the host's stays as it is). Then the launch, asked for a user
/// namespace of its own, cannot have one, and says which knob forbids it.
fn userns_disabled_names_the_knob(t: &Ctx) {
    let set = "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$@\"";
    let wrapper = ["unshare", "-Ur", "sh", "-c", set, "sh"];
    let out = run_wrapped(t, &wrapper, &["exec", "--userns", image(), "/bin/true"]);
    assert_eq!(out.code, 255, "{out}");
    let line = one_error(&out);
    assert!(line.contains("user.max_user_namespaces = 0"), "{out}");
    assert!(line.contains(&format!("launch {}", image())), "{out}");
    // The host's own limit is untouched, and the same launch works outside that namespace.
    let host_max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap();
    assert_ne!(host_max.trim(), "0");
    t.rt(&["exec", "--userns", image(), "/bin/true"]).ok();
    t.assert_nothing_left();
}

/// Builds an OCI layout at `dir` with tag `tag`: one layer holding `files` (name, size in bytes
/// of incompressible data). None (after a skip) without umoci.
fn layout(t: &Ctx, dir: &Path, tag: &str, files: &[(&str, usize)]) -> Option<String> {
    let ok = |c: &mut Command| {
        let o = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
        assert!(
            o.status.success(),
            "{c:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    if Command::new("umoci").arg("--version").output().is_err() {
        skip("umoci is needed to build images (apt-get install umoci)");
        return None;
    }
    let content = t.dir.join(format!("content-{tag}"));
    std::fs::create_dir_all(&content).unwrap();
    let mut random = std::fs::File::open("/dev/urandom").unwrap();
    for (name, size) in files {
        let mut f = std::fs::File::create(content.join(name)).unwrap();
        std::io::copy(&mut std::io::Read::take(&mut random, *size as u64), &mut f).unwrap();
    }
    let layer = t.dir.join(format!("layer-{tag}.tar"));
    ok(Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(&content)
        .arg("-cf")
        .arg(&layer)
        .arg("."));
    if !dir.exists() {
        ok(Command::new("umoci").args(["init", "--layout"]).arg(dir));
    }
    let image = format!("{}:{tag}", dir.display());
    ok(Command::new("umoci").args(["new", "--image", &image]));
    ok(Command::new("umoci")
        .args(["raw", "add-layer", "--image", &image])
        .arg(&layer));
    give_all(t, dir);
    Some(format!("oci:{image}"))
}

fn give_all(t: &Ctx, path: &Path) {
    t.give(path);
    if path.is_dir() && !path.is_symlink() {
        for e in std::fs::read_dir(path).unwrap() {
            give_all(t, &e.unwrap().path());
        }
    }
}

/// Names under `cache/sub`, sorted.
fn entries(cache: &Path, sub: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(cache.join(sub))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// What a failed import must leave as it was: images, unpacked layers, assembled roots, and no
/// work in progress.
fn snapshot(cache: &Path) -> Vec<Vec<String>> {
    ["images", "layers/sha256", "rootfs", "tmp"]
        .iter()
        .map(|s| entries(cache, s))
        .collect()
}

/// A tmpfs of `size` at `dir`, owned by the runtime's user; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(t: &Ctx, dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let (uid, gid) = t.host_ids();
        let opts = format!("size={size},mode=0755,uid={uid},gid={gid}");
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "husk-it-cache"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "mount tmpfs: {o:?}");
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn full_cache_is_one_line_and_leaves_nothing(t: &Ctx) {
    if host().euid != 0 {
        return skip("mounting the small cache tmpfs needs root");
    }
    let oci = t.dir.join("oci");
    let Some(small) = layout(t, &oci, "small", &[("a", 1000)]) else {
        return;
    };
    let big = layout(t, &oci, "big", &[("b", 3 << 20)]).unwrap();
    let cache = t.dir.join("cache");
    let _fs = Tmpfs::mount(t, &cache, "1m");
    let c = cache.to_str().unwrap();
    t.rt(&["--cache-dir", c, "pull", &small]).ok();
    let listed = |t: &Ctx| t.rt(&["--cache-dir", c, "images", "--json"]).ok().json();
    let before = (listed(t), snapshot(&cache));
    assert_eq!(before.0.as_array().map(Vec::len), Some(1), "{}", before.0);
    for verb in [&["pull", &big][..], &["exec", &big, "/bin/true"][..]] {
        let mut args = vec!["--cache-dir", c];
        args.extend_from_slice(verb);
        let out = t.rt(&args);
        assert!(out.code == 1 || out.code == 255, "{out}");
        let line = one_error(&out).to_lowercase();
        assert!(line.contains("no space left on device"), "{out}");
        assert!(line.contains(c), "the cache is named: {out}");
        assert_eq!((listed(t), snapshot(&cache)), before, "{out}");
    }
    t.assert_nothing_left();
}

fn unknown_image_is_one_line_and_leaves_nothing(t: &Ctx) {
    let cache = t.mkdir(&t.dir.join("cache"));
    let c = cache.to_str().unwrap();
    let missing = t.dir.join("no-such-rootfs");
    let m = missing.to_str().unwrap();
    let oci_missing = format!("oci:{m}:latest");
    let archive_missing = format!("docker-archive:{m}.tar");
    for img in [m, &oci_missing, &archive_missing] {
        let out = t.rt(&["--cache-dir", c, "exec", img, "/bin/true"]);
        assert_eq!(out.code, 255, "{out}");
        assert!(one_error(&out).contains(m), "{out}");
        assert!(out.stdout.is_empty(), "{out}");
    }
    assert!(
        snapshot(&cache).iter().all(Vec::is_empty),
        "{:?}",
        snapshot(&cache)
    );
    t.assert_nothing_left();
}

/// A cached image whose launch fails on a missing --bind source: one line, the cache holds the
/// (complete) image and nothing in progress.
fn missing_bind_source_leaves_the_cache_whole(t: &Ctx) {
    let oci = t.dir.join("oci");
    let Some(img) = layout(t, &oci, "small", &[("a", 1000)]) else {
        return;
    };
    let cache = t.mkdir(&t.dir.join("cache"));
    let c = cache.to_str().unwrap();
    let missing = t.dir.join("no-such-dir");
    let spec = format!("{}:/x", missing.display());
    let out = t.rt(&["--cache-dir", c, "exec", "--bind", &spec, &img, "/bin/true"]);
    assert_eq!(out.code, 255, "{out}");
    assert!(one_error(&out).contains(missing.to_str().unwrap()), "{out}");
    let s = snapshot(&cache);
    assert_eq!((s[0].len(), s[3].len()), (1, 0), "{s:?}");
    t.assert_nothing_left();
}

/// A layer blob whose content no longer matches its digest (a valid gzip tar, but another one):
/// the launch says so in one line, and neither the layer nor the image is left in the cache. (A
/// flipped byte is caught earlier, by gzip's checksum: images.rs has that case.)
fn wrong_layer_digest_is_one_line_and_leaves_nothing(t: &Ctx) {
    let oci = t.dir.join("oci");
    let Some(img) = layout(t, &oci, "small", &[("a", 4096)]) else {
        return;
    };
    let blobs = oci.join("blobs/sha256");
    let layer = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap();
    let other = t.dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("b"), "not the layer the manifest names\n").unwrap();
    let o = Command::new("tar")
        .args(["--numeric-owner", "-czf"])
        .arg(&layer)
        .arg("-C")
        .arg(&other)
        .arg(".")
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let cache = t.mkdir(&t.dir.join("cache"));
    let c = cache.to_str().unwrap();
    let out = t.rt(&["--cache-dir", c, "exec", &img, "/bin/true"]);
    assert_eq!(out.code, 255, "{out}");
    let line = one_error(&out);
    let name = layer.file_name().unwrap().to_str().unwrap();
    // The new blob's length differs from the descriptor's size too, which is checked first.
    let refused = line.contains("digest mismatch") || line.contains("but its descriptor says");
    assert!(refused && line.contains(name), "{out}");
    assert!(
        snapshot(&cache).iter().all(Vec::is_empty),
        "{:?}",
        snapshot(&cache)
    );
    t.assert_nothing_left();
}

/// Issue 14: `husk exec deb CMD` with ./deb present said "container deb does not exist": the
/// error says that an image directory needs a path (./deb).
fn a_directory_named_like_an_id_gets_a_hint(t: &Ctx) {
    let deb = t.dir.join("deb");
    std::os::unix::fs::symlink(image(), &deb).unwrap();
    let out = t.rt(&["exec", "deb", "/bin/true"]).exec_fails();
    assert!(out.stderr.contains("./deb"), "{out}");
    assert_eq!(out.stderr.trim().lines().count(), 1, "{out}");
    // No such directory: the plain error, no hint.
    let out = t.rt(&["exec", "nodir", "/bin/true"]).exec_fails();
    assert!(!out.stderr.contains("./nodir"), "{out}");
}

/// Issue 14: `husk exec instance://nope` named the internal container id (inst-nope).
fn unknown_instance_is_named_as_the_user_wrote_it(t: &Ctx) {
    let out = t.rt(&["exec", "instance://nope", "/bin/true"]).exec_fails();
    assert!(out.stderr.contains("instance nope"), "{out}");
    assert!(!out.stderr.contains("inst-nope"), "{out}");
    assert_eq!(out.stderr.trim().lines().count(), 1, "{out}");
}
