//! A real distribution image: the Debian 12 (minbase + python3) fixture of bundles/debian, through
//! each source the launcher takes (the rootfs directory in place, `oci:DIR:bookworm`,
//! `docker-archive:FILE`), plus the same tree as an OCI bundle. Cases that look at the cache or the
//! import have their own cache under their test dir; the others share one per mode (an import of
//! this image writes ~200 MB: once per run, not once per case). The fixture is built by setup.sh (as root); without it these cases skip, or
//! fail under HUSK_REQUIRE_PRIVILEGED=1.

use crate::both;
use crate::harness::{debian, host, overlayfs_for, shared_dir, skip, Ctx, Launch, Mode, Out};
use nix::fcntl::OFlag;
use nix::pty::PtyMaster;
use serde_json::{json, Value};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

both!(
    python3_runs_from_every_source,
    image_cmd_env_and_label_are_honoured,
    caller_identity_inside,
    home_and_cwd_binds_work_with_debian_userland,
    pipes_pass_through,
    exit_status_and_signals_pass_through,
    second_import_reuses_cached_layers,
    device_nodes_are_one_warning,
    progress_bar_only_on_a_terminal,
    bundle_runs_through_the_oci_face,
    sandbox_takes_every_source,
    mount_points_for_cached_images_and_rootfs_dirs,
);

/// The image's PATH (make-rootfs sets it; /usr/games tells it from husk's default).
const IMAGE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/games";

/// The fixture's three sources and a cache for this case.
struct Debian {
    rootfs: PathBuf,
    oci: String,
    archive: String,
    cache: PathBuf,
}

/// The fixture with this mode's shared cache, for cases that do not look at the cache.
fn shared(t: &Ctx) -> Option<Debian> {
    let mut d = fixture(t)?;
    d.cache = shared_dir(t, "debian-cache");
    Some(d)
}

/// The fixture with a cache of this case's own. None (after a skip, which fails under
/// HUSK_REQUIRE_PRIVILEGED=1) without the fixture.
fn fixture(t: &Ctx) -> Option<Debian> {
    let dir = match debian() {
        Ok(d) => d,
        Err(why) => {
            skip(&why);
            return None;
        }
    };
    Some(Debian {
        rootfs: dir.join("rootfs"),
        oci: format!("oci:{}:bookworm", dir.join("oci").display()),
        archive: format!("docker-archive:{}", dir.join("debian-docker.tar").display()),
        cache: t.dir.join("cache"),
    })
}

impl Debian {
    fn sources(&self) -> [String; 3] {
        [
            self.rootfs.display().to_string(),
            self.oci.clone(),
            self.archive.clone(),
        ]
    }

    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec!["--cache-dir", self.cache.to_str().unwrap()];
        all.extend_from_slice(args);
        all
    }

    fn rt(&self, t: &Ctx, args: &[&str]) -> Out {
        t.rt(&self.args(args))
    }

    fn pull(&self, t: &Ctx, image: &str) -> (Value, Out) {
        let out = self.rt(t, &["pull", "--json", image]).ok();
        (out.json(), out)
    }

    /// Names under `<cache>/<sub>`, sorted.
    fn entries(&self, sub: &str) -> Vec<String> {
        let mut v: Vec<String> = match std::fs::read_dir(self.cache.join(sub)) {
            Ok(d) => d
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }
}

fn caller_uid(t: &Ctx) -> u32 {
    match t.mode {
        Mode::Root => 0,
        Mode::Rootless => host().user.as_ref().unwrap().0,
    }
}

fn python3_runs_from_every_source(t: &Ctx) {
    let Some(d) = shared(t) else { return };
    let code = "import sys, platform; print('py', sys.version_info[0], platform.system())";
    for src in d.sources() {
        let out = d.rt(t, &["exec", &src, "python3", "-c", code]).ok();
        assert_eq!(out.stdout, "py 3 Linux\n", "{src}: {out}");
        // The Debian userland, not the host's: the image's os-release.
        let out = d.rt(t, &["exec", &src, "cat", "/etc/os-release"]).ok();
        assert!(out.stdout.contains("VERSION_CODENAME=bookworm"), "{out}");
    }
    t.assert_nothing_left();
}

