//! Resolution: a tag to the document it names, then each platform's
//! manifest and config, every byte checked against its digest.

use super::{
    Blob, ImageRepo, LockedImage, LockedPlatform, ResolveError, ResolveErrorKind, artifacts,
    repo::checked,
};
use crate::cosign::CosignKey;
use crate::digest::Digest;
use crate::manifest::{self, ManifestError, Parsed};
use crate::reference::ImageSource;
use crate::registry::FetchedManifest;
use crate::spec::{ImageSpec, Platform};

/// Largest image config read while locking.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// The digest of what `image`'s tag (or pinned digest, or layout ref
/// name) points to now, checked like [`resolve_image`] checks it.
pub fn current_digest(repo: &dyn ImageRepo, image: &ImageSpec) -> Result<Digest, ResolveError> {
    let (top, digest) = top_document(repo, image)?;
    // An answer that is not a manifest (an HTML page from a proxy, say) is
    // a failure to ask, never a tag that moved.
    manifest::parse(&top.bytes, top.content_type.as_deref()).map_err(|source| ResolveError {
        service: image.service.clone(),
        image: image.source.reference().canonical_name(),
        kind: ResolveErrorKind::Manifest {
            what: format!("the answer for {}", image.written),
            source,
        },
    })?;
    Ok(digest)
}

/// Fetches the document `image`'s reference names, checked against a
/// pinned digest and the registry's digest header; returns it and its digest.
fn top_document(
    repo: &dyn ImageRepo,
    image: &ImageSpec,
) -> Result<(FetchedManifest, Digest), ResolveError> {
    let reference = image.source.reference();
    let wrap = |kind: ResolveErrorKind| ResolveError {
        service: image.service.clone(),
        image: reference.canonical_name(),
        kind,
    };
    let by = match (&image.source, &reference.digest) {
        (_, Some(d)) => d.to_string(),
        (ImageSource::OciLayout { ref_name, .. }, None) => ref_name.clone(),
        (ImageSource::Registry(r), None) => r.tag.clone(),
    };
    let top = repo.manifest(&by).map_err(wrap)?;
    let digest =
        checked(&top, reference.digest.as_ref(), &format!("manifest {by}")).map_err(wrap)?;
    Ok((top, digest))
}

/// What is locked beside the images themselves.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResolveOptions<'a> {
    /// Lock the attestation manifests an index attaches to each platform.
    pub attestations: bool,
    /// Require a cosign signature that verifies with this key (and its
    /// file's SHA-256, recorded in the lock).
    pub cosign: Option<(&'a CosignKey, &'a Digest)>,
}

/// Resolves one image for `platforms`, reading from `repo`.
pub fn resolve_image(
    repo: &dyn ImageRepo,
    image: &ImageSpec,
    platforms: &[Platform],
    opts: &ResolveOptions<'_>,
) -> Result<LockedImage, ResolveError> {
    let reference = image.source.reference();
    let name = reference.canonical_name();
    let wrap = |kind: ResolveErrorKind| ResolveError {
        service: image.service.clone(),
        image: name.clone(),
        kind,
    };
    let (top, top_digest) = top_document(repo, image)?;
    let (top_type, parsed) =
        manifest::parse(&top.bytes, top.content_type.as_deref()).map_err(|source| {
            wrap(ResolveErrorKind::Manifest {
                what: format!("manifest {top_digest}"),
                source,
            })
        })?;
    let mut locked_platforms = Vec::new();
    for platform in platforms {
        let (m_digest, m_size, m_type, config, layers, attestations) = match &parsed {
            Parsed::Image { config, layers } => (
                top_digest.clone(),
                top.bytes.len() as u64,
                top_type.clone(),
                config.clone(),
                layers.clone(),
                Vec::new(),
            ),
            Parsed::Index { manifests } => {
                from_index(repo, manifests, platform, opts.attestations).map_err(wrap)?
            }
        };
        check_config(repo, &config, platform).map_err(wrap)?;
        locked_platforms.push(LockedPlatform {
            platform: platform.to_string(),
            manifest: m_digest,
            manifest_size: m_size,
            manifest_media_type: m_type,
            config: config.digest,
            config_size: config.size,
            config_media_type: config.media_type,
            layers: layers
                .into_iter()
                .map(|l| Blob {
                    digest: l.digest,
                    size: l.size,
                    media_type: l.media_type,
                })
                .collect(),
            attestations,
        });
    }
    let signature = match opts.cosign {
        Some((key, key_digest)) => {
            Some(artifacts::signature(repo, &top_digest, key, key_digest).map_err(wrap)?)
        }
        None => None,
    };
    Ok(LockedImage {
        service: image.service.clone(),
        reference: image.written.clone(),
        name,
        digest: top_digest,
        size: top.bytes.len() as u64,
        media_type: top_type,
        platforms: locked_platforms,
        signature,
    })
}

