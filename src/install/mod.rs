//! `bale install`: from a verified bundle to images in the runtime, files in
//! the install directory, secrets in `.env`, and (with `--up`) a running stack.
//!
//! The install directory:
//!
//! ```text
//! DIR/current -> .bale/releases/<version>-<digest>   the one switch
//! DIR/.env                                           secrets, mode 0600, kept across upgrades
//! DIR/.bale/releases/<id>/...                        overlays and compose file at their targets
//! DIR/.bale/releases/<id>/.bale/release.json         what is installed there
//! DIR/.bale/releases/<id>/.bale/images.json          the bundle's image list
//! DIR/.bale/releases/<id>/.bale/sbom.spdx.json       the bundle's SPDX SBOM
//! DIR/.bale/releases/<id>/.bale/compose.pins.yml     every service pinned to its loaded image
//! ```
//!
//! A release is staged in `.bale/staging-*`, renamed into `releases/`, and
//! made current by renaming a new symlink over `current`: at every moment
//! `current` names one complete release, old or new.

mod archive;
mod compose;
mod env;
mod error;
mod inflate;
mod journal;
mod kept;
mod load;
mod plan;
pub mod preflight;
mod prune;
mod release;
mod restore;
mod rollback;
mod secrets;
mod snapshot;
mod target;
mod uninstall;
mod upgrade;
mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::bundle::ImageRecord;
use crate::digest::Digest;
use crate::runtime::{Container, Runtime};
use crate::sign::VerifyingKey;
use crate::validate;

use compose::up;
use target::Target;

pub use env::EnvFile;
pub use error::InstallError;
use error::io_err;
pub use plan::{Plan, plan};
pub use release::{PlannedFile, RepairedFile};
pub use values::{Prompt, Supplied, changed_since_install};

pub use crate::verify::{OpenBundle, OpenError};
pub use compose::{compose_pins, compose_project, compose_text, service_images};
pub use journal::{Journal, Phase, journal};
pub use prune::{PruneOptions, PruneReport, Removed, prune};
pub use restore::{RestoreReport, RestoredArchive, restore};
pub use rollback::{RollbackOptions, RollbackReport, rollback};
pub use secrets::generate_secret;
pub use snapshot::{
    DataKind, KeptSnapshot, SnapshotArchive, SnapshotManifest, list_snapshots, snapshot,
    verify_snapshot,
};
pub use target::{KeptRelease, current_release, kept_releases, recorded_images};
pub use uninstall::{UninstallOptions, UninstallReport, uninstall};

/// One installed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledFile {
    /// Target path.
    pub target: String,
    /// SHA-256 of its content (for a template: of the rendered file).
    pub sha256: Digest,
    /// Size.
    pub size: u64,
    /// For a template: the signed template's SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Digest>,
}

/// `.bale/release.json`: what a release holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// Format version (1).
    pub format: u32,
    /// Bundle name.
    pub name: String,
    /// Bundle version.
    pub version: String,
    /// SHA-256 of the bundle's signed manifest.
    pub manifest_digest: Digest,
    /// Key ID the bundle was verified with.
    pub key_id: String,
    /// Compose file target, if any.
    pub compose: Option<String>,
    /// Compose project name.
    pub project: Option<String>,
    /// The platform whose images were loaded.
    pub platform: Option<String>,
    /// The runtime images were loaded into.
    pub runtime: String,
    /// The containerd socket it was reached at, if not the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_address: Option<PathBuf>,
    /// The containerd namespace, for containerd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_namespace: Option<String>,
    /// The registry a swarm's nodes pull from (`HOST[/PREFIX]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_registry: Option<String>,
    /// One-shot services of the compose project.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<String>,
    /// Directories (relative to the install directory) holding the site's
    /// data, snapshotted with the volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_paths: Vec<String>,
    /// Services run to completion before a live snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshot_jobs: Vec<String>,
    /// Every file laid out (a template with its rendered digest).
    pub files: Vec<InstalledFile>,
    /// Keyed digests of the site values installed with, so that audit can
    /// say which changed since without holding their contents.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, String>,
}

/// What `--fault-after` (the `BALE_FAULT_AFTER` test hook) stops after.
fn fault_point(step: &str) {
    if std::env::var("BALE_FAULT_AFTER").is_ok_and(|s| s == step) {
        std::process::abort();
    }
}

