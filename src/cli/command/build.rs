//! `bale build`.

use bale::ops::build::BuildOptions;

use super::Run;
use crate::cli::args::BuildArgs;
use crate::cli::keys::SignWith;
use crate::cli::output::{Output, human};
use crate::cli::resolve;

/// `bale build`, resolved.
pub struct Build {
    /// What to build.
    pub options: BuildOptions,
    /// The key to sign with.
    pub sign: SignWith,
}

impl Build {
    /// From `bale build`'s flags.
    pub fn new(a: BuildArgs) -> Build {
        Build {
            options: BuildOptions {
                spec: resolve::spec(a.spec, a.net),
                store: resolve::store(a.blobs),
                offline: a.offline,
                output: a.output,
                base: a.base,
            },
            sign: SignWith::resolve(a.signing.sign_key, a.signing.unsigned),
        }
    }
}

impl Run for Build {
    fn run(&self, out: &Output) -> Result<(), bale::Error> {
        let key = self.sign.key(out)?;
        let r = out.reporter();
        let report = bale::ops::build::run(&self.options, key.as_ref(), r.as_ref());
        r.finish();
        let report = report?;
        if out.is_json() {
            out.result(&report, true);
        } else {
            errln!(
                "wrote {} ({}, {} entries)\n  sha256   {}\n  manifest {}\n  {}",
                report.path.display(),
                human(report.size),
                report.entries,
                report.sha256,
                report.manifest,
                match &report.key_id {
                    Some(k) => format!("signed with key {k}"),
                    None => "UNSIGNED".to_owned(),
                }
            );
        }
        Ok(())
    }
}
