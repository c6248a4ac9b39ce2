//! `--device VENDOR/CLASS=NAME` and `--gpu` through CDI spec files. No GPU here: each case writes
//! a real spec describing harmless host things (/dev/zero and /dev/null as the "devices", a
//! directory as the "driver libraries", a hook that records the state it is given) and checks
//! inside the container that every edit took effect.

use crate::both;
use crate::harness::{host, Ctx, Out};
use serde_json::json;
use std::path::{Path, PathBuf};

both!(
    devices_env_mounts_and_hooks_apply,
    one_device_gets_only_its_own_nodes,
    node_over_the_hosts_dev,
    gpu_without_a_spec_names_the_dirs,
    unknown_device_and_bad_spec_are_one_line,
);

const KIND: &str = "husk-test.example/gpu";

fn image() -> &'static str {
    host().rootfs.to_str().unwrap()
}

/// The vendor's world: a spec dir, a "driver" dir and where the hook writes.
struct Vendor {
    cdi: PathBuf,
    marker: PathBuf,
}

impl Vendor {
    fn new(t: &Ctx) -> Vendor {
        let cdi = t.mkdir(&t.dir.join("cdi"));
        let drv = t.mkdir(&t.dir.join("drv"));
        std::fs::write(drv.join("libfake.so"), "driver\n").unwrap();
        let marker = t.dir.join("hook-marker");
        let spec = json!({
            "cdiVersion": "0.6.0",
            "kind": KIND,
            "containerEdits": {
                "env": ["HUSK_CDI_DRIVER=yes"],
                "mounts": [{"hostPath": drv, "containerPath": "/usr/lib/husk-drv",
                            "options": ["ro", "nosuid"]}],
                "hooks": [{"hookName": "createRuntime", "path": "/bin/sh",
                           "args": ["sh", "-c", format!("cat > {}", marker.display())]}]
            },
            "devices": [
                {"name": "0", "containerEdits": {"env": ["HUSK_CDI_GPU0=yes"],
                    "deviceNodes": [{"path": "/dev/husk-test/gpu0", "hostPath": "/dev/zero"}]}},
                {"name": "1", "containerEdits": {
                    "deviceNodes": [{"path": "/dev/husk-test/gpu1", "hostPath": "/dev/null",
                                     "type": "c", "major": 1, "minor": 3}]}}
            ]
        });
        Vendor::write(t, &cdi.join("vendor.json"), &spec.to_string());
        Vendor { cdi, marker }
    }

    fn write(t: &Ctx, path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        t.give(path);
    }

    fn exec(&self, t: &Ctx, flags: &[&str], script: &str) -> Out {
        let mut args = vec!["exec", "--cdi-dir", self.cdi.to_str().unwrap()];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[image(), "sh", "-c", script]);
        t.rt(&args)
    }
}

/// The single stderr line of a failed launch (exit 255).
#[track_caller]
fn one_line(out: Out) -> String {
    let out = out.exec_fails();
    let lines: Vec<&str> = out.stderr.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1, "{out}");
    lines[0].to_string()
}

const REPORT: &str = "for d in /dev/husk-test/gpu0 /dev/husk-test/gpu1; do \
    if [ -e $d ]; then stat -c \"$d %t:%T\" $d; else echo \"$d missing\"; fi; done; \
    echo \"zeros $(head -c 4 /dev/husk-test/gpu0 2>&1 | wc -c)\"; \
    cat /usr/lib/husk-drv/libfake.so; \
    if touch /usr/lib/husk-drv/new 2>/dev/null; then echo rw; else echo ro; fi; \
    echo \"env $HUSK_CDI_DRIVER $HUSK_CDI_GPU0\"";

