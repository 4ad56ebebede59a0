//! `bale rollback`: back to a release kept under `.bale/releases`, without
//! its bundle file. Its files are checked against its record and its
//! images in the runtime by image ID before `current` moves; nothing is
//! read from a bundle, so nothing unverified is installed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::target::{KeptRelease, Target, current_record, kept_releases};
use super::{InstallError, compose, current_release, release};
use crate::bundle::ImageRecord;
use crate::runtime::{Container, Runtime};

/// What a rollback is asked to do.
pub struct RollbackOptions<'a> {
    /// The install directory.
    pub target: PathBuf,
    /// The release to go to: its id or its version; the one other kept
    /// release when `None`.
    pub to: Option<String>,
    /// The runtime its images must be in.
    pub runtime: &'a dyn Runtime,
    /// Start it and wait for its healthchecks.
    pub up: bool,
    /// How long to wait.
    pub timeout: Duration,
}

/// What a rollback did.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    /// Bundle name.
    pub name: String,
    /// The version that was current.
    pub from: String,
    /// The version that is current now.
    pub to: String,
    /// Its release directory.
    pub release: PathBuf,
    /// Its images found in the runtime (none for a runtime without images).
    pub images_checked: usize,
    /// Its files checked against its record.
    pub files_checked: usize,
    /// With `--up`: each container as it ended.
    pub services: Vec<Container>,
}

/// Goes back to a kept release: checked, switched, and started with `up`.
pub fn rollback(opts: &RollbackOptions<'_>) -> Result<RollbackReport, InstallError> {
    if current_release(&opts.target)?.is_none() {
        return Err(InstallError::NotInstalled(opts.target.clone()));
    }
    let target = Target::open(&opts.target)?;
    target.clear_leftovers();
    // Read again under the lock: another run may have switched meanwhile.
    let (current_dir, current) = current_release(&target.root)?
        .ok_or_else(|| InstallError::NotInstalled(opts.target.clone()))?;
    let chosen = choose(&target.root, &current_dir, opts.to.as_deref())?;
    let files_checked = check_files(&chosen)?;
    let images = super::target::recorded_images(&chosen.dir)?;
    let platform = images.runtime_images();
    let images_checked = check_images(&platform, opts.runtime)?;
    release::switch(&target, &chosen.id, Some(&current_dir))?;
    let services = if opts.up {
        compose::up(
            &target.root,
            &chosen.dir,
            &chosen.release,
            opts.runtime,
            opts.timeout,
            &[],
            &platform,
        )?
    } else {
        Vec::new()
    };
    Ok(RollbackReport {
        name: chosen.release.name.clone(),
        from: current.version,
        to: chosen.release.version.clone(),
        release: chosen.dir.clone(),
        images_checked,
        files_checked,
        services,
    })
}

/// The kept release `to` names (by id or version), or the one other kept
/// release.
fn choose(target: &Path, current: &Path, to: Option<&str>) -> Result<KeptRelease, InstallError> {
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
        None => others.iter().collect(),
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
fn check_files(k: &KeptRelease) -> Result<usize, InstallError> {
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
fn check_images(images: &[&ImageRecord], runtime: &dyn Runtime) -> Result<usize, InstallError> {
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
