//! The top-level error, folding each module's, and the exit codes.

use crate::bundle::BundleError;
use crate::config::ConfigError;
use crate::fetch::FetchError;
use crate::lock::{LockError, ResolveErrorKind};
use crate::sign::SignError;
use crate::spec::SpecError;
use crate::store::StoreError;
use crate::verify::{InspectError, VerifyError};

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
    /// Building a bundle.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// Keys and signatures.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// Reading a bundle to verify it.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// Reading a bundle to inspect it.
    #[error(transparent)]
    Inspect(#[from] InspectError),
    /// A bundle that failed verification; the report lists why.
    #[error("{0} problem(s) found: the bundle is not intact")]
    NotIntact(usize),
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
            Error::Bundle(b) => match b {
                BundleError::Corrupt { .. } => exit::INTEGRITY,
                BundleError::Overlay { .. } => exit::INVALID_INPUT,
                BundleError::Sign(s) => sign_code(s),
                BundleError::Io { .. }
                | BundleError::Missing { .. }
                | BundleError::Changed { .. } => exit::FAILURE,
            },
            Error::Sign(s) => sign_code(s),
            Error::Verify(_) => exit::FAILURE,
            Error::Inspect(InspectError::Io(_)) => exit::FAILURE,
            Error::Inspect(InspectError::Invalid { .. }) | Error::NotIntact(_) => exit::INTEGRITY,
        }
    }
}

fn sign_code(e: &SignError) -> i32 {
    match e {
        SignError::NoKey => exit::USAGE,
        SignError::Io { .. } | SignError::Keygen(_) => exit::FAILURE,
        SignError::BadKey { .. } | SignError::NeedPassword(_) | SignError::WrongPassword(_) => {
            exit::INVALID_INPUT
        }
    }
}
