//! The launcher face: `husk exec|run IMAGE`, `husk bundle`, on the shared busybox rootfs used as
//! an image (root-owned: rootless launches must never need to write to it).

use crate::both;
use crate::harness::{host, Ctx, Mode, Out, Probe};
use std::path::Path;

both!(
    runs_as_the_caller_in_the_callers_cwd,
    home_is_bound_and_writable,
    fakeroot_is_root_inside,
    exit_status_passes_through,
    stdin_passes_through,
    bind_read_only,
    missing_bind_source_is_one_clear_error,
    environment_passthrough_cleanenv_and_huskenv,
    net_none_has_only_loopback,
    containall_makes_the_process_pid_1,
    dry_run_prints_the_config,
    bundle_then_run_by_id,
    launcher_flags_with_an_id_are_a_usage_error,
    shell_gets_a_terminal_and_the_prompt,
);

fn image() -> &'static str {
    host().rootfs.to_str().unwrap()
}

fn exec(t: &Ctx, flags: &[&str], cmd: &[&str]) -> Out {
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.push(image());
    args.extend_from_slice(cmd);
    t.rt(&args)
}

fn probe(t: &Ctx, flags: &[&str]) -> Probe {
    exec(t, flags, &["/bin/husk-probe"]).ok().probe()
}

/// The runtime user's uid and home.
fn caller(t: &Ctx) -> (u64, String) {
    match t.mode {
        Mode::Root => (0, std::env::var("HOME").unwrap_or_else(|_| "/root".into())),
        Mode::Rootless => {
            let (uid, _, home) = host().user.clone().unwrap();
            (uid.into(), home)
        }
    }
}

fn runs_as_the_caller_in_the_callers_cwd(t: &Ctx) {
    let p = probe(t, &[]);
    let (uid, home) = caller(t);
    assert_eq!(p.get("uid").as_u64(), Some(uid), "{}", p.0);
    assert_eq!(p.get("cwd").as_str(), t.dir.to_str(), "{}", p.0);
    assert_eq!(p.env("HOME").as_deref(), Some(home.as_str()));
    if t.mode == Mode::Rootless {
        assert!(p.caps("effective").is_empty(), "{}", p.0);
    }
    // The caller exists in the container's passwd.
    let out = exec(t, &[], &["id", "-un"]).ok();
    assert!(
        !out.stdout.trim().is_empty() && !out.stdout.contains("unknown"),
        "{out}"
    );
    t.assert_nothing_left();
}

fn home_is_bound_and_writable(t: &Ctx) {
    let (_, home) = caller(t);
    let name = format!(".husk-it-{}", t.id("home"));
    let out = exec(
        t,
        &[],
        &["sh", "-c", &format!("echo hi > \"$HOME/{name}\"")],
    );
    let host_file = Path::new(&home).join(&name);
    let found = std::fs::read_to_string(&host_file);
    let _ = std::fs::remove_file(&host_file);
    out.ok();
    assert_eq!(found.unwrap(), "hi\n");
}

fn fakeroot_is_root_inside(t: &Ctx) {
    let p = probe(t, &["--fakeroot"]);
    assert_eq!(p.get("uid").as_u64(), Some(0), "{}", p.0);
}

fn exit_status_passes_through(t: &Ctx) {
    exec(t, &[], &["sh", "-c", "exit 7"]).code(7);
    exec(t, &[], &["sh", "-c", "kill -9 $$"]).code(128 + 9);
    let mut args = vec!["run", image(), "/bin/husk-probe", "exit", "3"];
    t.rt(&args).code(3);
    args.truncate(2);
    // A rootfs directory has no cmd: /bin/sh, which exits 0 on an empty stdin.
    t.rt(&args).ok();
}

fn stdin_passes_through(t: &Ctx) {
    let out = t
        .rt_stdin(&["exec", image(), "cat"], "line one\nline two\n")
        .ok();
    assert_eq!(out.stdout, "line one\nline two\n");
}

fn bind_read_only(t: &Ctx) {
    let data = t.mkdir(&t.dir.join("data"));
    std::fs::write(data.join("f"), "content\n").unwrap();
    let spec = format!("{}:/mnt/data:ro", data.display());
    let script =
        "cat /mnt/data/f && if touch /mnt/data/g 2>/dev/null; then echo rw; else echo ro; fi";
    let out = exec(t, &["--bind", &spec], &["sh", "-c", script]).ok();
    assert_eq!(out.stdout, "content\nro\n");
    // Without :ro the same bind is writable.
    let spec = format!("{}:/mnt/data", data.display());
    let out = exec(t, &["-B", &spec], &["sh", "-c", script]).ok();
    assert_eq!(out.stdout, "content\nrw\n");
}

