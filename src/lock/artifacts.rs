//! What travels beside an image: its upstream attestation manifests (in-toto
//! SBOM and provenance, as buildx attaches them to an index) and its cosign
//! signature artifact. Both are locked by digest and checked like images.

use serde::Deserialize;

use super::{Blob, ImageRepo, ResolveErrorKind};
use crate::cosign::{self, CosignKey, Recheck, recheck};
use crate::digest::Digest;
use crate::manifest::{self, Descriptor, Parsed};
use crate::registry::FetchedManifest;

/// The annotation of a layer naming its in-toto predicate type.
pub const PREDICATE_TYPE: &str = "in-toto.io/predicate-type";

/// A layer of an artifact manifest.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ArtifactLayer {
    /// Digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Media type.
    pub media_type: String,
    /// The in-toto predicate type, for attestation layers.
    #[serde(default)]
    pub predicate_type: Option<String>,
}

/// An attestation or signature manifest, with its config and layers.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LockedArtifact {
    /// The manifest.
    pub manifest: Digest,
    /// Its size.
    pub manifest_size: u64,
    /// Its media type.
    pub manifest_media_type: String,
    /// The config blob.
    pub config: Digest,
    /// Its size.
    pub config_size: u64,
    /// Its media type.
    pub config_media_type: String,
    /// For a signature: the SHA-256 of the cosign public key it verified with.
    #[serde(default)]
    pub key: Option<Digest>,
    /// Layers, in manifest order.
    pub layers: Vec<ArtifactLayer>,
}

impl LockedArtifact {
    /// The manifest, config and layers as blobs.
    pub fn blobs(&self) -> Vec<Blob> {
        let mut out = vec![
            Blob {
                digest: self.manifest.clone(),
                size: self.manifest_size,
                media_type: self.manifest_media_type.clone(),
            },
            Blob {
                digest: self.config.clone(),
                size: self.config_size,
                media_type: self.config_media_type.clone(),
            },
        ];
        out.extend(self.layers.iter().map(|l| Blob {
            digest: l.digest.clone(),
            size: l.size,
            media_type: l.media_type.clone(),
        }));
        out
    }

    /// The predicate types of its layers, in order, without repeats.
    pub fn predicate_types(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for t in self
            .layers
            .iter()
            .filter_map(|l| l.predicate_type.as_deref())
        {
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }
}

/// Fetches the image manifest `reference` names, checks it against
/// `expected` (digest and size) where given, and records it.
fn artifact(
    repo: &dyn ImageRepo,
    reference: &str,
    expected: Option<(&Digest, u64)>,
    what: &str,
) -> Result<(LockedArtifact, FetchedManifest, Vec<Descriptor>), ResolveErrorKind> {
    let fetched = repo.manifest(reference)?;
    let actual = super::repo::checked(&fetched, expected.map(|(d, _)| d), what)?;
    if let Some((d, size)) = expected
        && fetched.bytes.len() as u64 != size
    {
        return Err(ResolveErrorKind::Platform(format!(
            "{what} {d} is {} bytes, the index says {size}",
            fetched.bytes.len()
        )));
    }
    match manifest::parse(&fetched.bytes, fetched.content_type.as_deref()) {
        Ok((media_type, Parsed::Image { config, layers })) => Ok((
            LockedArtifact {
                manifest: actual,
                manifest_size: fetched.bytes.len() as u64,
                manifest_media_type: media_type,
                config: config.digest,
                config_size: config.size,
                config_media_type: config.media_type,
                key: None,
                layers: layers
                    .iter()
                    .map(|l| ArtifactLayer {
                        digest: l.digest.clone(),
                        size: l.size,
                        media_type: l.media_type.clone(),
                        predicate_type: l
                            .annotations
                            .as_ref()
                            .and_then(|a| a.get(PREDICATE_TYPE).cloned()),
                    })
                    .collect(),
            },
            fetched,
            layers,
        )),
        Ok(_) => Err(ResolveErrorKind::Platform(format!(
            "{what} is an index, not an image manifest"
        ))),
        Err(source) => Err(ResolveErrorKind::Manifest {
            what: what.to_owned(),
            source,
        }),
    }
}

/// The attestation manifests an index attaches to `platform_manifest`.
pub fn attestations(
    repo: &dyn ImageRepo,
    index: &[Descriptor],
    platform_manifest: &Digest,
) -> Result<Vec<LockedArtifact>, ResolveErrorKind> {
    let mut out = Vec::new();
    for d in index {
        let Some(a) = &d.annotations else { continue };
        if a.get("vnd.docker.reference.type").map(String::as_str) != Some("attestation-manifest")
            || a.get("vnd.docker.reference.digest") != Some(&platform_manifest.to_string())
        {
            continue;
        }
        let what = format!("attestation manifest {}", d.digest);
        let (locked, _, _) = artifact(
            repo,
            &d.digest.to_string(),
            Some((&d.digest, d.size)),
            &what,
        )?;
        out.push(locked);
    }
    Ok(out)
}

/// Fetches the cosign signature artifact of `signed` and accepts it when
/// [`recheck`] does, its payloads read from the registry.
pub fn signature(
    repo: &dyn ImageRepo,
    signed: &Digest,
    key: &CosignKey,
    key_digest: &Digest,
) -> Result<LockedArtifact, ResolveErrorKind> {
    let tag = cosign::signature_tag(signed);
    let refuse = |m: String| ResolveErrorKind::Signature(format!("cosign signature {tag}: {m}"));
    let (mut locked, fetched, _) = artifact(repo, &tag, None, &format!("cosign signature {tag}"))
        .map_err(|e| match e {
        ResolveErrorKind::Registry(r) if r.not_found() => {
            refuse("not found: the image is not signed".into())
        }
        ResolveErrorKind::Layout(m) => refuse(format!("not found ({m})")),
        other => other,
    })?;
    let read = |d: &Digest, limit: u64| -> Result<Vec<u8>, ResolveErrorKind> {
        if d == &locked.manifest {
            return Ok(fetched.bytes.clone());
        }
        let payload = repo.small_blob(d, limit)?;
        let actual = Digest::of(&payload);
        if &actual != d {
            return Err(ResolveErrorKind::DigestMismatch {
                what: format!("cosign payload of {tag}"),
                expected: d.to_string(),
                actual,
            });
        }
        Ok(payload)
    };
    recheck(
        &locked.manifest,
        &locked.manifest_media_type,
        signed,
        key,
        &read,
    )
    .map_err(|e| match e {
        Recheck::Read(kind) => kind,
        Recheck::Refused(m) => refuse(m),
    })?;
    locked.key = Some(key_digest.clone());
    Ok(locked)
}
