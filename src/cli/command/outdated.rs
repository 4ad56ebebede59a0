//! `bale outdated`.

use bale::ops::SpecOptions;
use bale::ops::outdated::OutdatedStatus;

use super::Run;
use crate::cli::output::{self, Output};

/// `bale outdated`, resolved.
pub struct Outdated {
    /// bundle.toml and registries.
    pub spec: SpecOptions,
}

impl Run for Outdated {
    fn run(&self, out: &Output) -> Result<(), bale::Error> {
        let report = bale::ops::outdated::run(&self.spec, &output::resolving)?;
        if out.is_json() {
            out.result(&report, report.verdict().is_ok());
            return report.verdict();
        }
        for s in &report.services {
            let now = s
                .current
                .as_ref()
                .map_or_else(|| "-".to_owned(), ToString::to_string);
            match s.status {
                OutdatedStatus::Current => {
                    errln!("current  {} {} ({})", s.service, s.image, s.locked)
                }
                OutdatedStatus::Moved => errln!(
                    "MOVED    {} {}: locked {}, the tag now points to {now}",
                    s.service,
                    s.image,
                    s.locked
                ),
                OutdatedStatus::Pinned => errln!(
                    "pinned   {} {} (bundle.toml pins {})",
                    s.service,
                    s.image,
                    s.locked
                ),
                OutdatedStatus::Failed => errln!(
                    "FAILED   {} {}: {}",
                    s.service,
                    s.image,
                    s.error.as_deref().unwrap_or("unknown error")
                ),
            }
        }
        let moved = report.moved();
        if moved > 0 {
            errln!("{moved} tag(s) moved: `bale lock --update SERVICE…` takes the new content");
        }
        report.verdict()
    }
}
