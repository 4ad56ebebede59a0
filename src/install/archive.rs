//! The image archive streamed to the runtime: Docker's `docker load` layout
//! or an OCI layout, written from the bundle's entries without extracting.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use super::InstallError;
use super::inflate::{Exact, Inflate, claimed_size};
use crate::bundle::ImageRecord;
use crate::digest::Digest;
use crate::inventory::Compression;
use crate::runtime::{ArchiveFormat, Present};
use crate::verify::OpenError;
use crate::verify::open::OpenBundle;
use crate::verify::sealed::ChangedEntry;

/// The blobs of `images` an archive for a runtime that holds `present`
/// can leave out. Docker: each layer whose chain ID the daemon has, unless
/// another image of the archive needs it on another chain. containerd: the
/// layers and configs its content store has. Manifests, and Docker's
/// configs, always go in: they are small, and the loaders read them.
pub(super) fn skippable(
    bundle: &OpenBundle,
    images: &[&ImageRecord],
    format: ArchiveFormat,
    present: &Present,
) -> Result<BTreeSet<Digest>, InstallError> {
    let mut skip = BTreeSet::new();
    match format {
        ArchiveFormat::Docker if !present.chains.is_empty() => {
            let mut needed = BTreeSet::new();
            for r in images {
                let diffs = diff_ids(bundle, r)?;
                if diffs.len() != r.layers.len() {
                    return Err(InstallError::Bundle(format!(
                        "config {} lists {} layers, its manifest {}",
                        r.config,
                        diffs.len(),
                        r.layers.len()
                    )));
                }
                for (layer, chain) in r.layers.iter().zip(crate::runtime::chain_ids(&diffs)) {
                    if present.chains.contains(&chain) {
                        skip.insert(layer.clone());
                    } else {
                        needed.insert(layer.clone());
                    }
                }
            }
            skip.retain(|d| !needed.contains(d));
        }
        ArchiveFormat::Oci => {
            for r in images {
                for d in r.layers.iter().chain(std::iter::once(&r.config)) {
                    if present.blobs.contains(d) {
                        skip.insert(d.clone());
                    }
                }
            }
        }
        ArchiveFormat::Docker => {}
    }
    Ok(skip)
}

/// The layer chain IDs of an image, bottom first, as Docker keys what it
/// has unpacked.
pub(super) fn chain_ids(bundle: &OpenBundle, r: &ImageRecord) -> Result<Vec<Digest>, InstallError> {
    Ok(crate::runtime::chain_ids(&diff_ids(bundle, r)?))
}

/// The bytes the runtime unpacks for each layer of `images`: a gzip
/// layer's inflated length as its trailer claims it (the runtime's work
/// goes with the tar it unpacks, and in the bench's corpus a gzip layer's
/// tar is 2 to 17 times its blob), any other layer's blob size. Only an
/// estimate, for the order of the loads: nothing is trusted to it.
pub(super) fn unpacked_sizes(
    bundle: &OpenBundle,
    images: &[&ImageRecord],
) -> Result<BTreeMap<Digest, u64>, InstallError> {
    let mut sizes = BTreeMap::new();
    for r in images {
        for (d, compression) in layer_compression(bundle, r)? {
            if sizes.contains_key(&d) {
                continue;
            }
            let (holder, e) = bundle.locate(&d.blob_path())?;
            // A trailer that cannot be read is the load's to report.
            let claimed = match compression {
                Some(Compression::Gzip) => claimed_size(holder, e).ok().flatten(),
                _ => None,
            };
            sizes.insert(d, claimed.unwrap_or(e.size));
        }
    }
    Ok(sizes)
}

/// The diff IDs an image's config lists (`rootfs.diff_ids`).
fn diff_ids(bundle: &OpenBundle, r: &ImageRecord) -> Result<Vec<Digest>, InstallError> {
    #[derive(serde::Deserialize)]
    struct Config {
        rootfs: RootFs,
    }
    #[derive(serde::Deserialize)]
    struct RootFs {
        diff_ids: Vec<Digest>,
    }
    let bytes = bundle.read_small(&r.config.blob_path())?;
    serde_json::from_slice::<Config>(&bytes)
        .map(|c| c.rootfs.diff_ids)
        .map_err(|e| InstallError::Bundle(format!("config {}: {e}", r.config)))
}

