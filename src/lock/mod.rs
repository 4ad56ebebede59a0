//! `bundle.lock`: every image's tag resolved to digests, per platform.
//!
//! Written with `toml_edit` in a fixed order and layout, so that the same
//! resolution always gives the same bytes and diffs stay small.

use std::path::PathBuf;

use serde::Deserialize;

use crate::digest::Digest;
use crate::manifest::ManifestError;
use crate::registry::RegistryError;
use crate::spec::{BundleSpec, ImageSpec, LocatedError};

mod artifacts;
mod file;
mod repo;
mod resolve;

pub use artifacts::{ArtifactLayer, LockedArtifact, PREDICATE_TYPE};

pub use repo::{ImageRepo, LayoutRepo, RegistryRepo};
pub use resolve::{MAX_CONFIG_BYTES, ResolveOptions, current_digest, resolve_image};

use file::entry_disagreement;

/// The lock format version this build writes and reads.
pub const LOCK_VERSION: i64 = 1;

/// A blob: digest, size, media type.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Blob {
    /// Digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Media type.
    pub media_type: String,
}

/// One platform of a locked image.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LockedPlatform {
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The image manifest.
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
    /// Layers, in manifest order.
    pub layers: Vec<Blob>,
    /// The upstream attestation manifests attached to this manifest.
    #[serde(default, rename = "attestation")]
    pub attestations: Vec<LockedArtifact>,
}

impl LockedPlatform {
    /// The manifest as a blob.
    pub fn manifest_blob(&self) -> Blob {
        Blob {
            digest: self.manifest.clone(),
            size: self.manifest_size,
            media_type: self.manifest_media_type.clone(),
        }
    }

    /// The config as a blob.
    pub fn config_blob(&self) -> Blob {
        Blob {
            digest: self.config.clone(),
            size: self.config_size,
            media_type: self.config_media_type.clone(),
        }
    }
}

/// One locked image.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LockedImage {
    /// Service name.
    pub service: String,
    /// The reference as written in bundle.toml.
    pub reference: String,
    /// Canonical name, `domain/path:tag`.
    pub name: String,
    /// What the tag pointed to: an index, a manifest list or a manifest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// One entry per requested platform, in bundle.toml's order.
    #[serde(rename = "platform")]
    pub platforms: Vec<LockedPlatform>,
    /// The cosign signature artifact of `digest`, where a key is required.
    #[serde(default)]
    pub signature: Option<LockedArtifact>,
}

impl LockedImage {
    /// Every blob of the image: the top document, then per platform its
    /// manifest, config and layers (deduplicated, in that order).
    pub fn blobs(&self) -> Vec<Blob> {
        let mut out = vec![Blob {
            digest: self.digest.clone(),
            size: self.size,
            media_type: self.media_type.clone(),
        }];
        let artifacts = self
            .platforms
            .iter()
            .flat_map(|p| p.attestations.iter())
            .chain(self.signature.iter())
            .flat_map(LockedArtifact::blobs);
        let images = self.platforms.iter().flat_map(|p| {
            std::iter::once(p.manifest_blob())
                .chain(std::iter::once(p.config_blob()))
                .chain(p.layers.iter().cloned())
        });
        for b in images.chain(artifacts) {
            if !out.iter().any(|o| o.digest == b.digest) {
                out.push(b);
            }
        }
        out
    }

    /// The digests among [`Self::blobs`] that are manifests (fetched from a
    /// registry's `/manifests/`).
    pub fn manifests(&self) -> Vec<&Digest> {
        std::iter::once(&self.digest)
            .chain(self.platforms.iter().map(|p| &p.manifest))
            .chain(
                self.platforms
                    .iter()
                    .flat_map(|p| p.attestations.iter().map(|a| &a.manifest)),
            )
            .chain(self.signature.iter().map(|s| &s.manifest))
            .collect()
    }
}

/// The whole lock.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lockfile {
    /// Format version.
    pub version: i64,
    /// Images, ordered by service.
    #[serde(default, rename = "image")]
    pub images: Vec<LockedImage>,
}

