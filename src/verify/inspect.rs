//! `bale inspect`: a bundle's manifest and image list, shown.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{VerifyError, read_entry, scan};
use crate::bundle::{
    self, IMAGES_PATH, ImageRecord, ImagesFile, MANIFEST_PATH, MAX_MANIFEST_BYTES, Manifest,
    SBOM_PATH, SIGNATURE_PATH,
};
use crate::digest::Digest;

/// What `bale inspect` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// Bundle name.
    pub name: String,
    /// Bundle version.
    pub version: String,
    /// SHA-256 of the manifest.
    pub manifest_digest: Digest,
    /// Whether a signature entry is present (not checked: see `bale verify`).
    pub signed: bool,
    /// Images.
    pub images: Vec<ImageRecord>,
    /// Overlay files.
    pub files: Vec<bundle::FileRecord>,
    /// Compose target.
    pub compose: Option<String>,
    /// Sum of every entry's size.
    pub total_size: u64,
    /// Sum of the images' sizes, counting shared blobs once per image.
    pub images_size: u64,
    /// Bytes of image blobs, each counted once.
    pub unique_size: u64,
    /// Layers used by more than one image: digest → services.
    pub shared_layers: BTreeMap<Digest, Vec<String>>,
    /// For a delta: the base it was built against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<bundle::BaseRef>,
    /// For a delta: the entries the base provides.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from_base: Vec<String>,
}

