//! `bale sbom`: the bundle's SPDX document, as built and signed into it,
//! or the CycloneDX document made from it.

use std::path::Path;

use crate::error::Error;
use crate::sign::VerifyingKey;

/// The format `bale sbom` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// SPDX 2.3 JSON, byte for byte as signed into the bundle.
    Spdx,
    /// CycloneDX 1.5 JSON, made from the signed SPDX document.
    Cyclonedx,
}

/// The SBOM's bytes, checked against the bundle's manifest, and the state
/// of that manifest's signature (`verified`, or why it is not).
pub fn run(
    bundle: &Path,
    public_key: Option<&Path>,
    allow_unsigned: bool,
    format: Format,
) -> Result<(Vec<u8>, &'static str), Error> {
    let key = public_key.map(VerifyingKey::from_file).transpose()?;
    let (spdx, signature) = crate::verify::sbom(bundle, key.as_ref(), allow_unsigned)?;
    match format {
        Format::Spdx => Ok((spdx, signature)),
        Format::Cyclonedx => crate::bundle::cyclonedx::from_spdx(&spdx)
            .map(|c| (c, signature))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: its SBOM is not an SPDX document bale can convert",
                    bundle.display()
                ))
            }),
    }
}
