//! Upstream cosign signatures, checked offline: a P-256 public key in PEM,
//! the simple-signing payload, and the ECDSA signature over it.
//!
//! cosign stores a signature as an OCI manifest under the tag
//! `sha256-<hex>.sig` of the signed image's repository. Each layer is a
//! simple-signing payload (JSON naming the signed manifest digest); the
//! layer's annotation `dev.cosignproject.cosign/signature` holds the
//! base64 of an ASN.1 DER ECDSA signature over the payload's bytes.
//! Verification uses ring (already bale's TLS crypto); the sigstore crate
//! would bring a second crypto stack and an online trust root for a check
//! that is one key, one payload and one signature.

use base64::Engine as _;
use serde::Deserialize;

use crate::digest::Digest;

/// The media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Largest payload read (cosign's are a few hundred bytes).
pub const MAX_PAYLOAD_BYTES: u64 = 64 * 1024;

/// DER prefix of a P-256 SubjectPublicKeyInfo: SEQUENCE { SEQUENCE {
/// id-ecPublicKey, prime256v1 }, BIT STRING (uncompressed point) }.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Why a key or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignError {
    /// The key file is not a P-256 public key in PEM.
    #[error("{what}: not a cosign (ECDSA P-256) public key: {reason}")]
    BadKey {
        /// Where the key came from.
        what: String,
        /// Why.
        reason: String,
    },
    /// The signature artifact is unusable or does not verify.
    #[error("{0}")]
    Refused(String),
}

/// A cosign public key: an uncompressed P-256 point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignKey {
    point: Vec<u8>,
}

