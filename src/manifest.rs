//! Image manifests and indexes, OCI and Docker schema 2.
//!
//! Manifests are only ever parsed to read descriptors from them; the bytes
//! served are what is stored and hashed, never a re-serialisation.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::platform::Platform;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The media types bale asks registries for, most preferred first.
pub const ACCEPTED: &[&str] = &[
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
];

/// Largest manifest accepted (the distribution spec's recommended limit).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// Media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Platform, in indexes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<RawPlatform>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// A platform object as it appears in an index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawPlatform {
    /// OS.
    pub os: String,
    /// Architecture.
    pub architecture: String,
    /// Variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// What a manifest document turned out to be.
#[derive(Clone, Debug)]
pub enum Parsed {
    /// An index or manifest list.
    Index {
        /// Its entries.
        manifests: Vec<Descriptor>,
    },
    /// An image manifest.
    Image {
        /// Config descriptor.
        config: Descriptor,
        /// Layers, in order.
        layers: Vec<Descriptor>,
    },
}

#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<i64>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<Vec<Descriptor>>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
}

/// Why a manifest was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON or missing fields.
    #[error("malformed manifest: {0}")]
    Malformed(String),
    /// Content-Type, `mediaType` and shape disagree.
    #[error("media type contradicts content: {0}")]
    Contradiction(String),
    /// A media type bale does not handle.
    #[error("unsupported manifest media type `{0}`")]
    Unsupported(String),
}

fn is_index(mt: &str) -> bool {
    mt == OCI_INDEX || mt == DOCKER_MANIFEST_LIST
}

fn is_manifest(mt: &str) -> bool {
    mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
}

/// Parses `bytes` served as `content_type` (or recorded as such in a
/// descriptor). Returns the effective media type and the parsed document.
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<(String, Parsed), ManifestError> {
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))?;
    if probe.schema_version != Some(2) {
        return Err(ManifestError::Malformed(format!(
            "schemaVersion is {:?}, expected 2",
            probe.schema_version
        )));
    }
    let declared = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim().to_owned())
        .filter(|c| !c.is_empty() && c != "application/json" && c != "application/octet-stream");
    let media_type = match (&declared, &probe.media_type) {
        (Some(a), Some(b)) if a != b => {
            return Err(ManifestError::Contradiction(format!(
                "served as `{a}` but its mediaType field says `{b}`"
            )));
        }
        (Some(a), _) => a.clone(),
        (None, Some(b)) => b.clone(),
        // An OCI document may omit mediaType; its shape decides.
        (None, None) if probe.manifests.is_some() => OCI_INDEX.to_owned(),
        (None, None) => OCI_MANIFEST.to_owned(),
    };
    if !is_index(&media_type) && !is_manifest(&media_type) {
        return Err(ManifestError::Unsupported(media_type));
    }
    if media_type.starts_with("application/vnd.docker") && probe.media_type.is_none() {
        return Err(ManifestError::Contradiction(format!(
            "served as `{media_type}` but has no mediaType field, which Docker schema 2 requires"
        )));
    }
    match (probe.manifests, probe.config, probe.layers) {
        (Some(manifests), None, None) if is_index(&media_type) => {
            Ok((media_type, Parsed::Index { manifests }))
        }
        (None, Some(config), Some(layers)) if is_manifest(&media_type) => {
            Ok((media_type, Parsed::Image { config, layers }))
        }
        (m, c, l) => Err(ManifestError::Contradiction(format!(
            "`{media_type}` document has {}{}{}",
            if m.is_some() { "manifests " } else { "" },
            if c.is_some() { "config " } else { "" },
            if l.is_some() { "layers" } else { "" },
        ))),
    }
}

/// Whether an index entry is an attestation or other non-image entry.
pub fn is_attestation(d: &Descriptor) -> bool {
    let unknown = d
        .platform
        .as_ref()
        .is_some_and(|p| p.os == "unknown" || p.architecture == "unknown");
    let annotated = d
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("vnd.docker.reference.type"));
    unknown || annotated
}

fn variant_matches(arch: &str, want: Option<&str>, have: Option<&str>) -> bool {
    // arm64's only variant is v8, written or not.
    let norm = |v: Option<&str>| match (arch, v) {
        ("arm64", None) => Some("v8".to_owned()),
        (_, v) => v.map(str::to_owned),
    };
    match want {
        None => true,
        Some(_) => norm(want) == norm(have),
    }
}

