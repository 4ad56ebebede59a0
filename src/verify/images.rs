//! Each image of a verified bundle's image list: whether all its blobs
//! hashed right (or are its base's), and its upstream signature.

use std::collections::BTreeMap;

use super::{ImageStatus, Problem, RawEntry, cosign};
use crate::bundle::ImageRecord;
use crate::bundle::source::Source;
use crate::digest::Digest;

/// What verification saw of the bundle.
pub(super) struct Seen<'a> {
    /// Its bytes.
    pub file: &'a Source,
    /// Its raw entries.
    pub entries: &'a [RawEntry],
    /// The entries that hashed right, with their sizes.
    pub verified: &'a BTreeMap<String, u64>,
    /// For a delta, the entries its base provides.
    pub from_base: &'a [String],
}

/// The status of each image record, and the problems found on the way.
pub(super) fn statuses(
    seen: &Seen<'_>,
    records: Vec<ImageRecord>,
) -> (Vec<ImageStatus>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    // One check per signed image and key, whatever its platforms.
    let mut signatures: BTreeMap<(Digest, String), &'static str> = BTreeMap::new();
    for r in records {
        let cosign = r.signature.as_ref().map(|sig| {
            let key = (r.digest.clone(), sig.key.clone());
            if let Some(done) = signatures.get(&key) {
                return *done;
            }
            let outcome = match cosign::check(
                seen.file,
                seen.entries,
                seen.verified,
                seen.from_base,
                &r,
                sig,
            ) {
                cosign::Outcome::Verified => "verified",
                cosign::Outcome::FromBase => "from-base",
                cosign::Outcome::Failed(m) => {
                    problems.push(Problem::new(
                        &format!("{} ({})", r.service, r.name),
                        format!("upstream cosign signature: {m}"),
                    ));
                    "failed"
                }
            };
            signatures.insert(key, outcome);
            outcome
        });
        let paths: Vec<String> = std::iter::once(&r.digest)
            .chain([&r.manifest, &r.config])
            .chain(r.layers.iter())
            .map(|d| d.blob_path())
            .collect();
        let ok = paths.iter().all(|p| seen.verified.contains_key(p));
        let elsewhere = paths
            .iter()
            .all(|p| seen.verified.contains_key(p) || seen.from_base.contains(p));
        out.push(ImageStatus {
            service: r.service,
            name: r.name,
            platform: r.platform,
            digest: r.digest,
            manifest: r.manifest,
            config: r.config,
            status: if ok {
                "ok"
            } else if elsewhere {
                "from-base"
            } else {
                "failed"
            },
            cosign,
        });
    }
    (out, problems)
}