fn missing_bind_source_is_one_clear_error(t: &Ctx) {
    let missing = t.dir.join("no-such-dir");
    let spec = format!("{}:/x", missing.display());
    let out = exec(t, &["--bind", &spec], &["true"]).code(255);
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].contains(missing.to_str().unwrap()), "{out}");
}

fn environment_passthrough_cleanenv_and_huskenv(t: &Ctx) {
    let env = [("HUSK_IT_HOST_VAR", "from-host"), ("HUSKENV_FOO", "bar")];
    let mut args = vec!["exec", image(), "/bin/husk-probe"];
    let p = t.rt_env(&args, &env).ok().probe();
    assert_eq!(p.env("HUSK_IT_HOST_VAR").as_deref(), Some("from-host"));
    assert_eq!(p.env("FOO").as_deref(), Some("bar"));
    assert_eq!(p.env("HUSKENV_FOO"), None);
    args.insert(1, "--cleanenv");
    let p = t.rt_env(&args, &env).ok().probe();
    assert_eq!(p.env("HUSK_IT_HOST_VAR"), None);
    assert_eq!(p.env("FOO").as_deref(), Some("bar"));
    args.insert(1, "--env=FOO=flag");
    let p = t.rt_env(&args, &env).ok().probe();
    assert_eq!(p.env("FOO").as_deref(), Some("flag"));
}

fn net_none_has_only_loopback(t: &Ctx) {
    let out = exec(t, &["--net", "none"], &["cat", "/proc/net/dev"]).ok();
    let ifaces: Vec<&str> = out
        .stdout
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(str::trim))
        .collect();
    assert_eq!(ifaces, ["lo"], "{out}");
}

fn containall_makes_the_process_pid_1(t: &Ctx) {
    let p = probe(t, &["--containall"]);
    assert_eq!(p.get("pid").as_u64(), Some(1), "{}", p.0);
    // Contained: the cwd is not bound, so the process starts in /.
    assert_eq!(p.get("cwd").as_str(), Some("/"), "{}", p.0);
}

fn dry_run_prints_the_config(t: &Ctx) {
    let out = t.rt(&["run", "--dry-run", image()]).ok();
    let v = out.json();
    let first = &v["linux"]["resources"]["devices"][0];
    assert_eq!(first["allow"], false, "{out}");
    assert_eq!(first["access"], "rwm", "{out}");
    assert_eq!(v["root"]["readonly"], true);
    t.assert_nothing_left();
}

fn bundle_then_run_by_id(t: &Ctx) {
    let dir = t.dir.join("bundle");
    let d = dir.to_str().unwrap();
    t.rt(&["bundle", image(), d, "/bin/husk-probe"]).ok();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    // busybox has every top-level mount point: the root is the image itself; its /etc lacks hosts,
    // which the bundle's under/ holds.
    assert_eq!(config["root"]["path"], image(), "{config}");
    assert!(dir.join("under/etc/hosts").is_file());
    let id = t.id("bundle");
    let p = t.rt(&["run", "--bundle", d, &id]).ok().probe();
    assert_eq!(p.get("uid").as_u64(), Some(caller(t).0), "{}", p.0);
    // DIR exists now: a second bundle refuses it.
    t.rt(&["bundle", image(), d]).code(2);
}

fn launcher_flags_with_an_id_are_a_usage_error(t: &Ctx) {
    t.rt(&["run", "--bind", "/tmp", "some-id"]).code(2);
    t.rt(&["exec", "--fakeroot", "some-id", "true"]).code(2);
    t.rt(&["run", "some-id", "extra-arg"]).code(2);
    t.rt(&["exec", "--profile", "nope", image(), "true"])
        .code(2);
    t.rt(&["exec", "--bind", "/a:relative", image(), "true"])
        .code(2);
    t.rt(&["exec", image()]).code(2);
}

fn shell_gets_a_terminal_and_the_prompt(t: &Ctx) {
    // -t: a pty even though the harness's stdin is a file; the input is copied to it.
    let out = t
        .rt_stdin(&["shell", "-t", image()], "tty\nexit 3\n")
        .code(3);
    assert!(out.stdout.contains("/dev/pts/"), "{out}");
    assert!(out.stdout.contains("Husk> "), "{out}");
}