/// `--sandbox` (and so `husk batch`) takes the same IMAGE forms as `husk exec`, from the cache.
fn sandbox_takes_every_source(t: &Ctx) {
    let Some(d) = shared(t) else { return };
    let code = "import sys, socket; print('py', sys.version_info[0], socket.gethostname())";
    for src in d.sources() {
        let out = d
            .rt(t, &["exec", "--sandbox", &src, "python3", "-c", code])
            .ok();
        assert_eq!(out.stdout, "py 3 sandbox\n", "{src}: {out}");
    }
    let out = d
        .rt(
            t,
            &[
                "exec",
                "--sandbox",
                "--json",
                &d.archive,
                "python3",
                "-c",
                "print(6*7)",
            ],
        )
        .ok();
    let record = out.json();
    assert_eq!(record["exit_code"], 0, "{out}");
    assert_eq!(record["stdout"], "42\n", "{out}");
    t.assert_nothing_left();
}

fn image_cmd_env_and_label_are_honoured(t: &Ctx) {
    let Some(d) = shared(t) else { return };
    for src in [&d.oci, &d.archive] {
        // No CMD: the image's Cmd (/bin/bash) runs and reads its script from stdin. The host's
        // PATH is a different one: the image's must win.
        let script = "echo \"bash=${BASH_VERSION%%.*} path=$PATH\"; exit 3";
        let env = [("PATH", "/opt/husk-test/bin:/usr/bin:/bin")];
        let args = d.args(&["run", src]);
        let out = t.spawn_env(&args, Some(script), &env).wait().code(3);
        assert_eq!(out.stdout, format!("bash=5 path={IMAGE_PATH}\n"), "{out}");
    }
    // The label: in the cache's record and as an annotation of the spec.
    let list = d.rt(t, &["images", "--json"]).ok().json();
    let images = list.as_array().unwrap();
    assert_eq!(images.len(), 2, "one record per manifest: {list}");
    for img in images {
        assert_eq!(
            img.pointer("/config/labels/org.opencontainers.image.title"),
            Some(&json!("husk-test-debian")),
            "{img}"
        );
        assert_eq!(img["config"]["cmd"], json!(["/bin/bash"]), "{img}");
    }
    let spec = d.rt(t, &["run", "--dry-run", &d.archive]).ok().json();
    assert_eq!(
        spec.pointer("/annotations/org.opencontainers.image.title"),
        Some(&json!("husk-test-debian")),
        "{spec}"
    );
    assert_eq!(spec["process"]["args"], json!(["/bin/bash"]), "{spec}");
    t.assert_nothing_left();
}

fn caller_identity_inside(t: &Ctx) {
    let Some(d) = shared(t) else { return };
    let uid = caller_uid(t);
    for src in d.sources() {
        let out = d.rt(t, &["exec", &src, "id", "-u"]).ok();
        assert_eq!(out.stdout.trim(), uid.to_string(), "{src}: {out}");
        // Names come from the image's /etc/passwd (make-rootfs adds tuser as 1001).
        let name = if uid == 0 { "root" } else { "tuser" };
        let out = d.rt(t, &["exec", &src, "id", "-un"]).ok();
        assert_eq!(out.stdout.trim(), name, "{src}: {out}");
        let out = d.rt(t, &["exec", "--fakeroot", &src, "id", "-u"]).ok();
        assert_eq!(out.stdout.trim(), "0", "{src} --fakeroot: {out}");
    }
    t.assert_nothing_left();
}

fn home_and_cwd_binds_work_with_debian_userland(t: &Ctx) {
    let Some(d) = shared(t) else { return };
    let home = t.mkdir(&t.dir.join("home"));
    let work = t.mkdir(&t.dir.join("work"));
    std::fs::write(work.join("in.txt"), "from the host\n").unwrap();
    t.give(&work.join("in.txt"));
    let script = "cd \"$HOME\" && echo \"home=$PWD\" && date +%Y > year && \
                  cd \"$0\" && echo \"pwd=$(pwd)\" && tr a-z A-Z < in.txt > out.txt && \
                  stat -c %u out.txt";
    let work_s = work.to_str().unwrap();
    let args = d.args(&[
        "exec", "--pwd", work_s, &d.archive, "bash", "-c", script, work_s,
    ]);
    let env = [("HOME", home.to_str().unwrap())];
    let out = t.rt_env(&args, &env).ok();
    let want = format!(
        "home={}\npwd={}\n{}\n",
        home.display(),
        work.display(),
        caller_uid(t)
    );
    assert_eq!(out.stdout, want, "{out}");
    // The writes landed on the host, owned by the caller.
    let year = std::fs::read_to_string(home.join("year")).unwrap();
    assert_eq!(year.trim().len(), 4, "{year:?}");
    let upper = std::fs::read_to_string(work.join("out.txt")).unwrap();
    assert_eq!(upper, "FROM THE HOST\n");
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(work.join("out.txt")).unwrap();
    assert_eq!(md.uid(), caller_uid(t));
    t.assert_nothing_left();
}

