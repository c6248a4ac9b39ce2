//! Pure translation, BPF parsing and cache tests (no privileges, nothing loaded).

use super::cache::{self, Reject};
use super::*;
use crate::security::testutil::{docker_like_profile, TempDir};
use serde_json::json;

fn spec(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).unwrap()
}

fn arg(index: usize, value: u64, value_two: Option<u64>, op: &str) -> LinuxSeccompArg {
    serde_json::from_value(json!({"index": index, "value": value, "valueTwo": value_two, "op": op}))
        .unwrap()
}

fn small() -> LinuxSeccomp {
    spec(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    }))
}

#[test]
fn actions_map_like_runc() {
    use LinuxSeccompAction as A;
    let k = "k";
    let cases = [
        (A::ScmpActKill, None, ScmpAction::KillThread),
        (A::ScmpActKillThread, None, ScmpAction::KillThread),
        (A::ScmpActKillProcess, None, ScmpAction::KillProcess),
        (A::ScmpActTrap, None, ScmpAction::Trap),
        (A::ScmpActErrno, None, ScmpAction::Errno(libc::EPERM)),
        (A::ScmpActErrno, Some(38), ScmpAction::Errno(38)),
        (A::ScmpActTrace, None, ScmpAction::Trace(1)),
        (A::ScmpActTrace, Some(7), ScmpAction::Trace(7)),
        (A::ScmpActLog, None, ScmpAction::Log),
        (A::ScmpActAllow, None, ScmpAction::Allow),
    ];
    for (oci, ret, want) in cases {
        assert_eq!(action(oci, ret, k).unwrap(), want, "{oci:?} {ret:?}");
    }
}

#[test]
fn notify_is_a_clear_error() {
    let err = action(
        LinuxSeccompAction::ScmpActNotify,
        None,
        "linux.seccomp.syscalls[2]",
    );
    let msg = err.unwrap_err().to_string();
    assert_eq!(
        msg,
        "translate linux.seccomp.syscalls[2]: action SCMP_ACT_NOTIFY is not supported"
    );
}

#[test]
fn errno_ret_must_fit_16_bits() {
    let err = action(
        LinuxSeccompAction::ScmpActErrno,
        Some(70000),
        "linux.seccomp",
    );
    assert!(matches!(err, Err(SeccompError::Invalid { .. })), "{err:?}");
}

#[test]
fn arg_ops_map_to_libseccomp() {
    let cases = [
        ("SCMP_CMP_NE", ScmpCompareOp::NotEqual),
        ("SCMP_CMP_LT", ScmpCompareOp::Less),
        ("SCMP_CMP_LE", ScmpCompareOp::LessOrEqual),
        ("SCMP_CMP_EQ", ScmpCompareOp::Equal),
        ("SCMP_CMP_GE", ScmpCompareOp::GreaterEqual),
        ("SCMP_CMP_GT", ScmpCompareOp::Greater),
    ];
    for (op, want) in cases {
        let got = condition(&arg(2, 42, Some(9), op), "k").unwrap();
        assert_eq!(got, ScmpArgCompare::new(2, want, 42), "{op}");
    }
}

#[test]
fn masked_eq_uses_value_as_mask_and_value_two_as_datum() {
    let got = condition(
        &arg(0, 0x7E02_0000, Some(0x20000), "SCMP_CMP_MASKED_EQ"),
        "k",
    )
    .unwrap();
    let want = ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(0x7E02_0000), 0x20000);
    assert_eq!(got, want);
}

#[test]
fn arg_index_above_five_is_rejected_with_its_key() {
    let err = condition(&arg(6, 0, None, "SCMP_CMP_EQ"), "linux.seccomp.syscalls[0]");
    let msg = err.unwrap_err().to_string();
    assert!(
        msg.starts_with("translate linux.seccomp.syscalls[0].args:"),
        "{msg}"
    );
}

