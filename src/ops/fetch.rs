//! `bale fetch`: every locked blob into the store, verified.

use std::path::PathBuf;

use super::{Context, SpecOptions, StoreOptions};
use crate::error::Error;
use crate::fetch::{self, Reporter, Summary};
use crate::lock::Lockfile;
use crate::store::Store;

/// Runs `bale fetch`; with the store's root.
pub fn run(
    spec: &SpecOptions,
    store: &StoreOptions,
    reporter: &dyn Reporter,
) -> Result<(PathBuf, Summary), Error> {
    let ctx = Context::load(&spec.file, &spec.net)?;
    let lock = ctx.lock_if_needed(store.locked)?;
    let (root, opened) = store.open()?;
    let summary = ctx.fetch(&lock, &opened, store.jobs, reporter)?;
    Ok((root, summary))
}

impl Context {
    /// `bale fetch`: every blob of `lock` into `store`.
    pub fn fetch(
        &self,
        lock: &Lockfile,
        store: &Store,
        parallel: usize,
        reporter: &dyn Reporter,
    ) -> Result<Summary, Error> {
        let jobs = fetch::plan(&self.spec, lock);
        let summary = fetch::fetch(&jobs, store, &self.client, parallel, reporter)?;
        self.check_signatures(lock, store)?;
        Ok(summary)
    }
}
