//! `bale status`: the operator's one screen of an install directory — the
//! current release and since when, the releases kept beside it, and each
//! service as the runtime runs it. It reads; it changes nothing.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::audit::{self, ServiceAudit};
use crate::digest::Digest;
use crate::install::{self, InstallError};
use crate::runtime::Runtime;

/// One kept release.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseStatus {
    /// Its directory under `.bale/releases`.
    pub id: String,
    /// Bundle name.
    pub name: String,
    /// Bundle version.
    pub version: String,
    /// Its bundle's signed manifest digest.
    pub manifest_digest: Digest,
    /// When its record was written (UTC): at its install, or its last repair.
    pub installed: String,
    /// Whether it is `current`.
    pub current: bool,
}

/// One snapshot kept.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotStatus {
    /// Its id.
    pub id: String,
    /// The version it was taken of.
    pub version: String,
    /// When it was taken (UTC).
    pub taken: String,
    /// Its age in seconds.
    pub age_seconds: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Archives (volumes and data paths).
    pub archives: usize,
}

/// What `bale status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Install directory.
    pub target: PathBuf,
    /// The current release's bundle name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its bundle's signed manifest digest.
    pub manifest_digest: Digest,
    /// Since when it is current (UTC): when `current` was last switched.
    pub current_since: String,
    /// The runtime asked.
    pub runtime: String,
    /// The compose project, where there is one.
    pub project: Option<String>,
    /// Every kept release, oldest version first.
    pub releases: Vec<ReleaseStatus>,
    /// Every kept snapshot, oldest first.
    pub snapshots: Vec<SnapshotStatus>,
    /// An upgrade under way or cut short (`.bale/upgrade.json`): the next
    /// `bale install` of it or `bale rollback` finishes it.
    pub upgrade: Option<install::Journal>,
    /// Each service of the project, as the runtime runs it.
    pub services: Vec<ServiceAudit>,
}

/// Reads the status of the install in `target` with `runtime`.
pub fn status(target: &Path, runtime: &dyn Runtime) -> Result<Status, InstallError> {
    let (current_dir, current) = install::current_release(target)?
        .ok_or_else(|| InstallError::NotInstalled(target.to_owned()))?;
    let since = std::fs::symlink_metadata(target.join("current"))
        .and_then(|m| m.modified())
        .map(crate::clock::utc_of)
        .unwrap_or_default();
    let releases = install::kept_releases(target)?
        .into_iter()
        .map(|k| ReleaseStatus {
            current: k.dir == current_dir,
            installed: crate::clock::utc_of(k.recorded),
            id: k.id,
            name: k.release.name,
            version: k.release.version,
            manifest_digest: k.release.manifest_digest,
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let snapshots = install::list_snapshots(target)?
        .into_iter()
        .map(|s| SnapshotStatus {
            age_seconds: u64::try_from(now - s.manifest.taken_unix).unwrap_or(0),
            id: s.manifest.id,
            version: s.manifest.version,
            taken: s.manifest.taken,
            bytes: s.bytes,
            archives: s.manifest.archives.len(),
        })
        .collect();
    let upgrade = install::journal(target)?;
    let services = audit::services(&current_dir, &current, runtime)?;
    Ok(Status {
        target: target.to_owned(),
        project: current.compose.as_ref().map(|_| {
            current
                .project
                .clone()
                .unwrap_or_else(|| current.name.clone())
        }),
        name: current.name,
        version: current.version,
        manifest_digest: current.manifest_digest,
        current_since: since,
        runtime: runtime.name().to_owned(),
        releases,
        snapshots,
        upgrade,
        services,
    })
}
