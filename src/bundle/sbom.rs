//! `bale/sbom.spdx.json`: an SPDX 2.3 document of what the bundle carries,
//! written at build and covered by the signed manifest.
//!
//! It is deterministic: no clock (the creation time is `SOURCE_DATE_EPOCH`,
//! else the Unix epoch), identifiers derived from content and order, and
//! serde_json's sorted maps. It describes the bundle as a package that
//! contains each image (a `pkg:oci` purl and its manifest digest) and each
//! file (SHA-256 and the SHA1 that SPDX 2.3 requires). Where an image
//! carries an upstream SPDX attestation, its packages are taken in, under
//! the image, by name, version and purl; their licences stay in the
//! attestation, which travels in the bundle beside it.

use std::collections::BTreeMap;
use std::io::Read as _;

use serde_json::{Value, json};

use super::licenses::Extracted;
use super::os_packages::{inventories, os_package};
use super::{BundleError, Entry, FILES_PREFIX, ImageRecord, Source, io_err};
use crate::digest::Digest;
use crate::inventory::Inventory;
use crate::lock::{LockedArtifact, Lockfile};
use crate::spec::BundleSpec;
use crate::store::Store;

/// Where the bundle carries the document.
pub const SBOM_PATH: &str = "bale/sbom.spdx.json";
/// Largest upstream SPDX attestation taken in.
pub const MAX_ATTESTATION_BYTES: u64 = 64 * 1024 * 1024;
/// The predicate type of an SPDX attestation (any SPDX version).
const SPDX_PREDICATE: &str = "https://spdx.dev/Document";

/// The SPDX document of a bundle: `records` its images, `files` its entries
/// (those under `files/` are described), `store` where the upstream
/// attestations are read.
pub(super) fn document(
    spec: &BundleSpec,
    lock: &Lockfile,
    records: &[ImageRecord],
    files: &[Entry],
    store: &Store,
    lock_digest: &Digest,
) -> Result<Vec<u8>, BundleError> {
    let mut packages = vec![Value::Null]; // the bundle's, filled in below
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": "SPDXRef-Bundle",
    })];
    let contains = |from: &str, to: &str| json!({"spdxElementId": from, "relationshipType": "CONTAINS", "relatedSpdxElement": to});
    let mut licenses = Extracted::default();
    image_packages(
        lock,
        records,
        store,
        &mut licenses,
        &mut packages,
        &mut relationships,
    )?;
    let mut file_values = Vec::new();
    let mut sha1s = Vec::new();
    for (n, e) in files
        .iter()
        .filter(|e| e.path.starts_with(FILES_PREFIX))
        .enumerate()
    {
        let id = format!("SPDXRef-File-{}", n + 1);
        let sha1 = sha1_of(e)?;
        file_values.push(json!({
            "SPDXID": id,
            "fileName": format!("./{}", &e.path[FILES_PREFIX.len()..]),
            "checksums": [
                {"algorithm": "SHA1", "checksumValue": sha1},
                {"algorithm": "SHA256", "checksumValue": e.sha256.hex()},
            ],
            "licenseConcluded": "NOASSERTION",
            "copyrightText": "NOASSERTION",
        }));
        relationships.push(contains("SPDXRef-Bundle", &id));
        sha1s.push(sha1);
    }
    // SPDX's verification code: the SHA1 of the files' sorted SHA1s.
    sha1s.sort();
    let code = hex(ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        sha1s.concat().as_bytes(),
    )
    .as_ref());
    packages[0] = json!({
        "SPDXID": "SPDXRef-Bundle",
        "name": spec.name,
        "versionInfo": spec.version.to_string(),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": !file_values.is_empty(),
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "APPLICATION",
        "supplier": spec.supplier.as_ref().map_or_else(|| "NOASSERTION".to_owned(), |s| format!("Organization: {s}")),
        "comment": format!("bale bundle {} {}, built by bale {}", spec.name, spec.version, env!("CARGO_PKG_VERSION")),
    });
    if !file_values.is_empty()
        && let Some(b) = packages[0].as_object_mut()
    {
        b.insert(
            "packageVerificationCode".into(),
            json!({"packageVerificationCodeValue": code}),
        );
    }
    let doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}-{}", spec.name, spec.version),
        "documentNamespace": format!(
            "https://spdx.org/spdxdocs/bale/{}-{}-{}",
            spec.name,
            spec.version,
            lock_digest.hex()
        ),
        "creationInfo": {
            "created": created(),
            "creators": [format!("Tool: bale-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "files": file_values,
        "relationships": relationships,
    });
    let infos = licenses.infos();
    let mut doc = doc;
    if !infos.is_empty()
        && let Some(d) = doc.as_object_mut()
    {
        d.insert("hasExtractedLicensingInfos".into(), Value::Array(infos));
    }
    let mut out = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    out.push(b'\n');
    Ok(out)
}