/// A platform's manifest as locked: digest, size, media type, config,
/// layers and attestation manifests.
type PlatformManifest = (
    Digest,
    u64,
    String,
    manifest::Descriptor,
    Vec<manifest::Descriptor>,
    Vec<super::LockedArtifact>,
);

/// `platform`'s manifest of an index, checked against the index's digest,
/// size and media type; with its attestations when asked for.
fn from_index(
    repo: &dyn ImageRepo,
    manifests: &[manifest::Descriptor],
    platform: &Platform,
    attestations: bool,
) -> Result<PlatformManifest, ResolveErrorKind> {
    let entry =
        manifest::select_platform(manifests, platform).map_err(ResolveErrorKind::Platform)?;
    let fetched = repo.manifest(&entry.digest.to_string())?;
    let what = format!("{platform} manifest");
    checked(&fetched, Some(&entry.digest), &what)?;
    if fetched.bytes.len() as u64 != entry.size {
        return Err(ResolveErrorKind::Platform(format!(
            "{what} {} is {} bytes, the index says {}",
            entry.digest,
            fetched.bytes.len(),
            entry.size
        )));
    }
    // The index's media type for the entry is authoritative; the served
    // Content-Type must agree with it.
    if let Some(ct) = &fetched.content_type {
        let ct = ct.split(';').next().unwrap_or(ct).trim();
        if ct != entry.media_type && ct != "application/json" {
            return Err(ResolveErrorKind::Manifest {
                what,
                source: ManifestError::Contradiction(format!(
                    "the index says `{}`, served as `{ct}`",
                    entry.media_type
                )),
            });
        }
    }
    let attestations = if attestations {
        artifacts::attestations(repo, manifests, &entry.digest)?
    } else {
        Vec::new()
    };
    match manifest::parse(&fetched.bytes, Some(&entry.media_type)) {
        Ok((t, Parsed::Image { config, layers })) => Ok((
            entry.digest.clone(),
            entry.size,
            t,
            config,
            layers,
            attestations,
        )),
        Ok((_, Parsed::Index { .. })) => Err(ResolveErrorKind::Manifest {
            what,
            source: ManifestError::Unsupported("nested index".into()),
        }),
        Err(source) => Err(ResolveErrorKind::Manifest { what, source }),
    }
}

/// Reads the config to confirm the platform: an index entry or a
/// single-platform image must not be taken for another platform.
fn check_config(
    repo: &dyn ImageRepo,
    config: &manifest::Descriptor,
    platform: &Platform,
) -> Result<(), ResolveErrorKind> {
    if config.size > MAX_CONFIG_BYTES {
        return Err(ResolveErrorKind::Platform(format!(
            "config {} is {} bytes, over the {MAX_CONFIG_BYTES} limit",
            config.digest, config.size
        )));
    }
    let cfg = repo.small_blob(&config.digest, config.size)?;
    let actual = Digest::of(&cfg);
    if actual != config.digest || cfg.len() as u64 != config.size {
        return Err(ResolveErrorKind::DigestMismatch {
            what: format!("config of {platform}"),
            expected: config.digest.to_string(),
            actual,
        });
    }
    let cp: manifest::ConfigPlatform = serde_json::from_slice(&cfg).map_err(|e| {
        ResolveErrorKind::Platform(format!(
            "config {} is not an image config: {e}",
            config.digest
        ))
    })?;
    if cp.os.as_deref() != Some(&platform.os)
        || cp.architecture.as_deref() != Some(&platform.architecture)
        || (platform.variant.is_some()
            && cp.variant != platform.variant
            && !(platform.architecture == "arm64" && cp.variant.is_none()))
    {
        return Err(ResolveErrorKind::Platform(format!(
            "the image is for {}/{}{}, not {platform}",
            cp.os.unwrap_or_default(),
            cp.architecture.unwrap_or_default(),
            cp.variant.map(|v| format!("/{v}")).unwrap_or_default()
        )));
    }
    Ok(())
}
