//! rpm's package database: SQLite (`rpmdb.sqlite`, rpm ≥ 4.16, the default
//! of Fedora 33+, RHEL 9 and its rebuilds), one header blob per package in
//! table `Packages`. A header is `il` and `dl` (big-endian u32), `il`
//! index entries of (tag, type, offset, count) and `dl` bytes of data;
//! bale reads the few string tags it needs and checks every offset. The
//! older Berkeley DB and NDB formats are not read (inventory reports them).

use std::path::Path;

use super::{MAX_PACKAGES, Manager, Package, PackagesError, field};

const NAME: u32 = 1000;
const VERSION: u32 = 1001;
const RELEASE: u32 = 1002;
const EPOCH: u32 = 1003;
const VENDOR: u32 = 1011;
const LICENSE: u32 = 1014;
const ARCH: u32 = 1022;
const SOURCERPM: u32 = 1044;
const INT32: u32 = 4;
const STRING: u32 = 6;
const I18NSTRING: u32 = 9;
/// Most index entries one header may have (rpm's own limit is 0xffff).
const MAX_ENTRIES: u32 = 0xffff;
/// Largest header data (rpm's own limit is 256 MiB).
const MAX_DATA: u32 = 256 * 1024 * 1024;

fn bad(reason: String) -> PackagesError {
    PackagesError::Malformed {
        what: "rpm header",
        reason,
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// The package a header describes; `None` for rpm's `gpg-pubkey`
/// pseudo-packages (imported keys, not software).
pub fn parse_header(blob: &[u8]) -> Result<Option<Package>, PackagesError> {
    let (Some(il), Some(dl)) = (be32(blob, 0), be32(blob, 4)) else {
        return Err(bad("shorter than its 8-byte preamble".into()));
    };
    if il > MAX_ENTRIES || dl > MAX_DATA {
        return Err(bad(format!(
            "{il} entries, {dl} data bytes: beyond rpm's limits"
        )));
    }
    let start = 8 + 16 * il as usize;
    let data = blob.get(start..start + dl as usize).ok_or_else(|| {
        bad(format!(
            "{} bytes, needs {}",
            blob.len(),
            start + dl as usize
        ))
    })?;
    let entry = |tag: u32| {
        (0..il as usize).find_map(|i| {
            let at = 8 + 16 * i;
            (be32(blob, at)? == tag)
                .then(|| (be32(blob, at + 4), be32(blob, at + 8), be32(blob, at + 12)))
        })
    };
    let string = |tag: u32| -> Option<String> {
        let (Some(ty), Some(off), Some(_)) = entry(tag)? else {
            return None;
        };
        if ty != STRING && ty != I18NSTRING {
            return None;
        }
        let rest = data.get(off as usize..)?;
        let end = rest.iter().position(|&c| c == 0)?;
        let s = std::str::from_utf8(&rest[..end]).ok()?;
        Some(field(s)).filter(|s| !s.is_empty())
    };
    let epoch = entry(EPOCH).and_then(|e| match e {
        (Some(INT32), Some(off), Some(c)) if c >= 1 => be32(data, off as usize),
        _ => None,
    });
    let name = string(NAME).ok_or_else(|| bad("no name".into()))?;
    if name == "gpg-pubkey" {
        return Ok(None);
    }
    let version = string(VERSION).ok_or_else(|| bad(format!("{name}: no version")))?;
    let release = string(RELEASE);
    let mut evr = String::new();
    if let Some(e) = epoch {
        evr.push_str(&format!("{e}:"));
    }
    evr.push_str(&version);
    if let Some(r) = &release {
        evr.push('-');
        evr.push_str(r);
    }
    // `openssl-3.0.7-25.el9_3.src.rpm` → `openssl`: name-version-release.
    let source = string(SOURCERPM).and_then(|s| {
        let s = s
            .strip_suffix(".src.rpm")
            .or_else(|| s.strip_suffix(".nosrc.rpm"))?;
        let (s, _release) = s.rsplit_once('-')?;
        let (s, _version) = s.rsplit_once('-')?;
        Some(s.to_owned())
    });
    Ok(Some(Package {
        manager: Manager::Rpm,
        source: source.filter(|s| *s != name),
        name,
        version: evr,
        arch: string(ARCH),
        license: string(LICENSE),
        vendor: string(VENDOR),
    }))
}

/// The packages of an `rpmdb.sqlite` file, opened read-only and immutable
/// (no journal or lock files are made beside it).
pub fn read_sqlite(path: &Path) -> Result<Vec<Package>, PackagesError> {
    let sql = |e: rusqlite::Error| PackagesError::Malformed {
        what: "rpm database",
        reason: format!("SQLite: {e}"),
    };
    let uri = format!(
        "file:{}?immutable=1",
        path.to_string_lossy()
            .replace('%', "%25")
            .replace('?', "%3f")
            .replace('#', "%23")
    );
    let db = rusqlite::Connection::open_with_flags(
        uri,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
            | rusqlite::OpenFlags::SQLITE_OPEN_URI
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql)?;
    let mut stmt = db
        .prepare("SELECT blob FROM Packages ORDER BY hnum")
        .map_err(sql)?;
    let mut rows = stmt.query([]).map_err(sql)?;
    let mut out = Vec::new();
    let mut n = 0usize;
    while let Some(row) = rows.next().map_err(sql)? {
        n += 1;
        if n > MAX_PACKAGES {
            return Err(bad(format!("more than {MAX_PACKAGES} packages")));
        }
        let blob: Vec<u8> = row.get(0).map_err(sql)?;
        if let Some(p) = parse_header(&blob)? {
            out.push(p);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(entries: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        for (tag, ty, bytes) in entries {
            for v in [*tag, *ty, data.len() as u32, 1] {
                index.extend_from_slice(&v.to_be_bytes());
            }
            data.extend_from_slice(bytes);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(data);
        out
    }

    #[test]
    fn reads_epoch_version_release_and_source() {
        let h = header(&[
            (NAME, STRING, b"openssl-libs\0"),
            (VERSION, STRING, b"3.0.7\0"),
            (RELEASE, STRING, b"25.el9_3\0"),
            (EPOCH, INT32, &1u32.to_be_bytes()),
            (SOURCERPM, STRING, b"openssl-3.0.7-25.el9_3.src.rpm\0"),
        ]);
        let p = parse_header(&h).unwrap().unwrap();
        assert_eq!(p.version, "1:3.0.7-25.el9_3");
        assert_eq!(p.source.as_deref(), Some("openssl"));
    }

    #[test]
    fn a_header_whose_offsets_point_outside_is_refused_or_skipped_never_read_past() {
        let mut h = header(&[(NAME, STRING, b"x\0")]);
        h[16..20].copy_from_slice(&9999u32.to_be_bytes()); // NAME's offset
        assert!(parse_header(&h).is_err());
        assert!(parse_header(&[0, 0]).is_err());
        let mut huge = header(&[(NAME, STRING, b"x\0")]);
        huge[0..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_header(&huge).is_err());
    }
}
