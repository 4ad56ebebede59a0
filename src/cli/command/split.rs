//! `bale split`.

use std::path::PathBuf;

use super::Run;
use crate::cli::args::SplitArgs;
use crate::cli::keys::SignWith;
use crate::cli::output::{Output, human};

/// `bale split`, resolved.
pub struct Split {
    /// The bundle.
    pub bundle: PathBuf,
    /// The largest part.
    pub size: Option<u64>,
    /// The key to sign the part list with.
    pub sign: SignWith,
}

impl Split {
    /// From `bale split`'s flags.
    pub fn new(a: SplitArgs) -> Split {
        Split {
            bundle: a.bundle,
            size: a.size,
            sign: SignWith::resolve(a.signing.sign_key, a.signing.unsigned),
        }
    }
}

impl Run for Split {
    fn run(&self, out: &Output) -> Result<(), bale::Error> {
        let key = self.sign.key(out)?;
        let report = bale::ops::split::run(&self.bundle, self.size, key.as_ref())?;
        if out.is_json() {
            out.result(&report, true);
            return Ok(());
        }
        for p in &report.parts.parts {
            errln!("wrote {} ({}, {})", p.name, human(p.size), p.sha256);
        }
        errln!(
            "wrote {}{}: {} parts of {} ({}); `cat {}.??? > {}` rejoins them",
            report.list.display(),
            match &report.signature {
                Some(s) => format!(" and {}", s.display()),
                None => " (UNSIGNED)".to_owned(),
            },
            report.parts.parts.len(),
            report.parts.bundle,
            human(report.parts.size),
            report.parts.bundle,
            report.parts.bundle
        );
        Ok(())
    }
}
