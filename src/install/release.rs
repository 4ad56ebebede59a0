//! A release directory: its record, staging it whole, repairing it in
//! place, and making it current with one rename.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use serde::Serialize;

use super::env::EnvFile;
use super::target::{Target, create_dirs, sync_dir, sync_tree, write_private};
use super::{
    InstallError, InstallOptions, InstalledFile, OpenBundle, Release, compose_pins, io_err,
};
use crate::bundle::{FILES_PREFIX, IMAGES_PATH, ImageRecord};
use crate::digest::Digest;
use crate::spec::Value;
use crate::templates::{self, Context};

/// A file that re-installing put back to its signed content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepairedFile {
    /// Path in the release.
    pub target: String,
    /// What it was: `modified`, `missing`, `added` (an added file is
    /// removed), or `rerendered` (a template whose values changed).
    pub was: &'static str,
}

/// What templates are rendered with, and the same context with every
/// secret replaced: a rendered file that differs between the two depends on
/// a secret, whatever filters it went through, and gets mode 0600.
pub(super) struct Render {
    /// The template context.
    pub ctx: Context,
    /// `ctx` with every secret (generated, and `secret = true` values)
    /// changed in every character; `None` when there is no secret.
    pub without_secrets: Option<Context>,
}

/// `s` with every character changed.
fn other(s: &str) -> String {
    s.chars()
        .map(|c| if c == 'x' { 'y' } else { 'x' })
        .collect()
}

/// The render context of a release: site values, secrets from `env`, the
/// bundle's name and version, and each service's image.
pub(super) fn context(
    bundle: &OpenBundle,
    values: &BTreeMap<String, Value>,
    env: &EnvFile,
    images: &[&ImageRecord],
) -> Render {
    let secrets = templates::secret_context(&bundle.spec.secrets, values, &mut |k| {
        env.get(k).unwrap_or_default()
    });
    let ctx = Context {
        values: values.clone(),
        secrets,
        bundle: (
            bundle.manifest.name.clone(),
            bundle.manifest.version.clone(),
        ),
        images: images
            .iter()
            .map(|r| (r.service.clone(), r.name.clone()))
            .collect(),
    };
    let mut changed = ctx.clone();
    let mut any = false;
    for v in changed.secrets.values_mut() {
        any = true;
        match v {
            templates::SecretValue::One(s) => *s = other(s),
            templates::SecretValue::PerItem(m) => m.values_mut().for_each(|s| *s = other(s)),
        }
    }
    for spec in bundle.spec.values.iter().filter(|v| v.secret) {
        if let Some(v) = changed.values.get_mut(&spec.name) {
            any = true;
            *v = match v {
                Value::String(s) => Value::String(other(s)),
                Value::List(l) => Value::List(l.iter().map(|s| other(s)).collect()),
            };
        }
    }
    Render {
        ctx,
        without_secrets: any.then_some(changed),
    }
}

/// The record of the release `bundle` makes (templates still with their
/// signed digests: staging puts in the rendered ones).
pub(super) fn record(
    bundle: &OpenBundle,
    opts: &InstallOptions<'_>,
    images: &[&ImageRecord],
    values: &BTreeMap<String, Value>,
    target: &Target,
) -> Result<Release, InstallError> {
    let files = files_of(bundle)?;
    let values = if values.is_empty() {
        BTreeMap::new()
    } else {
        super::values::digests(values, &target.values_key()?)
    };
    Ok(Release {
        format: 1,
        name: bundle.manifest.name.clone(),
        version: bundle.manifest.version.clone(),
        manifest_digest: bundle.content_digest(),
        key_id: opts.key.key_id(),
        compose: bundle.images.compose.clone(),
        project: bundle.images.project.clone(),
        platform: images.first().map(|i| i.platform.clone()),
        runtime: opts.runtime.name().to_owned(),
        runtime_address: opts.runtime_address.clone(),
        runtime_namespace: opts.runtime_namespace.clone(),
        runtime_registry: opts.runtime.registry(),
        jobs: bundle.spec.jobs(),
        data_paths: bundle.spec.lifecycle.data_paths.clone(),
        snapshot_jobs: bundle.spec.lifecycle.snapshot_jobs.clone(),
        files,
        values,
    })
}

