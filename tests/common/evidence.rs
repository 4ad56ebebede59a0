//! One fixture builder for supply-chain evidence: an image index whose
//! platform manifest carries buildx-style attestations (an in-toto SPDX
//! SBOM and a provenance statement), and cosign signature artifacts made
//! with keys the test generates with openssl, in cosign's public format.

use std::path::Path;

use base64::Engine as _;

use super::*;

/// What [`attested_image`] pushed.
pub struct Attested {
    /// Digest of the index the tag names.
    pub index: String,
    /// The linux/amd64 image.
    pub amd64: Pushed,
    /// The attestation manifest's digest.
    pub attestation: String,
    /// The SPDX statement layer's digest.
    pub sbom_layer: String,
}

pub const SPDX_PREDICATE: &str = "https://spdx.dev/Document";
pub const PROVENANCE_PREDICATE: &str = "https://slsa.dev/provenance/v0.2";

/// Pushes `repo:tag`: an OCI index of one linux/amd64 image and its
/// attestation manifest, whose SPDX statement lists busybox 1.36.1 and
/// musl 1.2.4 (with purls).
pub fn attested_image(reg: &Registry, repo: &str, tag: &str) -> Attested {
    let amd64 = reg.push_image(
        repo,
        None,
        "linux",
        "amd64",
        None,
        &[gzip_layer(&[("bin/app", b"app v1")])],
        false,
    );
    let statement = |predicate_type: &str, predicate: &str| {
        format!(
            "{{\"_type\":\"https://in-toto.io/Statement/v0.1\",\"predicateType\":\"{predicate_type}\",\"subject\":[{{\"name\":\"pkg:docker/{repo}@{tag}\",\"digest\":{{\"sha256\":\"{}\"}}}}],\"predicate\":{predicate}}}",
            amd64.manifest.trim_start_matches("sha256:")
        )
        .into_bytes()
    };
    let spdx = statement(
        SPDX_PREDICATE,
        r#"{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"upstream","packages":[
            {"SPDXID":"SPDXRef-busybox","name":"busybox","versionInfo":"1.36.1","licenseDeclared":"GPL-2.0-only",
             "externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:apk/alpine/busybox@1.36.1-r2?arch=x86_64"}]},
            {"SPDXID":"SPDXRef-musl","name":"musl","versionInfo":"1.2.4",
             "externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64"}]}]}"#,
    );
    let provenance = statement(PROVENANCE_PREDICATE, r#"{"builder":{"id":"test"}}"#);
    let config = br#"{"architecture":"unknown","os":"unknown","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = reg.push_blob(repo, config);
    let sbom_layer = reg.push_blob(repo, &spdx);
    let prov_layer = reg.push_blob(repo, &provenance);
    let manifest = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{OCI_MANIFEST}\",\"config\":{{\"mediaType\":\"{OCI_CONFIG}\",\"digest\":\"{config_digest}\",\"size\":{}}},\"layers\":[{},{}]}}",
        config.len(),
        intoto_layer(&sbom_layer, spdx.len(), SPDX_PREDICATE),
        intoto_layer(&prov_layer, provenance.len(), PROVENANCE_PREDICATE),
    );
    let attestation = reg.push_manifest(
        repo,
        &sha(manifest.as_bytes()),
        OCI_MANIFEST,
        manifest.as_bytes(),
    );
    let att = Pushed {
        manifest: attestation.clone(),
        manifest_size: manifest.len(),
        media_type: OCI_MANIFEST.into(),
        config: config_digest,
        layers: vec![sbom_layer.clone(), prov_layer],
    };
    let ann = format!(
        "{{\"vnd.docker.reference.digest\":\"{}\",\"vnd.docker.reference.type\":\"attestation-manifest\"}}",
        amd64.manifest
    );
    let index = reg.push_index(
        repo,
        tag,
        &[
            (
                amd64.clone(),
                r#"{"os":"linux","architecture":"amd64"}"#.into(),
                None,
            ),
            (
                att,
                r#"{"os":"unknown","architecture":"unknown"}"#.into(),
                Some(ann),
            ),
        ],
        false,
    );
    Attested {
        index,
        amd64,
        attestation,
        sbom_layer,
    }
}

