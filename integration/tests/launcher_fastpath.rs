//! The launcher's fast path: with nothing that needs a supervising parent, husk becomes the
//! container itself and execs the program in place (the program has husk's pid), writing nothing
//! to disk. Rootless launches without limits take it by default; root's launches get a cgroup and
//! so take it only with `--cgroup-manager disabled`. Anything needing a parent (a pid namespace, a
//! cgroup limit, --sandbox, an overlay) or HUSK_NO_FASTPATH=1 takes the engine's normal run.

use crate::both;
use crate::harness::{host, Ctx, Mode, Probe};
use std::path::Path;

both!(
    fast_path_execs_in_place_and_leaves_nothing,
    fast_path_not_taken_when_a_parent_is_needed,
    fast_path_sees_what_the_normal_path_sees,
    fast_path_passes_status_signals_and_errors,
);

fn image() -> &'static str {
    host().rootfs.to_str().unwrap()
}

/// Global flags that make a launch eligible in this mode: root's launches otherwise get a cgroup.
fn eligible(t: &Ctx) -> Vec<&'static str> {
    match t.mode {
        Mode::Root => vec!["--cgroup-manager", "disabled"],
        Mode::Rootless => Vec::new(),
    }
}

/// Runs `husk [global] exec [flags] IMAGE sh -c 'echo $$'` and tells whether the shell had husk's
/// own pid (it ran in place) or another (a child of husk's, or pid 1 of a pid namespace).
fn in_place(t: &Ctx, global: &[&str], flags: &[&str], env: &[(&str, &str)]) -> bool {
    let mut args: Vec<&str> = global.to_vec();
    args.push("exec");
    args.extend_from_slice(flags);
    args.extend_from_slice(&[image(), "sh", "-c", "echo $$"]);
    let running = t.spawn_env(&args, None, env);
    let husk = running.pid();
    let out = running.wait().ok();
    let pid: u32 = out
        .stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{out}"));
    pid == husk
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn fast_path_execs_in_place_and_leaves_nothing(t: &Ctx) {
    let global = eligible(t);
    // A runtime dir of this case's own, so no other case's launch directories show up in it.
    let xdg = t.mkdir(&t.dir.join("xdg"));
    let env = [("XDG_RUNTIME_DIR", xdg.to_str().unwrap())];
    assert!(in_place(t, &global, &[], &env), "not run in place");
    // The launch directory lived in a tmpfs that only the container's mount namespace saw: the
    // host side of the launch base is empty, and there is no state directory either.
    let base = xdg.join("husk-launch");
    assert!(base.is_dir(), "{} missing", base.display());
    assert_eq!(entries(&base), Vec::<String>::new(), "{}", base.display());
    t.assert_nothing_left();
    assert!(
        entries(&t.state_root).is_empty(),
        "state root {} not empty: {:?}",
        t.state_root.display(),
        entries(&t.state_root)
    );
    // `husk run IMAGE` and `husk shell IMAGE` (no terminal asked) take it too.
    let mut args = global.clone();
    args.extend_from_slice(&["run", image(), "sh", "-c", "echo $$"]);
    let running = t.spawn(&args, None);
    let husk = running.pid();
    assert_eq!(running.wait().ok().stdout.trim(), husk.to_string());
    if t.mode == Mode::Root {
        // Without --cgroup-manager disabled, root's launch has a cgroup to remove: not in place.
        assert!(!in_place(t, &[], &[], &[]), "root's launch ran in place");
    }
}

fn fast_path_not_taken_when_a_parent_is_needed(t: &Ctx) {
    let global = eligible(t);
    assert!(!in_place(t, &global, &[], &[("HUSK_NO_FASTPATH", "1")]));
    // HUSK_NO_FASTPATH=0 means "not set".
    assert!(in_place(t, &global, &[], &[("HUSK_NO_FASTPATH", "0")]));
    assert!(!in_place(t, &global, &["--containall"], &[]));
    assert!(!in_place(t, &global, &["--pid"], &[]));
    assert!(!in_place(t, &global, &["--writable-tmpfs"], &[]));
    assert!(!in_place(t, &[], &["--sandbox"], &[]));
    // A limit needs a cgroup, so the global flags that would disable it are left out.
    assert!(!in_place(t, &[], &["--pids-limit", "100"], &[]));
    if t.mode == Mode::Root {
        // Root's --fakeroot maps need a writer outside the user namespace.
        assert!(!in_place(t, &global, &["--fakeroot"], &[]));
    }
    t.assert_nothing_left();
}

fn probe(t: &Ctx, global: &[&str], flags: &[&str], env: &[(&str, &str)]) -> Probe {
    let mut args: Vec<&str> = global.to_vec();
    args.push("exec");
    args.extend_from_slice(flags);
    args.extend_from_slice(&[image(), "/bin/husk-probe"]);
    t.rt_env(&args, env).ok().probe()
}

fn fast_path_sees_what_the_normal_path_sees(t: &Ctx) {
    let global = eligible(t);
    for flags in [
        &[][..],
        &["--contain"],
        &["--net", "none", "--hostname", "h1"],
    ] {
        let fast = probe(t, &global, flags, &[]);
        let slow = probe(t, &global, flags, &[("HUSK_NO_FASTPATH", "1")]);
        for key in [
            "uid",
            "gid",
            "groups",
            "cwd",
            "caps",
            "no_new_privs",
            "seccomp",
            "rlimits",
            "hostname",
            "env",
            "umask",
            "setgroups",
            "uid_map",
            "gid_map",
            "oom_score_adj",
            "cgroup",
        ] {
            let (mut a, mut b) = (fast.get(key).clone(), slow.get(key).clone());
            if key == "env" {
                // The escape hatch itself is passed through, like any variable.
                for v in [&mut a, &mut b] {
                    if let Some(list) = v.as_array_mut() {
                        list.retain(|kv| {
                            !kv.as_str().unwrap_or("").starts_with("HUSK_NO_FASTPATH=")
                        });
                    }
                }
            }
            assert_eq!(a, b, "{key} with {flags:?}");
        }
        assert_eq!(fast.fds(), slow.fds(), "open fds with {flags:?}");
        for which in ["user", "mnt", "net", "uts", "ipc", "pid"] {
            let host_ns = crate::harness::host_ns("self", which);
            assert_eq!(
                fast.ns(which) == host_ns,
                slow.ns(which) == host_ns,
                "{which} namespace with {flags:?}"
            );
        }
        let targets = |p: &Probe| -> Vec<(String, String)> {
            let mut v: Vec<(String, String)> = p
                .get("mounts")
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| (m["target"].to_string(), m["options"].to_string()))
                .filter(|(target, _)| !target.contains("husk-launch"))
                .collect();
            v.sort();
            v
        };
        assert_eq!(targets(&fast), targets(&slow), "mounts with {flags:?}");
    }
}

fn fast_path_passes_status_signals_and_errors(t: &Ctx) {
    let global = eligible(t);
    let exec = |cmd: &[&str]| {
        let mut args: Vec<&str> = global.clone();
        args.push("exec");
        args.push(image());
        args.extend_from_slice(cmd);
        t.rt(&args)
    };
    exec(&["sh", "-c", "exit 7"]).code(7);
    exec(&["sh", "-c", "kill -9 $$"]).code(128 + 9);
    let out = exec(&["/no/such/program"]).code(255);
    assert!(
        out.stderr.contains("/no/such/program") && out.stderr.lines().count() == 1,
        "{out}"
    );
    let out = exec(&["nosuchprogram"]).code(255);
    assert!(out.stderr.contains("not found"), "{out}");
    t.assert_nothing_left();
}
