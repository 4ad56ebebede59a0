//! The content-addressed blob store.
//!
//! Layout under the root (`BALE_STORE`, or `$XDG_CACHE_HOME/bale/store`):
//!
//! ```text
//! CACHEDIR.TAG
//! blobs/sha256/<hex>     verified content, read-only once renamed in
//! tmp/<hex>.partial      a download in progress (kept for resuming)
//! locks/<hex>.lock       one writer per blob, across processes
//! ```
//!
//! A blob appears under `blobs/` only by rename after its digest and size
//! were checked, so a reader never sees a partial or unverified file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by bale.\n# For information about cache directory tags see https://bford.info/cachedir/\n";

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("store {}: {source}", path.display())]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Content did not hash to its digest.
    #[error(
        "digest mismatch: expected {expected}, got {actual} ({size} bytes); nothing was stored"
    )]
    DigestMismatch {
        /// The digest asked for.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
        /// Bytes received.
        size: u64,
    },
    /// More bytes than the descriptor allows.
    #[error("source sent more than the {expected} bytes its descriptor allows; nothing was stored")]
    TooLong {
        /// Declared size.
        expected: u64,
    },
    /// Fewer bytes than declared, after every retry.
    #[error("source ended after {got} of {expected} bytes")]
    TooShort {
        /// Declared size.
        expected: u64,
        /// Received.
        got: u64,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// An open store.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// Where a store's default root is, given the environment.
pub fn default_root() -> PathBuf {
    if let Some(p) = std::env::var_os("BALE_STORE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    use etcetera::BaseStrategy as _;
    match etcetera::choose_base_strategy() {
        Ok(s) => s.cache_dir().join("bale").join("store"),
        Err(_) => std::env::temp_dir().join("bale-store"),
    }
}

/// What feeds a blob into the store: called with the offset to start from,
/// it returns a reader and the offset the reader actually starts at (0 when
/// the source cannot resume).
pub type Opener<'a> = dyn FnMut(u64) -> Result<(Box<dyn Read + Send>, u64), OpenError> + 'a;

/// A failure to open a source, and whether trying again may help.
#[derive(Debug)]
pub struct OpenError {
    /// The error, as the caller will report it.
    pub message: String,
    /// The typed source error, boxed.
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// What happened when a blob was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// It was already there.
    Present,
    /// It was written; this many bytes were read from the source.
    Written {
        /// Bytes read from the source in this call.
        transferred: u64,
    },
}

/// Outcome of ingesting, with the open errors kept typed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The store refused the content or could not write.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The source could not be opened.
    #[error("{message}")]
    Open {
        /// Description.
        message: String,
        /// Cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        for sub in ["blobs/sha256", "tmp", "locks"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        let tag = root.join("CACHEDIR.TAG");
        if !tag.exists() {
            write_atomic(&tag, CACHEDIR_TAG.as_bytes())?;
        }
        Ok(Store {
            root: root.to_owned(),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a verified blob lives.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(d.hex())
    }

    fn partial_path(&self, d: &Digest) -> PathBuf {
        self.root.join("tmp").join(format!("{}.partial", d.hex()))
    }

    /// Whether the blob is present with the expected size.
    pub fn has(&self, d: &Digest, size: u64) -> bool {
        fs::metadata(self.blob_path(d)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// Opens a present blob for reading.
    pub fn read(&self, d: &Digest) -> Result<File, StoreError> {
        let p = self.blob_path(d);
        File::open(&p).map_err(io_err(&p))
    }

    /// Reads a small present blob (a manifest or config) whole, checking its digest.
    pub fn read_verified(&self, d: &Digest, limit: u64) -> Result<Vec<u8>, StoreError> {
        let p = self.blob_path(d);
        let mut buf = Vec::new();
        self.read(d)?
            .take(limit)
            .read_to_end(&mut buf)
            .map_err(io_err(&p))?;
        let actual = Digest::of(&buf);
        if &actual != d {
            return Err(StoreError::DigestMismatch {
                expected: d.clone(),
                actual,
                size: buf.len() as u64,
            });
        }
        Ok(buf)
    }

    fn lock(&self, d: &Digest) -> Result<File, StoreError> {
        let p = self.root.join("locks").join(format!("{}.lock", d.hex()));
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(io_err(&p))?;
        f.lock().map_err(io_err(&p))?;
        Ok(f)
    }

    /// Stores bytes already in memory, after checking them.
    pub fn put_bytes(&self, d: &Digest, bytes: &[u8]) -> Result<Ingested, StoreError> {
        let actual = Digest::of(bytes);
        if &actual != d {
            return Err(StoreError::DigestMismatch {
                expected: d.clone(),
                actual,
                size: bytes.len() as u64,
            });
        }
        let _lock = self.lock(d)?;
        if self.has(d, bytes.len() as u64) {
            return Ok(Ingested::Present);
        }
        write_atomic(&self.blob_path(d), bytes)?;
        Ok(Ingested::Written {
            transferred: bytes.len() as u64,
        })
    }

    /// Streams a blob of `size` bytes from `open` into the store, hashing as
    /// it goes. An interrupted read is resumed from where it stopped (if the
    /// source can) up to `max_resumes` times. `progress` is told of every
    /// chunk written.
    pub fn ingest(
        &self,
        d: &Digest,
        size: u64,
        open: &mut Opener<'_>,
        max_resumes: u32,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Ingested, IngestError> {
        let _lock = self.lock(d)?;
        if self.has(d, size) {
            return Ok(Ingested::Present);
        }
        let partial = self.partial_path(d);
        let result = self.ingest_into(&partial, d, size, open, max_resumes, progress);
        // A partial worth resuming is kept; an empty one (the source
        // refused, or sent nothing) is not left behind.
        if result.is_err() && fs::metadata(&partial).is_ok_and(|m| m.len() == 0) {
            let _ = fs::remove_file(&partial);
        }
        result
    }

    fn ingest_into(
        &self,
        partial: &Path,
        d: &Digest,
        size: u64,
        open: &mut Opener<'_>,
        max_resumes: u32,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Ingested, IngestError> {
        let partial = partial.to_owned();
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&partial)
            .map_err(io_err(&partial))?;
        // Continue an earlier attempt: re-hash what it left.
        let (mut hasher, mut have) = rehash_partial(&mut file, &partial, size)?;
        let mut transferred = 0u64;
        let mut resumes = 0u32;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            if have < size {
                let (mut reader, start) = open(have).map_err(|e| IngestError::Open {
                    message: e.message,
                    source: e.source,
                })?;
                if start != have {
                    // The source restarted from the beginning: so do we.
                    file.set_len(0).map_err(io_err(&partial))?;
                    hasher = Sha256::new();
                    have = 0;
                    if start != 0 {
                        return Err(IngestError::Open {
                            message: format!("source resumed at {start}, not at 0 or {have}"),
                            source: "bad resume".into(),
                        });
                    }
                }
                file.seek(SeekFrom::Start(have)).map_err(io_err(&partial))?;
                loop {
                    // Read at most one byte past the declared size, to detect
                    // a source that sends too much without accepting it.
                    let room = (size - have + 1).min(buf.len() as u64) as usize;
                    match reader.read(&mut buf[..room]) {
                        Ok(0) => break,
                        Ok(n) => {
                            if have + n as u64 > size {
                                drop(file);
                                let _ = fs::remove_file(&partial);
                                return Err(StoreError::TooLong { expected: size }.into());
                            }
                            file.write_all(&buf[..n]).map_err(io_err(&partial))?;
                            hasher.update(&buf[..n]);
                            have += n as u64;
                            transferred += n as u64;
                            progress(n as u64);
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        // A cut connection: resume below, like a short body.
                        Err(_) => break,
                    }
                }
                if have < size {
                    if resumes >= max_resumes {
                        file.flush().map_err(io_err(&partial))?;
                        return Err(StoreError::TooShort {
                            expected: size,
                            got: have,
                        }
                        .into());
                    }
                    resumes += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100 << resumes.min(6)));
                    continue;
                }
            }
            break;
        }
        let actual = Digest::from_sha256(hasher);
        if &actual != d {
            drop(file);
            let _ = fs::remove_file(&partial);
            return Err(StoreError::DigestMismatch {
                expected: d.clone(),
                actual,
                size,
            }
            .into());
        }
        file.sync_all().map_err(io_err(&partial))?;
        drop(file);
        let dest = self.blob_path(d);
        fs::rename(&partial, &dest).map_err(io_err(&dest))?;
        sync_dir(dest.parent());
        Ok(Ingested::Written { transferred })
    }
}

/// What an earlier attempt left in `file`, hashed: the hasher and the
/// length kept, or an emptied file where it was longer than `size` or
/// could not be read whole.
fn rehash_partial(
    file: &mut File,
    partial: &Path,
    size: u64,
) -> Result<(Sha256, u64), IngestError> {
    let mut hasher = Sha256::new();
    let mut have = file.metadata().map_err(io_err(partial))?.len();
    if have > size {
        file.set_len(0).map_err(io_err(partial))?;
        return Ok((hasher, 0));
    }
    if have > 0 {
        let mut buf = vec![0u8; 1 << 20];
        let mut left = have;
        file.seek(SeekFrom::Start(0)).map_err(io_err(partial))?;
        while left > 0 {
            let n = file
                .read(&mut buf[..left.min(1 << 20) as usize])
                .map_err(io_err(partial))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
        if left > 0 {
            file.set_len(0).map_err(io_err(partial))?;
            hasher = Sha256::new();
            have = 0;
        }
    }
    Ok((hasher, have))
}

fn sync_dir(dir: Option<&Path>) {
    // Makes the rename durable; failure only weakens crash safety.
    if let Some(d) = dir
        && let Ok(f) = File::open(d)
    {
        let _ = f.sync_all();
    }
}

/// Writes `bytes` to `path` through a temp file in the same directory,
/// fsynced and renamed: `path` never holds partial content.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".bale-tmp-")
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    tmp.write_all(bytes).map_err(io_err(tmp.path()))?;
    tmp.as_file().sync_all().map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| StoreError::Io {
        path: path.to_owned(),
        source: e.error,
    })?;
    sync_dir(Some(dir));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn opener(data: Vec<u8>) -> impl FnMut(u64) -> Result<(Box<dyn Read + Send>, u64), OpenError> {
        move |_| {
            Ok((
                Box::new(Cursor::new(data.clone())) as Box<dyn Read + Send>,
                0,
            ))
        }
    }

    /// An empty store in a temporary directory (kept while the guard lives).
    fn fresh() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        (dir, store)
    }

    #[test]
    fn wrong_bytes_leave_nothing_under_the_digest() {
        let (_dir, store) = fresh();
        let d = Digest::of(b"good");
        let r = store.ingest(&d, 4, &mut opener(b"evil".to_vec()), 0, &mut |_| {});
        assert!(matches!(
            r,
            Err(IngestError::Store(StoreError::DigestMismatch { .. }))
        ));
        assert!(!store.blob_path(&d).exists());
        assert!(!store.partial_path(&d).exists());
    }

    #[test]
    fn long_source_is_cut_and_refused() {
        let (_dir, store) = fresh();
        let d = Digest::of(b"good");
        let r = store.ingest(&d, 4, &mut opener(b"goodmore".to_vec()), 0, &mut |_| {});
        assert!(matches!(
            r,
            Err(IngestError::Store(StoreError::TooLong { .. }))
        ));
        assert!(!store.blob_path(&d).exists());
    }

    #[test]
    fn good_blob_is_stored_once() {
        let (dir, store) = fresh();
        let d = Digest::of(b"good");
        let r = store.ingest(&d, 4, &mut opener(b"good".to_vec()), 0, &mut |_| {});
        assert_eq!(r.ok(), Some(Ingested::Written { transferred: 4 }));
        let r = store.ingest(&d, 4, &mut opener(b"good".to_vec()), 0, &mut |_| {});
        assert_eq!(r.ok(), Some(Ingested::Present));
        assert!(dir.path().join("CACHEDIR.TAG").is_file());
    }
}
