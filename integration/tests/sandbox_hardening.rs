//! Hardening of `--sandbox` (docs/sandbox.md): Landlock (also as the engine's
//! run.husk.landlock.write annotation under `husk run --bundle`), loopback up in the new network
//! namespace, `--socket` (one host Unix socket for a tool server) and the attacks through it, and
//! root's sandbox running as an unprivileged host id in a user namespace.

use crate::harness::{has_cgroups, host, Ctx, Mode, Out};
use crate::{both, root_only};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

both!(
    landlock_confines_writes_and_the_record_says_so,
    landlock_annotation_limits_a_bundle_below_its_mounts,
    landlock_annotation_bad_value_fails_create_cleanly,
    loopback_is_up_and_nothing_else_is_reachable,
    socket_serves_a_tool_call_without_network,
    socket_attack_replace_unlink_rename_the_socket,
    socket_attack_reach_host_files_through_the_bound_path,
    socket_host_path_must_be_the_socket_itself,
    host_id_is_for_root_only,
    without_landlock_the_run_goes_on_and_the_record_says_so,
    landlock_annotation_holds_for_exec_too,
);

// The ids and cgroup below are root's: an unprivileged caller's sandbox runs as the caller.
root_only!(root_sandbox_runs_as_an_unprivileged_host_id);

/// The busybox rootfs as an image directory (shared with sandbox_policy.rs).
pub(crate) fn image() -> &'static str {
    host().rootfs.to_str().unwrap()
}

/// `husk exec --sandbox FLAGS IMAGE sh -c SCRIPT` (shared with sandbox_policy.rs).
pub(crate) fn sandbox(t: &Ctx, flags: &[&str], script: &str) -> Out {
    let mut args = vec!["exec", "--sandbox"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[image(), "sh", "-c", script]);
    t.rt(&args)
}

/// The JSON objects husk-probe printed, one per line, in order.
fn probes(out: &Out, text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{out}")))
        .collect()
}

fn stdout_of(r: &Value) -> String {
    r["stdout"].as_str().unwrap_or_default().to_string()
}

/// A Unix socket the runtime's user (and root's sandbox id) may connect to, served on a thread:
/// each connection's request is answered with "answer:" + request. Returns its path.
fn tool_server(t: &Ctx, dir: &Path) -> PathBuf {
    let path = dir.join("agent.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    t.give(&path);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { return };
            let mut req = String::new();
            let _ = c.read_to_string(&mut req);
            let _ = c.write_all(format!("answer:{req}").as_bytes());
        }
    });
    path
}

fn socket_flag(sock: &Path, inside: &str) -> String {
    format!("{}:{inside}", sock.display())
}

fn landlock_confines_writes_and_the_record_says_so(t: &Ctx) {
    // /dev is a read-write tmpfs the container's root owns: only Landlock stops a write there.
    let script = "for p in /workspace/w /tmp/w /dev/shm/w /dev/x /dev/null; do \
        husk-probe write $p; done; mkdir /dev/d 2>/dev/null && echo dev-mkdir; \
        grep -E '^[^ ]+ /dev tmpfs rw' /proc/self/mounts | head -1";
    let out = sandbox(t, &["--json"], script).ok();
    let r = out.json();
    let text = stdout_of(&r);
    let p = probes(&out, &text);
    assert_eq!(p.len(), 5, "{out}");
    for ok in &p[0..3] {
        assert_eq!(ok["ok"], true, "{ok}\n{out}");
    }
    assert_eq!(p[3]["ok"], false, "{out}");
    assert_eq!(
        p[3]["error"], "EACCES",
        "Landlock, not the mount, refuses: {out}"
    );
    assert_eq!(p[4]["ok"], true, "/dev/null stays writable: {out}");
    assert!(!text.contains("dev-mkdir"), "{out}");
    assert!(
        text.contains(" /dev tmpfs rw"),
        "the mount itself is writable: {out}"
    );
    let l = &r["landlock"];
    assert_eq!(l["enforced"], true, "{out}");
    assert!(l["abi"].as_u64().unwrap() >= 1, "{out}");
    assert_eq!(
        l["writable"],
        json!(["/workspace", "/tmp", "/dev/shm"]),
        "{out}"
    );
}