/// Chooses the entry of `manifests` for `platform`, skipping attestations.
/// `Err` lists what the index offers.
pub fn select_platform<'a>(
    manifests: &'a [Descriptor],
    platform: &Platform,
) -> Result<&'a Descriptor, String> {
    let candidates: Vec<&Descriptor> = manifests
        .iter()
        .filter(|d| !is_attestation(d) && is_manifest(&d.media_type))
        .filter(|d| {
            d.platform.as_ref().is_some_and(|p| {
                p.os == platform.os
                    && p.architecture == platform.architecture
                    && variant_matches(
                        &p.architecture,
                        platform.variant.as_deref(),
                        p.variant.as_deref(),
                    )
            })
        })
        .collect();
    match candidates.as_slice() {
        [one] => Ok(one),
        [] => {
            let offered: Vec<String> = manifests
                .iter()
                .filter(|d| !is_attestation(d))
                .filter_map(|d| d.platform.as_ref())
                .map(|p| match &p.variant {
                    Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                    None => format!("{}/{}", p.os, p.architecture),
                })
                .collect();
            Err(format!(
                "the index has no {platform} image (it offers: {})",
                if offered.is_empty() {
                    "none".to_owned()
                } else {
                    offered.join(", ")
                }
            ))
        }
        many => {
            // Without a requested variant, prefer the entry that has none.
            let plain: Vec<_> = many
                .iter()
                .filter(|d| d.platform.as_ref().is_some_and(|p| p.variant.is_none()))
                .collect();
            match plain.as_slice() {
                [one] => Ok(one),
                _ => Err(format!(
                    "the index has {} entries for {platform}: name a variant",
                    many.len()
                )),
            }
        }
    }
}

/// The platform recorded in an image config (`os`, `architecture`, `variant`).
#[derive(Deserialize)]
pub struct ConfigPlatform {
    /// OS.
    pub os: Option<String>,
    /// Architecture.
    pub architecture: Option<String>,
    /// Variant.
    pub variant: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    #[test]
    fn contradicting_media_type_is_rejected() {
        let index = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]}}"#);
        assert!(matches!(
            parse(index.as_bytes(), Some(OCI_MANIFEST)),
            Err(ManifestError::Contradiction(_))
        ));
        let shape_lies = format!(
            r#"{{"schemaVersion":2,"manifests":[],"config":{{"mediaType":"x","digest":"{}","size":1}},"layers":[]}}"#,
            d(1)
        );
        assert!(matches!(
            parse(shape_lies.as_bytes(), Some(OCI_MANIFEST)),
            Err(ManifestError::Contradiction(_))
        ));
        let docker_without_field = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(parse(docker_without_field.as_bytes(), Some(DOCKER_MANIFEST_LIST)).is_err());
    }

    #[test]
    fn platform_choice_skips_attestations_and_refuses_fallback() {
        let entry = |os: &str, arch: &str, n: u8| Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: d(n).parse().unwrap_or_else(|e| panic!("{e}")),
            size: 1,
            platform: Some(RawPlatform {
                os: os.into(),
                architecture: arch.into(),
                variant: None,
            }),
            annotations: None,
        };
        let list = vec![
            entry("unknown", "unknown", 1),
            entry("linux", "arm64", 2),
            entry("linux", "amd64", 3),
        ];
        let amd = Platform::parse("linux/amd64").unwrap_or_else(|| panic!());
        assert_eq!(
            select_platform(&list, &amd).map(|d| d.digest.to_string()),
            Ok(d(3))
        );
        let arm = Platform::parse("linux/arm64/v8").unwrap_or_else(|| panic!());
        assert_eq!(
            select_platform(&list, &arm).map(|d| d.digest.to_string()),
            Ok(d(2))
        );
        let s390 = Platform::parse("linux/s390x").unwrap_or_else(|| panic!());
        let e = select_platform(&list, &s390).err().unwrap_or_default();
        assert!(
            e.contains("linux/arm64, linux/amd64") && !e.contains("unknown"),
            "{e}"
        );
    }
}
