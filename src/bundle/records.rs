//! `bale/images.json`: the bundle's images and files, as install reads them.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::lock::Lockfile;

/// One image and platform of the bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRecord {
    /// Service.
    pub service: String,
    /// Canonical name.
    pub name: String,
    /// Platform.
    pub platform: String,
    /// What the tag pointed to (index or manifest).
    pub digest: Digest,
    /// The platform's manifest.
    pub manifest: Digest,
    /// Its media type.
    pub manifest_media_type: String,
    /// The config; a runtime's image ID.
    pub config: Digest,
    /// Layers, in order.
    pub layers: Vec<Digest>,
    /// Manifest + config + layers, in bytes.
    pub size: u64,
    /// The upstream attestation manifests the bundle carries for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<AttestationRecord>,
    /// The upstream cosign signature the bundle carries for `digest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureRecord>,
}

/// An attestation manifest carried for an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationRecord {
    /// The attestation manifest.
    pub manifest: Digest,
    /// Its layers (in-toto statements), in order.
    pub layers: Vec<Digest>,
    /// The in-toto predicate types of its layers.
    pub predicate_types: Vec<String>,
}

/// A cosign signature artifact carried for an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureRecord {
    /// The signature manifest (tag `sha256-<hex>.sig` upstream).
    pub manifest: Digest,
    /// Its media type.
    pub manifest_media_type: String,
    /// The public key's entry in the bundle.
    pub key: String,
    /// The key file's SHA-256, as the lock recorded it.
    pub key_sha256: Digest,
}

/// Where the bundle carries the cosign key written as `rel` in bundle.toml.
pub fn cosign_key_path(rel: &str) -> String {
    format!("bale/cosign/{rel}")
}

/// An overlay file of the bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    /// Target path in the install directory.
    pub target: String,
    /// Size in bytes.
    pub size: u64,
    /// Whether it is executable.
    pub executable: bool,
    /// Whether it is a template, rendered at install.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub template: bool,
}

/// `bale/images.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagesFile {
    /// Format version (1).
    pub format: u32,
    /// Bundle name.
    pub name: String,
    /// Bundle version.
    pub version: String,
    /// Images, by service then platform.
    pub images: Vec<ImageRecord>,
    /// Overlay files, by target.
    pub files: Vec<FileRecord>,
    /// Compose file target, if any.
    pub compose: Option<String>,
    /// Compose project name, if any.
    pub project: Option<String>,
}

impl ImagesFile {
    /// The images of the platform a runtime gets: the bundle's first.
    pub fn runtime_images(&self) -> Vec<&ImageRecord> {
        let first = self.images.first().map(|i| &i.platform);
        self.images
            .iter()
            .filter(|i| Some(&i.platform) == first)
            .collect()
    }
}

/// Image records of a lock: one per image and platform. `key_of` gives
/// the cosign key path bundle.toml names for a service.
pub fn image_records(lock: &Lockfile, key_of: &dyn Fn(&str) -> Option<String>) -> Vec<ImageRecord> {
    let mut out = Vec::new();
    for img in &lock.images {
        let signature = img.signature.as_ref().and_then(|s| {
            Some(SignatureRecord {
                manifest: s.manifest.clone(),
                manifest_media_type: s.manifest_media_type.clone(),
                key: cosign_key_path(&key_of(&img.service)?),
                key_sha256: s.key.clone()?,
            })
        });
        for p in &img.platforms {
            out.push(ImageRecord {
                service: img.service.clone(),
                name: img.name.clone(),
                platform: p.platform.clone(),
                digest: img.digest.clone(),
                manifest: p.manifest.clone(),
                manifest_media_type: p.manifest_media_type.clone(),
                config: p.config.clone(),
                layers: p.layers.iter().map(|l| l.digest.clone()).collect(),
                size: p.manifest_size
                    + p.config_size
                    + p.layers.iter().map(|l| l.size).sum::<u64>(),
                attestations: p
                    .attestations
                    .iter()
                    .map(|a| AttestationRecord {
                        manifest: a.manifest.clone(),
                        layers: a.layers.iter().map(|l| l.digest.clone()).collect(),
                        predicate_types: a
                            .predicate_types()
                            .into_iter()
                            .map(str::to_owned)
                            .collect(),
                    })
                    .collect(),
                signature: signature.clone(),
            });
        }
    }
    out
}