/// The files of the bundle as a release records them (templates still
/// with their signed digests).
pub(super) fn files_of(bundle: &OpenBundle) -> Result<Vec<InstalledFile>, InstallError> {
    let templates: BTreeSet<&str> = bundle
        .images
        .files
        .iter()
        .filter(|f| f.template)
        .map(|f| f.target.as_str())
        .collect();
    let mut files = Vec::new();
    for e in &bundle.manifest.entries {
        if let Some(t) = e.path.strip_prefix(FILES_PREFIX) {
            crate::validate::check_target(t)
                .map_err(|m| crate::verify::OpenError::Invalid(vec![m]))?;
            files.push(InstalledFile {
                target: t.to_owned(),
                sha256: e.sha256.clone(),
                size: e.size,
                template: templates.contains(t).then(|| e.sha256.clone()),
            });
        }
    }
    Ok(files)
}

fn mode_of(bundle: &OpenBundle, target: &str) -> u32 {
    let exec = bundle
        .images
        .files
        .iter()
        .any(|f| f.executable && f.target == target);
    if exec { 0o755 } else { 0o644 }
}

/// The largest template bale renders.
const MAX_TEMPLATE: u64 = 16 * 1024 * 1024;

/// A template of the bundle rendered, with the mode it gets: 0600 when
/// its content depends on a secret.
fn rendered(
    bundle: &OpenBundle,
    f: &InstalledFile,
    render: &Render,
) -> Result<(Vec<u8>, u32), InstallError> {
    if f.size > MAX_TEMPLATE {
        return Err(InstallError::Bundle(format!(
            "template {} is over {MAX_TEMPLATE} bytes",
            f.target
        )));
    }
    let source = bundle.read_small(&format!("{FILES_PREFIX}{}", f.target))?;
    let source = String::from_utf8(source)
        .map_err(|_| InstallError::Bundle(format!("template {} is not UTF-8", f.target)))?;
    let kind = if bundle.images.compose.as_deref() == Some(f.target.as_str()) {
        templates::Kind::Compose
    } else {
        templates::Kind::Plain
    };
    let out = templates::render(&f.target, &source, &render.ctx, kind).map_err(|e| {
        InstallError::Template {
            file: f.target.clone(),
            line: e.line,
            column: e.column,
            message: e.message,
        }
    })?;
    // A render that fails only with other secrets depends on them too.
    let private = render
        .without_secrets
        .as_ref()
        .is_some_and(|c| templates::render(&f.target, &source, c, kind).map_or(true, |o| o != out));
    let mode = if private {
        0o600
    } else {
        mode_of(bundle, &f.target)
    };
    Ok((out.into_bytes(), mode))
}

/// Writes one file of the release under `root`, created new (O_EXCL never
/// follows a symlink at the destination); a template is rendered, and its
/// record gets the rendered digest.
fn lay_out(
    bundle: &OpenBundle,
    root: &Path,
    f: &mut InstalledFile,
    render: &Render,
) -> Result<(), InstallError> {
    let dest = root.join(&f.target);
    if let Some(parent) = dest.parent() {
        create_dirs(root, parent)?;
    }
    let content = match f.template {
        Some(_) => Some(rendered(bundle, f, render)?),
        None => None,
    };
    let mode = content.as_ref().map_or(mode_of(bundle, &f.target), |c| c.1);
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&dest)
        .map_err(io_err(&dest))?;
    match content {
        Some((bytes, _)) => {
            out.write_all(&bytes).map_err(io_err(&dest))?;
            f.sha256 = Digest::of(&bytes);
            f.size = bytes.len() as u64;
        }
        None => bundle.copy_entry(&format!("{FILES_PREFIX}{}", f.target), &mut out)?,
    }
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
    super::target::ensure_dir(&meta)?;
    write_private(&meta.join("release.json"), &to_json(release), 0o644)?;
    let mut images_json = Vec::new();
    bundle.copy_entry(IMAGES_PATH, &mut images_json)?;
    write_private(&meta.join("images.json"), &images_json, 0o644)?;
    // The SBOM stays on the host for auditors (bundles from before SBOMs
    // have none).
    if bundle.expected(crate::bundle::SBOM_PATH).is_ok() {
        let mut sbom = Vec::new();
        bundle.copy_entry(crate::bundle::SBOM_PATH, &mut sbom)?;
        write_private(&meta.join("sbom.spdx.json"), &sbom, 0o644)?;
    }
    // So is its VEX document, for `bale scan --target`.
    if bundle.expected(crate::bundle::VEX_PATH).is_ok() {
        let mut vex = Vec::new();
        bundle.copy_entry(crate::bundle::VEX_PATH, &mut vex)?;
        write_private(&meta.join("vex.json"), &vex, 0o644)?;
    }
    let compose = super::compose_text(dir, release);
    write_private(
        &meta.join("compose.pins.yml"),
        compose_pins(
            images,
            compose.as_deref(),
            release.runtime_registry.as_deref(),
            &release.jobs,
        )
        .as_bytes(),
        0o644,
    )
}

