//! `bale verify` and `bale inspect`: read a bundle without trusting it.
//!
//! Verification reads every tar header (seeking over contents), checks the
//! signature over the manifest, then hashes every entry's content on all
//! cores with positioned reads, and reports every problem it finds.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::bundle::{
    self, IMAGES_PATH, ImageRecord, ImagesFile, MANIFEST_PATH, MAX_MANIFEST_BYTES, Manifest,
    SIGNATURE_PATH,
};
use crate::digest::Digest;
use crate::sign::VerifyingKey;
use crate::validate;

/// Errors that stop verification before it can judge the bundle.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The bundle file cannot be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// One problem, naming the entry it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The entry (or `bundle` for the file as a whole).
    pub entry: String,
    /// What is wrong.
    pub message: String,
}

/// The state of one image in the report.
#[derive(Debug, Clone, Serialize)]
pub struct ImageStatus {
    /// Service.
    pub service: String,
    /// Canonical name.
    pub name: String,
    /// Platform.
    pub platform: String,
    /// What the tag pointed to.
    pub digest: Digest,
    /// Platform manifest.
    pub manifest: Digest,
    /// Config (image ID).
    pub config: Digest,
    /// `ok`, or `failed` when one of its blobs failed.
    pub status: &'static str,
}

/// The auditor's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The bundle file.
    pub bundle: PathBuf,
    /// Name from the manifest.
    pub name: Option<String>,
    /// Version from the manifest.
    pub version: Option<String>,
    /// SHA-256 of the signed manifest.
    pub manifest_digest: Option<Digest>,
    /// Key ID of the public key used.
    pub key_id: Option<String>,
    /// `verified`, `unsigned` or `failed`.
    pub signature: &'static str,
    /// Images, from `bale/images.json` once verified.
    pub images: Vec<ImageStatus>,
    /// Entries whose content was hashed.
    pub entries_checked: usize,
    /// Bytes hashed.
    pub bytes_checked: u64,
    /// Every problem found; empty when the bundle is intact.
    pub problems: Vec<Problem>,
}

impl Problem {
    /// A problem with `entry` (quoted, cut to a bounded length: a name in
    /// a hostile bundle can be megabytes long).
    pub fn new(entry: &str, message: String) -> Self {
        Problem {
            entry: validate::quote(entry),
            message,
        }
    }
}

