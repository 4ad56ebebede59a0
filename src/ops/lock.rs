//! `bale lock`: every image's tag resolved to digests, into bundle.lock.

use std::path::PathBuf;

use super::{Context, Resolving, SpecOptions};
use crate::error::Error;
use crate::lock::{self, Change, LockError, Lockfile, Update};
use crate::store::write_atomic;

/// What `bale lock` did.
#[derive(Debug)]
pub struct LockOutcome {
    /// The lock file.
    pub path: PathBuf,
    /// Per service.
    pub changes: Vec<Change>,
    /// Whether the file's bytes changed.
    pub written: bool,
}

/// What `bale lock` is asked to do.
#[derive(Clone, Debug)]
pub enum LockAction {
    /// Change nothing: the lock must exist and agree with bundle.toml.
    Check,
    /// Resolve what this asks for and what bundle.toml changed.
    Update(Update),
}

/// What `bale lock` found or did.
#[derive(Debug)]
pub enum LockResult {
    /// `--check`: the lock agrees with bundle.toml.
    Agrees {
        /// The lock file.
        lock: PathBuf,
        /// The bundle.toml.
        spec: PathBuf,
    },
    /// The lock as written (or found unchanged).
    Locked(LockOutcome),
}

/// Runs `bale lock`.
pub fn run(
    spec: &SpecOptions,
    action: &LockAction,
    resolving: &Resolving<'_>,
) -> Result<LockResult, Error> {
    let ctx = Context::load(&spec.file, &spec.net)?;
    match action {
        LockAction::Check => {
            ctx.locked()?;
            Ok(LockResult::Agrees {
                lock: ctx.lock_path(),
                spec: spec.file.clone(),
            })
        }
        LockAction::Update(update) => ctx.lock(update, resolving).map(LockResult::Locked),
    }
}

impl Context {
    /// `bale lock`: resolves what `update` asks for and what bundle.toml
    /// changed, writes the lock if its bytes change. `resolving` is told
    /// of each image as its resolution starts.
    pub fn lock(&self, update: &Update, resolving: &Resolving<'_>) -> Result<LockOutcome, Error> {
        let path = self.lock_path();
        let existing = Lockfile::load(&path)?;
        let (new, changes) = lock::relock(&self.spec, existing.as_ref(), update, &|i| {
            resolving(&i.service, &i.written);
            self.resolve(i)
        })?;
        let text = new.render();
        let old = std::fs::read(&path).ok();
        let written = old.as_deref() != Some(text.as_bytes());
        if written {
            write_atomic(&path, text.as_bytes())?;
        }
        Ok(LockOutcome {
            path,
            changes,
            written,
        })
    }

    /// The lock, which must exist and agree with bundle.toml
    /// (`bale lock --check`, `--locked`).
    pub fn locked(&self) -> Result<Lockfile, Error> {
        let path = self.lock_path();
        let lock = Lockfile::load(&path)?.ok_or(LockError::Missing { path: path.clone() })?;
        let problems = lock.disagreements(&self.spec);
        if !problems.is_empty() {
            return Err(LockError::OutOfDate { path, problems }.into());
        }
        Ok(lock)
    }

    /// The lock, updated first where bundle.toml changed (without `--locked`).
    pub fn lock_if_needed(&self, locked: bool) -> Result<Lockfile, Error> {
        if !locked {
            self.lock(&Update::Missing, &|_, _| {})?;
        }
        self.locked()
    }
}
