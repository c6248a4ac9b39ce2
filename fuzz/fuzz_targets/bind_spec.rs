//! `--bind` values (and --env, --add-caps, --device, --ttl values).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| husk_launcher::fuzzing::fuzz_entry(data));
