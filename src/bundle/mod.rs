//! The bundle file: a deterministic, uncompressed tar.
//!
//! Entry order (see docs/bundle-format.md):
//!
//! ```text
//! bale-manifest            every other entry: sha256 and size (sha256sum -c format)
//! bale-manifest.minisig    minisign signature over bale-manifest (absent if unsigned)
//! bale/images.json         the images: service, name, platform, digests
//! oci-layout, index.json   an OCI image layout of every image and platform
//! manifest.json            `docker load` index (first platform)
//! blobs/sha256/<hex>       every blob once, by digest
//! bale/bundle.toml, bale/bundle.lock
//! files/<target>           overlays and the compose file
//! ```

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::digest::Digest;
use crate::lock::Lockfile;
use crate::sign::{SignError, SigningKey};
use crate::spec::BundleSpec;
use crate::store::Store;

pub mod checks;
pub mod cyclonedx;
mod layout;
mod licenses;
pub mod mapped;
mod os_packages;
mod overlays;
mod records;
pub mod sbom;
mod signed;
pub mod source;
pub mod split;
mod write;

use write::write_tar;

pub use overlays::check_templates;
pub use records::{
    AttestationRecord, FileRecord, ImageRecord, ImagesFile, SignatureRecord, cosign_key_path,
    image_records,
};
pub use sbom::SBOM_PATH;
pub use signed::{BaseRef, Manifest, ManifestEntry, parse_trusted_comment, trusted_comment};

use layout::{json, layout_entries};
use overlays::{check_compose, overlay_entries};

/// The signed manifest's entry name.
pub const MANIFEST_PATH: &str = "bale-manifest";
/// The signature's entry name (`minisign -Vm bale-manifest` finds it).
pub const SIGNATURE_PATH: &str = "bale-manifest.minisig";
/// The image list's entry name.
pub const IMAGES_PATH: &str = "bale/images.json";
/// The bundle's own OpenVEX document (`[bundle] vex`), where it has one.
pub const VEX_PATH: &str = "bale/vex.json";
/// Prefix of overlay entries.
pub const FILES_PREFIX: &str = "files/";
/// Largest manifest or signature a reader accepts.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

/// Errors building a bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Blobs the store lacks.
    #[error("{} blob(s) are not in the store {}; run `bale fetch` (or build without --offline):\n{}", missing.len(), store.display(), missing.iter().map(|m| format!("  - {m}")).collect::<Vec<_>>().join("\n"))]
    Missing {
        /// The store.
        store: PathBuf,
        /// `digest (image)` for each.
        missing: Vec<String>,
    },
    /// An overlay that cannot go into a bundle.
    #[error("overlay {}: {message}", path.display())]
    Overlay {
        /// The offending path.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A store blob that no longer hashes to its name.
    #[error(
        "store blob {expected} hashes to {actual}: the store is corrupt; delete the file and fetch again"
    )]
    Corrupt {
        /// Its name.
        expected: Digest,
        /// What it hashes to.
        actual: Digest,
    },
    /// A source changed while the bundle was written.
    #[error("{}: changed while the bundle was being written", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// Signing.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// A template that does not render with placeholder values.
    #[error("template {}:{line}:{column}: {message}", path.display())]
    Template {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (0: unknown).
        column: usize,
        /// Why.
        message: String,
    },
    /// A compose file that would need a registry at install time.
    #[error("compose file {}: {message}", path.display())]
    Compose {
        /// The compose file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An image's layers could not be read for its packages.
    #[error(transparent)]
    Inventory(#[from] crate::inventory::InventoryError),
    /// The base given for a delta cannot be one.
    #[error("--base {path}: {message}")]
    Base {
        /// The base bundle.
        path: String,
        /// Why not.
        message: String,
    },
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Checks, before any work, that a bundle can be written at `out`: its
/// directory exists and is a directory.
pub fn check_output(out: &Path) -> Result<(), BundleError> {
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(BundleError::Io {
            path: dir.to_owned(),
            source: io::Error::other(
                "is not a directory: -o must name a file in an existing directory",
            ),
        }),
        Err(e) => Err(BundleError::Io {
            path: dir.to_owned(),
            source: io::Error::new(
                e.kind(),
                format!(
                    "{e}: the output directory must exist (create it, or give -o another path)"
                ),
            ),
        }),
    }
}

pub(super) enum Source {
    Bytes(Vec<u8>),
    Blob(Digest),
    File(PathBuf),
}

pub(super) struct Entry {
    path: String,
    mode: u32,
    size: u64,
    sha256: Digest,
    source: Source,
}

impl Entry {
    fn bytes(path: &str, bytes: Vec<u8>) -> Entry {
        Entry {
            path: path.to_owned(),
            mode: 0o644,
            size: bytes.len() as u64,
            sha256: Digest::of(&bytes),
            source: Source::Bytes(bytes),
        }
    }
}

/// What a build produced.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    /// The bundle file.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// SHA-256 of the whole file.
    pub sha256: Digest,
    /// SHA-256 of the signed manifest.
    pub manifest: Digest,
    /// Entries the manifest lists and the bundle carries, the manifest
    /// and its signature not counted (as `bale verify` counts them).
    pub entries: usize,
    /// Signing key ID, if signed.
    pub key_id: Option<String>,
}

