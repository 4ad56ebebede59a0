//! `bale inspect`: a bundle's images, overlays and sizes.

use std::path::Path;

use crate::error::Error;
use crate::verify::{self, Inspection};

/// Runs `bale inspect`.
pub fn run(bundle: &Path) -> Result<Inspection, Error> {
    Ok(verify::inspect(bundle)?)
}
