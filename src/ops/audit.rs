//! `bale audit`: is what runs on this host exactly what was signed?

use std::path::PathBuf;

use super::runtime::RuntimeChoice;
use crate::audit::report::{self, Format};
use crate::audit::{self, AuditReport};
use crate::error::Error;
use crate::sign::{SignError, SigningKey, VerifyingKey};

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
    /// OSV databases to scan the release's packages against.
    pub db: Vec<PathBuf>,
    /// OpenVEX documents for that scan, after the bundle's own.
    pub vex: Vec<PathBuf>,
    /// Where to write the signed receipt (needs a key).
    pub receipt: Option<PathBuf>,
}

/// Runs `bale audit`, scanning when given a database and writing the
/// report file and the receipt (signed with `receipt_key`) when asked
/// for; the report lists every finding.
pub fn run(req: &AuditRequest, receipt_key: Option<&SigningKey>) -> Result<AuditReport, Error> {
    if req.receipt.is_some() && receipt_key.is_none() {
        return Err(Error::Usage(
            "--receipt needs the site's secret key to sign it".into(),
        ));
    }
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
    let mut found = audit::audit(&req.target, chosen.runtime.as_ref(), against)?;
    if !req.db.is_empty() {
        found.scan = Some(scan(req, key.as_ref(), &found)?);
    }
    if let (Some(path), Some(format)) = (&req.report, format) {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        crate::store::write_atomic(path, report::render(&found, format, Some(&abs)).as_bytes())?;
    }
    if let (Some(path), Some(k)) = (&req.receipt, receipt_key) {
        crate::store::write_atomic(path, &crate::audit::receipt::sign(&found, k))?;
    }
    Ok(found)
}

/// The scan of the audited release: the signed bundle's SBOM and VEX when
/// auditing against it, else the installed release's.
fn scan(
    req: &AuditRequest,
    key: Option<&VerifyingKey>,
    found: &AuditReport,
) -> Result<crate::scan::ScanReport, Error> {
    let (sbom, vex) = match (&req.bundle, key) {
        (Some(b), Some(k)) => {
            let e = crate::verify::evidence(b, Some(k), false)?;
            (e.sbom, e.vex)
        }
        _ => super::scan::installed(&found.target)?,
    };
    super::scan::scan_sbom(
        found.target.clone(),
        &sbom,
        vex.as_deref(),
        &req.db,
        &req.vex,
    )
}

/// Ok when the host is as signed; else the error that exits 6.
pub fn verdict(report: &AuditReport) -> Result<(), Error> {
    if report.ok() {
        Ok(())
    } else {
        Err(Error::Findings(report.findings.len()))
    }
}

/// `bale verify-receipt`: the receipt at `file` checked against the public
/// key at `public_key`.
pub fn verify_receipt(
    file: &std::path::Path,
    public_key: &std::path::Path,
) -> Result<crate::audit::receipt::Verified, Error> {
    let key = VerifyingKey::from_file(public_key)?;
    let bytes = crate::digest::read_regular(file, crate::dsse::MAX_ENVELOPE_BYTES + 1)
        .map_err(|e| Error::Invalid(format!("{}: {e}", file.display())))?;
    Ok(crate::audit::receipt::verify(&bytes, &key)?)
}
