//! `bale snapshot`: a consistent copy of an installed stack's data.

use std::path::PathBuf;

use super::runtime::{RuntimeChoice, for_target};
use crate::error::Error;
use crate::install::{self, KeptSnapshot};

/// What `bale snapshot` is asked to do.
#[derive(Clone, Debug)]
pub struct SnapshotRequest {
    /// The install directory.
    pub target: PathBuf,
    /// The runtime (the one the current release recorded by default).
    pub runtime: RuntimeChoice,
}

/// Runs `bale snapshot`.
pub fn run(req: &SnapshotRequest) -> Result<KeptSnapshot, Error> {
    let chosen = for_target(&req.runtime, &req.target)?;
    Ok(install::snapshot(&req.target, chosen.runtime.as_ref())?)
}
