//! A kept release checked before it is made current again: its files
//! against its record, its images in the runtime by image ID.

use std::path::Path;

use super::InstallError;
use super::target::{KeptRelease, current_record, kept_releases};
use crate::bundle::ImageRecord;
use crate::runtime::Runtime;

/// The kept release `to` names (by id or version), or the one installed
/// most recently besides the current one.
pub(super) fn choose(
    target: &Path,
    current: &Path,
    to: Option<&str>,
) -> Result<KeptRelease, InstallError> {
    let others: Vec<KeptRelease> = kept_releases(target)?
        .into_iter()
        .filter(|k| k.dir != current)
        .collect();
    let listed = || {
        let names: Vec<String> = others
            .iter()
            .map(|k| format!("{} ({})", k.release.version, k.id))
            .collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    };
    let found: Vec<&KeptRelease> = match to {
        Some(t) => others
            .iter()
            .filter(|k| k.id == t || k.release.version == t)
            .collect(),
        // The release installed most recently besides the current one:
        // the one an upgrade left (and, after a rollback, the one it left).
        None => others
            .iter()
            .max_by(|a, b| a.recorded.cmp(&b.recorded).then_with(|| a.id.cmp(&b.id)))
            .into_iter()
            .collect(),
    };
    match (found.as_slice(), to) {
        ([one], _) => Ok((*one).clone()),
        ([], Some(t)) => Err(InstallError::Refused(format!(
            "no kept release is `{}`; kept besides the current one: {}",
            crate::quote::quote(t),
            listed()
        ))),
        ([], None) => Err(InstallError::Refused(format!(
            "no earlier release is kept in {}: install the bundle of the release to go back to",
            target.display()
        ))),
        (_, _) => Err(InstallError::Refused(format!(
            "several releases are kept; name one with --to: {}",
            listed()
        ))),
    }
}

/// Every file of the release's record, byte for byte as recorded (a
/// template as rendered), each a regular file, and nothing else beside
/// them; returns how many.
pub(super) fn check_files(k: &KeptRelease) -> Result<usize, InstallError> {
    // The record is read again: it must be the one the listing saw.
    let release = current_record(&k.dir)?;
    let mut drifted = Vec::new();
    for f in &release.files {
        let path = k.dir.join(&f.target);
        match crate::digest::hash_regular(&path) {
            Ok((d, size)) if d == f.sha256 && size == f.size => {}
            Ok((d, _)) => drifted.push(format!("{}: {d} instead of {}", f.target, f.sha256)),
            Err(_) => drifted.push(format!("{}: missing or not a regular file", f.target)),
        }
    }
    // Nothing beside them: what the release would serve is what it recorded.
    let recorded: std::collections::BTreeSet<&str> =
        release.files.iter().map(|f| f.target.as_str()).collect();
    for e in walkdir::WalkDir::new(&k.dir)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() != 1 || e.file_name() != ".bale")
        .flatten()
        .filter(|e| !e.file_type().is_dir())
    {
        let rel = e
            .path()
            .strip_prefix(&k.dir)
            .ok()
            .and_then(|p| p.to_str())
            .unwrap_or_default();
        if !recorded.contains(rel) {
            drifted.push(format!("{rel}: added, not part of the release"));
        }
    }
    if drifted.is_empty() {
        Ok(release.files.len())
    } else {
        Err(InstallError::Drifted {
            release: k.id.clone(),
            files: drifted,
        })
    }
}

/// Every image in the runtime with its locked config digest (the image
/// ID); returns how many were checked (none where the runtime keeps no
/// images).
pub(super) fn check_images(
    images: &[&ImageRecord],
    runtime: &dyn Runtime,
) -> Result<usize, InstallError> {
    if runtime.name() == "none" {
        return Ok(0);
    }
    for r in images {
        match runtime.image(&runtime.reference(r))? {
            None => {
                return Err(InstallError::Refused(format!(
                    "image {} (service `{}`) is no longer in {}: install the release's bundle instead",
                    r.name,
                    r.service,
                    runtime.name()
                )));
            }
            Some(img) if img.config.as_ref() != Some(&r.config) => {
                return Err(InstallError::Image {
                    service: r.service.clone(),
                    name: r.name.clone(),
                    message: format!(
                        "is {} in {}, the release ran {}",
                        img.config
                            .as_ref()
                            .map_or("unknown".into(), |d| d.to_string()),
                        runtime.name(),
                        r.config
                    ),
                });
            }
            Some(_) => {}
        }
    }
    Ok(images.len())
}
