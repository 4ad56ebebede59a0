//! Snapshots of a stack's data: every named volume of the installed
//! project and every `[data]` path, one zstd tar archive each, with a
//! manifest of their digests, under `DIR/.bale/snapshots/<id>/` (mode
//! 0700, files 0600: they hold the site's data).
//!
//! A snapshot is staged in `snapshots/staging-<id>` and renamed into place
//! once every archive is written and synced: a snapshot that is listed is
//! whole. Consistent means the project's running containers are stopped
//! for the copy and started again; or, where the release declares dump
//! jobs (`[snapshot] jobs`), those run first and the stack keeps running.

use std::fs::{self, File, OpenOptions};
use std::io::BufWriter;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::target::{Target, read_nofollow, sync_dir, write_private};
use super::{InstallError, Release, compose, current_release, fault_point, io_err};
use crate::digest::{Digest, HashingWriter};
use crate::runtime::{Runtime, Volume};

/// The manifest's file name in a snapshot.
const MANIFEST: &str = "snapshot.json";
/// Seconds a container gets to stop before it is killed.
pub const STOP_GRACE: u64 = 30;

/// What an archive of a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataKind {
    /// A named volume of the project.
    Volume,
    /// A `[data]` path of the install directory.
    Path,
}

/// One archive of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotArchive {
    /// Volume or data path.
    pub kind: DataKind,
    /// The volume's name, or the path relative to the install directory.
    pub name: String,
    /// The archive, relative to the snapshot directory.
    pub file: String,
    /// SHA-256 of the archive file.
    pub sha256: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// What it holds.
    pub contents: crate::volume_archive::Counts,
}

/// `snapshot.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotManifest {
    /// Format version (1).
    pub format: u32,
    /// The snapshot's id (its directory name).
    pub id: String,
    /// The release it was taken of (its directory name).
    pub release: String,
    /// The bundle's name.
    pub name: String,
    /// The release's version.
    pub version: String,
    /// When it was taken (UTC, RFC 3339).
    pub taken: String,
    /// The same, in seconds since the epoch, for ordering and ages.
    pub taken_unix: i64,
    /// `stopped` (the running containers were stopped for the copy),
    /// `dump-jobs` (the release's snapshot jobs ran first, the stack kept
    /// running) or `not-running` (nothing was running).
    pub consistency: String,
    /// The runtime the volumes are in.
    pub runtime: String,
    /// The archives.
    pub archives: Vec<SnapshotArchive>,
}

/// A snapshot kept under `.bale/snapshots`.
#[derive(Debug, Clone, Serialize)]
pub struct KeptSnapshot {
    /// Its directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: SnapshotManifest,
    /// Bytes it takes on disk (its archives and manifest).
    pub bytes: u64,
    /// When just taken: seconds spent writing the archives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_seconds: Option<f64>,
    /// When just taken: seconds the stack was stopped for the copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_seconds: Option<f64>,
}

/// Every whole snapshot in `target`, oldest first; a directory without a
/// readable manifest (not one bale made) is left out.
pub fn list_snapshots(target: &Path) -> Result<Vec<KeptSnapshot>, InstallError> {
    let root = target.join(".bale").join("snapshots");
    let entries = match fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&root)(e)),
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let dir = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let is_dir = fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir());
        if !is_dir || name.starts_with("staging-") {
            continue;
        }
        let Ok(Some(bytes)) = read_nofollow(&dir.join(MANIFEST)) else {
            continue;
        };
        let Ok(manifest) = serde_json::from_slice::<SnapshotManifest>(&bytes) else {
            continue;
        };
        if manifest.id != name {
            continue;
        }
        let size = manifest.archives.iter().map(|a| a.size).sum::<u64>() + bytes.len() as u64;
        out.push(KeptSnapshot {
            dir,
            manifest,
            bytes: size,
            copy_seconds: None,
            stopped_seconds: None,
        });
    }
    out.sort_by(|a, b| {
        (a.manifest.taken_unix, &a.manifest.id).cmp(&(b.manifest.taken_unix, &b.manifest.id))
    });
    Ok(out)
}

