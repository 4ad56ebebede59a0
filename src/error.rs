//! The top-level error, folding each module's, and the exit codes.

use crate::bundle::BundleError;
use crate::catalog::CatalogError;
use crate::config::ConfigError;
use crate::fetch::FetchError;
use crate::install::InstallError;
use crate::lock::{LockError, ResolveErrorKind};
use crate::push::PushError;
use crate::serve::ServeError;
use crate::sign::SignError;
use crate::spec::SpecError;
use crate::store::StoreError;
use crate::verify::{InspectError, OpenError, VerifyError};

/// Exit codes, documented in docs/cli.md.
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// Any failure not listed below (I/O, store).
    pub const FAILURE: i32 = 1;
    /// Bad command line (clap's own code).
    pub const USAGE: i32 = 2;
    /// An input file is missing, unreadable or invalid: bundle.toml,
    /// bundle.lock, settings, a bundle or a key.
    pub const INVALID_INPUT: i32 = 3;
    /// bundle.lock missing or out of date where it must not change.
    pub const LOCK_OUT_OF_DATE: i32 = 4;
    /// A registry or the network failed.
    pub const REGISTRY: i32 = 5;
    /// Content did not match its digest or size; a bundle that failed
    /// verification; an audit that found the host not as signed.
    pub const INTEGRITY: i32 = 6;
    /// Refused by policy: a downgrade, or another bundle in the target.
    pub const REFUSED: i32 = 7;
    /// The container runtime failed, or services did not become healthy.
    pub const RUNTIME: i32 = 8;
    /// An upgrade failed and bale undid it: the previous release runs
    /// again on the data it had before the upgrade.
    pub const ROLLED_BACK: i32 = 9;
    /// `bale scan --fail-on`: an open finding at or above the level.
    pub const VULNERABLE: i32 = 10;
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
    /// Install and audit.
    #[error(transparent)]
    Install(#[from] InstallError),
    /// A bundle could not be opened, or an entry read, as verified.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// `bale outdated` found tags that moved.
    #[error("{0} service(s) whose tag moved since bundle.lock was written")]
    Outdated(usize),
    /// `bale outdated` could not ask the registry for some services.
    #[error("{0} service(s) could not be checked: the registry did not answer")]
    OutdatedUnknown(usize),
    /// Writing the output failed.
    #[error("cannot write the output: {source}")]
    Output {
        /// The cause.
        source: std::io::Error,
    },
    /// `bale serve`.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// `bale push`.
    #[error(transparent)]
    Push(#[from] PushError),
    /// `bale split`.
    #[error(transparent)]
    Split(#[from] crate::bundle::split::SplitError),
    /// A combination of flags that cannot work, said in words.
    #[error("{0}")]
    Usage(String),
    /// An input bale cannot use, said in words (never its bytes).
    #[error("{0}")]
    Invalid(String),
    /// `bale scan`.
    #[error(transparent)]
    Scan(#[from] crate::scan::ScanError),
    /// A VEX document.
    #[error(transparent)]
    Vex(#[from] crate::vex::VexError),
    /// An audit receipt that does not verify.
    #[error("receipt: {0}")]
    Receipt(#[from] crate::audit::receipt::ReceiptError),
    /// `bale scan --fail-on` found open findings at or above the level.
    #[error("{count} open finding(s) at {level} or above")]
    Vulnerable {
        /// How many.
        count: usize,
        /// The level asked for.
        level: &'static str,
    },
    /// A cosign key that cannot be used.
    #[error(transparent)]
    Cosign(#[from] crate::cosign::CosignError),
    /// An audit with findings; the report lists them.
    #[error("{0} finding(s): the host is not as signed")]
    Findings(usize),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Spec(_) | Error::Config(_) => exit::INVALID_INPUT,
            Error::Lock(l) => match l {
                LockError::Read { .. } => exit::INVALID_INPUT,
                LockError::Invalid(_)
                | LockError::Version { .. }
                | LockError::UnknownService(_) => exit::INVALID_INPUT,
                LockError::OutOfDate { .. } | LockError::Missing { .. } => exit::LOCK_OUT_OF_DATE,
                LockError::Resolve(_) | LockError::Unresolved(_) => {
                    // The gravest kind among them decides.
                    l.resolve_errors()
                        .iter()
                        .map(|r| match &r.kind {
                            ResolveErrorKind::DigestMismatch { .. }
                            | ResolveErrorKind::Signature(_) => exit::INTEGRITY,
                            ResolveErrorKind::Registry(_) | ResolveErrorKind::Manifest { .. } => {
                                exit::REGISTRY
                            }
                            ResolveErrorKind::Platform(_) | ResolveErrorKind::Layout(_) => {
                                exit::INVALID_INPUT
                            }
                        })
                        .max()
                        .unwrap_or(exit::REGISTRY)
                }
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
                BundleError::Corrupt { .. }
                | BundleError::Inventory(crate::inventory::InventoryError::Corrupt { .. }) => {
                    exit::INTEGRITY
                }
                BundleError::Inventory(_) => exit::FAILURE,
                BundleError::Overlay { .. }
                | BundleError::Base { .. }
                | BundleError::Compose { .. }
                | BundleError::Template { .. } => exit::INVALID_INPUT,
                BundleError::Sign(s) => sign_code(s),
                BundleError::Io { .. }
                | BundleError::Missing { .. }
                | BundleError::Changed { .. } => exit::FAILURE,
            },
            Error::Sign(s) => sign_code(s),
            Error::Verify(_) | Error::Inspect(InspectError::Io(_)) => exit::INVALID_INPUT,
            Error::Inspect(InspectError::Invalid { .. }) | Error::NotIntact(_) => exit::INTEGRITY,
            Error::Findings(_) => exit::INTEGRITY,
            Error::Outdated(_) => exit::LOCK_OUT_OF_DATE,
            Error::OutdatedUnknown(_) => exit::REGISTRY,
            Error::Output { .. } => exit::FAILURE,
            Error::Usage(_) => exit::USAGE,
            Error::Invalid(_) | Error::Vex(_) => exit::INVALID_INPUT,
            Error::Scan(s) => match s {
                crate::scan::ScanError::Osv(crate::osv::OsvError::Io { source, .. })
                    if source.kind() != std::io::ErrorKind::NotFound =>
                {
                    exit::FAILURE
                }
                _ => exit::INVALID_INPUT,
            },
            Error::Vulnerable { .. } => exit::VULNERABLE,
            Error::Receipt(r) => match r {
                crate::audit::receipt::ReceiptError::Dsse(crate::dsse::DsseError::Malformed(_)) => {
                    exit::INVALID_INPUT
                }
                _ => exit::INTEGRITY,
            },
            Error::Split(crate::bundle::split::SplitError::Refused(_)) => exit::INVALID_INPUT,
            Error::Split(crate::bundle::split::SplitError::Io { .. }) => exit::FAILURE,
            Error::Serve(s) => serve_code(s),
            Error::Push(p) => match p {
                PushError::Open(o) => open_code(o),
                PushError::Catalog(c) => catalog_code(c),
                PushError::Ca { .. } | PushError::Target(_) => exit::INVALID_INPUT,
                PushError::Registry { .. } | PushError::Stalled { .. } => exit::REGISTRY,
                PushError::Digest { .. } => exit::INTEGRITY,
            },
            Error::Install(i) => install_code(i),
            Error::Open(o) => open_code(o),
            Error::Cosign(crate::cosign::CosignError::BadKey { .. }) => exit::INVALID_INPUT,
            Error::Cosign(crate::cosign::CosignError::Refused(_)) => exit::INTEGRITY,
        }
    }
}

/// The exit code of a `bale serve` error.
fn serve_code(s: &ServeError) -> i32 {
    match s {
        ServeError::Open(o) => open_code(o),
        ServeError::Catalog(c) => catalog_code(c),
        ServeError::Tls { .. } => exit::INVALID_INPUT,
        ServeError::Bind { .. } | ServeError::Io(_) => exit::FAILURE,
    }
}

/// The exit code of an error opening a bundle or reading a verified entry.
fn open_code(o: &OpenError) -> i32 {
    match o {
        OpenError::NotVerified(_) | OpenError::Changed { .. } | OpenError::Invalid(_) => {
            exit::INTEGRITY
        }
        OpenError::Verify(_) | OpenError::Bundle(_) => exit::INVALID_INPUT,
        OpenError::Refused(_) => exit::REFUSED,
        OpenError::Io { .. } => exit::FAILURE,
    }
}

/// The exit code of an error offering a bundle as a registry's content.
fn catalog_code(c: &CatalogError) -> i32 {
    match c {
        CatalogError::Open(o) => open_code(o),
        CatalogError::Bundle(_) | CatalogError::Conflict { .. } => exit::INVALID_INPUT,
    }
}

/// The exit code of an install error.
fn install_code(i: &InstallError) -> i32 {
    match i {
        InstallError::Open(o) => open_code(o),
        InstallError::Image { .. }
        | InstallError::Drifted { .. }
        | InstallError::Altered { .. } => exit::INTEGRITY,
        InstallError::RolledBack { .. } => exit::ROLLED_BACK,
        InstallError::RollbackFailed { .. } => exit::RUNTIME,
        InstallError::Values(_) | InstallError::Template { .. } => exit::INVALID_INPUT,
        InstallError::Refused(_) | InstallError::Preflight(_) => exit::REFUSED,
        InstallError::Runtime(_)
        | InstallError::Unhealthy { .. }
        | InstallError::JobFailed { .. } => exit::RUNTIME,
        InstallError::Bundle(_) => exit::INVALID_INPUT,
        InstallError::Io { .. } | InstallError::Unsafe { .. } | InstallError::NotInstalled(_) => {
            exit::FAILURE
        }
    }
}

fn sign_code(e: &SignError) -> i32 {
    match e {
        SignError::NoKey => exit::USAGE,
        SignError::Io { .. } | SignError::Keygen(_) => exit::FAILURE,
        SignError::Read { .. }
        | SignError::BadKey { .. }
        | SignError::NeedPassword(_)
        | SignError::WrongPassword(_) => exit::INVALID_INPUT,
    }
}
