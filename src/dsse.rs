//! DSSE envelopes (github.com/secure-systems-lab/dsse, protocol v1): a
//! payload, its type, and Ed25519 signatures over the pre-authentication
//! encoding `DSSEv1 <len> <type> <len> <payload>`. bale signs audit
//! receipts with a site's `bale keygen` key (minisign keys are Ed25519);
//! any DSSE implementation checks them with the raw public key.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::sign::{SigningKey, VerifyingKey};

/// Largest envelope read.
pub const MAX_ENVELOPE_BYTES: u64 = 64 * 1024 * 1024;

/// An envelope, as JSON has it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// The payload, base64.
    pub payload: String,
    /// Its type (`application/vnd.in-toto+json`).
    pub payload_type: String,
    /// Signatures.
    pub signatures: Vec<Signature>,
}

/// One signature.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Signature {
    /// Which key (the minisign key ID).
    #[serde(default)]
    pub keyid: String,
    /// The signature, base64.
    pub sig: String,
}

/// Why an envelope is refused.
#[derive(Debug, thiserror::Error)]
pub enum DsseError {
    /// Not a DSSE envelope.
    #[error("not a DSSE envelope: {0}")]
    Malformed(String),
    /// No signature by the key verifies.
    #[error(
        "no signature by key {key} verifies: the envelope was changed, or signed by another key"
    )]
    BadSignature {
        /// The key tried.
        key: String,
    },
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The pre-authentication encoding DSSE signs.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Signs `payload` of `payload_type` with `key`.
pub fn sign(payload_type: &str, payload: &[u8], key: &SigningKey) -> Envelope {
    let sig = key.sign_raw(&pae(payload_type, payload));
    Envelope {
        payload: b64().encode(payload),
        payload_type: payload_type.to_owned(),
        signatures: vec![Signature {
            keyid: key.key_id(),
            sig: b64().encode(sig),
        }],
    }
}

/// The payload type and payload of the envelope in `bytes`, once a
/// signature by `key` verifies over them.
pub fn verify(bytes: &[u8], key: &VerifyingKey) -> Result<(String, Vec<u8>), DsseError> {
    if bytes.len() as u64 > MAX_ENVELOPE_BYTES {
        return Err(DsseError::Malformed(format!(
            "larger than {MAX_ENVELOPE_BYTES} bytes"
        )));
    }
    let env: Envelope = serde_json::from_slice(bytes)
        .map_err(|e| DsseError::Malformed(format!("line {}, column {}", e.line(), e.column())))?;
    let payload = b64()
        .decode(&env.payload)
        .map_err(|_| DsseError::Malformed("its payload is not base64".into()))?;
    let message = pae(&env.payload_type, &payload);
    let ok = env.signatures.iter().take(64).any(|s| {
        b64()
            .decode(&s.sig)
            .is_ok_and(|sig| key.verify_raw(&message, &sig))
    });
    if !ok {
        return Err(DsseError::BadSignature { key: key.key_id() });
    }
    Ok((env.payload_type, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_is_the_specifications_encoding() {
        // The example of the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }
}
