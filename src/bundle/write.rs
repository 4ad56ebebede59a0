//! Writing the bundle's tar: every blob and file checked as it is copied,
//! the whole file hashed, nothing visible under the final name before it
//! is complete and on disk.
//!
//! A build's cost is two SHA-256 passes over every byte (each blob against
//! its digest, and the whole file for the report) and two copies (store to
//! memory, memory to the file). They are split over two threads of about
//! equal work, one per core: the reader reads each 1 MiB chunk, writes
//! one chunk in [`READER_WRITES`] itself, hands the chunk on without a copy
//! and hashes it against the blob's digest; the writer writes the other
//! chunks at their offsets and hashes every chunk, in order, for the whole
//! file. Three threads on two cores (reader, two hashers, before part 15's
//! thirteenth session) left a core idle 10–13% of the time: the scheduler
//! kept the reader and one hasher on one core, and the other hasher waited
//! for chunks. Writeback of what is written is started every few MiB, from
//! a third, mostly idle thread, so the closing fsync waits for the last
//! stretch only, not for the whole file.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::{Arc, mpsc};

use sha2::{Digest as _, Sha256};

use super::{BundleError, Entry, Source, io_err};
use crate::digest::{Digest, HashingReader};
use crate::store::Store;

/// Bytes per read from the store, per chunk handed to the writer.
const CHUNK: usize = 1 << 20;
/// Chunks queued before the reader waits for the writer.
const DEPTH: usize = 8;
/// Chunks kept for reuse: the writer's queue, the one it holds, the reader's.
const POOL: usize = DEPTH + 4;
/// The reader writes one chunk in this many itself: writing to the page
/// cache costs about twice reading from it, so the writer, which also
/// hashes every byte, would otherwise finish last by that difference.
const READER_WRITES: u64 = 4;
/// Bytes written between two requests to start writeback.
const WRITEBACK_EVERY: u64 = 16 << 20;

/// Writes `head` as a tar to a temporary file beside `output`, every
/// blob and file checked as it is copied, and renames it into place;
/// returns its size and SHA-256.
pub(super) fn write_tar(
    head: &[Entry],
    store: &Store,
    output: &Path,
) -> Result<(u64, Digest), BundleError> {
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".bale-build-")
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    let file = tmp.as_file();
    let writeback = Writeback::start(file).map_err(io_err(tmp.path()))?;
    let (size, sha256) = std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel::<Piece>(DEPTH);
        let writer = std::thread::Builder::new()
            .name("bale-write".into())
            .spawn_scoped(s, move || write_pieces(file, rx, &writeback))
            .map_err(io_err(tmp.path()))?;
        let mut out = Output::new(file, tx);
        let read = write_entries(head, store, &mut out, tmp.path());
        let size = out.pos;
        // Dropping the sender ends the writer's stream.
        drop(out);
        // The writer's own failure (a full disk) explains a reader's
        // "the writer stopped"; a check that failed on the reader's side
        // comes first otherwise.
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the writing thread panicked")));
        match (read, written) {
            (Err(BundleError::Io { source, .. }), Err(e))
                if source.kind() == io::ErrorKind::BrokenPipe =>
            {
                Err(io_err(tmp.path())(e))
            }
            (Err(e), _) => Err(e),
            (Ok(()), Err(e)) => Err(io_err(tmp.path())(e)),
            (Ok(()), Ok((_, hashed))) if hashed != size => Err(io_err(tmp.path())(
                io::Error::other(format!("hashed {hashed} bytes of the {size} written")),
            )),
            (Ok(()), Ok((sha256, _))) => Ok((size, sha256)),
        }
    })?;
    file.sync_all().map_err(io_err(tmp.path()))?;
    use std::os::unix::fs::PermissionsExt as _;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(io_err(tmp.path()))?;
    tmp.persist(output).map_err(|e| BundleError::Io {
        path: output.to_owned(),
        source: e.error,
    })?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok((size, sha256))
}

