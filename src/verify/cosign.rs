//! Upstream cosign signatures re-checked offline, from the bundle alone:
//! the key the bundle carries (as the lock recorded it), the signature
//! manifest and its simple-signing payloads.

use std::collections::BTreeMap;

use super::{RawEntry, read_entry};
use crate::bundle::source::Source;
use crate::bundle::{ImageRecord, SignatureRecord};
use crate::cosign::CosignKey;
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
    const FROM_BASE: &str = "\u{0}from-base";
    let read_path = |path: &str, want: Option<&Digest>, limit: u64| -> Result<Vec<u8>, String> {
        // Left to the base: a base given with --base is verified whole,
        // its signatures with it.
        if from_base.iter().any(|p| p == path) {
            return Err(FROM_BASE.into());
        }
        if !verified.contains_key(path) {
            return Err(format!("{path} is missing or did not verify"));
        }
        let e = entries
            .iter()
            .find(|e| e.path.as_deref() == Ok(path))
            .ok_or_else(|| format!("{path} is missing"))?;
        let bytes = read_entry(file, e, limit)?;
        // Read again after hashing: the bytes used are the bytes checked.
        if let Some(d) = want
            && &Digest::of(&bytes) != d
        {
            return Err(format!("{path} changed after it was verified"));
        }
        Ok(bytes)
    };
    let result = (|| {
        let key_bytes = read_path(&sig.key, Some(&sig.key_sha256), 64 * 1024)?;
        let key = CosignKey::from_pem(&String::from_utf8_lossy(&key_bytes), &sig.key)
            .map_err(|e| e.to_string())?;
        let read = |d: &Digest, limit: u64| {
            read_path(&format!("blobs/sha256/{}", d.hex()), Some(d), limit)
        };
        crate::lock::recheck(
            &sig.manifest,
            &sig.manifest_media_type,
            &r.digest,
            &key,
            &read,
        )
    })();
    match result {
        Ok(()) => Outcome::Verified,
        Err(m) if m == FROM_BASE => Outcome::FromBase,
        Err(m) => Outcome::Failed(m),
    }
}
