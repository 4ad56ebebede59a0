//! Upstream cosign signatures re-checked offline, from the bundle alone:
//! the key the bundle carries (as the lock recorded it), the signature
//! manifest and its simple-signing payloads.

use std::collections::BTreeMap;

use super::{RawEntry, read_entry};
use crate::bundle::source::Source;
use crate::bundle::{ImageRecord, SignatureRecord};
use crate::cosign::CosignKey;
use crate::cosign::Recheck;
use crate::digest::Digest;

/// What became of one image's signature check.
pub(super) enum Outcome {
    /// The signature verifies with the carried key.
    Verified,
    /// Its pieces are in the base bundle, which verifies them itself.
    FromBase,
    /// It does not verify; why.
    Failed(String),
}

/// Checks the signature of `r`, whose entries `verified` hashed right.
pub(super) fn check(
    file: &Source,
    entries: &[RawEntry],
    verified: &BTreeMap<String, u64>,
    from_base: &[String],
    r: &ImageRecord,
    sig: &SignatureRecord,
) -> Outcome {
    let read_path = |path: &str, want: &Digest, limit: u64| -> Result<Vec<u8>, Outcome> {
        // Left to the base: a base given with --base is verified whole,
        // its signatures with it.
        if from_base.iter().any(|p| p == path) {
            return Err(Outcome::FromBase);
        }
        let failed = |m: String| Outcome::Failed(m);
        if !verified.contains_key(path) {
            return Err(failed(format!("{path} is missing or did not verify")));
        }
        let e = entries
            .iter()
            .find(|e| e.path.as_deref() == Ok(path))
            .ok_or_else(|| failed(format!("{path} is missing")))?;
        let bytes = read_entry(file, e, limit).map_err(failed)?;
        // Read again after hashing: the bytes used are the bytes checked.
        if &Digest::of(&bytes) != want {
            return Err(failed(format!("{path} changed after it was verified")));
        }
        Ok(bytes)
    };
    let key_bytes = match read_path(&sig.key, &sig.key_sha256, 64 * 1024) {
        Ok(b) => b,
        Err(o) => return o,
    };
    let key = match CosignKey::from_pem(&String::from_utf8_lossy(&key_bytes), &sig.key) {
        Ok(k) => k,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let read = |d: &Digest, limit: u64| read_path(&d.blob_path(), d, limit);
    match crate::cosign::recheck(
        &sig.manifest,
        &sig.manifest_media_type,
        &r.digest,
        &key,
        &read,
    ) {
        Ok(()) => Outcome::Verified,
        Err(Recheck::Read(o)) => o,
        Err(Recheck::Refused(m)) => Outcome::Failed(m),
    }
}
