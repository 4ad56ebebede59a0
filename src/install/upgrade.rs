//! Upgrades that undo themselves: a snapshot before the new release
//! starts, and, when it does not come up healthy, the snapshot restored
//! with the previous release.
//!
//! `.bale/upgrade.json` (the journal) says what is under way: from which
//! release to which, with which snapshot, and whether it is upgrading,
//! rolling back, or failed and left for debugging (`--no-rollback`). A
//! bale killed at any point leaves it behind, and the next `bale install`
//! or `bale rollback` finishes the job from it.

use std::time::Duration;

use super::journal::{Journal, Phase, journal, remove_journal, write_journal};
use super::restore::restore_locked;
use super::snapshot::{KeptSnapshot, list_snapshots, take};
use super::target::Target;
use super::{Action, InstallError, InstallOptions, fault_point};
use crate::runtime::{Runtime, RuntimeError};

fn snapshot_named(target: &Target, id: &str) -> Result<KeptSnapshot, InstallError> {
    list_snapshots(&target.root)?
        .into_iter()
        .find(|s| s.manifest.id == id)
        .ok_or_else(|| {
            InstallError::Refused(format!(
                "the snapshot {id} taken before the interrupted upgrade is gone; restore another with `bale restore`"
            ))
        })
}

/// Finishes a rollback the journal asks for: the snapshot and its release
/// back, started; then the journal goes.
pub(super) fn finish_rollback(
    target: &Target,
    j: &Journal,
    runtime: &dyn Runtime,
    timeout: Duration,
) -> Result<super::RestoreReport, InstallError> {
    let mut j = j.clone();
    j.phase = Phase::RollingBack;
    write_journal(target, &j)?;
    let snap = snapshot_named(target, &j.snapshot)?;
    let report = restore_locked(target, runtime, &snap, timeout)?;
    fault_point("rollback-restored");
    remove_journal(target)?;
    Ok(report)
}

/// Before an install reads what is current: an upgrade cut short while
/// rolling back, or one to another release than `id`, is rolled back
/// first; one to `id` itself is left for [`begin`] to resume.
pub(super) fn settle(
    target: &Target,
    id: &str,
    opts: &InstallOptions<'_>,
) -> Result<(), InstallError> {
    let Some(j) = journal(&target.root)? else {
        return Ok(());
    };
    if j.phase == Phase::RollingBack || j.to != id {
        finish_rollback(target, &j, opts.runtime, opts.timeout)?;
    }
    Ok(())
}

/// Snapshots before an upgrade with `--up` (unless turned off), and
/// writes the journal; the journal of the same upgrade cut short is
/// resumed with its snapshot, which holds the data from before it.
pub(super) fn begin(
    target: &Target,
    current: Option<&(std::path::PathBuf, super::Release)>,
    id: &str,
    version: &str,
    action: Action,
    opts: &InstallOptions<'_>,
    wanted: bool,
) -> Result<Option<Journal>, InstallError> {
    let Some((dir, release)) = current else {
        return Ok(None);
    };
    if let Some(j) = journal(&target.root)?
        && j.to == id
    {
        return Ok(Some(j));
    }
    let upgrading = matches!(action, Action::Upgraded | Action::Downgraded);
    if !(opts.up && upgrading && wanted) {
        return Ok(None);
    }
    let snap = match take(target, opts.runtime) {
        Ok(s) => s,
        // A runtime whose volumes bale cannot reach (a swarm: they live
        // on each node) upgrades without one, as documented.
        Err(InstallError::Runtime(RuntimeError::Unsupported(_))) => return Ok(None),
        Err(e) => return Err(e),
    };
    let j = Journal {
        from: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        from_version: release.version.clone(),
        to: id.to_owned(),
        to_version: version.to_owned(),
        snapshot: snap.manifest.id,
        phase: Phase::Upgrading,
    };
    write_journal(target, &j)?;
    fault_point("upgrade-snapshot");
    Ok(Some(j))
}

/// After the new release was started: done (the journal goes), or undone.
pub(super) fn end<T>(
    target: &Target,
    journal: Option<Journal>,
    started: Result<T, InstallError>,
    opts: &InstallOptions<'_>,
) -> Result<T, InstallError> {
    let Some(mut j) = journal else {
        return started;
    };
    let failure = match started {
        Ok(v) => {
            remove_journal(target)?;
            return Ok(v);
        }
        Err(e) => e,
    };
    if !opts.rollback {
        j.phase = Phase::Failed;
        write_journal(target, &j)?;
        return Err(failure);
    }
    match finish_rollback(target, &j, opts.runtime, opts.timeout) {
        Ok(_) => Err(InstallError::RolledBack {
            failure: Box::new(failure),
            to: j.to_version,
            from: j.from_version,
            snapshot: j.snapshot,
        }),
        Err(e) => Err(InstallError::RollbackFailed {
            failure: Box::new(failure),
            rollback: Box::new(e),
        }),
    }
}
