//! Reading a tar without trusting it: raw entries, header extensions
//! bounded and applied by bale, framing checked to the last byte.

use crate::bundle::source::Source;
use std::io::{self, Seek, SeekFrom};
use std::path::Path;

use super::Problem;

/// A tar entry as found, before any trust.
#[derive(Debug, Clone)]
pub struct RawEntry {
    /// The path, if it is UTF-8.
    pub path: Result<String, String>,
    /// The tar entry type.
    pub kind: tar::EntryType,
    /// Offset of its content in the file.
    pub offset: u64,
    /// Size of its content.
    pub size: u64,
}

/// The largest GNU long name or PAX extension header bale reads. Its own
/// bundles need a few hundred bytes; tar readers that take any size let a
/// crafted header cost gigabytes of memory before the first check.
pub const MAX_TAR_EXTENSION: u64 = 64 * 1024;

/// Lists the entries of the tar at `file`, and problems with its framing
/// (truncation, trailing data, oversized or malformed header extensions).
pub fn scan(file: &Source, len: u64) -> (Vec<RawEntry>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    let mut reader = file.reader();
    let _ = reader.seek(SeekFrom::Start(0));
    let mut archive = tar::Archive::new(reader);
    let end = match archive.entries_with_seek() {
        Err(_) => {
            problems.push(not_a_bundle(file));
            return (out, problems);
        }
        // Raw: extension headers come to us unread, so their size is
        // checked before a byte of them is held in memory.
        Ok(entries) => scan_entries(entries.raw(true), len, &mut out, &mut problems),
    };
    // Not even the first header is one: one problem that says what the
    // file seems to be, never its bytes (a secrets file passed by mistake).
    if out.is_empty()
        && problems
            .first()
            .is_some_and(|p| p.message.starts_with(NO_HEADER_AT_0))
    {
        return (out, vec![not_a_bundle(file)]);
    }
    check_tail(file, len, end, !out.is_empty(), &mut problems);
    (out, problems)
}

/// Refuses, before anything is read as a bundle, what cannot be one: a
/// directory, an empty file, the part list of a split bundle, a file that
/// does not start with a tar header, and a bundle that exists only as
/// parts; each with what to pass instead.
pub fn check_input(path: &Path) -> Result<(), super::VerifyError> {
    let not = |what: String| super::VerifyError::NotABundle {
        path: path.to_owned(),
        what,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            let first = path.with_file_name(format!("{name}.001"));
            if e.kind() == io::ErrorKind::NotFound && first.is_file() {
                return Err(not(format!(
                    "it does not exist, but its parts do: pass {name}.001 (bale reads the parts in place)"
                )));
            }
            return Err(super::VerifyError::Io {
                path: path.to_owned(),
                source: e,
            });
        }
    };
    if meta.is_dir() {
        let mut bundles: Vec<String> = std::fs::read_dir(path)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".bale") || n.ends_with(".bale.001"))
                    .collect()
            })
            .unwrap_or_default();
        bundles.sort();
        bundles.truncate(5);
        return Err(not(if bundles.is_empty() {
            "a directory; pass the bundle file (NAME-VERSION.bale)".into()
        } else {
            format!(
                "a directory; pass a bundle file in it: {}",
                bundles
                    .iter()
                    .map(|b| crate::quote::quote(b))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }));
    }
    if let Some(base) = name.strip_suffix(".parts") {
        return Err(not(format!(
            "the part list of a split bundle; pass its first part, {base}.001"
        )));
    }
    if meta.len() == 0 {
        return Err(not("an empty file".into()));
    }
    let mut head = vec![0u8; 512.min(meta.len() as usize)];
    let read = std::fs::File::open(path).and_then(|mut f| io::Read::read_exact(&mut f, &mut head));
    if let Err(e) = read {
        return Err(super::VerifyError::Io {
            path: path.to_owned(),
            source: e,
        });
    }
    if !is_tar_header(&head) {
        return Err(not(format!("it looks like {}", what_it_seems(&head))));
    }
    Ok(())
}

