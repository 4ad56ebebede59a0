//! `bale serve`: a verified bundle as a read-only OCI registry.
//!
//! The bundle is verified whole before the socket opens. Manifests (small,
//! capped) are kept in memory as pulled; blobs are byte ranges of the
//! bundle file, read with positioned reads in 128 KiB chunks into a
//! two-chunk channel per response, so memory stays flat whatever the
//! bundle's size. A whole blob is hashed again on its way out; if the file
//! changed since verification, its last chunk is never sent and the client
//! sees a broken transfer instead of wrong bytes.
//!
//! hyper 1 on tokio (see docs/design.md): at most `max_connections`
//! connections at once (further ones wait in the kernel's backlog), a
//! header read timeout, and a graceful stop on SIGTERM or SIGINT.

mod catalog;
mod routes;
mod tls;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use sha2::{Digest as _, Sha256};
use tokio::sync::{Semaphore, mpsc};

pub use catalog::{Catalog, Repository, Span, StoredManifest, served_name};
pub use routes::{Body, Reply, answer};

use crate::digest::Digest;
use crate::install::{InstallError, OpenBundle};
use crate::sign::VerifyingKey;

/// How long a stopping server waits for transfers under way.
const GRACE: Duration = Duration::from_secs(10);
/// Bytes per positioned read of a blob.
const CHUNK: usize = 128 * 1024;

/// Why `bale serve` could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The bundle did not verify, or could not be read.
    #[error(transparent)]
    Install(#[from] InstallError),
    /// The bundle's content cannot be served as a registry.
    #[error("{0}")]
    Bundle(String),
    /// Two images would be served under one name with different content.
    #[error(
        "{first} and {second} would both be served as {served} with different content: a registry name has no host to tell them apart"
    )]
    Conflict {
        /// The name both would have.
        served: String,
        /// The first image.
        first: String,
        /// The second image.
        second: String,
    },
    /// The address could not be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// A TLS certificate or key file is missing or unusable.
    #[error("{path}: {message}")]
    Tls {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The server itself failed.
    #[error("serve: {0}")]
    Io(#[from] io::Error),
}

/// How to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Address to listen on (port 0: any free port, reported when listening).
    pub listen: SocketAddr,
    /// PEM certificate chain and private key, for HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Connections served at once.
    pub max_connections: usize,
}

/// One request, as logged.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RequestLog {
    /// Client address.
    pub remote: String,
    /// Method.
    pub method: String,
    /// Path (and query).
    pub path: String,
    /// Status sent.
    pub status: u16,
    /// Body bytes planned (Content-Length; 0 for HEAD).
    pub bytes: u64,
    /// Time to the response headers, in milliseconds.
    pub millis: u64,
}

/// What the server reports while it runs.
#[derive(Clone, Debug)]
pub enum ServeEvent {
    /// Verified and listening.
    Listening {
        /// The address bound.
        addr: SocketAddr,
        /// Whether it speaks HTTPS.
        tls: bool,
        /// Repositories served.
        repositories: usize,
        /// Tags served.
        tags: usize,
        /// Bundle name.
        name: String,
        /// Bundle version.
        version: String,
    },
    /// A request was answered.
    Request(RequestLog),
    /// A blob no longer hashed to its digest while being sent: the bundle
    /// file changed after verification. The transfer was cut short.
    Changed {
        /// The blob.
        digest: Digest,
    },
    /// A signal arrived; transfers under way get a grace period.
    Stopping,
}

/// Totals when the server stops.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ServeSummary {
    /// Requests answered.
    pub requests: u64,
    /// Body bytes planned over all of them.
    pub bytes: u64,
}

/// Receives [`ServeEvent`]s, from any thread.
pub type Events = Arc<dyn Fn(ServeEvent) + Send + Sync>;

