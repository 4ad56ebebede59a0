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
//! DIR/.bale/releases/<id>/.bale/compose.pins.yml     every service pinned to its loaded image
//! ```
//!
//! A release is staged in `.bale/staging-*`, renamed into `releases/`, and
//! made current by renaming a new symlink over `current`: at every moment
//! `current` names one complete release, old or new.

mod archive;
mod compose;
mod open;
mod secrets;
mod target;

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::bundle::{FILES_PREFIX, IMAGES_PATH, ImageRecord};
use crate::digest::Digest;
use crate::runtime::{Container, Runtime, RuntimeError};
use crate::sign::VerifyingKey;
use crate::verify::Report;

use archive::write_archive;
use compose::up;
use secrets::env_keys;
use target::{create_dirs, prune, sync_dir, sync_tree, write_private};

pub use compose::{compose_args, compose_pins};
pub use open::OpenBundle;
pub use secrets::generate_secret;
pub use target::current_release;

/// Errors of install and audit.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The bundle failed verification; nothing was changed.
    #[error("the bundle failed verification; nothing was changed:\n{}", .0.problems.iter().map(|p| format!("  - {}: {}", p.entry, p.message)).collect::<Vec<_>>().join("\n"))]
    NotVerified(Box<Report>),
    /// A file or directory operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The target holds something bale will not touch.
    #[error("{}: {message}", path.display())]
    Unsafe {
        /// The path.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Refused by policy: another bundle, or a downgrade.
    #[error("refused: {0}")]
    Refused(String),
    /// The bundle's content is unusable (verified, but not as bale builds them).
    #[error("bundle: {0}")]
    Bundle(String),
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// An image is not what was locked after loading.
    #[error("image {name} (service `{service}`): {message}")]
    Image {
        /// Service.
        service: String,
        /// Image name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// Services did not become healthy in time.
    #[error("services not healthy after {seconds} s: {}", services.join(", "))]
    Unhealthy {
        /// Seconds waited.
        seconds: u64,
        /// `service (state/health)` for each.
        services: Vec<String>,
    },
    /// Nothing installed in the target.
    #[error("{}: no bale installation here (no `current`)", .0.display())]
    NotInstalled(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> InstallError + '_ {
    move |source| InstallError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One installed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledFile {
    /// Target path.
    pub target: String,
    /// SHA-256 of its content.
    pub sha256: Digest,
    /// Size.
    pub size: u64,
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
    /// Every file laid out.
    pub files: Vec<InstalledFile>,
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
    /// Start the stack and wait for health.
    pub up: bool,
    /// Allow an older version, or the same version with other content.
    pub allow_downgrade: bool,
    /// How long `--up` waits for healthchecks.
    pub timeout: Duration,
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
    /// The same bundle was already current.
    Unchanged,
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
    /// Names (never values) of the secrets generated now.
    pub secrets_added: Vec<String>,
    /// Containers after `--up`.
    pub services: Vec<Container>,
}

fn release_id(version: &str, manifest: &Digest) -> String {
    format!("{version}-{}", &manifest.hex()[..12])
}

/// Installs the bundle at `path`.
pub fn install(path: &Path, opts: &InstallOptions<'_>) -> Result<InstallReport, InstallError> {
    // 1. Verify everything before touching anything.
    let bundle = OpenBundle::open(path, opts.key)?;
    fault_point("verify");
    let name = bundle.manifest.name.clone();
    let version = bundle.manifest.version.clone();
    let manifest_digest = bundle
        .report
        .manifest_digest
        .clone()
        .ok_or_else(|| InstallError::Bundle("no manifest digest".into()))?;

    fs::create_dir_all(&opts.target).map_err(io_err(&opts.target))?;
    let target = fs::canonicalize(&opts.target).map_err(io_err(&opts.target))?;
    let meta_dir = target.join(".bale");
    for d in [meta_dir.clone(), meta_dir.join("releases")] {
        match fs::symlink_metadata(&d) {
            Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
                return Err(InstallError::Unsafe {
                    path: d,
                    message: "is not a directory bale made (a symlink or a file)".into(),
                });
            }
            Ok(_) => {}
            Err(_) => fs::create_dir(&d).map_err(io_err(&d))?,
        }
    }

    // One install at a time per target; what a killed run left is cleared.
    let lock_path = meta_dir.join("lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    lock.lock().map_err(io_err(&lock_path))?;
    if let Ok(rd) = fs::read_dir(&meta_dir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("staging-") {
                let _ = fs::remove_dir_all(e.path());
            } else if n.starts_with("current-") {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    // 2. Policy: same bundle, upgrade, downgrade, other bundle.
    let current = current_release(&target)?;
    let action = match &current {
        None => Action::Installed,
        Some((_, r)) if r.name != name => {
            return Err(InstallError::Refused(format!(
                "{} holds bundle `{}`, not `{name}`",
                target.display(),
                r.name
            )));
        }
        Some((_, r)) if r.manifest_digest == manifest_digest => Action::Unchanged,
        Some((_, r)) => {
            let parse = |v: &str| {
                semver::Version::parse(v)
                    .map_err(|e| InstallError::Bundle(format!("version `{v}`: {e}")))
            };
            let (old, new) = (parse(&r.version)?, parse(&version)?);
            if new > old {
                Action::Upgraded
            } else if opts.allow_downgrade {
                Action::Downgraded
            } else if new == old {
                return Err(InstallError::Refused(format!(
                    "version {version} is installed with other content (manifest {}); pass --allow-downgrade to replace it",
                    r.manifest_digest
                )));
            } else {
                return Err(InstallError::Refused(format!(
                    "{version} is older than the installed {}; pass --allow-downgrade to roll back",
                    r.version
                )));
            }
        }
    };
    let previous = current.as_ref().map(|(_, r)| r.version.clone());

    // 3. Images: load what the runtime lacks, then check every ID.
    let images = bundle.runtime_images();
    let mut outcomes = Vec::new();
    let mut to_load: Vec<&ImageRecord> = Vec::new();
    let mut seen = BTreeSet::new();
    for r in &images {
        if opts.runtime.name() == "none" {
            break;
        }
        let have = opts.runtime.image(&r.name)?;
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
        });
    }
    if !to_load.is_empty() {
        let format = opts.runtime.archive_format();
        opts.runtime
            .load(&mut |w| write_archive(&bundle, &to_load, format, w))?;
        for r in &images {
            let have = opts.runtime.image(&r.name)?;
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
    }
    fault_point("load");

    // 4. Stage the release, then rename it into place.
    let id = release_id(&version, &manifest_digest);
    let release_dir = meta_dir.join("releases").join(&id);
    let is_current = current.as_ref().is_some_and(|(d, _)| d == &release_dir);
    let mut files = Vec::new();
    for e in &bundle.manifest.entries {
        if let Some(t) = e.path.strip_prefix(FILES_PREFIX) {
            crate::spec::check_target(t).map_err(InstallError::Bundle)?;
            files.push(InstalledFile {
                target: t.to_owned(),
                sha256: e.sha256.clone(),
                size: e.size,
            });
        }
    }
    let release = Release {
        format: 1,
        name: name.clone(),
        version: version.clone(),
        manifest_digest: manifest_digest.clone(),
        key_id: opts.key.key_id(),
        compose: bundle.images.compose.clone(),
        project: bundle.images.project.clone(),
        platform: images.first().map(|i| i.platform.clone()),
        runtime: opts.runtime.name().to_owned(),
        files: files.clone(),
    };
    if !is_current {
        let staging = tempfile::Builder::new()
            .prefix("staging-")
            .tempdir_in(&meta_dir)
            .map_err(io_err(&meta_dir))?;
        let root = staging.path();
        let executable: BTreeSet<&str> = bundle
            .images
            .files
            .iter()
            .filter(|f| f.executable)
            .map(|f| f.target.as_str())
            .collect();
        for f in &files {
            let dest = root.join(&f.target);
            if let Some(parent) = dest.parent() {
                create_dirs(root, parent)?;
            }
            let mode = if executable.contains(f.target.as_str()) {
                0o755
            } else {
                0o644
            };
            let mut out = OpenOptions::new()
                .write(true)
                .create_new(true)
                // create_new: O_EXCL never follows a symlink at `dest`.
                .mode(mode)
                .open(&dest)
                .map_err(io_err(&dest))?;
            bundle.copy_entry(&format!("{FILES_PREFIX}{}", f.target), &mut out)?;
            out.sync_all().map_err(io_err(&dest))?;
        }
        let meta = root.join(".bale");
        fs::create_dir(&meta).map_err(io_err(&meta))?;
        write_private(&meta.join("release.json"), &to_json(&release), 0o644)?;
        let mut images_json = Vec::new();
        bundle.copy_entry(IMAGES_PATH, &mut images_json)?;
        write_private(&meta.join("images.json"), &images_json, 0o644)?;
        write_private(
            &meta.join("compose.pins.yml"),
            compose_pins(&images).as_bytes(),
            0o644,
        )?;
        sync_tree(root);
        // A release directory left by an interrupted run is replaced whole.
        if fs::symlink_metadata(&release_dir).is_ok() {
            fs::remove_dir_all(&release_dir).map_err(io_err(&release_dir))?;
        }
        let staged = staging.keep();
        fs::rename(&staged, &release_dir).map_err(io_err(&release_dir))?;
        sync_dir(&meta_dir.join("releases"));
    }
    fault_point("stage");

    // 5. Secrets: keep every existing value, add only what is missing.
    let env_path = target.join(".env");
    let existing = match fs::symlink_metadata(&env_path) {
        Ok(m) if m.file_type().is_symlink() || !m.is_file() => {
            return Err(InstallError::Unsafe {
                path: env_path,
                message: "is not a regular file; refusing to write secrets through it".into(),
            });
        }
        Ok(_) => fs::read_to_string(&env_path).map_err(io_err(&env_path))?,
        Err(_) => String::new(),
    };
    let have = env_keys(&existing);
    let mut text = existing.clone();
    let mut added = Vec::new();
    for s in &bundle.spec.secrets {
        if !have.contains(&s.name) {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!("{}={}\n", s.name, generate_secret(s)));
            added.push(s.name.clone());
        }
    }
    let mode_ok = fs::metadata(&env_path).is_ok_and(|m| m.permissions().mode() & 0o077 == 0);
    if !added.is_empty() || !mode_ok {
        write_private(&env_path, text.as_bytes(), 0o600)?;
    }
    fault_point("secrets");

    // 6. Switch: one rename makes the new release current.
    if !is_current {
        let link_tmp = meta_dir.join(format!("current-{}", std::process::id()));
        let _ = fs::remove_file(&link_tmp);
        std::os::unix::fs::symlink(Path::new(".bale/releases").join(&id), &link_tmp)
            .map_err(io_err(&link_tmp))?;
        fs::rename(&link_tmp, target.join("current")).map_err(io_err(&target.join("current")))?;
        sync_dir(&target);
        prune(
            &meta_dir.join("releases"),
            &id,
            current.as_ref().map(|(d, _)| d.as_path()),
        );
    }
    fault_point("switch");

    // 7. Start and wait.
    let mut services = Vec::new();
    if opts.up {
        services = up(&target, &release_dir, &release, opts)?;
    }
    drop(lock);
    Ok(InstallReport {
        name,
        version,
        previous,
        action,
        manifest_digest,
        release: release_dir,
        images: outcomes,
        secrets_added: added,
        services,
    })
}

fn to_json(v: &impl Serialize) -> Vec<u8> {
    // Plain structs of strings and numbers always serialise.
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}
