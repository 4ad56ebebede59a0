//! `bale prune`: older releases, their images and older snapshots go.

use std::path::PathBuf;

use super::runtime::{RuntimeChoice, for_target};
use crate::error::Error;
use crate::install::{self, PruneOptions, PruneReport};

/// What `bale prune` is asked to do.
#[derive(Clone, Debug)]
pub struct PruneRequest {
    /// The install directory.
    pub target: PathBuf,
    /// The runtime (the one the current release recorded by default).
    pub runtime: RuntimeChoice,
    /// Releases kept, the current one included.
    pub keep: usize,
    /// Snapshots kept (as many as releases by default).
    pub keep_snapshots: Option<usize>,
    /// Remove nothing; say what would go.
    pub dry_run: bool,
}

/// Runs `bale prune`.
pub fn run(req: &PruneRequest) -> Result<PruneReport, Error> {
    let chosen = for_target(&req.runtime, &req.target)?;
    Ok(install::prune(&PruneOptions {
        target: req.target.clone(),
        runtime: chosen.runtime.as_ref(),
        keep: req.keep,
        keep_snapshots: req.keep_snapshots,
        dry_run: req.dry_run,
    })?)
}