impl Report {
    /// Whether the bundle verified.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

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
pub fn scan(file: &File, len: u64) -> (Vec<RawEntry>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    let mut reader = match file.try_clone() {
        Ok(f) => f,
        Err(e) => {
            problems.push(Problem::new("bundle", e.to_string()));
            return (out, problems);
        }
    };
    let _ = reader.seek(SeekFrom::Start(0));
    let mut archive = tar::Archive::new(reader);
    let end = match archive.entries_with_seek() {
        Err(e) => {
            problems.push(Problem::new("bundle", format!("not a tar file: {e}")));
            0
        }
        // Raw: extension headers come to us unread, so their size is
        // checked before a byte of them is held in memory.
        Ok(entries) => scan_entries(entries.raw(true), len, &mut out, &mut problems),
    };
    check_tail(file, len, end, !out.is_empty(), &mut problems);
    (out, problems)
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
            Err(e) => {
                problems.push(Problem::new(
                    "bundle",
                    format!("truncated or malformed tar: {e}"),
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
            if size > MAX_TAR_EXTENSION {
                problems.push(malformed(
                    offset,
                    format!(
                        "a {} header extension of {size} bytes (at most {MAX_TAR_EXTENSION} are accepted)",
                        extension_name(kind)
                    ),
                ));
                break;
            }
            let mut data = Vec::with_capacity(size as usize);
            if let Err(err) = io::Read::read_to_end(&mut e, &mut data) {
                problems.push(malformed(
                    offset,
                    format!("cannot read a header extension: {err}"),
                ));
                break;
            }
            if data.len() as u64 != size {
                problems.push(malformed(offset, "a header extension is cut short".into()));
                break;
            }
            if kind.is_gnu_longname() || kind.is_pax_local_extensions() {
                let (name, size_record, bad) = if kind.is_gnu_longname() {
                    let n = data.split(|b| *b == 0).next().unwrap_or_default().to_vec();
                    (Some(n), None, None)
                } else {
                    pax_records(&data)
                };
                if let Some(m) = bad {
                    problems.push(malformed(offset, m));
                    break;
                }
                if name.is_some() && long_name.is_some() {
                    problems.push(malformed(offset, "two long names for one entry".into()));
                    break;
                }
                long_name = name.or(long_name.take());
                pax_size = size_record.or(pax_size);
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
fn check_tail(file: &File, len: u64, end: u64, any: bool, problems: &mut Vec<Problem>) {
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

fn read_entry(file: &File, e: &RawEntry, limit: u64) -> Result<Vec<u8>, String> {
    if e.size > limit {
        return Err(format!("{} bytes, over the {limit} limit", e.size));
    }
    let mut buf = vec![0u8; e.size as usize];
    file.read_exact_at(&mut buf, e.offset)
        .map_err(|err| format!("cannot read: {err}"))?;
    Ok(buf)
}

fn hash_range(file: &File, offset: u64, size: u64, buf: &mut [u8]) -> io::Result<Digest> {
    let mut h = Sha256::new();
    let mut pos = 0u64;
    while pos < size {
        let want = (size - pos).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..want], offset + pos)?;
        h.update(&buf[..want]);
        pos += want as u64;
    }
    Ok(Digest::from_sha256(h))
}

/// What [`verify`] is asked to do.
pub struct VerifyOptions<'a> {
    /// The key the manifest must be signed with. `None` with
    /// `allow_unsigned` checks digests only.
    pub key: Option<&'a VerifyingKey>,
    /// Accept a bundle without signature.
    pub allow_unsigned: bool,
    /// Hashing threads (0: one per core).
    pub threads: usize,
}

/// Verifies the bundle at `path`.
pub fn verify(path: &Path, opts: &VerifyOptions<'_>) -> Result<Report, VerifyError> {
    let io = |source| VerifyError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let (entries, mut problems) = scan(&file, len);
    let mut report = Report {
        bundle: path.to_owned(),
        name: None,
        version: None,
        manifest_digest: None,
        key_id: opts.key.map(VerifyingKey::key_id),
        signature: "failed",
        images: Vec::new(),
        entries_checked: 0,
        bytes_checked: 0,
        problems: Vec::new(),
    };
    let problem = |entry: &str, message: String| Problem::new(entry, message);

    // The manifest comes first, the signature second.
    let Some(first) = entries
        .first()
        .filter(|e| e.path.as_deref() == Ok(MANIFEST_PATH))
    else {
        problems.push(problem(
            "bundle",
            format!("the first entry is not `{MANIFEST_PATH}`: not a bale bundle"),
        ));
        report.problems = problems;
        return Ok(report);
    };
    let manifest_bytes = match read_entry(&file, first, MAX_MANIFEST_BYTES) {
        Ok(b) => b,
        Err(m) => {
            problems.push(problem(MANIFEST_PATH, m));
            report.problems = problems;
            return Ok(report);
        }
    };
    let manifest_digest = Digest::of(&manifest_bytes);
    report.manifest_digest = Some(manifest_digest.clone());
    let manifest = match std::str::from_utf8(&manifest_bytes)
        .map_err(|_| "not UTF-8".to_owned())
        .and_then(Manifest::parse)
    {
        Ok(m) => m,
        Err(m) => {
            problems.push(problem(MANIFEST_PATH, m));
            report.problems = problems;
            return Ok(report);
        }
    };
    report.name = Some(validate::quote(&manifest.name));
    report.version = Some(validate::quote(&manifest.version));
    // Fields that reach paths and commands at install, checked even when
    // the signature holds: the signer may be the attacker.
    for m in validate::manifest(&manifest) {
        problems.push(problem(MANIFEST_PATH, m));
    }
    for e in &manifest.entries {
        if let Err(m) = validate::entry_path(&e.path) {
            problems.push(problem(&e.path, format!("listed in the manifest: {m}")));
        }
    }

    let sig_entry = entries
        .get(1)
        .filter(|e| e.path.as_deref() == Ok(SIGNATURE_PATH));
    match (sig_entry, opts.key) {
        (None, _) if opts.allow_unsigned => report.signature = "unsigned",
        (None, _) => problems.push(problem(
            SIGNATURE_PATH,
            "missing: the bundle is unsigned. Build it with --sign-key; bale install takes signed bundles only (`bale verify --allow-unsigned` checks the digests of an unsigned one)".into(),
        )),
        // Asked to check digests only: a signature present stays unchecked.
        (Some(_), None) if opts.allow_unsigned => report.signature = "unchecked",
        (Some(_), None) => problems.push(problem(
            SIGNATURE_PATH,
            "no public key given to check it: pass --public-key".into(),
        )),
        (Some(s), Some(key)) => match read_entry(&file, s, 64 * 1024)
            .and_then(|b| String::from_utf8(b).map_err(|_| "not UTF-8".into()))
            .and_then(|text| key.verify(&manifest_bytes, &text))
        {
            Err(m) => problems.push(problem(
                MANIFEST_PATH,
                format!("signature check failed ({SIGNATURE_PATH}): {m}"),
            )),
            Ok(comment) => match bundle::parse_trusted_comment(&comment) {
                Some((n, v, d))
                    if n == manifest.name && v == manifest.version && d == manifest_digest.to_string() =>
                {
                    report.signature = "verified";
                }
                _ => problems.push(problem(
                    SIGNATURE_PATH,
                    format!(
                        "the signed trusted comment `{comment}` does not name this manifest ({} {} {manifest_digest})",
                        manifest.name, manifest.version
                    ),
                )),
            },
        },
    }

    // Every other entry: listed once, plain, a regular file, of its size.
    let listed: BTreeMap<&str, &bundle::ManifestEntry> = manifest
        .entries
        .iter()
        .map(|e| (e.path.as_str(), e))
        .collect();
    if listed.len() != manifest.entries.len() {
        problems.push(problem(MANIFEST_PATH, "lists an entry twice".into()));
    }
    let skip = if sig_entry.is_some() { 2 } else { 1 };
    let mut seen = BTreeSet::new();
    let mut jobs: Vec<(String, u64, u64, Digest)> = Vec::new();
    let dirs: BTreeSet<String> = manifest
        .entries
        .iter()
        .flat_map(|e| {
            let parts: Vec<&str> = e.path.split('/').collect();
            (1..parts.len()).map(move |i| parts[..i].join("/"))
        })
        .collect();
    for e in entries.iter().skip(skip) {
        let name = match &e.path {
            Ok(p) => p.clone(),
            Err(lossy) => {
                problems.push(problem(lossy, "path is not UTF-8".into()));
                continue;
            }
        };
        if let Err(why) = validate::entry_path(name.trim_end_matches('/')) {
            problems.push(problem(&name, why));
            continue;
        }
        if !seen.insert(name.clone()) {
            problems.push(problem(&name, "duplicate entry".into()));
            continue;
        }
        if e.kind.is_dir() {
            if !dirs.contains(name.trim_end_matches('/')) {
                problems.push(problem(&name, "directory not in the manifest".into()));
            }
            continue;
        }
        if !e.kind.is_file() {
            problems.push(problem(
                &name,
                format!(
                    "refused: entry type {:?}; only regular files and directories are allowed",
                    e.kind
                ),
            ));
            continue;
        }
        if name == MANIFEST_PATH || name == SIGNATURE_PATH {
            problems.push(problem(&name, "appears again later in the bundle".into()));
            continue;
        }
        let Some(m) = listed.get(name.as_str()) else {
            problems.push(problem(&name, "not in the manifest".into()));
            continue;
        };
        if m.size != e.size {
            problems.push(problem(
                &name,
                format!("size {} differs from the manifest's {}", e.size, m.size),
            ));
            continue;
        }
        if let Some(hex) = name.strip_prefix("blobs/sha256/")
            && hex != m.sha256.hex()
        {
            problems.push(problem(
                &name,
                format!(
                    "a blob named by one digest listed with another ({})",
                    m.sha256
                ),
            ));
            continue;
        }
        if e.offset + e.size > len {
            continue; // reported by scan as truncated
        }
        jobs.push((name, e.offset, e.size, m.sha256.clone()));
    }
    for m in &manifest.entries {
        if !seen.contains(&m.path) {
            problems.push(problem(&m.path, "missing from the bundle".into()));
        }
    }

    // Hash, largest first, on every core.
    jobs.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        opts.threads
    };
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let verified = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, 64).min(jobs.len().max(1)) {
            s.spawn(|| {
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((name, offset, size, want)) = jobs.get(i) else {
                        return;
                    };
                    let result = hash_range(&file, *offset, *size, &mut buf);
                    let outcome = match result {
                        Ok(d) if &d == want => Ok(d),
                        Ok(d) => Err(format!("content hashes to {d}, the manifest says {want}")),
                        Err(e) => Err(format!("cannot read: {e}")),
                    };
                    match outcome {
                        Ok(_) => {
                            if let Ok(mut v) = verified.lock() {
                                v.insert(name.clone(), *size);
                            }
                        }
                        Err(m) => {
                            if let Ok(mut f) = failures.lock() {
                                f.push(Problem {
                                    entry: name.clone(),
                                    message: m,
                                });
                            }
                        }
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap_or_default();
    failures.sort_by(|a, b| a.entry.cmp(&b.entry));
    problems.extend(failures);
    let verified = verified.into_inner().unwrap_or_default();
    report.entries_checked = verified.len();
    report.bytes_checked = verified.values().sum();

    // The image list, once its own digest checked out.
    if verified.contains_key(IMAGES_PATH)
        && let Some(e) = entries
            .iter()
            .find(|e| e.path.as_deref() == Ok(IMAGES_PATH))
    {
        match read_entry(&file, e, MAX_MANIFEST_BYTES)
            .and_then(|b| serde_json::from_slice::<ImagesFile>(&b).map_err(|e| e.to_string()))
        {
            Ok(images) => {
                for m in validate::images_file(&images, &manifest) {
                    problems.push(problem(IMAGES_PATH, m));
                }
                for r in images.images {
                    let blobs = std::iter::once(&r.digest)
                        .chain([&r.manifest, &r.config])
                        .chain(r.layers.iter());
                    let ok = blobs
                        .into_iter()
                        .all(|d| verified.contains_key(&format!("blobs/sha256/{}", d.hex())));
                    report.images.push(ImageStatus {
                        service: r.service,
                        name: r.name,
                        platform: r.platform,
                        digest: r.digest,
                        manifest: r.manifest,
                        config: r.config,
                        status: if ok { "ok" } else { "failed" },
                    });
                }
            }
            Err(m) => problems.push(problem(IMAGES_PATH, m)),
        }
    }
    report.problems = problems;
    Ok(report)
}

/// What `bale inspect` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// Bundle name.
    pub name: String,
    /// Bundle version.
    pub version: String,
    /// SHA-256 of the manifest.
    pub manifest_digest: Digest,
    /// Whether a signature entry is present (not checked: see `bale verify`).
    pub signed: bool,
    /// Images.
    pub images: Vec<ImageRecord>,
    /// Overlay files.
    pub files: Vec<bundle::FileRecord>,
    /// Compose target.
    pub compose: Option<String>,
    /// Sum of every entry's size.
    pub total_size: u64,
    /// Sum of the images' sizes, counting shared blobs once per image.
    pub images_size: u64,
    /// Bytes of image blobs, each counted once.
    pub unique_size: u64,
    /// Layers used by more than one image: digest → services.
    pub shared_layers: BTreeMap<Digest, Vec<String>>,
}

/// Errors of inspect.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// Unreadable file.
    #[error(transparent)]
    Io(#[from] VerifyError),
    /// Not a readable bundle.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// Reads a bundle's manifest and image list. Checks only what it reads
/// (the image list against the manifest); `verify` checks everything.
pub fn inspect(path: &Path) -> Result<Inspection, InspectError> {
    let io = |source| {
        InspectError::Io(VerifyError::Io {
            path: path.to_owned(),
            source,
        })
    };
    let invalid = |message: String| InspectError::Invalid {
        path: path.to_owned(),
        message,
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let (entries, _) = scan(&file, len);
    let find = |name: &str| entries.iter().find(|e| e.path.as_deref() == Ok(name));
    let m =
        find(MANIFEST_PATH).ok_or_else(|| invalid("no bale-manifest: not a bale bundle".into()))?;
    let manifest_bytes = read_entry(&file, m, MAX_MANIFEST_BYTES).map_err(invalid)?;
    let manifest = std::str::from_utf8(&manifest_bytes)
        .map_err(|_| "manifest is not UTF-8".to_owned())
        .and_then(Manifest::parse)
        .map_err(invalid)?;
    let i = find(IMAGES_PATH).ok_or_else(|| invalid(format!("no {IMAGES_PATH}")))?;
    let images_bytes = read_entry(&file, i, MAX_MANIFEST_BYTES).map_err(invalid)?;
    let listed = manifest.entries.iter().find(|e| e.path == IMAGES_PATH);
    if listed.map(|e| &e.sha256) != Some(&Digest::of(&images_bytes)) {
        return Err(invalid(format!(
            "{IMAGES_PATH} does not match the manifest"
        )));
    }
    let images: ImagesFile =
        serde_json::from_slice(&images_bytes).map_err(|e| invalid(e.to_string()))?;
    let sizes: BTreeMap<String, u64> = manifest
        .entries
        .iter()
        .filter_map(|e| {
            e.path
                .strip_prefix("blobs/sha256/")
                .map(|h| (h.to_owned(), e.size))
        })
        .collect();
    let mut users: BTreeMap<Digest, BTreeSet<String>> = BTreeMap::new();
    for r in &images.images {
        for l in &r.layers {
            users
                .entry(l.clone())
                .or_default()
                .insert(r.service.clone());
        }
    }
    let shared_layers = users
        .into_iter()
        .filter(|(_, s)| s.len() > 1)
        .map(|(d, s)| (d, s.into_iter().collect()))
        .collect();
    Ok(Inspection {
        name: manifest.name,
        version: manifest.version,
        manifest_digest: Digest::of(&manifest_bytes),
        signed: find(SIGNATURE_PATH).is_some(),
        images_size: images.images.iter().map(|r| r.size).sum(),
        unique_size: sizes.values().sum(),
        total_size: manifest.entries.iter().map(|e| e.size).sum::<u64>()
            + manifest_bytes.len() as u64,
        images: images.images,
        files: images.files,
        compose: images.compose,
        shared_layers,
    })
}
