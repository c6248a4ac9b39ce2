//! Image source names as users type them, in skopeo's transport syntax.
//!
//! - a bare path: a rootfs directory, or (decided at import by looking at it) an OCI layout directory or
//!   an image archive file;
//! - `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:NAME:TAG]`: the path ends at the
//!   first `:` as in containers/image (`SplitPathAndImage`), so paths with colons need a bare path;
//! - `docker://REF`: Docker reference grammar (distribution/reference): the first component is a
//!   registry host if it has a `.` or `:` or is `localhost`, otherwise Docker Hub (`docker.io`, with
//!   `library/` for one-component names); tag `latest` unless a tag or digest is given.
//!
//! Parsing does no I/O.

use crate::digest::Digest;
use std::fmt;
use std::path::PathBuf;

/// Errors from [`ImageRef::parse`] and [`DockerRef::parse`].
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("parse image reference {0:?}: empty path")]
    EmptyPath(String),
    #[error("parse image reference {value:?}: {reason}")]
    Invalid { value: String, reason: &'static str },
    #[error("parse image reference {value:?}: {source}")]
    Digest {
        value: String,
        #[source]
        source: crate::error::Error,
    },
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// A path without a transport prefix; its kind is decided at import.
    Path(PathBuf),
    /// An OCI image layout directory.
    Oci { dir: PathBuf, tag: Option<String> },
    /// A tar file holding an OCI image layout.
    OciArchive { file: PathBuf, tag: Option<String> },
    /// A `docker save` archive; `reference` picks one of several images by its RepoTags entry.
    DockerArchive {
        file: PathBuf,
        reference: Option<String>,
    },
    /// An image in a registry (parsed only; import reports it as not supported yet).
    Docker(DockerRef),
}

impl ImageRef {
    /// Parses a source as typed on the command line.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        if let Some(rest) = value.strip_prefix("docker://") {
            return DockerRef::parse(rest).map(ImageRef::Docker);
        }
        let split = |rest: &str| -> Result<(PathBuf, Option<String>), ParseError> {
            let (path, tag) = match rest.split_once(':') {
                Some((p, t)) => (p, (!t.is_empty()).then(|| t.to_string())),
                None => (rest, None),
            };
            if path.is_empty() {
                return Err(ParseError::EmptyPath(value.to_string()));
            }
            Ok((PathBuf::from(path), tag))
        };
        if let Some(rest) = value.strip_prefix("oci:") {
            let (dir, tag) = split(rest)?;
            return Ok(ImageRef::Oci { dir, tag });
        }
        if let Some(rest) = value.strip_prefix("oci-archive:") {
            let (file, tag) = split(rest)?;
            return Ok(ImageRef::OciArchive { file, tag });
        }
        if let Some(rest) = value.strip_prefix("docker-archive:") {
            let (file, reference) = split(rest)?;
            return Ok(ImageRef::DockerArchive { file, reference });
        }
        if value.is_empty() {
            return Err(ParseError::EmptyPath(value.to_string()));
        }
        Ok(ImageRef::Path(PathBuf::from(value)))
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with = |f: &mut fmt::Formatter<'_>, kind, p: &PathBuf, t: &Option<String>| {
            write!(f, "{kind}:{}", p.display())?;
            match t {
                Some(t) => write!(f, ":{t}"),
                None => Ok(()),
            }
        };
        match self {
            ImageRef::Path(p) => write!(f, "{}", p.display()),
            ImageRef::Oci { dir, tag } => with(f, "oci", dir, tag),
            ImageRef::OciArchive { file, tag } => with(f, "oci-archive", file, tag),
            ImageRef::DockerArchive { file, reference } => {
                with(f, "docker-archive", file, reference)
            }
            ImageRef::Docker(r) => write!(f, "docker://{r}"),
        }
    }
}

/// A registry image name: `registry/repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerRef {
    /// Registry host (and port), `docker.io` for Docker Hub.
    pub registry: String,
    /// Repository path, `library/NAME` for official Docker Hub images.
    pub repository: String,
    /// The tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

const DOCKER_HUB: &str = "docker.io";

