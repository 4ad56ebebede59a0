//! One file per command: what it prints around its library call
//! (`bale::ops`). Each holds its resolved arguments and runs once.

pub mod audit;
pub mod build;
pub mod fetch;
pub mod inspect;
pub mod install;
pub mod keygen;
pub mod lock;
pub mod meta;
pub mod outdated;
pub mod prune;
pub mod push;
pub mod restore;
pub mod rollback;
pub mod sbom;
pub mod scan;
pub mod serve;
pub mod snapshot;
pub mod split;
pub mod status;
pub mod uninstall;
pub mod verify;

use super::output::Output;

/// A command with its arguments resolved.
pub trait Run {
    /// Runs it, printing in `out`'s mode.
    fn run(&self, out: &Output) -> Result<(), bale::Error>;
}
