//! `bale sbom`: the bundle's SPDX document, as built and signed into it.

use std::path::Path;

use crate::error::Error;
use crate::sign::VerifyingKey;

/// The SBOM's bytes, checked against the bundle's manifest, and the state
/// of that manifest's signature (`verified`, or why it is not).
pub fn run(
    bundle: &Path,
    public_key: Option<&Path>,
    allow_unsigned: bool,
) -> Result<(Vec<u8>, &'static str), Error> {
    let key = public_key.map(VerifyingKey::from_file).transpose()?;
    Ok(crate::verify::sbom(bundle, key.as_ref(), allow_unsigned)?)
}
