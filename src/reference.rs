//! Image references as written in bundle.toml, and their canonical form.
//!
//! Follows the grammar of the distribution project's reference package:
//! `[domain/]path[:tag][@digest]`, where the first component is a domain
//! only if it has a `.` or `:` or is `localhost`, and Docker Hub names get
//! the `docker.io` domain and, for one-component paths, `library/`.
//!
//! ```
//! use bale::reference::Reference;
//!
//! let r: Reference = "redis:8.2-alpine".parse().map_err(|e: bale::reference::ReferenceError| e.to_string())?;
//! assert_eq!(r.canonical_name(), "docker.io/library/redis:8.2-alpine");
//! # Ok::<(), String>(())
//! ```

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

/// The registry that names without a domain belong to.
pub const DOCKER_HUB: &str = "docker.io";

/// A parsed registry reference. `tag` is always present: bale refuses
/// untagged references so that every loaded image can carry a name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    /// Registry host, with port if any (`docker.io`, `127.0.0.1:5000`).
    pub domain: String,
    /// Repository path inside the registry (`library/redis`).
    pub path: String,
    /// Tag (`8.2-alpine`).
    pub tag: String,
    /// Digest the reference is pinned to, if written.
    pub digest: Option<Digest>,
}

/// Why a reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Empty string.
    #[error("empty image reference")]
    Empty,
    /// Upper case or other characters the grammar forbids.
    #[error("invalid repository name `{0}`: use lowercase letters, digits and separators . _ -")]
    InvalidName(String),
    /// Bad tag.
    #[error("invalid tag `{0}`: up to 128 of letters, digits, _ . - not starting with . or -")]
    InvalidTag(String),
    /// Bad digest.
    #[error("{0}")]
    InvalidDigest(String),
    /// No tag written.
    #[error(
        "`{0}` has no tag: write one explicitly (for example `{0}:1.0`); bale never assumes `latest`"
    )]
    MissingTag(String),
    /// Bad `oci:` source.
    #[error(
        "invalid local OCI layout source `{0}`: write oci:PATH:NAME:TAG, where NAME:TAG is the image's ref name in the layout"
    )]
    InvalidOciSource(String),
}

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
        _ => (d, None),
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err())
    {
        return false;
    }
    if host.starts_with('[') && host.ends_with(']') {
        return host[1..host.len() - 1]
            .parse::<std::net::Ipv6Addr>()
            .is_ok();
    }
    !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || x == b'_' || x == b'.' || x == b'-')
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (
                r,
                Some(
                    d.parse::<Digest>()
                        .map_err(|e| ReferenceError::InvalidDigest(e.to_string()))?,
                ),
            ),
            None => (s, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        let tag = match tag {
            Some(t) if valid_tag(t) => t.to_owned(),
            Some(t) => return Err(ReferenceError::InvalidTag(t.to_owned())),
            None => return Err(ReferenceError::MissingTag(name.to_owned())),
        };
        let (domain, path) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                if !valid_domain(first) {
                    return Err(ReferenceError::InvalidName(name.to_owned()));
                }
                (first.to_owned(), remainder.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        let domain = match domain.as_str() {
            // Docker's legacy aliases for Hub.
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_owned(),
            _ => domain,
        };
        if path.is_empty() || !path.split('/').all(valid_component) || name.len() > 255 {
            return Err(ReferenceError::InvalidName(name.to_owned()));
        }
        let path = if domain == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }
}

impl Reference {
    /// `domain/path:tag`, the name an image carries in the lock and in a runtime.
    pub fn canonical_name(&self) -> String {
        format!("{}/{}:{}", self.domain, self.path, self.tag)
    }

    /// `domain/path`, without tag.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.canonical_name())?;
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Where an image comes from: a registry, or a local OCI image layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageSource {
    /// A registry reference.
    Registry(Reference),
    /// `oci:PATH:REF` as skopeo writes it. `reference` is REF parsed as an
    /// image reference: it names the image in the layout's `index.json`
    /// (annotation `org.opencontainers.image.ref.name`) and in the bundle.
    OciLayout {
        /// Layout directory as written (relative to bundle.toml).
        path: String,
        /// The ref name as written in the layout.
        ref_name: String,
        /// The ref name parsed, for the canonical name.
        reference: Reference,
    },
}

impl ImageSource {
    /// Parses a bundle.toml image value.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        match s.strip_prefix("oci:") {
            Some(rest) => {
                // Like containers/image: the path ends at the first colon.
                let (path, ref_name) = rest
                    .split_once(':')
                    .ok_or_else(|| ReferenceError::InvalidOciSource(s.to_owned()))?;
                if path.is_empty() || ref_name.is_empty() {
                    return Err(ReferenceError::InvalidOciSource(s.to_owned()));
                }
                let reference: Reference = ref_name.parse()?;
                if reference.digest.is_some() {
                    return Err(ReferenceError::InvalidOciSource(s.to_owned()));
                }
                Ok(ImageSource::OciLayout {
                    path: path.to_owned(),
                    ref_name: ref_name.to_owned(),
                    reference,
                })
            }
            None => Ok(ImageSource::Registry(s.parse()?)),
        }
    }

    /// The reference that names this image.
    pub fn reference(&self) -> &Reference {
        match self {
            ImageSource::Registry(r) => r,
            ImageSource::OciLayout { reference, .. } => reference,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        match s.parse::<Reference>() {
            Ok(r) => r.canonical_name(),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn docker_hub_names_are_normalised() {
        assert_eq!(
            canon("redis:8.2-alpine"),
            "docker.io/library/redis:8.2-alpine"
        );
        assert_eq!(
            canon("pgvector/pgvector:pg18"),
            "docker.io/pgvector/pgvector:pg18"
        );
        assert_eq!(
            canon("index.docker.io/library/mongo:7.0"),
            "docker.io/library/mongo:7.0"
        );
        assert_eq!(canon("docker.io/redis:8"), "docker.io/library/redis:8");
    }

    #[test]
    fn domains_with_ports_and_localhost_are_kept() {
        assert_eq!(canon("127.0.0.1:5000/a/b:1"), "127.0.0.1:5000/a/b:1");
        assert_eq!(canon("localhost/web:1.0"), "localhost/web:1.0");
        assert_eq!(canon("ghcr.io/x/y:v2"), "ghcr.io/x/y:v2");
    }

    #[test]
    fn bad_references_are_refused_with_reasons() {
        assert!(canon("Redis:1").contains("invalid repository name"));
        assert!(canon("redis").contains("has no tag"));
        assert!(canon("redis:-x").contains("invalid tag"));
        assert!(canon("redis:1@sha256:zz").contains("not a sha256 digest"));
        assert!(canon("a//b:1").contains("invalid repository name"));
        assert!(canon("").contains("empty"));
    }

    #[test]
    fn pinned_digest_is_kept() {
        let d = format!("sha256:{}", "0".repeat(64));
        let r: Reference = format!("redis:8@{d}")
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.digest.map(|d| d.to_string()), Some(d));
    }

    #[test]
    fn oci_sources_split_at_the_first_colon() {
        match ImageSource::parse("oci:demo/images:localhost/bale-demo/web:1.0") {
            Ok(ImageSource::OciLayout {
                path,
                ref_name,
                reference,
            }) => {
                assert_eq!(path, "demo/images");
                assert_eq!(ref_name, "localhost/bale-demo/web:1.0");
                assert_eq!(reference.canonical_name(), "localhost/bale-demo/web:1.0");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(ImageSource::parse("oci:only-a-path").is_err());
    }
}
