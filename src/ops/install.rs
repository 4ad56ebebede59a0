//! `bale install`: verify a bundle, load its images, lay out its files and
//! secrets, and optionally start it; or, as a dry run, say what it would do.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::runtime::RuntimeChoice;
use crate::error::Error;
use crate::install::{self, InstallOptions, InstallReport, OpenBundle, Plan, Prompt, Supplied};
use crate::sign::VerifyingKey;

/// What `bale install` is asked to do.
#[derive(Clone, Debug)]
pub struct InstallRequest {
    /// The bundle.
    pub bundle: PathBuf,
    /// The key it must be signed with.
    pub public_key: PathBuf,
    /// The install directory.
    pub target: PathBuf,
    /// The runtime.
    pub runtime: RuntimeChoice,
    /// Start the stack and wait for its healthchecks.
    pub up: bool,
    /// How long to wait for them.
    pub timeout: Duration,
    /// Allow an older version, or the same version with other content.
    pub allow_downgrade: bool,
    /// `--set` and `--values`.
    pub values: Supplied,
    /// Preflight checks overridden.
    pub skip_preflight: Vec<String>,
    /// Change nothing; plan.
    pub dry_run: bool,
    /// For a delta: its base bundle.
    pub base: Option<PathBuf>,
    /// `--no-snapshot` not given.
    pub snapshot: bool,
    /// `--no-rollback` not given.
    pub rollback: bool,
}

/// What `bale install` did, or would do.
#[derive(Debug)]
pub enum InstallOutcome {
    /// `--dry-run`: the plan; nothing changed.
    Planned(Box<Plan>),
    /// The install as done.
    Installed(Box<InstallReport>),
}

/// Runs `bale install`; `prompt` asks for a missing value (on a terminal).
pub fn run(req: &InstallRequest, prompt: Option<Prompt<'_>>) -> Result<InstallOutcome, Error> {
    let key = VerifyingKey::from_file(&req.public_key)?;
    let recorded = install::current_release(&req.target)
        .ok()
        .flatten()
        .map(|(_, r)| r);
    let chosen = req.runtime.choose(recorded.as_ref())?;
    let opts = InstallOptions {
        key: &key,
        target: req.target.clone(),
        runtime: chosen.runtime.as_ref(),
        runtime_address: chosen.address,
        runtime_namespace: chosen.namespace,
        up: req.up,
        allow_downgrade: req.allow_downgrade,
        timeout: req.timeout,
        values: req.values.clone(),
        prompt,
        skip_preflight: req.skip_preflight.clone(),
        base: req.base.clone(),
        snapshot: req.snapshot,
        rollback: req.rollback,
    };
    if req.dry_run {
        let bundle = OpenBundle::open_with_base(&req.bundle, &key, req.base.as_deref())?;
        return Ok(InstallOutcome::Planned(Box::new(install::plan(
            &bundle, &opts,
        )?)));
    }
    let report = install::install(Path::new(&req.bundle), &opts)?;
    Ok(InstallOutcome::Installed(Box::new(report)))
}
