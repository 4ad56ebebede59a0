//! `bale rollback`: back to a release kept under `.bale/releases`, without
//! its bundle file. Its files are checked against its record and its
//! images in the runtime by image ID before `current` moves; nothing is
//! read from a bundle, so nothing unverified is installed.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::journal::journal;
use super::kept::{check_files, check_images, choose};
use super::restore::restore_locked;
use super::snapshot::list_snapshots;
use super::target::Target;
use super::upgrade::finish_rollback;
use super::{InstallError, compose, current_release, release};
use crate::runtime::{Container, Runtime};

/// What a rollback is asked to do.
pub struct RollbackOptions<'a> {
    /// The install directory.
    pub target: PathBuf,
    /// The release to go to: its id or its version; the one installed most
    /// recently besides the current one when `None`.
    pub to: Option<String>,
    /// The runtime its images must be in.
    pub runtime: &'a dyn Runtime,
    /// Start it and wait for its healthchecks.
    pub up: bool,
    /// How long to wait.
    pub timeout: Duration,
    /// Restore the snapshot taken before the upgrade away from the
    /// release too (and start it).
    pub with_data: bool,
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
    /// The snapshot whose data was restored (`--with-data`, or an
    /// interrupted upgrade finished).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
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
    // An upgrade cut short (or failed with --no-rollback): back to the
    // release it started from, on the data from before it.
    if let Some(j) = journal(&target.root)?
        && opts
            .to
            .as_ref()
            .is_none_or(|t| *t == j.from || *t == j.from_version)
    {
        let r = finish_rollback(&target, &j, opts.runtime, opts.timeout)?;
        return Ok(from_restore(&current, r, &target.root));
    }
    let chosen = choose(&target.root, &current_dir, opts.to.as_deref())?;
    if opts.with_data {
        let snap = list_snapshots(&target.root)?
            .into_iter()
            .rev()
            .find(|s| s.manifest.release == chosen.id)
            .ok_or_else(|| {
                InstallError::Refused(format!(
                    "no snapshot of release {} is kept, so its data cannot come back; roll back without --with-data",
                    chosen.id
                ))
            })?;
        let r = restore_locked(&target, opts.runtime, &snap, opts.timeout)?;
        return Ok(from_restore(&current, r, &target.root));
    }
    let files_checked = check_files(&chosen)?;
    let images = super::target::recorded_images(&chosen.dir)?;
    let platform = images.runtime_images();
    let images_checked = check_images(&platform, opts.runtime)?;
    release::switch(&target, &chosen.id)?;
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
        snapshot: None,
    })
}

/// A rollback done by restoring a snapshot (which checked the release's
/// files and images when it switched).
fn from_restore(
    current: &super::Release,
    r: super::RestoreReport,
    root: &std::path::Path,
) -> RollbackReport {
    let dir = root.join(".bale").join("releases").join(&r.release);
    let files_checked = super::target::current_record(&dir).map_or(0, |rec| rec.files.len());
    let images_checked =
        super::target::recorded_images(&dir).map_or(0, |i| i.runtime_images().len());
    RollbackReport {
        name: current.name.clone(),
        from: current.version.clone(),
        to: r.version,
        release: dir,
        images_checked,
        files_checked,
        services: r.services,
        snapshot: Some(r.snapshot),
    }
}