fn intoto_layer(digest: &str, size: usize, predicate: &str) -> String {
    format!(
        "{{\"mediaType\":\"application/vnd.in-toto+json\",\"digest\":\"{digest}\",\"size\":{size},\"annotations\":{{\"in-toto.io/predicate-type\":\"{predicate}\"}}}}"
    )
}

/// A P-256 key pair made with openssl: `<name>.key` (PEM private key) and
/// `<name>.pub` (PEM public key, as cosign writes it) in `dir`.
pub fn cosign_keypair(dir: &Path, name: &str) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    let key = dir.join(format!("{name}.key"));
    let k = key.to_string_lossy().into_owned();
    openssl(
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &k,
        ],
        dir,
    );
    let p = dir
        .join(format!("{name}.pub"))
        .to_string_lossy()
        .into_owned();
    openssl(&["ec", "-in", &k, "-pubout", "-out", &p], dir);
}

/// The simple-signing payload cosign signs for `digest` of `reference`.
pub fn simple_signing(reference: &str, digest: &str) -> Vec<u8> {
    format!(
        "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"{reference}\"}},\"image\":{{\"docker-manifest-digest\":\"{digest}\"}},\"type\":\"cosign container image signature\"}},\"optional\":null}}"
    )
    .into_bytes()
}

/// Signs `payload` with the openssl key `key` (PEM): base64 of the DER
/// ECDSA signature over its SHA-256, as cosign's annotation holds it.
pub fn openssl_sign(key: &Path, payload: &[u8]) -> String {
    let tmp = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(tmp.path(), payload).unwrap_or_else(|e| panic!("{e}"));
    let (key, file) = (key.to_string_lossy(), tmp.path().to_string_lossy());
    let der = openssl(&["dgst", "-sha256", "-sign", &key, &file], Path::new("."));
    base64::engine::general_purpose::STANDARD.encode(der)
}

/// Pushes cosign's signature artifact for `signed` in `repo` (tag
/// `sha256-<hex>.sig`): one layer per (payload, signature).
pub fn push_cosign_signature(
    reg: &Registry,
    repo: &str,
    signed: &str,
    layers: &[(Vec<u8>, String)],
) -> String {
    let config =
        br#"{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = reg.push_blob(repo, config);
    let descs: Vec<String> = layers
        .iter()
        .map(|(payload, sig)| {
            let d = reg.push_blob(repo, payload);
            format!(
                "{{\"mediaType\":\"application/vnd.dev.cosign.simplesigning.v1+json\",\"digest\":\"{d}\",\"size\":{},\"annotations\":{{\"dev.cosignproject.cosign/signature\":\"{sig}\"}}}}",
                payload.len()
            )
        })
        .collect();
    let manifest = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{OCI_MANIFEST}\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{config_digest}\",\"size\":{}}},\"layers\":[{}]}}",
        config.len(),
        descs.join(",")
    );
    let tag = format!("sha256-{}.sig", signed.trim_start_matches("sha256:"));
    reg.push_manifest(repo, &tag, OCI_MANIFEST, manifest.as_bytes())
}

/// Signs `signed` (a digest in `repo`) with `dir/<name>.key` and pushes
/// the signature artifact.
pub fn cosign_sign(reg: &Registry, repo: &str, signed: &str, dir: &Path, name: &str) -> String {
    let payload = simple_signing(&format!("{}/{repo}", reg.host), signed);
    let sig = openssl_sign(&dir.join(format!("{name}.key")), &payload);
    push_cosign_signature(reg, repo, signed, &[(payload, sig)])
}