#[test]
fn conditions_on_distinct_indexes_are_one_rule() {
    let args = [
        arg(0, 1, None, "SCMP_CMP_EQ"),
        arg(1, 2, None, "SCMP_CMP_EQ"),
    ];
    let conds = args.iter().map(|a| condition(a, "k").unwrap()).collect();
    let groups = condition_groups(&args, conds);
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].len(), 2);
}

#[test]
fn conditions_on_the_same_index_become_separate_rules() {
    let args = [
        arg(0, 1, None, "SCMP_CMP_EQ"),
        arg(0, 2, None, "SCMP_CMP_EQ"),
        arg(1, 3, None, "SCMP_CMP_EQ"),
    ];
    let conds = args.iter().map(|a| condition(a, "k").unwrap()).collect();
    let groups = condition_groups(&args, conds);
    assert_eq!(groups.len(), 3);
    assert!(groups.iter().all(|g| g.len() == 1));
}

#[test]
fn no_conditions_is_one_unconditional_rule() {
    let groups = condition_groups(&[], Vec::new());
    assert_eq!(groups, vec![Vec::<ScmpArgCompare>::new()]);
}

#[test]
fn architectures_map_by_name() {
    assert_eq!(scmp_arch(Arch::ScmpArchX86_64), ScmpArch::X8664);
    assert_eq!(scmp_arch(Arch::ScmpArchX32), ScmpArch::X32);
    assert_eq!(scmp_arch(Arch::ScmpArchAarch64), ScmpArch::Aarch64);
    assert_eq!(scmp_arch(Arch::ScmpArchS390x), ScmpArch::S390X);
    assert_eq!(scmp_arch(Arch::ScmpArchNative), ScmpArch::Native);
}

#[test]
fn flags_map_log_and_spec_allow_and_ignore_tsync() {
    let s = spec(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                  "SECCOMP_FILTER_FLAG_TSYNC"]
    }));
    assert_eq!(filter_flags(&s), 0b110);
    assert_eq!(filter_flags(&small()), 0);
}

#[test]
fn bpf_bytes_parse_as_native_endian_sock_filter() {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&0x0020u16.to_ne_bytes());
    bytes.extend_from_slice(&[3, 4]);
    bytes.extend_from_slice(&0xc000_003eu32.to_ne_bytes());
    let bpf = parse_bpf(&bytes).unwrap();
    assert_eq!(bpf.len(), 1);
    assert_eq!(
        (bpf[0].code, bpf[0].jt, bpf[0].jf, bpf[0].k),
        (0x20, 3, 4, 0xc000_003e)
    );
    assert_eq!(bpf_bytes(&bpf), bytes);
}

#[test]
fn bpf_bytes_with_bad_length_are_rejected() {
    assert_eq!(parse_bpf(&[0; 7]).unwrap_err(), BpfError::Length(7));
    assert_eq!(parse_bpf(&[]).unwrap_err(), BpfError::Empty);
    let long = vec![0; 8 * (BPF_MAXINSNS + 1)];
    assert_eq!(parse_bpf(&long).unwrap_err(), BpfError::TooLong(4097));
}

#[test]
fn fnv1a128_matches_published_vectors() {
    assert_eq!(
        cache::fnv1a128(cache::FNV128_OFFSET, b""),
        cache::FNV128_OFFSET
    );
    assert_eq!(
        cache::fnv1a128(cache::FNV128_OFFSET, b"a"),
        0xd228cb696f1a8caf78912b704e4a8964
    );
    assert_eq!(
        cache::fnv1a128(cache::FNV128_OFFSET, b"foobar"),
        0x343e1662793c64bf6f0d3597ba446f18
    );
    assert_eq!(cache::checksum(b"a"), 0xaf63dc4c8601ec8c);
}

#[test]
fn cache_key_is_pinned_and_part_boundaries_count() {
    // Pinned so a toolchain or std change cannot silently change file names.
    assert_eq!(
        cache::key(&[b"husk", b"seccomp"]),
        0xf0ca815a5847d93aa366e0c3c82d2437
    );
    assert_ne!(
        cache::key(&[b"husk", b"seccomp"]),
        cache::key(&[b"husks", b"eccomp"])
    );
}

