//! The bundle's OCI image layout (`oci-layout`, `index.json`) and its
//! `docker load` index (`manifest.json`).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Entry, ImageRecord};
use crate::digest::Digest;
use crate::lock::{LockedImage, Lockfile};

#[derive(Serialize)]
struct IndexJson<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    manifests: Vec<IndexEntry<'a>>,
}

#[derive(Serialize)]
struct IndexEntry<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    digest: &'a Digest,
    size: u64,
    platform: BTreeMap<&'static str, String>,
    annotations: BTreeMap<&'static str, &'a str>,
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

pub(super) fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

pub(super) fn json(v: &impl Serialize) -> Vec<u8> {
    // Serialising plain structs of strings and numbers cannot fail.
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}

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
    // One index entry per (name, platform): services sharing an image share it.
    let mut seen = BTreeSet::new();
    let mut index = Vec::new();
    let mut docker = Vec::new();
    let first_platform = lock
        .images
        .first()
        .and_then(|i| i.platforms.first())
        .map(|p| p.platform.clone());
    let mut sorted: Vec<&ImageRecord> = records.iter().collect();
    sorted.sort_by(|a, b| (&a.name, &a.platform).cmp(&(&b.name, &b.platform)));
    for r in sorted {
        if !seen.insert((r.name.clone(), r.platform.clone())) {
            continue;
        }
        let mut platform = BTreeMap::new();
        let mut parts = r.platform.split('/');
        platform.insert("os", parts.next().unwrap_or_default().to_owned());
        platform.insert("architecture", parts.next().unwrap_or_default().to_owned());
        if let Some(v) = parts.next() {
            platform.insert("variant", v.to_owned());
        }
        let mut annotations = BTreeMap::new();
        annotations.insert("io.containerd.image.name", r.name.as_str());
        annotations.insert("org.opencontainers.image.ref.name", r.name.as_str());
        index.push(IndexEntry {
            media_type: &r.manifest_media_type,
            digest: &r.manifest,
            size: blobs.get(&r.manifest).copied().unwrap_or(0),
            platform,
            annotations,
        });
        if Some(&r.platform) == first_platform.as_ref() {
            docker.push(DockerEntry {
                config: blob_path(&r.config),
                repo_tags: vec![r.name.clone()],
                layers: r.layers.iter().map(blob_path).collect(),
            });
        }
    }
    let entries = vec![
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
    (entries, blobs)
}
