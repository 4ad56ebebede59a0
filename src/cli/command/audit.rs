//! `bale audit`.

use bale::audit::AuditReport;
use bale::ops::audit::AuditRequest;

use std::path::PathBuf;

use super::Run;
use crate::cli::args::AuditArgs;
use crate::cli::keys::SignWith;
use crate::cli::output::Output;
use crate::cli::resolve;

/// `bale audit`, resolved.
pub struct Audit {
    /// What to audit, against what.
    pub request: AuditRequest,
    /// Where the receipt's signing key comes from.
    pub sign: SignWith,
}

impl Audit {
    /// From `bale audit`'s flags.
    pub fn new(a: AuditArgs) -> Audit {
        Audit {
            sign: SignWith::resolve(a.sign_key, a.receipt.is_none()),
            request: AuditRequest {
                bundle: a.bundle,
                public_key: a.public_key,
                target: a.target,
                report: a.report,
                runtime: resolve::runtime(a.runtime),
                db: a.db,
                vex: a.vex,
                receipt: a.receipt,
            },
        }
    }
}

impl Run for Audit {
    fn run(&self, out: &Output) -> Result<(), bale::Error> {
        // The key is read (and its password asked for) before the audit.
        let key = if self.request.receipt.is_some() {
            match self.sign.key(out) {
                Err(bale::Error::Sign(bale::sign::SignError::NoKey)) => {
                    return Err(bale::Error::Usage(
                        "--receipt needs the site's secret key: --sign-key PATH (from `bale keygen`) or the key in BALE_SIGN_KEY".into(),
                    ));
                }
                k => k?,
            }
        } else {
            None
        };
        let report = bale::ops::audit::run(&self.request, key.as_ref())?;
        if out.is_json() {
            out.result(&report, report.ok());
        } else {
            print(&report);
        }
        for (what, path) in [
            ("report", &self.request.report),
            ("receipt", &self.request.receipt),
        ] {
            if let Some(p) = path {
                errln!(
                    "{what} written to {}",
                    std::path::absolute(p)
                        .unwrap_or_else(|_| p.clone())
                        .display()
                );
            }
        }
        bale::ops::audit::verdict(&report)
    }
}

/// `bale verify-receipt`, resolved.
pub struct VerifyReceipt {
    /// The receipt.
    pub file: PathBuf,
    /// The key it must be signed with.
    pub public_key: PathBuf,
}

impl Run for VerifyReceipt {
    fn run(&self, out: &Output) -> Result<(), bale::Error> {
        let v = bale::ops::audit::verify_receipt(&self.file, &self.public_key)?;
        if out.is_json() {
            out.result(&v, true);
            return Ok(());
        }
        let p = &v.statement["predicate"];
        let s = &v.statement["subject"][0];
        errln!(
            "receipt verified with key {}: {} (manifest sha256:{}) audited at {} on {} (machine ID {}) in {} with runtime {}: {}, {} finding(s){}",
            v.key_id,
            s["name"].as_str().unwrap_or("?"),
            s["digest"]["sha256"].as_str().unwrap_or("?"),
            p["time"].as_str().unwrap_or("?"),
            p["host"]["hostname"].as_str().unwrap_or("?"),
            p["host"]["machine_id"].as_str().unwrap_or("none"),
            p["target"].as_str().unwrap_or("?"),
            p["runtime"].as_str().unwrap_or("?"),
            p["result"].as_str().unwrap_or("?"),
            p["findings"].as_array().map_or(0, Vec::len),
            match p["scan"]["open"].as_object() {
                Some(o) => format!(
                    "; scan: {} open vulnerability finding(s)",
                    o.values()
                        .filter_map(serde_json::Value::as_u64)
                        .sum::<u64>()
                ),
                None => String::new(),
            }
        );
        Ok(())
    }
}

/// The findings and a summary line on stderr.
fn print(report: &AuditReport) {
    for f in &report.findings {
        errln!("FINDING {} {}: {}", f.kind, f.subject, f.message);
    }
    let checked = report
        .images
        .iter()
        .filter(|i| i.status != "skipped")
        .count();
    let skipped = report.images.len() - checked;
    errln!(
        "{} {} (manifest {}) in {}: {checked} images{}, {} services, {} files checked against the {} (runtime {}); {} finding(s)",
        report.name,
        report.version,
        report.manifest_digest,
        report.target.display(),
        if skipped > 0 {
            format!(
                " ({skipped} skipped: runtime {} keeps no images)",
                report.runtime
            )
        } else {
            String::new()
        },
        report.services.len(),
        report.files.len(),
        report.reference,
        report.runtime,
        report.findings.len()
    );
}
