//! `.bale/upgrade.json`, the journal of an upgrade under way: written
//! before each of its phases, read by the next run to finish the job.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::target::{Target, read_nofollow, write_private};
use super::{InstallError, io_err};

const JOURNAL: &str = "upgrade.json";

/// Where an upgrade is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The new release is being installed and started.
    Upgrading,
    /// It failed; the snapshot and the previous release are going back.
    RollingBack,
    /// It failed and was left as it was (`--no-rollback`).
    Failed,
}

/// `.bale/upgrade.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    /// The release upgraded from (directory name).
    pub from: String,
    /// Its version.
    pub from_version: String,
    /// The release upgraded to.
    pub to: String,
    /// Its version.
    pub to_version: String,
    /// The snapshot taken before.
    pub snapshot: String,
    /// Where it is.
    pub phase: Phase,
}

/// The journal of `target`, if an upgrade is under way or was cut short.
pub fn journal(target: &Path) -> Result<Option<Journal>, InstallError> {
    let path = target.join(".bale").join(JOURNAL);
    let Some(bytes) = read_nofollow(&path)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| InstallError::Unsafe {
            path,
            message: format!("unreadable: {e}"),
        })
}

pub(super) fn write_journal(target: &Target, j: &Journal) -> Result<(), InstallError> {
    let mut json = serde_json::to_vec_pretty(j).unwrap_or_default();
    json.push(b'\n');
    write_private(&target.meta.join(JOURNAL), &json, 0o600)
}

pub(super) fn remove_journal(target: &Target) -> Result<(), InstallError> {
    let path = target.meta.join(JOURNAL);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            super::target::sync_dir(&target.meta);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(&path)(e)),
    }
}
