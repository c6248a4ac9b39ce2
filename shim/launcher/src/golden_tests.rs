//! Golden config.json files for fixed host facts and an in-memory image: the whole spec, so any
//! change to what the launcher generates shows up in review. `HUSK_UPDATE_GOLDEN=1 cargo test -p
//! husk-launcher golden` rewrites them.

use crate::image::{ImageConfig, ResolvedImage};
use crate::options::{parse_binds, Net, Options, Resources, Verb};
use crate::underlay::fake::FakeFs;
use crate::underlay::Layer;
use crate::{build, templates, HostFacts};
use std::path::PathBuf;

fn host(uid: u32) -> HostFacts {
    let (user, home) = if uid == 0 {
        ("root", "/root")
    } else {
        ("alice", "/home/alice")
    };
    HostFacts {
        uid,
        gid: uid,
        user: user.into(),
        gecos: "Alice".into(),
        home: home.into(),
        cwd: "/scratch/run1".into(),
        env: [
            ("PATH", "/opt/modules/bin:/usr/bin"),
            ("TERM", "xterm-256color"),
            ("OMP_NUM_THREADS", "8"),
            ("LD_LIBRARY_PATH", "/opt/lib"),
            ("HUSKENV_FOO", "bar"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        kernel: (6, 1),
        overlayfs: true,
    }
}

fn fs() -> FakeFs {
    FakeFs::default()
        .dir("/img/usr/bin")
        .link("/img/bin", "usr/bin")
        .file("/img/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
        .file("/img/etc/group", "root:x:0:\n")
        .dir("/img/home")
        .dir("/img/proc")
        .dir("/img/sys")
        .dir("/img/dev")
        .dir("/img/tmp")
        .dir("/img/root")
        .dir("/home/alice")
        .dir("/root")
        .dir("/scratch/run1")
        .dir("/data")
        .file("/etc/hosts", "")
        .file("/etc/resolv.conf", "")
}

fn image(config: ImageConfig) -> ResolvedImage {
    ResolvedImage {
        reference: "./img".into(),
        rootfs: "/img".into(),
        config,
        cached: false,
        warnings: Vec::new(),
    }
}

fn check(name: &str, uid: u32, image: ResolvedImage, opts: Options) {
    let l = build(
        templates::render(templates::DEFAULT_PROFILE, uid, uid).unwrap(),
        &image,
        &opts,
        &host(uid),
        &fs(),
        "/run/user/1001/husk-launch/husk-1-0".as_ref(),
    )
    .unwrap();
    // Only real root (without --fakeroot or --userns, as in every golden case) has none.
    assert_eq!(l.userns(), uid != 0, "{name}");
    let mut text = l.config_json();
    for (name, tree) in [
        ("rootfs", &l.underlay.skeleton),
        ("under", &l.underlay.under),
    ] {
        text.push_str(&format!("--- {name}\n"));
        for (p, e) in tree {
            text.push_str(&format!("{} {e:?}\n", p.display()));
        }
    }
    for (name, body) in &l.files {
        text.push_str(&format!("--- {name}\n{body}"));
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{name}.txt"));
    if std::env::var_os("HUSK_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        want == text,
        "{} differs; HUSK_UPDATE_GOLDEN=1 cargo test -p husk-launcher golden rewrites it\n{text}",
        path.display()
    );
}

#[test]
fn golden_rootless_exec() {
    let opts = Options::new(Verb::Exec {
        command: vec!["hostname".into()],
    });
    check("rootless-exec", 1001, image(ImageConfig::default()), opts);
}

#[test]
fn golden_fakeroot_run_image_config() {
    let mut opts = Options::new(Verb::Run { args: vec![] });
    opts.fakeroot = true;
    opts.binds = parse_binds("/data:/data:ro").unwrap();
    opts.net = Some(Net::None);
    let config = ImageConfig {
        env: vec!["PATH=/app/bin:/usr/bin".into()],
        entrypoint: vec!["/app/bin/serve".into()],
        cmd: vec!["--port".into(), "80".into()],
        working_dir: Some("/app".into()),
        labels: [(
            "org.opencontainers.image.title".to_string(),
            "demo".to_string(),
        )]
        .into(),
        ..Default::default()
    };
    check("fakeroot-run", 1001, image(config), opts);
}

#[test]
fn golden_root_containall_shell() {
    let mut opts = Options::new(Verb::Shell { shell: None });
    opts.containall = true;
    opts.tty = true;
    opts.hostname = Some("node1".into());
    opts.resources = Resources {
        memory: Some(1 << 30),
        cpus: Some(1.5),
        pids: Some(100),
    };
    check(
        "root-containall-shell",
        0,
        image(ImageConfig::default()),
        opts,
    );
}

#[test]
fn writable_is_refused_for_a_cached_image() {
    let mut img = image(ImageConfig::default());
    img.cached = true;
    let mut opts = Options::new(crate::Verb::Run { args: vec![] });
    opts.writable = true;
    let e = build(
        templates::render(templates::DEFAULT_PROFILE, 1001, 1001).unwrap(),
        &img,
        &opts,
        &host(1001),
        &fs(),
        std::path::Path::new("/run/l"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("image cache"), "{e}");
}

#[test]
fn golden_rootless_writable_tmpfs() {
    let mut opts = Options::new(Verb::Exec {
        command: vec!["sh".into()],
    });
    opts.overlay = Some(crate::Overlay::Tmpfs);
    check(
        "rootless-writable-tmpfs",
        1001,
        image(ImageConfig::default()),
        opts,
    );
}

fn build_with(
    img: &ResolvedImage,
    opts: &Options,
    host: &HostFacts,
) -> Result<crate::Launch, crate::PlanError> {
    let fs = fs()
        .file("/dev/fuse", "")
        .dir("/tmp/.X11-unix")
        .file("/home/alice/.Xauthority", "");
    build(
        templates::render(templates::DEFAULT_PROFILE, host.uid, host.gid).unwrap(),
        img,
        opts,
        host,
        &fs,
        std::path::Path::new("/run/l"),
    )
}

#[test]
fn overlay_dir_over_a_cached_image() {
    let mut img = image(ImageConfig::default());
    img.cached = true;
    let mut opts = Options::new(Verb::Run { args: vec![] });
    opts.overlay = Some(crate::Overlay::Dir("ovl".into()));
    let l = build_with(&img, &opts, &host(0)).unwrap();
    let m = l.config["mounts"].as_array().unwrap();
    let usr = m.iter().find(|m| m["destination"] == "/usr").unwrap();
    assert_eq!(usr["type"], "overlay");
    // Real root, no user namespace: trusted xattrs, no userxattr.
    assert_eq!(
        usr["options"],
        serde_json::json!([
            "lowerdir=/img/usr",
            "upperdir=/scratch/run1/ovl/upper/usr",
            "workdir=/scratch/run1/ovl/work/usr"
        ])
    );
    assert!(l
        .dirs
        .contains(&PathBuf::from("/scratch/run1/ovl/work/usr")));
    // Not split for the mount points in it: the engine makes them in the upper directory.
    let etc = m.iter().find(|m| m["destination"] == "/etc").unwrap();
    assert_eq!(etc["type"], "overlay");
    // --writable and an overlay do not mix.
    opts.writable = true;
    img.cached = false;
    assert!(build_with(&img, &opts, &host(0)).is_err());
    opts.writable = false;
    opts.overlay = Some(crate::Overlay::Dir("/a:b".into()));
    let e = build_with(&img, &opts, &host(0)).unwrap_err();
    assert!(e.to_string().contains("/a:b"), "{e}");
}

#[test]
fn fuse_and_x11() {
    let img = image(ImageConfig::default());
    let mut opts = Options::new(Verb::Run { args: vec![] });
    opts.fuse = true;
    opts.x11 = true;
    opts.contain = true;
    opts.cleanenv = true;
    let mut h = host(1001);
    h.env.push(("DISPLAY".into(), ":99".into()));
    h.env
        .push(("XAUTHORITY".into(), "/home/alice/.Xauthority".into()));
    let l = build_with(&img, &opts, &h).unwrap();
    let m = l.config["mounts"].as_array().unwrap();
    let at = |d: &str| m.iter().find(|m| m["destination"] == d).cloned();
    assert_eq!(at("/dev/fuse").unwrap()["source"], "/dev/fuse");
    assert_eq!(at("/tmp/.X11-unix").unwrap()["type"], "bind");
    let x = at("/home/alice/.Xauthority").unwrap();
    assert!(x["options"].as_array().unwrap().contains(&"ro".into()));
    let env = l.config["process"]["env"].to_string();
    assert!(env.contains("DISPLAY=:99") && env.contains("XAUTHORITY=/home/alice/.Xauthority"));
    let devices = l.config["linux"]["resources"]["devices"].to_string();
    assert!(devices.contains(r#""major":10,"minor":229"#), "{devices}");
    let mut no_display = host(1001);
    no_display.env.clear();
    let l = build_with(&img, &opts, &no_display).unwrap();
    assert_eq!(l.warnings, ["--x11: DISPLAY is not set"]);
}

/// The underlay of a rootless exec from /scratch/run1 (so / lacks /scratch) on a host like
/// [`host`]'s but for the kernel and the image's filesystem, and with or without --writable.
fn underlay_with(kernel: (u32, u32), fs_type: i64, writable: bool) -> crate::underlay::Underlay {
    let mut opts = Options::new(Verb::Exec {
        command: vec!["true".into()],
    });
    opts.writable = writable;
    let mut h = host(1001);
    h.kernel = kernel;
    let l = build(
        templates::render(templates::DEFAULT_PROFILE, 1001, 1001).unwrap(),
        &image(ImageConfig::default()),
        &opts,
        &h,
        &FakeFs {
            fs_type: Some(fs_type),
            ..fs()
        },
        "/run/user/1001/husk-launch/husk-1-0".as_ref(),
    )
    .unwrap();
    let readonly = l.config["root"]["readonly"].as_bool();
    assert_eq!(readonly, Some(!writable));
    let kinds: Vec<&str> = l.config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["type"].as_str())
        .collect();
    assert_eq!(
        kinds.contains(&"overlay"),
        l.underlay
            .mounts
            .iter()
            .any(|m| matches!(m, Layer::Overlay(_)))
    );
    l.underlay
}

#[test]
fn overlays_only_where_the_kernel_and_options_allow() {
    let split = |u: &crate::underlay::Underlay| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = u
            .mounts
            .iter()
            .filter(|m| matches!(m, Layer::Split(_)))
            .map(|m| m.path().to_path_buf())
            .collect();
        v.sort();
        v
    };
    let overlaid = |u: &crate::underlay::Underlay| {
        u.mounts
            .iter()
            .filter(|m| matches!(m, Layer::Overlay(_)))
            .count()
    };
    const EXT4: i64 = 0xEF53;
    // /etc lacks hosts and resolv.conf, /home lacks alice: one overlay each on 5.11 and later.
    let u = underlay_with((5, 11), EXT4, false);
    assert_eq!((overlaid(&u), split(&u).len()), (2, 0));
    // Before 5.11 a user namespace cannot mount overlayfs; --writable needs writable binds; an
    // image on a filesystem not known to work as a lower layer (Lustre here) gets binds too.
    for u in [
        underlay_with((5, 10), EXT4, false),
        underlay_with((6, 1), EXT4, true),
        underlay_with((6, 1), 0x0BD0_0BD0, false),
    ] {
        assert_eq!(overlaid(&u), 0);
        assert_eq!(split(&u), [PathBuf::from("/etc"), "/home".into()]);
        assert!(u.skeleton_root);
    }
}
