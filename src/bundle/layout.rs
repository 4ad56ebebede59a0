//! The bundle's OCI image layout (`oci-layout`, `index.json`) and its
//! `docker load` index (`manifest.json`).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Entry, ImageRecord};
use crate::digest::Digest;
use crate::lock::{LockedImage, Lockfile};

#[derive(Serialize)]
struct IndexJson {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    manifests: Vec<IndexEntry>,
}

#[derive(Serialize)]
struct IndexEntry {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<BTreeMap<&'static str, String>>,
    annotations: BTreeMap<&'static str, String>,
}

/// An image index of the platforms a bundle holds for one image name:
/// what the name's `index.json` entry points at when there are several.
#[derive(Serialize)]
struct PlatformIndex<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    manifests: Vec<PlatformEntry<'a>>,
}

#[derive(Serialize)]
struct PlatformEntry<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    digest: &'a Digest,
    size: u64,
    platform: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Vec<String>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

pub(super) fn json(v: &impl Serialize) -> Vec<u8> {
    // Serialising plain structs of strings and numbers cannot fail.
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}

/// The OCI platform object of `platform` (`os/arch[/variant]`).
fn platform_object(platform: &str) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    let mut parts = platform.split('/');
    out.insert("os", parts.next().unwrap_or_default().to_owned());
    out.insert("architecture", parts.next().unwrap_or_default().to_owned());
    if let Some(v) = parts.next() {
        out.insert("variant", v.to_owned());
    }
    out
}

/// The layout's entries (`oci-layout`, `index.json`, the `docker load`
/// `manifest.json`, and an index blob per image of several platforms) and
/// the store's blobs the bundle carries.
///
/// `index.json` names each image once, so that every reader resolves a
/// name to one thing: an image of one platform points at its manifest; an
/// image of several at an index of those platforms (skopeo and ctr pick or
/// import the platforms from it), and each platform's manifest is also
/// named `NAME-OS-ARCH[-VARIANT]` for readers that need one manifest per
/// name (umoci).
pub(super) fn layout_entries(
    lock: &Lockfile,
    records: &[ImageRecord],
) -> (Vec<Entry>, BTreeMap<Digest, u64>) {
    let mut blobs: BTreeMap<Digest, u64> = BTreeMap::new();
    for img in &lock.images {
        for b in LockedImage::blobs(img) {
            blobs.insert(b.digest, b.size);
        }
    }
    // Services sharing an image share its entries.
    let mut by_name: BTreeMap<&str, Vec<&ImageRecord>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut sorted: Vec<&ImageRecord> = records.iter().collect();
    sorted.sort_by(|a, b| (&a.name, &a.platform).cmp(&(&b.name, &b.platform)));
    for r in sorted {
        if seen.insert((r.name.as_str(), r.platform.as_str())) {
            by_name.entry(r.name.as_str()).or_default().push(r);
        }
    }
    let first_platform = lock
        .images
        .first()
        .and_then(|i| i.platforms.first())
        .map(|p| p.platform.clone());
    let mut index = Vec::new();
    let mut docker = Vec::new();
    let mut index_blobs: Vec<(Digest, Vec<u8>)> = Vec::new();
    for (name, platforms) in &by_name {
        for r in platforms {
            if Some(&r.platform) == first_platform.as_ref() {
                docker.push(DockerEntry {
                    config: r.config.blob_path(),
                    repo_tags: vec![r.name.clone()],
                    layers: r.layers.iter().map(Digest::blob_path).collect(),
                });
            }
        }
        let annotated = |ref_name: String, containerd: bool| {
            let mut a = BTreeMap::new();
            if containerd {
                a.insert("io.containerd.image.name", name.to_string());
            }
            a.insert("org.opencontainers.image.ref.name", ref_name);
            a
        };
        let manifest_entry = |r: &ImageRecord, annotations| IndexEntry {
            media_type: r.manifest_media_type.clone(),
            digest: r.manifest.clone(),
            size: blobs.get(&r.manifest).copied().unwrap_or(0),
            platform: Some(platform_object(&r.platform)),
            annotations,
        };
        if let [r] = platforms.as_slice() {
            index.push(manifest_entry(r, annotated(name.to_string(), true)));
            continue;
        }
        let bytes = json(&PlatformIndex {
            schema_version: 2,
            media_type: crate::manifest::OCI_INDEX,
            manifests: platforms
                .iter()
                .map(|r| PlatformEntry {
                    media_type: &r.manifest_media_type,
                    digest: &r.manifest,
                    size: blobs.get(&r.manifest).copied().unwrap_or(0),
                    platform: platform_object(&r.platform),
                })
                .collect(),
        });
        let digest = Digest::of(&bytes);
        index.push(IndexEntry {
            media_type: crate::manifest::OCI_INDEX.to_owned(),
            digest: digest.clone(),
            size: bytes.len() as u64,
            platform: None,
            annotations: annotated(name.to_string(), true),
        });
        for r in platforms {
            let per_platform = format!("{name}-{}", r.platform.replace('/', "-"));
            index.push(manifest_entry(r, annotated(per_platform, false)));
        }
        if !blobs.contains_key(&digest) {
            index_blobs.push((digest, bytes));
        }
    }
    let mut entries = vec![
        Entry::bytes(
            "oci-layout",
            b"{\"imageLayoutVersion\":\"1.0.0\"}\n".to_vec(),
        ),
        Entry::bytes(
            "index.json",
            json(&IndexJson {
                schema_version: 2,
                media_type: crate::manifest::OCI_INDEX,
                manifests: index,
            }),
        ),
        Entry::bytes("manifest.json", json(&docker)),
    ];
    index_blobs.sort_by(|a, b| a.0.cmp(&b.0));
    entries.extend(
        index_blobs
            .into_iter()
            .map(|(d, bytes)| Entry::bytes(&d.blob_path(), bytes)),
    );
    (entries, blobs)
}
