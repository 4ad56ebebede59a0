//! Each command as one library call, one file per command: what the
//! CLI runs once it has resolved its arguments, minus the printing. A
//! command's report comes back whole; where the report itself means a
//! failure (findings, problems, moved tags), its `verdict` says which.

pub mod audit;
pub mod build;
mod context;
pub mod fetch;
pub mod inspect;
pub mod install;
pub mod keygen;
pub mod lock;
pub mod outdated;
pub mod prune;
pub mod push;
pub mod restore;
pub mod rollback;
pub mod runtime;
pub mod sbom;
pub mod scan;
pub mod serve;
pub mod snapshot;
pub mod split;
pub mod status;
pub mod uninstall;
pub mod verify;

pub use context::{Context, NetOptions, Resolving, settings};

use std::path::PathBuf;

/// Which bundle.toml a command reads, and how it reaches registries.
#[derive(Clone, Debug)]
pub struct SpecOptions {
    /// The bundle.toml.
    pub file: PathBuf,
    /// Settings file, mirrors, plain-HTTP hosts.
    pub net: NetOptions,
}

/// The lock and store options of the commands that fill the store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Fail instead of updating bundle.lock when it disagrees.
    pub locked: bool,
    /// The store directory (the default one when `None`).
    pub dir: Option<PathBuf>,
    /// Downloads at once.
    pub jobs: usize,
}

impl StoreOptions {
    /// Opens the store; with its root.
    pub fn open(&self) -> Result<(PathBuf, crate::store::Store), crate::Error> {
        let root = self.dir.clone().unwrap_or_else(crate::store::default_root);
        let store = crate::store::Store::open(&root)?;
        Ok((root, store))
    }
}