fn pipes_pass_through(t: &Ctx) {
    let Some(d) = shared(t) else { return };
    for src in d.sources() {
        let out = t.rt_pipe(&d.args(&["exec", &src, "cat"]), "x\n");
        let out = out.ok();
        assert_eq!(out.stdout, "x\n", "{src}: {out}");
    }
    // A longer stream than a pipe buffer holds, through Debian's coreutils.
    let input: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    let args = d.args(&["exec", &d.archive, "sort", "-r"]);
    let out = t.rt_pipe(&args, &input).ok();
    assert_eq!(out.stdout.lines().count(), 20_000, "{}", out.stderr);
    assert_eq!(out.stdout.lines().next(), Some("line 9999"));
    let args = d.args(&[
        "exec",
        &d.archive,
        "python3",
        "-c",
        "import sys; print(len(sys.stdin.read()))",
    ]);
    let out = t.rt_pipe(&args, &input).ok();
    assert_eq!(out.stdout.trim(), input.len().to_string(), "{out}");
    t.assert_nothing_left();
}

fn exit_status_and_signals_pass_through(t: &Ctx) {
    let Some(d) = shared(t) else { return };
    for src in d.sources() {
        let raise = ["exec", &src, "python3", "-c", "raise SystemExit(7)"];
        d.rt(t, &raise).code(7);
        let kill = ["exec", &src, "bash", "-c", "kill -TERM $$"];
        d.rt(t, &kill).code(128 + 15);
        let kill = [
            "exec",
            &src,
            "python3",
            "-c",
            "import os; os.kill(os.getpid(), 9)",
        ];
        d.rt(t, &kill).code(128 + 9);
    }
    t.assert_nothing_left();
}

fn second_import_reuses_cached_layers(t: &Ctx) {
    let Some(d) = fixture(t) else { return };
    let (first, _) = d.pull(t, &d.archive);
    assert_eq!(first["cached"], false, "{first}");
    assert_eq!(first["layers_unpacked"], 1, "{first}");
    let layers = d.entries("layers/sha256");
    assert_eq!(layers.len(), 1, "{layers:?}");
    let layer_dir = d.cache.join("layers/sha256").join(&layers[0]);
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let ino = inode(&layer_dir.join("usr/bin/python3.11"));
    // The same archive again: a cache hit, nothing read or unpacked.
    let (again, _) = d.pull(t, &d.archive);
    assert_eq!(again["cached"], true, "{again}");
    assert_eq!(again["layers_unpacked"], 0, "{again}");
    assert_eq!(again["bytes_read"], 0, "{again}");
    assert_eq!(again["key"], first["key"]);
    // The same layer under another manifest (the OCI layout): a new image, the layer reused.
    let (oci, _) = d.pull(t, &d.oci);
    assert_ne!(oci["key"], first["key"], "{oci}");
    assert_eq!(oci["layers_unpacked"], 0, "{oci}");
    assert_eq!(oci["layers_cached"], 1, "{oci}");
    // Removed and imported again: the rootfs is rebuilt from the cached layer, not unpacked.
    d.rt(t, &["rmi", &d.archive]).ok();
    let (back, _) = d.pull(t, &d.archive);
    assert_eq!(back["cached"], false, "{back}");
    assert_eq!(back["layers_unpacked"], 0, "{back}");
    assert_eq!(back["layers_cached"], 1, "{back}");
    assert_eq!(d.entries("layers/sha256"), layers);
    assert_eq!(inode(&layer_dir.join("usr/bin/python3.11")), ino);
    assert!(d.entries("tmp").is_empty(), "{:?}", d.entries("tmp"));
    let out = d
        .rt(t, &["exec", &d.archive, "python3", "-c", "print(6*7)"])
        .ok();
    assert_eq!(out.stdout, "42\n", "{out}");
}

