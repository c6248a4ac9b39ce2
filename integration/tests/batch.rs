//! `husk batch JOBS.jsonl` (docs/sandbox.md, "Batches") on the busybox rootfs: one result line per
//! job whatever happened to it, the summary, the exit status, real parallelism, and nothing left
//! behind (state dirs, cgroups, mounts, scratch directories) after a normal batch or a Ctrl-C.

use crate::cleanup::assert_clean;
use crate::harness::{host, Ctx, Out};
use crate::{both, root_only};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

both!(
    mixed_jobs_each_get_their_result_line,
    exit_status_tells_passed_failed_and_errors_apart,
    two_jobs_run_at_once_with_j2,
    sigint_stops_the_batch_and_leaves_nothing,
    a_finished_batch_leaves_nothing,
    progress_line_only_on_a_terminal,
    sigkill_of_the_batch_still_tears_every_job_down,
);

// Memory limits need a cgroup: root on this kind of host.
root_only!(an_oom_killed_job_counts_as_oom);

fn image() -> &'static str {
    host().rootfs.to_str().unwrap()
}

/// Writes the jobs file (one JSON value per line) and returns its path.
fn jobs_file(t: &Ctx, name: &str, lines: &[String]) -> PathBuf {
    let p = t.dir.join(name);
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    t.give(&p);
    p
}

fn batch(t: &Ctx, jobs: &Path, flags: &[&str]) -> Out {
    let mut args = vec!["--debug", "batch", "--image", image()];
    args.extend_from_slice(flags);
    args.push(jobs.to_str().unwrap());
    t.rt(&args)
}

/// Result lines by id (as a string).
fn results(text: &str) -> BTreeMap<String, Value> {
    text.lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            let id = match &v["id"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (id, v)
        })
        .collect()
}