/// Appends every entry of `head` to `out` as tar, checking each blob and
/// file as it goes.
fn write_entries(
    head: &[Entry],
    store: &Store,
    out: &mut Output<'_>,
    tmp: &Path,
) -> Result<(), BundleError> {
    let mut builder = tar::Builder::new(out);
    for e in head {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(e.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(e.size);
        match &e.source {
            Source::Bytes(b) => builder
                .append_data(&mut h, &e.path, &b[..])
                .map_err(io_err(tmp))?,
            Source::Blob(d) => {
                let file = store.read(d).map_err(|err| BundleError::Io {
                    path: store.blob_path(d),
                    source: io::Error::other(err.to_string()),
                })?;
                let (actual, n, grew) =
                    copy_blob(builder.get_mut(), &mut h, &e.path, file).map_err(io_err(tmp))?;
                if &actual != d || n != e.size || grew {
                    return Err(BundleError::Corrupt {
                        expected: d.clone(),
                        actual,
                    });
                }
            }
            Source::File(p) => {
                // tar reads to the end: a longer file shows in the count.
                let mut r = FileSide {
                    inner: HashingReader::new(File::open(p).map_err(io_err(p))?),
                    failed: false,
                };
                builder
                    .append_data(&mut h, &e.path, &mut r)
                    .map_err(|err| {
                        if r.failed {
                            BundleError::Changed { path: p.clone() }
                        } else {
                            // Writing failed (a full disk, or the writer
                            // stopped): told as the output's error.
                            io_err(tmp)(err)
                        }
                    })?;
                let (actual, n) = r.inner.finish();
                if actual != e.sha256 || n != e.size {
                    return Err(BundleError::Changed { path: p.clone() });
                }
            }
        }
    }
    builder
        .into_inner()
        .and_then(|o| o.emit_pending())
        .map_err(io_err(tmp))
}

/// Appends a blob entry: its header (as `tar::Builder::append_data` writes
/// it; blob paths always fit the header's name field), `file`'s content
/// in chunks, hashed here as they are handed to the writer, and the
/// padding. Returns the content's digest and length, and whether the blob
/// holds more than its size.
fn copy_blob(
    out: &mut Output<'_>,
    h: &mut tar::Header,
    path: &str,
    mut file: File,
) -> io::Result<(Digest, u64, bool)> {
    h.set_path(path)?;
    h.set_cksum();
    out.write_all(h.as_bytes())?;
    let size = h.size()?;
    let mut hasher = Sha256::new();
    let mut left = size;
    while left > 0 {
        let want = left.min(CHUNK as u64) as usize;
        let mut buf = out.buffer(want);
        let got = read_full(&mut file, &mut buf)?;
        buf.truncate(got);
        left -= got as u64;
        let chunk = Arc::new(buf);
        out.write_chunk(Arc::clone(&chunk))?;
        // Hashed after it is handed on: the writer copies it meanwhile.
        hasher.update(&chunk[..]);
        // A blob shorter than its size: the digest and length tell.
        if got < want {
            break;
        }
    }
    let pad = (512 - size % 512) % 512;
    out.write_all(&[0u8; 512][..pad as usize])?;
    let mut extra = [0u8; 1];
    let grew = matches!(file.read(&mut extra), Ok(1));
    Ok((Digest::from_sha256(hasher), size - left, grew))
}

/// An overlay file being appended, noting whether reading it failed: an
/// error of the append is the file's (it changed or vanished) only then,
/// else the output's.
struct FileSide<R> {
    inner: R,
    failed: bool,
}

impl<R: Read> Read for FileSide<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| self.failed = true)
    }
}

/// Fills `buf` from `r` as far as it goes; fewer bytes only at its end.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The next chunk of the tar, for the writer: to be written at its place
/// unless the reader already has, and hashed in order either way.
struct Piece {
    chunk: Arc<Vec<u8>>,
    written: bool,
}

/// The writer's side: writes the pieces the reader left to it, hashes
/// every piece in order, and asks for writeback behind the writes.
/// Returns the whole file's digest and length.
fn write_pieces(
    file: &File,
    pieces: mpsc::Receiver<Piece>,
    writeback: &Writeback,
) -> io::Result<(Digest, u64)> {
    let mut hasher = Sha256::new();
    let mut hashed = 0u64;
    let mut flushed = 0u64;
    for p in pieces {
        // Pieces come in order: each one's place is the bytes before it.
        if !p.written {
            file.write_all_at(&p.chunk, hashed)?;
        }
        hasher.update(&p.chunk[..]);
        hashed += p.chunk.len() as u64;
        if hashed - flushed >= WRITEBACK_EVERY {
            writeback.request(flushed, hashed - flushed);
            flushed = hashed;
        }
    }
    Ok((Digest::from_sha256(hasher), hashed))
}

