//! `bale verify`: a bundle's signature and every entry's digest.

use std::path::PathBuf;

use crate::error::Error;
use crate::sign::VerifyingKey;
use crate::verify::{self, Report, VerifyOptions};

/// What `bale verify` is asked to check.
#[derive(Clone, Debug)]
pub struct VerifyRequest {
    /// The bundle (or its first part).
    pub bundle: PathBuf,
    /// The key it must be signed with.
    pub public_key: Option<PathBuf>,
    /// Accept a bundle without signature; check digests only.
    pub allow_unsigned: bool,
    /// For a delta: its base, verified too.
    pub base: Option<PathBuf>,
}

/// Runs `bale verify`; the report lists every problem.
pub fn run(req: &VerifyRequest) -> Result<Report, Error> {
    let key = req
        .public_key
        .as_deref()
        .map(VerifyingKey::from_file)
        .transpose()?;
    Ok(verify::verify(
        &req.bundle,
        &VerifyOptions {
            key: key.as_ref(),
            allow_unsigned: req.allow_unsigned,
            threads: 0,
            base: req.base.as_deref(),
        },
    )?)
}

/// Ok when the bundle verified; else the error that exits 6.
pub fn verdict(report: &Report) -> Result<(), Error> {
    if report.ok() {
        Ok(())
    } else {
        Err(Error::NotIntact(report.problems.len()))
    }
}
