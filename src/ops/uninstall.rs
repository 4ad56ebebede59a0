//! `bale uninstall`: the stack removed; its data kept unless purged.

use std::path::PathBuf;

use super::runtime::{RuntimeChoice, for_target};
use crate::error::Error;
use crate::install::{self, UninstallOptions, UninstallReport};

/// What `bale uninstall` is asked to do.
#[derive(Clone, Debug)]
pub struct UninstallRequest {
    /// The install directory.
    pub target: PathBuf,
    /// The runtime (the one the current release recorded by default).
    pub runtime: RuntimeChoice,
    /// Keep the images.
    pub keep_images: bool,
    /// Remove volumes, data paths, `.env` and snapshots too (confirmed).
    pub purge: bool,
}

/// Runs `bale uninstall`.
pub fn run(req: &UninstallRequest) -> Result<UninstallReport, Error> {
    let chosen = for_target(&req.runtime, &req.target)?;
    Ok(install::uninstall(&UninstallOptions {
        target: req.target.clone(),
        runtime: chosen.runtime.as_ref(),
        keep_images: req.keep_images,
        purge: req.purge,
    })?)
}
