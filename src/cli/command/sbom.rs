//! `bale sbom`.

use std::path::PathBuf;

use super::Run;
use crate::cli::output::{self, Output};

/// `bale sbom`, resolved.
pub struct Sbom {
    /// The bundle.
    pub bundle: PathBuf,
    /// The key it must be signed with.
    pub public_key: Option<PathBuf>,
    /// Print it without checking the signature.
    pub allow_unsigned: bool,
    /// SPDX or CycloneDX.
    pub format: bale::ops::sbom::Format,
}

impl Run for Sbom {
    fn run(&self, _out: &Output) -> Result<(), bale::Error> {
        let (bytes, signature) = bale::ops::sbom::run(
            &self.bundle,
            self.public_key.as_deref(),
            self.allow_unsigned,
            self.format,
        )?;
        if signature != "verified" {
            errln!(
                "warning: the SBOM matches the bundle's manifest, but the manifest's signature is {signature}: nothing says who made it"
            );
        }
        output::emit(output::Stream::Out, &String::from_utf8_lossy(&bytes), true);
        Ok(())
    }
}
