//! The connections `bale serve` holds: which are busy sending, which idle
//! (and for how long), so that a new client can take the slot of the one
//! idle longest when every slot is taken.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

use super::{IDLE_EVICT, OutBody};

/// One connection, as the accept loop sees it when the slots are full.
pub(super) struct Conn {
    pub(super) id: u64,
    /// Responses being produced or streamed on it now.
    busy: std::sync::atomic::AtomicUsize,
    /// When it last became idle (opened, or a response finished).
    idle_since: std::sync::Mutex<Instant>,
    /// Closes it.
    pub(super) evicted: tokio::sync::Notify,
}

/// The connections open now.
#[derive(Clone, Default)]
pub(super) struct Conns {
    next: Arc<AtomicU64>,
    open: Arc<std::sync::Mutex<std::collections::HashMap<u64, Arc<Conn>>>>,
}

impl Conns {
    pub(super) fn add(&self) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            busy: Default::default(),
            idle_since: std::sync::Mutex::new(Instant::now()),
            evicted: tokio::sync::Notify::new(),
        });
        if let Ok(mut open) = self.open.lock() {
            open.insert(conn.id, conn.clone());
        }
        conn
    }

    pub(super) fn remove(&self, id: u64) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&id);
        }
    }

    /// Closes the connection idle the longest, if one has been idle for
    /// [`IDLE_EVICT`] at least.
    pub(super) fn evict_idlest(&self) {
        let Ok(open) = self.open.lock() else { return };
        let idle = |c: &&Arc<Conn>| {
            c.busy.load(Ordering::Relaxed) == 0
                && c.idle_since.lock().is_ok_and(|t| t.elapsed() >= IDLE_EVICT)
        };
        let idlest = open.values().filter(idle).min_by_key(|c| {
            c.idle_since
                .lock()
                .map(|t| *t)
                .unwrap_or_else(|_| Instant::now())
        });
        if let Some(c) = idlest {
            c.evicted.notify_one();
        }
    }
}

/// Marks a connection busy for as long as a response body lives.
pub(super) struct Busy(Arc<Conn>);

impl Busy {
    pub(super) fn new(conn: Arc<Conn>) -> Busy {
        conn.busy.fetch_add(1, Ordering::Relaxed);
        Busy(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Ok(mut t) = self.0.idle_since.lock() {
            *t = Instant::now();
        }
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its connection marked busy until it is sent
/// or dropped.
pub struct Tracked {
    pub(super) body: OutBody,
    pub(super) _busy: Busy,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
