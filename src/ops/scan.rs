//! `bale scan`: the packages of a bundle (or of the release installed in a
//! directory) matched against an OSV database carried in, VEX applied.

use std::path::{Path, PathBuf};

use crate::document::Format;
use crate::error::Error;
use crate::osv::Level;
use crate::scan::{self, ScanReport};
use crate::sign::VerifyingKey;
use crate::vex::Statement;

/// What `bale scan` is asked.
#[derive(Clone, Debug, Default)]
pub struct ScanRequest {
    /// The bundle to scan (its signed SBOM and VEX).
    pub bundle: Option<PathBuf>,
    /// Or the install directory (its current release's SBOM and VEX).
    pub target: Option<PathBuf>,
    /// The key the bundle is signed with.
    pub public_key: Option<PathBuf>,
    /// Scan a bundle whose signature is not checked.
    pub allow_unsigned: bool,
    /// OSV databases: zip exports, directories, record files.
    pub db: Vec<PathBuf>,
    /// More OpenVEX documents, applied after the bundle's own.
    pub vex: Vec<PathBuf>,
    /// The report file to write too (`.html` or `.md`).
    pub report: Option<PathBuf>,
    /// Fail (exit 10) on an open finding at this level or above.
    pub fail_on: Option<Level>,
}

/// What is scanned: its name, its SBOM, its VEX document.
type Subject = (PathBuf, Vec<u8>, Option<Vec<u8>>);

/// The SBOM and the bundle's VEX document, from a bundle or a target.
fn evidence(req: &ScanRequest) -> Result<Subject, Error> {
    match (&req.bundle, &req.target) {
        (Some(b), None) => {
            let key = req
                .public_key
                .as_deref()
                .map(VerifyingKey::from_file)
                .transpose()?;
            if key.is_none() && !req.allow_unsigned {
                return Err(Error::Usage(
                    "bale scan BUNDLE needs --public-key (or --allow-unsigned to scan what nobody signed)".into(),
                ));
            }
            let e = crate::verify::evidence(b, key.as_ref(), req.allow_unsigned)?;
            Ok((b.clone(), e.sbom, e.vex))
        }
        (None, Some(t)) => {
            let target = std::path::absolute(t).unwrap_or_else(|_| t.clone());
            let (sbom, vex) = installed(&target)?;
            Ok((target, sbom, vex))
        }
        _ => Err(Error::Usage(
            "bale scan takes a BUNDLE or --target DIR, not both".into(),
        )),
    }
}

/// The SBOM and VEX document of the release installed in `target`, as
/// install left them in its `.bale/` (what `scan --target` and `audit
/// --db` scan).
pub fn installed(target: &Path) -> Result<(Vec<u8>, Option<Vec<u8>>), Error> {
    let (dir, _) = crate::install::current_release(target)?
        .ok_or_else(|| crate::install::InstallError::NotInstalled(target.to_owned()))?;
    let meta = dir.join(".bale");
    let read = |name: &str, max: u64| crate::digest::read_regular(&meta.join(name), max);
    let sbom = read("sbom.spdx.json", crate::bundle::sbom::MAX_ATTESTATION_BYTES * 4).map_err(|e| {
        Error::Invalid(format!(
            "{}: the installed release has no readable SBOM ({e}); it was installed by a bale without SBOMs",
            meta.join("sbom.spdx.json").display()
        ))
    })?;
    Ok((sbom, read("vex.json", crate::vex::MAX_VEX_BYTES).ok()))
}

/// Reads the VEX documents: the bundle's first, then each `--vex` file.
fn statements(
    bundle_vex: Option<&[u8]>,
    files: &[PathBuf],
) -> Result<(Vec<Statement>, Vec<String>), Error> {
    let mut all = Vec::new();
    let mut sources = Vec::new();
    if let Some(b) = bundle_vex {
        all.extend(crate::vex::parse(b, "bundle")?);
        sources.push("bundle".to_owned());
    }
    for f in files {
        let bytes = crate::digest::read_regular(f, crate::vex::MAX_VEX_BYTES + 1)
            .map_err(|e| Error::Invalid(format!("--vex {}: {e}", f.display())))?;
        let name = f.display().to_string();
        all.extend(crate::vex::parse(&bytes, &name)?);
        sources.push(name);
    }
    Ok((all, sources))
}

/// The report format `--report` names.
pub fn report_format(report: Option<&Path>) -> Result<Option<Format>, Error> {
    report
        .map(|p| {
            Format::of(p).ok_or_else(|| {
                Error::Usage(format!(
                    "--report {}: the file must end in .html or .md",
                    p.display()
                ))
            })
        })
        .transpose()
}

/// Scans `db` for the packages of `sbom`, with the VEX statements given.
pub fn scan_sbom(
    subject: PathBuf,
    sbom: &[u8],
    bundle_vex: Option<&[u8]>,
    db: &[PathBuf],
    vex_files: &[PathBuf],
) -> Result<ScanReport, Error> {
    let (vex, sources) = statements(bundle_vex, vex_files)?;
    Ok(scan::scan(
        subject,
        sbom,
        db,
        &vex,
        sources,
        crate::clock::now(),
    )?)
}

/// Runs `bale scan`, writing the report file when asked for.
pub fn run(req: &ScanRequest) -> Result<ScanReport, Error> {
    let format = report_format(req.report.as_deref())?;
    if req.db.is_empty() {
        return Err(Error::Usage(
            "bale scan needs --db: an OSV database carried in (osv.dev's per-ecosystem all.zip, or a directory of OSV JSON records)".into(),
        ));
    }
    let (subject, sbom, vex) = evidence(req)?;
    let report = scan_sbom(subject, &sbom, vex.as_deref(), &req.db, &req.vex)?;
    if let (Some(path), Some(format)) = (&req.report, format) {
        crate::store::write_atomic(path, scan::report::render(&report, format).as_bytes())?;
    }
    Ok(report)
}

/// Ok unless `--fail-on` names a level an open finding reaches.
pub fn verdict(report: &ScanReport, fail_on: Option<Level>) -> Result<(), Error> {
    match fail_on {
        Some(level) => match report.open_at_or_above(level) {
            0 => Ok(()),
            n => Err(Error::Vulnerable {
                count: n,
                level: level.name(),
            }),
        },
        None => Ok(()),
    }
}