/// Errors about the lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Unreadable.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Malformed.
    #[error(transparent)]
    Invalid(#[from] LocatedError),
    /// Written by another format version.
    #[error("{}: lock format version {found} is not supported (this bale reads version {LOCK_VERSION})", path.display())]
    Version {
        /// The file.
        path: PathBuf,
        /// What it says.
        found: i64,
    },
    /// bundle.toml and bundle.lock disagree.
    #[error("{} is out of date with bundle.toml:\n{}\nrun `bale lock` to update it", path.display(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    OutOfDate {
        /// The lock file.
        path: PathBuf,
        /// Each disagreement.
        problems: Vec<String>,
    },
    /// No lock where one is required.
    #[error("{} does not exist: run `bale lock` first", path.display())]
    Missing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// `--update SERVICE` names no service.
    #[error("no service `{0}` in bundle.toml")]
    UnknownService(String),
    /// Resolving an image failed.
    #[error("{}{}", .0, unreachable_hint(std::slice::from_ref(.0)))]
    Resolve(#[from] ResolveError),
    /// Resolving several images failed; each is named.
    #[error("{} images could not be resolved:\n{}{}", .0.len(), summary(.0), unreachable_hint(.0))]
    Unresolved(Vec<ResolveError>),
}

impl LockError {
    /// The resolution failures inside, if any.
    pub fn resolve_errors(&self) -> &[ResolveError] {
        match self {
            LockError::Resolve(e) => std::slice::from_ref(e),
            LockError::Unresolved(v) => v,
            _ => &[],
        }
    }
}

/// One line per failure, except that the services whose registry's name
/// does not resolve share one line per host (offline, every service fails
/// alike: a list of near-identical lines says less than one).
fn summary(errors: &[ResolveError]) -> String {
    let mut by_host: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    let mut lines = Vec::new();
    for e in errors {
        let host = match &e.kind {
            ResolveErrorKind::Registry(crate::registry::RegistryError::Unresolvable { host }) => {
                Some(host.as_str())
            }
            _ => None,
        };
        match host {
            Some(h) => by_host.entry(h).or_default().push(&e.service),
            None => lines.push(format!("  - {e}")),
        }
    }
    for (host, services) in by_host {
        lines.push(format!(
            "  - cannot resolve {host} (no network, or no DNS for it): service{} {}",
            if services.len() == 1 { "" } else { "s" },
            services.join(", ")
        ));
    }
    lines.join("\n")
}

/// What to do when a registry could not be reached at all.
fn unreachable_hint(errors: &[ResolveError]) -> &'static str {
    let unreachable = errors
        .iter()
        .any(|e| matches!(&e.kind, ResolveErrorKind::Registry(r) if r.unreachable()));
    if unreachable {
        "\nhint: the registry could not be reached. Point bale at a mirror with `--mirror REGISTRY=HOST`, or list mirrors in config/bale.toml (see docs/cli.md, Settings)"
    } else {
        ""
    }
}

/// Why an image could not be resolved; names the service and image.
#[derive(Debug, thiserror::Error)]
#[error("service `{service}` ({image}): {kind}")]
pub struct ResolveError {
    /// Service.
    pub service: String,
    /// Canonical name or source.
    pub image: String,
    /// What went wrong.
    pub kind: ResolveErrorKind,
}

/// Kinds of [`ResolveError`].
#[derive(Debug, thiserror::Error)]
pub enum ResolveErrorKind {
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A document was rejected.
    #[error("{what}: {source}")]
    Manifest {
        /// Which document.
        what: String,
        /// Why.
        source: ManifestError,
    },
    /// Bytes that do not hash to what they should.
    #[error("{what}: expected {expected}, the bytes served hash to {actual}")]
    DigestMismatch {
        /// Which document.
        what: String,
        /// Expected digest.
        expected: String,
        /// Actual digest.
        actual: Digest,
    },
    /// Platform not available, or config disagreeing.
    #[error("{0}")]
    Platform(String),
    /// The local OCI layout is unusable.
    #[error("{0}")]
    Layout(String),
    /// A required upstream signature is missing or does not verify.
    #[error("{0}")]
    Signature(String),
}

