//! `bale status`.

use std::io::Write;

use bale::ops::status::StatusRequest;

use super::Run;
use crate::cli::args::StatusArgs;
use crate::cli::output::{Output, Terminal};
use crate::cli::resolve;

/// `bale status`, resolved.
pub struct Status {
    /// Which install directory, with which runtime.
    pub request: StatusRequest,
}

impl Status {
    /// From `bale status`'s flags.
    pub fn new(a: StatusArgs) -> Status {
        Status {
            request: StatusRequest {
                target: a.target,
                runtime: resolve::runtime(a.runtime),
            },
        }
    }
}

impl Run for Status {
    fn run(&self, out: &Output) -> Result<(), bale::Error> {
        let status = bale::ops::status::run(&self.request)?;
        if out.is_json() {
            out.result(&status, true);
        } else {
            print(&status);
        }
        Ok(())
    }
}

/// The status as text on stdout.
fn print(s: &bale::status::Status) {
    let mut w = Terminal::stdout();
    let _ = writeln!(
        w,
        "{} {} (manifest {}) in {}: current since {}; runtime {}",
        s.name,
        s.version,
        s.manifest_digest,
        s.target.display(),
        s.current_since,
        s.runtime
    );
    let _ = writeln!(w, "\nreleases kept: {}", s.releases.len());
    for r in &s.releases {
        let _ = writeln!(
            w,
            "{} {:<12} {:<32} installed {}",
            if r.current { "*" } else { " " },
            r.version,
            r.id,
            r.installed
        );
    }
    let _ = writeln!(w, "\nsnapshots kept: {}", s.snapshots.len());
    for snap in &s.snapshots {
        let _ = writeln!(
            w,
            "  {:<32} {:<12} {} ago, {} archives, {}",
            snap.id,
            snap.version,
            age(snap.age_seconds),
            snap.archives,
            super::snapshot::bytes(snap.bytes)
        );
    }
    if let Some(j) = &s.upgrade {
        let _ = writeln!(
            w,
            "\nupgrade from {} to {} {:?} (snapshot {}): run `bale install` of {} again to finish it, or `bale rollback` to go back",
            j.from_version, j.to_version, j.phase, j.snapshot, j.to_version
        );
    }
    match &s.project {
        None => {
            let _ = writeln!(w, "\nservices: the bundle has no compose file");
        }
        Some(p) if s.services.is_empty() => {
            let _ = writeln!(
                w,
                "\nservices of project {p}: none shown (runtime {} runs no compose projects)",
                s.runtime
            );
        }
        Some(p) => {
            let _ = writeln!(w, "\nservices of project {p}:");
            for svc in &s.services {
                let _ = writeln!(
                    w,
                    "  {:<20} {:<10} {:<10} {}",
                    svc.service, svc.state, svc.health, svc.status
                );
            }
        }
    }
}

/// An age in the largest whole unit.
fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}
