//! `bale audit`.

use bale::audit::AuditReport;
use bale::ops::audit::AuditRequest;

use std::path::PathBuf;

use super::Run;
use crate::cli::args::RuntimeArgs;
use crate::cli::output::Output;
use crate::cli::resolve;

/// `bale audit`, resolved.
pub struct Audit {
    /// What to audit, against what.
    pub request: AuditRequest,
}

impl Audit {
    /// From `bale audit`'s flags.
    pub fn new(
        bundle: Option<PathBuf>,
        public_key: Option<PathBuf>,
        target: PathBuf,
        report: Option<PathBuf>,
        runtime: RuntimeArgs,
    ) -> Audit {
        Audit {
            request: AuditRequest {
                bundle,
                public_key,
                target,
                report,
                runtime: resolve::runtime(runtime),
            },
        }
    }
}

impl Run for Audit {
    fn run(&self, out: &Output) -> Result<(), bale::Error> {
        let report = bale::ops::audit::run(&self.request)?;
        if out.is_json() {
            out.result(&report, report.ok());
        } else {
            print(&report);
        }
        bale::ops::audit::verdict(&report)
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
