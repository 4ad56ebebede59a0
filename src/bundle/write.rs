//! Writing the bundle's tar: every blob and file checked as it is copied,
//! the whole file hashed, nothing visible under the final name before it
//! is complete and on disk.
//!
//! A build's cost is two SHA-256 passes over every byte (each blob against
//! its digest, and the whole file for the report) and two copies (store to
//! memory, memory to the file). They are split over two threads, one per
//! core: the writer reads each 1 MiB chunk, hands it to the hasher without
//! a copy and writes it at its place; the hasher hashes every chunk, in
//! order, for the whole file and, where it is a blob's, for the blob as
//! well, the two streams' rounds interleaved on its core
//! ([`crate::sha256x2`]), and tells the writer each blob's digest. Before
//! part 15's twentieth session the reader also hashed the blobs and wrote
//! one chunk in four, the other thread writing the rest and hashing the
//! file: two threads writing one file queue on its inode's lock, and
//! `perf` found 8 % of a build's samples spinning on it. Writeback of what
//! is written is started every few MiB, from a third, mostly idle thread,
//! so the closing fsync waits for the last stretch only, not for the
//! whole file.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::{Arc, mpsc};

use super::{BundleError, Entry, Source, io_err};
use crate::digest::{Digest, HashingReader};
use crate::sha256x2::{Sha256State, update_pair};
use crate::store::Store;

/// Bytes per read from the store, per chunk handed to the hasher.
const CHUNK: usize = 1 << 20;
/// Chunks queued before the writer waits for the hasher.
const DEPTH: usize = 8;
/// Chunks kept for reuse: the hasher's queue, the one it holds, the writer's.
const POOL: usize = DEPTH + 4;
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
        let (digests_tx, digests) = mpsc::channel::<Digest>();
        let hasher = std::thread::Builder::new()
            .name("bale-hash".into())
            .spawn_scoped(s, move || hash_pieces(rx, &digests_tx))
            .map_err(io_err(tmp.path()))?;
        let mut out = Output::new(file, tx, &writeback);
        let mut checks = Checks {
            expected: VecDeque::new(),
            digests,
        };
        let written = write_entries(head, store, &mut out, &mut checks, tmp.path());
        let size = out.pos;
        // Dropping the sender ends the hasher's stream.
        drop(out);
        let hashed = hasher.join();
        // The hasher stops early only by panicking, which the writer sees
        // as a closed queue: the panic is the cause.
        let (sha256, hashed) = match (written, hashed) {
            (_, Err(_)) => {
                return Err(io_err(tmp.path())(io::Error::other(
                    "the hashing thread panicked",
                )));
            }
            (Err(e), _) => return Err(e),
            (Ok(()), Ok(h)) => h,
        };
        // The last blobs' digests, told after the writer last looked.
        checks.rest(tmp.path())?;
        if hashed != size {
            return Err(io_err(tmp.path())(io::Error::other(format!(
                "hashed {hashed} bytes of the {size} written"
            ))));
        }
        Ok((size, sha256))
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
/// file as it goes (a blob once the hasher has its digest).
fn write_entries(
    head: &[Entry],
    store: &Store,
    out: &mut Output<'_>,
    checks: &mut Checks,
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
                let (n, grew) =
                    copy_blob(builder.get_mut(), &mut h, &e.path, file).map_err(io_err(tmp))?;
                checks.expected.push_back(d.clone());
                if n != e.size || grew {
                    // The blob changed under the build: its digest as read
                    // names it.
                    let actual = checks.last(tmp)?;
                    return Err(BundleError::Corrupt {
                        expected: d.clone(),
                        actual,
                    });
                }
                checks.ready()?;
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
                            // Writing failed (a full disk): told as the
                            // output's error.
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

/// The blobs written whose digests the hasher has still to tell, oldest
/// first, and where it tells them.
struct Checks {
    expected: VecDeque<Digest>,
    digests: mpsc::Receiver<Digest>,
}

impl Checks {
    /// Checks the digests told so far, without waiting.
    fn ready(&mut self) -> Result<(), BundleError> {
        while let Ok(actual) = self.digests.try_recv() {
            self.check(actual)?;
        }
        Ok(())
    }

    /// Waits for every digest; checks all but the last, which it returns.
    fn last(&mut self, tmp: &Path) -> Result<Digest, BundleError> {
        loop {
            let actual = self.next(tmp)?;
            if self.expected.len() == 1 {
                return Ok(actual);
            }
            self.check(actual)?;
        }
    }

    /// Waits for and checks every digest still to come.
    fn rest(&mut self, tmp: &Path) -> Result<(), BundleError> {
        while !self.expected.is_empty() {
            let actual = self.next(tmp)?;
            self.check(actual)?;
        }
        Ok(())
    }

    fn next(&mut self, tmp: &Path) -> Result<Digest, BundleError> {
        self.digests.recv().map_err(|_| {
            io_err(tmp)(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the hashing thread stopped",
            ))
        })
    }

    /// Checks the oldest blob's digest against `actual`.
    fn check(&mut self, actual: Digest) -> Result<(), BundleError> {
        match self.expected.pop_front() {
            Some(expected) if expected != actual => Err(BundleError::Corrupt { expected, actual }),
            _ => Ok(()),
        }
    }
}

