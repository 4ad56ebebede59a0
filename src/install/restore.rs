//! `bale restore`: a snapshot's data back, byte for byte, with the release
//! it was taken of.
//!
//! Every archive is checked against the manifest before anything is
//! touched, and hashed again while it is extracted into a fresh directory
//! beside its volume; only when every one matched are they swapped in,
//! each with one atomic exchange of directories (`renameat2`), so that a
//! volume is at every moment either its old data or the snapshot's.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::kept::{check_files, check_images};
use super::snapshot::{
    DataKind, KeptSnapshot, SnapshotArchive, Stopped, archive_err, archive_path, data_path,
};
use super::target::{Target, kept_releases, recorded_images};
use super::{InstallError, compose, current_release, fault_point, io_err, release};
use crate::runtime::{Container, Runtime};

/// One archive put back.
#[derive(Debug, Clone, Serialize)]
pub struct RestoredArchive {
    /// Volume or data path.
    pub kind: DataKind,
    /// Its name.
    pub name: String,
    /// Regular files written.
    pub files: u64,
    /// Bytes of their content.
    pub bytes: u64,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The snapshot.
    pub snapshot: String,
    /// The release it belongs to, current now.
    pub release: String,
    /// Its version.
    pub version: String,
    /// The version that was current before, when it was another.
    pub switched_from: Option<String>,
    /// Each archive restored.
    pub archives: Vec<RestoredArchive>,
    /// The containers once started.
    pub services: Vec<Container>,
    /// Seconds spent extracting and checking the archives (the stack kept
    /// running meanwhile).
    pub extract_seconds: f64,
    /// Seconds the stack was stopped for the swap.
    pub stopped_seconds: f64,
}

/// Restores `snapshot` into `target` (locked) and starts its release.
pub(super) fn restore_locked(
    target: &Target,
    runtime: &dyn Runtime,
    snapshot: &KeptSnapshot,
    timeout: Duration,
) -> Result<RestoreReport, InstallError> {
    // 1. Nothing is touched before the snapshot and its release check out:
    // every archive is extracted beside its destination first, hashed
    // as it is read, while the stack still runs on its old data.
    let (current_dir, current) = current_release(&target.root)?
        .ok_or_else(|| InstallError::NotInstalled(target.root.clone()))?;
    let kept = kept_releases(&target.root)?
        .into_iter()
        .find(|k| k.id == snapshot.manifest.release)
        .ok_or_else(|| {
            InstallError::Refused(format!(
                "snapshot {} belongs to release {}, which is no longer kept: install its bundle first",
                snapshot.manifest.id, snapshot.manifest.release
            ))
        })?;
    let images = recorded_images(&kept.dir)?;
    let platform = images.runtime_images();
    let switching = kept.dir != current_dir;
    if switching {
        check_files(&kept)?;
        check_images(&platform, runtime)?;
    }
    sizes_match(snapshot)?;
    let places = destinations(&target.root, &kept.release, runtime, snapshot)?;
    let started = std::time::Instant::now();
    let staged = stage_all(snapshot, &places)?;
    let extract_seconds = started.elapsed().as_secs_f64();
    fault_point("restore-staged");

    // 2. Stop, swap every directory in, switch.
    let stopped_at = std::time::Instant::now();
    let stopped = Stopped::stop(runtime, &current);
    if let Err(e) = stopped {
        remove_all(staged.iter().map(|(_, _, s, _)| s.clone()).collect());
        return Err(e);
    }
    let mut archives = Vec::new();
    let mut old = Vec::new();
    for (a, dest, staging, counts) in &staged {
        swap_in(staging, dest)?;
        old.push(staging.clone());
        archives.push(RestoredArchive {
            kind: a.kind,
            name: a.name.clone(),
            files: counts.files,
            bytes: counts.bytes,
        });
    }
    fault_point("restore-swapped");
    if switching {
        release::switch(target, &kept.id)?;
    }
    let stopped_seconds = stopped_at.elapsed().as_secs_f64();
    // 3. Start the release the data belongs to, while the old data goes.
    let removing = std::thread::spawn(move || remove_all(old));
    let services = if runtime.runs_compose() && kept.release.compose.is_some() {
        compose::up(
            &target.root,
            &kept.dir,
            &kept.release,
            runtime,
            timeout,
            &[],
            &platform,
        )
    } else {
        Ok(Vec::new())
    };
    let _ = removing.join();
    let services = services?;
    Ok(RestoreReport {
        snapshot: snapshot.manifest.id.clone(),
        release: kept.id.clone(),
        version: kept.release.version.clone(),
        switched_from: switching.then(|| current.version.clone()),
        archives,
        services,
        extract_seconds,
        stopped_seconds,
    })
}