/// Install options.
pub struct InstallOptions<'a> {
    /// The key the bundle must be signed with.
    pub key: &'a VerifyingKey,
    /// The install directory.
    pub target: PathBuf,
    /// The runtime.
    pub runtime: &'a dyn Runtime,
    /// The containerd socket given, recorded so that audit finds it again.
    pub runtime_address: Option<PathBuf>,
    /// The containerd namespace given, recorded likewise.
    pub runtime_namespace: Option<String>,
    /// Site values given on the command line.
    pub values: Supplied,
    /// Asks for a missing value on a terminal.
    pub prompt: Option<Prompt<'a>>,
    /// Preflight checks overridden by name.
    pub skip_preflight: Vec<String>,
    /// Start the stack and wait for health.
    pub up: bool,
    /// Allow an older version, or the same version with other content.
    pub allow_downgrade: bool,
    /// How long `--up` waits for healthchecks.
    pub timeout: Duration,
    /// For a delta: the base bundle file, for what the runtime lacks.
    pub base: Option<PathBuf>,
    /// Snapshot the data before an upgrade with `up` (`--no-snapshot`
    /// turns it off; so does the bundle's `[upgrade] snapshot = false`).
    pub snapshot: bool,
    /// Undo an upgrade whose release does not come up healthy
    /// (`--no-rollback` leaves it for debugging).
    pub rollback: bool,
}

/// What happened to the install directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Nothing was installed before.
    Installed,
    /// A newer version replaced an older one.
    Upgraded,
    /// An older version replaced a newer one (`--allow-downgrade`).
    Downgraded,
    /// The same bundle was already current, and nothing had drifted.
    Unchanged,
    /// The same bundle was current, and drifted files were put back.
    Repaired,
    /// The same bundle was current; site values changed, and what depends
    /// on them was rendered again.
    Reconfigured,
}

