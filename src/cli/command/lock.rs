//! `bale lock`.

use bale::lock::Change;
use bale::ops::SpecOptions;
use bale::ops::lock::{LockAction, LockResult};

use super::Run;
use crate::cli::args::{Net, SpecFile};
use crate::cli::output::{self, Output};
use crate::cli::resolve;
use bale::lock::Update;

/// `bale lock`, resolved.
pub struct Lock {
    /// bundle.toml and registries.
    pub spec: SpecOptions,
    /// Check, or update.
    pub action: LockAction,
}

impl Lock {
    /// From `bale lock`'s flags.
    pub fn new(spec: SpecFile, update: Option<Vec<String>>, check: bool, net: Net) -> Lock {
        Lock {
            spec: resolve::spec(spec, net),
            action: match (check, update) {
                (true, _) => LockAction::Check,
                (false, None) => LockAction::Update(Update::Missing),
                (false, Some(v)) if v.is_empty() => LockAction::Update(Update::All),
                (false, Some(v)) => LockAction::Update(Update::Services(v)),
            },
        }
    }
}

impl Run for Lock {
    fn run(&self, _out: &Output) -> Result<(), bale::Error> {
        match bale::ops::lock::run(&self.spec, &self.action, &output::resolving)? {
            LockResult::Agrees { lock, spec } => {
                errln!("{} agrees with {}", lock.display(), spec.display());
            }
            LockResult::Locked(outcome) => {
                for c in &outcome.changes {
                    match c {
                        Change::Kept(s) => errln!("kept     {s}"),
                        Change::Unchanged(s) => errln!("checked  {s} (unchanged)"),
                        Change::Updated(s, old, new) => match old {
                            Some(o) => errln!("updated  {s}: {o} -> {new}"),
                            None => errln!("locked   {s}: {new}"),
                        },
                    }
                }
                if outcome.written {
                    errln!("wrote {}", outcome.path.display());
                } else {
                    errln!("{} unchanged", outcome.path.display());
                }
            }
        }
        Ok(())
    }
}