/// Every archive has the size its manifest says (the digest is checked
/// while it is extracted): a truncated snapshot is named at once.
fn sizes_match(snapshot: &KeptSnapshot) -> Result<(), InstallError> {
    for a in &snapshot.manifest.archives {
        let path = archive_path(snapshot, a)?;
        let size = std::fs::symlink_metadata(&path).map(|m| m.len()).ok();
        if size != Some(a.size) {
            return Err(InstallError::Altered {
                snapshot: snapshot.manifest.id.clone(),
                archive: a.file.clone(),
                message: format!(
                    "{} instead of {} bytes",
                    size.map_or("missing".into(), |s| s.to_string()),
                    a.size
                ),
            });
        }
    }
    Ok(())
}

/// Removes directories made beside the volumes (old data, or staging
/// never swapped in).
fn remove_all(dirs: Vec<PathBuf>) {
    for d in dirs {
        let _ = fs::remove_dir_all(&d);
    }
}

/// Where each archive goes: its volume's mountpoint (the volume must
/// exist) or its data path (made when missing).
fn destinations(
    root: &Path,
    release: &super::Release,
    runtime: &dyn Runtime,
    snapshot: &KeptSnapshot,
) -> Result<Vec<(SnapshotArchive, PathBuf)>, InstallError> {
    let volumes = if snapshot
        .manifest
        .archives
        .iter()
        .any(|a| a.kind == DataKind::Volume)
    {
        let project = release
            .project
            .clone()
            .unwrap_or_else(|| release.name.clone());
        runtime.volumes(&project)?
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    for a in &snapshot.manifest.archives {
        let dest = match a.kind {
            DataKind::Volume => volumes
                .iter()
                .find(|v| v.name == a.name)
                .map(|v| v.mountpoint.clone())
                .ok_or_else(|| {
                    InstallError::Refused(format!(
                        "volume {} of snapshot {} does not exist in {}: start the release once (`bale install … --up`) to create it, then restore",
                        crate::quote::quote(&a.name),
                        snapshot.manifest.id,
                        runtime.name()
                    ))
                })?,
            DataKind::Path => match data_path(root, &a.name)? {
                Some(d) => d,
                None => {
                    let d = root.join(&a.name);
                    if let Some(parent) = d.parent() {
                        super::target::create_dirs(root, parent)?;
                    }
                    d
                }
            },
        };
        out.push((a.clone(), dest));
    }
    Ok(out)
}

type Staged = (
    SnapshotArchive,
    PathBuf,
    PathBuf,
    crate::volume_archive::Counts,
);

/// Extracts every archive beside its destination, hashing as it reads;
/// on any mismatch removes what it made and names the archive.
fn stage_all(
    snapshot: &KeptSnapshot,
    places: &[(SnapshotArchive, PathBuf)],
) -> Result<Vec<Staged>, InstallError> {
    let mut staged: Vec<Staged> = Vec::new();
    for (a, dest) in places {
        let staging = staging_beside(dest);
        let _ = fs::remove_dir_all(&staging);
        let result = stage_one(snapshot, a, &staging);
        match result {
            Ok(counts) => staged.push((a.clone(), dest.clone(), staging, counts)),
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                for (_, _, s, _) in &staged {
                    let _ = fs::remove_dir_all(s);
                }
                return Err(e);
            }
        }
    }
    Ok(staged)
}

