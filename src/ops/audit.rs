//! `bale audit`: is what runs on this host exactly what was signed?

use std::path::PathBuf;

use super::runtime::RuntimeChoice;
use crate::audit::report::{self, Format};
use crate::audit::{self, AuditReport};
use crate::error::Error;
use crate::sign::{SignError, VerifyingKey};

/// What `bale audit` is asked to check.
#[derive(Clone, Debug)]
pub struct AuditRequest {
    /// The signed bundle to audit against (the installed record otherwise).
    pub bundle: Option<PathBuf>,
    /// Its key: required with a bundle.
    pub public_key: Option<PathBuf>,
    /// The install directory.
    pub target: PathBuf,
    /// The report file to write too (`.html` or `.md`).
    pub report: Option<PathBuf>,
    /// The runtime.
    pub runtime: RuntimeChoice,
}

/// Runs `bale audit`, writing the report file when asked for; the report
/// lists every finding.
pub fn run(req: &AuditRequest) -> Result<AuditReport, Error> {
    let format = req
        .report
        .as_deref()
        .map(|p| {
            Format::of(p).ok_or_else(|| {
                Error::Usage(format!(
                    "--report {}: the file must end in .html or .md",
                    p.display()
                ))
            })
        })
        .transpose()?;
    let key = match (&req.bundle, &req.public_key) {
        (Some(_), Some(k)) => Some(VerifyingKey::from_file(k)?),
        (Some(_), None) => {
            return Err(SignError::BadKey {
                what: "--public-key".into(),
                kind: "public",
                reason:
                    "required to audit against a bundle: give the key the bundle is signed with"
                        .into(),
            }
            .into());
        }
        _ => None,
    };
    let recorded = crate::install::current_release(&req.target)
        .ok()
        .flatten()
        .map(|(_, r)| r);
    let chosen = req.runtime.choose(recorded.as_ref())?;
    let against = req.bundle.as_deref().zip(key.as_ref());
    let found = audit::audit(&req.target, chosen.runtime.as_ref(), against)?;
    if let (Some(path), Some(format)) = (&req.report, format) {
        crate::store::write_atomic(path, report::render(&found, format).as_bytes())?;
    }
    Ok(found)
}

/// Ok when the host is as signed; else the error that exits 6.
pub fn verdict(report: &AuditReport) -> Result<(), Error> {
    if report.ok() {
        Ok(())
    } else {
        Err(Error::Findings(report.findings.len()))
    }
}
