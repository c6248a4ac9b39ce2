//! Stable-Rust fuzz smoke: a seeded mutator that feeds a deterministic stream of mutated inputs
//! through a parser's entry point, so `cargo test` catches a panic without nightly or cargo-fuzz.
//! The cargo-fuzz targets (`fuzz/`, nightly, libFuzzer) call the same entry points; this is their
//! short, reproducible CI stand-in. `HUSK_FUZZ_ITERS=N` runs N inputs per target instead of the
//! default (the long runs by hand); `HUSK_FUZZ_SEED=S` changes the stream.
//!
//! Mutations are libFuzzer's basic ones: flip, insert, delete, duplicate and splice bytes, replace
//! with interesting values ("0", "-1", i64/u64 extremes, huge numbers, nested brackets), and
//! cross-over with another seed. A panic names the seed and iteration that reproduce it.

/// xorshift64*: small, fast, deterministic across platforms.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// In `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Byte strings that make parsers take their edge paths.
const TOKENS: &[&[u8]] = &[
    b"0",
    b"-1",
    b"9223372036854775807",
    b"9223372036854775808",
    b"18446744073709551615",
    b"-9223372036854775808",
    b"1e999",
    b"99999999999999999999999999",
    b"null",
    b"true",
    b"[]",
    b"{}",
    b"\"\"",
    b"[[[[[[[[[[[[[[[[",
    b"\\u0000",
    b"\\ud800",
    b"/",
    b"..",
    b":",
    b"@",
    b"sha256:",
    b"\xff\xfe",
    b",",
];

/// One mutation of `input` (never longer than `max`).
pub fn mutate(rng: &mut Rng, input: &mut Vec<u8>, seeds: &[&[u8]], max: usize) {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(len + 1);
                input.insert(i, rng.next_u64() as u8);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(16));
                input.drain(i..i + n);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(32));
                let chunk = input[i..i + n].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, chunk);
            }
            4 | 5 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let i = rng.below(len + 1);
                let n = if len > i {
                    rng.below((len - i).min(8) + 1)
                } else {
                    0
                };
                input.splice(i..i + n, t.iter().copied());
            }
            6 if !seeds.is_empty() => {
                let other = seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let i = rng.below(other.len());
                    let n = 1 + rng.below(other.len() - i);
                    let at = rng.below(len + 1);
                    input.splice(at..at, other[i..i + n].iter().copied());
                }
            }
            _ if len > 0 => {
                // A digit replaced by an extreme number: sizes, ids, limits.
                let i = rng.below(len);
                if input[i].is_ascii_digit() {
                    let t = TOKENS[rng.below(8)];
                    input.splice(i..i + 1, t.iter().copied());
                }
            }
            _ => {}
        }
    }
    input.truncate(max);
}

/// How many inputs a smoke run feeds: `HUSK_FUZZ_ITERS`, else `default`.
pub fn iterations(default: u64) -> u64 {
    std::env::var("HUSK_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Feeds the seeds, then `iterations(default)` mutations of them (each building on the last for a
/// few steps, then starting over from a seed), to `f`. Returns the number of inputs tried. A panic
/// in `f` propagates with the seed and iteration printed first.
pub fn smoke(name: &str, seeds: &[&[u8]], default: u64, max: usize, f: impl Fn(&[u8])) -> u64 {
    let seed: u64 = std::env::var("HUSK_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x4855_534b);
    let mut rng = Rng::new(
        seed ^ name
            .bytes()
            .fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(b)),
    );
    for s in seeds {
        f(s);
    }
    let n = iterations(default);
    let mut cur: Vec<u8> = Vec::new();
    for i in 0..n {
        if i % 16 == 0 || cur.is_empty() {
            cur = seeds[rng.below(seeds.len())].to_vec();
        }
        mutate(&mut rng, &mut cur, seeds, max);
        let input = cur.clone();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&input)));
        if let Err(e) = r {
            eprintln!(
                "fuzz smoke {name}: panic at iteration {i} (HUSK_FUZZ_SEED={seed}); input: {:?}",
                String::from_utf8_lossy(&input)
            );
            std::panic::resume_unwind(e);
        }
    }
    seeds.len() as u64 + n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config.json parser and validator on mutated configs (the bundles' own and edge cases).
    #[test]
    fn fuzz_smoke_config_json() {
        let seeds: &[&[u8]] = &[
            include_bytes!("../../../bundles/busybox/config.json"),
            include_bytes!("../../../bundles/busybox-rootless/config.json"),
            br#"{"ociVersion":"1.0.2","root":{"path":"/"},"process":{"cwd":"/","args":["sh"],
                "rlimits":[{"type":"RLIMIT_NOFILE","soft":10,"hard":5}]},
                "linux":{"namespaces":[{"type":"user"}],"uidMappings":[{"containerID":0,"hostID":0,"size":4294967295}],
                "sysctl":{"net.ipv4.ip_forward":"1"},"timeOffsets":{"monotonic":{"secs":-1,"nanosecs":4294967295}}}}"#,
            br#"{"ociVersion":"1.1.0","process":{"capabilities":{"bounding":["CAP_NOPE"]},"scheduler":{"policy":"SCHED_OTHER","flags":["SCHED_FLAG_RESET_ON_FORK"]}}}"#,
        ];
        let n = smoke("config_json", seeds, 3000, 1 << 16, crate::spec::fuzz_entry);
        eprintln!("config_json: {n} inputs, no panic");
    }

    #[test]
    fn mutator_is_deterministic() {
        let run = || {
            let mut rng = Rng::new(7);
            let mut v = b"{\"size\": 12}".to_vec();
            for _ in 0..50 {
                mutate(&mut rng, &mut v, &[b"abc"], 256);
            }
            v
        };
        assert_eq!(run(), run());
    }
}