fn stage_one(
    snapshot: &KeptSnapshot,
    a: &SnapshotArchive,
    staging: &Path,
) -> Result<crate::volume_archive::Counts, InstallError> {
    let path = archive_path(snapshot, a)?;
    let file = crate::digest::open_regular(&path).map_err(io_err(&path))?;
    let mut reader = crate::digest::HashingReader::new(io::BufReader::with_capacity(1 << 20, file));
    let counts = crate::volume_archive::extract(&mut reader, staging);
    // The rest of the file (zstd's frame end is read; tar's zero blocks
    // may not be) belongs to the digest too.
    let _ = reader.drain();
    let altered = |message: String| InstallError::Altered {
        snapshot: snapshot.manifest.id.clone(),
        archive: a.file.clone(),
        message,
    };
    let (digest, read) = reader.finish();
    if digest != a.sha256 || read != a.size {
        return Err(altered(format!(
            "changed since it was checked: {digest} instead of {}",
            a.sha256
        )));
    }
    let counts = counts.map_err(archive_err)?;
    if counts != a.contents {
        return Err(altered(format!(
            "holds {} files, {} bytes; its manifest says {} files, {} bytes",
            counts.files, counts.bytes, a.contents.files, a.contents.bytes
        )));
    }
    Ok(counts)
}

fn staging_beside(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".bale-restore-{name}"))
}

/// Puts `staging` at `dest` in one step (an exchange when `dest` exists),
/// then removes what was there.
fn swap_in(staging: &Path, dest: &Path) -> Result<(), InstallError> {
    if fs::symlink_metadata(dest).is_err() {
        fs::rename(staging, dest).map_err(io_err(dest))?;
        return Ok(());
    }
    let a = CString::new(staging.as_os_str().as_bytes())
        .map_err(|e| io_err(staging)(io::Error::other(e)))?;
    let b =
        CString::new(dest.as_os_str().as_bytes()).map_err(|e| io_err(dest)(io::Error::other(e)))?;
    // SAFETY: valid C strings; renameat2 follows no link in the last part.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r != 0 {
        return Err(io_err(dest)(io::Error::last_os_error()));
    }
    if let Some(parent) = dest.parent() {
        super::target::sync_dir(parent);
    }
    // The old data is now under the staging name; the caller removes it.
    Ok(())
}

/// `bale restore`: snapshot `id` (the newest when `None`) of `target`
/// back, with its release, started.
pub fn restore(
    target: &Path,
    runtime: &dyn Runtime,
    id: Option<&str>,
    timeout: Duration,
) -> Result<RestoreReport, InstallError> {
    if current_release(target)?.is_none() {
        return Err(InstallError::NotInstalled(target.to_owned()));
    }
    let t = Target::open(target)?;
    t.clear_leftovers();
    let all = super::list_snapshots(&t.root)?;
    let chosen = match id {
        Some(id) => all.iter().find(|s| s.manifest.id == id),
        None => all.last(),
    };
    let snapshot = chosen.ok_or_else(|| {
        let kept: Vec<&str> = all.iter().map(|s| s.manifest.id.as_str()).collect();
        InstallError::Refused(match id {
            Some(id) => format!(
                "no snapshot `{}` in {}; kept: {}",
                crate::quote::quote(id),
                t.root.display(),
                if kept.is_empty() {
                    "none".into()
                } else {
                    kept.join(", ")
                }
            ),
            None => format!(
                "no snapshot in {}: take one with `bale snapshot`",
                t.root.display()
            ),
        })
    })?;
    let report = restore_locked(&t, runtime, snapshot, timeout)?;
    // A restore of the snapshot an interrupted upgrade took finishes it.
    if super::journal(&t.root)?.is_some_and(|j| j.snapshot == report.snapshot) {
        super::journal::remove_journal(&t)?;
    }
    Ok(report)
}