/// The tar's writer on the reader's side: every byte goes to the writer
/// thread in chunks, in order, a share of them written here first. Small
/// writes (headers, bale's own entries) are gathered into chunks first.
struct Output<'a> {
    file: &'a File,
    tx: mpsc::SyncSender<Piece>,
    pending: Vec<u8>,
    /// Chunks handed out, oldest first, reused once the writer is done
    /// with them: fresh 1 MiB buffers would cost a page fault per 4 KiB.
    pool: std::collections::VecDeque<Arc<Vec<u8>>>,
    pos: u64,
    chunks: u64,
}

impl<'a> Output<'a> {
    fn new(file: &'a File, tx: mpsc::SyncSender<Piece>) -> Self {
        Output {
            file,
            tx,
            pending: Vec::new(),
            pool: std::collections::VecDeque::new(),
            pos: 0,
            chunks: 0,
        }
    }

    /// A buffer of `len` bytes: the oldest chunk if the writer is done
    /// with it, else a new one.
    fn buffer(&mut self, len: usize) -> Vec<u8> {
        if let Some(mut oldest) = self.pool.pop_front() {
            if let Some(v) = Arc::get_mut(&mut oldest) {
                let mut v = std::mem::take(v);
                v.resize(len, 0);
                return v;
            }
            self.pool.push_front(oldest);
        }
        vec![0u8; len]
    }

    /// Writes what small writes gathered.
    fn emit_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.pending);
        self.put(Arc::new(chunk))
    }

    /// Writes `chunk` after everything written before it.
    fn write_chunk(&mut self, chunk: Arc<Vec<u8>>) -> io::Result<()> {
        self.emit_pending()?;
        self.put(chunk)
    }

    fn put(&mut self, chunk: Arc<Vec<u8>>) -> io::Result<()> {
        let written = self.chunks % READER_WRITES == READER_WRITES - 1;
        if written {
            self.file.write_all_at(&chunk, self.pos)?;
        }
        self.pos += chunk.len() as u64;
        self.chunks += 1;
        if chunk.capacity() >= CHUNK && self.pool.len() < POOL {
            self.pool.push_back(Arc::clone(&chunk));
        }
        self.tx
            .send(Piece { chunk, written })
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the writing thread stopped"))
    }
}

impl Write for Output<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= CHUNK {
            self.emit_pending()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Starts writeback of what was written on a thread of its own: the
/// request blocks while the device's queue is full, and it kept the
/// writer, the build's busiest thread, waiting 0.11–0.13 s of a scale-2
/// build. Dropping it waits for the requests made.
struct Writeback {
    tx: Option<mpsc::Sender<(u64, u64)>>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl Writeback {
    /// Starts the thread, with a descriptor of its own for `file`.
    fn start(file: &File) -> io::Result<Self> {
        let file = file.try_clone()?;
        // Unbounded, but one message per WRITEBACK_EVERY bytes written.
        let (tx, rx) = mpsc::channel::<(u64, u64)>();
        let worker = std::thread::Builder::new()
            .name("bale-writeback".into())
            .spawn(move || {
                for (offset, len) in rx {
                    start_writeback(&file, offset, len);
                }
            })?;
        Ok(Writeback {
            tx: Some(tx),
            worker: Some(worker),
        })
    }

    /// Asks for writeback of `len` bytes from `offset`; a hint only.
    fn request(&self, offset: u64, len: u64) {
        if let Some(tx) = &self.tx {
            let _ = tx.send((offset, len));
        }
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// Asks the kernel to start writing `len` bytes of `file` from `offset` to
/// disk, without waiting: the fsync at the end then finds little dirty.
/// Only a hint: where the call is refused, the fsync does all the work.
fn start_writeback(file: &File, offset: u64, len: u64) {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: a plain system call on an open descriptor; no memory passed.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}
