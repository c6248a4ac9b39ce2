//! config.json: parse (with the compat fixes), validate, landlock annotation.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| husk_runtime::spec::fuzz_entry(data));