fn devices_env_mounts_and_hooks_apply(t: &Ctx) {
    let v = Vendor::new(t);
    // --contain: a private /dev, where the vendor's paths can be made.
    let out = v
        .exec(
            t,
            &["--contain", "--device", &format!("{KIND}=all")],
            REPORT,
        )
        .ok();
    assert_eq!(
        out.stdout,
        "/dev/husk-test/gpu0 1:5\n/dev/husk-test/gpu1 1:3\nzeros 4\ndriver\nro\nenv yes yes\n",
        "{out}"
    );
    // The hook ran on the host with the container's state on its stdin.
    let state = std::fs::read_to_string(&v.marker).unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert!(
        state["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("husk-")),
        "{state}"
    );
    t.assert_nothing_left();
}

fn one_device_gets_only_its_own_nodes(t: &Ctx) {
    let v = Vendor::new(t);
    let out = v
        .exec(t, &["--contain", "--device", &format!("{KIND}=1")], REPORT)
        .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "/dev/husk-test/gpu0 missing", "{out}");
    assert_eq!(lines[1], "/dev/husk-test/gpu1 1:3", "{out}");
    // The spec-wide edits come with any of its devices; device 0's env does not.
    assert_eq!(lines.last().copied(), Some("env yes "), "{out}");
}

/// Without --contain the host's /dev is the container's: a node at a host path is bound over it
/// (here /dev/full shows /dev/zero), and one the host lacks is refused, never made in the host's /dev.
fn node_over_the_hosts_dev(t: &Ctx) {
    let v = Vendor::new(t);
    // YAML, as nvidia-ctk writes by default.
    let spec = "cdiVersion: 0.6.0\nkind: husk-test.example/acc\ndevices:\n\
        - name: full\n  containerEdits:\n    deviceNodes:\n    - path: /dev/full\n      hostPath: /dev/zero\n\
        - name: new\n  containerEdits:\n    deviceNodes:\n    - path: /dev/husk-test-acc0\n      hostPath: /dev/zero\n";
    Vendor::write(t, &v.cdi.join("acc.yaml"), spec);
    let out = v
        .exec(
            t,
            &["--device", "husk-test.example/acc=full"],
            "stat -c %t:%T /dev/full",
        )
        .ok();
    assert_eq!(out.stdout, "1:5\n", "{out}");
    assert_eq!(
        std::fs::metadata("/dev/full")
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                m.rdev()
            })
            .ok(),
        Some(nix::sys::stat::makedev(1, 7)),
        "the host's /dev/full is untouched"
    );
    let line = one_line(v.exec(t, &["--device", "husk-test.example/acc=new"], "true"));
    assert!(
        line.contains("/dev/husk-test-acc0") && line.contains("--contain"),
        "{line}"
    );
    assert!(!Path::new("/dev/husk-test-acc0").exists());
    t.assert_nothing_left();
}

fn gpu_without_a_spec_names_the_dirs(t: &Ctx) {
    let v = Vendor::new(t);
    let cdi = v.cdi.to_str().unwrap();
    let line = one_line(v.exec(t, &["--gpu"], "true"));
    assert!(
        line.contains(&format!("--gpu: no CDI spec for nvidia.com/gpu in {cdi}")),
        "{line}"
    );
    // The same through HUSK_CDI_DIR, two directories.
    let other = t.mkdir(&t.dir.join("cdi2"));
    let dirs = format!("{}:{cdi}", other.display());
    let out = t.rt_env(
        &["exec", "--gpu", image(), "true"],
        &[("HUSK_CDI_DIR", &dirs)],
    );
    let line = one_line(out);
    assert!(
        line.contains(&format!("in {}, {cdi}", other.display())),
        "{line}"
    );
    // Bad syntax is a usage error; so is a device for the sandbox, which would not pass it.
    t.rt(&["exec", "--device", "nvidia.com/gpu", image(), "true"])
        .code(2);
    t.rt(&["exec", "--sandbox", "--gpu", image(), "true"])
        .code(2);
    assert!(!v.marker.exists(), "no hook ran");
    t.assert_nothing_left();
}

fn unknown_device_and_bad_spec_are_one_line(t: &Ctx) {
    let v = Vendor::new(t);
    let line = one_line(v.exec(t, &["--device", &format!("{KIND}=7")], "true"));
    assert!(
        line.contains("unknown device") && line.contains("has 0, 1"),
        "{line}"
    );
    let bad = v.cdi.join("broken.json");
    Vendor::write(t, &bad, "{\"cdiVersion\": \"0.6.0\", \"kind\": ");
    let line = one_line(v.exec(t, &["--device", &format!("{KIND}=0")], "true"));
    assert!(line.contains(bad.to_str().unwrap()), "{line}");
    assert!(!v.marker.exists(), "no hook ran");
    t.assert_nothing_left();
}
