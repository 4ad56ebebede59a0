//! A release directory: its record, staging it whole, repairing it in
//! place, and making it current with one rename.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use serde::Serialize;

use super::target::{Target, create_dirs, prune, sync_dir, sync_tree, write_private};
use super::{
    InstallError, InstallOptions, InstalledFile, OpenBundle, Release, compose_pins, io_err,
};
use crate::bundle::{FILES_PREFIX, IMAGES_PATH, ImageRecord};

/// A file that re-installing put back to its signed content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepairedFile {
    /// Path in the release.
    pub target: String,
    /// What it was: `modified`, `missing` or `added` (an added file is removed).
    pub was: &'static str,
}

/// The record of the release `bundle` makes.
pub(super) fn record(
    bundle: &OpenBundle,
    opts: &InstallOptions<'_>,
    images: &[&ImageRecord],
) -> Result<Release, InstallError> {
    let mut files = Vec::new();
    for e in &bundle.manifest.entries {
        if let Some(t) = e.path.strip_prefix(FILES_PREFIX) {
            crate::spec::check_target(t).map_err(|m| InstallError::Invalid(vec![m]))?;
            files.push(InstalledFile {
                target: t.to_owned(),
                sha256: e.sha256.clone(),
                size: e.size,
            });
        }
    }
    Ok(Release {
        format: 1,
        name: bundle.manifest.name.clone(),
        version: bundle.manifest.version.clone(),
        manifest_digest: bundle.manifest_digest.clone(),
        key_id: opts.key.key_id(),
        compose: bundle.images.compose.clone(),
        project: bundle.images.project.clone(),
        platform: images.first().map(|i| i.platform.clone()),
        runtime: opts.runtime.name().to_owned(),
        runtime_address: opts.runtime_address.clone(),
        runtime_namespace: opts.runtime_namespace.clone(),
        files,
    })
}

fn mode_of(bundle: &OpenBundle, target: &str) -> u32 {
    let exec = bundle
        .images
        .files
        .iter()
        .any(|f| f.executable && f.target == target);
    if exec { 0o755 } else { 0o644 }
}

/// Writes one file of the bundle under `root`, created new (O_EXCL never
/// follows a symlink at the destination).
fn lay_out(bundle: &OpenBundle, root: &Path, f: &InstalledFile) -> Result<(), InstallError> {
    let dest = root.join(&f.target);
    if let Some(parent) = dest.parent() {
        create_dirs(root, parent)?;
    }
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode_of(bundle, &f.target))
        .open(&dest)
        .map_err(io_err(&dest))?;
    bundle.copy_entry(&format!("{FILES_PREFIX}{}", f.target), &mut out)?;
    out.sync_all().map_err(io_err(&dest))
}

/// The bale-owned metadata of a release, in `.bale/` inside it.
fn write_meta(
    bundle: &OpenBundle,
    dir: &Path,
    release: &Release,
    images: &[&ImageRecord],
) -> Result<(), InstallError> {
    let meta = dir.join(".bale");
    if fs::symlink_metadata(&meta).is_err() {
        fs::create_dir(&meta).map_err(io_err(&meta))?;
    }
    write_private(&meta.join("release.json"), &to_json(release), 0o644)?;
    let mut images_json = Vec::new();
    bundle.copy_entry(IMAGES_PATH, &mut images_json)?;
    write_private(&meta.join("images.json"), &images_json, 0o644)?;
    write_private(
        &meta.join("compose.pins.yml"),
        compose_pins(images).as_bytes(),
        0o644,
    )
}

/// Stages the release in `.bale/staging-*` and renames it to `release_dir`.
pub(super) fn stage(
    bundle: &OpenBundle,
    meta_dir: &Path,
    release_dir: &Path,
    release: &Release,
    images: &[&ImageRecord],
) -> Result<(), InstallError> {
    let staging = tempfile::Builder::new()
        .prefix("staging-")
        .tempdir_in(meta_dir)
        .map_err(io_err(meta_dir))?;
    let root = staging.path();
    for f in &release.files {
        lay_out(bundle, root, f)?;
    }
    write_meta(bundle, root, release, images)?;
    sync_tree(root);
    // A release directory left by an interrupted run is replaced whole.
    if fs::symlink_metadata(release_dir).is_ok() {
        fs::remove_dir_all(release_dir).map_err(io_err(release_dir))?;
    }
    let staged = staging.keep();
    fs::rename(&staged, release_dir).map_err(io_err(release_dir))?;
    sync_dir(&meta_dir.join("releases"));
    Ok(())
}