/// The container ids and the batch's scratch directory, from the workers' debug records
/// (launch directories are named after the container, `<base>/husk-<pid>-<hex>/`).
fn traces(stderr: &str) -> (Vec<String>, Option<PathBuf>) {
    let mut ids = Vec::new();
    let mut scratch = None;
    for (i, _) in stderr.match_indices("husk-launch") {
        let rest = &stderr[i..];
        let Some(slash) = rest.find('/') else {
            continue;
        };
        let name: String = rest[slash + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let dir = PathBuf::from(&stderr[..i + slash].rsplit('"').next().unwrap_or("")).join(&name);
        if name.starts_with("batch-") {
            scratch = Some(dir);
        } else if name.starts_with("husk-") && !ids.contains(&name) {
            ids.push(name);
        }
    }
    (ids, scratch)
}

/// No state dir, cgroup or mount of any of the batch's containers; its scratch tree is gone and no
/// mount mentions it.
fn assert_nothing_left(t: &Ctx, stderr: &str, want_containers: usize) {
    let (ids, scratch) = traces(stderr);
    assert!(
        ids.len() >= want_containers,
        "container ids {ids:?} in:\n{stderr}"
    );
    let scratch = scratch.unwrap_or_else(|| panic!("no scratch directory in:\n{stderr}"));
    let base = scratch.parent().unwrap();
    for id in &ids {
        assert_clean(t, id, &base.join(id));
    }
    assert!(!scratch.exists(), "{} left", scratch.display());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let s = scratch.to_string_lossy();
    assert!(!mountinfo.contains(s.as_ref()), "mounts of {s} left");
    let left: Vec<_> = std::fs::read_dir(&t.state_root)
        .unwrap()
        .flatten()
        .collect();
    assert!(left.is_empty(), "state dirs left: {left:?}");
}

fn mixed_jobs_each_get_their_result_line(t: &Ctx) {
    let ws = t.mkdir(&t.dir.join("given"));
    let lines = [
        json!({"id": "pass", "cmd": "echo hi"}),
        json!({"id": "fail", "cmd": "echo bad >&2; exit 3"}),
        json!({"id": "slow", "command": ["sleep", "60"], "limits": {"timeout": "1s"}}),
        json!({"id": "loud", "cmd": "yes | head -c 100000", "limits": {"output_limit": "1k"}}),
        json!({"id": "in", "cmd": "wc -c", "stdin": "twelve bytes"}),
        json!({"id": "files", "cmd": "cat data/in.txt; sh run.sh; ls",
               "files": {"data/in.txt": "from a file\n", "run.sh": "echo from-script"}}),
        json!({"id": "mine", "cmd": "echo kept > /workspace/out; pwd", "workspace": ws}),
        json!({"id": "env", "cmd": "echo $JOB $ALL", "env": {"JOB": "j"}}),
    ]
    .map(|v| v.to_string());
    let mut lines = lines.to_vec();
    lines.push("{not json".into());
    lines.push(json!({"id": "noimage", "image": "/no/such/rootfs", "cmd": "true"}).to_string());
    lines.push(json!({"id": "nows", "workspace": "/no/such/dir", "cmd": "true"}).to_string());
    lines.push(json!({"id": "escape", "files": {"../x": ""}, "cmd": "true"}).to_string());
    let jobs = jobs_file(t, "jobs.jsonl", &lines);
    let summary = t.dir.join("summary.json");
    let out = batch(
        t,
        &jobs,
        &[
            "-j",
            "2",
            "--env",
            "ALL=a",
            "--summary",
            summary.to_str().unwrap(),
        ],
    )
    .code(3);
    let r = results(&out.stdout);
    assert_eq!(r.len(), 12, "one line per job: {out}");
    let status = |id: &str| r[id]["status"].as_str().unwrap().to_string();
    assert_eq!(status("pass"), "passed", "{out}");
    assert_eq!(r["pass"]["stdout"], "hi\n");
    assert_eq!(r["pass"]["exit_code"], 0);
    for k in [
        "signal",
        "timed_out",
        "oom_killed",
        "wall_ms",
        "peak_memory_bytes",
        "limits",
    ] {
        assert!(r["pass"].get(k).is_some(), "record lacks {k}: {out}");
    }
    assert_eq!(status("fail"), "failed");
    assert_eq!(r["fail"]["exit_code"], 3);
    assert_eq!(r["fail"]["stderr"], "bad\n");
    assert_eq!(status("slow"), "timed_out");
    assert_eq!(r["slow"]["timed_out"], true);
    assert_eq!(status("loud"), "passed");
    assert_eq!(r["loud"]["stdout_truncated"], true);
    assert_eq!(r["loud"]["stdout_bytes"], 100000);
    assert_eq!(r["loud"]["stdout"].as_str().unwrap().len(), 1024);
    assert_eq!(r["in"]["stdout"], "12\n");
    assert_eq!(
        r["files"]["stdout"],
        "from a file\nfrom-script\ndata\nrun.sh\n"
    );
    assert_eq!(r["mine"]["stdout"], "/workspace\n");
    assert_eq!(std::fs::read_to_string(ws.join("out")).unwrap(), "kept\n");
    assert_eq!(r["env"]["stdout"], "j a\n");
    for (id, why) in [
        // The bad line's id is its line number.
        ("9", "line 9: not a JSON object"),
        ("noimage", "/no/such/rootfs"),
        ("nows", "workspace /no/such/dir"),
        ("escape", "not a relative path"),
    ] {
        assert_eq!(status(id), "error", "{id}: {out}");
        let e = r[id]["error"].as_str().unwrap_or_default();
        assert!(e.contains(why), "{id}: {e}");
        assert!(r[id].get("exit_code").is_none(), "{id}: {out}");
    }
    let s: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let counts = [
        "total",
        "passed",
        "failed",
        "timed_out",
        "oom",
        "errors",
        "not_started",
    ]
    .map(|k| s[k].as_u64().unwrap());
    assert_eq!(counts, [12, 6, 1, 1, 0, 4, 0], "{s}");
    assert!(s["wall_ms"]["p95"].as_u64().unwrap() >= 1000, "{s}");
    assert_eq!(s["exit_status"], 3);
    assert!(out.stderr.contains("batch: 12 of 12 jobs"), "{out}");
    // stderr is not a terminal: no progress bar.
    assert!(!out.stderr.contains('\r'), "{out}");
    assert_nothing_left(t, &out.stderr, 7);
}

fn exit_status_tells_passed_failed_and_errors_apart(t: &Ctx) {
    let ok = [json!({"cmd": "true"}), json!({"command": ["true"]})].map(|v| v.to_string());
    let jobs = jobs_file(t, "ok.jsonl", &ok);
    let out = batch(t, &jobs, &[]).ok();
    assert_eq!(results(&out.stdout).len(), 2, "{out}");
    let jobs = jobs_file(
        t,
        "fail.jsonl",
        &[ok[0].clone(), json!({"cmd": "exit 1"}).to_string()],
    );
    batch(t, &jobs, &[]).code(1);
    let jobs = jobs_file(
        t,
        "err.jsonl",
        &[json!({"cmd": "exit 1"}).to_string(), "[]".into()],
    );
    batch(t, &jobs, &[]).code(3);
    // Jobs on stdin; results to a file.
    let results_file = t.dir.join("results.jsonl");
    let out = t
        .rt_stdin(
            &[
                "batch",
                "--image",
                image(),
                "-o",
                results_file.to_str().unwrap(),
                "-",
            ],
            &(ok.join("\n") + "\n"),
        )
        .ok();
    assert!(out.stdout.is_empty(), "{out}");
    let text = std::fs::read_to_string(&results_file).unwrap();
    assert_eq!(results(&text).len(), 2, "{text}");
    // Usage mistakes: nothing runs.
    t.rt(&["batch", "-j", "0", jobs.to_str().unwrap()]).code(2);
    t.rt(&["batch", "--timeout", "soon", jobs.to_str().unwrap()])
        .code(2);
    let out = t.rt(&["batch", "/no/such/jobs.jsonl"]).code(2);
    assert!(out.stderr.contains("/no/such/jobs.jsonl"), "{out}");
}

fn two_jobs_run_at_once_with_j2(t: &Ctx) {
    let ws = t.mkdir(&t.dir.join("shared"));
    // Each job makes its marker, then waits for the other's: both pass only if both ran at once.
    // The wait is bounded inside the job (`tries` rounds of 0.05 s).
    let pair = |tries: u32| {
        ["a", "b"].map(|me| {
            let other = if me == "a" { "b" } else { "a" };
            json!({"id": me, "workspace": ws, "cmd": format!(
                "touch /workspace/{me}; i=0; until [ -e /workspace/{other} ]; do \
                 i=$((i+1)); [ $i -gt {tries} ] && exit 9; sleep 0.05; done")})
            .to_string()
        })
    };
    let jobs = jobs_file(t, "pair.jsonl", &pair(400));
    let out = batch(t, &jobs, &["-j", "2", "--timeout", "25s"]).ok();
    let r = results(&out.stdout);
    assert_eq!(
        (r["a"]["status"].clone(), r["b"]["status"].clone()),
        (json!("passed"), json!("passed")),
        "{out}"
    );
    // The same pair one at a time: the first gives up (so the check above can fail).
    for m in ["a", "b"] {
        std::fs::remove_file(ws.join(m)).unwrap();
    }
    let jobs = jobs_file(t, "pair1.jsonl", &pair(10));
    let out = batch(t, &jobs, &["-j", "1"]).code(1);
    let r = results(&out.stdout);
    assert_eq!(r["a"]["exit_code"], 9, "{out}");
    assert_eq!(r["b"]["status"], "passed", "{out}");
}

fn sigint_stops_the_batch_and_leaves_nothing(t: &Ctx) {
    let long = json!({"cmd": "sleep 600", "limits": {"timeout": "120s"}}).to_string();
    let jobs = jobs_file(
        t,
        "long.jsonl",
        &[long.clone(), long.clone(), long.clone(), long],
    );
    let results_file = t.dir.join("results.jsonl");
    let args = [
        "--debug",
        "batch",
        "--image",
        image(),
        "-j",
        "2",
        "-o",
        results_file.to_str().unwrap(),
        jobs.to_str().unwrap(),
    ];
    let running = t.spawn(&args, None);
    let state = |root: &Path| -> Vec<String> {
        std::fs::read_dir(root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    // Both containers exist and their programs run (state says running).
    t.wait_for("two running jobs", || {
        let ids = state(&t.state_root);
        ids.len() == 2
            && ids.iter().all(|id| {
                let o = t.rt(&["state", id]);
                o.code == 0 && o.json()["status"] == "running"
            })
    });
    let ids = state(&t.state_root);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(running.pid() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = running.wait().code(130);
    let text = std::fs::read_to_string(&results_file).unwrap();
    let r = results(&text);
    assert_eq!(
        r.len(),
        2,
        "a line for each job that ran, none for the others: {text}"
    );
    for v in r.values() {
        assert_eq!(v["status"], "interrupted", "{text}");
        assert_eq!(v["signal"], "SIGKILL", "{text}");
    }
    assert!(out.stderr.contains("2 interrupted, 2 not started"), "{out}");
    let (traced, _) = traces(&out.stderr);
    for id in &ids {
        assert!(traced.contains(id), "{id} not in the trace: {out}");
    }
    assert_nothing_left(t, &out.stderr, 2);
}

fn a_finished_batch_leaves_nothing(t: &Ctx) {
    let lines: Vec<String> = (0..4)
        .map(|i| {
            json!({"cmd": format!("echo {i} > /workspace/f; cat f"), "files": {"x": "y"}})
                .to_string()
        })
        .collect();
    let jobs = jobs_file(t, "four.jsonl", &lines);
    let out = batch(t, &jobs, &["-j", "2"]).ok();
    assert_eq!(results(&out.stdout).len(), 4, "{out}");
    assert_nothing_left(t, &out.stderr, 4);
}

fn progress_line_only_on_a_terminal(t: &Ctx) {
    let lines = [json!({"cmd": "true"}), json!({"cmd": "exit 4"})].map(|v| v.to_string());
    let jobs = jobs_file(t, "two.jsonl", &lines);
    let results_file = t.dir.join("results.jsonl");
    // util-linux script(1) gives husk a pty on stdin, stdout and stderr; its transcript is ours.
    let line = format!(
        "{} --root {} batch --image {} -o {} {}",
        host().runtime.display(),
        t.state_root.display(),
        image(),
        results_file.display(),
        jobs.display()
    );
    let mut cmd = match (t.mode, host().euid, &host().user) {
        (crate::harness::Mode::Rootless, 0, Some((uid, gid, _))) => {
            let mut c = std::process::Command::new("setpriv");
            c.args([
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--init-groups".into(),
                "env".into(),
                format!("XDG_RUNTIME_DIR=/run/user/{uid}"),
                "script".into(),
            ]);
            c
        }
        _ => std::process::Command::new("script"),
    };
    let out = cmd
        .args(["-qec", &line, "/dev/null"])
        .current_dir(&t.dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{transcript}");
    assert!(
        transcript.contains("/2 done, "),
        "no progress line: {transcript:?}"
    );
    assert!(transcript.contains("\r\x1b[K"), "{transcript:?}");
    assert!(transcript.contains("1 passed, 1 failed"), "{transcript:?}");
    let text = std::fs::read_to_string(&results_file).unwrap();
    assert_eq!(results(&text).len(), 2, "{text}");
}

/// Where husk puts launch directories for the runtime's user (supervise/launch.rs: launch_base).
fn launch_base(t: &Ctx) -> PathBuf {
    match (t.mode, &host().user) {
        (crate::harness::Mode::Rootless, Some((uid, _, _))) if host().euid == 0 => {
            PathBuf::from(format!("/run/user/{uid}/husk-launch"))
        }
        _ => match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            Some(d) => PathBuf::from(d).join("husk-launch"),
            None => PathBuf::from("/run/husk-launch"),
        },
    }
}

fn sigkill_of_the_batch_still_tears_every_job_down(t: &Ctx) {
    let long = json!({"cmd": "sleep 600", "limits": {"timeout": "120s"}}).to_string();
    let jobs = jobs_file(t, "long.jsonl", &[long.clone(), long]);
    let args = [
        "batch",
        "--image",
        image(),
        "-j",
        "2",
        jobs.to_str().unwrap(),
    ];
    let running = t.spawn(&args, None);
    let state = || -> Vec<String> {
        std::fs::read_dir(&t.state_root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    t.wait_for("two running jobs", || state().len() == 2);
    let ids = state();
    let base = launch_base(t);
    let prefix = format!("batch-husk-{}-", running.pid());
    let scratch: Vec<PathBuf> = std::fs::read_dir(&base)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    assert_eq!(scratch.len(), 1, "{prefix}* in {}", base.display());
    let scratch = &scratch[0];
    // SIGKILL leaves husk batch no chance: each worker gets SIGTERM (PR_SET_PDEATHSIG) and tears
    // its job down after the sandbox's 2 s grace.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(running.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    running.wait().code(137);
    t.wait_for("the jobs torn down", || {
        state().is_empty() && ids.iter().all(|id| !base.join(id).exists())
    });
    for id in &ids {
        assert_clean(t, id, &base.join(id));
    }
    // Only the scratch tree is left, with nothing mounted on it: the next batch removes it.
    assert!(scratch.exists(), "{}", scratch.display());
    let ok = jobs_file(t, "ok.jsonl", &[json!({"cmd": "true"}).to_string()]);
    let next = batch(t, &ok, &[]).ok();
    assert!(!scratch.exists(), "{} left: {next}", scratch.display());
    assert_nothing_left(t, &next.stderr, 1);
}

fn an_oom_killed_job_counts_as_oom(t: &Ctx) {
    if !crate::harness::has_cgroups(t.mode) {
        return crate::harness::skip("an_oom_killed_job_counts_as_oom: no cgroups");
    }
    // dd's 64M block does not fit in 16M: the OOM killer takes it; sh goes on and exits 0.
    let lines = [
        json!({"id": "oom", "cmd": "dd if=/dev/zero of=/dev/null bs=64M count=1; echo dd=$?",
               "limits": {"memory": "16M"}}),
        json!({"id": "fits", "cmd": "dd if=/dev/zero of=/dev/null bs=1M count=1"}),
    ]
    .map(|v| v.to_string());
    let jobs = jobs_file(t, "oom.jsonl", &lines);
    let summary = t.dir.join("summary.json");
    let out = batch(t, &jobs, &["--summary", summary.to_str().unwrap()]).code(1);
    let r = results(&out.stdout);
    assert_eq!(r["oom"]["status"], "oom", "{out}");
    assert_eq!(r["oom"]["oom_killed"], true, "{out}");
    assert_eq!(r["oom"]["stdout"], "dd=137\n", "{out}");
    assert_eq!(r["fits"]["status"], "passed", "{out}");
    let s: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(
        (s["oom"].clone(), s["passed"].clone()),
        (json!(1), json!(1)),
        "{s}"
    );
    assert!(out.stderr.contains("1 OOM"), "{out}");
}