pub(super) fn hash_file(path: &Path) -> Result<(Digest, u64), BundleError> {
    crate::digest::hash_file(path).map_err(io_err(path))
}

/// Builds the bundle of `spec` and `lock` from `store` into `output`,
/// signed with `key` when given. With `base` (a bundle's manifest and its
/// digest), a delta: what the base holds is signed but not carried. The
/// file appears only when complete. In steps: the base and the store
/// checked, the entries gathered, the manifest signed, the tar written.
pub fn build(
    spec: &BundleSpec,
    lock: &Lockfile,
    store: &Store,
    output: &Path,
    key: Option<&SigningKey>,
    base: Option<(&Manifest, &Digest)>,
) -> Result<BuildReport, BundleError> {
    check_base(spec, base)?;
    let missing = missing_blobs(lock, store, base);
    if !missing.is_empty() {
        return Err(BundleError::Missing {
            store: store.root().to_owned(),
            missing,
        });
    }
    let (images, entries) = gather(spec, lock, store)?;
    let (manifest, manifest_bytes, mut entries) = manifest_of(spec, &images, entries, base);
    let manifest_digest = Digest::of(&manifest_bytes);
    let mut head = vec![Entry::bytes(MANIFEST_PATH, manifest_bytes.clone())];
    if let Some(k) = key {
        let comment = trusted_comment(&manifest.name, &manifest.version, &manifest_digest);
        head.push(Entry::bytes(
            SIGNATURE_PATH,
            k.sign(&manifest_bytes, &comment).into_bytes(),
        ));
    }
    let listed = entries.len();
    head.append(&mut entries);
    let (size, sha256) = write_tar(&head, store, output)?;
    Ok(BuildReport {
        path: output.to_owned(),
        size,
        sha256,
        manifest: manifest_digest,
        entries: listed,
        key_id: key.map(SigningKey::key_id),
    })
}

/// A base must be a full bundle of the same name.
fn check_base(spec: &BundleSpec, base: Option<(&Manifest, &Digest)>) -> Result<(), BundleError> {
    let Some((m, _)) = base else {
        return Ok(());
    };
    let refuse = |message: String| {
        Err(BundleError::Base {
            path: format!("{} {}", m.name, m.version),
            message,
        })
    };
    if m.base.is_some() {
        return refuse("it is a delta itself: build against the full bundle".into());
    }
    if m.name != spec.name {
        return refuse(format!("it is bundle `{}`, not `{}`", m.name, spec.name));
    }
    Ok(())
}