/// The key of `spec` as `compile` computes it (the stub husk prepends is part of it).
fn key_of(spec: &LinuxSeccomp) -> u128 {
    cache_key(spec, &stub::prefix(spec, &filter_archs(spec))).unwrap()
}

#[test]
fn cache_key_follows_the_rules() {
    let a = key_of(&small());
    assert_eq!(a, key_of(&small()));
    let mut other = small();
    other.set_default_errno_ret(Some(38));
    assert_ne!(a, key_of(&other));
}

#[test]
fn cache_key_follows_the_stub() {
    // Two builds with the same rules but a different stub (another husk version) must not share
    // a cached program: the stub is husk's code and is part of the key.
    let spec = small();
    let stub = stub::prefix(&spec, &filter_archs(&spec));
    let mut changed = stub.clone();
    changed.push(libc::sock_filter {
        code: 0x06,
        jt: 0,
        jf: 0,
        k: 0x7fff_0000,
    });
    assert_ne!(
        cache_key(&spec, &stub).unwrap(),
        cache_key(&spec, &changed).unwrap()
    );
}

#[test]
fn cache_file_round_trips() {
    let bpf = parse_bpf(&[1, 0, 2, 3, 4, 5, 6, 7, 9, 9, 9, 9, 9, 9, 9, 9]).unwrap();
    let bytes = cache::encode(7, 2, &bpf);
    assert_eq!(bytes.len(), 40 + 16);
    let back = cache::decode(&bytes, 7, 2).unwrap();
    assert_eq!(bpf_bytes(&back), bpf_bytes(&bpf));
}

#[test]
fn damaged_cache_files_are_rejected() {
    let bpf = parse_bpf(&[1u8; 24]).unwrap();
    let good = cache::encode(7, 0, &bpf);
    assert_eq!(cache::decode(&good[..39], 7, 0), Err(Reject::Short(39)));
    assert!(matches!(
        cache::decode(&good[..good.len() - 3], 7, 0),
        Err(Reject::Count {
            header: 3,
            body: 21
        })
    ));
    assert_eq!(cache::decode(&good, 8, 0), Err(Reject::Key));
    assert_eq!(cache::decode(&good, 7, 2), Err(Reject::Flags));
    let mut magic = good.clone();
    magic[0] ^= 1;
    assert_eq!(cache::decode(&magic, 7, 0), Err(Reject::Magic));
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 0x80;
    assert_eq!(cache::decode(&flipped, 7, 0), Err(Reject::Checksum));
    let empty = cache::encode(7, 0, &[]);
    assert_eq!(
        cache::decode(&empty, 7, 0),
        Err(Reject::Bpf(BpfError::Empty))
    );
}

#[test]
fn compile_without_cache_exports_bpf() {
    let prog = compile(&small(), None).unwrap();
    assert!(!prog.from_cache);
    assert!(prog.bpf.len() > 4, "{}", prog.bpf.len());
    assert_eq!(prog.flags, 0);
    // Deterministic: the same rules give the same program.
    let again = compile(&small(), None).unwrap();
    assert_eq!(bpf_bytes(&prog.bpf), bpf_bytes(&again.bpf));
}

#[test]
fn compile_docker_sized_profile_skips_unknown_names() {
    let profile = docker_like_profile();
    let names = profile.syscalls().as_ref().unwrap()[0].names().len();
    assert!(names > 300, "{names}");
    let prog = compile(&profile, None).unwrap();
    assert!(prog.bpf.len() > names, "{}", prog.bpf.len());
}

#[test]
fn compile_rejects_notify_and_bad_args_with_their_keys() {
    let notify = spec(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    let msg = compile(&notify, None).unwrap_err().to_string();
    assert!(
        msg.contains("linux.seccomp.syscalls[0]") && msg.contains("not supported"),
        "{msg}"
    );
    let bad = spec(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 7, "value": 0, "op": "SCMP_CMP_EQ"}]}]
    }));
    let msg = compile(&bad, None).unwrap_err().to_string();
    assert!(msg.contains("linux.seccomp.syscalls[0].args"), "{msg}");
}

