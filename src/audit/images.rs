//! The audit's images: each one the runtime should hold, by its locked
//! config digest (and manifest digest where the runtime keeps one).

use super::expected::Expected;
use super::{Findings, ImageAudit};
use crate::bundle::ImageRecord;
use crate::digest::Digest;
use crate::runtime::{Runtime, RuntimeError};

/// Every image of the runtime's platform as the runtime has it.
pub(super) fn audit(
    expected: &Expected,
    runtime: &dyn Runtime,
    findings: &mut Findings,
) -> Result<Vec<ImageAudit>, RuntimeError> {
    let sbom_counts = expected
        .sbom
        .as_deref()
        .map(|b| crate::bundle::sbom::contained_counts(b, expected.images.images.len()));
    let first = expected.images.images.first().map(|i| &i.platform);
    let mut out = Vec::new();
    for (n, r) in expected
        .images
        .images
        .iter()
        .enumerate()
        .filter(|(_, i)| Some(&i.platform) == first)
    {
        let (found, found_manifest, status) = if runtime.name() == "none" {
            (None, None, "skipped")
        } else {
            found(r, runtime, findings)?
        };
        out.push(ImageAudit {
            service: r.service.clone(),
            name: r.name.clone(),
            expected: r.config.clone(),
            found,
            expected_manifest: r.manifest.clone(),
            found_manifest,
            status,
            platform: r.platform.clone(),
            digest: r.digest.clone(),
            signature: r.signature.as_ref().map(|s| s.manifest.clone()),
            attestations: r
                .attestations
                .iter()
                .flat_map(|a| a.predicate_types.iter().cloned())
                .collect(),
            sbom_packages: sbom_counts.as_ref().map(|c| c.get(n).copied().unwrap_or(0)),
        });
    }
    Ok(out)
}

/// What the runtime holds for `r`: its config and manifest digests and
/// the status, with a finding where it is missing or differs.
fn found(
    r: &ImageRecord,
    runtime: &dyn Runtime,
    findings: &mut Findings,
) -> Result<(Option<Digest>, Option<Digest>, &'static str), RuntimeError> {
    let Some(img) = runtime.image(&runtime.reference(r))? else {
        findings.add(
            "image",
            &r.service,
            format!("{} is not in {}", r.name, runtime.name()),
        );
        return Ok((None, None, "missing"));
    };
    let shown = |d: &Option<Digest>| d.as_ref().map_or("unknown".into(), |d| d.to_string());
    let config_ok = img.config.as_ref() == Some(&r.config);
    let manifest_ok = img.manifest.as_ref().is_none_or(|m| m == &r.manifest);
    if !config_ok {
        findings.add(
            "image",
            &r.service,
            format!(
                "{} is {} in {}, locked {}",
                r.name,
                shown(&img.config),
                runtime.name(),
                r.config
            ),
        );
    } else if !manifest_ok {
        findings.add(
            "image",
            &r.service,
            format!(
                "{} has manifest {}, locked {}",
                r.name,
                shown(&img.manifest),
                r.manifest
            ),
        );
    }
    let status = if config_ok && manifest_ok {
        "ok"
    } else {
        "mismatch"
    };
    Ok((img.config, img.manifest, status))
}
