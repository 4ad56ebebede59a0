//! `bale rollback`: back to a kept release, without its bundle file.

use std::path::PathBuf;
use std::time::Duration;

use super::runtime::RuntimeChoice;
use crate::error::Error;
use crate::install::{self, RollbackOptions, RollbackReport};

/// What `bale rollback` is asked to do.
#[derive(Clone, Debug)]
pub struct RollbackRequest {
    /// The install directory.
    pub target: PathBuf,
    /// The release to go to (id or version).
    pub to: Option<String>,
    /// The runtime (the one the current release recorded by default).
    pub runtime: RuntimeChoice,
    /// Start it and wait for its healthchecks.
    pub up: bool,
    /// How long to wait.
    pub timeout: Duration,
    /// Restore the data from before the upgrade away from it too.
    pub with_data: bool,
}

/// Runs `bale rollback`.
pub fn run(req: &RollbackRequest) -> Result<RollbackReport, Error> {
    let recorded = install::current_release(&req.target)
        .ok()
        .flatten()
        .map(|(_, r)| r);
    let chosen = req.runtime.choose(recorded.as_ref())?;
    Ok(install::rollback(&RollbackOptions {
        target: req.target.clone(),
        to: req.to.clone(),
        runtime: chosen.runtime.as_ref(),
        up: req.up,
        timeout: req.timeout,
        with_data: req.with_data,
    })?)
}
