//! Stable fuzz smoke of the image reference and metadata parsers (husk_runtime::fuzzing; the
//! cargo-fuzz targets `image_ref` and `image_manifest` in fuzz/ call the same entry points).

use husk_runtime::fuzzing::smoke;

#[test]
fn fuzz_smoke_image_ref() {
    let seeds: &[&[u8]] = &[
        b"docker://busybox",
        b"docker://registry.example.com:5000/a/b/c:v1.2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        b"docker://localhost/x@sha512:00",
        b"oci:./layout:v1",
        b"oci-archive:/tmp/a.tar:tag",
        b"docker-archive:app.tar:repo/name:tag",
        b"./rootfs",
    ];
    let n = smoke("image_ref", seeds, 5000, 4096, |b| {
        let s = String::from_utf8_lossy(b);
        if let Ok(r) = crate::ImageRef::parse(&s) {
            let _ = r.to_string();
        }
        if let Ok(r) = crate::DockerRef::parse(&s) {
            let _ = r.to_string();
        }
        let _ = crate::Digest::parse(&s);
    });
    eprintln!("image_ref: {n} inputs, no panic");
}

#[test]
fn fuzz_smoke_image_manifest() {
    let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json",
        "digest":"{d}","size":9223372036854775807,"annotations":{{"org.opencontainers.image.ref.name":"latest"}},
        "platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
    );
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
        "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{d}","size":12}},
        "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{d}","size":18446744073709551615}}]}}"#
    );
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["A=1"],"Cmd":null,"Labels":{{"a":"b"}}}},
        "rootfs":{{"type":"layers","diff_ids":["{d}"]}}}}"#
    );
    let docker = format!(
        r#"[{{"Config":"{}.json","RepoTags":["busybox:latest"],"Layers":["a/layer.tar"]}}]"#,
        &d[7..]
    );
    let seeds: &[&[u8]] = &[
        index.as_bytes(),
        manifest.as_bytes(),
        config.as_bytes(),
        docker.as_bytes(),
    ];
    let n = smoke("image_manifest", seeds, 5000, 1 << 16, crate::fuzz_metadata);
    eprintln!("image_manifest: {n} inputs, no panic");
}
