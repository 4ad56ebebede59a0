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

/// Image records of a lock: one per image and platform.
pub fn image_records(lock: &Lockfile) -> Vec<ImageRecord> {
    let mut out = Vec::new();
    for img in &lock.images {
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
            });
        }
    }
    out
}
