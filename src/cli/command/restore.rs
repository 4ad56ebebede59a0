//! `bale restore`.

use bale::ops::restore::RestoreRequest;

use super::Run;
use super::snapshot::bytes;
use crate::cli::args::RestoreArgs;
use crate::cli::output::Output;
use crate::cli::resolve;

/// `bale restore`, resolved.
pub struct Restore {
    /// Which snapshot, where.
    pub request: RestoreRequest,
}

impl Restore {
    /// From `bale restore`'s flags.
    pub fn new(a: RestoreArgs) -> Restore {
        Restore {
            request: RestoreRequest {
                target: a.target,
                snapshot: a.snapshot,
                runtime: resolve::runtime(a.runtime),
                timeout: std::time::Duration::from_secs(a.timeout),
            },
        }
    }
}

impl Run for Restore {
    fn run(&self, out: &Output) -> Result<(), bale::Error> {
        let r = bale::ops::restore::run(&self.request)?;
        if out.is_json() {
            out.result(&r, true);
            return Ok(());
        }
        errln!(
            "restored snapshot {}: release {} ({}){}",
            r.snapshot,
            r.version,
            r.release,
            r.switched_from
                .as_ref()
                .map(|v| format!(", current again instead of {v}"))
                .unwrap_or_default()
        );
        for a in &r.archives {
            errln!("  {:<30} {} files, {}", a.name, a.files, bytes(a.bytes));
        }
        for c in &r.services {
            errln!("  service {:<20} {} {}", c.service, c.state, c.health);
        }
        Ok(())
    }
}
