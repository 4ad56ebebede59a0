//! Writing the bundle's tar: every blob and file checked as it is copied,
//! the whole file hashed, nothing visible under the final name before it
//! is complete and on disk.
//!
//! A build's cost is two SHA-256 passes over every byte (each blob against
//! its digest, and the whole file for the report) and two copies (store to
//! memory, memory to the file). The main thread only reads and writes; each
//! 1 MiB chunk is shared, without a copy, with two hashing threads, one per
//! pass. Writeback of what is written is started every few MiB, from a
//! third thread, so the closing fsync waits for the last stretch only, not
//! for the whole file.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::sync::{Arc, mpsc};

use super::{BundleError, Entry, Source, io_err};
use crate::digest::{Digest, HashThread, HashingReader};
use crate::store::Store;

/// Bytes per read from the store, per chunk handed to the hashers.
const CHUNK: usize = 1 << 20;
/// Chunks kept for reuse: enough for both hashers' queues and the writer.
const POOL: usize = 2 * HashThread::DEPTH + 4;
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
    let whole = HashThread::start().map_err(io_err(tmp.path()))?;
    let entry_hash = HashThread::start().map_err(io_err(tmp.path()))?;
    let writeback = Writeback::start(tmp.as_file()).map_err(io_err(tmp.path()))?;
    let mut builder = tar::Builder::new(Output::new(tmp.as_file(), &whole, writeback));
    // Blobs whose digest the hasher has yet to give: checked at the end,
    // so that reading the next blob never waits for the last one's hash.
    let mut unchecked: Vec<(&Digest, u64, bool)> = Vec::new();
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
                .map_err(io_err(tmp.path()))?,
            Source::Blob(d) => {
                let file = store.read(d).map_err(|err| BundleError::Io {
                    path: store.blob_path(d),
                    source: io::Error::other(err.to_string()),
                })?;
                let grew = copy_blob(builder.get_mut(), &mut h, &e.path, file, &entry_hash)
                    .map_err(io_err(tmp.path()))?;
                unchecked.push((d, e.size, grew));
            }
            Source::File(p) => {
                // tar reads to the end: a longer file shows in the count.
                let mut r = HashingReader::new(File::open(p).map_err(io_err(p))?);
                builder
                    .append_data(&mut h, &e.path, &mut r)
                    .map_err(|_| BundleError::Changed { path: p.clone() })?;
                let (actual, n) = r.finish();
                if actual != e.sha256 || n != e.size {
                    return Err(BundleError::Changed { path: p.clone() });
                }
            }
        }
    }
    for (want, size, grew) in unchecked {
        let (actual, n) = entry_hash.result().map_err(io_err(tmp.path()))?;
        if &actual != want || n != size || grew {
            return Err(BundleError::Corrupt {
                expected: want.clone(),
                actual,
            });
        }
    }
    let mut out = builder.into_inner().map_err(io_err(tmp.path()))?;
    out.emit_pending().map_err(io_err(tmp.path()))?;
    let size = out.pos;
    drop(out);
    let (sha256, hashed) = whole.take().map_err(io_err(tmp.path()))?;
    if hashed != size {
        return Err(io_err(tmp.path())(io::Error::other(format!(
            "hashed {hashed} bytes of the {size} written"
        ))));
    }
    tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
    use std::os::unix::fs::PermissionsExt as _;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
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

/// Appends a blob entry: its header (as `tar::Builder::append_data` writes
/// it; blob paths always fit the header's name field), `file`'s content
/// in chunks shared with `entry_hash` and the whole-file hasher, and the
/// padding; ends the stream of `entry_hash`, whose result the caller
/// collects. Returns whether the blob holds more than its size.
fn copy_blob(
    out: &mut Output<'_>,
    h: &mut tar::Header,
    path: &str,
    mut file: File,
    entry_hash: &HashThread,
) -> io::Result<bool> {
    h.set_path(path)?;
    h.set_cksum();
    out.write_all(h.as_bytes())?;
    let size = h.size()?;
    let mut left = size;
    while left > 0 {
        let want = left.min(CHUNK as u64) as usize;
        let mut buf = out.buffer(want);
        let got = read_full(&mut file, &mut buf)?;
        buf.truncate(got);
        left -= got as u64;
        let chunk = Arc::new(buf);
        entry_hash.feed(Arc::clone(&chunk))?;
        out.write_chunk(chunk)?;
        // A blob shorter than its size: the digest and length tell.
        if got < want {
            break;
        }
    }
    let pad = (512 - size % 512) % 512;
    out.write_all(&[0u8; 512][..pad as usize])?;
    entry_hash.end()?;
    let mut extra = [0u8; 1];
    Ok(matches!(file.read(&mut extra), Ok(1)))
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

/// The temporary bundle file as the tar's writer: every byte written is
/// also fed to the whole-file hasher, and writeback is started behind the
/// writes. Small writes (headers, bale's own entries) are gathered into
/// chunks first.
struct Output<'a> {
    file: &'a File,
    whole: &'a HashThread,
    writeback: Writeback,
    pending: Vec<u8>,
    /// Chunks handed out, oldest first, reused once no hasher holds them:
    /// fresh 1 MiB buffers would cost a page fault per 4 KiB.
    pool: std::collections::VecDeque<Arc<Vec<u8>>>,
    pos: u64,
    flushed: u64,
}

impl<'a> Output<'a> {
    fn new(file: &'a File, whole: &'a HashThread, writeback: Writeback) -> Self {
        Output {
            file,
            whole,
            writeback,
            pending: Vec::new(),
            pool: std::collections::VecDeque::new(),
            pos: 0,
            flushed: 0,
        }
    }

    /// A buffer of `len` bytes: the oldest chunk if both hashers are done
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
        (&mut &*self.file).write_all(&chunk)?;
        self.pos += chunk.len() as u64;
        self.whole.feed(Arc::clone(&chunk))?;
        if chunk.capacity() >= CHUNK && self.pool.len() < POOL {
            self.pool.push_back(chunk);
        }
        if self.pos - self.flushed >= WRITEBACK_EVERY {
            self.writeback
                .request(self.flushed, self.pos - self.flushed);
            self.flushed = self.pos;
        }
        Ok(())
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
