//! `bale build`: the bundle file from the lock and the store, fetching
//! what the store lacks first.

use std::path::{Path, PathBuf};

use super::{Context, SpecOptions, StoreOptions};
use crate::bundle::{self, BuildReport};
use crate::error::Error;
use crate::fetch::{self, Origin, Reporter};
use crate::sign::SigningKey;

/// What `bale build` is asked to do.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// bundle.toml and registries.
    pub spec: SpecOptions,
    /// The lock and the store.
    pub store: StoreOptions,
    /// Fetch only from local OCI layouts; never change the lock.
    pub offline: bool,
    /// The bundle file (`NAME-VERSION.bale` when `None`).
    pub output: Option<PathBuf>,
    /// For a delta: the older bundle to build against.
    pub base: Option<PathBuf>,
}

/// Runs `bale build`, signing with `key` when given. A place the bundle
/// cannot go is said before anything is fetched.
pub fn run(
    opts: &BuildOptions,
    key: Option<&SigningKey>,
    reporter: &dyn Reporter,
) -> Result<BuildReport, Error> {
    let ctx = Context::load(&opts.spec.file, &opts.spec.net)?;
    let out = opts
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}-{}.bale", ctx.spec.name, ctx.spec.version)));
    bundle::check_output(&out)?;
    let (_, store) = opts.store.open()?;
    // The base is read before anything is fetched: a wrong path is said
    // first.
    let base = opts
        .base
        .as_deref()
        .map(crate::verify::manifest_of)
        .transpose()?;
    let lock = ctx.lock_if_needed(opts.store.locked || opts.offline)?;
    // Templates are checked before anything is downloaded.
    bundle::check_templates(&ctx.spec, &lock)?;
    let mut jobs = fetch::plan(&ctx.spec, &lock);
    if opts.offline {
        jobs.retain(|j| matches!(j.origin, Origin::Layout(_)));
    }
    fetch::fetch(&jobs, &store, &ctx.client, opts.store.jobs, reporter)?;
    ctx.check_signatures(&lock, &store)?;
    Ok(bundle::build(
        &ctx.spec,
        &lock,
        &store,
        Path::new(&out),
        key,
        base.as_ref().map(|(m, d)| (m, d)),
    )?)
}
