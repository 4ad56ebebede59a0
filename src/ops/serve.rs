//! `bale serve`: a verified bundle as a read-only registry.

use std::path::PathBuf;

use crate::error::Error;
use crate::serve::{self, Events, ServeOptions, ServeSummary};
use crate::sign::VerifyingKey;

/// What `bale serve` is asked to serve, and how.
#[derive(Clone, Debug)]
pub struct ServeRequest {
    /// The bundle.
    pub bundle: PathBuf,
    /// The key it must be signed with.
    pub public_key: PathBuf,
    /// Address, TLS and connection limit.
    pub options: ServeOptions,
}

/// Runs `bale serve` until SIGTERM or SIGINT; `events` hears of each
/// request.
pub fn run(req: &ServeRequest, events: Events) -> Result<ServeSummary, Error> {
    let key = VerifyingKey::from_file(&req.public_key)?;
    Ok(serve::serve(&req.bundle, &key, &req.options, events)?)
}