impl CosignKey {
    /// Parses a PEM `PUBLIC KEY` (as `cosign generate-key-pair` writes it);
    /// `what` names its file in errors.
    pub fn from_pem(text: &str, what: &str) -> Result<Self, CosignError> {
        let bad = |reason: &str| CosignError::BadKey {
            what: what.to_owned(),
            reason: reason.to_owned(),
        };
        let body = text
            .split("-----BEGIN PUBLIC KEY-----")
            .nth(1)
            .and_then(|rest| rest.split("-----END PUBLIC KEY-----").next())
            .ok_or_else(|| bad("no PUBLIC KEY block"))?;
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| bad("the PEM body is not base64"))?;
        match der.strip_prefix(&P256_SPKI_PREFIX[..]) {
            Some(point) if point.len() == 65 && point[0] == 0x04 => Ok(CosignKey {
                point: point.to_vec(),
            }),
            _ => Err(bad("not an ECDSA key on P-256")),
        }
    }

    /// Whether `signature_b64` (base64 of a DER signature) signs `payload`.
    pub fn verifies(&self, payload: &[u8], signature_b64: &str) -> bool {
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(signature_b64.trim()) else {
            return false;
        };
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            &self.point,
        )
        .verify(payload, &sig)
        .is_ok()
    }
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: PayloadImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct PayloadImage {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// The tag under which cosign stores the signatures of `digest`.
pub fn signature_tag(digest: &Digest) -> String {
    format!("sha256-{}.sig", digest.hex())
}

/// Checks one signature layer: `payload` must name `signed` as its
/// manifest digest, and `signature_b64` must verify with `key`.
pub fn check(
    key: &CosignKey,
    payload: &[u8],
    signature_b64: Option<&str>,
    signed: &Digest,
) -> Result<(), CosignError> {
    let p: Payload = serde_json::from_slice(payload).map_err(|e| {
        CosignError::Refused(format!("the payload is not a simple-signing document: {e}"))
    })?;
    if p.critical.kind != "cosign container image signature" {
        return Err(CosignError::Refused(format!(
            "the payload's type is `{}`, not a cosign container image signature",
            p.critical.kind
        )));
    }
    if p.critical.image.digest != signed.to_string() {
        return Err(CosignError::Refused(format!(
            "the payload signs {}, not the locked {signed}",
            p.critical.image.digest
        )));
    }
    let sig = signature_b64.ok_or_else(|| {
        CosignError::Refused(format!(
            "the layer has no {SIGNATURE_ANNOTATION} annotation"
        ))
    })?;
    if !key.verifies(payload, sig) {
        return Err(CosignError::Refused(
            "the ECDSA signature does not verify with the key".into(),
        ));
    }
    Ok(())
}

/// Accepts `layers` (payload, signature annotation) when one of them
/// passes [`check`]; otherwise says why each failed.
pub fn check_any(
    key: &CosignKey,
    layers: &[(Vec<u8>, Option<String>)],
    signed: &Digest,
) -> Result<(), CosignError> {
    if layers.is_empty() {
        return Err(CosignError::Refused(
            "it holds no simple-signing payload".into(),
        ));
    }
    let mut why = Vec::new();
    for (payload, sig) in layers {
        match check(key, payload, sig.as_deref(), signed) {
            Ok(()) => return Ok(()),
            Err(e) => why.push(e.to_string()),
        }
    }
    why.dedup();
    Err(CosignError::Refused(why.join("; ")))
}

/// Reads a blob by digest, at most the size given, checked against it.
pub type ReadBlob<'a, E> = dyn Fn(&Digest, u64) -> Result<Vec<u8>, E> + 'a;

/// Why [`recheck`] failed: a blob could not be read, or the signature is
/// refused (said in words).
#[derive(Debug)]
pub enum Recheck<E> {
    /// `read` failed.
    Read(E),
    /// The artifact is unusable or does not verify.
    Refused(String),
}

impl Recheck<String> {
    /// Either failure, in words.
    pub fn message(self) -> String {
        match self {
            Recheck::Read(m) | Recheck::Refused(m) => m,
        }
    }
}

/// Checks a signature artifact: the manifest `manifest` (of `media_type`)
/// must hold a simple-signing layer that names `signed` and verifies with
/// `key` (as `cosign verify` does: other signers' layers may stand beside
/// it). `read` gives a blob's bytes (at most the size given), checked
/// against its digest: the registry's at lock, the store's after fetch, the
/// bundle's at verify.
pub fn recheck<E>(
    manifest: &Digest,
    media_type: &str,
    signed: &Digest,
    key: &CosignKey,
    read: &ReadBlob<'_, E>,
) -> Result<(), Recheck<E>> {
    let bytes = read(manifest, crate::manifest::MAX_MANIFEST_BYTES).map_err(Recheck::Read)?;
    let layers = match crate::manifest::parse(&bytes, Some(media_type)) {
        Ok((_, crate::manifest::Parsed::Image { layers, .. })) => layers,
        Ok(_) => {
            return Err(Recheck::Refused(format!(
                "signature manifest {manifest} is an index"
            )));
        }
        Err(e) => {
            return Err(Recheck::Refused(format!(
                "signature manifest {manifest}: {e}"
            )));
        }
    };
    let mut payloads = Vec::new();
    for l in layers.iter().filter(|l| l.media_type == SIMPLE_SIGNING) {
        if l.size > MAX_PAYLOAD_BYTES {
            return Err(Recheck::Refused(format!(
                "payload {} is {} bytes",
                l.digest, l.size
            )));
        }
        let sig = l
            .annotations
            .as_ref()
            .and_then(|a| a.get(SIGNATURE_ANNOTATION))
            .cloned();
        payloads.push((read(&l.digest, l.size).map_err(Recheck::Read)?, sig));
    }
    check_any(key, &payloads, signed).map_err(|e| Recheck::Refused(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // A key and signature made with `openssl ecparam -name prime256v1`
    // and `openssl dgst -sha256 -sign`, so that ring is checked against
    // an independent signer.
    const PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAENL7Nyp4PKoAQcBeDVRoO8k7LRN0t
kevvBpDMbkWvlvj7360tepggo3cMrMSqcc1+Uz4bPYOBiuNKu5XLC06H0w==
-----END PUBLIC KEY-----
";
    /// Signs Digest::of(b"x").
    const PAYLOAD: &str = r#"{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"},"type":"cosign container image signature"},"optional":null}"#;
    const SIGNATURE: &str = "MEYCIQD47YabcMe6PDLLmadkABEdv/ZBCFhg1AIGmwn+Idat+wIhALT8KgkNXS9YHXIXp9AgI5HhqG1YaovAG+KdhgQTKDwo";

    fn key() -> CosignKey {
        CosignKey::from_pem(PEM, "k.pub").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_openssl_signature_verifies() {
        check(
            &key(),
            PAYLOAD.as_bytes(),
            Some(SIGNATURE),
            &Digest::of(b"x"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn a_changed_payload_does_not_verify() {
        let changed = PAYLOAD.replace("\"r\"", "\"q\"");
        let e = check(
            &key(),
            changed.as_bytes(),
            Some(SIGNATURE),
            &Digest::of(b"x"),
        );
        assert!(
            matches!(&e, Err(CosignError::Refused(m)) if m.contains("does not verify")),
            "{e:?}"
        );
        assert!(!key().verifies(PAYLOAD.as_bytes(), "not base64!"));
    }

    #[test]
    fn a_key_that_is_not_p256_is_refused() {
        // An Ed25519 SubjectPublicKeyInfo.
        let ed = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAuRaMDmnm1KvsbmBeB/iPRyrb00muRV+aqBBFS4ADvDk=\n-----END PUBLIC KEY-----\n";
        assert!(matches!(
            CosignKey::from_pem(ed, "k.pub"),
            Err(CosignError::BadKey { .. })
        ));
        assert!(CosignKey::from_pem("hello", "k.pub").is_err());
        assert!(CosignKey::from_pem(PEM, "k.pub").is_ok());
    }

    #[test]
    fn a_payload_naming_another_digest_is_refused() {
        let e = check(
            &key(),
            PAYLOAD.as_bytes(),
            Some(SIGNATURE),
            &Digest::of(b"y"),
        );
        assert!(
            matches!(&e, Err(CosignError::Refused(m)) if m.contains("not the locked")),
            "{e:?}"
        );
    }
}