/// Appends a blob entry: its header (as `tar::Builder::append_data` writes
/// it; blob paths always fit the header's name field), `file`'s content
/// in chunks, handed to the hasher as blob content, and the padding.
/// Returns the content's length, and whether the blob holds more than its
/// size.
fn copy_blob(
    out: &mut Output<'_>,
    h: &mut tar::Header,
    path: &str,
    mut file: File,
) -> io::Result<(u64, bool)> {
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
        out.write_chunk(Arc::new(buf), true)?;
        // A blob shorter than its size: the digest and length tell.
        if got < want {
            break;
        }
    }
    out.end_blob()?;
    let pad = (512 - size % 512) % 512;
    out.write_all(&[0u8; 512][..pad as usize])?;
    let mut extra = [0u8; 1];
    let grew = matches!(file.read(&mut extra), Ok(1));
    Ok((size - left, grew))
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

/// What the writer hands the hasher, in the file's order.
enum Piece {
    /// The next bytes of the file; `blob` when they are a blob's content.
    Chunk { chunk: Arc<Vec<u8>>, blob: bool },
    /// The blob whose content came since the last end is complete.
    BlobEnd,
}

/// The hasher: hashes every chunk in order for the whole file, a blob's
/// also for the blob (the two interleaved), and tells each blob's digest
/// as it ends. Returns the whole file's digest and length.
fn hash_pieces(pieces: mpsc::Receiver<Piece>, digests: &mpsc::Sender<Digest>) -> (Digest, u64) {
    let mut whole = Sha256State::new();
    let mut blob = Sha256State::new();
    let mut hashed = 0u64;
    for p in pieces {
        match p {
            Piece::Chunk { chunk, blob: true } => {
                update_pair(&mut whole, &chunk, &mut blob, &chunk);
                hashed += chunk.len() as u64;
            }
            Piece::Chunk { chunk, blob: false } => {
                whole.update(&chunk);
                hashed += chunk.len() as u64;
            }
            // The writer stopped listening only on its way out.
            Piece::BlobEnd => {
                let _ = digests.send(std::mem::take(&mut blob).finish());
            }
        }
    }
    (whole.finish(), hashed)
}

/// The tar's writer: every byte written at its place and handed to the
/// hasher in chunks, in order. Small writes (headers, bale's own entries)
/// are gathered into chunks first.
struct Output<'a> {
    file: &'a File,
    tx: mpsc::SyncSender<Piece>,
    writeback: &'a Writeback,
    pending: Vec<u8>,
    /// Chunks handed out, oldest first, reused once the hasher is done
    /// with them: fresh 1 MiB buffers would cost a page fault per 4 KiB.
    pool: VecDeque<Arc<Vec<u8>>>,
    pos: u64,
    /// Where writeback was last asked to start up to.
    flushed: u64,
}

impl<'a> Output<'a> {
    fn new(file: &'a File, tx: mpsc::SyncSender<Piece>, writeback: &'a Writeback) -> Self {
        Output {
            file,
            tx,
            writeback,
            pending: Vec::new(),
            pool: VecDeque::new(),
            pos: 0,
            flushed: 0,
        }
    }

