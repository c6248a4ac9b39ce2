//! Fds the caller means to pass: `--preserve-fds N` and systemd socket activation (LISTEN_FDS).
//! Inherited fds beyond those never reach the container (see cve.rs for the leak case).

use crate::both;
use crate::harness::{Ctx, Launch, Probe};
use std::fs;
use std::os::fd::OwnedFd;

both!(preserve_fds_passes_fd_3, listen_fds_pass_through);

/// Fds 3 and 4 of the runtime: files named `fd-3` and `fd-4` in the test dir.
fn two_files(t: &Ctx) -> Launch {
    let fds = [3, 4]
        .into_iter()
        .map(|n| {
            let p = t.dir.join(format!("fd-{n}"));
            fs::write(&p, "x").unwrap();
            (n, OwnedFd::from(fs::File::open(&p).unwrap()))
        })
        .collect();
    Launch {
        fds,
        ..Launch::default()
    }
}

fn fd_targets(p: &Probe) -> Vec<(i64, String)> {
    p.get("fds")
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["fd"].as_i64().unwrap(),
                f["target"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn preserve_fds_passes_fd_3(t: &Ctx) {
    let launch = two_files(t);
    let id = t.id("pfd");
    let dir = t.write(&t.bundle().probe(&["fds"]));
    let args = [
        "run",
        "--preserve-fds",
        "1",
        "--bundle",
        dir.to_str().unwrap(),
        &id,
    ];
    let p = t.rt_with(&args, &launch).ok().probe();
    let fds = fd_targets(&p);
    let nums: Vec<i64> = fds.iter().map(|f| f.0).collect();
    assert_eq!(nums, [0, 1, 2, 3], "only fd 3 is preserved: {fds:?}");
    assert!(fds[3].1.ends_with("/fd-3"), "fd 3 is the file: {fds:?}");
}

/// LISTEN_FDS=1 (with LISTEN_PID = the runtime's pid, as systemd sets it; husk does not check
/// it, runc does): fd 3 goes in, and the container sees LISTEN_FDS=1 and LISTEN_PID=1.
fn listen_fds_pass_through(t: &Ctx) {
    let mut launch = two_files(t);
    launch.env.push(("LISTEN_FDS".into(), "1".into()));
    launch.listen_pid = true;
    let id = t.id("lfd");
    let dir = t.write(&t.bundle().probe(&[]));
    let p = t
        .rt_with(&["run", "--bundle", dir.to_str().unwrap(), &id], &launch)
        .ok()
        .probe();
    let fds = fd_targets(&p);
    let nums: Vec<i64> = fds.iter().map(|f| f.0).collect();
    assert_eq!(nums, [0, 1, 2, 3], "LISTEN_FDS=1 passes fd 3: {fds:?}");
    assert!(fds[3].1.ends_with("/fd-3"), "fd 3 is the file: {fds:?}");
    assert_eq!(p.env("LISTEN_FDS").as_deref(), Some("1"));
    assert_eq!(p.env("LISTEN_PID").as_deref(), Some("1"));
}