/// Errors of inspect.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// Unreadable file.
    #[error(transparent)]
    Io(#[from] VerifyError),
    /// Not a readable bundle.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// A bundle opened for reading without trust: its bytes, raw entries,
/// the manifest's bytes and the manifest.
struct Opened {
    file: crate::bundle::source::Source,
    entries: Vec<super::RawEntry>,
    manifest_bytes: Vec<u8>,
    manifest: Manifest,
}

fn open_unverified(path: &Path) -> Result<Opened, InspectError> {
    let invalid = |message: String| InspectError::Invalid {
        path: path.to_owned(),
        message,
    };
    super::scan::check_input(path)?;
    let file = crate::bundle::split::open(path).map_err(|source| {
        InspectError::Io(VerifyError::Io {
            path: path.to_owned(),
            source,
        })
    })?;
    let (entries, _) = scan(&file, file.len());
    let m = entries
        .iter()
        .find(|e| e.path.as_deref() == Ok(MANIFEST_PATH))
        .ok_or_else(|| invalid("no bale-manifest: not a bale bundle".into()))?;
    let manifest_bytes = read_entry(&file, m, MAX_MANIFEST_BYTES).map_err(invalid)?;
    let manifest = std::str::from_utf8(&manifest_bytes)
        .map_err(|_| "manifest is not UTF-8".to_owned())
        .and_then(Manifest::parse)
        .map_err(invalid)?;
    Ok(Opened {
        file,
        entries,
        manifest_bytes,
        manifest,
    })
}

/// Reads a bundle's manifest and image list. Checks only what it reads
/// (the image list against the manifest); `verify` checks everything.
pub fn inspect(path: &Path) -> Result<Inspection, InspectError> {
    let invalid = |message: String| InspectError::Invalid {
        path: path.to_owned(),
        message,
    };
    let Opened {
        file,
        entries,
        manifest_bytes,
        manifest,
    } = open_unverified(path)?;
    let find = |name: &str| entries.iter().find(|e| e.path.as_deref() == Ok(name));
    let i = find(IMAGES_PATH).ok_or_else(|| invalid(format!("no {IMAGES_PATH}")))?;
    let images_bytes = read_entry(&file, i, MAX_MANIFEST_BYTES).map_err(invalid)?;
    let listed = manifest.entries.iter().find(|e| e.path == IMAGES_PATH);
    if listed.map(|e| &e.sha256) != Some(&Digest::of(&images_bytes)) {
        return Err(invalid(format!(
            "{IMAGES_PATH} does not match the manifest"
        )));
    }
    let images: ImagesFile =
        serde_json::from_slice(&images_bytes).map_err(|e| invalid(e.to_string()))?;
    let sizes: BTreeMap<String, u64> = manifest
        .entries
        .iter()
        .filter_map(|e| {
            e.path
                .strip_prefix("blobs/sha256/")
                .map(|h| (h.to_owned(), e.size))
        })
        .collect();
    let mut users: BTreeMap<Digest, BTreeSet<String>> = BTreeMap::new();
    for r in &images.images {
        for l in &r.layers {
            users
                .entry(l.clone())
                .or_default()
                .insert(r.service.clone());
        }
    }
    let shared_layers = users
        .into_iter()
        .filter(|(_, s)| s.len() > 1)
        .map(|(d, s)| (d, s.into_iter().collect()))
        .collect();
    Ok(Inspection {
        name: manifest.name,
        version: manifest.version,
        manifest_digest: Digest::of(&manifest_bytes),
        signed: find(SIGNATURE_PATH).is_some(),
        images_size: images.images.iter().map(|r| r.size).sum(),
        unique_size: sizes.values().sum(),
        total_size: manifest.entries.iter().map(|e| e.size).sum::<u64>()
            + manifest_bytes.len() as u64,
        images: images.images,
        files: images.files,
        compose: images.compose,
        shared_layers,
        from_base: manifest
            .entries
            .iter()
            .filter(|e| e.from_base)
            .map(|e| e.path.clone())
            .collect(),
        base: manifest.base,
    })
}

/// The bundle's SPDX document (`bale/sbom.spdx.json`), checked against
/// the manifest's digest for it and the manifest against its signature
/// with `key` (`allow_unsigned` without a key: unchecked). Returns it with
/// the signature's verdict, as `bale verify` words it.
pub fn sbom(
    path: &Path,
    key: Option<&crate::sign::VerifyingKey>,
    allow_unsigned: bool,
) -> Result<(Vec<u8>, &'static str), InspectError> {
    let e = evidence(path, key, allow_unsigned)?;
    Ok((e.sbom, e.signature))
}

/// What `bale scan` reads from a bundle, each checked as [`sbom`] checks
/// the SBOM.
pub struct Evidence {
    /// The SPDX document.
    pub sbom: Vec<u8>,
    /// The bundle's OpenVEX document, where it carries one.
    pub vex: Option<Vec<u8>>,
    /// The signature's verdict.
    pub signature: &'static str,
}

/// The SBOM and VEX document of the bundle at `path`, checked against the
/// manifest, and the manifest against its signature.
pub fn evidence(
    path: &Path,
    key: Option<&crate::sign::VerifyingKey>,
    allow_unsigned: bool,
) -> Result<Evidence, InspectError> {
    let invalid = |message: String| InspectError::Invalid {
        path: path.to_owned(),
        message,
    };
    let o = open_unverified(path)?;
    let sig = o
        .entries
        .get(1)
        .filter(|e| e.path.as_deref() == Ok(super::SIGNATURE_PATH));
    let opts = super::VerifyOptions {
        key,
        allow_unsigned,
        threads: 1,
        base: None,
    };
    let signature = super::check_signature(
        &o.file,
        sig,
        &o.manifest,
        &o.manifest_bytes,
        &Digest::of(&o.manifest_bytes),
        &opts,
    )
    .map_err(|p| invalid(p.message))?;
    let checked = |name: &str, max: u64| -> Result<Option<Vec<u8>>, InspectError> {
        let Some(listed) = o.manifest.entries.iter().find(|e| e.path == name) else {
            return Ok(None);
        };
        let e = o
            .entries
            .iter()
            .find(|e| e.path.as_deref() == Ok(name))
            .ok_or_else(|| invalid(format!("{name} is listed but missing")))?;
        let bytes = read_entry(&o.file, e, max).map_err(invalid)?;
        if Digest::of(&bytes) != listed.sha256 {
            return Err(invalid(format!("{name} does not match the manifest")));
        }
        Ok(Some(bytes))
    };
    let sbom = checked(SBOM_PATH, crate::bundle::sbom::MAX_ATTESTATION_BYTES * 4)?
        .ok_or_else(|| invalid(format!("no {SBOM_PATH}: built by a bale without SBOMs")))?;
    let vex = checked(crate::bundle::VEX_PATH, crate::vex::MAX_VEX_BYTES)?;
    Ok(Evidence {
        sbom,
        vex,
        signature,
    })
}

/// A bundle's signed manifest (not checked against its signature: for a
/// build's base, which the release engineer made) and its digest.
pub fn manifest_of(path: &Path) -> Result<(Manifest, Digest), InspectError> {
    let o = open_unverified(path)?;
    Ok((o.manifest, Digest::of(&o.manifest_bytes)))
}
