//! On-disk cache of compiled seccomp programs: `<dir>/<key>.bpf`, written by temp file + rename.
//!
//! The key is a 128-bit FNV-1a hash (fixed constants, so stable across builds and toolchains,
//! unlike std's `DefaultHasher`) of the seccomp JSON, the libseccomp version and the native
//! architecture. A file is only trusted after its header checks out: magic, the same key,
//! instruction count matching the length, and an FNV-1a 64 checksum of the instructions. Anything
//! else is treated as a miss, logged, and overwritten by the recompiled program.
//!
//! File layout (little-endian header, native-endian instructions):
//! `b"HUSKBPF1"` | key u128 | flags u32 | count u32 | checksum u64 | count × sock_filter (8 bytes).
//!
//! The cache directory is created 0700: whoever can write it decides the filter of every container
//! that uses it, so it must belong to the runtime's user (the state root is the natural home).

use super::{bpf_bytes, parse_bpf};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"HUSKBPF1";
const HEADER_LEN: usize = 40;

pub(super) const FNV128_OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
const FNV128_PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
const FNV64_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV64_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 128 over `parts`, each prefixed by its length so that part boundaries count.
pub(super) fn key(parts: &[&[u8]]) -> u128 {
    parts.iter().fold(FNV128_OFFSET, |h, part| {
        let h = fnv1a128(h, &(part.len() as u64).to_le_bytes());
        fnv1a128(h, part)
    })
}

/// FNV-1a 128 of `bytes`, continuing from state `h` (start with the offset basis).
pub(super) fn fnv1a128(h: u128, bytes: &[u8]) -> u128 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ u128::from(b)).wrapping_mul(FNV128_PRIME))
}

/// FNV-1a 64 of the instruction bytes (detects bit rot and torn writes, not tampering).
pub(super) fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV64_OFFSET, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV64_PRIME)
    })
}

pub(super) fn file_name(key: u128) -> String {
    format!("{key:032x}.bpf")
}

pub(super) fn path(dir: &Path, key: u128) -> PathBuf {
    dir.join(file_name(key))
}

/// Why a cache file was rejected.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Reject {
    Short(usize),
    Magic,
    Key,
    Flags,
    Count { header: usize, body: usize },
    Checksum,
    Bpf(super::BpfError),
}

/// Serializes a program into the cache file format.
pub(super) fn encode(key: u128, flags: u32, bpf: &[libc::sock_filter]) -> Vec<u8> {
    let body = bpf_bytes(bpf);
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&key.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&(bpf.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Parses and checks a cache file against the expected key and flags.
pub(super) fn decode(
    bytes: &[u8],
    key: u128,
    flags: u32,
) -> Result<Vec<libc::sock_filter>, Reject> {
    if bytes.len() < HEADER_LEN {
        return Err(Reject::Short(bytes.len()));
    }
    let (header, body) = bytes.split_at(HEADER_LEN);
    let field = |from: usize, to: usize| &header[from..to];
    if field(0, 8) != MAGIC {
        return Err(Reject::Magic);
    }
    if field(8, 24) != key.to_le_bytes() {
        return Err(Reject::Key);
    }
    if field(24, 28) != flags.to_le_bytes() {
        return Err(Reject::Flags);
    }
    let count = u32::from_le_bytes(field(28, 32).try_into().expect("4-byte slice")) as usize;
    if body.len() != count.saturating_mul(8) {
        return Err(Reject::Count {
            header: count,
            body: body.len(),
        });
    }
    if field(32, 40) != checksum(body).to_le_bytes() {
        return Err(Reject::Checksum);
    }
    parse_bpf(body).map_err(Reject::Bpf)
}

/// Returns the cached program for `key`, or `None` (missing, unreadable or rejected; logged).
pub(super) fn lookup(dir: &Path, key: u128, flags: u32) -> Option<Vec<libc::sock_filter>> {
    let path = path(dir, key);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            log::warn!("seccomp cache: read {}: {e}", path.display());
            return None;
        }
    };
    match decode(&bytes, key, flags) {
        Ok(bpf) => Some(bpf),
        Err(reject) => {
            log::warn!(
                "seccomp cache: discard {}: {reject:?}; recompiling",
                path.display()
            );
            None
        }
    }
}

/// Writes the program for `key` atomically; failures are logged (the cache is an optimisation).
pub(super) fn store(dir: &Path, key: u128, flags: u32, bpf: &[libc::sock_filter]) {
    let path = path(dir, key);
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        file_name(key),
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    ));
    let written =
        write_new(dir, &tmp, &encode(key, flags, bpf)).and_then(|()| fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        log::warn!("seccomp cache: write {}: {e}", path.display());
    }
}

fn write_new(dir: &Path, tmp: &Path, bytes: &[u8]) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)?;
    file.write_all(bytes)?;
    file.sync_data()
}
