//! What a verified bundle offers as a registry: each image under its name
//! without the registry host, its tags, the manifests reachable from them
//! (bytes as pulled, read into memory: they are small and capped) and the
//! blobs they reference (byte ranges of the bundle file, never copied).

use std::collections::{BTreeMap, BTreeSet};

use crate::digest::Digest;
use crate::manifest::{self, MAX_MANIFEST_BYTES, Parsed};
use crate::reference::Reference;
use crate::verify::{OpenBundle, OpenError};

/// Why a verified bundle cannot be offered as a registry's content.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The bundle did not verify, or could not be read.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The bundle's content cannot be served as a registry.
    #[error("{0}")]
    Bundle(String),
    /// Two images would be served under one name with different content.
    #[error(
        "{first} and {second} would both be served as {served} with different content: a registry name has no host to tell them apart"
    )]
    Conflict {
        /// The name both would have.
        served: String,
        /// The first image.
        first: String,
        /// The second image.
        second: String,
    },
}

/// A manifest or index, as stored in the bundle.
#[derive(Clone, Debug)]
pub struct StoredManifest {
    /// Its media type: the document's own `mediaType`, or its shape's.
    pub media_type: String,
    /// The bytes, exactly as pulled.
    pub bytes: bytes::Bytes,
}

/// Where a blob lies in the bundle file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Offset of its first byte.
    pub offset: u64,
    /// Its size.
    pub size: u64,
}

/// One repository.
#[derive(Clone, Debug, Default)]
pub struct Repository {
    /// Tag to the digest it names (an index where the tag named one).
    pub tags: BTreeMap<String, Digest>,
    /// Manifests that may be fetched from this repository.
    pub manifests: BTreeSet<Digest>,
    /// Blobs that may be fetched from this repository.
    pub blobs: BTreeSet<Digest>,
}

/// The whole read-only registry.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// Repositories by name (`library/redis`).
    pub repositories: BTreeMap<String, Repository>,
    /// Every manifest of the bundle, by digest.
    pub manifests: BTreeMap<Digest, StoredManifest>,
    /// Every blob of the bundle, by digest.
    pub blobs: BTreeMap<Digest, Span>,
}

/// The name an image is served under: its canonical name without the
/// registry host (`docker.io/library/redis:8.2-alpine` → `library/redis`,
/// `8.2-alpine`).
pub fn served_name(canonical: &str) -> Result<(String, String), String> {
    let r: Reference = canonical.parse().map_err(|e| format!("{e}"))?;
    Ok((r.path, r.tag))
}

impl Catalog {
    /// Builds the catalog of `bundle`. Every manifest is read again and
    /// re-hashed against the signed manifest; two images that would be
    /// served under one name and tag with different content are refused.
    pub fn of(bundle: &OpenBundle) -> Result<Catalog, CatalogError> {
        let mut c = Catalog::default();
        let mut owner: BTreeMap<(String, String), String> = BTreeMap::new();
        for r in &bundle.images.images {
            let (repo, tag) = served_name(&r.name)
                .map_err(|m| CatalogError::Bundle(format!("{}: {m}", r.name)))?;
            if let Some(prev) = owner.get(&(repo.clone(), tag.clone())) {
                let same =
                    c.repositories.get(&repo).and_then(|x| x.tags.get(&tag)) == Some(&r.digest);
                if !same {
                    return Err(CatalogError::Conflict {
                        served: format!("{repo}:{tag}"),
                        first: prev.clone(),
                        second: r.name.clone(),
                    });
                }
            }
            owner.insert((repo.clone(), tag.clone()), r.name.clone());
            let mut entry = c.repositories.remove(&repo).unwrap_or_default();
            entry.tags.insert(tag, r.digest.clone());
            c.add_tree(bundle, &mut entry, &r.digest)?;
            // Served where cosign looks for it, so that `cosign verify`
            // works against the site's copy too.
            if let Some(sig) = &r.signature {
                entry.tags.insert(
                    crate::cosign::signature_tag(&r.digest),
                    sig.manifest.clone(),
                );
                c.add_tree(bundle, &mut entry, &sig.manifest)?;
            }
            c.repositories.insert(repo, entry);
        }
        Ok(c)
    }

    /// Adds `top` and everything it references that the bundle holds.
    fn add_tree(
        &mut self,
        bundle: &OpenBundle,
        repo: &mut Repository,
        top: &Digest,
    ) -> Result<(), CatalogError> {
        let mut todo = vec![top.clone()];
        while let Some(d) = todo.pop() {
            if !repo.manifests.insert(d.clone()) {
                continue;
            }
            let stored = match self.manifests.get(&d) {
                Some(s) => s.clone(),
                None => {
                    let s = read_manifest(bundle, &d)?;
                    self.manifests.insert(d.clone(), s.clone());
                    s
                }
            };
            let parsed = manifest::parse(&stored.bytes, Some(&stored.media_type))
                .map_err(|e| CatalogError::Bundle(format!("{}: {e}", d.blob_path())))?
                .1;
            match parsed {
                // An index may name platforms the bundle did not lock;
                // only those it holds are served (the rest are unknown).
                Parsed::Index { manifests } => {
                    for m in manifests {
                        if bundle.span(&m.digest.blob_path()).is_ok() {
                            todo.push(m.digest);
                        }
                    }
                }
                Parsed::Image { config, layers } => {
                    for b in std::iter::once(config).chain(layers) {
                        let (offset, size) = bundle.span(&b.digest.blob_path()).map_err(|_| {
                            CatalogError::Bundle(format!(
                                "{} references {}, which the bundle lacks",
                                d.blob_path(),
                                b.digest
                            ))
                        })?;
                        self.blobs.insert(b.digest.clone(), Span { offset, size });
                        repo.blobs.insert(b.digest);
                    }
                }
            }
        }
        Ok(())
    }
}

fn read_manifest(bundle: &OpenBundle, d: &Digest) -> Result<StoredManifest, CatalogError> {
    let path = d.blob_path();
    let (_, size) = bundle
        .span(&path)
        .map_err(|_| CatalogError::Bundle(format!("{path} is not in the bundle")))?;
    if size > MAX_MANIFEST_BYTES {
        return Err(CatalogError::Bundle(format!(
            "{path}: a manifest of {size} bytes (over {MAX_MANIFEST_BYTES})"
        )));
    }
    let mut bytes = Vec::new();
    bundle.copy_entry(&path, &mut bytes)?;
    let (media_type, _) =
        manifest::parse(&bytes, None).map_err(|e| CatalogError::Bundle(format!("{path}: {e}")))?;
    Ok(StoredManifest {
        media_type,
        bytes: bytes.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_their_registry_host() {
        assert_eq!(
            served_name("docker.io/library/redis:8.2-alpine"),
            Ok(("library/redis".into(), "8.2-alpine".into()))
        );
        assert_eq!(
            served_name("127.0.0.1:5000/stack/web:1.0"),
            Ok(("stack/web".into(), "1.0".into()))
        );
    }
}
