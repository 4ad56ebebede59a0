//! `bale prune`: older releases, the images only they use, and older
//! snapshots go; the current release, the newest others, and whatever an
//! interrupted upgrade still needs stay.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::snapshot::list_snapshots;
use super::target::{KeptRelease, Target, kept_releases, recorded_images};
use super::{InstallError, current_release, io_err, journal};
use crate::digest::Digest;
use crate::runtime::Runtime;

/// What a prune is asked to do.
pub struct PruneOptions<'a> {
    /// The install directory.
    pub target: PathBuf,
    /// The runtime the images are in.
    pub runtime: &'a dyn Runtime,
    /// Releases kept, the current one included (at least 1).
    pub keep: usize,
    /// Snapshots kept, newest first (by default as many as releases).
    pub keep_snapshots: Option<usize>,
    /// Say what would go; remove nothing.
    pub dry_run: bool,
}

/// A release, image or snapshot removed (or, in a dry run, to remove).
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    /// Release or snapshot id, or image name.
    pub name: String,
    /// The image ID, for an image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Digest>,
    /// Bytes freed.
    pub bytes: u64,
}

/// What a prune did.
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    /// Nothing was removed: this is what would be.
    pub dry_run: bool,
    /// Releases kept.
    pub kept: Vec<String>,
    /// Releases removed.
    pub releases: Vec<Removed>,
    /// Images removed (used by no kept release).
    pub images: Vec<Removed>,
    /// Images of removed releases the runtime kept (in use by a container,
    /// or tagged under other names too).
    pub images_in_use: Vec<String>,
    /// Snapshots removed.
    pub snapshots: Vec<Removed>,
    /// Bytes freed in all.
    pub bytes_freed: u64,
}

/// Prunes `opts.target`.
pub fn prune(opts: &PruneOptions<'_>) -> Result<PruneReport, InstallError> {
    if opts.keep == 0 {
        return Err(InstallError::Refused(
            "--keep must be at least 1: the current release always stays".into(),
        ));
    }
    if current_release(&opts.target)?.is_none() {
        return Err(InstallError::NotInstalled(opts.target.clone()));
    }
    let target = Target::open(&opts.target)?;
    target.clear_leftovers();
    let (current_dir, _) = current_release(&target.root)?
        .ok_or_else(|| InstallError::NotInstalled(opts.target.clone()))?;
    let pending = journal(&target.root)?;
    let mut releases = kept_releases(&target.root)?;
    // Newest install first; the current release always first.
    releases.sort_by(|a, b| {
        (b.dir == current_dir, b.recorded).cmp(&(a.dir == current_dir, a.recorded))
    });
    let protected = |k: &KeptRelease| {
        k.dir == current_dir
            || pending
                .as_ref()
                .is_some_and(|j| j.from == k.id || j.to == k.id)
    };
    let (mut keep, mut gone) = (Vec::new(), Vec::new());
    for (i, k) in releases.into_iter().enumerate() {
        if i < opts.keep || protected(&k) {
            keep.push(k);
        } else {
            gone.push(k);
        }
    }
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        kept: keep.iter().map(|k| k.id.clone()).collect(),
        releases: Vec::new(),
        images: Vec::new(),
        images_in_use: Vec::new(),
        snapshots: Vec::new(),
        bytes_freed: 0,
    };
    prune_images(&keep, &gone, opts, &mut report)?;
    for k in &gone {
        let bytes = tree_bytes(&k.dir);
        if !opts.dry_run {
            std::fs::remove_dir_all(&k.dir).map_err(io_err(&k.dir))?;
        }
        report.releases.push(Removed {
            name: k.id.clone(),
            id: None,
            bytes,
        });
    }
    let kept_ids: BTreeSet<&str> = keep.iter().map(|k| k.id.as_str()).collect();
    let keep_snapshots = opts.keep_snapshots.unwrap_or(opts.keep);
    let mut snapshots = list_snapshots(&target.root)?;
    snapshots.reverse();
    let mut left = keep_snapshots;
    for s in snapshots {
        let needed = pending
            .as_ref()
            .is_some_and(|j| j.snapshot == s.manifest.id);
        let usable = kept_ids.contains(s.manifest.release.as_str());
        if needed || (usable && left > 0) {
            left = left.saturating_sub(usize::from(!needed));
            continue;
        }
        if !opts.dry_run {
            std::fs::remove_dir_all(&s.dir).map_err(io_err(&s.dir))?;
        }
        report.snapshots.push(Removed {
            name: s.manifest.id.clone(),
            id: None,
            bytes: s.bytes,
        });
    }
    report.bytes_freed = report
        .releases
        .iter()
        .chain(&report.images)
        .chain(&report.snapshots)
        .map(|r| r.bytes)
        .sum();
    super::target::sync_dir(&target.meta);
    Ok(report)
}

/// The images of `gone` releases that no kept release runs, removed.
fn prune_images(
    keep: &[KeptRelease],
    gone: &[KeptRelease],
    opts: &PruneOptions<'_>,
    report: &mut PruneReport,
) -> Result<(), InstallError> {
    if opts.runtime.name() == "none" {
        return Ok(());
    }
    let configs = |rs: &[KeptRelease]| -> Vec<(Digest, String)> {
        rs.iter()
            .filter_map(|k| recorded_images(&k.dir).ok())
            .flat_map(|i| {
                i.runtime_images()
                    .into_iter()
                    .map(|r| (r.config.clone(), r.name.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let used: BTreeSet<Digest> = configs(keep).into_iter().map(|(d, _)| d).collect();
    let mut seen = BTreeSet::new();
    for (id, name) in configs(gone) {
        if used.contains(&id) || !seen.insert(id.clone()) {
            continue;
        }
        let freed = if opts.dry_run {
            opts.runtime.image_size(&id)?
        } else {
            opts.runtime.remove_image(&id)?
        };
        match freed {
            Some(bytes) => report.images.push(Removed {
                name,
                id: Some(id),
                bytes,
            }),
            None if opts.runtime.image_size(&id)?.is_some() => {
                report.images_in_use.push(format!("{name} ({id})"));
            }
            None => {}
        }
    }
    Ok(())
}

/// Bytes of the regular files under `dir` (not following links).
pub(super) fn tree_bytes(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len())
        .sum()
}
