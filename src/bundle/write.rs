//! Writing the bundle's tar: every blob and file checked as it is copied,
//! the whole file hashed, nothing visible under the final name before it
//! is complete and on disk.
//!
//! A build's cost is two SHA-256 passes over every byte (each blob against
//! its digest, and the whole file for the report) and the copies between
//! the store, memory and the disk. They are split over two threads of
//! about equal work, one per core: the reader reads each 1 MiB chunk and
//! hashes it against the blob's digest; the writer hashes every chunk, in
//! order, for the whole file and copies it into the aligned blocks that
//! [`super::blocks`] writes to disk. Three threads on two cores (reader,
//! two hashers, before part 15's thirteenth session) left a core idle
//! 10–13% of the time: the scheduler kept the reader and one hasher on one
//! core, and the other hasher waited for chunks.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, mpsc};

use sha2::{Digest as _, Sha256};

use super::blocks::write_blocks;
use super::{BundleError, Entry, Source, io_err};
use crate::digest::{Digest, HashingReader};
use crate::store::Store;

/// Bytes per read from the store, per chunk handed to the writer.
const CHUNK: usize = 1 << 20;
/// Chunks queued before the reader waits for the writer.
const DEPTH: usize = 8;
/// Chunks kept for reuse: the writer's queue, the one it holds, the reader's.
const POOL: usize = DEPTH + 4;
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
    let (size, sha256) = std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel::<Piece>(DEPTH);
        let writer = std::thread::Builder::new()
            .name("bale-hash".into())
            .spawn_scoped(s, move || write_pieces(file, rx))
            .map_err(io_err(tmp.path()))?;
        let mut out = Output::new(tx);
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
    out: &mut Output,
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
    out: &mut Output,
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

/// The next chunk of the tar, for the writer.
type Piece = Arc<Vec<u8>>;

/// The writer's side: hashes every piece in order and has it written.
/// Returns the whole file's digest and length.
fn write_pieces(file: &File, pieces: mpsc::Receiver<Piece>) -> io::Result<(Digest, u64)> {
    write_blocks(file, |blocks| {
        let mut hasher = Sha256::new();
        let mut hashed = 0u64;
        for p in pieces {
            hasher.update(&p[..]);
            blocks.write(&p)?;
            hashed += p.len() as u64;
        }
        Ok((Digest::from_sha256(hasher), hashed))
    })
}

/// The tar's writer on the reader's side: every byte goes to the writer
/// thread in chunks, in order. Small writes (headers, bale's own entries)
/// are gathered into chunks first.
struct Output {
    tx: mpsc::SyncSender<Piece>,
    pending: Vec<u8>,
    /// Chunks handed out, oldest first, reused once the writer is done
    /// with them: fresh 1 MiB buffers would cost a page fault per 4 KiB.
    pool: std::collections::VecDeque<Arc<Vec<u8>>>,
    pos: u64,
}

impl Output {
    fn new(tx: mpsc::SyncSender<Piece>) -> Self {
        Output {
            tx,
            pending: Vec::new(),
            pool: std::collections::VecDeque::new(),
            pos: 0,
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
        self.pos += chunk.len() as u64;
        if chunk.capacity() >= CHUNK && self.pool.len() < POOL {
            self.pool.push_back(Arc::clone(&chunk));
        }
        self.tx
            .send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the writing thread stopped"))
    }
}

impl Write for Output {
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
