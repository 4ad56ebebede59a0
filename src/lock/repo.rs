//! Where images are resolved from: a registry (through its mirrors) or a
//! local OCI image layout, behind one trait.

use std::path::PathBuf;

use serde::Deserialize;

use super::ResolveErrorKind;
use crate::digest::Digest;
use crate::manifest::{self, Descriptor};
use crate::registry::{FetchedManifest, RegistryClient, RegistryError};

/// Where manifests and small blobs of one image are read from during lock.
pub trait ImageRepo {
    /// A manifest by tag, ref name or digest.
    fn manifest(&self, reference: &str) -> Result<FetchedManifest, ResolveErrorKind>;
    /// A small blob (a config), up to `limit` bytes.
    fn small_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, ResolveErrorKind>;
}

/// A repository in a registry.
pub struct RegistryRepo<'a> {
    /// The client.
    pub client: &'a RegistryClient,
    /// Canonical domain.
    pub domain: String,
    /// Repository path.
    pub path: String,
}

impl ImageRepo for RegistryRepo<'_> {
    fn manifest(&self, reference: &str) -> Result<FetchedManifest, ResolveErrorKind> {
        Ok(self.client.manifest(&self.domain, &self.path, reference)?)
    }

    fn small_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, ResolveErrorKind> {
        use std::io::Read;
        let body = self
            .client
            .blob(&self.domain, &self.path, &digest.to_string(), 0)?;
        let mut buf = Vec::new();
        body.reader
            .take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|e| {
                ResolveErrorKind::Registry(RegistryError::Transport {
                    url: digest.to_string(),
                    message: e.to_string(),
                })
            })?;
        Ok(buf)
    }
}

/// A local OCI image layout (skopeo's `oci:` transport).
pub struct LayoutRepo {
    /// The layout directory.
    pub dir: PathBuf,
}

#[derive(Deserialize)]
struct LayoutIndex {
    manifests: Vec<Descriptor>,
}

impl LayoutRepo {
    fn read_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, ResolveErrorKind> {
        use std::io::Read;
        let p = self.dir.join("blobs").join("sha256").join(digest.hex());
        let f = std::fs::File::open(&p)
            .map_err(|e| ResolveErrorKind::Layout(format!("{}: {e}", p.display())))?;
        let mut buf = Vec::new();
        f.take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|e| ResolveErrorKind::Layout(format!("{}: {e}", p.display())))?;
        Ok(buf)
    }
}

impl ImageRepo for LayoutRepo {
    fn manifest(&self, reference: &str) -> Result<FetchedManifest, ResolveErrorKind> {
        let (digest, media_type) = if let Ok(d) = reference.parse::<Digest>() {
            (d, None)
        } else {
            let p = self.dir.join("index.json");
            let text = std::fs::read(&p)
                .map_err(|e| ResolveErrorKind::Layout(format!("{}: {e}", p.display())))?;
            let index: LayoutIndex = serde_json::from_slice(&text)
                .map_err(|e| ResolveErrorKind::Layout(format!("{}: {e}", p.display())))?;
            let found: Vec<&Descriptor> = index
                .manifests
                .iter()
                .filter(|d| {
                    d.annotations
                        .as_ref()
                        .and_then(|a| a.get("org.opencontainers.image.ref.name"))
                        == Some(&reference.to_owned())
                })
                .collect();
            match found.as_slice() {
                [one] => (one.digest.clone(), Some(one.media_type.clone())),
                [] => {
                    return Err(ResolveErrorKind::Layout(format!(
                        "{} has no image named `{reference}`",
                        p.display()
                    )));
                }
                _ => {
                    return Err(ResolveErrorKind::Layout(format!(
                        "{} names `{reference}` more than once",
                        p.display()
                    )));
                }
            }
        };
        let bytes = self.read_blob(&digest, manifest::MAX_MANIFEST_BYTES)?;
        Ok(FetchedManifest {
            bytes,
            content_type: media_type,
            digest_header: Some(digest.to_string()),
            endpoint: self.dir.display().to_string(),
        })
    }

    fn small_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, ResolveErrorKind> {
        self.read_blob(digest, limit)
    }
}

/// Checks `fetched` against `expected` and the registry's digest header;
/// returns its digest.
pub(super) fn checked(
    fetched: &FetchedManifest,
    expected: Option<&Digest>,
    what: &str,
) -> Result<Digest, ResolveErrorKind> {
    let actual = Digest::of(&fetched.bytes);
    if let Some(e) = expected
        && e != &actual
    {
        return Err(ResolveErrorKind::DigestMismatch {
            what: what.to_owned(),
            expected: e.to_string(),
            actual,
        });
    }
    // A registry that states a digest must state the right one.
    if let Some(h) = &fetched.digest_header
        && h.trim() != actual.to_string()
    {
        return Err(ResolveErrorKind::DigestMismatch {
            what: format!("{what} (Docker-Content-Digest header)"),
            expected: h.trim().chars().take(80).collect(),
            actual,
        });
    }
    Ok(actual)
}
