//! `bale scan`.

use bale::ops::scan::ScanRequest;
use bale::scan::ScanReport;

use super::Run;
use crate::cli::args::ScanArgs;
use crate::cli::output::{self, Output, Stream};

/// `bale scan`, resolved.
pub struct Scan {
    /// What to scan, against what.
    pub request: ScanRequest,
}

impl Scan {
    /// From `bale scan`'s flags.
    pub fn new(a: ScanArgs) -> Scan {
        Scan {
            request: ScanRequest {
                bundle: a.bundle,
                target: a.target,
                public_key: a.public_key,
                allow_unsigned: a.allow_unsigned,
                db: a.db,
                vex: a.vex,
                report: a.report,
                fail_on: a.fail_on,
            },
        }
    }
}

impl Run for Scan {
    fn run(&self, out: &Output) -> Result<(), bale::Error> {
        if self.request.allow_unsigned {
            errln!(
                "warning: scanning a bundle whose signature is not checked: nothing says who made its SBOM"
            );
        }
        let report = bale::ops::scan::run(&self.request)?;
        let verdict = bale::ops::scan::verdict(&report, self.request.fail_on);
        if out.is_json() {
            out.result(&report, verdict.is_ok());
        } else {
            print(&report);
        }
        if let Some(r) = &self.request.report {
            errln!("report written to {}", r.display());
        }
        verdict
    }
}

/// One line per finding on stdout, the database's age and a summary on stderr.
fn print(r: &ScanReport) {
    let mut text = String::new();
    for img in &r.images {
        for f in &img.findings {
            let fixed = f
                .fixed
                .as_deref()
                .map_or_else(|| "no fix".to_owned(), |v| format!("fixed in {v}"));
            let vex = f.vex.as_ref().map_or_else(String::new, |v| {
                format!(
                    "  VEX {}{} ({})",
                    v.status,
                    v.justification
                        .as_deref()
                        .map_or_else(String::new, |j| format!(": {j}")),
                    v.source
                )
            });
            let aliases = if f.aliases.is_empty() {
                String::new()
            } else {
                format!(" ({})", f.aliases.join(", "))
            };
            text.push_str(&format!(
                "{}  {}{aliases}  {} {}  {fixed}  {}{vex}\n",
                img.service,
                f.id,
                f.package,
                f.installed,
                f.severity.name()
            ));
        }
    }
    output::emit(Stream::Out, &text, false);
    let db = &r.database;
    errln!(
        "database: {} record(s) ({} withdrawn) from {}; newest record {}{}",
        db.records,
        db.withdrawn,
        db.sources
            .iter()
            .map(|s| s.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        db.newest_modified.as_deref().unwrap_or("none"),
        db.age_days
            .map_or_else(String::new, |d| format!(", {d} day(s) old"))
    );
    let found: usize = r.images.iter().map(|i| i.findings.len()).sum();
    let open: usize = r.open.values().sum();
    let packages: usize = r.images.iter().map(|i| i.packages).sum();
    errln!(
        "{}: {} image(s), {packages} OS package(s): {found} finding(s), {open} open ({} settled by VEX)",
        r.bundle,
        r.images.len(),
        found - open
    );
}