/// The locked blobs the store lacks (a delta need not hold what its base
/// provides), as `digest (image)`.
fn missing_blobs(
    lock: &Lockfile,
    store: &Store,
    base: Option<(&Manifest, &Digest)>,
) -> Vec<String> {
    lock.images
        .iter()
        .flat_map(|img| {
            img.blobs()
                .into_iter()
                .filter(|b| !store.has(&b.digest, b.size))
                .filter(|b| {
                    !base.is_some_and(|(m, _)| m.carries(&b.digest.blob_path(), &b.digest, b.size))
                })
                .map(|b| format!("{} ({})", b.digest, img.name))
                .collect::<Vec<_>>()
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Every entry after the manifest and signature, in bundle order, with
/// the image list: templates and the compose file checked first.
fn gather(
    spec: &BundleSpec,
    lock: &Lockfile,
    store: &Store,
) -> Result<(ImagesFile, Vec<Entry>), BundleError> {
    let key_of = |service: &str| spec.image(service).and_then(|i| i.cosign_key.clone());
    let records = image_records(lock, &key_of);
    let (layout, blobs) = layout_entries(lock, &records);
    let rendered_compose = check_templates(spec, lock)?;
    let names = lock.images.iter().map(|i| i.name.clone()).collect();
    check_compose(spec, rendered_compose.as_deref(), &names)?;
    let (files, file_records) = overlay_entries(spec)?;
    let images = ImagesFile {
        format: 1,
        name: spec.name.clone(),
        version: spec.version.to_string(),
        images: records,
        files: file_records,
        compose: spec.compose.as_ref().map(|c| c.target.clone()),
        project: spec.compose.as_ref().map(|c| c.project.clone()),
    };
    let read = |p: &Path| std::fs::read(p).map_err(io_err(p));
    let mut entries = vec![Entry::bytes(IMAGES_PATH, json(&images))];
    entries.extend(layout);
    for (digest, size) in &blobs {
        entries.push(Entry {
            path: digest.blob_path(),
            mode: 0o644,
            size: *size,
            sha256: digest.clone(),
            source: Source::Blob(digest.clone()),
        });
    }
    entries.push(Entry::bytes("bale/bundle.toml", read(&spec.path)?));
    let lock_bytes = read(&crate::lock::lock_path(spec))?;
    let lock_digest = Digest::of(&lock_bytes);
    entries.push(Entry::bytes("bale/bundle.lock", lock_bytes));
    entries.extend(files);
    for rel in spec.cosign_keys() {
        entries.push(Entry::bytes(
            &cosign_key_path(rel),
            read(&spec.source_path(rel))?,
        ));
    }
    let sbom = sbom::document(spec, lock, &images.images, &entries, store, &lock_digest)?;
    entries.push(Entry::bytes(SBOM_PATH, sbom));
    if let Some(vex) = &spec.vex {
        entries.push(Entry::bytes(VEX_PATH, read(&spec.source_path(vex))?));
    }
    Ok((images, entries))
}

/// The manifest of `entries` and its bytes, with the entries the bundle
/// carries. A delta leaves out the blobs and plain files its base holds
/// with the same digest; templates and bale's own entries are always
/// carried.
fn manifest_of(
    spec: &BundleSpec,
    images: &ImagesFile,
    mut entries: Vec<Entry>,
    base: Option<(&Manifest, &Digest)>,
) -> (Manifest, Vec<u8>, Vec<Entry>) {
    let templates: BTreeSet<String> = images
        .files
        .iter()
        .filter(|f| f.template)
        .map(|f| format!("{FILES_PREFIX}{}", f.target))
        .collect();
    let from_base = |e: &Entry| {
        base.is_some_and(|(m, _)| {
            (e.path.starts_with("blobs/")
                || (e.path.starts_with(FILES_PREFIX) && !templates.contains(&e.path)))
                && m.carries(&e.path, &e.sha256, e.size)
        })
    };
    let manifest = Manifest {
        name: spec.name.clone(),
        version: spec.version.to_string(),
        entries: entries
            .iter()
            .map(|e| ManifestEntry {
                path: e.path.clone(),
                sha256: e.sha256.clone(),
                size: e.size,
                from_base: from_base(e),
            })
            .collect(),
        base: base.map(|(m, d)| BaseRef {
            name: m.name.clone(),
            version: m.version.clone(),
            manifest: d.clone(),
        }),
    };
    let carried: BTreeSet<&str> = manifest
        .entries
        .iter()
        .filter(|e| e.from_base)
        .map(|e| e.path.as_str())
        .collect();
    entries.retain(|e| !carried.contains(e.path.as_str()));
    let manifest_bytes = manifest.render().into_bytes();
    (manifest, manifest_bytes, entries)
}
