//! The fuzz entry point (and its stable smoke) of the bind-spec parser and the other flag-value parsers
//! (husk_runtime::fuzzing; the cargo-fuzz target `bind_spec` in fuzz/ calls [`fuzz_entry`]).

/// A `--bind` value (and the other one-line flag values) through their parsers; what parses is
/// planned as the launcher would (destinations cleaned against the container's cwd).
pub fn fuzz_entry(bytes: &[u8]) {
    let s = String::from_utf8_lossy(bytes);
    if let Ok(binds) = crate::options::parse_binds(&s) {
        for b in binds {
            let _ = crate::mounts::clean(std::path::Path::new("/work"), &b.destination);
            let _ = crate::mounts::clean(&b.source, std::path::Path::new(".."));
        }
    }
    let _ = crate::options::parse_env(&s);
    let _ = crate::options::parse_caps(&s);
    let _ = crate::cdi::parse_request(&s);
    let _ = crate::instance::parse_ttl(&s);
}

#[cfg(test)]
#[test]
fn fuzz_smoke_bind_spec() {
    use husk_runtime::fuzzing::smoke;
    let seeds: &[&[u8]] = &[
        b"/data",
        b"/scratch:/data:ro",
        b"/a:/b:rw,/c,/d:/e",
        b"rel/../x:/../../y",
        b"/a::ro",
        b"KEY=value",
        b"CAP_NET_RAW,sys_admin",
        b"vendor.com/fpga=0",
        b"2h30m",
    ];
    let n = smoke("bind_spec", seeds, 5000, 4096, fuzz_entry);
    eprintln!("bind_spec: {n} inputs, no panic");
}
