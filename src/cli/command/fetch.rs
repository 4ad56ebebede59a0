//! `bale fetch`.

use bale::ops::{SpecOptions, StoreOptions};

use super::Run;
use crate::cli::args::{Blobs, Net, SpecFile};
use crate::cli::output::{Output, human};
use crate::cli::resolve;

/// `bale fetch`, resolved.
pub struct Fetch {
    /// bundle.toml and registries.
    pub spec: SpecOptions,
    /// The lock and the store.
    pub store: StoreOptions,
}

impl Fetch {
    /// From `bale fetch`'s flags.
    pub fn new(spec: SpecFile, blobs: Blobs, net: Net) -> Fetch {
        Fetch {
            spec: resolve::spec(spec, net),
            store: resolve::store(blobs),
        }
    }
}

impl Run for Fetch {
    fn run(&self, out: &Output) -> Result<(), bale::Error> {
        let r = out.reporter();
        let fetched = bale::ops::fetch::run(&self.spec, &self.store, r.as_ref());
        r.finish();
        let (root, summary) = fetched?;
        if out.is_json() {
            let mut v = serde_json::to_value(&summary).unwrap_or_default();
            v["store"] = root.display().to_string().into();
            out.result(&v, true);
        } else {
            errln!(
                "fetch: {} blobs ({}) in {}: {} downloaded ({} transferred), {} already present",
                summary.blobs,
                human(summary.bytes),
                root.display(),
                summary.downloaded,
                human(summary.transferred),
                summary.present
            );
        }
        Ok(())
    }
}
