//! `bale serve`: a verified bundle as a read-only OCI registry.
//!
//! The bundle is verified whole before the socket opens. Manifests (small,
//! capped) are kept in memory as pulled; blobs are byte ranges of the
//! bundle file, read with positioned reads a sealed chunk (256 KiB) at a
//! time and sent in 128 KiB pieces through a two-piece channel per
//! response, so memory stays flat whatever the bundle's size. No byte
//! leaves unchecked: verification took a keyed seal of each chunk of every
//! blob as it hashed it, and every chunk sent, for a range as for the
//! whole blob, is read whole and compared with its seal before any of it
//! is sent. A file changed since verification cuts
//! the transfer where the change begins, and the refusal is logged.
//!
//! hyper 1 on tokio (see docs/design.md): at most `max_connections`
//! connections at once; request headers (and TLS handshakes) within 5 s;
//! when every slot is taken, the connection idle the longest (for 1 s at
//! least: slow headers, or a keep-alive left open) is closed for the new
//! one; a graceful stop on SIGTERM or SIGINT.

mod conns;
mod routes;
mod tls;

use std::convert::Infallible;
use std::io::{self, Read as _};
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
use tokio::sync::{Semaphore, mpsc};

pub use crate::catalog::{Catalog, CatalogError, Repository, Span, StoredManifest, served_name};
pub use routes::{Body, Reply, answer};

use conns::{Busy, Conn, Conns, Tracked};

use crate::digest::Digest;
use crate::sign::VerifyingKey;
use crate::verify::sealed::ChangedEntry;
use crate::verify::{OpenBundle, OpenError};

/// How long a stopping server waits for transfers under way.
const GRACE: Duration = Duration::from_secs(10);
/// Bytes per positioned read of a blob.
const CHUNK: usize = 128 * 1024;
/// How long a client may take to send a request's headers (or finish a
/// TLS handshake): a pull sends them in milliseconds.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection must have been idle (no response under way)
/// before a new client may take its slot when all are full.
const IDLE_EVICT: Duration = Duration::from_secs(1);
/// How often a client waiting for a slot looks for an idle one.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// Why `bale serve` could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The bundle did not verify, or could not be read.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The bundle's content cannot be served as a registry.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
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

/// What the server reports while it runs; as JSON, an object whose
/// `event` names the kind.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum ServeEvent {
    /// Verified and listening.
    Listening {
        /// `http://ADDR` or `https://ADDR`.
        url: String,
        /// The address bound.
        addr: SocketAddr,
        /// Whether it speaks HTTPS.
        tls: bool,
        /// Repositories served.
        repositories: usize,
        /// Tags served.
        tags: usize,
        /// Bundle name.
        #[serde(rename = "bundle")]
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
    let (name, version) = (open.images.name.clone(), open.images.version.clone());
    let state = Arc::new(State {
        catalog,
        bundle: open,
        events,
        requests: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bale-serve")
        .build()?;
    runtime.block_on(run(state, opts.clone(), acceptor, name, version))
}

struct State {
    catalog: Catalog,
    /// The verified bundle, whose blobs are read through their seals.
    bundle: OpenBundle,
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
    let tls = acceptor.is_some();
    (state.events)(ServeEvent::Listening {
        url: format!("{}://{addr}", if tls { "https" } else { "http" }),
        addr,
        tls,
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
    let conns = Conns::default();
    loop {
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                // A client that vanished before accept; keep serving.
                Err(_) => continue,
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        // Every slot taken: the connection idle the longest, for at least
        // IDLE_EVICT (one slow to send its headers, or a keep-alive left
        // open), makes room; one receiving a blob is never cut for another.
        // Only this one new connection waits meanwhile: the next is
        // accepted after it.
        let permit = loop {
            tokio::select! {
                p = limit.clone().acquire_owned() => break Some(p.map_err(|e| io::Error::other(e.to_string()))?),
                _ = tokio::time::sleep(IDLE_POLL) => conns.evict_idlest(),
                _ = term.recv() => break None,
                _ = int.recv() => break None,
            }
        };
        let Some(permit) = permit else { break };
        let state = state.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let conn = conns.add();
        let conns = conns.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = {
                let (state, conn) = (state.clone(), conn.clone());
                service_fn(move |req| handle(state.clone(), conn.clone(), remote, req))
            };
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let served = async {
                match acceptor {
                    None => {
                        let conn = builder.serve_connection(TokioIo::new(stream), service);
                        let _ = watcher.watch(conn).await;
                    }
                    Some(a) => {
                        let Ok(Ok(tls)) =
                            tokio::time::timeout(HEADER_TIMEOUT, a.accept(stream)).await
                        else {
                            return;
                        };
                        let conn = builder.serve_connection(TokioIo::new(tls), service);
                        let _ = watcher.watch(conn).await;
                    }
                }
            };
            tokio::select! {
                _ = served => {}
                _ = conn.evicted.notified() => {}
            }
            conns.remove(conn.id);
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
    conn: Arc<Conn>,
    remote: SocketAddr,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Tracked>, Infallible> {
    let busy = Busy::new(conn);
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
        Body::Blob { start, len, digest } => {
            OutBody::Stream(stream_blob(&state, start, len, digest))
        }
    };
    state.requests.fetch_add(1, Ordering::Relaxed);
    state.bytes.fetch_add(planned, Ordering::Relaxed);
    (state.events)(ServeEvent::Request(RequestLog {
        remote: remote.to_string(),
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map(|p| crate::quote::quote(p.as_str()))
            .unwrap_or_default(),
        status: reply.status,
        bytes: planned,
        millis: started.elapsed().as_millis() as u64,
    }));
    let body = Tracked { body, _busy: busy };
    Ok(match resp.body(()) {
        Ok(r) => Response::from_parts(r.into_parts().0, body),
        Err(_) => {
            let mut r = Response::new(Tracked {
                body: OutBody::Empty,
                _busy: body._busy,
            });
            *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
    })
}

/// Reads `len` bytes of blob `digest` from `start` on a blocking
/// thread into a small channel, through a [`SealedReader`]: every chunk is
/// read whole and checked against the seal verification took of it before
/// any byte of it is sent, so a bundle file that changed after verification
/// sends nothing changed, whatever range is asked for, and the transfer is
/// cut there.
///
/// [`SealedReader`]: crate::verify::sealed::SealedReader
fn stream_blob(
    state: &Arc<State>,
    start: u64,
    len: u64,
    digest: Digest,
) -> mpsc::Receiver<io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(2);
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut reader = match state.bundle.sealed(&digest.blob_path()) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
                return;
            }
        };
        reader.seek(start);
        let mut left = len;
        let mut buf = vec![0u8; CHUNK];
        while left > 0 {
            let want = left.min(CHUNK as u64) as usize;
            let n = match reader.read(&mut buf[..want]) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) => {
                    if e.get_ref().is_some_and(|i| i.is::<ChangedEntry>()) {
                        (state.events)(ServeEvent::Changed {
                            digest: digest.clone(),
                        });
                    }
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            if tx
                .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                .is_err()
            {
                return;
            }
            left -= n as u64;
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
