//! One layer read as a stream: hashed as read, decompressed, its tar
//! entries walked (never unpacked), the files that matter kept.

use std::io::{self, Read};

use super::{
    APK, DPKG, DPKG_D, Findings, Found, InventoryError, Layer, OS_RELEASE, RPM_OLD, RPM_SQLITE,
    covers,
};
use crate::digest::HashingReader;
use crate::packages::{self, MAX_DATABASE_BYTES};
use crate::store::Store;

/// Largest os-release read.
const MAX_OS_RELEASE: u64 = 64 * 1024;
/// Most tar entries one layer may have.
const MAX_ENTRIES: u64 = 10_000_000;

/// How a layer is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// From a layer media type; `None` for what is not a tar layer.
    pub fn of(media_type: &str) -> Option<Compression> {
        let m = media_type.to_ascii_lowercase();
        if !m.contains("tar") {
            return None;
        }
        Some(if m.ends_with("gzip") {
            Compression::Gzip
        } else if m.ends_with("zstd") {
            Compression::Zstd
        } else {
            Compression::None
        })
    }
}

/// Reads one layer of the store and returns what it holds that matters.
/// The findings count only once the whole blob hashed to its digest.
pub(super) fn read(
    store: &Store,
    l: &Layer,
    compression: Compression,
) -> Result<Findings, InventoryError> {
    let path = store.blob_path(l.digest);
    let io_err = |source: io::Error| InventoryError::Io {
        digest: l.digest.clone(),
        path: path.clone(),
        source,
    };
    let file = crate::digest::open_regular(&path).map_err(io_err)?;
    let mut raw = HashingReader::new(io::BufReader::with_capacity(1 << 20, file.take(l.size + 1)));
    let mut findings = Findings::default();
    let walked = match compression {
        Compression::None => walk(&mut raw, &mut findings),
        Compression::Gzip => walk(
            &mut flate2::read::MultiGzDecoder::new(&mut raw),
            &mut findings,
        ),
        Compression::Zstd => match zstd::stream::read::Decoder::new(&mut raw) {
            Ok(mut d) => walk(&mut d, &mut findings),
            Err(e) => Err(e),
        },
    };
    // Whatever the walk made of it, the rest of the blob is hashed too:
    // a layer is judged by its digest, not by how far its tar went.
    raw.drain().map_err(io_err)?;
    let (actual, read) = raw.finish();
    if &actual != l.digest || read != l.size {
        return Err(InventoryError::Corrupt {
            digest: l.digest.clone(),
            actual,
            size: read,
        });
    }
    if let Err(e) = walked {
        // A verified layer that is no readable tar (a foreign media type
        // that claims tar) holds no packages bale can name.
        findings = Findings::default();
        findings.files.insert(
            format!("(layer {})", l.digest),
            Found::Note(format!("not a readable tar stream ({})", e.kind())),
        );
    }
    Ok(findings)
}

/// Walks a tar stream, keeping the files that matter.
fn walk(stream: &mut dyn Read, f: &mut Findings) -> io::Result<()> {
    let mut archive = tar::Archive::new(stream);
    let mut count = 0u64;
    for entry in archive.entries()? {
        let mut entry = entry?;
        count += 1;
        if count > MAX_ENTRIES {
            return Err(io::Error::other("too many entries"));
        }
        let raw = entry.path_bytes();
        let Ok(name) = std::str::from_utf8(&raw) else {
            continue;
        };
        let name = normalize(name);
        if let Some((dir, base)) = split(&name) {
            if base == ".wh..wh..opq" {
                if covers(dir) {
                    f.opaque.push(dir.to_owned());
                }
                continue;
            }
            if let Some(gone) = base.strip_prefix(".wh.") {
                let gone = if dir.is_empty() {
                    gone.to_owned()
                } else {
                    format!("{dir}/{gone}")
                };
                if covers(&gone) {
                    f.deleted.push(gone);
                }
                continue;
            }
        }
        let kind = entry.header().entry_type();
        if let Some(found) = keep(&name, kind, &mut entry)? {
            f.files.insert(name, found);
        }
    }
    Ok(())
}

/// `./a/b/` → `a/b`.
fn normalize(name: &str) -> String {
    let mut n = name;
    while let Some(r) = n.strip_prefix("./").or_else(|| n.strip_prefix('/')) {
        n = r;
    }
    n.trim_end_matches('/').to_owned()
}

fn split(name: &str) -> Option<(&str, &str)> {
    match name.rsplit_once('/') {
        Some((d, b)) => Some((d, b)),
        None if !name.is_empty() => Some(("", name)),
        None => None,
    }
}

/// What a file that matters holds; `None` for every other file.
fn keep(
    name: &str,
    kind: tar::EntryType,
    entry: &mut tar::Entry<&mut dyn Read>,
) -> io::Result<Option<Found>> {
    let dpkg_d = name
        .strip_prefix(DPKG_D)
        .is_some_and(|b| !b.is_empty() && !b.contains('/') && !b.ends_with(".md5sums"));
    let interesting = OS_RELEASE.contains(&name)
        || name == APK
        || name == DPKG
        || dpkg_d
        || RPM_SQLITE.contains(&name)
        || RPM_OLD.contains(&name);
    if !interesting {
        return Ok(None);
    }
    if kind.is_symlink() {
        let target = entry
            .link_name_bytes()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        return Ok(Some(Found::Link(packages::field(&target))));
    }
    if kind.is_hard_link() {
        return Ok(Some(Found::Note("a hard link; not followed".into())));
    }
    if !kind.is_file() {
        return Ok(None);
    }
    if RPM_OLD.contains(&name) {
        return Ok(Some(Found::Note(
            "an rpm database in the Berkeley DB or NDB format, which bale does not read (rpm ≥ 4.16 writes SQLite)".into(),
        )));
    }
    let limit = if OS_RELEASE.contains(&name) {
        MAX_OS_RELEASE
    } else {
        MAX_DATABASE_BYTES
    };
    if entry.header().size().unwrap_or(u64::MAX) > limit {
        return Ok(Some(Found::Note(format!(
            "larger than {limit} bytes; not read"
        ))));
    }
    if RPM_SQLITE.contains(&name) {
        // SQLite reads a file: the database goes to a private temp file.
        let mut tmp = tempfile::NamedTempFile::new()?;
        io::copy(&mut entry.take(limit), tmp.as_file_mut())?;
        return Ok(Some(match packages::read_rpmdb(tmp.path()) {
            Ok(ps) => Found::Packages(ps),
            Err(e) => Found::Note(e.to_string()),
        }));
    }
    let mut bytes = Vec::new();
    entry.take(limit).read_to_end(&mut bytes)?;
    Ok(Some(if OS_RELEASE.contains(&name) {
        match packages::parse_os_release(&String::from_utf8_lossy(&bytes)) {
            Some(d) => Found::OsRelease(d),
            None => Found::Note("names no ID".into()),
        }
    } else {
        let parsed = if name == APK {
            packages::parse_apk(&bytes)
        } else {
            packages::parse_dpkg(&bytes)
        };
        match parsed {
            Ok(ps) => Found::Packages(ps),
            Err(e) => Found::Note(e.to_string()),
        }
    }))
}