impl DockerRef {
    /// Parses a Docker reference, applying Docker Hub defaults.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let bad = |reason| ParseError::Invalid {
            value: value.to_string(),
            reason,
        };
        let (name, digest) = match value.split_once('@') {
            Some((n, d)) => {
                let d = Digest::parse(d).map_err(|source| ParseError::Digest {
                    value: value.to_string(),
                    source,
                })?;
                (n, Some(d))
            }
            None => (value, None),
        };
        let (name, tag) = match name.rfind(':') {
            Some(i) if !name[i..].contains('/') => (&name[..i], Some(name[i + 1..].to_string())),
            _ => (name, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((host, rest))
                if host.contains(['.', ':'])
                    || host == "localhost"
                    || host != host.to_lowercase() =>
            {
                (host.to_string(), rest.to_string())
            }
            Some(_) => (DOCKER_HUB.to_string(), name.to_string()),
            None => (DOCKER_HUB.to_string(), format!("library/{name}")),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
            _ => registry,
        };
        if !valid_repository(&repository) {
            return Err(bad(
                "invalid repository name (lower-case letters, digits, . _ - /)",
            ));
        }
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(bad("invalid tag (letters, digits, _ . -, at most 128)"));
            }
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(DockerRef {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

fn valid_repository(repo: &str) -> bool {
    let component = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && c.as_bytes()[0].is_ascii_alphanumeric()
            && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
    };
    repo.split('/').all(component)
}

fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && (tag.as_bytes()[0].is_ascii_alphanumeric() || tag.starts_with('_'))
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

impl fmt::Display for DockerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker(s: &str) -> DockerRef {
        DockerRef::parse(s).unwrap()
    }

    #[test]
    fn transports() {
        assert_eq!(
            ImageRef::parse("oci:/img/layout:v1").unwrap(),
            ImageRef::Oci {
                dir: "/img/layout".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            ImageRef::parse("oci:rel").unwrap(),
            ImageRef::Oci {
                dir: "rel".into(),
                tag: None
            }
        );
        assert_eq!(
            ImageRef::parse("oci-archive:/a.tar").unwrap(),
            ImageRef::OciArchive {
                file: "/a.tar".into(),
                tag: None
            }
        );
        assert_eq!(
            ImageRef::parse("docker-archive:/a.tar:probe/busybox:latest").unwrap(),
            ImageRef::DockerArchive {
                file: "/a.tar".into(),
                reference: Some("probe/busybox:latest".into())
            }
        );
        assert_eq!(
            ImageRef::parse("./rootfs").unwrap(),
            ImageRef::Path("./rootfs".into())
        );
        assert!(ImageRef::parse("oci:").is_err());
        assert!(ImageRef::parse("oci-archive::tag").is_err());
        assert!(ImageRef::parse("").is_err());
        for s in [
            "oci:/x:t",
            "oci-archive:/y",
            "docker-archive:/z:a/b:c",
            "/r",
        ] {
            assert_eq!(ImageRef::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn docker_hub_defaults() {
        let r = docker("busybox");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "library/busybox", Some("latest"))
        );
        assert_eq!(docker("user/app:1.2").repository, "user/app");
        assert_eq!(docker("user/app:1.2").registry, "docker.io");
        assert_eq!(docker("index.docker.io/user/app").registry, "docker.io");
        assert_eq!(
            docker("busybox").to_string(),
            "docker.io/library/busybox:latest"
        );
    }

    #[test]
    fn docker_registries_tags_digests() {
        let r = docker("quay.io/org/img:3.1");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("quay.io", "org/img", Some("3.1"))
        );
        let r = docker("localhost:5000/img");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("localhost:5000", "img", Some("latest"))
        );
        let d = Digest::sha256(b"x");
        let r = docker(&format!("alpine@{d}"));
        assert_eq!((r.tag, r.digest), (None, Some(d.clone())));
        let r = docker(&format!("ghcr.io/a/b:t@{d}"));
        assert_eq!((r.tag.as_deref(), r.digest), (Some("t"), Some(d)));
        assert!(matches!(
            ImageRef::parse("docker://alpine").unwrap(),
            ImageRef::Docker(_)
        ));
    }

    #[test]
    fn docker_rejects() {
        for bad in [
            "alpine/X",
            "alpine:",
            "a//b",
            "alpine@sha256:12",
            "-a",
            "a:b c",
        ] {
            assert!(DockerRef::parse(bad).is_err(), "{bad}");
        }
    }
}
