//! `bale rollback`.

use bale::ops::rollback::RollbackRequest;

use super::Run;
use crate::cli::args::RollbackArgs;
use crate::cli::output::Output;
use crate::cli::resolve;

/// `bale rollback`, resolved.
pub struct Rollback {
    /// Where, to which release, how.
    pub request: RollbackRequest,
}

impl Rollback {
    /// From `bale rollback`'s flags.
    pub fn new(a: RollbackArgs) -> Rollback {
        Rollback {
            request: RollbackRequest {
                target: a.target,
                to: a.to,
                runtime: resolve::runtime(a.runtime),
                up: a.up,
                timeout: std::time::Duration::from_secs(a.timeout),
                with_data: a.with_data,
            },
        }
    }
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
        if let Some(s) = &report.snapshot {
            errln!("  data restored from snapshot {s}");
        }
        for c in &report.services {
            errln!("  service {:<20} {} {}", c.service, c.state, c.health);
        }
        Ok(())
    }
}
