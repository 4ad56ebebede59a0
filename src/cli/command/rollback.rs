//! `bale rollback`.

use bale::ops::rollback::RollbackRequest;

use super::Run;
use crate::cli::output::Output;

/// `bale rollback`, resolved.
pub struct Rollback {
    /// Where, to which release, how.
    pub request: RollbackRequest,
}

impl Run for Rollback {
    fn run(&self, out: &Output) -> Result<(), bale::Error> {
        let report = bale::ops::rollback::run(&self.request)?;
        if out.is_json() {
            out.result(&report, true);
            return Ok(());
        }
        errln!(
            "{} rolled back from {} to {} ({}): {} files and {} images checked",
            report.name,
            report.from,
            report.to,
            report.release.display(),
            report.files_checked,
            report.images_checked
        );
        for c in &report.services {
            errln!("  service {:<20} {} {}", c.service, c.state, c.health);
        }
        Ok(())
    }
}