/// `husk ARGS` as the mode's user, under `husk-probe nolandlock` (landlock_create_ruleset fails
/// with ENOSYS for husk and everything it starts, as on a kernel built without Landlock).
fn rt_without_landlock(t: &Ctx, args: &[&str]) -> Out {
    let probe = host().rootfs.join("bin/husk-probe");
    crate::launcher_errors::run_wrapped(t, &[probe.to_str().unwrap(), "nolandlock"], args)
}

fn without_landlock_the_run_goes_on_and_the_record_says_so(t: &Ctx) {
    let args = [
        "exec",
        "--sandbox",
        "--json",
        image(),
        "sh",
        "-c",
        "touch /dev/x && echo dev-writable",
    ];
    let out = rt_without_landlock(t, &args).ok();
    let r = out.json();
    assert_eq!(
        r["landlock"],
        json!({"abi": 0, "enforced": false, "writable": [],
            "reason": "the kernel has no Landlock support"}),
        "{out}"
    );
    // Honest: nothing stops the write Landlock would have refused, and husk says so.
    assert_eq!(stdout_of(&r), "dev-writable\n", "{out}");
    assert!(out.stderr.contains("landlock not enforced"), "{out}");
}

fn landlock_annotation_limits_a_bundle_below_its_mounts(t: &Ctx) {
    let script = "husk-probe write /scratch/a; husk-probe write /tmp/a; \
        mkdir /scratch/d 2>/dev/null && echo scratch-mkdir; husk-probe write /dev/null x";
    let bundle = |annotate: bool| {
        t.bundle()
            .args(&["sh", "-c", script])
            .set("/process/terminal", json!(false))
            .edit(|c| {
                let m = c["mounts"].as_array_mut().unwrap();
                for d in ["/scratch", "/tmp"] {
                    m.push(json!({"destination": d, "type": "tmpfs", "source": "tmpfs",
                        "options": ["nosuid", "nodev", "mode=1777"]}));
                }
                if annotate {
                    c["annotations"]["run.husk.landlock.write"] = json!("/tmp");
                }
            })
    };
    // Without the annotation the tmpfs on /scratch is writable: the mount allows it.
    let dir = t.write(&bundle(false));
    let out = t
        .rt(&["run", "--bundle", dir.to_str().unwrap(), &t.id("ll0")])
        .ok();
    let p = probes(&out, &out.stdout);
    assert_eq!(p[0]["ok"], true, "{out}");
    assert!(out.stdout.contains("scratch-mkdir"), "{out}");
    // With it only /tmp (and the devices) may be written.
    let dir = t.write(&bundle(true));
    let out = t
        .rt(&["run", "--bundle", dir.to_str().unwrap(), &t.id("ll1")])
        .ok();
    let p = probes(&out, &out.stdout);
    assert_eq!(p.len(), 3, "{out}");
    assert_eq!(p[0]["error"], "EACCES", "{out}");
    assert_eq!(p[1]["ok"], true, "{out}");
    assert_eq!(p[2]["ok"], true, "{out}");
    assert!(!out.stdout.contains("scratch-mkdir"), "{out}");
    assert!(!out.stderr.contains("landlock not enforced"), "{out}");
    t.assert_nothing_left();
}