/// Verifies `bundle` with `key`, then serves it until SIGTERM or SIGINT.
pub fn serve(
    bundle: &Path,
    key: &VerifyingKey,
    opts: &ServeOptions,
    events: Events,
) -> Result<ServeSummary, ServeError> {
    let open = OpenBundle::open(bundle, key)?;
    let catalog = Catalog::of(&open)?;
    let acceptor = opts
        .tls
        .as_ref()
        .map(|(cert, key)| tls::acceptor(cert, key))
        .transpose()?;
    let state = Arc::new(State {
        catalog,
        file: open.source(),
        events,
        requests: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bale-serve")
        .build()?;
    let (name, version) = (open.images.name.clone(), open.images.version.clone());
    runtime.block_on(run(state, opts.clone(), acceptor, name, version))
}

struct State {
    catalog: Catalog,
    file: crate::bundle::source::Source,
    events: Events,
    requests: AtomicU64,
    bytes: AtomicU64,
}

async fn run(
    state: Arc<State>,
    opts: ServeOptions,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    name: String,
    version: String,
) -> Result<ServeSummary, ServeError> {
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: opts.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    (state.events)(ServeEvent::Listening {
        addr,
        tls: acceptor.is_some(),
        repositories: state.catalog.repositories.len(),
        tags: state
            .catalog
            .repositories
            .values()
            .map(|r| r.tags.len())
            .sum(),
        name,
        version,
    });
    let limit = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => p.map_err(|e| io::Error::other(e.to_string()))?,
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                // A client that vanished before accept; keep serving.
                Err(_) => continue,
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        let state = state.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = {
                let state = state.clone();
                service_fn(move |req| handle(state.clone(), remote, req))
            };
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30));
            match acceptor {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                }
                Some(a) => {
                    let Ok(Ok(tls)) =
                        tokio::time::timeout(Duration::from_secs(30), a.accept(stream)).await
                    else {
                        return;
                    };
                    let conn = builder.serve_connection(TokioIo::new(tls), service);
                    let _ = watcher.watch(conn).await;
                }
            }
        });
    }
    (state.events)(ServeEvent::Stopping);
    drop(listener);
    let _ = tokio::time::timeout(GRACE, graceful.shutdown()).await;
    Ok(ServeSummary {
        requests: state.requests.load(Ordering::Relaxed),
        bytes: state.bytes.load(Ordering::Relaxed),
    })
}

async fn handle(
    state: Arc<State>,
    remote: SocketAddr,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<OutBody>, Infallible> {
    let started = Instant::now();
    let range = req
        .headers()
        .get(hyper::header::RANGE)
        .and_then(|v| v.to_str().ok());
    let reply = answer(
        &state.catalog,
        req.method().as_str(),
        req.uri().path(),
        req.uri().query(),
        range,
    );
    let planned = match &reply.body {
        Body::Empty => 0,
        Body::Bytes(b) => b.len() as u64,
        Body::Blob { len, .. } => *len,
    };
    let mut resp = Response::builder()
        .status(reply.status)
        .header("Docker-Distribution-API-Version", "registry/2.0");
    for (k, v) in &reply.headers {
        resp = resp.header(*k, v);
    }
    let body = match reply.body {
        Body::Empty => OutBody::Empty,
        Body::Bytes(b) => OutBody::Full(Some(b)),
        Body::Blob {
            span,
            start,
            len,
            verify,
        } => OutBody::Stream(stream_blob(&state, span, start, len, verify)),
    };
    state.requests.fetch_add(1, Ordering::Relaxed);
    state.bytes.fetch_add(planned, Ordering::Relaxed);
    (state.events)(ServeEvent::Request(RequestLog {
        remote: remote.to_string(),
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map(|p| crate::validate::quote(p.as_str()))
            .unwrap_or_default(),
        status: reply.status,
        bytes: planned,
        millis: started.elapsed().as_millis() as u64,
    }));
    Ok(resp.body(body).unwrap_or_else(|_| {
        let mut r = Response::new(OutBody::Empty);
        *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        r
    }))
}

/// Reads `len` bytes of the blob at `span` from `start` on a blocking
/// thread into a small channel; with `verify`, hashes them and withholds
/// the last chunk if the digest is not the one verified.
fn stream_blob(
    state: &Arc<State>,
    span: Span,
    start: u64,
    len: u64,
    verify: Option<Digest>,
) -> mpsc::Receiver<io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(2);
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut hasher = verify.as_ref().map(|_| Sha256::new());
        let mut buf = vec![0u8; CHUNK];
        let mut pos = 0u64;
        while pos < len {
            let n = (len - pos).min(CHUNK as u64) as usize;
            if let Err(e) = state
                .file
                .read_exact_at(&mut buf[..n], span.offset + start + pos)
            {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            pos += n as u64;
            if let Some(h) = hasher.as_mut() {
                h.update(&buf[..n]);
            }
            if pos == len
                && let (Some(h), Some(want)) = (hasher.take(), verify.as_ref())
                && &Digest::from_sha256(h) != want
            {
                (state.events)(ServeEvent::Changed {
                    digest: want.clone(),
                });
                let _ = tx.blocking_send(Err(io::Error::other(format!(
                    "{want} changed after verification"
                ))));
                return;
            }
            if tx
                .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                .is_err()
            {
                return;
            }
        }
    });
    rx
}

/// A response body: nothing, bytes in memory, or a blob streamed from the
/// bundle file.
pub enum OutBody {
    /// No body.
    Empty,
    /// Bytes in memory, sent once.
    Full(Option<Bytes>),
    /// Chunks from [`stream_blob`]; an error aborts the connection.
    Stream(mpsc::Receiver<io::Result<Bytes>>),
}

impl hyper::body::Body for OutBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            OutBody::Empty => Poll::Ready(None),
            OutBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            OutBody::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, OutBody::Empty | OutBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            OutBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            _ => SizeHint::default(),
        }
    }
}
