//! Pulling `docker://` images over the OCI distribution API (anonymous, bearer token or basic auth)
//! into a temporary OCI layout under the cache's tmp/, which the OCI importer then reads like any
//! other layout. Layers whose diff_id is already unpacked in the cache are not downloaded.
//!
//! - Manifest: `GET /v2/<name>/manifests/<tag|digest>` accepting OCI index/manifest and Docker v2
//!   schema 2 manifest/list; an index or list is narrowed to linux/<host arch>. The manifest is
//!   verified against the digest in the reference, else against `Docker-Content-Digest` when sent.
//! - Blobs: `GET /v2/<name>/blobs/<digest>` (redirects followed), hashed while written and refused
//!   on a digest or size mismatch.
//! - Auth: on 401 the `WWW-Authenticate` challenge decides: `Bearer realm=..,service=..,scope=..`
//!   gets a token from the realm (with credentials when we have some), `Basic` sends them.
//!   Credentials: `HUSK_REGISTRY_AUTH=user:pass`, else the registry's entry in
//!   `$DOCKER_CONFIG/config.json` or `~/.docker/config.json` (`auths.<host>.auth`); sent only in
//!   answer to a challenge.
//! - Scheme: plain http for loopback registries (`localhost`, `127.0.0.0/8`, `[::1]`, any port),
//!   https (rustls, webpki roots) for everything else; `docker.io` is `registry-1.docker.io`.

use crate::digest::{Digest, Hasher};
use crate::error::{Error, IoContext, Result};
use crate::reference::DockerRef;
use crate::spec::{self, Descriptor, Index};
use base64::Engine;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

/// Manifests and configs larger than this are refused.
const META_LIMIT: u64 = 4 << 20;

/// The tag the temporary layout gives the pulled manifest.
pub(crate) const LAYOUT_TAG: &str = "pulled";

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// One repository on one registry.
pub(crate) struct Client {
    agent: ureq::Agent,
    /// `scheme://host[:port]/v2/<repository>`
    base: String,
    repository: String,
    registry: String,
    /// The Authorization header value that answered the last challenge.
    auth: RefCell<Option<String>>,
}

/// True for registries on this machine's loopback, which are spoken to over plain http.
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => registry.split(':').next().unwrap_or(""),
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

impl Client {
    pub(crate) fn new(r: &DockerRef) -> Self {
        let host = if r.registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            r.registry.as_str()
        };
        let scheme = if is_loopback(host) { "http" } else { "https" };
        Client {
            agent: ureq::AgentBuilder::new()
                .timeout_connect(std::time::Duration::from_secs(30))
                .build(),
            base: format!("{scheme}://{host}/v2/{}", r.repository),
            repository: r.repository.clone(),
            registry: r.registry.clone(),
            auth: RefCell::new(None),
        }
    }

    /// GET with the current credentials; one retry after answering a 401 challenge.
    fn get(&self, url: &str, accept: &str) -> Result<ureq::Response> {
        for attempt in 0..2 {
            let mut req = self.agent.get(url).set("Accept", accept);
            if let Some(a) = self.auth.borrow().as_deref() {
                req = req.set("Authorization", a);
            }
            match req.call() {
                Ok(resp) => return Ok(resp),
                Err(ureq::Error::Status(401, resp)) if attempt == 0 => {
                    let challenge = resp.header("www-authenticate").unwrap_or("").to_string();
                    let header = self.answer(url, &challenge)?;
                    *self.auth.borrow_mut() = Some(header);
                }
                Err(e) => return Err(http_error(url, e)),
            }
        }
        Err(Error::RegistryAuth {
            url: url.to_string(),
            reason: "still unauthorized after authenticating".into(),
        })
    }

    /// The Authorization header that answers `challenge`.
    fn answer(&self, url: &str, challenge: &str) -> Result<String> {
        let creds = credentials(&self.registry);
        let basic = |(u, p): &(String, String)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        let fail = |reason: String| Error::RegistryAuth {
            url: url.to_string(),
            reason,
        };
        if scheme.eq_ignore_ascii_case("basic") {
            return creds.as_ref().map(basic).ok_or_else(|| {
                fail("basic auth required: set HUSK_REGISTRY_AUTH=user:pass or docker login".into())
            });
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(fail(format!("unsupported challenge {challenge:?}")));
        }
        let p = challenge_params(params);
        let realm = p
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| fail("bearer challenge without realm".into()))?;
        let mut req = self.agent.get(&realm);
        for (k, v) in &p {
            if k == "service" || k == "scope" {
                req = req.query(k, v);
            }
        }
        if !p.iter().any(|(k, _)| k == "scope") {
            req = req.query("scope", &format!("repository:{}:pull", self.repository));
        }
        if let Some(c) = &creds {
            req = req.set("Authorization", &basic(c));
        }
        let resp = req.call().map_err(|e| http_error(&realm, e))?;
        let body = read_limited(resp, &realm, META_LIMIT)?;
        let v: Value = serde_json::from_slice(&body).map_err(|source| Error::Json {
            what: "token",
            name: realm.clone(),
            source,
        })?;
        let token = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(Value::as_str)
            .ok_or_else(|| fail(format!("no token in the answer of {realm}")))?;
        Ok(format!("Bearer {token}"))
    }

    /// A manifest by tag or digest: (bytes, media type, digest), verified.
    fn manifest(
        &self,
        reference: &str,
        want: Option<&Digest>,
    ) -> Result<(Vec<u8>, String, Digest)> {
        let url = format!("{}/manifests/{reference}", self.base);
        let resp = self.get(&url, ACCEPT)?;
        let sent = resp.header("docker-content-digest").map(str::to_string);
        let ctype = resp.content_type().to_string();
        let bytes = read_limited(resp, &url, META_LIMIT)?;
        let expected = match (want, sent) {
            (Some(d), _) => Some(d.clone()),
            (None, Some(s)) => Some(Digest::parse(&s)?),
            (None, None) => None,
        };
        let digest = match expected {
            Some(d) => {
                let actual = d.of_same_kind(&bytes);
                if actual != d {
                    return Err(Error::DigestMismatch {
                        what: "manifest",
                        expected: d,
                        actual,
                    });
                }
                d
            }
            None => Digest::sha256(&bytes),
        };
        let field = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string));
        let media_type = field.unwrap_or(ctype);
        Ok((bytes, media_type, digest))
    }

    /// Downloads blob `d` into `path`, verifying digest and size as it goes.
    fn blob(
        &self,
        d: &Digest,
        size: u64,
        path: &Path,
        report: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        let url = format!("{}/blobs/{d}", self.base);
        let resp = self.get(&url, "*/*")?;
        let mut r = resp.into_reader().take(size.saturating_add(1));
        let mut f = File::create(path).ctx("create", path)?;
        let mut h = Hasher::new(d.algorithm());
        let mut buf = vec![0u8; 256 << 10];
        let mut done = 0u64;
        loop {
            let n = r.read(&mut buf).map_err(|e| Error::Io {
                op: "download",
                path: url.clone().into(),
                source: e,
            })?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            f.write_all(&buf[..n]).ctx("write", path)?;
            done += n as u64;
            report(done.min(size), size);
        }
        let actual = h.finish();
        if &actual != d || done != size {
            return Err(Error::DigestMismatch {
                what: "blob",
                expected: d.clone(),
                actual,
            });
        }
        Ok(())
    }
}

