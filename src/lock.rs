//! `bundle.lock`: every image's tag resolved to digests, per platform.
//!
//! Written with `toml_edit` in a fixed order and layout, so that the same
//! resolution always gives the same bytes and diffs stay small.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value, value};

use crate::digest::Digest;
use crate::manifest::{self, Descriptor, ManifestError, Parsed};
use crate::reference::ImageSource;
use crate::registry::{FetchedManifest, RegistryClient, RegistryError};
use crate::spec::{BundleSpec, ImageSpec, LocatedError, Platform};

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
        for p in &self.platforms {
            for b in std::iter::once(p.manifest_blob())
                .chain(std::iter::once(p.config_blob()))
                .chain(p.layers.iter().cloned())
            {
                if !out.iter().any(|o| o.digest == b.digest) {
                    out.push(b);
                }
            }
        }
        out
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
    #[error("{} images could not be resolved:\n{}{}", .0.len(), .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"), unreachable_hint(.0))]
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
}

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

/// Largest image config read while locking.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

fn checked(
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

/// The digest of what `image`'s tag (or pinned digest, or layout ref
/// name) points to now, checked like [`resolve_image`] checks it.
pub fn current_digest(repo: &dyn ImageRepo, image: &ImageSpec) -> Result<Digest, ResolveError> {
    top_document(repo, image).map(|(_, d)| d)
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

/// Resolves one image for `platforms`, reading from `repo`.
pub fn resolve_image(
    repo: &dyn ImageRepo,
    image: &ImageSpec,
    platforms: &[Platform],
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
        let (m_digest, m_size, m_type, config, layers) = match &parsed {
            Parsed::Image { config, layers } => (
                top_digest.clone(),
                top.bytes.len() as u64,
                top_type.clone(),
                config.clone(),
                layers.clone(),
            ),
            Parsed::Index { manifests } => {
                let entry = manifest::select_platform(manifests, platform)
                    .map_err(|m| wrap(ResolveErrorKind::Platform(m)))?;
                let fetched = repo.manifest(&entry.digest.to_string()).map_err(wrap)?;
                let what = format!("{platform} manifest");
                checked(&fetched, Some(&entry.digest), &what).map_err(wrap)?;
                if fetched.bytes.len() as u64 != entry.size {
                    return Err(wrap(ResolveErrorKind::Platform(format!(
                        "{what} {} is {} bytes, the index says {}",
                        entry.digest,
                        fetched.bytes.len(),
                        entry.size
                    ))));
                }
                // The index's media type for the entry is authoritative;
                // the served Content-Type must agree with it.
                if let Some(ct) = &fetched.content_type {
                    let ct = ct.split(';').next().unwrap_or(ct).trim();
                    if ct != entry.media_type && ct != "application/json" {
                        return Err(wrap(ResolveErrorKind::Manifest {
                            what,
                            source: ManifestError::Contradiction(format!(
                                "the index says `{}`, served as `{ct}`",
                                entry.media_type
                            )),
                        }));
                    }
                }
                match manifest::parse(&fetched.bytes, Some(&entry.media_type)) {
                    Ok((t, Parsed::Image { config, layers })) => {
                        (entry.digest.clone(), entry.size, t, config, layers)
                    }
                    Ok((_, Parsed::Index { .. })) => {
                        return Err(wrap(ResolveErrorKind::Manifest {
                            what,
                            source: ManifestError::Unsupported("nested index".into()),
                        }));
                    }
                    Err(source) => return Err(wrap(ResolveErrorKind::Manifest { what, source })),
                }
            }
        };
        // Read the config to confirm the platform: an index entry or a
        // single-platform image must not be taken for another platform.
        if config.size > MAX_CONFIG_BYTES {
            return Err(wrap(ResolveErrorKind::Platform(format!(
                "config {} is {} bytes, over the {MAX_CONFIG_BYTES} limit",
                config.digest, config.size
            ))));
        }
        let cfg = repo.small_blob(&config.digest, config.size).map_err(wrap)?;
        let actual = Digest::of(&cfg);
        if actual != config.digest || cfg.len() as u64 != config.size {
            return Err(wrap(ResolveErrorKind::DigestMismatch {
                what: format!("config of {platform}"),
                expected: config.digest.to_string(),
                actual,
            }));
        }
        let cp: manifest::ConfigPlatform = serde_json::from_slice(&cfg).map_err(|e| {
            wrap(ResolveErrorKind::Platform(format!(
                "config {} is not an image config: {e}",
                config.digest
            )))
        })?;
        if cp.os.as_deref() != Some(&platform.os)
            || cp.architecture.as_deref() != Some(&platform.architecture)
            || (platform.variant.is_some()
                && cp.variant != platform.variant
                && !(platform.architecture == "arm64" && cp.variant.is_none()))
        {
            return Err(wrap(ResolveErrorKind::Platform(format!(
                "the image is for {}/{}{}, not {platform}",
                cp.os.unwrap_or_default(),
                cp.architecture.unwrap_or_default(),
                cp.variant.map(|v| format!("/{v}")).unwrap_or_default()
            ))));
        }
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
        });
    }
    Ok(LockedImage {
        service: image.service.clone(),
        reference: image.written.clone(),
        name,
        digest: top_digest,
        size: top.bytes.len() as u64,
        media_type: top_type,
        platforms: locked_platforms,
    })
}

