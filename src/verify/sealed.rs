//! Reading an entry of a verified bundle again, each chunk checked against
//! the seal verification took of it before any byte of it is handed on.
//!
//! Verification hashes every entry with SHA-256 against the signed digest
//! and, from the same bytes while they are in cache, takes a keyed BLAKE3
//! seal of each [`SEAL_CHUNK`] (see [`SealKey`]). A reader here serves an
//! entry's bytes only from a whole chunk that matched its seal: the bytes
//! that leave (to a registry, to a runtime) are the verified ones even if
//! the file changed since, at about a quarter of the cost of hashing them
//! with SHA-256 again. A chunk that no longer matches, or a file that
//! shrank, fails the read with [`ChangedEntry`].

use std::io;
use std::sync::Arc;

use crate::bundle::source::Source;
use crate::digest::{SEAL_CHUNK, Seal, SealKey};

/// The seals of one opened bundle: the key, and each verified entry's
/// seals by name.
#[derive(Debug)]
pub(crate) struct SealBook {
    pub(crate) key: Arc<SealKey>,
    pub(crate) seals: super::Seals,
}

/// One entry's bytes, served a checked chunk at a time.
pub struct SealedReader {
    file: Source,
    /// Where the entry starts in the file, and its size.
    offset: u64,
    size: u64,
    key: Arc<SealKey>,
    seals: Arc<[Seal]>,
    /// The entry's name, for the error.
    name: String,
    /// The next byte of the entry to serve.
    pos: u64,
    /// The chunk in `buf`, which matched its seal.
    chunk: Option<u64>,
    buf: Vec<u8>,
}

impl SealedReader {
    /// The `size` bytes at `offset` of `file`, entry `name`, whose chunks
    /// were sealed with `key` as `seals`.
    pub(crate) fn new(
        file: Source,
        name: &str,
        offset: u64,
        size: u64,
        key: Arc<SealKey>,
        seals: Arc<[Seal]>,
    ) -> SealedReader {
        SealedReader {
            file,
            offset,
            size,
            key,
            seals,
            name: name.to_owned(),
            pos: 0,
            chunk: None,
            buf: Vec::new(),
        }
    }

    /// Serves from the entry's byte `at` on (at most its size).
    pub fn seek(&mut self, at: u64) {
        self.pos = at.min(self.size);
    }

    fn changed(&self) -> io::Error {
        io::Error::other(ChangedEntry(self.name.clone()))
    }

    /// Reads chunk `idx` whole into `buf` and checks it against its seal.
    fn load(&mut self, idx: u64) -> io::Result<()> {
        self.chunk = None;
        let start = idx * SEAL_CHUNK;
        let len = (self.size - start).min(SEAL_CHUNK) as usize;
        self.buf.resize(len, 0);
        match self.file.read_exact_at(&mut self.buf, self.offset + start) {
            Ok(()) => {}
            // Verified to hold the entry, the file no longer does: it shrank.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(self.changed()),
            Err(e) => return Err(e),
        }
        let want = usize::try_from(idx).ok().and_then(|i| self.seals.get(i));
        if want != Some(&self.key.seal(&self.buf)) {
            return Err(self.changed());
        }
        self.chunk = Some(idx);
        Ok(())
    }
}

impl io::Read for SealedReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || out.is_empty() {
            return Ok(0);
        }
        let idx = self.pos / SEAL_CHUNK;
        if self.chunk != Some(idx) {
            self.load(idx)?;
        }
        let at = (self.pos - idx * SEAL_CHUNK) as usize;
        let n = out.len().min(self.buf.len() - at);
        out[..n].copy_from_slice(&self.buf[at..at + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

/// The error a [`SealedReader`] gives when its entry is no longer what was
/// verified; install finds it inside the runtime's error.
#[derive(Debug)]
pub struct ChangedEntry(pub String);

impl std::fmt::Display for ChangedEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} changed after it was verified", self.0)
    }
}

