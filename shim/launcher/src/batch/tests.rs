use super::*;

fn defaults() -> Defaults {
    Defaults {
        image: Some("./rootfs".into()),
        limits: Limits {
            timeout: Some("5s".into()),
            memory: Some("64M".into()),
            ..Limits::default()
        },
        env: vec![("A".into(), "from-flag".into()), ("B".into(), "b".into())],
    }
}

fn one(line: &str) -> Parsed {
    parse_line(line, 7, &defaults())
}

fn err(line: &str) -> String {
    one(line).job.unwrap_err().to_string()
}

#[test]
fn a_full_job_takes_every_key_and_the_defaults_fill_the_rest() {
    let p = one(
        r#"{"id":"j1","image":"/srv/img","command":["python3","main.py"],"stdin":"in",
            "files":{"main.py":"print(1)","pkg/a.py":""},"env":{"A":"job"},
            "limits":{"memory":"32M","cpus":1,"pids":16,"output_limit":"4k","tmp_size":"8M"}}"#,
    );
    assert_eq!(p.id, json!("j1"));
    let j = p.job.unwrap();
    assert_eq!(j.image, "/srv/img");
    assert_eq!(j.argv, ["python3", "main.py"]);
    assert_eq!(j.stdin.as_deref(), Some("in"));
    assert_eq!(
        j.files,
        [
            (PathBuf::from("main.py"), "print(1)".to_string()),
            (PathBuf::from("pkg/a.py"), String::new())
        ]
    );
    assert_eq!(j.env["A"], "job");
    assert_eq!(j.env["B"], "b");
    assert_eq!(j.limits.memory.as_deref(), Some("32M"));
    assert_eq!(j.limits.cpus.as_deref(), Some("1"));
    assert_eq!(j.limits.pids.as_deref(), Some("16"));
    // Not in the job: the flag's.
    assert_eq!(j.limits.timeout.as_deref(), Some("5s"));
    let args = j.exec_args(Path::new("/ws"));
    assert_eq!(
        args.join(" "),
        "--sandbox --json --workspace /ws --memory 32M --cpus 1 --pids-limit 16 --timeout 5s --output-limit 4k \
         --tmp-size 8M --env A=job --env B=b /srv/img -- python3 main.py"
    );
}