/// Device nodes in the fixture's tree (what the image's layer holds).
fn device_nodes(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::FileTypeExt;
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        if ft.is_char_device() || ft.is_block_device() {
            v.push(format!("/dev/{}", e.file_name().to_string_lossy()));
        }
    }
    v.sort();
    v
}

/// Rootless, mknod is refused for every node of the image's /dev: one warning with the count and
/// a few names, not a line each. As root they are created and nothing is said.
fn device_nodes_are_one_warning(t: &Ctx) {
    let Some(d) = fixture(t) else { return };
    let nodes = device_nodes(&d.rootfs.join("dev"));
    assert!(
        nodes.len() > 3,
        "the fixture's /dev holds device nodes: {nodes:?}"
    );
    let (_, out) = d.pull(t, &d.archive);
    assert!(no_bar(&out.stderr), "progress drawn into a file: {out}");
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("device node"))
        .collect();
    match t.mode {
        Mode::Root => assert!(lines.is_empty(), "{out}"),
        Mode::Rootless => {
            assert_eq!(lines.len(), 1, "one line for all device nodes: {out}");
            let line = lines[0];
            let count = format!("skipped {} device nodes", nodes.len());
            assert!(
                line.contains("level=warning") && line.contains(&count),
                "{out}"
            );
            let named = nodes.iter().filter(|n| line.contains(n.as_str())).count();
            assert_eq!(named, 3, "names three of {nodes:?}: {out}");
            assert!(line.contains(&format!("{} more", nodes.len() - 3)), "{out}");
        }
    }
    // A second import (cached) says nothing.
    let (_, again) = d.pull(t, &d.archive);
    assert!(!again.stderr.contains("device node"), "{again}");
}

/// A pty pair (master, slave), both close-on-exec: other cases spawn processes on other threads
/// meanwhile, and a slave leaked into one of them would keep the master from ever seeing EOF.
fn pty() -> (PtyMaster, OwnedFd) {
    use std::os::unix::fs::OpenOptionsExt;
    let master =
        nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).unwrap();
    nix::pty::grantpt(&master).unwrap();
    nix::pty::unlockpt(&master).unwrap();
    let name = nix::pty::ptsname_r(&master).unwrap();
    // std opens with O_CLOEXEC.
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(OFlag::O_NOCTTY.bits())
        .open(name)
        .unwrap();
    (master, slave.into())
}

/// Reads `master` until the other side is closed everywhere (EIO on a pty, EOF on a pipe).
fn drain(mut f: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match f.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf
    })
}

/// Runs `args` with stderr on `write_end` (and our copy closed); returns the runtime's status and
/// what the reader collected.
fn with_stderr(
    t: &Ctx,
    args: &[&str],
    write_end: OwnedFd,
    read_end: impl Read + Send + 'static,
) -> (Out, String) {
    let reader = drain(read_end);
    let launch = Launch {
        fds: vec![(2, write_end)],
        ..Launch::default()
    };
    let running = t.spawn_with(args, None, &launch);
    drop(launch);
    let out = running.wait();
    let bytes = reader.join().unwrap();
    (out, String::from_utf8_lossy(&bytes).into_owned())
}

/// The import's progress bar is drawn on a terminal (a pty as stderr) and never into a pipe, for
/// `pull` and for the import `exec` does (each import with a fresh cache: a cached layer draws no
/// bar). Into a file: see device_nodes_are_one_warning.
fn progress_bar_only_on_a_terminal(t: &Ctx) {
    let Some(mut d) = fixture(t) else { return };
    let has_bar = |s: &str| s.contains("\r\x1b[K") && s.contains("layer 1/1") && s.contains("100%");
    // pull on a terminal.
    let (master, slave) = pty();
    let (out, tty) = with_stderr(t, &d.args(&["pull", &d.archive]), slave, master);
    let out = out.ok();
    assert!(has_bar(&tty), "no progress bar on the pty: {tty:?}");
    assert!(tty.contains("MiB"), "{tty:?}");
    assert!(out.stdout.starts_with("sha256:"), "{out}");
    // exec on a terminal: the bar, then the program's own stderr.
    d.cache = t.dir.join("cache-exec");
    let (master, slave) = pty();
    let args = d.args(&["exec", &d.oci, "sh", "-c", "echo done >&2"]);
    let (out, tty) = with_stderr(t, &args, slave, master);
    out.ok();
    assert!(has_bar(&tty), "no progress bar on the pty: {tty:?}");
    assert!(tty.trim_end().ends_with("done"), "{tty:?}");
    // A pipe: nothing but the program's output, no control characters.
    d.cache = t.dir.join("cache-pipe");
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
    let args = d.args(&["exec", &d.archive, "sh", "-c", "echo done >&2"]);
    let (out, piped) = with_stderr(t, &args, w, std::fs::File::from(r));
    out.ok();
    assert!(no_bar(&piped), "progress drawn into a pipe: {piped:?}");
    assert!(piped.ends_with("done\n"), "{piped:?}");
    t.assert_nothing_left();
}

