//! `bale verify`.

use bale::ops::verify::VerifyRequest;

use super::Run;
use crate::cli::output::{Output, human};
use std::path::PathBuf;

/// `bale verify`, resolved.
pub struct Verify {
    /// What to verify, with which key.
    pub request: VerifyRequest,
}

impl Verify {
    /// From `bale verify`'s flags.
    pub fn new(
        bundle: PathBuf,
        public_key: Option<PathBuf>,
        allow_unsigned: bool,
        base: Option<PathBuf>,
    ) -> Verify {
        Verify {
            request: VerifyRequest {
                bundle,
                public_key,
                allow_unsigned,
                base,
            },
        }
    }
}

impl Run for Verify {
    fn run(&self, out: &Output) -> Result<(), bale::Error> {
        let report = bale::ops::verify::run(&self.request)?;
        if out.is_json() {
            out.result(&report, report.ok());
            return bale::ops::verify::verdict(&report);
        }
        for p in &report.problems {
            errln!("FAIL {}: {}", p.entry, p.message);
        }
        if let Some(b) = &report.base {
            errln!(
                "delta of {} {} (manifest {}): {} entries come from the base{}",
                b.name,
                b.version,
                b.manifest,
                report.from_base.len(),
                if report.base_checked {
                    ", checked in it"
                } else {
                    " (not checked: give it with --base OLD.bale); it must provide:"
                }
            );
            if !report.base_checked {
                for p in report.from_base.iter().take(20) {
                    errln!("  {p}");
                }
                if report.from_base.len() > 20 {
                    errln!(
                        "  … and {} more (--json lists them all)",
                        report.from_base.len() - 20
                    );
                }
            }
        }
        for i in report.images.iter().filter(|i| i.cosign.is_some()) {
            errln!(
                "upstream cosign signature of {} ({}): {}",
                i.service,
                i.name,
                i.cosign.unwrap_or_default()
            );
        }
        if report.signature == "unchecked" {
            errln!(
                "note: the bundle is signed, but no --public-key was given: its signature was not checked"
            );
        }
        errln!(
            "{} {} {}: signature {}{}, {} entries ({}) checked, {} problem(s)",
            self.request.bundle.display(),
            report.name.as_deref().unwrap_or("?"),
            report.version.as_deref().unwrap_or("?"),
            report.signature,
            report
                .key_id
                .as_ref()
                .map(|k| format!(" (key {k})"))
                .unwrap_or_default(),
            report.entries_checked,
            human(report.bytes_checked),
            report.problems.len()
        );
        bale::ops::verify::verdict(&report)
    }
}
