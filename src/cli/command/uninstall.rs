//! `bale uninstall`.

use std::io::{BufRead as _, Write as _};

use bale::ops::uninstall::UninstallRequest;

use super::Run;
use super::snapshot::bytes;
use crate::cli::args::UninstallArgs;
use crate::cli::output::Output;
use crate::cli::resolve;

/// `bale uninstall`, resolved.
pub struct Uninstall {
    /// Where, what to keep.
    pub request: UninstallRequest,
    /// `--yes`: no question before purging.
    pub yes: bool,
}

impl Uninstall {
    /// From `bale uninstall`'s flags.
    pub fn new(a: UninstallArgs) -> Uninstall {
        Uninstall {
            request: UninstallRequest {
                target: a.target,
                runtime: resolve::runtime(a.runtime),
                keep_images: a.keep_images,
                purge: a.purge,
            },
            yes: a.yes,
        }
    }
}

/// Asks on the terminal; true only for `yes`.
fn confirm(target: &std::path::Path) -> bool {
    eprint!(
        "--purge removes the site's data in {} for good: its volumes, data paths, .env, values and snapshots. Type yes to go on: ",
        target.display()
    );
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).is_ok() && line.trim() == "yes"
}

impl Run for Uninstall {
    fn run(&self, out: &Output) -> Result<(), bale::Error> {
        if self.request.purge && !self.yes {
            if !out.interactive {
                return Err(bale::Error::Usage(
                    "--purge removes the site's data: confirm with --yes where there is no terminal to ask on".into(),
                ));
            }
            if !confirm(&self.request.target) {
                return Err(bale::Error::Usage(
                    "not confirmed; nothing was removed".into(),
                ));
            }
        }
        let r = bale::ops::uninstall::run(&self.request)?;
        if out.is_json() {
            out.result(&r, true);
            return Ok(());
        }
        errln!(
            "uninstalled {} {}{}",
            r.name,
            r.version,
            r.project
                .as_ref()
                .map(|p| format!(": project {p} stopped and removed"))
                .unwrap_or_default()
        );
        let freed: u64 = r.images.iter().map(|i| i.bytes).sum();
        errln!("  {} images removed ({})", r.images.len(), bytes(freed));
        for i in &r.images_kept {
            errln!("  image kept: {i}");
        }
        if r.purged {
            errln!(
                "  purged: volumes {}, data paths, .env and snapshots removed",
                r.volumes.join(", ")
            );
        } else if !r.volumes.is_empty() {
            errln!(
                "  kept: volumes {}, .env and snapshots (--purge removes them)",
                r.volumes.join(", ")
            );
        } else {
            errln!("  kept: .env and snapshots (--purge removes them)");
        }
        Ok(())
    }
}