/// One image after install.
#[derive(Debug, Clone, Serialize)]
pub struct ImageOutcome {
    /// Service.
    pub service: String,
    /// Name.
    pub name: String,
    /// Locked config digest, now the image ID.
    pub config: Digest,
    /// `loaded` or `present`.
    pub status: &'static str,
    /// Of a loaded image, the layers left out of the archive because the
    /// runtime had them already.
    #[serde(skip_serializing_if = "is_zero")]
    pub layers_present: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What install did.
#[derive(Debug, Clone, Serialize)]
pub struct InstallReport {
    /// Bundle name.
    pub name: String,
    /// Installed version.
    pub version: String,
    /// Previous version, if any.
    pub previous: Option<String>,
    /// What happened.
    pub action: Action,
    /// Manifest digest of the installed bundle.
    pub manifest_digest: Digest,
    /// The release directory.
    pub release: PathBuf,
    /// Images.
    pub images: Vec<ImageOutcome>,
    /// Files put back to their signed content (re-installing the same bundle).
    pub repaired: Vec<RepairedFile>,
    /// Names (never values) of the secrets generated now.
    pub secrets_added: Vec<String>,
    /// Names (never contents) of the site values set or changed now.
    pub values_changed: Vec<String>,
    /// Every preflight check, skipped ones included.
    pub preflight: Vec<preflight::Check>,
    /// Containers after `--up`.
    pub services: Vec<Container>,
}

fn release_id(version: &semver::Version, manifest: &Digest) -> String {
    format!("{version}-{}", &manifest.hex()[..12])
}

/// Installs the bundle at `path`.
pub fn install(path: &Path, opts: &InstallOptions<'_>) -> Result<InstallReport, InstallError> {
    // The runtime's probes (which change nothing) run beside the whole
    // install, not only beside verifying: the compose tool's probe alone
    // (0.4 s or more of Python starting) outlasts verifying, and only
    // starting the services needs its answer, which then waits for it.
    // Without `up` nothing asks which compose tool there is (but a
    // bundle's compose_version preflight, which then probes it itself).
    let (runtime, up) = (opts.runtime, opts.up);
    std::thread::scope(|s| {
        s.spawn(move || runtime.warm(up));
        // 1. Verify everything before touching anything (a delta's base too).
        let mut bundle = OpenBundle::open_with_base(path, opts.key, opts.base.as_deref())?;
        fault_point("verify");
        // A delta without its base file takes the plain files it leaves to
        // the base from the installed base release (checked against the
        // digests).
        if bundle.manifest.base.is_some()
            && opts.base.is_none()
            && let Ok(Some((dir, _))) = current_release(&opts.target)
        {
            bundle.use_installed(&dir);
        }
        install_opened(&bundle, opts)
    })
}

/// Installs a bundle already opened (and so verified) with `opts.key`.
/// Every entry is hashed again as it is read: a bundle file that changed
/// The target's `.env` (empty where there is no target yet) and the site
/// values resolved against it: what was supplied, prompted for, or kept.
fn site_values(
    bundle: &OpenBundle,
    opts: &InstallOptions<'_>,
) -> Result<(EnvFile, values::Resolved), InstallError> {
    let env = if opts.target.is_dir() {
        secrets::read_env(&opts.target)?
    } else {
        EnvFile::default()
    };
    let resolved = values::resolve(
        &bundle.spec.values,
        &bundle.spec.secrets,
        &env,
        &opts.values,
        opts.prompt,
    )?;
    Ok((env, resolved))
}

/// since [`OpenBundle::open`] fails with [`OpenError::Changed`].
pub fn install_opened(
    bundle: &OpenBundle,
    opts: &InstallOptions<'_>,
) -> Result<InstallReport, InstallError> {
    // Site values are checked before anything on the host changes.
    let (_, resolved) = site_values(bundle, opts)?;
    let checks = preflight::check_host(bundle, opts)?;
    // What a failed first install removes again: only what was missing.
    let made: Vec<&str> = [".env", "values"]
        .into_iter()
        .filter(|n| std::fs::symlink_metadata(opts.target.join(n)).is_err())
        .collect();
    let target = Target::open(&opts.target)?;
    let first = matches!(current_release(&target.root), Ok(None));
    let result = install_locked(bundle, &target, opts, &resolved).map(|mut r| {
        r.preflight = checks;
        r
    });
    if result.is_err() && first {
        target.abandon_first_install(&made);
    }
    result
}

/// A delta installs only over its base (or over the release it stands
/// for, as a repair).
fn check_delta_base(
    bundle: &OpenBundle,
    current: Option<&(PathBuf, Release)>,
    manifest_digest: &Digest,
    opts: &InstallOptions<'_>,
) -> Result<(), InstallError> {
    let Some(b) = &bundle.manifest.base else {
        return Ok(());
    };
    match current {
        Some((_, r)) if r.manifest_digest == b.manifest => {}
        Some((_, r)) if &r.manifest_digest == manifest_digest => {}
        other => {
            return Err(InstallError::Refused(format!(
                "this delta installs over {} {} (manifest {}); {} holds {}: install that release (or this version's full bundle) first",
                b.name,
                b.version,
                b.manifest,
                opts.target.display(),
                other
                    .as_ref()
                    .map(|(_, r)| format!(
                        "{} {} (manifest {})",
                        r.name, r.version, r.manifest_digest
                    ))
                    .unwrap_or_else(|| "nothing".into())
            )));
        }
    }
    Ok(())
}

fn install_locked(
    bundle: &OpenBundle,
    target: &Target,
    opts: &InstallOptions<'_>,
    resolved: &values::Resolved,
) -> Result<InstallReport, InstallError> {
    target.clear_leftovers();
    let name = bundle.manifest.name.clone();
    let version = validate::bundle_version(&bundle.manifest.version)
        .map_err(|e| OpenError::Invalid(vec![e]))?;
    // A delta installs as the full bundle it stands for.
    let manifest_digest = bundle.content_digest();
    let id = release_id(&version, &manifest_digest);
    // An upgrade cut short is rolled back or resumed before anything else.
    upgrade::settle(target, &id, opts)?;

    // 2. Policy: same bundle, upgrade, downgrade, other bundle; a delta
    // only over its base.
    let current = current_release(&target.root)?;
    let action = decide(current.as_ref(), &name, &version, &manifest_digest, opts)?;
    check_delta_base(bundle, current.as_ref(), &manifest_digest, opts)?;
    let previous = current.as_ref().map(|(_, r)| r.version.clone());
    // An upgrade with `--up` snapshots the data first, before any change.
    let resumed = journal::journal(&target.root)?.is_some_and(|j| j.to == id);
    let journal = upgrade::begin(
        target,
        current.as_ref(),
        &id,
        &version.to_string(),
        action,
        opts,
        opts.snapshot && bundle.spec.lifecycle.upgrade_snapshot,
    )?;
    let staged = stage_and_switch(bundle, target, opts, resolved, current.as_ref(), &id);
    let (images, outcomes, release_dir, release, repaired, added) = match staged {
        Ok(s) => s,
        Err(e) => {
            // Nothing was switched: the data the snapshot holds is not
            // needed to undo anything.
            if journal.is_some() && !resumed {
                let _ = journal::remove_journal(target);
            }
            return Err(e);
        }
    };

    // 7. Start and wait; a reconfigured file reaches its services by a
    // restart (compose itself recreates what its own file changed).
    let started = if opts.up {
        let rerendered: Vec<String> = repaired
            .iter()
            .filter(|r| r.was != "added")
            .map(|r| r.target.clone())
            .collect();
        let restart = compose::dependents(&release_dir, &release, &rerendered);
        up(
            &target.root,
            &release_dir,
            &release,
            opts.runtime,
            opts.timeout,
            &restart,
            &images.iter().collect::<Vec<_>>(),
        )
    } else {
        Ok(Vec::new())
    };
    fault_point("up");
    let services = upgrade::end(target, journal, started, opts)?;
    Ok(InstallReport {
        name,
        version: version.to_string(),
        previous,
        action: match action {
            Action::Unchanged if !resolved.changed.is_empty() => Action::Reconfigured,
            Action::Unchanged if !repaired.is_empty() => Action::Repaired,
            a => a,
        },
        manifest_digest,
        release: release_dir,
        images: outcomes,
        repaired,
        secrets_added: added,
        values_changed: resolved.changed.clone(),
        preflight: Vec::new(),
        services,
    })
}

/// What staging a release gives the start: its images, their outcomes,
/// its directory and record, the files repaired and the secrets added.
type Staged = (
    Vec<ImageRecord>,
    Vec<ImageOutcome>,
    PathBuf,
    Release,
    Vec<RepairedFile>,
    Vec<String>,
);

/// Steps 3 to 6: images loaded, the release staged (or repaired), values
/// and secrets written, and `current` switched.
fn stage_and_switch(
    bundle: &OpenBundle,
    target: &Target,
    opts: &InstallOptions<'_>,
    resolved: &values::Resolved,
    current: Option<&(PathBuf, Release)>,
    id: &str,
) -> Result<Staged, InstallError> {
    // 3. Images: load what the runtime lacks, then check every ID.
    let images = bundle.runtime_images();
    let outcomes = load_images(bundle, &images, opts.runtime)?;
    fault_point("load");

    // 4. Stage the release and rename it into place; or, when it is
    // already current, put back every file that drifted from the bundle.
    // Values and secrets as the release will see them; `.env` is written
    // in step 5, after the release is staged.
    let site_values = values::placed(&resolved.values, &bundle.spec.values, &target.root);
    let mut env = secrets::read_env(&target.root)?;
    let added = secrets::plan(&mut env, &site_values, &bundle.spec.secrets);
    let ctx = release::context(bundle, &site_values, &env, &images);
    let release_dir = target.meta.join("releases").join(id);
    let is_current = current.as_ref().is_some_and(|(d, _)| d == &release_dir);
    let mut release = release::record(bundle, opts, &images, &site_values, target)?;
    let repaired = if is_current {
        // The current release's record was read with `current` above.
        let old = current.as_ref().map(|(_, r)| r).ok_or_else(|| {
            InstallError::Bundle("the current release vanished while locked".into())
        })?;
        release::repair(bundle, &release_dir, &images, &ctx, old, &mut release)?
    } else {
        release::stage(
            bundle,
            &target.meta,
            &release_dir,
            &mut release,
            &images,
            &ctx,
        )?;
        Vec::new()
    };
    fault_point("stage");

    // 5. Site values and secrets: file values copied in, `.env` written
    // (existing secrets kept, only what is missing generated).
    values::copy_files(&resolved.values, &bundle.spec.values, &target.root)?;
    secrets::write_env(&target.root, &env)?;
    fault_point("secrets");

    // 6. Switch: one rename makes the new release current.
    if !is_current {
        release::switch(target, id)?;
    }
    fault_point("switch");
    Ok((
        images.into_iter().cloned().collect(),
        outcomes,
        release_dir,
        release,
        repaired,
        added,
    ))
}

/// What installing `version` over `current` means, or why it is refused.
fn decide(
    current: Option<&(PathBuf, Release)>,
    name: &str,
    version: &semver::Version,
    manifest_digest: &Digest,
    opts: &InstallOptions<'_>,
) -> Result<Action, InstallError> {
    let Some((_, r)) = current else {
        return Ok(Action::Installed);
    };
    if r.name != name {
        return Err(InstallError::Refused(format!(
            "{} holds bundle `{}`, not `{name}`; install into another --target",
            opts.target.display(),
            r.name
        )));
    }
    if &r.manifest_digest == manifest_digest {
        return Ok(Action::Unchanged);
    }
    let old = semver::Version::parse(&r.version)
        .map_err(|e| InstallError::Bundle(format!("installed version `{}`: {e}", r.version)))?;
    if version > &old {
        Ok(Action::Upgraded)
    } else if opts.allow_downgrade {
        Ok(Action::Downgraded)
    } else if version == &old {
        Err(InstallError::Refused(format!(
            "version {version} is installed with other content (manifest {}); pass --allow-downgrade to replace it",
            r.manifest_digest
        )))
    } else {
        Err(InstallError::Refused(format!(
            "{version} is older than the installed {}; pass --allow-downgrade to roll back",
            r.version
        )))
    }
}

/// What the runtime holds under each image's reference, asked eight at a
/// time: each answer is a CLI call, twenty images a second or more one by
/// one.
fn ask_each(
    runtime: &dyn Runtime,
    images: &[&ImageRecord],
) -> Vec<Result<Option<crate::runtime::RuntimeImage>, crate::runtime::RuntimeError>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let answers = std::sync::Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..images.len().clamp(1, 8) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(r) = images.get(i) else {
                        return;
                    };
                    let answer = runtime.image(&runtime.reference(r));
                    if let Ok(mut a) = answers.lock() {
                        a.insert(i, answer);
                    }
                }
            });
        }
    });
    let mut answers = answers.into_inner().unwrap_or_default();
    (0..images.len())
        .map(|i| {
            answers.remove(&i).unwrap_or_else(|| {
                Err(crate::runtime::RuntimeError::Unsupported(
                    "a runtime query stopped unexpectedly".into(),
                ))
            })
        })
        .collect()
}

