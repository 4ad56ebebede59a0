//! `bale uninstall`: the stack stopped and removed, its images removed
//! where nothing else uses them, its releases gone; the site's data
//! (volumes, `[data]` paths), `.env` and snapshots kept unless purged.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;

use super::prune::Removed;
use super::snapshot::data_path;
use super::target::{Target, kept_releases, recorded_images};
use super::{InstallError, compose, current_release, io_err};
use crate::digest::Digest;
use crate::runtime::{Runtime, RuntimeError};

/// What an uninstall is asked to do.
pub struct UninstallOptions<'a> {
    /// The install directory.
    pub target: PathBuf,
    /// The runtime the stack runs in.
    pub runtime: &'a dyn Runtime,
    /// Keep the images in the runtime.
    pub keep_images: bool,
    /// Remove the data too: volumes, `[data]` paths, `.env`, values,
    /// snapshots, and `.bale` itself. The caller has asked.
    pub purge: bool,
}

/// What an uninstall did.
#[derive(Debug, Clone, Serialize)]
pub struct UninstallReport {
    /// Bundle name.
    pub name: String,
    /// The version that was current.
    pub version: String,
    /// The compose project stopped and removed (containers, networks), if any.
    pub project: Option<String>,
    /// Images removed.
    pub images: Vec<Removed>,
    /// Images kept because something else uses them, or `--keep-images`.
    pub images_kept: Vec<String>,
    /// Releases removed.
    pub releases: Vec<String>,
    /// Volumes of the project: removed with `--purge`, kept otherwise.
    pub volumes: Vec<String>,
    /// Whether data, `.env` and snapshots were removed too.
    pub purged: bool,
}

/// Uninstalls the stack installed in `opts.target`.
pub fn uninstall(opts: &UninstallOptions<'_>) -> Result<UninstallReport, InstallError> {
    if current_release(&opts.target)?.is_none() {
        return Err(InstallError::NotInstalled(opts.target.clone()));
    }
    let target = Target::open(&opts.target)?;
    target.clear_leftovers();
    let (dir, release) = current_release(&target.root)?
        .ok_or_else(|| InstallError::NotInstalled(opts.target.clone()))?;
    let releases = kept_releases(&target.root)?;
    let runtime = opts.runtime;
    // 1. The stack: containers and networks (a swarm's stack).
    let project = compose::compose_project(&target.root, &dir, &release);
    if let Some(p) = project.as_ref().filter(|_| runtime.runs_compose()) {
        runtime.down(p)?;
    }
    // 2. Images no other project uses (the runtime refuses those in use).
    let mut images = Vec::new();
    let mut images_kept = Vec::new();
    if runtime.name() != "none" {
        let mut seen: BTreeSet<Digest> = BTreeSet::new();
        for k in &releases {
            let Ok(list) = recorded_images(&k.dir) else {
                continue;
            };
            for r in list.runtime_images() {
                if !seen.insert(r.config.clone()) {
                    continue;
                }
                if opts.keep_images {
                    images_kept.push(r.name.clone());
                    continue;
                }
                match runtime.remove_image(&r.config)? {
                    Some(bytes) => images.push(Removed {
                        name: r.name.clone(),
                        id: Some(r.config.clone()),
                        bytes,
                    }),
                    None if runtime.image_size(&r.config)?.is_some() => {
                        images_kept.push(format!("{} (in use)", r.name));
                    }
                    None => {}
                }
            }
        }
    }
    // 3. Volumes: listed; removed only when purging.
    let project_name = release
        .project
        .clone()
        .unwrap_or_else(|| release.name.clone());
    let volumes = match runtime.volumes(&project_name) {
        Ok(v) => v,
        Err(RuntimeError::Unsupported(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    if opts.purge {
        for v in &volumes {
            runtime.remove_volume(&v.name)?;
        }
    }
    // 4. The releases, then `current` last: until then the directory
    // still says what is installed.
    let link = target.root.join("current");
    std::fs::remove_file(&link).map_err(io_err(&link))?;
    super::target::sync_dir(&target.root);
    let releases_dir = target.meta.join("releases");
    std::fs::remove_dir_all(&releases_dir).map_err(io_err(&releases_dir))?;
    let _ = super::journal::remove_journal(&target);
    if opts.purge {
        purge(&target, &release)?;
    }
    Ok(UninstallReport {
        name: release.name.clone(),
        version: release.version.clone(),
        project: project.map(|p| p.name),
        images,
        images_kept,
        releases: releases.into_iter().map(|k| k.id).collect(),
        volumes: volumes.into_iter().map(|v| v.name).collect(),
        purged: opts.purge,
    })
}

/// Removes the site's data paths, `.env`, values and `.bale`; the install
/// directory itself when nothing else is left in it.
fn purge(target: &Target, release: &super::Release) -> Result<(), InstallError> {
    for p in &release.data_paths {
        if let Some(d) = data_path(&target.root, p)? {
            std::fs::remove_dir_all(&d).map_err(io_err(&d))?;
        }
    }
    for name in [".env", "values"] {
        let p = target.root.join(name);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p).map_err(io_err(&p))?,
            Ok(_) => std::fs::remove_file(&p).map_err(io_err(&p))?,
            Err(_) => {}
        }
    }
    std::fs::remove_dir_all(&target.meta).map_err(io_err(&target.meta))?;
    let _ = std::fs::remove_dir(&target.root);
    Ok(())
}
