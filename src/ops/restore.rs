//! `bale restore`: a snapshot's data back, with its release, started.

use std::path::PathBuf;
use std::time::Duration;

use super::runtime::{RuntimeChoice, for_target};
use crate::error::Error;
use crate::install::{self, RestoreReport};

/// What `bale restore` is asked to do.
#[derive(Clone, Debug)]
pub struct RestoreRequest {
    /// The install directory.
    pub target: PathBuf,
    /// The snapshot (the newest when `None`).
    pub snapshot: Option<String>,
    /// The runtime (the one the current release recorded by default).
    pub runtime: RuntimeChoice,
    /// How long to wait for the healthchecks.
    pub timeout: Duration,
}

/// Runs `bale restore`.
pub fn run(req: &RestoreRequest) -> Result<RestoreReport, Error> {
    let chosen = for_target(&req.runtime, &req.target)?;
    Ok(install::restore(
        &req.target,
        chosen.runtime.as_ref(),
        req.snapshot.as_deref(),
        req.timeout,
    )?)
}