/// Loads the images the runtime lacks and checks every one afterwards.
fn load_images(
    bundle: &OpenBundle,
    images: &[&ImageRecord],
    runtime: &dyn Runtime,
) -> Result<Vec<ImageOutcome>, InstallError> {
    let mut outcomes = Vec::new();
    if runtime.name() == "none" {
        return Ok(outcomes);
    }
    let mut to_load: Vec<&ImageRecord> = Vec::new();
    let mut seen = BTreeSet::new();
    for (r, have) in images.iter().zip(ask_each(runtime, images)) {
        let have = have?;
        let ok = have
            .as_ref()
            .is_some_and(|h| h.config.as_ref() == Some(&r.config));
        if !ok && seen.insert(r.name.clone()) {
            to_load.push(r);
        }
        outcomes.push(ImageOutcome {
            service: r.service.clone(),
            name: r.name.clone(),
            config: r.config.clone(),
            status: if ok { "present" } else { "loaded" },
            layers_present: 0,
        });
    }
    if to_load.is_empty() {
        return Ok(outcomes);
    }
    let format = runtime.archive_format();
    let lacking = |r: &ImageRecord| {
        format!(
            "image {} ({}): this delta leaves its blobs to the base, and {} does not have them; give the base bundle with --base OLD.bale",
            r.name,
            r.service,
            runtime.name()
        )
    };
    if let Some(r) = to_load
        .iter()
        .find(|r| bundle.lacks(&r.manifest.blob_path()) || bundle.lacks(&r.config.blob_path()))
    {
        return Err(InstallError::Refused(lacking(r)));
    }
    // Layers the runtime holds (an upgrade that changed the top layer of
    // an image) are left out: the load scales with what changed.
    let present = runtime.present()?;
    let skip = archive::skippable(bundle, &to_load, format, &present)?;
    if let Some(r) = to_load.iter().find(|r| {
        r.layers
            .iter()
            .any(|l| !skip.contains(l) && bundle.lacks(&l.blob_path()))
    }) {
        return Err(InstallError::Refused(lacking(r)));
    }
    for o in outcomes.iter_mut().filter(|o| o.status == "loaded") {
        if let Some(r) = to_load.iter().find(|r| r.name == o.name) {
            o.layers_present = r.layers.iter().filter(|l| skip.contains(*l)).count();
        }
    }
    load::in_streams(bundle, &to_load, runtime, skip, present)?;
    for (r, have) in images.iter().zip(ask_each(runtime, images)) {
        let have = have?;
        let id = have.as_ref().and_then(|h| h.config.clone());
        if id.as_ref() != Some(&r.config) {
            return Err(InstallError::Image {
                service: r.service.clone(),
                name: r.name.clone(),
                message: format!(
                    "after loading, the runtime has {} instead of the locked {}",
                    id.map_or("no image".into(), |d| d.to_string()),
                    r.config
                ),
            });
        }
        if let Some(m) = have.as_ref().and_then(|h| h.manifest.as_ref())
            && m != &r.manifest
        {
            return Err(InstallError::Image {
                service: r.service.clone(),
                name: r.name.clone(),
                message: format!("manifest {m} instead of the locked {}", r.manifest),
            });
        }
    }
    Ok(outcomes)
}