/// Puts every file of the current release back to its signed content:
/// modified and missing files are rewritten (temp, fsync, rename), added
/// ones removed, bale's own metadata rewritten. `.env` lives outside the
/// release and is never touched.
pub(super) fn repair(
    bundle: &OpenBundle,
    dir: &Path,
    images: &[&ImageRecord],
) -> Result<Vec<RepairedFile>, InstallError> {
    let release = super::target::current_record(dir)?;
    let expected: BTreeMap<&str, &InstalledFile> = release
        .files
        .iter()
        .map(|f| (f.target.as_str(), f))
        .collect();
    let mut repaired = Vec::new();
    let mut present = BTreeSet::new();
    for e in walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() != 1 || e.file_name() != ".bale")
        .flatten()
    {
        if e.depth() == 0 || e.file_type().is_dir() {
            continue;
        }
        let Some(rel) = e
            .path()
            .strip_prefix(dir)
            .ok()
            .and_then(|p| p.to_str())
            .map(str::to_owned)
        else {
            continue;
        };
        match expected.get(rel.as_str()) {
            None => {
                fs::remove_file(e.path()).map_err(io_err(e.path()))?;
                repaired.push(RepairedFile {
                    target: rel,
                    was: "added",
                });
            }
            Some(f) => {
                present.insert(rel.clone());
                let ok = e.file_type().is_file()
                    && crate::digest::hash_file(e.path()).is_ok_and(|(d, _)| d == f.sha256)
                    && fs::symlink_metadata(e.path())
                        .is_ok_and(|m| m.permissions().mode() & 0o777 == mode_of(bundle, &rel));
                if !ok {
                    rewrite(bundle, dir, f)?;
                    repaired.push(RepairedFile {
                        target: rel,
                        was: "modified",
                    });
                }
            }
        }
    }
    for f in &release.files {
        if !present.contains(&f.target) {
            // A directory where the file belongs goes first.
            let dest = dir.join(&f.target);
            if fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir()) {
                fs::remove_dir_all(&dest).map_err(io_err(&dest))?;
            }
            rewrite(bundle, dir, f)?;
            repaired.push(RepairedFile {
                target: f.target.clone(),
                was: "missing",
            });
        }
    }
    write_meta(bundle, dir, &release, images)?;
    repaired.sort_by(|a, b| a.target.cmp(&b.target));
    Ok(repaired)
}

/// Replaces one file in `dir` with its signed content, atomically.
fn rewrite(bundle: &OpenBundle, dir: &Path, f: &InstalledFile) -> Result<(), InstallError> {
    let dest = dir.join(&f.target);
    let parent = dest.parent().unwrap_or(dir).to_owned();
    create_dirs(dir, &parent)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".bale-tmp-")
        .permissions(fs::Permissions::from_mode(mode_of(bundle, &f.target)))
        .tempfile_in(&parent)
        .map_err(io_err(&parent))?;
    bundle.copy_entry(&format!("{FILES_PREFIX}{}", f.target), tmp.as_file_mut())?;
    tmp.as_file().sync_all().map_err(io_err(&dest))?;
    tmp.persist(&dest).map_err(|e| io_err(&dest)(e.error))?;
    sync_dir(&parent);
    Ok(())
}

/// Makes release `id` current by renaming a new symlink over `current`,
/// then removes releases other than it and `previous`.
pub(super) fn switch(
    target: &Target,
    id: &str,
    previous: Option<&Path>,
) -> Result<(), InstallError> {
    let link_tmp = target.meta.join(format!("current-{}", std::process::id()));
    let _ = fs::remove_file(&link_tmp);
    std::os::unix::fs::symlink(Path::new(".bale/releases").join(id), &link_tmp)
        .map_err(io_err(&link_tmp))?;
    let current = target.root.join("current");
    fs::rename(&link_tmp, &current).map_err(io_err(&current))?;
    sync_dir(&target.root);
    prune(&target.meta.join("releases"), id, previous);
    Ok(())
}

fn to_json(v: &impl Serialize) -> Vec<u8> {
    // Plain structs of strings and numbers always serialise.
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}