/// `k="v",k2="v2"` (values may also be bare tokens).
fn challenge_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while let Some((k, after)) = rest.split_once('=') {
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (v, tail) = match after.strip_prefix('"') {
            Some(q) => match q.split_once('"') {
                Some((v, t)) => (v, t),
                None => (q, ""),
            },
            None => after.split_once(',').unwrap_or((after, "")),
        };
        out.push((k, v.to_string()));
        rest = tail.trim_start_matches(',').trim();
    }
    out
}

fn http_error(url: &str, e: ureq::Error) -> Error {
    match e {
        ureq::Error::Status(status, resp) => {
            let body = resp.into_string().unwrap_or_default();
            Error::RegistryStatus {
                url: url.to_string(),
                status,
                reason: status_reason(status, &body),
            }
        }
        ureq::Error::Transport(t) => Error::RegistryTransport {
            url: url.to_string(),
            reason: t.to_string(),
        },
    }
}

/// `CODE: message (HTTP n)` from the distribution API's `{"errors":[{code,message}]}` body, else
/// the start of the body.
fn status_reason(status: u16, body: &str) -> String {
    let parsed: Option<Vec<String>> = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        let errs = v.get("errors")?.as_array()?;
        Some(
            errs.iter()
                .map(|e| {
                    let code = e.get("code").and_then(Value::as_str).unwrap_or("ERROR");
                    let msg = e.get("message").and_then(Value::as_str).unwrap_or("");
                    format!("{code}: {msg}")
                })
                .collect(),
        )
    });
    let text = match parsed {
        Some(v) if !v.is_empty() => v.join("; "),
        _ => body.trim().chars().take(200).collect(),
    };
    if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("{text} (HTTP {status})")
    }
}

fn read_limited(resp: ureq::Response, url: &str, limit: u64) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    resp.into_reader()
        .take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| Error::Io {
            op: "download",
            path: url.into(),
            source: e,
        })?;
    if buf.len() as u64 > limit {
        return Err(Error::TooLarge {
            what: "metadata",
            name: url.to_string(),
            limit,
        });
    }
    Ok(buf)
}

