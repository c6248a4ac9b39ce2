//! Image references: transports, docker references, digests.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(r) = husk_image::ImageRef::parse(&s) {
        let _ = r.to_string();
    }
    if let Ok(r) = husk_image::DockerRef::parse(&s) {
        let _ = r.to_string();
    }
    let _ = husk_image::Digest::parse(&s);
});