#[test]
fn cmd_runs_through_sh_and_the_id_defaults_to_the_line_number() {
    let p = one(r#"{"cmd":"echo hi | wc -c"}"#);
    assert_eq!(p.id, json!(7));
    let j = p.job.unwrap();
    assert_eq!(j.argv, ["/bin/sh", "-c", "echo hi | wc -c"]);
    assert_eq!(j.image, "./rootfs");
}

#[test]
fn a_line_that_is_not_a_job_is_an_error_with_its_line() {
    assert!(err("{not json").starts_with("line 7: not a JSON object"));
    assert!(err("[1]").contains("want an object"));
    assert_eq!(
        err(r#"{"id":[1],"cmd":"x"}"#),
        "line 7: id must be a string or an integer"
    );
    assert!(err(r#"{"cmd":"x","bogus":1}"#).contains("unknown field `bogus`"));
    assert!(err(r#"{"command":"x"}"#).contains("invalid type"));
    assert!(err(r#"{"cmd":"x","limits":{"mem":"1M"}}"#).contains("unknown field `mem`"));
    // The id survives an error in the rest of the line.
    assert_eq!(one(r#"{"id":"x","cmd":1}"#).id, json!("x"));
}

#[test]
fn command_image_and_workspace_rules() {
    assert!(err(r#"{"id":1}"#).contains("exactly one of"));
    assert!(err(r#"{"command":[]}"#).contains("exactly one of"));
    assert!(err(r#"{"command":["a"],"cmd":"b"}"#).contains("exactly one of"));
    assert!(err(r#"{"image":"busybox","cmd":"x"}"#).contains("is not an image"));
    let none = parse_line(r#"{"cmd":"x"}"#, 1, &Defaults::default());
    assert_eq!(none.job.unwrap_err(), JobError::NoImage { line: 1 });
    assert!(err(r#"{"cmd":"x","workspace":"rel"}"#).contains("absolute"));
    assert!(err(r#"{"cmd":"x","workspace":"/w","files":{}}"#).contains("cannot both"));
    assert!(err(r#"{"command":["a\u0000"]}"#).contains("NUL"));
}

#[test]
fn files_stay_inside_the_workspace() {
    for bad in [
        "/etc/passwd",
        "../x",
        "a/../../x",
        "a/..",
        "",
        ".",
        "./",
        "dir/",
    ] {
        let line = json!({"cmd": "x", "files": {bad: "content"}}).to_string();
        assert!(err(&line).contains("not a relative path"), "{bad:?}");
    }
    let ok = one(r#"{"cmd":"x","files":{"./a/b.txt":"1"}}"#).job.unwrap();
    assert_eq!(ok.files[0].0, PathBuf::from("./a/b.txt"));
}

#[test]
fn env_names_and_limits_are_checked() {
    assert!(err(r#"{"cmd":"x","env":{"A=B":"1"}}"#).contains("invalid variable name"));
    assert!(err(r#"{"cmd":"x","env":{"":"1"}}"#).contains("invalid variable name"));
    for (k, v) in [
        ("memory", json!("lots")),
        ("cpus", json!(0)),
        ("pids", json!("-1")),
        ("pids", json!(1.5)),
        ("timeout", json!("soon")),
        ("output_limit", json!("0")),
        ("tmp_size", json!("x")),
    ] {
        let line = json!({"cmd": "x", "limits": {k: v}}).to_string();
        assert!(err(&line).contains(&format!("limits.{k}")), "{k}={v}");
    }
    let j = one(r#"{"cmd":"x","limits":{"timeout":0.5,"memory":1048576}}"#)
        .job
        .unwrap();
    assert_eq!(j.limits.timeout.as_deref(), Some("0.5"));
    assert_eq!(j.limits.memory.as_deref(), Some("1048576"));
}

#[test]
fn blank_lines_are_skipped_and_a_repeated_id_is_an_error() {
    let text = "{\"id\":\"a\",\"cmd\":\"x\"}\n\n{\"cmd\":\"x\"}\n{\"id\":\"a\",\"cmd\":\"y\"}\n";
    let jobs = parse_jobs(text, &defaults());
    assert_eq!(jobs.len(), 3);
    assert_eq!(jobs[1].id, json!(3));
    assert!(jobs[0].job.is_ok() && jobs[1].job.is_ok());
    assert_eq!(
        jobs[2].job.as_ref().unwrap_err().to_string(),
        "line 4: id \"a\" is used by line 1 too"
    );
}

fn record(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn status_from_the_record() {
    let r = |v| Status::of(&record(v));
    assert_eq!(r(json!({"exit_code": 0})), Status::Passed);
    assert_eq!(r(json!({"exit_code": 3})), Status::Failed);
    assert_eq!(
        r(json!({"exit_code": 137, "signal": "SIGKILL"})),
        Status::Failed
    );
    let both = json!({"exit_code": 137, "timed_out": true, "oom_killed": true});
    assert_eq!(r(both), Status::TimedOut);
    assert_eq!(
        r(json!({"exit_code": 137, "oom_killed": true})),
        Status::Oom
    );
    assert_eq!(r(json!({})), Status::Failed);
}

#[test]
fn a_result_line_is_id_status_error_then_the_record() {
    let line = result_line(
        &json!("j"),
        Status::Failed,
        None,
        Some(record(
            json!({"exit_code": 2, "id": "not this", "stdout": "x"}),
        )),
    );
    assert_eq!(
        line,
        r#"{"id":"j","status":"failed","exit_code":2,"stdout":"x"}"#
    );
    let line = result_line(&json!(3), Status::Error, Some("line 3: \"x\""), None);
    assert_eq!(line, r#"{"id":3,"status":"error","error":"line 3: \"x\""}"#);
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["error"], "line 3: \"x\"");
}

#[test]
fn percentiles_are_nearest_rank() {
    let v: Vec<u64> = (1..=100).collect();
    assert_eq!(percentile(&v, 50), Some(50));
    assert_eq!(percentile(&v, 95), Some(95));
    assert_eq!(percentile(&[7], 95), Some(7));
    assert_eq!(percentile(&[1, 2], 50), Some(1));
    assert_eq!(percentile(&[1, 2, 3], 50), Some(2));
    assert_eq!(percentile(&[], 50), None);
}

#[test]
fn summary_counts_and_exit_status() {
    let mut t = Tally::default();
    assert_eq!(t.exit_status(None), 0);
    for w in [10, 20, 30] {
        t.add(Status::Passed, Some(w));
    }
    assert_eq!(t.exit_status(None), 0);
    t.add(Status::TimedOut, Some(1000));
    assert_eq!(t.exit_status(None), 1);
    t.add(Status::Error, None);
    assert_eq!(t.exit_status(None), 3);
    assert_eq!(t.exit_status(Some(2)), 130);
    let s = t.summary(7, 2000, None);
    assert_eq!(
        (s.passed, s.timed_out, s.errors, s.not_started),
        (3, 1, 1, 2)
    );
    assert_eq!((s.wall_ms.p50, s.wall_ms.p95), (Some(20), Some(1000)));
    assert_eq!(s.jobs_per_second, 2.5);
    assert_eq!(s.exit_status, 3);
    let text = s.to_string();
    assert!(
        text.starts_with("batch: 5 of 7 jobs in 2.0 s (2.5 jobs/s): 3 passed"),
        "{text}"
    );
    assert!(
        text.contains("2 not started; wall p50 20 ms, p95 1000 ms"),
        "{text}"
    );
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["wall_ms"]["max"], 1000);
    assert_eq!(v["oom"], 0);
}
