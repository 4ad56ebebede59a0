//! `bale push`: a verified bundle's images into an existing registry.

use std::path::{Path, PathBuf};

use super::NetOptions;
use crate::error::Error;
use crate::push::{self, PushEvent, PushOptions, PushReport};
use crate::sign::VerifyingKey;

/// What `bale push` is asked to push, and where.
#[derive(Clone, Debug)]
pub struct PushRequest {
    /// The bundle.
    pub bundle: PathBuf,
    /// The key it must be signed with.
    pub public_key: PathBuf,
    /// Settings file and plain-HTTP hosts.
    pub net: NetOptions,
    /// The site's CA, trusted alone for the registry.
    pub ca_cert: Option<PathBuf>,
    /// Target and chunk size.
    pub options: PushOptions,
}

/// Runs `bale push`; `events` hears of each blob and manifest.
pub fn run(req: &PushRequest, events: &(dyn Fn(PushEvent) + Sync)) -> Result<PushReport, Error> {
    let key = VerifyingKey::from_file(&req.public_key)?;
    let settings = super::settings(Path::new("."), &req.net)?;
    Ok(push::push_file(
        &req.bundle,
        &key,
        settings,
        req.ca_cert.as_deref(),
        &req.options,
        events,
    )?)
}
