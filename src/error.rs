//! The top-level error, folding each module's, and the exit codes.

use crate::config::ConfigError;
use crate::fetch::FetchError;
use crate::lock::{LockError, ResolveErrorKind};
use crate::spec::SpecError;
use crate::store::StoreError;

/// Exit codes, documented in docs/cli.md.
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// Any failure not listed below (I/O, store).
    pub const FAILURE: i32 = 1;
    /// Bad command line (clap's own code).
    pub const USAGE: i32 = 2;
    /// Invalid input file: bundle.toml, bundle.lock or settings.
    pub const INVALID_INPUT: i32 = 3;
    /// bundle.lock missing or out of date where it must not change.
    pub const LOCK_OUT_OF_DATE: i32 = 4;
    /// A registry or the network failed.
    pub const REGISTRY: i32 = 5;
    /// Content did not match its digest or size.
    pub const INTEGRITY: i32 = 6;
}

/// Any error of bale.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// bundle.toml.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Settings.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// bundle.lock.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Fetching.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Spec(_) | Error::Config(_) => exit::INVALID_INPUT,
            Error::Lock(l) => match l {
                LockError::Read { .. } => exit::FAILURE,
                LockError::Invalid(_)
                | LockError::Version { .. }
                | LockError::UnknownService(_) => exit::INVALID_INPUT,
                LockError::OutOfDate { .. } | LockError::Missing { .. } => exit::LOCK_OUT_OF_DATE,
                LockError::Resolve(r) => match &r.kind {
                    ResolveErrorKind::DigestMismatch { .. } => exit::INTEGRITY,
                    ResolveErrorKind::Registry(_) | ResolveErrorKind::Manifest { .. } => {
                        exit::REGISTRY
                    }
                    ResolveErrorKind::Platform(_) | ResolveErrorKind::Layout(_) => {
                        exit::INVALID_INPUT
                    }
                },
            },
            Error::Fetch(FetchError::Blobs(errs)) => {
                if errs.iter().any(|e| e.is_integrity()) {
                    exit::INTEGRITY
                } else {
                    exit::REGISTRY
                }
            }
            Error::Fetch(FetchError::Store(_)) | Error::Store(_) => exit::FAILURE,
        }
    }
}