/// Writes a tar archive of `images` from `bundle` in `format` into `w`,
/// without the blobs in `skip` (see [`skippable`]), the gzip layers that
/// `inflate` wants inflated.
pub(super) fn write_archive(
    bundle: &OpenBundle,
    images: &[&ImageRecord],
    format: ArchiveFormat,
    skip: &BTreeSet<Digest>,
    inflate: &Inflate,
    w: &mut dyn Write,
) -> io::Result<()> {
    let mut tar = tar::Builder::new(w);
    let mut add = |path: &str, bytes: &[u8]| -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(bytes.len() as u64);
        h.set_mtime(0);
        tar.append_data(&mut h, path, bytes)
    };
    let mut blobs: BTreeSet<&Digest> = BTreeSet::new();
    let unpacked = match format {
        ArchiveFormat::Docker => Unpacked::of(bundle, images, skip, inflate)?,
        ArchiveFormat::Oci => Unpacked::default(),
    };
    match format {
        ArchiveFormat::Docker => {
            let layer_path = |l: &Digest| {
                if unpacked.zstd.contains(l) || unpacked.gzip.contains_key(l) {
                    format!("layers/{}.tar", l.hex())
                } else {
                    l.blob_path()
                }
            };
            let index: Vec<serde_json::Value> = images
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "Config": r.config.blob_path(),
                        "RepoTags": [r.name],
                        "Layers": r.layers.iter().map(layer_path).collect::<Vec<_>>(),
                    })
                })
                .collect();
            add(
                "manifest.json",
                &serde_json::to_vec(&index).map_err(io::Error::other)?,
            )?;
            for r in images {
                blobs.insert(&r.config);
                blobs.extend(r.layers.iter());
            }
        }
        ArchiveFormat::Oci => {
            add("oci-layout", b"{\"imageLayoutVersion\":\"1.0.0\"}")?;
            let manifests: Vec<serde_json::Value> = images
                .iter()
                .map(|r| {
                    let size = bundle
                        .expected(&r.manifest.blob_path())
                        .map(|(_, s)| s)
                        .unwrap_or(0);
                    serde_json::json!({
                        "mediaType": r.manifest_media_type,
                        "digest": r.manifest.to_string(),
                        "size": size,
                        "annotations": {
                            "io.containerd.image.name": r.name,
                            "org.opencontainers.image.ref.name": r.name,
                        },
                    })
                })
                .collect();
            let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
            add(
                "index.json",
                &serde_json::to_vec(&index).map_err(io::Error::other)?,
            )?;
            for r in images {
                blobs.insert(&r.manifest);
                blobs.insert(&r.config);
                blobs.extend(r.layers.iter());
            }
        }
    }
    for d in blobs.into_iter().filter(|d| !skip.contains(*d)) {
        append_blob(&mut tar, bundle, d, &unpacked)?;
    }
    tar.finish()
}

/// The layers of a Docker archive that go in unpacked: zstd ones (Docker
/// before 23 cannot read them; the image ID, the config digest, stays the
/// same), and the gzip ones to inflate with the length their trailer
/// claims (see [`super::inflate`]).
#[derive(Default)]
struct Unpacked {
    zstd: BTreeSet<Digest>,
    gzip: BTreeMap<Digest, u64>,
}