fn no_bar(s: &str) -> bool {
    !s.contains('\x1b') && !s.contains('\r') && !s.contains("layer 1/1")
}

/// The same tree through the OCI runtime face: bundles/debian/config.json as root; rootless, the
/// rootless base config pointed at the Debian rootfs (read-only: it is shared).
fn bundle_runs_through_the_oci_face(t: &Ctx) {
    let Some(d) = fixture(t) else { return };
    let mut b = t.bundle();
    if t.mode == Mode::Root {
        let path = host().bundles.join("debian/config.json");
        b.config = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    }
    let b = b
        .set("/root/path", json!(d.rootfs.to_str().unwrap()))
        .set("/root/readonly", json!(true))
        .args(&["python3", "-c", "import os; print('uid', os.getuid())"]);
    let id = t.id("debian");
    let dir = t.write(&b);
    let out = t.rt(&["run", "--bundle", dir.to_str().unwrap(), &id]).ok();
    assert_eq!(out.stdout, "uid 0\n", "{out}");
    t.assert_nothing_left();
}

/// The filesystem type of the mount at `target` in a mountinfo text (the last one wins).
fn fstype_at(mountinfo: &str, target: &str) -> Option<String> {
    mountinfo
        .lines()
        .rev()
        .filter(|l| l.split(' ').nth(4) == Some(target))
        .find_map(|l| l.split(" - ").nth(1)?.split(' ').next().map(String::from))
}

/// The fixture's rootfs has no /etc/hosts: run in place, its /etc gets a read-only overlay (and
/// is not written to); imported, the cache adds the empty mount point, and /etc is the image's.
fn mount_points_for_cached_images_and_rootfs_dirs(t: &Ctx) {
    let Some(d) = shared(t) else { return };
    let etc = d.rootfs.join("etc");
    assert!(!etc.join("hosts").exists(), "the fixture has /etc/hosts");
    let names = |dir: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let mtime =
        |p: &Path| std::os::unix::fs::MetadataExt::mtime_nsec(&std::fs::metadata(p).unwrap());
    let (before, before_mtime) = (names(&etc), mtime(&etc));
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap();
    let rootfs = d.rootfs.display().to_string();
    let (img, _) = d.pull(t, &d.archive);
    let cached = PathBuf::from(img["rootfs"].as_str().unwrap());
    assert_eq!(std::fs::read(cached.join("etc/hosts")).unwrap(), b"");
    for (src, in_place) in [(rootfs.as_str(), true), (d.archive.as_str(), false)] {
        let out = d.rt(t, &["exec", src, "cat", "/etc/hosts"]).ok();
        assert_eq!(out.stdout, hosts, "{src}");
        let info = d
            .rt(t, &["exec", src, "cat", "/proc/self/mountinfo"])
            .ok()
            .stdout;
        let etc_type = fstype_at(&info, "/etc");
        if !in_place {
            assert_eq!(etc_type, None, "{src}: {info}");
        } else if overlayfs_for(t.mode) {
            assert_eq!(etc_type.as_deref(), Some("overlay"), "{src}: {info}");
        } else {
            // Rebuilt in the launch directory instead: a bind of it.
            assert!(etc_type.is_some(), "{src}: {info}");
        }
        assert!(fstype_at(&info, "/etc/hosts").is_some(), "{src}: {info}");
        let ro = d.rt(t, &["exec", src, "touch", "/etc/new"]);
        assert!(ro.stderr.contains("Read-only file system"), "{src}: {ro}");
    }
    assert_eq!(names(&etc), before);
    assert_eq!(mtime(&etc), before_mtime);
    t.assert_nothing_left();
}
