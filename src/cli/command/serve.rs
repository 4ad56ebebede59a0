//! `bale serve`: the library verifies and serves; this prints its events,
//! as text on stderr or JSON lines on stdout.

use bale::ops::serve::ServeRequest;
use bale::serve::ServeEvent;

use super::Run;
use crate::cli::args::ServeArgs;
use crate::cli::output::{Output, human};

/// `bale serve`, resolved.
pub struct Serve {
    /// What to serve, and how.
    pub request: ServeRequest,
}

/// One event as text on stderr.
fn text(e: &ServeEvent) {
    match e {
        ServeEvent::Listening {
            url,
            repositories,
            tags,
            name,
            version,
            ..
        } => errln!(
            "serving {name} {version} (verified): {repositories} repositories, {tags} tags at {url}"
        ),
        ServeEvent::Request(r) => errln!(
            "{} {} {} {} {} {}ms",
            r.remote,
            r.method,
            r.path,
            r.status,
            r.bytes,
            r.millis
        ),
        ServeEvent::Changed { digest } => errln!(
            "error: {digest} no longer matches the verified bundle: the file changed; transfer cut short"
        ),
        ServeEvent::Stopping => errln!("stopping: finishing transfers under way"),
    }
}

impl Serve {
    /// From `bale serve`'s flags.
    pub fn new(a: ServeArgs) -> Serve {
        Serve {
            request: ServeRequest {
                bundle: a.bundle,
                public_key: a.public_key,
                options: bale::serve::ServeOptions {
                    listen: a.listen,
                    tls: a.tls_cert.zip(a.tls_key),
                    max_connections: a.max_connections,
                },
            },
        }
    }
}

impl Run for Serve {
    fn run(&self, out: &Output) -> Result<(), bale::Error> {
        let printer = *out;
        let events: bale::serve::Events = std::sync::Arc::new(move |e: ServeEvent| {
            if !printer.is_json() {
                text(&e);
            } else if !matches!(e, ServeEvent::Stopping) {
                printer.event(&e);
            }
        });
        let summary = bale::ops::serve::run(&self.request, events)?;
        if out.is_json() {
            out.result(&summary, true);
        } else {
            errln!(
                "stopped: {} requests, {} sent",
                summary.requests,
                human(summary.bytes)
            );
        }
        Ok(())
    }
}