/// Where the lock of `spec` lives.
pub fn lock_path(spec: &BundleSpec) -> PathBuf {
    spec.root.join("bundle.lock")
}

impl Lockfile {
    /// Reads `path`; `Ok(None)` if it does not exist.
    pub fn load(path: &Path) -> Result<Option<Self>, LockError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LockError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let lock: Lockfile = toml::from_str(&text).map_err(|e| {
            LocatedError::at(path, &text, e.span(), e.message().trim_end().to_owned())
        })?;
        if lock.version != LOCK_VERSION {
            return Err(LockError::Version {
                path: path.to_owned(),
                found: lock.version,
            });
        }
        Ok(Some(lock))
    }

    /// The entry of `service`.
    pub fn image(&self, service: &str) -> Option<&LockedImage> {
        self.images.iter().find(|i| i.service == service)
    }

    /// Renders the lock in its one canonical form.
    pub fn render(&self) -> String {
        let mut doc = DocumentMut::new();
        doc.decor_mut().set_prefix(
            "# bundle.lock: written by `bale lock`. Commit it; do not edit it by hand.\n",
        );
        doc["version"] = value(self.version);
        let mut images = ArrayOfTables::new();
        let mut sorted: Vec<&LockedImage> = self.images.iter().collect();
        sorted.sort_by(|a, b| a.service.cmp(&b.service));
        for img in sorted {
            let mut t = Table::new();
            t["service"] = value(&img.service);
            t["reference"] = value(&img.reference);
            t["name"] = value(&img.name);
            t["digest"] = value(img.digest.to_string());
            t["size"] = value(img.size as i64);
            t["media-type"] = value(&img.media_type);
            let mut plats = ArrayOfTables::new();
            for p in &img.platforms {
                let mut pt = Table::new();
                pt["platform"] = value(&p.platform);
                pt["manifest"] = value(p.manifest.to_string());
                pt["manifest-size"] = value(p.manifest_size as i64);
                pt["manifest-media-type"] = value(&p.manifest_media_type);
                pt["config"] = value(p.config.to_string());
                pt["config-size"] = value(p.config_size as i64);
                pt["config-media-type"] = value(&p.config_media_type);
                let mut arr = Array::new();
                for l in &p.layers {
                    let mut it = InlineTable::new();
                    it.insert("digest", l.digest.to_string().into());
                    it.insert("size", (l.size as i64).into());
                    it.insert("media-type", l.media_type.as_str().into());
                    let mut v = Value::InlineTable(it);
                    v.decor_mut().set_prefix("\n  ");
                    arr.push_formatted(v);
                }
                arr.set_trailing_comma(true);
                arr.set_trailing("\n");
                pt["layers"] = Item::Value(Value::Array(arr));
                plats.push(pt);
            }
            t["platform"] = Item::ArrayOfTables(plats);
            images.push(t);
        }
        doc["image"] = Item::ArrayOfTables(images);
        doc.to_string()
    }

    /// What disagrees between `spec` and this lock; empty when they agree.
    pub fn disagreements(&self, spec: &BundleSpec) -> Vec<String> {
        let mut out = Vec::new();
        for image in &spec.images {
            let Some(l) = self.image(&image.service) else {
                out.push(format!("service `{}` is not locked", image.service));
                continue;
            };
            out.extend(entry_disagreement(l, image, &spec.platforms));
        }
        for l in &self.images {
            if spec.image(&l.service).is_none() {
                out.push(format!(
                    "service `{}` is locked but not in bundle.toml",
                    l.service
                ));
            }
        }
        out
    }
}

/// Why a lock entry no longer fits its bundle.toml image, if it does not.
fn entry_disagreement(
    l: &LockedImage,
    image: &ImageSpec,
    platforms: &[Platform],
) -> Option<String> {
    if l.reference != image.written {
        return Some(format!(
            "service `{}`: bundle.toml says `{}`, the lock has `{}`",
            image.service, image.written, l.reference
        ));
    }
    if let Some(pin) = &image.source.reference().digest
        && pin != &l.digest
    {
        return Some(format!(
            "service `{}`: pinned to {pin}, locked at {}",
            image.service, l.digest
        ));
    }
    let want: Vec<String> = platforms.iter().map(|p| p.to_string()).collect();
    let have: Vec<String> = l.platforms.iter().map(|p| p.platform.clone()).collect();
    if want != have {
        return Some(format!(
            "service `{}`: platforms {} in bundle.toml, {} in the lock",
            image.service,
            want.join(", "),
            have.join(", ")
        ));
    }
    None
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
                    .is_none_or(|l| entry_disagreement(l, image, &spec.platforms).is_some())
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
