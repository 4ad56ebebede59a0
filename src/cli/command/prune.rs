//! `bale prune`.

use bale::ops::prune::PruneRequest;

use super::Run;
use super::snapshot::bytes;
use crate::cli::args::PruneArgs;
use crate::cli::output::Output;
use crate::cli::resolve;

/// `bale prune`, resolved.
pub struct Prune {
    /// Where, how much to keep.
    pub request: PruneRequest,
}

impl Prune {
    /// From `bale prune`'s flags.
    pub fn new(a: PruneArgs) -> Prune {
        let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Prune {
            request: PruneRequest {
                target: a.target,
                runtime: resolve::runtime(a.runtime),
                keep: count(a.keep),
                keep_snapshots: a.keep_snapshots.map(count),
                dry_run: a.dry_run,
            },
        }
    }
}

impl Run for Prune {
    fn run(&self, out: &Output) -> Result<(), bale::Error> {
        let r = bale::ops::prune::run(&self.request)?;
        if out.is_json() {
            out.result(&r, true);
            return Ok(());
        }
        let verb = if r.dry_run { "would remove" } else { "removed" };
        for (what, list) in [
            ("release", &r.releases),
            ("image", &r.images),
            ("snapshot", &r.snapshots),
        ] {
            for x in list {
                errln!("  {verb} {what} {} ({})", x.name, bytes(x.bytes));
            }
        }
        for i in &r.images_in_use {
            errln!("  image kept, still in use: {i}");
        }
        errln!(
            "{} {} in all; kept: {}",
            if r.dry_run { "would free" } else { "freed" },
            bytes(r.bytes_freed),
            r.kept.join(", ")
        );
        Ok(())
    }
}