impl Unpacked {
    fn of(
        bundle: &OpenBundle,
        images: &[&ImageRecord],
        skip: &BTreeSet<Digest>,
        inflate: &Inflate,
    ) -> io::Result<Self> {
        let mut u = Unpacked::default();
        for r in images {
            for (d, compression) in layer_compression(bundle, r).map_err(to_io)? {
                match compression {
                    Some(Compression::Zstd) => {
                        u.zstd.insert(d);
                    }
                    Some(Compression::Gzip) if inflate.wants(&d) && !skip.contains(&d) => {
                        let (holder, e) =
                            bundle.locate(&d.blob_path()).map_err(|e| to_io(e.into()))?;
                        if let Some(size) = claimed_size(holder, e)? {
                            u.gzip.insert(d, size);
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(u)
    }
}

/// Appends blob `d` from the bundle, unpacked where `unpacked` says.
fn append_blob(
    tar: &mut tar::Builder<&mut dyn Write>,
    bundle: &OpenBundle,
    d: &Digest,
    unpacked: &Unpacked,
) -> io::Result<()> {
    let name = d.blob_path();
    // A delta's blob may lie in its base bundle.
    let (holder, e) = bundle.locate(&name).map_err(|e| to_io(e.into()))?;
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(e.size);
    h.set_mtime(0);
    // Every chunk is checked against the seal verification took of it
    // before any byte of it goes on.
    let reader = || holder.sealed(&name).map_err(|e| to_io(e.into()));
    let unpacked_path = format!("layers/{}.tar", d.hex());
    if let Some(&size) = unpacked.gzip.get(d) {
        h.set_size(size);
        let inflated =
            flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(PIECE, reader()?));
        append_streamed(
            tar,
            &mut h,
            &unpacked_path,
            &mut Exact::new(inflated, size, d.clone()),
        )
    } else if unpacked.zstd.contains(d) {
        // Two passes: the tar header needs the decompressed size first.
        let size = io::copy(
            &mut Unzstd::new(io::BufReader::new(reader()?)),
            &mut io::sink(),
        )?;
        h.set_size(size);
        append_streamed(
            tar,
            &mut h,
            &unpacked_path,
            &mut Unzstd::new(io::BufReader::new(reader()?)),
        )
    } else {
        append_streamed(tar, &mut h, &name, &mut reader()?)
    }
}

/// How much of an entry is read and written at a time.
const PIECE: usize = 1 << 20;

/// Appends an entry of `h.size()` bytes read from `data` in [`PIECE`]s.
/// tar's own `append_data` copies in 8 KiB, and zlib-rs updates its
/// window after every read: 966 MB of tar inflated in 1.67–2.27 s in
/// 8 KiB reads against 1.40 s in 1 MiB ones. A `data` that gives another
/// length than the header's is an error, not an archive whose entries
/// are out of step.
fn append_streamed(
    tar: &mut tar::Builder<&mut dyn Write>,
    h: &mut tar::Header,
    path: &str,
    data: &mut dyn io::Read,
) -> io::Result<()> {
    // Every path here is under 100 bytes: no GNU long-name entry needed.
    h.set_path(path)?;
    h.set_cksum();
    let size = h.size()?;
    let w = tar.get_mut();
    w.write_all(h.as_bytes())?;
    let mut piece = vec![0u8; PIECE];
    let mut sent = 0u64;
    loop {
        let n = match data.read(&mut piece) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        sent += n as u64;
        if sent > size {
            break;
        }
        w.write_all(&piece[..n])?;
    }
    if sent != size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{path}: {sent} bytes where its entry gives {size}"),
        ));
    }
    let pad = (512 - size % 512) % 512;
    w.write_all(&[0u8; 512][..pad as usize])
}

/// The layers of an image and how each is compressed (`None` for a
/// media type that is no tar), from its manifest in the bundle.
fn layer_compression(
    bundle: &OpenBundle,
    r: &ImageRecord,
) -> Result<Vec<(Digest, Option<Compression>)>, InstallError> {
    let bytes = bundle.read_small(&r.manifest.blob_path())?;
    match crate::manifest::parse(&bytes, Some(&r.manifest_media_type)) {
        Ok((_, crate::manifest::Parsed::Image { layers, .. })) => Ok(layers
            .into_iter()
            .map(|l| (l.digest, Compression::of(&l.media_type)))
            .collect()),
        Ok(_) => Err(InstallError::Bundle(format!(
            "{} is not an image manifest",
            r.manifest
        ))),
        Err(e) => Err(InstallError::Bundle(format!(
            "manifest {}: {e}",
            r.manifest
        ))),
    }
}

/// Decompresses a zstd stream of one or more frames.
struct Unzstd<R: io::BufRead> {
    frame: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
    inner: Option<R>,
}

impl<R: io::BufRead> Unzstd<R> {
    fn new(inner: R) -> Self {
        Unzstd {
            frame: None,
            inner: Some(inner),
        }
    }
}

impl<R: io::BufRead> io::Read for Unzstd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(f) = self.frame.as_mut() {
                let n = f.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                self.inner = self.frame.take().map(|f| f.into_inner());
            }
            let Some(mut inner) = self.inner.take() else {
                return Ok(0);
            };
            if inner.fill_buf()?.is_empty() {
                return Ok(0);
            }
            self.frame =
                Some(ruzstd::decoding::StreamingDecoder::new(inner).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}"))
                })?);
        }
    }
}

/// An install error as the I/O error of the archive stream, keeping an
/// integrity failure recognisable.
fn to_io(e: InstallError) -> io::Error {
    match e {
        InstallError::Open(OpenError::Changed { entry }) => io::Error::other(ChangedEntry(entry)),
        e => io::Error::other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn entry(data: &[u8], size: u64) -> io::Result<Vec<u8>> {
        let mut out: Vec<u8> = Vec::new();
        {
            let w: &mut dyn Write = &mut out;
            let mut tar = tar::Builder::new(w);
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(size);
            append_streamed(&mut tar, &mut h, "layers/x.tar", &mut &data[..])?;
            tar.finish()?;
        }
        Ok(out)
    }

    #[test]
    fn a_layer_streamed_in_pieces_reads_back_as_the_same_tar_entry() {
        // Over two pieces, and not a multiple of tar's block.
        let data: Vec<u8> = (0..(PIECE as u32 + 1000))
            .map(|n| (n % 251) as u8)
            .collect();
        let out = entry(&data, data.len() as u64).unwrap_or_default();
        let mut archive = tar::Archive::new(&out[..]);
        let mut entries = archive.entries().unwrap_or_else(|e| panic!("{e}"));
        let mut first = entries
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("no entry"));
        assert_eq!(first.path().ok().as_deref(), Some("layers/x.tar".as_ref()));
        let mut back = Vec::new();
        assert!(first.read_to_end(&mut back).is_ok());
        assert!(back == data);
        drop(first);
        assert!(entries.next().is_none());
    }

    #[test]
    fn a_layer_that_gives_another_length_than_its_header_fails_the_archive() {
        let data = vec![7u8; 3000];
        for size in [2999, 3001] {
            let err = entry(&data, size).err();
            assert_eq!(
                err.map(|e| e.kind()),
                Some(io::ErrorKind::InvalidData),
                "{size}"
            );
        }
    }
}