/// Whether `block` is a tar header: 512 bytes whose checksum field holds
/// the sum of its bytes (the field itself counted as spaces).
fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < 512 {
        return false;
    }
    let field = &block[148..156];
    let text: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let Ok(want) = u32::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let sum: u32 = block[..512]
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    sum == want
}

/// How a header that is no tar header at the very start is reported.
const NO_HEADER_AT_0: &str = "malformed tar at byte 0: a header that is no tar header";

/// The problem with a file that is no tar archive at all.
fn not_a_bundle(file: &Source) -> Problem {
    let mut head = vec![0u8; 512.min(file.len() as usize)];
    let kind = match file.read_exact_at(&mut head, 0) {
        Ok(()) => what_it_seems(&head),
        Err(_) => "unreadable".into(),
    };
    Problem::new(
        "bundle",
        format!("not a bale bundle (no tar header at its start): it looks like {kind}"),
    )
}

/// What a file whose first bytes are `head` seems to be, in words that
/// quote none of them.
pub fn what_it_seems(head: &[u8]) -> String {
    // The head may end inside a character, and inside a line.
    let text = match std::str::from_utf8(head) {
        Ok(t) => Some(t),
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok(),
        Err(_) => None,
    };
    let cut = head.len() == 512;
    let starts = |p: &[u8]| head.starts_with(p);
    if head.is_empty() {
        "an empty file".into()
    } else if starts(&[0x1f, 0x8b]) {
        "gzip-compressed data".into()
    } else if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "zstd-compressed data".into()
    } else if starts(b"PK\x03\x04") {
        "a zip archive".into()
    } else if starts(b"\x7fELF") {
        "a program (ELF)".into()
    } else if starts(b"untrusted comment:") {
        "a minisign key or signature".into()
    } else if starts(b"-----BEGIN") {
        "a PEM file (a certificate or a key)".into()
    } else if let Some(t) = text {
        let t = t.trim_start();
        let mut lines: Vec<&str> = t.lines().collect();
        if cut {
            lines.pop();
        }
        let key_values = lines
            .iter()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .all(|l| l.contains('='));
        if t.starts_with('{') || t.starts_with('[') {
            "JSON text".into()
        } else if key_values {
            "a text file of KEY=VALUE lines (an .env or values file?)".into()
        } else {
            "a text file".into()
        }
    } else {
        "binary data that is not a tar archive".into()
    }
}

/// Walks raw tar entries, applying GNU long names and PAX `path` records
/// (each bounded by [`MAX_TAR_EXTENSION`]); returns where the last entry ends.
fn scan_entries<R: io::Read>(
    entries: tar::Entries<'_, R>,
    len: u64,
    out: &mut Vec<RawEntry>,
    problems: &mut Vec<Problem>,
) -> u64 {
    let mut end = 0u64;
    let mut long_name: Option<Vec<u8>> = None;
    let mut pax_size: Option<u64> = None;
    let malformed = |offset: u64, m: String| {
        Problem::new("bundle", format!("malformed tar at byte {offset}: {m}"))
    };
    for entry in entries {
        let mut e = match entry {
            // The tar crate's message can quote the header's bytes: an
            // unverified input is described, never quoted.
            Err(e) => {
                let why = if e.kind() == io::ErrorKind::UnexpectedEof {
                    "the file ends inside it"
                } else {
                    "a checksum or a numeric field is not valid"
                };
                problems.push(malformed(
                    end,
                    format!("a header that is no tar header: {why}"),
                ));
                break;
            }
            Ok(e) => e,
        };
        let kind = e.header().entry_type();
        let offset = e.raw_file_position();
        let size = e.size();
        end = offset + size.div_ceil(512) * 512;
        let extension = kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions();
        if extension {
            match read_extension(&mut e, kind, size) {
                Ok((name, size_record)) => {
                    if name.is_some() && long_name.is_some() {
                        problems.push(malformed(offset, "two long names for one entry".into()));
                        break;
                    }
                    long_name = name.or(long_name.take());
                    pax_size = size_record.or(pax_size);
                }
                Err(m) => {
                    problems.push(malformed(offset, m));
                    break;
                }
            }
            continue;
        }
        // A PAX size that disagrees with the header would make readers
        // disagree about where the next entry starts.
        if let Some(ps) = pax_size.take()
            && ps != size
        {
            problems.push(malformed(
                offset,
                format!("a PAX size of {ps} bytes for an entry whose header says {size}"),
            ));
            break;
        }
        let bytes = long_name
            .take()
            .unwrap_or_else(|| e.path_bytes().into_owned());
        let path = String::from_utf8(bytes)
            .map_err(|b| String::from_utf8_lossy(b.as_bytes()).into_owned());
        if offset + size > len {
            problems.push(Problem::new(
                path.as_deref().unwrap_or_else(|p| p),
                format!(
                    "truncated: the entry needs {} bytes, the file ends after {}",
                    size,
                    len.saturating_sub(offset)
                ),
            ));
        }
        out.push(RawEntry {
            path,
            kind,
            offset,
            size,
        });
    }
    if long_name.is_some() || pax_size.is_some() {
        problems.push(Problem::new(
            "bundle",
            "malformed tar: a header extension describes no entry".into(),
        ));
    }
    end
}

