//! Gzip layers handed to dockerd already inflated.
//!
//! dockerd inflates each gzip layer of a `docker load` with `unpigz`,
//! which here spends 3.7–4.0 CPU s on 800 MB of tar where zlib-rs (which
//! bale links) takes 1.7 s; an install keeps both cores busy, so CPU saved
//! is wall time saved. The image is the same either way: Docker keys a
//! layer by the digest of its tar (the config's diff ID), which it checks.
//!
//! A tar entry's size comes before its bytes. It is taken from the gzip
//! trailer (ISIZE: the inflated length, modulo 2³², of the last member),
//! which is only a claim until the stream is inflated, so the stream is
//! held to it exactly: a layer that inflates to another length (several
//! members, 4 GiB or more) or does not inflate at all fails with
//! [`Uninflatable`] before its last byte leaves, and the load is made
//! again with that layer as it is in the bundle. Only verified bytes are
//! inflated: the compressed blob is read through a
//! [`SealedReader`], which checks each chunk against the seal
//! verification took of it before handing any byte of it on.
//!
//! [`SealedReader`]: crate::verify::sealed::SealedReader

use std::collections::BTreeSet;
use std::io::{self, Read};

use crate::digest::Digest;
use crate::verify::RawEntry;
use crate::verify::open::OpenBundle;
use crate::verify::sealed::ChangedEntry;

/// The smallest gzip stream: a 10-byte header, an empty deflate block and
/// the 8-byte trailer.
const MIN_GZIP: u64 = 18;

/// Which gzip layers go inflated: all of them where the runtime takes it,
/// except those that did not inflate to their trailer's length.
#[derive(Debug, Default)]
pub(super) struct Inflate {
    on: bool,
    refused: BTreeSet<Digest>,
}

impl Inflate {
    /// Inflating where `on`, nothing otherwise.
    pub(super) fn new(on: bool) -> Self {
        Inflate {
            on,
            refused: BTreeSet::new(),
        }
    }

    /// Whether layer `d` (gzip) is to go inflated.
    pub(super) fn wants(&self, d: &Digest) -> bool {
        self.on && !self.refused.contains(d)
    }

    /// Sends `d` as it is from now on; false if it already was (so a load
    /// is made again at most once per layer).
    pub(super) fn refuse(&mut self, d: Digest) -> bool {
        self.on && self.refused.insert(d)
    }
}

/// The length a gzip blob's trailer claims for its inflated bytes, or
/// `None` where it cannot tell it (too short, 4 GiB or more compressed).
pub(super) fn claimed_size(holder: &OpenBundle, e: &RawEntry) -> io::Result<Option<u64>> {
    if e.size < MIN_GZIP || e.size >= 1 << 32 {
        return Ok(None);
    }
    let mut isize = [0u8; 4];
    holder
        .source()
        .read_exact_at(&mut isize, e.offset + e.size - 4)?;
    Ok(Some(u64::from(u32::from_le_bytes(isize))))
}

/// A layer that did not inflate to the length its gzip trailer claims,
/// or not at all; the load is made again with it compressed.
#[derive(Debug)]
pub struct Uninflatable(pub Digest);

impl std::fmt::Display for Uninflatable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "layer {} does not inflate to the length its gzip trailer gives",
            self.0
        )
    }
}

impl std::error::Error for Uninflatable {}

/// Reads exactly `left` bytes from `inner` (the inflated layer), and
/// gives the last of them only once `inner` has ended.
pub(super) struct Exact<R> {
    inner: R,
    left: u64,
    layer: Digest,
}

impl<R: Read> Exact<R> {
    /// `inner`, held to `size` bytes; `layer` names it in the error.
    pub(super) fn new(inner: R, size: u64, layer: Digest) -> Self {
        Exact {
            inner,
            left: size,
            layer,
        }
    }

    fn refused(&self) -> io::Error {
        io::Error::other(Uninflatable(self.layer.clone()))
    }