/// Where the data of `release` is: its project's volumes (where the
/// runtime has them) and its `[data]` paths that exist.
pub(super) fn data_of(
    root: &Path,
    release: &Release,
    runtime: &dyn Runtime,
) -> Result<Vec<(DataKind, String, PathBuf)>, InstallError> {
    let mut out = Vec::new();
    if runtime.runs_compose() && release.compose.is_some() {
        let project = release
            .project
            .clone()
            .unwrap_or_else(|| release.name.clone());
        for Volume { name, mountpoint } in runtime.volumes(&project)? {
            out.push((DataKind::Volume, name, mountpoint));
        }
    }
    for p in &release.data_paths {
        if let Some(dir) = data_path(root, p)? {
            out.push((DataKind::Path, p.clone(), dir));
        }
    }
    Ok(out)
}

/// The directory of data path `rel` under `root`, when it exists; refused
/// when any part of it is a link or not a directory.
pub(super) fn data_path(root: &Path, rel: &str) -> Result<Option<PathBuf>, InstallError> {
    crate::validate::check_relative_target(rel).map_err(InstallError::Bundle)?;
    let mut cur = root.to_owned();
    for part in rel.split('/') {
        cur.push(part);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() && !m.file_type().is_symlink() => {}
            Ok(_) => {
                return Err(InstallError::Unsafe {
                    path: cur,
                    message: "a [data] path must be a directory, not a link or a file".into(),
                });
            }
            Err(_) => return Ok(None),
        }
    }
    Ok(Some(cur))
}

/// How long containers started again after a copy get to be healthy.
const RESTART_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// The project's running containers, stopped; `start_again` undoes it.
pub(super) struct Stopped<'a> {
    runtime: &'a dyn Runtime,
    project: String,
    names: Vec<String>,
}

impl<'a> Stopped<'a> {
    /// Stops every running container of the release's project.
    pub fn stop(runtime: &'a dyn Runtime, release: &Release) -> Result<Self, InstallError> {
        let project = release
            .project
            .clone()
            .unwrap_or_else(|| release.name.clone());
        let names: Vec<String> = if runtime.runs_compose() && release.compose.is_some() {
            runtime
                .containers(&project)?
                .into_iter()
                .filter(|c| c.state == "running")
                .map(|c| c.name)
                .collect()
        } else {
            Vec::new()
        };
        runtime.stop(&names, STOP_GRACE)?;
        Ok(Stopped {
            runtime,
            project,
            names,
        })
    }

    /// Whether anything was running.
    pub fn any(&self) -> bool {
        !self.names.is_empty()
    }