impl std::error::Error for ChangedEntry {}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// An entry of 2.5 chunks at offset 100 of a file, and its seals.
    fn entry(dir: &std::path::Path, key: &SealKey) -> (std::path::PathBuf, Vec<u8>, Arc<[Seal]>) {
        let size = (SEAL_CHUNK * 5 / 2) as usize;
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let mut file = vec![0u8; 100];
        file.extend_from_slice(&data);
        file.extend_from_slice(&[0u8; 50]);
        let path = dir.join("b");
        std::fs::write(&path, &file).unwrap_or_else(|e| panic!("{e}"));
        let seals: Vec<Seal> = data
            .chunks(SEAL_CHUNK as usize)
            .map(|c| key.seal(c))
            .collect();
        (path, data, seals.into())
    }

    fn reader(
        path: &std::path::Path,
        key: Arc<SealKey>,
        seals: Arc<[Seal]>,
        size: usize,
    ) -> SealedReader {
        let file = Source::file(path).unwrap_or_else(|e| panic!("{e}"));
        SealedReader::new(file, "blobs/sha256/ab", 100, size as u64, key, seals)
    }

    /// Reads until an error, giving what was read and the error.
    fn read_all(r: &mut SealedReader) -> (Vec<u8>, Option<io::Error>) {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 100_000];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return (got, None),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return (got, Some(e)),
            }
        }
    }

    fn is_changed(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|i| i.is::<ChangedEntry>())
    }

    #[test]
    fn serves_the_verified_bytes_from_any_position() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let key = Arc::new(SealKey::new());
        let (path, data, seals) = entry(dir.path(), &key);
        let mut r = reader(&path, key, seals, data.len());
        let (got, err) = read_all(&mut r);
        assert!(err.is_none(), "{err:?}");
        assert!(got == data);
        for at in [0, 1, SEAL_CHUNK - 1, SEAL_CHUNK, SEAL_CHUNK * 2 + 5] {
            r.seek(at);
            let (got, err) = read_all(&mut r);
            assert!(err.is_none(), "{err:?}");
            assert!(got == data[at as usize..], "from {at}");
        }
    }

    /// The attack: a byte of the file changes after verification. Not one
    /// byte of the chunk that holds it is served; the chunks before it are.
    #[test]
    fn a_byte_changed_after_verification_is_never_served() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let key = Arc::new(SealKey::new());
        let (path, data, seals) = entry(dir.path(), &key);
        let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        bytes[100 + SEAL_CHUNK as usize + 12345] ^= 1;
        std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        let mut r = reader(&path, key, seals, data.len());
        let (got, err) = read_all(&mut r);
        assert_eq!(got.len() as u64, SEAL_CHUNK);
        assert!(got == data[..SEAL_CHUNK as usize]);
        assert!(err.as_ref().is_some_and(is_changed), "{err:?}");
        assert!(err.is_some_and(|e| e.to_string().contains("blobs/sha256/ab changed after")));
    }

    /// The attack: the file is cut short after verification.
    #[test]
    fn a_file_cut_short_after_verification_fails_as_changed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let key = Arc::new(SealKey::new());
        let (path, data, seals) = entry(dir.path(), &key);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(100 + SEAL_CHUNK * 2 + 10))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut r = reader(&path, key, seals, data.len());
        let (got, err) = read_all(&mut r);
        assert_eq!(got.len() as u64, SEAL_CHUNK * 2);
        assert!(err.as_ref().is_some_and(is_changed), "{err:?}");
    }

    /// The attack: seals made with another key (anyone's but this
    /// process's) match nothing, so they cannot be forged for other bytes.
    #[test]
    fn seals_of_another_key_match_nothing() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (path, data, seals) = entry(dir.path(), &SealKey::new());
        let mut r = reader(&path, Arc::new(SealKey::new()), seals, data.len());
        let (got, err) = read_all(&mut r);
        assert!(got.is_empty());
        assert!(err.as_ref().is_some_and(is_changed), "{err:?}");
    }
}
