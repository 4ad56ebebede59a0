//! `bale push`: progress on a terminal (or JSON lines with `--json`), then
//! the summary.

use bale::ops::push::PushRequest;
use bale::push::PushEvent;

use super::Run;
use crate::cli::args::PushArgs;
use crate::cli::output::{Output, Progress, human};
use crate::cli::resolve;

/// `bale push`, resolved.
pub struct Push {
    /// What to push, and where.
    pub request: PushRequest,
}

/// One event as text: the bar moved, or a line above it.
fn text(out: &Output, bar: Option<&Progress>, e: PushEvent) {
    let line = match e {
        PushEvent::Progress { digest, sent, size } => {
            if let Some(b) = bar {
                b.message(digest.hex().chars().take(12).collect());
                b.set(sent, size);
            }
            return;
        }
        PushEvent::Resumed {
            digest,
            offset,
            reason,
        } => format!("warning: {digest}: {reason}; going on from byte {offset}"),
        PushEvent::Blob {
            repository,
            digest,
            size,
            how,
        } => format!("{how:?} {repository}@{digest} ({})", human(size)).to_lowercase(),
        PushEvent::Manifest {
            reference, present, ..
        } => format!("{} {reference}", if present { "present" } else { "pushed" }),
    };
    out.line(bar, &line);
}

impl Push {
    /// From `bale push`'s flags.
    pub fn new(a: PushArgs) -> Push {
        Push {
            request: PushRequest {
                bundle: a.bundle,
                public_key: a.public_key,
                net: resolve::hosts(a.hosts),
                ca_cert: a.ca_cert,
                options: bale::push::PushOptions {
                    to: a.to,
                    chunk: a.chunk_size,
                },
            },
        }
    }
}

impl Run for Push {
    fn run(&self, out: &Output) -> Result<(), bale::Error> {
        let bar = out.progress();
        let events = |e: PushEvent| {
            if !out.is_json() {
                text(out, bar.as_ref(), e);
            } else if !matches!(e, PushEvent::Progress { .. }) {
                out.event(&e);
            }
        };
        let report = bale::ops::push::run(&self.request, &events);
        if let Some(b) = &bar {
            b.finish();
        }
        let report = report?;
        if out.is_json() {
            out.result(&report, true);
            return Ok(());
        }
        for i in &report.images {
            errln!("{} -> {} ({})", i.name, i.target, i.digest);
            if let Some(note) = &i.index {
                errln!("  index {note}");
            }
        }
        errln!(
            "pushed to {}: {} blobs uploaded ({}), {} mounted, {} already there; {} chunk(s) resumed",
            report.to,
            report.blobs_uploaded,
            human(report.bytes_uploaded),
            report.blobs_mounted,
            report.blobs_present,
            report.resumes
        );
        Ok(())
    }
}