/// Credentials for `registry`: HUSK_REGISTRY_AUTH, else docker's config.json.
fn credentials(registry: &str) -> Option<(String, String)> {
    if let Ok(v) = std::env::var("HUSK_REGISTRY_AUTH") {
        let (u, p) = v.split_once(':')?;
        return Some((u.to_string(), p.to_string()));
    }
    let path = match std::env::var_os("DOCKER_CONFIG") {
        Some(d) => Path::new(&d).join("config.json"),
        None => Path::new(&std::env::var_os("HOME")?).join(".docker/config.json"),
    };
    let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let auths = v.get("auths")?.as_object()?;
    let mut keys = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ];
    if registry == "docker.io" {
        keys.push("https://index.docker.io/v1/".into());
        keys.push("index.docker.io".into());
    }
    let entry = keys.iter().find_map(|k| auths.get(k))?;
    if let Some(a) = entry.get("auth").and_then(Value::as_str) {
        let raw = base64::engine::general_purpose::STANDARD.decode(a).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (u, p) = text.split_once(':')?;
        return Some((u.to_string(), p.to_string()));
    }
    let u = entry.get("username")?.as_str()?;
    let p = entry.get("password")?.as_str()?;
    Some((u.to_string(), p.to_string()))
}

/// Fetches `r` into the OCI layout `dir` (tagged [`LAYOUT_TAG`]); layers for which `have(diff_id)`
/// is true are left out.
pub(crate) fn fetch(
    r: &DockerRef,
    dir: &Path,
    have: &dyn Fn(&Digest) -> bool,
    progress: &mut dyn FnMut(usize, usize, &Digest, u64, u64),
) -> Result<()> {
    let c = Client::new(r);
    let reference = match (&r.digest, &r.tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) => "latest".to_string(),
    };
    let (mut bytes, mut mt, mut digest) = c.manifest(&reference, r.digest.as_ref())?;
    if spec::is_index_type(&mt) {
        let index: Index = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            what: "index",
            name: digest.to_string(),
            source,
        })?;
        let d = crate::source::pick_platform(&index, &digest)?;
        (bytes, mt, digest) = c.manifest(&d.digest.to_string(), Some(&d.digest))?;
    }
    let blobs = dir.join("blobs").join(digest.algorithm().name());
    std::fs::create_dir_all(&blobs).ctx("create dir", &blobs)?;
    let write = |name: &Path, data: &[u8]| std::fs::write(name, data).ctx("write", name);
    write(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": mt, "digest": digest.to_string(), "size": bytes.len(),
        "annotations": {spec::REF_NAME: LAYOUT_TAG},
    }]});
    write(&dir.join("index.json"), index.to_string().as_bytes())?;
    write(&blob_path(dir, &digest), &bytes)?;
    let manifest: spec::Manifest =
        serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            what: "manifest",
            name: digest.to_string(),
            source,
        })?;
    let cd = &manifest.config;
    if cd.size > crate::source::META_LIMIT {
        return Err(Error::TooLarge {
            what: "config",
            name: cd.digest.to_string(),
            limit: crate::source::META_LIMIT,
        });
    }
    let cpath = blob_path(dir, &cd.digest);
    ensure_parent(&cpath)?;
    c.blob(&cd.digest, cd.size, &cpath, &mut |_, _| {})?;
    let config: spec::ConfigBlob =
        serde_json::from_slice(&std::fs::read(&cpath).ctx("read", &cpath)?).map_err(|source| {
            Error::Json {
                what: "config",
                name: cd.digest.to_string(),
                source,
            }
        })?;
    let count = manifest.layers.len();
    for (i, l) in manifest.layers.iter().enumerate() {
        if config.rootfs.diff_ids.get(i).is_some_and(have) {
            continue;
        }
        let p = blob_path(dir, &l.digest);
        ensure_parent(&p)?;
        layer(&c, l, &p, i, count, progress)?;
    }
    Ok(())
}

fn layer(
    c: &Client,
    l: &Descriptor,
    p: &Path,
    i: usize,
    count: usize,
    progress: &mut dyn FnMut(usize, usize, &Digest, u64, u64),
) -> Result<()> {
    c.blob(&l.digest, l.size, p, &mut |done, total| {
        progress(i, count, &l.digest, done, total)
    })
}

fn blob_path(dir: &Path, d: &Digest) -> std::path::PathBuf {
    dir.join("blobs").join(d.algorithm().name()).join(d.hex())
}

fn ensure_parent(p: &Path) -> Result<()> {
    let parent = p.parent().unwrap_or(p);
    std::fs::create_dir_all(parent).ctx("create dir", parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_plain_http() {
        for r in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback(r), "{r}");
        }
        for r in [
            "docker.io",
            "quay.io:443",
            "10.0.0.1:5000",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(r), "{r}");
        }
    }

    #[test]
    fn distribution_errors_are_summarised() {
        let body =
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(
            status_reason(404, body),
            "MANIFEST_UNKNOWN: manifest unknown (HTTP 404)"
        );
        assert_eq!(status_reason(502, ""), "HTTP 502");
    }

    #[test]
    fn bearer_challenge() {
        let p = challenge_params(
            r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(
            p[0],
            ("realm".into(), "https://auth.docker.io/token".into())
        );
        assert_eq!(p[1].1, "registry.docker.io");
        assert_eq!(p[2].1, "repository:library/busybox:pull");
    }
}