#[test]
fn rule_equal_to_default_action_is_skipped() {
    let s = spec(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"},
                     {"names": ["read"], "action": "SCMP_ACT_ALLOW"}]
    }));
    compile(&s, None).unwrap();
}

fn cache_files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[test]
fn second_compile_is_a_cache_hit() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("seccomp-cache");
    let dir = tmp.path().join("cache");
    let first = compile(&small(), Some(&dir)).unwrap();
    assert!(!first.from_cache);
    let files = cache_files(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].to_string_lossy().ends_with(".bpf"));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&dir), mode(&files[0])), (0o700, 0o600));
    let second = compile(&small(), Some(&dir)).unwrap();
    assert!(second.from_cache);
    assert_eq!(bpf_bytes(&first.bpf), bpf_bytes(&second.bpf));
    assert_eq!(first.flags, second.flags);
}

#[test]
fn corrupt_cache_file_is_recompiled_not_loaded() {
    let tmp = TempDir::new("seccomp-corrupt");
    let dir = tmp.path();
    let good = compile(&small(), Some(dir)).unwrap();
    let file = cache_files(dir).pop().unwrap();
    let pristine = std::fs::read(&file).unwrap();
    let damages: [fn(&mut Vec<u8>); 3] = [
        |b| b.truncate(b.len() - 3), // length not a multiple of 8
        |b| b[3] = b'X',             // header magic
        |b| b[45] ^= 0xff,           // an instruction: checksum
    ];
    for damage in damages {
        let mut bytes = pristine.clone();
        damage(&mut bytes);
        std::fs::write(&file, &bytes).unwrap();
        let prog = compile(&small(), Some(dir)).unwrap();
        assert!(!prog.from_cache);
        assert_eq!(bpf_bytes(&prog.bpf), bpf_bytes(&good.bpf));
        assert_eq!(std::fs::read(&file).unwrap(), pristine, "rewritten");
        assert!(compile(&small(), Some(dir)).unwrap().from_cache);
    }
}

#[test]
fn cache_file_of_other_rules_is_not_used() {
    let tmp = TempDir::new("seccomp-swap");
    let dir = tmp.path();
    let docker = compile(&docker_like_profile(), Some(dir)).unwrap();
    let small_key = key_of(&small());
    let docker_file = cache::path(dir, key_of(&docker_like_profile()));
    std::fs::copy(&docker_file, cache::path(dir, small_key)).unwrap();
    let prog = compile(&small(), Some(dir)).unwrap();
    assert!(!prog.from_cache);
    assert_ne!(bpf_bytes(&prog.bpf), bpf_bytes(&docker.bpf));
}

#[test]
fn unwritable_cache_dir_is_not_fatal() {
    let tmp = TempDir::new("seccomp-nodir");
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let prog = compile(&small(), Some(&file)).unwrap();
    assert!(!prog.from_cache);
}

/// Compile vs cache-hit timing for the Docker-sized profile. A measurement, not an assertion:
/// `cargo test -p husk-runtime --release --lib seccomp_timing -- --ignored --nocapture`.
#[test]
#[ignore = "measurement; run by hand"]
fn seccomp_timing() {
    use std::time::Instant;
    let profile = docker_like_profile();
    let rounds = 50;
    let t = Instant::now();
    for _ in 0..rounds {
        compile(&profile, None).unwrap();
    }
    let compile_time = t.elapsed() / rounds;
    let tmp = TempDir::new("seccomp-timing");
    let first = compile(&profile, Some(tmp.path())).unwrap();
    let t = Instant::now();
    for _ in 0..rounds {
        assert!(compile(&profile, Some(tmp.path())).unwrap().from_cache);
    }
    let hit_time = t.elapsed() / rounds;
    let names = profile.syscalls().as_ref().unwrap()[0].names().len();
    println!(
        "docker-like profile: {names} allowed names, {} insns; \
         compile {compile_time:?}, cache hit {hit_time:?}",
        first.bpf.len()
    );
}
