//! `bale install --dry-run`: the plan of an install, with nothing changed.

use serde::Serialize;

use super::release::{self, PlannedFile};
use super::{
    Action, ImageOutcome, InstallError, InstallOptions, OpenBundle, current_release, decide,
    preflight, secrets, values,
};
use crate::validate;

/// What `bale install --dry-run` would do; nothing on the host changes.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Bundle name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The version installed now, if any.
    pub current: Option<String>,
    /// What the install would be.
    pub action: Action,
    /// Images: `present` or `load` (empty with `--runtime none`).
    pub images: Vec<ImageOutcome>,
    /// Files against the current release.
    pub files: Vec<PlannedFile>,
    /// Site values that would be set or changed (names only).
    pub values_changed: Vec<String>,
    /// Secrets that would be generated (names only).
    pub secrets_to_generate: Vec<String>,
    /// Setup jobs `--up` would run.
    pub jobs: Vec<String>,
    /// Every preflight check.
    pub preflight: Vec<preflight::Check>,
    /// What the plan could not check (a runtime that did not answer).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Plans installing the opened bundle: verifies (done by opening), checks
/// values and preflight, and compares with what is installed, changing
/// nothing (no directory is created, no lock taken, no image loaded).
pub fn plan(bundle: &OpenBundle, opts: &InstallOptions<'_>) -> Result<Plan, InstallError> {
    let exists = opts.target.is_dir();
    let (env, resolved) = super::site_values(bundle, opts)?;
    let preflight = preflight::check_host(bundle, opts)?;
    let current = if exists {
        current_release(&opts.target)?
    } else {
        None
    };
    let version = validate::bundle_version(&bundle.manifest.version)
        .map_err(|e| crate::verify::OpenError::Invalid(vec![e]))?;
    let action = decide(
        current.as_ref(),
        &bundle.manifest.name,
        &version,
        &bundle.content_digest(),
        opts,
    )?;
    let images = bundle.runtime_images();
    let mut outcomes = Vec::new();
    let mut notes = Vec::new();
    if opts.runtime.name() != "none" {
        // A plan is still a plan where the runtime does not answer (no
        // daemon yet): what could not be asked is said, not guessed.
        let mut unreachable = None;
        for r in &images {
            let status = match &unreachable {
                Some(_) => "unknown",
                None => match opts.runtime.image(&opts.runtime.reference(r)) {
                    Ok(have)
                        if have
                            .as_ref()
                            .is_some_and(|h| h.config.as_ref() == Some(&r.config)) =>
                    {
                        "present"
                    }
                    Ok(_) => "load",
                    Err(e) => {
                        unreachable = Some(e.to_string());
                        "unknown"
                    }
                },
            };
            outcomes.push(ImageOutcome {
                service: r.service.clone(),
                name: r.name.clone(),
                config: r.config.clone(),
                status,
                layers_present: 0,
            });
        }
        if let Some(e) = unreachable {
            notes.push(format!(
                "{} did not answer, so which images it holds is unknown (install needs it): {}",
                opts.runtime.name(),
                crate::quote::quote(&e)
            ));
        }
    }
    let root = std::path::absolute(&opts.target).unwrap_or_else(|_| opts.target.clone());
    let site_values = values::placed(&resolved.values, &bundle.spec.values, &root);
    let mut env2 = env.clone();
    let secrets_to_generate = secrets::plan(&mut env2, &site_values, &bundle.spec.secrets);
    let render = release::context(bundle, &site_values, &env2, &images);
    let files = release::files_of(bundle)?;
    let files = release::plan_files(
        bundle,
        &files,
        &render,
        current.as_ref().map(|(d, r)| (d.as_path(), r)),
    )?;
    Ok(Plan {
        name: bundle.manifest.name.clone(),
        version: version.to_string(),
        current: current.map(|(_, r)| r.version),
        action,
        images: outcomes,
        files,
        values_changed: resolved.changed,
        secrets_to_generate,
        jobs: bundle.spec.jobs(),
        preflight,
        notes,
    })
}