/// Stages the release in `.bale/staging-*` and renames it to `release_dir`.
pub(super) fn stage(
    bundle: &OpenBundle,
    meta_dir: &Path,
    release_dir: &Path,
    release: &mut Release,
    images: &[&ImageRecord],
    render: &Render,
) -> Result<(), InstallError> {
    let staging = tempfile::Builder::new()
        .prefix("staging-")
        .tempdir_in(meta_dir)
        .map_err(io_err(meta_dir))?;
    let root = staging.path();
    for f in &mut release.files {
        lay_out(bundle, root, f, render)?;
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

/// Brings the current release to what `release` describes: every file
/// that drifted is put back (temp, fsync, rename), a template rendered
/// again with the values of now (`rerendered` when only the values moved),
/// added files removed, bale's own metadata rewritten. `.env` lives outside
/// the release and is never touched here.
pub(super) fn repair(
    bundle: &OpenBundle,
    dir: &Path,
    images: &[&ImageRecord],
    render: &Render,
    old: &Release,
    release: &mut Release,
) -> Result<Vec<RepairedFile>, InstallError> {
    let old_digest: BTreeMap<&str, &Digest> = old
        .files
        .iter()
        .map(|f| (f.target.as_str(), &f.sha256))
        .collect();
    let mut wanted: BTreeMap<String, (Option<Vec<u8>>, u32)> = BTreeMap::new();
    for f in &mut release.files {
        let (content, mode) = match f.template {
            Some(_) => {
                let (bytes, mode) = rendered(bundle, f, render)?;
                f.sha256 = Digest::of(&bytes);
                f.size = bytes.len() as u64;
                (Some(bytes), mode)
            }
            None => (None, mode_of(bundle, &f.target)),
        };
        wanted.insert(f.target.clone(), (content, mode));
    }
    let digests: BTreeMap<String, Digest> = release
        .files
        .iter()
        .map(|f| (f.target.clone(), f.sha256.clone()))
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
        let (Some(want), Some((content, mode))) = (digests.get(&rel), wanted.get(&rel)) else {
            fs::remove_file(e.path()).map_err(io_err(e.path()))?;
            repaired.push(RepairedFile {
                target: rel,
                was: "added",
            });
            continue;
        };
        present.insert(rel.clone());
        let found = e
            .file_type()
            .is_file()
            .then(|| crate::digest::hash_regular(e.path()).ok().map(|(d, _)| d))
            .flatten();
        let mode_ok =
            fs::symlink_metadata(e.path()).is_ok_and(|m| m.permissions().mode() & 0o777 == *mode);
        if found.as_ref() == Some(want) && mode_ok {
            continue;
        }
        rewrite(bundle, dir, &rel, content.as_deref(), *mode)?;
        let was = if found.as_ref() == old_digest.get(rel.as_str()).copied() {
            "rerendered"
        } else {
            "modified"
        };
        repaired.push(RepairedFile { target: rel, was });
    }
    for (rel, (content, mode)) in &wanted {
        if present.contains(rel) {
            continue;
        }
        // A directory where the file belongs goes first.
        let dest = dir.join(rel);
        if fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(&dest).map_err(io_err(&dest))?;
        }
        rewrite(bundle, dir, rel, content.as_deref(), *mode)?;
        repaired.push(RepairedFile {
            target: rel.clone(),
            was: "missing",
        });
    }
    write_meta(bundle, dir, release, images)?;
    repaired.sort_by(|a, b| a.target.cmp(&b.target));
    Ok(repaired)
}