    /// A buffer of `len` bytes: the oldest chunk if the hasher is done
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
        self.put(Arc::new(chunk), false)
    }

    /// Writes `chunk` after everything written before it; `blob` when it
    /// is a blob's content.
    fn write_chunk(&mut self, chunk: Arc<Vec<u8>>, blob: bool) -> io::Result<()> {
        self.emit_pending()?;
        self.put(chunk, blob)
    }

    /// Tells the hasher that the blob's content is complete.
    fn end_blob(&mut self) -> io::Result<()> {
        self.send(Piece::BlobEnd)
    }

    fn put(&mut self, chunk: Arc<Vec<u8>>, blob: bool) -> io::Result<()> {
        // Handed over first: the hasher reads it while it is written here.
        self.send(Piece::Chunk {
            chunk: Arc::clone(&chunk),
            blob,
        })?;
        self.file.write_all_at(&chunk, self.pos)?;
        self.pos += chunk.len() as u64;
        if self.pos - self.flushed >= WRITEBACK_EVERY {
            self.writeback
                .request(self.flushed, self.pos - self.flushed);
            self.flushed = self.pos;
        }
        if chunk.capacity() >= CHUNK && self.pool.len() < POOL {
            self.pool.push_back(chunk);
        }
        Ok(())
    }

    fn send(&self, piece: Piece) -> io::Result<()> {
        self.tx
            .send(piece)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the hashing thread stopped"))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A store holding `blobs`, and the entries that carry them after one
    /// entry of bale's own.
    fn setup(dir: &Path, blobs: &[Vec<u8>]) -> (Store, Vec<Entry>) {
        let store = Store::open(&dir.join("store")).unwrap_or_else(|e| panic!("{e}"));
        let mut head = vec![Entry::bytes("index.json", b"{}".to_vec())];
        for b in blobs {
            let d = Digest::of(b);
            store.put_bytes(&d, b).unwrap_or_else(|e| panic!("{e}"));
            head.push(Entry {
                path: d.blob_path(),
                mode: 0o644,
                size: b.len() as u64,
                sha256: d.clone(),
                source: Source::Blob(d),
            });
        }
        (store, head)
    }

    /// Blobs of several chunks and of none, sizes off every boundary.
    fn blobs() -> Vec<Vec<u8>> {
        [0usize, 1, 511, 4096 + 7, 3 * CHUNK + 13, CHUNK]
            .iter()
            .enumerate()
            .map(|(i, n)| (0..*n).map(|j| (j * 31 + i * 7) as u8).collect())
            .collect()
    }

    #[test]
    fn the_tar_holds_every_entry_and_its_digest_is_the_files() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let blobs = blobs();
        let (store, head) = setup(dir.path(), &blobs);
        let out = dir.path().join("b.bale");
        let (size, digest) = write_tar(&head, &store, &out).unwrap_or_else(|e| panic!("{e}"));
        let bytes = std::fs::read(&out).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(size, bytes.len() as u64);
        assert_eq!(digest, Digest::of(&bytes));
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut found = Vec::new();
        for e in archive.entries().unwrap_or_else(|e| panic!("{e}")) {
            let mut e = e.unwrap_or_else(|e| panic!("{e}"));
            let mut content = Vec::new();
            e.read_to_end(&mut content)
                .unwrap_or_else(|e| panic!("{e}"));
            found.push(content);
        }
        let mut want = vec![b"{}".to_vec()];
        want.extend(blobs);
        assert_eq!(found, want);
    }

    /// The attack: a store blob rewritten between the check of its size and
    /// the build, with other bytes of the same length.
    #[test]
    fn a_store_blob_swapped_for_other_bytes_fails_the_build_naming_both_digests() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let blobs = blobs();
        let (store, head) = setup(dir.path(), &blobs);
        let d = Digest::of(&blobs[4]);
        let mut other = blobs[4].clone();
        other[2 * CHUNK + 5] ^= 1;
        std::fs::write(store.blob_path(&d), &other).unwrap_or_else(|e| panic!("{e}"));
        let out = dir.path().join("b.bale");
        match write_tar(&head, &store, &out) {
            Err(BundleError::Corrupt { expected, actual }) => {
                assert_eq!(expected, d);
                assert_eq!(actual, Digest::of(&other));
            }
            other => panic!("{:?}", other.map(|(n, _)| n)),
        }
        assert!(!out.exists());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".bale-build-"))
            .collect();
        assert!(left.is_empty());
    }

    #[test]
    fn a_store_blob_cut_short_or_grown_fails_the_build() {
        let blobs = blobs();
        let d = Digest::of(&blobs[4]);
        let short = blobs[4][..CHUNK + 3].to_vec();
        let mut long = blobs[4].clone();
        long.push(0);
        for (changed, actual) in [
            (short.clone(), Digest::of(&short)),
            (long, Digest::of(&blobs[4])),
        ] {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let (store, head) = setup(dir.path(), &blobs);
            std::fs::write(store.blob_path(&d), &changed).unwrap_or_else(|e| panic!("{e}"));
            let out = dir.path().join("b.bale");
            match write_tar(&head, &store, &out) {
                Err(BundleError::Corrupt {
                    expected,
                    actual: a,
                }) => {
                    assert_eq!(expected, d);
                    assert_eq!(a, actual);
                }
                other => panic!("{:?}", other.map(|(n, _)| n)),
            }
            assert!(!out.exists());
        }
    }
}
