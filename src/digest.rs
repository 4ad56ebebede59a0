//! SHA-256 content digests (`sha256:<64 hex>`) and a hashing writer.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A validated `sha256:` digest. Other algorithms are refused: every store
/// path, lock entry and bundle entry is keyed by SHA-256.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    hex: String,
}

/// Why a string is not a digest.
#[derive(Debug, thiserror::Error)]
#[error("`{input}` is not a sha256 digest (expected sha256: followed by 64 lowercase hex digits)")]
pub struct DigestParseError {
    /// The rejected input, cut to a printable length.
    pub input: String,
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_hash(Sha256::digest(bytes).as_slice())
    }

    /// The digest a finished hasher holds.
    pub fn from_sha256(h: Sha256) -> Self {
        Self::from_hash(h.finalize().as_slice())
    }

    /// The digest whose 32 bytes are `hash`.
    pub fn from_sha256_bytes(hash: &[u8; 32]) -> Self {
        Self::from_hash(hash)
    }

    fn from_hash(hash: &[u8]) -> Self {
        let mut hex = String::with_capacity(64);
        for b in hash {
            hex.push_str(&format!("{b:02x}"));
        }
        Digest { hex }
    }

    /// The 64 hex digits, the name of the blob in a store or an OCI layout.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The blob's path in an OCI image layout, and so its entry in a
    /// bundle: `blobs/sha256/<hex>`.
    pub fn blob_path(&self) -> String {
        format!("blobs/sha256/{}", self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || DigestParseError {
            input: s.chars().take(100).collect(),
        };
        let hex = s.strip_prefix("sha256:").ok_or_else(bad)?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad());
        }
        Ok(Digest {
            hex: hex.to_owned(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A reader that hashes and counts everything read through it: a stream
/// is judged by its digest once read to the end.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            read: 0,
        }
    }

    /// Reads what is left, so the digest covers the whole stream.
    pub fn drain(&mut self) -> io::Result<u64> {
        io::copy(self, &mut io::sink())
    }

    /// The digest of everything read, and how many bytes.
    pub fn finish(self) -> (Digest, u64) {
        (Digest::from_sha256(self.hasher), self.read)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// A writer that hashes and counts everything passing through it to `inner`.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`, continuing from nothing.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The digest of everything written, and the inner writer.
    pub fn finish(self) -> (Digest, W) {
        (
            Digest::from_hash(self.hasher.finalize().as_slice()),
            self.inner,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The digest and size of a file's content, streamed.
pub fn hash_file(path: &std::path::Path) -> io::Result<(Digest, u64)> {
    hash_reader(std::fs::File::open(path)?)
}

/// SHA-256 and length of everything `r` yields.
fn hash_reader(mut r: impl io::Read) -> io::Result<(Digest, u64)> {
    let mut w = HashingWriter::new(io::sink());
    io::copy(&mut r, &mut w)?;
    let n = w.written();
    Ok((w.finish().0, n))
}

/// Opens `path` for reading only if it is a regular file, without
/// following a symlink there and without blocking on a FIFO or a device:
/// what bale compares on a host it does not trust.
pub fn open_regular(path: &std::path::Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(f)
}

/// At most `max` bytes of the regular file at `path` (see [`open_regular`]).
pub fn read_regular(path: &std::path::Path, max: u64) -> io::Result<Vec<u8>> {
    use io::Read as _;
    let mut out = Vec::new();
    open_regular(path)?.take(max).read_to_end(&mut out)?;
    Ok(out)
}

/// [`hash_file`] of a regular file only (see [`open_regular`]).
pub fn hash_regular(path: &std::path::Path) -> io::Result<(Digest, u64)> {
    hash_reader(open_regular(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_is_the_well_known_value() {
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_rejects_other_algorithms_and_bad_hex() {
        assert!("sha512:abcd".parse::<Digest>().is_err());
        assert!("sha256:ABCD".parse::<Digest>().is_err());
        assert!(
            format!("sha256:{}", "g".repeat(64))
                .parse::<Digest>()
                .is_err()
        );
        let ok = format!("sha256:{}", "a".repeat(64));
        assert_eq!(ok.parse::<Digest>().map(|d| d.to_string()).ok(), Some(ok));
    }

    #[test]
    fn hashing_writer_matches_one_shot_digest() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hello ")
            .and_then(|_| w.write_all(b"world"))
            .ok();
        assert_eq!(w.written(), 11);
        let (d, inner) = w.finish();
        assert_eq!(d, Digest::of(b"hello world"));
        assert_eq!(inner, b"hello world");
    }
}

/// Bytes per sealed chunk of an entry: see [`SealKey`].
pub const SEAL_CHUNK: u64 = 256 * 1024;

/// The key of chunk seals: a seal is the keyed BLAKE3 of one
/// [`SEAL_CHUNK`] of an entry, taken while the entry is verified against
/// its SHA-256, so that bytes read again later (to send them) are known to
/// be the verified ones by a check about four times cheaper than SHA-256
/// here. The key is random, made once per opened bundle, and never leaves
/// the process: without it no one can make other bytes match a seal.
pub struct SealKey([u8; 32]);

impl SealKey {
    /// A new random key.
    pub fn new() -> SealKey {
        SealKey(rand::random())
    }

    /// The seal of `bytes`.
    pub fn seal(&self, bytes: &[u8]) -> Seal {
        Seal(blake3::keyed_hash(&self.0, bytes))
    }
}

impl Default for SealKey {
    fn default() -> Self {
        SealKey::new()
    }
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(..)")
    }
}

/// The seal of one chunk; compared in constant time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seal(blake3::Hash);
