//! `docker://` against a fake registry on loopback (std TcpListener, one thread): bearer token auth
//! with basic credentials at the realm, an image index narrowed to this platform, and a corrupted
//! layer refused by its digest with nothing left behind.

use crate::common::{Layer, Layout};
use husk_image::{Cache, Error, ImageRef};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

const TOKEN: &str = "tok-123";
/// base64("u:p")
const BASIC: &str = "Basic dTpw";

struct Fake {
    addr: String,
    corrupt: Arc<AtomicBool>,
    token_requests: Arc<AtomicUsize>,
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

/// An OCI layout with `latest` (a manifest) and `multi` (an index over it), served as a registry.
fn fake(dir: &Path) -> Fake {
    let layout_dir = dir.join("layout");
    let mut l = Layout::new(&layout_dir);
    let layer = Layer::new()
        .dir("etc", 0o755)
        .file("etc/hello", b"hi\n", 0o644)
        .tar();
    let img = l.image("latest", &[layer]);
    let msize = std::fs::metadata(l.blob_path(&img.manifest)).unwrap().len();
    let index = json!({"schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json",
         "digest": img.manifest.to_string(), "size": msize,
         "platform": {"architecture": "s390x", "os": "linux"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json",
         "digest": img.manifest.to_string(), "size": msize,
         "platform": {"architecture": arch(), "os": "linux"}},
    ]});
    let idx = l.blob(&serde_json::to_vec(&index).unwrap());
    let tags = json!({"latest": img.manifest.to_string(), "multi": idx.to_string()});
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let f = Fake {
        addr: addr.clone(),
        corrupt: Arc::default(),
        token_requests: Arc::default(),
    };
    let (corrupt, tokens) = (f.corrupt.clone(), f.token_requests.clone());
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(s) = s else { return };
            serve(s, &addr, &layout_dir, &tags, &corrupt, &tokens);
        }
    });
    f
}

fn serve(
    mut s: TcpStream,
    addr: &str,
    layout: &Path,
    tags: &serde_json::Value,
    corrupt: &AtomicBool,
    tokens: &AtomicUsize,
) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let path = line.split(' ').nth(1).unwrap_or("").to_string();
    let mut auth = String::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap() == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") {
                auth = v.trim().to_string();
            }
        }
    }
    let mut reply = |status: &str, headers: &[(&str, String)], body: &[u8]| {
        let mut out = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        let _ = s.write_all(out.as_bytes());
        let _ = s.write_all(body);
    };
    if path.starts_with("/token?") {
        tokens.fetch_add(1, Ordering::Relaxed);
        let ok = auth == BASIC
            && path.contains("service=fake")
            && path.contains("scope=repository%3Atest%2Fimg%3Apull");
        return if ok {
            reply(
                "200 OK",
                &[],
                json!({"token": TOKEN}).to_string().as_bytes(),
            )
        } else {
            reply("401 Unauthorized", &[], b"{}")
        };
    }
    if auth != format!("Bearer {TOKEN}") {
        let challenge = format!(
            r#"Bearer realm="http://{addr}/token",service="fake",scope="repository:test/img:pull""#
        );
        return reply(
            "401 Unauthorized",
            &[("WWW-Authenticate", challenge)],
            br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        );
    }
    let blob = |d: &str| {
        std::fs::read(
            layout
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
    };
    if let Some(reference) = path.strip_prefix("/v2/test/img/manifests/") {
        let digest = tags
            .get(reference)
            .and_then(|v| v.as_str())
            .unwrap_or(reference)
            .to_string();
        return match blob(&digest) {
            Ok(b) => {
                let mt = serde_json::from_slice::<serde_json::Value>(&b).unwrap()["mediaType"]
                    .as_str()
                    .unwrap()
                    .to_string();
                reply(
                    "200 OK",
                    &[("Content-Type", mt), ("Docker-Content-Digest", digest)],
                    &b,
                )
            }
            Err(_) => reply(
                "404 Not Found",
                &[],
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
            ),
        };
    }
    if let Some(d) = path.strip_prefix("/v2/test/img/blobs/") {
        return match blob(d) {
            Ok(mut b) => {
                if corrupt.load(Ordering::Relaxed) && b.len() > 100 {
                    let mid = b.len() / 2;
                    b[mid] ^= 0xff;
                }
                reply("200 OK", &[], &b)
            }
            Err(_) => reply("404 Not Found", &[], b"{}"),
        };
    }
    reply("404 Not Found", &[], b"{}")
}

fn tmp_is_empty(cache: &Cache) -> bool {
    std::fs::read_dir(cache.root().join("tmp"))
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

#[test]
fn token_auth_index_and_cache_hit() {
    std::env::set_var("HUSK_REGISTRY_AUTH", "u:p");
    let tmp = tempfile::tempdir().unwrap();
    let f = fake(tmp.path());
    let cache = Cache::new(tmp.path().join("cache"));
    let r = ImageRef::parse(&format!("docker://{}/test/img:multi", f.addr)).unwrap();
    let img = cache.import(&r).unwrap();
    assert!(!img.stats.cached);
    assert_eq!(img.stats.layers_unpacked, 1);
    assert_eq!(
        std::fs::read_to_string(img.rootfs.join("etc/hello")).unwrap(),
        "hi\n"
    );
    assert_eq!(img.config.cmd, ["/bin/sh"]);
    assert!(f.token_requests.load(Ordering::Relaxed) >= 1);
    // The index resolved to the platform manifest, the same image as the plain tag.
    let again = cache
        .import(&ImageRef::parse(&format!("docker://{}/test/img:latest", f.addr)).unwrap())
        .unwrap();
    assert!(again.stats.cached, "{:?}", again.stats);
    assert_eq!(again.key, img.key);
    assert!(tmp_is_empty(&cache));
}

#[test]
fn corrupt_blob_and_unknown_tag_are_refused() {
    std::env::set_var("HUSK_REGISTRY_AUTH", "u:p");
    let tmp = tempfile::tempdir().unwrap();
    let f = fake(tmp.path());
    let cache = Cache::new(tmp.path().join("cache"));
    f.corrupt.store(true, Ordering::Relaxed);
    let r = ImageRef::parse(&format!("docker://{}/test/img:latest", f.addr)).unwrap();
    let err = cache.import(&r).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(tmp_is_empty(&cache));
    assert!(cache.list().unwrap().is_empty());
    f.corrupt.store(false, Ordering::Relaxed);
    let r = ImageRef::parse(&format!("docker://{}/test/img:nope", f.addr)).unwrap();
    let err = cache.import(&r).unwrap_err();
    assert!(err.to_string().contains("MANIFEST_UNKNOWN"), "{err}");
}