/// Each image as a package the bundle CONTAINS, and what each image
/// CONTAINS: its OS packages and its SPDX attestations' packages.
fn image_packages(
    lock: &Lockfile,
    records: &[ImageRecord],
    store: &Store,
    licenses: &mut Extracted,
    packages: &mut Vec<Value>,
    relationships: &mut Vec<Value>,
) -> Result<(), BundleError> {
    let contains = |from: &str, to: &str| json!({"spdxElementId": from, "relationshipType": "CONTAINS", "relatedSpdxElement": to});
    // Services that share an image share its attestations and its
    // packages: each is read once.
    let mut read: BTreeMap<Digest, Vec<Upstream>> = BTreeMap::new();
    let inventories = inventories(lock, records, store)?;
    for (n, r) in records.iter().enumerate() {
        let id = image_id(n, &r.service);
        let supplier = image_supplier(lock, r, store);
        let inv = inventories.get(&r.manifest).cloned().unwrap_or_default();
        packages.push(image_package(&id, r, &supplier, &inv));
        relationships.push(contains("SPDXRef-Bundle", &id));
        for (m, p) in inv.packages.iter().enumerate() {
            let pid = format!("{id}-Package-{}", m + 1);
            packages.push(os_package(&pid, p, inv.distro.as_ref(), licenses));
            relationships.push(contains(&id, &pid));
        }
        for (m, p) in upstream_packages(lock, r, store, &mut read)?
            .into_iter()
            .enumerate()
        {
            let up = format!("{id}-Upstream-{}", m + 1);
            packages.push(upstream_package(&up, &p, &supplier));
            relationships.push(contains(&id, &up));
        }
    }
    Ok(())
}

/// The CONTAINS relationships of an SPDX document: element → what it
/// contains, in document order.
pub fn contains(doc: &Value) -> BTreeMap<&str, Vec<&str>> {
    let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in doc["relationships"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
    {
        if r["relationshipType"] == "CONTAINS"
            && let (Some(a), Some(b)) = (
                r["spdxElementId"].as_str(),
                r["relatedSpdxElement"].as_str(),
            )
        {
            out.entry(a).or_default().push(b);
        }
    }
    out
}

/// The purl of an SPDX package, where it has one.
pub fn purl_of(package: &Value) -> Option<&str> {
    package["externalRefs"]
        .as_array()?
        .iter()
        .find(|x| x["referenceType"] == "purl")?
        .get("referenceLocator")?
        .as_str()
}

/// The SPDX identifier of the `n`th image record (from 0).
fn image_id(n: usize, service: &str) -> String {
    format!("SPDXRef-Image-{}-{}", n + 1, spdx_safe(service))
}

/// For each of the first `images` image records, how many packages the
/// document says it contains (from its upstream SPDX attestations).
pub fn contained_counts(document: &[u8], images: usize) -> Vec<usize> {
    let doc: Value = serde_json::from_slice(document).unwrap_or(Value::Null);
    let ids: Vec<String> = doc["packages"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p["SPDXID"].as_str())
                .filter(|id| id.starts_with("SPDXRef-Image-") && !id.contains("-Upstream-"))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let rels = doc["relationships"].as_array().cloned().unwrap_or_default();
    (0..images)
        .map(|n| {
            let prefix = format!("SPDXRef-Image-{}-", n + 1);
            let Some(id) = ids.iter().find(|id| id.starts_with(&prefix)) else {
                return 0;
            };
            rels.iter()
                .filter(|r| {
                    r["spdxElementId"].as_str() == Some(id)
                        && r["relationshipType"].as_str() == Some("CONTAINS")
                })
                .count()
        })
        .collect()
}

/// An image and platform as an SPDX package.
/// Who supplies the image `r`: the vendor its config's labels name
/// (`org.opencontainers.image.vendor`), else its registry namespace
/// (`docker.io/library`, `ghcr.io/acme`), as an SPDX organisation.
fn image_supplier(lock: &Lockfile, r: &ImageRecord, store: &Store) -> String {
    let config_size = lock
        .images
        .iter()
        .filter(|i| i.service == r.service)
        .flat_map(|i| i.platforms.iter())
        .find(|p| p.platform == r.platform && p.config == r.config)
        .map(|p| p.config_size);
    let vendor = config_size
        .and_then(|size| store.read_verified(&r.config, size).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|c| {
            c["config"]["Labels"]["org.opencontainers.image.vendor"]
                .as_str()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.len() <= 200 && !v.contains(char::is_control))
                .map(str::to_owned)
        });
    let (repo, _) = split_name(&r.name);
    let namespace = repo.rsplit_once('/').map_or(repo, |(ns, _)| ns);
    format!(
        "Organization: {}",
        vendor.unwrap_or_else(|| namespace.to_owned())
    )
}

