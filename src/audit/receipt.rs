//! Audit receipts: the audit as an in-toto Statement (v1) in a DSSE
//! envelope, signed with the site's Ed25519 key. The subject is the
//! installed bundle's signed manifest (its SHA-256); the predicate is the
//! audit itself: host, time, absolute target, runtime, result, every
//! image's, service's and file's status and every finding (and the scan's,
//! when the audit scanned). Anyone with the public key checks it, with
//! bale (`bale verify-receipt`) or any DSSE implementation.

use serde_json::{Value, json};

use super::AuditReport;
use crate::dsse::{self, DsseError};
use crate::sign::{SigningKey, VerifyingKey};

/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The DSSE payload type of in-toto statements.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The predicate type of bale's audit receipts.
pub const PREDICATE_TYPE: &str = "https://github.com/bale-dev/bale/audit-receipt/v1";

/// The statement for `report`.
pub fn statement(report: &AuditReport) -> Value {
    let mut predicate = serde_json::to_value(report).unwrap_or(Value::Null);
    if let Some(p) = predicate.as_object_mut() {
        p.insert(
            "result".into(),
            json!(if report.ok() {
                "as-signed"
            } else {
                "not-as-signed"
            }),
        );
        p.insert("bale_version".into(), json!(env!("CARGO_PKG_VERSION")));
    }
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{
            "name": format!("{}-{}", report.name, report.version),
            "digest": {"sha256": report.manifest_digest.hex()},
        }],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    })
}

/// The signed receipt's bytes (the DSSE envelope, JSON).
pub fn sign(report: &AuditReport, key: &SigningKey) -> Vec<u8> {
    let payload = serde_json::to_vec(&statement(report)).unwrap_or_default();
    let env = dsse::sign(PAYLOAD_TYPE, &payload, key);
    let mut out = serde_json::to_vec_pretty(&env).unwrap_or_default();
    out.push(b'\n');
    out
}

/// A receipt that verified.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    /// The key that signed it.
    pub key_id: String,
    /// The in-toto statement.
    pub statement: Value,
}

/// Why a receipt is refused.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// The envelope.
    #[error(transparent)]
    Dsse(#[from] DsseError),
    /// The payload is not a bale audit receipt.
    #[error("the signed payload is not a bale audit receipt: {0}")]
    NotReceipt(String),
}

/// Checks a receipt against `key`; returns its statement.
pub fn verify(bytes: &[u8], key: &VerifyingKey) -> Result<Verified, ReceiptError> {
    let (payload_type, payload) = dsse::verify(bytes, key)?;
    if payload_type != PAYLOAD_TYPE {
        return Err(ReceiptError::NotReceipt(format!(
            "payload type is not {PAYLOAD_TYPE}"
        )));
    }
    let statement: Value = serde_json::from_slice(&payload)
        .map_err(|_| ReceiptError::NotReceipt("the statement is not JSON".into()))?;
    if statement["_type"] != STATEMENT_TYPE || statement["predicateType"] != PREDICATE_TYPE {
        return Err(ReceiptError::NotReceipt(format!(
            "not an in-toto v1 statement of type {PREDICATE_TYPE}"
        )));
    }
    Ok(Verified {
        key_id: key.key_id(),
        statement,
    })
}