/// A GNU long name or PAX extension of `size` bytes, read whole (at most
/// [`MAX_TAR_EXTENSION`]): the long name and PAX size it gives, or why it
/// is malformed.
fn read_extension<R: io::Read>(
    e: &mut tar::Entry<'_, R>,
    kind: tar::EntryType,
    size: u64,
) -> Result<(Option<Vec<u8>>, Option<u64>), String> {
    if size > MAX_TAR_EXTENSION {
        return Err(format!(
            "a {} header extension of {size} bytes (at most {MAX_TAR_EXTENSION} are accepted)",
            extension_name(kind)
        ));
    }
    let mut data = Vec::with_capacity(size as usize);
    if let Err(err) = io::Read::read_to_end(e, &mut data) {
        return Err(format!("cannot read a header extension ({:?})", err.kind()));
    }
    if data.len() as u64 != size {
        return Err("a header extension is cut short".into());
    }
    if kind.is_gnu_longname() {
        let n = data.split(|b| *b == 0).next().unwrap_or_default().to_vec();
        return Ok((Some(n), None));
    }
    if kind.is_pax_local_extensions() {
        let (name, size_record, bad) = pax_records(&data);
        return match bad {
            Some(m) => Err(m),
            None => Ok((name, size_record)),
        };
    }
    Ok((None, None))
}

fn extension_name(kind: tar::EntryType) -> &'static str {
    if kind.is_gnu_longname() {
        "GNU long name"
    } else if kind.is_gnu_longlink() {
        "GNU long link"
    } else if kind.is_pax_global_extensions() {
        "PAX global"
    } else {
        "PAX"
    }
}

/// The `path` and `size` records of a PAX header, or why it is malformed.
fn pax_records(data: &[u8]) -> (Option<Vec<u8>>, Option<u64>, Option<String>) {
    let mut path = None;
    let mut size = None;
    for record in tar::PaxExtensions::new(data) {
        let Ok(r) = record else {
            return (None, None, Some("a malformed PAX record".into()));
        };
        match r.key() {
            Ok("path") => path = Some(r.value_bytes().to_vec()),
            Ok("size") => match r.value().ok().and_then(|v| v.parse().ok()) {
                Some(n) => size = Some(n),
                None => return (None, None, Some("a PAX size that is not a number".into())),
            },
            _ => {}
        }
    }
    (path, size, None)
}

/// After the last entry: the end-of-archive marker, then only zeros.
fn check_tail(file: &Source, len: u64, end: u64, any: bool, problems: &mut Vec<Problem>) {
    if end + 1024 > len && any && problems.is_empty() {
        problems.push(Problem::new(
            "bundle",
            "truncated: no end-of-archive marker".into(),
        ));
    } else if len > end + 1024 {
        let mut buf = vec![0u8; 64 * 1024];
        let mut pos = end;
        while pos < len {
            let n = match file.read_at(&mut buf, pos) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if buf[..n].iter().any(|b| *b != 0) {
                problems.push(Problem::new(
                    "bundle",
                    format!("data after the end of the archive, at byte {pos}"),
                ));
                break;
            }
            pos += n as u64;
        }
    }
}