fn image_package(id: &str, r: &ImageRecord, supplier: &str, inv: &Inventory) -> Value {
    let (repo, tag) = split_name(&r.name);
    let short = repo.rsplit('/').next().unwrap_or(repo);
    let arch = r.platform.split('/').nth(1).unwrap_or("");
    let purl = format!(
        "pkg:oci/{short}@sha256%3A{}?arch={arch}&repository_url={}&tag={}",
        r.manifest.hex(),
        repo.replace(':', "%3A"),
        tag.replace(':', "%3A")
    );
    let mut comment = format!(
        "service {}, platform {}; {} names {}; config {}; {} layers",
        r.service,
        r.platform,
        r.name,
        r.digest,
        r.config,
        r.layers.len()
    );
    for a in &r.attestations {
        comment.push_str(&format!(
            "; attestation {} ({})",
            a.manifest,
            a.predicate_types.join(", ")
        ));
    }
    if let Some(s) = &r.signature {
        comment.push_str(&format!("; cosign signature {}", s.manifest));
    }
    if let Some(d) = &inv.distro {
        comment.push_str(&format!(
            "; distribution {}",
            d.pretty_name.as_deref().unwrap_or(&d.qualifier())
        ));
    }
    if !inv.databases.is_empty() {
        comment.push_str(&format!(
            "; {} OS packages from {}",
            inv.packages.len(),
            inv.databases.join(", ")
        ));
    }
    for note in &inv.notes {
        comment.push_str(&format!("; not cataloged: {note}"));
    }
    json!({
        "SPDXID": id,
        "name": r.name,
        "versionInfo": tag,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "CONTAINER",
        "supplier": supplier,
        "checksums": [{"algorithm": "SHA256", "checksumValue": r.manifest.hex()}],
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": purl,
        }],
        "comment": comment,
    })
}

/// One package of an upstream document, as bale takes it in.
#[derive(Clone)]
struct Upstream {
    name: String,
    version: Option<String>,
    /// The attestation's own supplier for it, where it names one.
    supplier: Option<String>,
    purls: Vec<String>,
    from: Digest,
}

/// A package of an image's SPDX attestation: supplied as the attestation
/// says, else by the image's supplier, which distributes it in the image.
fn upstream_package(id: &str, p: &Upstream, image_supplier: &str) -> Value {
    let mut v = json!({
        "SPDXID": id,
        "name": p.name,
        "supplier": p.supplier.as_deref().unwrap_or(image_supplier),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "comment": format!("from the image's SPDX attestation {}", p.from),
    });
    if let Some(obj) = v.as_object_mut() {
        if let Some(ver) = &p.version {
            obj.insert("versionInfo".into(), json!(ver));
        }
        if !p.purls.is_empty() {
            let refs: Vec<Value> = p
                .purls
                .iter()
                .map(|u| json!({"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": u}))
                .collect();
            obj.insert("externalRefs".into(), Value::Array(refs));
        }
    }
    v
}

