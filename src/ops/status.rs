//! `bale status`: the install directory's releases and services.

use std::path::PathBuf;

use super::runtime::RuntimeChoice;
use crate::error::Error;
use crate::status::{self, Status};

/// What `bale status` is asked to show.
#[derive(Clone, Debug)]
pub struct StatusRequest {
    /// The install directory.
    pub target: PathBuf,
    /// The runtime (the one the current release recorded by default).
    pub runtime: RuntimeChoice,
}

/// Runs `bale status`.
pub fn run(req: &StatusRequest) -> Result<Status, Error> {
    let recorded = crate::install::current_release(&req.target)
        .ok()
        .flatten()
        .map(|(_, r)| r);
    let chosen = req.runtime.choose(recorded.as_ref())?;
    Ok(status::status(&req.target, chosen.runtime.as_ref())?)
}