/// Where the lock of `spec` lives.
pub fn lock_path(spec: &BundleSpec) -> PathBuf {
    spec.root.join("bundle.lock")
}
/// What `bale lock` did to one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Kept as locked.
    Kept(String),
    /// Resolved anew; the digest did not change.
    Unchanged(String),
    /// Resolved to a new digest (old, new).
    Updated(String, Option<Digest>, Digest),
}

/// Which services `bale lock` resolves anew.
#[derive(Debug, Clone, Default)]
pub enum Update {
    /// Only those missing or changed in bundle.toml.
    #[default]
    Missing,
    /// Every service.
    All,
    /// These services, plus those missing or changed.
    Services(Vec<String>),
}

/// Brings `existing` in line with `spec`, resolving through `resolve` the
/// services that need it. Pins that still fit are kept, as Cargo does.
pub fn relock(
    spec: &BundleSpec,
    existing: Option<&Lockfile>,
    update: &Update,
    resolve: &(dyn Fn(&ImageSpec) -> Result<LockedImage, ResolveError> + Sync),
) -> Result<(Lockfile, Vec<Change>), LockError> {
    if let Update::Services(names) = update {
        for n in names {
            if spec.image(n).is_none() {
                return Err(LockError::UnknownService(n.clone()));
            }
        }
    }
    let wanted = |service: &str| match update {
        Update::Missing => false,
        Update::All => true,
        Update::Services(names) => names.iter().any(|n| n == service),
    };
    // Resolve the images that need it two at a time: each is a handful of
    // small requests, so latency, not bandwidth, is what parallelism saves.
    let todo: Vec<&ImageSpec> = spec
        .images
        .iter()
        .filter(|image| {
            wanted(&image.service)
                || existing
                    .and_then(|l| l.image(&image.service))
                    .is_none_or(|l| entry_disagreement(l, image, spec).is_some())
        })
        .collect();
    let mut results: std::collections::BTreeMap<String, Result<LockedImage, ResolveError>> =
        std::thread::scope(|s| {
            let handles: Vec<_> = todo
                .chunks(todo.len().div_ceil(4).max(1))
                .map(|chunk| {
                    s.spawn(move || {
                        chunk
                            .iter()
                            .map(|image| (image.service.clone(), resolve(image)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
    let mut images = Vec::new();
    let mut changes = Vec::new();
    let mut failed = Vec::new();
    for image in &spec.images {
        let old = existing.and_then(|l| l.image(&image.service));
        match results.remove(&image.service) {
            None => match old {
                Some(old) if !todo.iter().any(|t| t.service == image.service) => {
                    images.push(old.clone());
                    changes.push(Change::Kept(image.service.clone()));
                }
                // Only a panicked resolver thread leaves no result.
                _ => failed.push(ResolveError {
                    service: image.service.clone(),
                    image: image.written.clone(),
                    kind: ResolveErrorKind::Platform("resolution did not complete".into()),
                }),
            },
            Some(Err(e)) => failed.push(e),
            Some(Ok(new)) => {
                changes.push(match old {
                    Some(o) if o == &new => Change::Unchanged(image.service.clone()),
                    _ => Change::Updated(
                        image.service.clone(),
                        old.map(|o| o.digest.clone()),
                        new.digest.clone(),
                    ),
                });
                images.push(new);
            }
        }
    }
    // Every failing service is named, not only the first.
    match failed.len() {
        0 => {}
        1 => return Err(LockError::Resolve(failed.remove(0))),
        _ => return Err(LockError::Unresolved(failed)),
    }
    images.sort_by(|a, b| a.service.cmp(&b.service));
    Ok((
        Lockfile {
            version: LOCK_VERSION,
            images,
        },
        changes,
    ))
}