    /// A blob that changed since it was verified stays that error, and a
    /// retried read stays one; anything else inflating fails is the
    /// layer's (sent as it is, the same fault reaches the runtime's own
    /// reader and is reported from there).
    fn blame(&self, e: io::Error) -> io::Error {
        let changed = e.get_ref().is_some_and(|i| i.is::<ChangedEntry>());
        if changed || e.kind() == io::ErrorKind::Interrupted {
            e
        } else {
            self.refused()
        }
    }
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.left) as usize;
        let n = self
            .inner
            .read(&mut buf[..want])
            .map_err(|e| self.blame(e))?;
        if n == 0 {
            // Shorter than claimed.
            return Err(self.refused());
        }
        self.left -= n as u64;
        if self.left == 0 {
            // The last bytes wait until the stream ends here: the gzip
            // trailer checked (CRC and length) and the blob's digest.
            let mut probe = [0u8; 1];
            loop {
                match self.inner.read(&mut probe) {
                    Ok(0) => break,
                    Ok(_) => return Err(self.refused()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(self.blame(e)),
                }
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let _ = e.write_all(data);
        e.finish().unwrap_or_default()
    }

    fn trailer(blob: &[u8]) -> u64 {
        let mut t = [0u8; 4];
        t.copy_from_slice(&blob[blob.len() - 4..]);
        u64::from(u32::from_le_bytes(t))
    }

    fn layer() -> Digest {
        Digest::of(b"layer")
    }

    fn inflate(blob: &[u8], size: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Exact::new(flate2::read::MultiGzDecoder::new(blob), size, layer()).read_to_end(&mut out)?;
        Ok(out)
    }

    fn is_refused(r: &io::Result<Vec<u8>>) -> bool {
        r.as_ref()
            .err()
            .and_then(|e| e.get_ref())
            .is_some_and(|i| i.is::<Uninflatable>())
    }

    #[test]
    fn a_single_member_layer_inflates_to_exactly_its_trailers_length() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 7) as u8).collect();
        let blob = gz(&data);
        assert_eq!(trailer(&blob), data.len() as u64);
        assert_eq!(inflate(&blob, trailer(&blob)).ok(), Some(data));
    }

    #[test]
    fn a_two_member_layer_whose_trailer_understates_it_is_refused() {
        // The trailer gives the last member's length only.
        let mut blob = gz(b"first member, longer than the second\n");
        blob.extend(gz(b"second\n"));
        let claimed = trailer(&blob);
        assert_eq!(claimed, 7);
        assert!(is_refused(&inflate(&blob, claimed)));
    }

    #[test]
    fn a_trailer_that_overstates_the_length_is_refused() {
        let blob = gz(b"short\n");
        assert!(is_refused(&inflate(&blob, 100)));
    }

    #[test]
    fn a_corrupt_deflate_stream_is_refused_not_sent() {
        let mut blob = gz(&vec![b'x'; 100_000]);
        let mid = blob.len() / 2;
        blob[mid] ^= 0xff;
        assert!(is_refused(&inflate(&blob, 100_000)));
    }

    /// A reader that fails as a blob that changed after verification does,
    /// at its end.
    struct ChangesAtTheEnd<'a>(&'a [u8]);

    impl Read for ChangesAtTheEnd<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::other(ChangedEntry("blobs/sha256/x".into())));
            }
            let n = buf.len().min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_blob_that_changed_after_verification_stays_an_integrity_error_and_its_last_bytes_stay_back()
     {
        let data = vec![b'y'; 200_000];
        let blob = gz(&data);
        let mut r = Exact::new(
            flate2::read::MultiGzDecoder::new(io::BufReader::new(ChangesAtTheEnd(&blob))),
            data.len() as u64,
            layer(),
        );
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).err();
        assert!(
            err.as_ref()
                .and_then(|e| e.get_ref())
                .is_some_and(|i| i.is::<ChangedEntry>()),
            "{err:?}"
        );
        // Whatever went out, not all of it did: the stream is cut short.
        assert!(out.len() < data.len(), "{} bytes went out", out.len());
    }

    #[test]
    fn a_layer_refused_once_is_sent_as_it_is_and_not_retried_again() {
        let mut i = Inflate::new(true);
        assert!(i.wants(&layer()));
        assert!(i.refuse(layer()));
        assert!(!i.wants(&layer()));
        assert!(!i.refuse(layer()));
        let off = Inflate::new(false);
        assert!(!off.wants(&layer()));
    }
}