    /// Starts what was stopped, and waits until each is running and
    /// healthy again (where it has a healthcheck).
    pub fn start_again(self) -> Result<(), InstallError> {
        self.runtime.start(&self.names)?;
        let deadline = std::time::Instant::now() + RESTART_WAIT;
        loop {
            let containers = self.runtime.containers(&self.project)?;
            let waiting: Vec<String> = containers
                .iter()
                .filter(|c| self.names.contains(&c.name))
                .filter(|c| c.state != "running" || !(c.health.is_empty() || c.health == "healthy"))
                .map(|c| format!("{} ({}/{})", c.service, c.state, c.health))
                .collect();
            if waiting.is_empty() {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline
                || containers
                    .iter()
                    .any(|c| self.names.contains(&c.name) && c.health == "unhealthy")
            {
                return Err(InstallError::Unhealthy {
                    seconds: RESTART_WAIT.as_secs(),
                    services: waiting,
                    log: None,
                });
            }
            for c in containers.iter().filter(|c| c.health == "starting") {
                self.runtime.check_health(&c.name);
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
}

/// Takes a snapshot of the current release of `target` (locked).
pub(super) fn take(target: &Target, runtime: &dyn Runtime) -> Result<KeptSnapshot, InstallError> {
    let (_, release) = current_release(&target.root)?
        .ok_or_else(|| InstallError::NotInstalled(target.root.clone()))?;
    let release_id = current_id(&target.root)?;
    let data = data_of(&target.root, &release, runtime)?;
    let snapshots = target.meta.join("snapshots");
    private_dir(&snapshots)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let id = unique_id(&snapshots, now, &release.version);
    let staging = snapshots.join(format!("staging-{id}"));
    private_dir(&staging)?;
    let result = (|| {
        let (consistency, archives, times) =
            copy_consistent(target, &release, runtime, &data, &staging)?;
        let manifest = SnapshotManifest {
            format: 1,
            id: id.clone(),
            release: release_id,
            name: release.name.clone(),
            version: release.version.clone(),
            taken: crate::clock::utc(now),
            taken_unix: now,
            consistency,
            runtime: runtime.name().to_owned(),
            archives,
        };
        let mut json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
        json.push(b'\n');
        write_private(&staging.join(MANIFEST), &json, 0o600)?;
        fault_point("snapshot-archived");
        let dir = snapshots.join(&id);
        fs::rename(&staging, &dir).map_err(io_err(&dir))?;
        sync_dir(&snapshots);
        let bytes = manifest.archives.iter().map(|a| a.size).sum::<u64>() + json.len() as u64;
        Ok(KeptSnapshot {
            dir,
            manifest,
            bytes,
            copy_seconds: Some(times.0),
            stopped_seconds: Some(times.1),
        })
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

/// Copies every volume and path while the data is still: dump jobs run
/// first, or the running containers are stopped (and started again,
/// whatever happened to the copy).
/// How a copy went: its consistency, its archives, and the seconds it
/// spent copying and with the stack stopped.
type Copied = (String, Vec<SnapshotArchive>, (f64, f64));

fn copy_consistent(
    target: &Target,
    release: &Release,
    runtime: &dyn Runtime,
    data: &[(DataKind, String, PathBuf)],
    staging: &Path,
) -> Result<Copied, InstallError> {
    if !release.snapshot_jobs.is_empty() {
        let dir = target.root.join("current");
        let project = compose::compose_project(&target.root, &dir, release)
            .ok_or_else(|| InstallError::Bundle("snapshot jobs need a compose file".into()))?;
        for job in &release.snapshot_jobs {
            runtime.compose(
                &project,
                &["run".into(), "--rm".into(), "--no-deps".into(), job.clone()],
            )?;
        }
        let copying = std::time::Instant::now();
        let archives = archive_all(data, staging)?;
        return Ok((
            "dump-jobs".into(),
            archives,
            (copying.elapsed().as_secs_f64(), 0.0),
        ));
    }
    let stopping = std::time::Instant::now();
    let stopped = Stopped::stop(runtime, release)?;
    fault_point("snapshot-stopped");
    let consistency = if stopped.any() {
        "stopped"
    } else {
        "not-running"
    };
    let copying = std::time::Instant::now();
    let archives = archive_all(data, staging);
    let copy_seconds = copying.elapsed().as_secs_f64();
    let stopped_seconds = stopping.elapsed().as_secs_f64();
    let started = stopped.start_again();
    let archives = archives?;
    started?;
    Ok((
        consistency.into(),
        archives,
        (copy_seconds, stopped_seconds),
    ))
}

fn archive_all(
    data: &[(DataKind, String, PathBuf)],
    staging: &Path,
) -> Result<Vec<SnapshotArchive>, InstallError> {
    let mut out = Vec::new();
    for (i, (kind, name, dir)) in data.iter().enumerate() {
        let sub = match kind {
            DataKind::Volume => "volumes",
            DataKind::Path => "paths",
        };
        private_dir(&staging.join(sub))?;
        let file = format!("{sub}/{i:03}-{}.tar.zst", file_safe(name));
        let path = staging.join(&file);
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(io_err(&path))?;
        let mut w = HashingWriter::new(BufWriter::with_capacity(1 << 20, f));
        let contents = crate::volume_archive::write(dir, &mut w).map_err(archive_err)?;
        let size = w.written();
        let (sha256, buf) = w.finish();
        let f: File = buf
            .into_inner()
            .map_err(|e| io_err(&path)(e.into_error()))?;
        f.sync_all().map_err(io_err(&path))?;
        out.push(SnapshotArchive {
            kind: *kind,
            name: name.clone(),
            file,
            sha256,
            size,
            contents,
        });
    }
    sync_dir(staging);
    Ok(out)
}

pub(super) fn archive_err(e: crate::volume_archive::ArchiveError) -> InstallError {
    match e {
        crate::volume_archive::ArchiveError::Io { path, source } => {
            InstallError::Io { path, source }
        }
        crate::volume_archive::ArchiveError::Invalid { entry, message } => {
            InstallError::Bundle(format!("snapshot archive entry {entry}: {message}"))
        }
    }
}

/// A name as a file-name part: letters, digits, `-`, `_`, `.`; others `_`.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

/// `20261204T203000Z-1.2.0`, with `-2`, `-3`… when taken within a second.
fn unique_id(snapshots: &Path, now: i64, version: &str) -> String {
    let stamp: String = crate::clock::utc(now)
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    let base = format!("{stamp}-{version}");
    let mut id = base.clone();
    let mut n = 2;
    while fs::symlink_metadata(snapshots.join(&id)).is_ok()
        || fs::symlink_metadata(snapshots.join(format!("staging-{id}"))).is_ok()
    {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
}

/// The directory name of the current release.
pub(super) fn current_id(root: &Path) -> Result<String, InstallError> {
    let link = root.join("current");
    let dest = fs::read_link(&link).map_err(io_err(&link))?;
    Ok(dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default())
}

/// Makes `dir` (mode 0700) unless it is there; refuses a link.
pub(super) fn private_dir(dir: &Path) -> Result<(), InstallError> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => super::target::ensure_dir(dir),
        Err(e) => Err(io_err(dir)(e)),
    }
}

/// Checks every archive of `snapshot` against its manifest (digest and
/// size), reading each whole; names the first that differs.
pub fn verify_snapshot(snapshot: &KeptSnapshot) -> Result<(), InstallError> {
    for a in &snapshot.manifest.archives {
        let path = archive_path(snapshot, a)?;
        let altered = |message: String| InstallError::Altered {
            snapshot: snapshot.manifest.id.clone(),
            archive: a.file.clone(),
            message,
        };
        match crate::digest::hash_regular(&path) {
            Ok((d, size)) if d == a.sha256 && size == a.size => {}
            Ok((d, size)) => {
                return Err(altered(format!(
                    "{d} ({size} bytes) instead of {} ({} bytes)",
                    a.sha256, a.size
                )));
            }
            Err(e) => return Err(altered(format!("cannot be read: {e}"))),
        }
    }
    Ok(())
}

/// The path of archive `a`, which must be a plain name inside the
/// snapshot (the manifest is read from disk, so it is checked too).
pub(super) fn archive_path(
    snapshot: &KeptSnapshot,
    a: &SnapshotArchive,
) -> Result<PathBuf, InstallError> {
    let ok = a.file.split('/').count() == 2
        && (a.file.starts_with("volumes/") || a.file.starts_with("paths/"))
        && a.file
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..");
    if !ok {
        return Err(InstallError::Altered {
            snapshot: snapshot.manifest.id.clone(),
            archive: crate::quote::quote(&a.file),
            message: "not an archive path bale writes".into(),
        });
    }
    Ok(snapshot.dir.join(&a.file))
}

/// `bale snapshot`: a snapshot of the current release of `target`'s data.
pub fn snapshot(target: &Path, runtime: &dyn Runtime) -> Result<KeptSnapshot, InstallError> {
    if current_release(target)?.is_none() {
        return Err(InstallError::NotInstalled(target.to_owned()));
    }
    let t = Target::open(target)?;
    t.clear_leftovers();
    take(&t, runtime)
}
