//! Image metadata: index.json / image index, manifest, config, docker-archive manifest.json.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| husk_image::fuzz_metadata(data));