/// The packages of `r`'s SPDX attestations, read from the store.
fn upstream_packages(
    lock: &Lockfile,
    r: &ImageRecord,
    store: &Store,
    read: &mut BTreeMap<Digest, Vec<Upstream>>,
) -> Result<Vec<Upstream>, BundleError> {
    let artifacts: Vec<&LockedArtifact> = lock
        .images
        .iter()
        .filter(|i| i.service == r.service)
        .flat_map(|i| i.platforms.iter())
        .filter(|p| p.platform == r.platform)
        .flat_map(|p| p.attestations.iter())
        .collect();
    let mut out = Vec::new();
    for l in artifacts.iter().flat_map(|a| a.layers.iter()) {
        if !l
            .predicate_type
            .as_deref()
            .is_some_and(|t| t.starts_with(SPDX_PREDICATE))
            || l.size > MAX_ATTESTATION_BYTES
        {
            continue;
        }
        if let Some(known) = read.get(&l.digest) {
            out.extend(known.iter().cloned());
            continue;
        }
        let path = store.blob_path(&l.digest);
        let bytes = store
            .read_verified(&l.digest, l.size)
            .map_err(|e| BundleError::Missing {
                store: store.root().to_owned(),
                missing: vec![format!(
                    "{} (SPDX attestation of {}): {e}",
                    l.digest, r.name
                )],
            })?;
        let statement: Value = serde_json::from_slice(&bytes).map_err(|e| BundleError::Io {
            path: path.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the SPDX attestation of {} is not JSON: {e}", r.name),
            ),
        })?;
        let pkgs: &[Value] = statement["predicate"]["packages"]
            .as_array()
            .map_or(&[], Vec::as_slice);
        let mut these = Vec::new();
        for p in pkgs {
            let Some(name) = p["name"].as_str().filter(|n| !n.is_empty()) else {
                continue;
            };
            let purls = p["externalRefs"]
                .as_array()
                .map(|refs| {
                    refs.iter()
                        .filter(|x| x["referenceType"].as_str() == Some("purl"))
                        .filter_map(|x| x["referenceLocator"].as_str())
                        .filter(|u| u.starts_with("pkg:") && !u.contains(char::is_whitespace))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            these.push(Upstream {
                name: name.to_owned(),
                version: p["versionInfo"].as_str().map(str::to_owned),
                supplier: p["supplier"]
                    .as_str()
                    .filter(|s| {
                        (s.starts_with("Organization: ") || s.starts_with("Person: "))
                            && s.len() <= 200
                            && !s.contains(char::is_control)
                    })
                    .map(str::to_owned),
                purls,
                from: l.digest.clone(),
            });
        }
        out.extend(these.iter().cloned());
        read.insert(l.digest.clone(), these);
    }
    Ok(out)
}

/// `domain/path:tag` → (`domain/path`, `tag`).
fn split_name(name: &str) -> (&str, &str) {
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (name, "latest"),
    }
}

/// Letters, digits, `.` and `-`: what an SPDX identifier may hold.
fn spdx_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn created() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0);
    crate::clock::utc(secs)
}

fn sha1_of(e: &Entry) -> Result<String, BundleError> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    match &e.source {
        Source::Bytes(b) => ctx.update(b),
        Source::File(p) => {
            let mut f = std::fs::File::open(p).map_err(io_err(p))?;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = f.read(&mut buf).map_err(io_err(p))?;
                if n == 0 {
                    break;
                }
                ctx.update(&buf[..n]);
            }
        }
        Source::Blob(_) => {}
    }
    Ok(hex(ctx.finish().as_ref()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_at_the_tag() {
        assert_eq!(
            split_name("localhost:5000/a/b:1.0"),
            ("localhost:5000/a/b", "1.0")
        );
        assert_eq!(
            split_name("localhost:5000/a/b"),
            ("localhost:5000/a/b", "latest")
        );
        assert_eq!(spdx_safe("n8n_worker"), "n8n-worker");
    }
}