/// Replaces one file in `dir` with `content` (or the bundle's entry),
/// atomically.
fn rewrite(
    bundle: &OpenBundle,
    dir: &Path,
    target: &str,
    content: Option<&[u8]>,
    mode: u32,
) -> Result<(), InstallError> {
    let dest = dir.join(target);
    let parent = dest.parent().unwrap_or(dir).to_owned();
    create_dirs(dir, &parent)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".bale-tmp-")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(&parent)
        .map_err(io_err(&parent))?;
    match content {
        Some(bytes) => tmp.as_file_mut().write_all(bytes).map_err(io_err(&dest))?,
        None => bundle.copy_entry(&format!("{FILES_PREFIX}{target}"), tmp.as_file_mut())?,
    }
    tmp.as_file().sync_all().map_err(io_err(&dest))?;
    tmp.persist(&dest).map_err(|e| io_err(&dest)(e.error))?;
    sync_dir(&parent);
    Ok(())
}

/// Makes release `id` current by renaming a new symlink over `current`,
/// then removes releases other than it and `previous`.
pub(super) fn switch(target: &Target, id: &str) -> Result<(), InstallError> {
    let link_tmp = target.meta.join(format!("current-{}", std::process::id()));
    let _ = fs::remove_file(&link_tmp);
    std::os::unix::fs::symlink(Path::new(".bale/releases").join(id), &link_tmp)
        .map_err(io_err(&link_tmp))?;
    let current = target.root.join("current");
    fs::rename(&link_tmp, &current).map_err(io_err(&current))?;
    sync_dir(&target.root);
    Ok(())
}

fn to_json(v: &impl Serialize) -> Vec<u8> {
    // Plain structs of strings and numbers always serialise.
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}

/// One file in a dry run's plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedFile {
    /// Path in the release.
    pub target: String,
    /// `add`, `change`, `same` or `remove`, against the current release.
    pub change: &'static str,
    /// Lines added and removed (text files that change; never for a file
    /// that holds a secret, whose lines are not compared).
    pub lines: Option<(usize, usize)>,
}

/// What `files` would do to the `current` release (none for a first
/// install). Files on disk are compared by digest; only a changed text
/// file of at most [`MAX_TEMPLATE`] bytes is read whole, for line counts.
pub(super) fn plan_files(
    bundle: &OpenBundle,
    files: &[InstalledFile],
    render: &Render,
    current: Option<(&Path, &Release)>,
) -> Result<Vec<PlannedFile>, InstallError> {
    let mut out = Vec::new();
    for f in files {
        let (rendered_now, private) = match f.template {
            Some(_) => {
                let (bytes, mode) = rendered(bundle, f, render)?;
                (Some(bytes), mode == 0o600)
            }
            None => (None, false),
        };
        let want = rendered_now.as_deref().map_or(f.sha256.clone(), Digest::of);
        let path = current.map(|(d, _)| d.join(&f.target));
        let found = path
            .as_ref()
            .and_then(|p| crate::digest::hash_regular(p).ok().map(|(d, _)| d));
        let change = match &found {
            None => "add",
            Some(d) if *d == want => "same",
            Some(_) => "change",
        };
        let mut lines = None;
        if let (Some(p), "change") = (&path, change)
            && f.size <= MAX_TEMPLATE
        {
            let new = match rendered_now {
                Some(b) => b,
                None => bundle.read_small(&format!("{FILES_PREFIX}{}", f.target))?,
            };
            // A file that holds a secret is not compared line by line.
            if !private && let Ok(old) = crate::digest::read_regular(p, MAX_TEMPLATE) {
                lines = Some(line_counts(&old, &new));
            }
        }
        out.push(PlannedFile {
            target: f.target.clone(),
            change,
            lines,
        });
    }
    if let Some((_, old)) = current {
        for f in &old.files {
            if !files.iter().any(|n| n.target == f.target) {
                out.push(PlannedFile {
                    target: f.target.clone(),
                    change: "remove",
                    lines: None,
                });
            }
        }
    }
    Ok(out)
}

/// Lines only in `new` and only in `old` (as multisets).
fn line_counts(old: &[u8], new: &[u8]) -> (usize, usize) {
    let count = |b: &[u8]| {
        let mut m: BTreeMap<Vec<u8>, isize> = BTreeMap::new();
        for l in b.split(|c| *c == b'\n') {
            *m.entry(l.to_vec()).or_default() += 1;
        }
        m
    };
    let (o, n) = (count(old), count(new));
    let mut added = 0;
    let mut removed = 0;
    for (l, c) in &n {
        added += (c - o.get(l).copied().unwrap_or(0)).max(0) as usize;
    }
    for (l, c) in &o {
        removed += (c - n.get(l).copied().unwrap_or(0)).max(0) as usize;
    }
    (added, removed)
}
