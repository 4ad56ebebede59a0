//! `bale outdated`: each service whose tag now points elsewhere than
//! bundle.lock says.

use super::{Context, Resolving, SpecOptions};
use crate::error::Error;
use crate::lock::Lockfile;

/// Runs `bale outdated`.
pub fn run(spec: &SpecOptions, resolving: &Resolving<'_>) -> Result<OutdatedReport, Error> {
    let ctx = Context::load(&spec.file, &spec.net)?;
    let lock = ctx.locked()?;
    Ok(ctx.outdated(&lock, resolving))
}

impl Context {
    /// `bale outdated`: what each locked service's tag resolves to now,
    /// through the same mirrors and credentials as `bale lock`.
    pub fn outdated(&self, lock: &Lockfile, resolving: &Resolving<'_>) -> OutdatedReport {
        let mut services = Vec::new();
        for image in &self.spec.images {
            let Some(locked) = lock.image(&image.service) else {
                continue;
            };
            resolving(&image.service, &image.written);
            let reference = image.source.reference();
            let (current, status, error) = if reference.digest.is_some() {
                (None, OutdatedStatus::Pinned, None)
            } else {
                match self.current_digest(image) {
                    Ok(d) if d == locked.digest => (Some(d), OutdatedStatus::Current, None),
                    Ok(d) => (Some(d), OutdatedStatus::Moved, None),
                    Err(e) => (None, OutdatedStatus::Failed, Some(e.to_string())),
                }
            };
            services.push(Outdated {
                service: image.service.clone(),
                image: locked.name.clone(),
                locked: locked.digest.clone(),
                current,
                status,
                error,
            });
        }
        OutdatedReport { services }
    }

    /// The digest `image`'s tag (or layout ref name) points to now.
    fn current_digest(
        &self,
        image: &crate::spec::ImageSpec,
    ) -> Result<crate::digest::Digest, crate::lock::ResolveError> {
        crate::lock::current_digest(self.repo(image).as_ref(), image)
    }
}

/// Whether a service's tag still points where the lock says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutdatedStatus {
    /// The tag resolves to the locked digest.
    Current,
    /// The tag resolves to other content now.
    Moved,
    /// bundle.toml pins a digest: the tag is not followed.
    Pinned,
    /// The registry could not say.
    Failed,
}

/// One service in `bale outdated`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outdated {
    /// Service.
    pub service: String,
    /// Canonical image name.
    pub image: String,
    /// The digest in bundle.lock.
    pub locked: crate::digest::Digest,
    /// What the tag resolves to now.
    pub current: Option<crate::digest::Digest>,
    /// The verdict.
    pub status: OutdatedStatus,
    /// Why the registry could not say, for `failed`.
    pub error: Option<String>,
}

/// What `bale outdated` found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutdatedReport {
    /// Per service, in bundle.toml's order.
    pub services: Vec<Outdated>,
}

impl OutdatedReport {
    /// Services whose tag moved.
    pub fn moved(&self) -> usize {
        self.services
            .iter()
            .filter(|s| s.status == OutdatedStatus::Moved)
            .count()
    }

    /// Services the registry could not answer for.
    pub fn failed(&self) -> usize {
        self.services
            .iter()
            .filter(|s| s.status == OutdatedStatus::Failed)
            .count()
    }

    /// Ok when every tag is where the lock says; else the error whose exit
    /// code says which (a registry that could not answer counts first).
    pub fn verdict(&self) -> Result<(), Error> {
        match (self.failed(), self.moved()) {
            (0, 0) => Ok(()),
            (0, moved) => Err(Error::Outdated(moved)),
            (failed, _) => Err(Error::OutdatedUnknown(failed)),
        }
    }
}