fn landlock_annotation_holds_for_exec_too(t: &Ctx) {
    let b = t
        .bundle()
        .probe(&["sleep", "60"])
        .set("/process/terminal", json!(false))
        .edit(|c| {
            c["mounts"]
                .as_array_mut()
                .unwrap()
                .push(json!({"destination": "/scratch",
                "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}));
            c["annotations"]["run.husk.landlock.write"] = json!("/tmp");
        });
    let id = t.start_running(&b, "llexec");
    let out = t
        .rt(&["exec", &id, "/bin/husk-probe", "write", "/scratch/a"])
        .ok();
    assert_eq!(out.probe().get("error"), "EACCES", "{out}");
    t.rt(&["delete", "--force", &id]).ok();
}

fn landlock_annotation_bad_value_fails_create_cleanly(t: &Ctx) {
    let b = t.bundle().probe(&["exit", "0"]).set(
        "/annotations",
        json!({"run.husk.landlock.write": "/tmp:../etc"}),
    );
    let dir = t.write(&b);
    let out = t
        .rt(&["run", "--bundle", dir.to_str().unwrap(), &t.id("llbad")])
        .fails();
    assert!(
        out.stderr.contains("run.husk.landlock.write") && out.stderr.contains("../etc"),
        "{out}"
    );
    assert_eq!(out.stderr.trim().lines().count(), 1, "{out}");
    t.assert_nothing_left();
}

fn loopback_is_up_and_nothing_else_is_reachable(t: &Ctx) {
    // A server and a client inside, over 127.0.0.1; the client retries until the server listens,
    // then the output is polled for what arrived (each poll bounded by 100 tries, not a sleep).
    // The server's stdin is a pipe that stays open: busybox's small nc exits as soon as its stdin
    // reads EOF, which raced with the data arriving (a background job's stdin is /dev/null).
    let script = "sleep 600 | nc -l -p 9999 > /tmp/got & \
        for i in $(seq 100); do echo over-lo | nc 127.0.0.1 9999 2>/dev/null && break; usleep 50000; done; \
        for i in $(seq 100); do grep -q over-lo /tmp/got && break; usleep 50000; done; \
        echo got=$(cat /tmp/got); echo flags=$(cat /sys/class/net/lo/flags); \
        nc -w 2 192.0.2.1 80 </dev/null 2>&1; echo outside=$?; cat /proc/net/route";
    let out = sandbox(t, &["--json"], script).ok();
    let text = stdout_of(&out.json());
    assert!(text.contains("got=over-lo\n"), "{out}");
    assert!(text.contains("flags=0x9\n"), "lo is UP|LOOPBACK: {out}");
    assert!(!text.contains("outside=0"), "{out}");
    assert!(text.contains("unreachable"), "{out}");
    // No route at all: only the header line.
    let routes: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Iface"))
        .collect();
    assert_eq!(routes.len(), 1, "{out}");
    // The engine does it for any new network namespace (`husk run --bundle` too), as runc does.
    let b = t
        .bundle()
        .args(&["cat", "/sys/class/net/lo/flags"])
        .set("/process/terminal", json!(false))
        .edit(|c| {
            let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
            if !ns.iter().any(|n| n["type"] == "network") {
                ns.push(json!({"type": "network"}));
            }
        });
    let dir = t.write(&b);
    let out = t
        .rt(&["run", "--bundle", dir.to_str().unwrap(), &t.id("lo")])
        .ok();
    assert_eq!(out.stdout, "0x9\n", "{out}");
}

fn socket_serves_a_tool_call_without_network(t: &Ctx) {
    let sock = tool_server(t, &t.dir);
    let flag = socket_flag(&sock, "/run/tool.sock");
    let script =
        "husk-probe unix /run/tool.sock ls-files; cat /proc/net/dev | tail -n +3 | cut -d: -f1";
    let out = sandbox(t, &["--json", "--socket", &flag], script).ok();
    let r = out.json();
    let text = stdout_of(&r);
    let p = probes(&out, &text);
    assert_eq!(p[0]["ok"], true, "{out}");
    assert_eq!(p[0]["reply"], "answer:ls-files", "{out}");
    let ifaces: Vec<&str> = text.lines().skip(1).map(str::trim).collect();
    assert_eq!(ifaces, ["lo"], "{out}");
}

fn socket_attack_replace_unlink_rename_the_socket(t: &Ctx) {
    let hostdir = t.mkdir(&t.dir.join("agent"));
    let sock = tool_server(t, &hostdir);
    let before = std::fs::metadata(&sock).unwrap();
    let flag = socket_flag(&sock, "/run/tool.sock");
    let script = "rm -f /run/tool.sock && echo UNLINKED; mv /run/tool.sock /run/moved && echo RENAMED; \
        ln -sf /etc/passwd /run/tool.sock && echo REPLACED; chmod 777 /run/tool.sock && echo CHMOD; \
        touch /run/tool.sock && echo TOUCHED; echo x > /run/tool.sock && echo WROTE; \
        touch /run/new && echo CREATED-BESIDE; mknod /run/p p 2>/dev/null && echo FIFO; \
        husk-probe unix /run/tool.sock still-there";
    let out = sandbox(t, &["--json", "--socket", &flag], script).ok();
    let text = stdout_of(&out.json());
    for bad in [
        "UNLINKED",
        "RENAMED",
        "REPLACED",
        "CHMOD",
        "TOUCHED",
        "WROTE",
        "CREATED-BESIDE",
        "FIFO",
    ] {
        assert!(!text.contains(bad), "{bad}: {out}");
    }
    let p = probes(&out, &text);
    assert_eq!(p.last().unwrap()["reply"], "answer:still-there", "{out}");
    // The host's socket is the same inode, same mode, and its directory holds nothing new.
    let after = std::fs::symlink_metadata(&sock).unwrap();
    assert_eq!(
        (after.ino(), after.mode()),
        (before.ino(), before.mode()),
        "{out}"
    );
    let names: Vec<String> = std::fs::read_dir(&hostdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["agent.sock"], "{out}");
}

fn socket_attack_reach_host_files_through_the_bound_path(t: &Ctx) {
    let hostdir = t.mkdir(&t.dir.join("agent"));
    std::fs::write(hostdir.join("secret"), "hunter2\n").unwrap();
    let sock = tool_server(t, &hostdir);
    let flag = socket_flag(&sock, "/srv/tool.sock");
    // The parent directory is the image's (no host sibling is visible); the socket is not a
    // directory to walk through; its /proc/self/fd link does not open; mountinfo names no host
    // path but the socket's own.
    let script = "ls -a /srv; cat /srv/secret; cat /srv/tool.sock/../secret; \
        cat /srv/tool.sock; husk-probe read /srv/tool.sock/..; \
        grep -c hunter2 /proc/self/mountinfo; echo end";
    let out = sandbox(t, &["--json", "--socket", &flag], script).ok();
    let r = out.json();
    let text = stdout_of(&r);
    assert!(!text.contains("hunter2"), "{out}");
    assert!(!text.contains("secret"), "{out}");
    let err = r["stderr"].as_str().unwrap_or_default();
    assert!(err.contains("Not a directory"), "{out}");
    assert!(
        err.contains("No such device or address") || err.contains("can't open"),
        "{out}"
    );
}

fn socket_host_path_must_be_the_socket_itself(t: &Ctx) {
    let d = t.mkdir(&t.dir.join("checks"));
    let sock = tool_server(t, &d);
    let link = d.join("link.sock");
    std::os::unix::fs::symlink(&sock, &link).unwrap();
    let file = d.join("file");
    std::fs::write(&file, "x").unwrap();
    // A socket that was swapped for a symlink to a host file before the run.
    let swapped = d.join("swapped.sock");
    drop(UnixListener::bind(&swapped).unwrap());
    std::fs::remove_file(&swapped).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &swapped).unwrap();
    for (host_path, want) in [
        (&link, "symlink"),
        (&swapped, "symlink"),
        (&d, "directory"),
        (&file, "regular file"),
        (&d.join("missing.sock"), "No such file"),
    ] {
        let flag = socket_flag(host_path, "/run/tool.sock");
        let out = sandbox(t, &["--socket", &flag], "echo RAN").code(255);
        assert!(!out.stdout.contains("RAN"), "{out}");
        assert!(out.stderr.contains(want), "{want}: {out}");
        assert_eq!(out.stderr.trim().lines().count(), 1, "{out}");
    }
    for bad in [
        "relative",
        "/proc/x",
        "/sys/x",
        "/dev/x",
        "/workspace/x",
        "/a/../b",
    ] {
        let flag = socket_flag(&sock, bad);
        let out = sandbox(t, &["--socket", &flag], "echo RAN").code(2);
        assert!(out.stderr.contains("--socket"), "{out}");
    }
    t.assert_nothing_left();
}

fn host_id_is_for_root_only(t: &Ctx) {
    match t.mode {
        Mode::Rootless => {
            let out = sandbox(t, &["--host-id", "123456"], "echo RAN").code(2);
            assert!(out.stderr.contains("--host-id"), "{out}");
        }
        Mode::Root => {
            let out = sandbox(
                t,
                &["--host-id", "123456", "--json"],
                "cat /proc/self/uid_map",
            )
            .ok();
            let r = out.json();
            let map: Vec<String> = stdout_of(&r).split_whitespace().map(String::from).collect();
            assert_eq!(map, ["0", "123456", "1"], "{out}");
            assert_eq!(r["host_uid"], 123456, "{out}");
            sandbox(t, &["--host-id", "0"], "true").code(2);
        }
    }
}

fn root_sandbox_runs_as_an_unprivileged_host_id(t: &Ctx) {
    let ws = t.mkdir(&t.dir.join("ws"));
    let script = "cat /proc/self/uid_map /proc/self/gid_map; id -u; \
        echo data > /workspace/made; mkdir /workspace/sub; echo reopened > /dev/stderr; \
        chmod 777 /workspace";
    let out = sandbox(t, &["--workspace", ws.to_str().unwrap(), "--json"], script).ok();
    let r = out.json();
    let text = stdout_of(&r);
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(
        words,
        ["0", "1000000000", "1", "0", "1000000000", "1", "0"],
        "{out}"
    );
    assert_eq!(
        (r["host_uid"].clone(), r["host_gid"].clone()),
        (json!(1000000000), json!(1000000000))
    );
    // What the code made is the sandbox id's on the host; the workspace itself is given back.
    for made in ["made", "sub"] {
        let m = std::fs::metadata(ws.join(made)).unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (1000000000, 1000000000),
            "{made}: {out}"
        );
    }
    // The output pipes are the sandbox id's too: it can reopen them (/dev/stderr).
    assert_eq!(r["stderr"], "reopened\n", "{out}");
    let top = std::fs::metadata(&ws).unwrap();
    assert_eq!(
        (top.uid(), top.gid(), top.mode() & 0o777),
        (0, 0, 0o755),
        "{out}"
    );
    // A workspace the sandbox id could not reach is one clear error, before anything runs.
    let closed = t.mkdir(&t.dir.join("closed"));
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let hidden = t.mkdir(&closed.join("ws"));
    let out = sandbox(t, &["--workspace", hidden.to_str().unwrap()], "echo RAN").code(255);
    assert!(!out.stdout.contains("RAN"), "{out}");
    assert!(
        out.stderr
            .contains("not searchable by the sandbox's host id"),
        "{out}"
    );
    assert_eq!(out.stderr.trim().lines().count(), 1, "{out}");
    // A default (scratch) workspace works the same way.
    let out = sandbox(t, &[], "echo x > /workspace/f && echo scratch-ok").ok();
    assert!(out.stdout.contains("scratch-ok"), "{out}");
    if !has_cgroups(t.mode) {
        return crate::harness::skip("root sandbox memory limit: no cgroups");
    }
    // The cgroup still holds it: over a 16M limit the OOM killer takes dd.
    let script = "dd if=/dev/zero of=/dev/null bs=64M count=1; echo dd=$?";
    let out = sandbox(t, &["--memory", "16M", "--json"], script).ok();
    let r = out.json();
    assert_eq!(r["oom_killed"], true, "{out}");
    assert_eq!(r["stdout"], "dd=137\n", "{out}");
    assert_eq!(r["host_uid"], 1000000000, "{out}");
}
