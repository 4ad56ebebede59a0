//! `bale verify` and `bale inspect`: read a bundle without trusting it.
//!
//! Verification reads every tar header (seeking over contents), checks the
//! signature over the manifest, then hashes every entry's content on all
//! cores, and reports every problem it finds. A plain check hashes in
//! place, two entries at a time per core (`lanes`); a bundle opened to act
//! on is read with positioned reads into a buffer and sealed from it.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::bundle::source::Source;
use crate::bundle::{
    self, IMAGES_PATH, ImagesFile, MANIFEST_PATH, MAX_MANIFEST_BYTES, Manifest, SIGNATURE_PATH,
};
use crate::digest::{Digest, SEAL_CHUNK, Seal, SealKey};
use crate::sign::VerifyingKey;
use crate::validate;

mod cosign;
mod images;
mod inspect;
mod lanes;
pub mod open;
mod scan;
pub mod sealed;

pub use inspect::{Evidence, InspectError, Inspection, evidence, inspect, manifest_of, sbom};
pub use open::{OpenBundle, OpenError};
pub use scan::{MAX_TAR_EXTENSION, RawEntry, scan};

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
    /// What was given is no bale bundle at all: nothing was checked.
    #[error("{}: not a bale bundle: {what}", path.display())]
    NotABundle {
        /// What was given.
        path: PathBuf,
        /// What it is, and what to pass instead.
        what: String,
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
    /// Where the image requires an upstream cosign signature: `verified`,
    /// `failed`, or `from-base` (a delta's, whose base carries and verifies it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cosign: Option<&'static str>,
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
    /// For a delta: the base it needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<bundle::BaseRef>,
    /// For a delta: the entries the base must provide.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from_base: Vec<String>,
    /// For a delta: whether the base bundle was given and verified with it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub base_checked: bool,
}

impl Problem {
    /// A problem with `entry` (quoted, cut to a bounded length: a name in
    /// a hostile bundle can be megabytes long).
    pub fn new(entry: &str, message: String) -> Self {
        Problem {
            entry: crate::quote::quote(entry),
            message,
        }
    }
}

impl Report {
    /// A report of `path` with nothing checked yet.
    fn empty(path: &Path, opts: &VerifyOptions<'_>) -> Report {
        Report {
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
            base: None,
            from_base: Vec::new(),
            base_checked: false,
        }
    }

    /// Whether the bundle verified.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

pub(crate) fn read_entry(file: &Source, e: &RawEntry, limit: u64) -> Result<Vec<u8>, String> {
    if e.size > limit {
        return Err(format!("{} bytes, over the {limit} limit", e.size));
    }
    let mut buf = vec![0u8; e.size as usize];
    file.read_exact_at(&mut buf, e.offset)
        .map_err(|err| format!("cannot read: {err}"))?;
    Ok(buf)
}

/// SHA-256 of the `size` bytes at `offset`, read in pieces of `buf`'s
/// length; with `seal`, also the seal of each [`SEAL_CHUNK`] (`buf`'s length
/// must then be a multiple of it), taken from the same bytes while they
/// are in cache.
///
/// Seals must certify the very bytes that were hashed, so they come from
/// this private copy; a check that keeps nothing hashes in place instead
/// (`lanes`).
fn hash_range(
    file: &Source,
    offset: u64,
    size: u64,
    buf: &mut [u8],
    seal: Option<&SealKey>,
    seals: &mut Vec<Seal>,
) -> io::Result<Digest> {
    let mut h = Sha256::new();
    let mut pos = 0u64;
    while pos < size {
        let want = (size - pos).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..want], offset + pos)?;
        h.update(&buf[..want]);
        if let Some(key) = seal {
            // `pos` stays a multiple of the chunk: `buf` is a multiple of it.
            seals.extend(buf[..want].chunks(SEAL_CHUNK as usize).map(|c| key.seal(c)));
        }
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
    /// For a delta: the base bundle, verified with the same key, that
    /// must provide what the delta does not carry.
    pub base: Option<&'a Path>,
}

/// Verifies the bundle at `path`: in steps, its bytes (a file, or its
/// parts checked first), the signed manifest, the signature, every entry
/// against the manifest and hashed, a delta's base, the image list.
pub fn verify(path: &Path, opts: &VerifyOptions<'_>) -> Result<Report, VerifyError> {
    verify_sealing(path, opts, None).map(|(report, _)| report)
}

/// [`verify`], also sealing every entry that verified with `seal`.
pub(crate) fn verify_sealing(
    path: &Path,
    opts: &VerifyOptions<'_>,
    seal: Option<&SealKey>,
) -> Result<(Report, Seals), VerifyError> {
    scan::check_input(path)?;
    let mut report = Report::empty(path, opts);
    let file = match source(path, opts)? {
        Ok(f) => f,
        Err(part_problems) => {
            report.problems = part_problems;
            return Ok((report, Seals::new()));
        }
    };
    let len = file.len();
    let (entries, mut problems) = scan(&file, len);
    let Some((manifest, manifest_bytes)) =
        signed_manifest(&file, &entries, &mut report.manifest_digest, &mut problems)
    else {
        report.problems = problems;
        return Ok((report, Seals::new()));
    };
    let manifest_digest = Digest::of(&manifest_bytes);
    report.name = Some(crate::quote::quote(&manifest.name));
    report.version = Some(crate::quote::quote(&manifest.version));
    let sig_entry = entries
        .get(1)
        .filter(|e| e.path.as_deref() == Ok(SIGNATURE_PATH));
    match check_signature(
        &file,
        sig_entry,
        &manifest,
        &manifest_bytes,
        &manifest_digest,
        opts,
    ) {
        Ok(status) => report.signature = status,
        Err(p) => problems.push(p),
    }
    let skip = if sig_entry.is_some() { 2 } else { 1 };
    let jobs = entries_against_manifest(
        &entries[skip.min(entries.len())..],
        &manifest,
        len,
        &mut problems,
    );
    let (mut verified, failures, seals) = hash_all(&file, jobs, opts.threads, seal);
    problems.extend(failures);
    report.entries_checked = verified.len();
    report.bytes_checked = verified.values().sum();
    // A delta: what the base provides, checked in the base when given.
    report.base = manifest.base.clone();
    report.from_base = manifest
        .entries
        .iter()
        .filter(|e| e.from_base)
        .map(|e| e.path.clone())
        .collect();
    if let (Some(b), Some(base_path)) = (&manifest.base, opts.base) {
        let before = problems.len();
        problems.extend(check_base(b, &manifest, base_path, opts)?);
        report.base_checked = problems.len() == before;
        if report.base_checked {
            for e in manifest.entries.iter().filter(|e| e.from_base) {
                verified.insert(e.path.clone(), e.size);
            }
        }
    }
    if verified.contains_key(IMAGES_PATH) {
        let seen = images::Seen {
            file: &file,
            entries: &entries,
            verified: &verified,
            from_base: &report.from_base,
        };
        report.images = image_list(&seen, &manifest, &mut problems);
    }
    report.problems = problems;
    Ok((report, seals))
}

/// The bundle's bytes: the file, or a first part read with its parts in
/// place, each of them checked (signed list, sizes, digests) before any
/// entry is read; `Err` holds the parts' problems.
fn source(
    path: &Path,
    opts: &VerifyOptions<'_>,
) -> Result<Result<Source, Vec<Problem>>, VerifyError> {
    let Some(list) = crate::bundle::split::list_for(path) else {
        return Source::file(path)
            .map(Ok)
            .map_err(|source| VerifyError::Io {
                path: path.to_owned(),
                source,
            });
    };
    Ok(
        crate::bundle::split::open_checked(&list, opts.key, opts.allow_unsigned).map_err(|parts| {
            parts
                .into_iter()
                .map(|p| Problem::new(&p.file, p.message))
                .collect()
        }),
    )
}

/// The signed manifest, which must come first, with its bytes; its fields
/// that reach paths and commands at install are checked even when the
/// signature holds (the signer may be the attacker). The digest of its
/// bytes goes into `digest` as soon as they are read.
fn signed_manifest(
    file: &Source,
    entries: &[RawEntry],
    digest: &mut Option<Digest>,
    problems: &mut Vec<Problem>,
) -> Option<(Manifest, Vec<u8>)> {
    let Some(first) = entries
        .first()
        .filter(|e| e.path.as_deref() == Ok(MANIFEST_PATH))
    else {
        problems.push(Problem::new(
            "bundle",
            format!("the first entry is not `{MANIFEST_PATH}`: not a bale bundle"),
        ));
        return None;
    };
    let parsed = read_entry(file, first, MAX_MANIFEST_BYTES).and_then(|bytes| {
        *digest = Some(Digest::of(&bytes));
        std::str::from_utf8(&bytes)
            .map_err(|_| "not UTF-8".to_owned())
            .and_then(Manifest::parse)
            .map(|m| (m, bytes.clone()))
    });
    let (manifest, bytes) = match parsed {
        Ok(m) => m,
        Err(m) => {
            problems.push(Problem::new(MANIFEST_PATH, m));
            return None;
        }
    };
    for m in crate::bundle::checks::manifest(&manifest) {
        problems.push(Problem::new(MANIFEST_PATH, m));
    }
    for e in &manifest.entries {
        if let Err(m) = validate::entry_path(&e.path) {
            problems.push(Problem::new(
                &e.path,
                format!("listed in the manifest: {m}"),
            ));
        }
    }
    Some((manifest, bytes))
}

/// A file entry to hash: name, offset, size and the digest it must have.
type HashJob = (String, u64, u64, Digest);

/// Every entry after the manifest and signature: listed once, plain, a
/// regular file (or a directory of a listed path), of its listed size;
/// and every listed entry present. Returns what is to be hashed.
fn entries_against_manifest(
    entries: &[RawEntry],
    manifest: &Manifest,
    len: u64,
    problems: &mut Vec<Problem>,
) -> Vec<HashJob> {
    let listed: BTreeMap<&str, &bundle::ManifestEntry> = manifest
        .entries
        .iter()
        .map(|e| (e.path.as_str(), e))
        .collect();
    if listed.len() != manifest.entries.len() {
        problems.push(Problem::new(MANIFEST_PATH, "lists an entry twice".into()));
    }
    let dirs: BTreeSet<String> = manifest
        .entries
        .iter()
        .flat_map(|e| {
            let parts: Vec<&str> = e.path.split('/').collect();
            (1..parts.len()).map(move |i| parts[..i].join("/"))
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut jobs = Vec::new();
    for e in entries {
        let name = match &e.path {
            Ok(p) => p.clone(),
            Err(lossy) => {
                problems.push(Problem::new(lossy, "path is not UTF-8".into()));
                continue;
            }
        };
        match entry_job(e, &name, &listed, &dirs, &mut seen, len) {
            Ok(Some(job)) => jobs.push(job),
            Ok(None) => {}
            Err(why) => problems.push(Problem::new(&name, why)),
        }
    }
    for m in &manifest.entries {
        if !seen.contains(&m.path) && !m.from_base {
            problems.push(Problem::new(&m.path, "missing from the bundle".into()));
        }
    }
    jobs
}

/// One entry against the manifest: a job to hash it, nothing to do (a
/// listed directory, a truncated entry scan reported), or why it is refused.
fn entry_job(
    e: &RawEntry,
    name: &str,
    listed: &BTreeMap<&str, &bundle::ManifestEntry>,
    dirs: &BTreeSet<String>,
    seen: &mut BTreeSet<String>,
    len: u64,
) -> Result<Option<HashJob>, String> {
    validate::entry_path(name.trim_end_matches('/'))?;
    if !seen.insert(name.to_owned()) {
        return Err("duplicate entry".into());
    }
    if e.kind.is_dir() {
        if !dirs.contains(name.trim_end_matches('/')) {
            return Err("directory not in the manifest".into());
        }
        return Ok(None);
    }
    if !e.kind.is_file() {
        return Err(format!(
            "refused: entry type {:?}; only regular files and directories are allowed",
            e.kind
        ));
    }
    if name == MANIFEST_PATH || name == SIGNATURE_PATH {
        return Err("appears again later in the bundle".into());
    }
    let Some(m) = listed.get(name) else {
        return Err("not in the manifest".into());
    };
    if m.from_base {
        return Err("carried, although the manifest says the base provides it".into());
    }
    if m.size != e.size {
        return Err(format!(
            "size {} differs from the manifest's {}",
            e.size, m.size
        ));
    }
    if let Some(hex) = name.strip_prefix("blobs/sha256/")
        && hex != m.sha256.hex()
    {
        return Err(format!(
            "a blob named by one digest listed with another ({})",
            m.sha256
        ));
    }
    if e.offset + e.size > len {
        return Ok(None); // reported by scan as truncated
    }
    Ok(Some((name.to_owned(), e.offset, e.size, m.sha256.clone())))
}

/// The image list, once its own digest checked out: its fields checked
/// and each image's status.
fn image_list(
    seen: &images::Seen<'_>,
    manifest: &Manifest,
    problems: &mut Vec<Problem>,
) -> Vec<ImageStatus> {
    let Some(e) = seen
        .entries
        .iter()
        .find(|e| e.path.as_deref() == Ok(IMAGES_PATH))
    else {
        return Vec::new();
    };
    match read_entry(seen.file, e, MAX_MANIFEST_BYTES)
        .and_then(|b| serde_json::from_slice::<ImagesFile>(&b).map_err(|e| e.to_string()))
    {
        Ok(images) => {
            for m in crate::bundle::checks::images_file(&images, manifest) {
                problems.push(Problem::new(IMAGES_PATH, m));
            }
            let (statuses, found) = images::statuses(seen, images.images);
            problems.extend(found);
            statuses
        }
        Err(m) => {
            problems.push(Problem::new(IMAGES_PATH, m));
            Vec::new()
        }
    }
}

/// Verifies `base_path` as the base `b` of the delta `manifest`: the
/// whole base with the same key, that it is the base the delta names, and
/// that it lists every entry the delta leaves to it with the same digest.
fn check_base(
    b: &bundle::BaseRef,
    manifest: &Manifest,
    base_path: &Path,
    opts: &VerifyOptions<'_>,
) -> Result<Vec<Problem>, VerifyError> {
    let base_opts = VerifyOptions {
        key: opts.key,
        allow_unsigned: opts.allow_unsigned,
        threads: opts.threads,
        base: None,
    };
    let r = verify(base_path, &base_opts)?;
    let mut problems: Vec<Problem> = r
        .problems
        .into_iter()
        .map(|p| Problem {
            entry: format!("base {}", p.entry),
            message: p.message,
        })
        .collect();
    if r.manifest_digest.as_ref() != Some(&b.manifest) {
        problems.push(Problem::new(
            "base",
            format!(
                "{} is {} {} (manifest {}); this delta needs {} {} (manifest {})",
                base_path.display(),
                r.name.as_deref().unwrap_or("?"),
                r.version.as_deref().unwrap_or("?"),
                r.manifest_digest.map_or("none".into(), |d| d.to_string()),
                crate::quote::quote(&b.name),
                crate::quote::quote(&b.version),
                b.manifest
            ),
        ));
        return Ok(problems);
    }
    let (base_manifest, _) = inspect::manifest_of(base_path).map_err(|e| VerifyError::Io {
        path: base_path.to_owned(),
        source: io::Error::other(e.to_string()),
    })?;
    for e in manifest.entries.iter().filter(|e| e.from_base) {
        if !base_manifest.carries(&e.path, &e.sha256, e.size) {
            problems.push(Problem::new(
                &e.path,
                "left to the base, which does not carry it with this digest".into(),
            ));
        }
    }
    Ok(problems)
}

/// The signature's verdict: `verified`, `unsigned` or `unchecked` (as
/// `opts` allow), or the problem with it.
pub(super) fn check_signature(
    file: &Source,
    sig_entry: Option<&RawEntry>,
    manifest: &Manifest,
    manifest_bytes: &[u8],
    manifest_digest: &Digest,
    opts: &VerifyOptions<'_>,
) -> Result<&'static str, Problem> {
    let problem = |entry: &str, message: String| Problem::new(entry, message);
    match (sig_entry, opts.key) {
        (None, _) if opts.allow_unsigned => Ok("unsigned"),
        (None, _) => Err(problem(
            SIGNATURE_PATH,
            "missing: the bundle is unsigned. Build it with --sign-key; bale install takes signed bundles only (`bale verify --allow-unsigned` checks the digests of an unsigned one)".into(),
        )),
        // Asked to check digests only: a signature present stays unchecked.
        (Some(_), None) if opts.allow_unsigned => Ok("unchecked"),
        (Some(_), None) => Err(problem(
            SIGNATURE_PATH,
            "no public key given to check it: pass --public-key".into(),
        )),
        (Some(s), Some(key)) => {
            let comment = read_entry(file, s, 64 * 1024)
                .and_then(|b| String::from_utf8(b).map_err(|_| "not UTF-8".into()))
                .and_then(|text| key.verify(manifest_bytes, &text))
                .map_err(|m| {
                    problem(
                        MANIFEST_PATH,
                        format!("signature check failed ({SIGNATURE_PATH}): {m}"),
                    )
                })?;
            match bundle::parse_trusted_comment(&comment) {
                Some((n, v, d))
                    if n == manifest.name
                        && v == manifest.version
                        && d == manifest_digest.to_string() =>
                {
                    Ok("verified")
                }
                _ => Err(problem(
                    SIGNATURE_PATH,
                    format!(
                        "the signed trusted comment `{}` does not name this manifest ({} {} {manifest_digest})",
                        crate::quote::quote(&comment),
                        crate::quote::quote(&manifest.name),
                        crate::quote::quote(&manifest.version)
                    ),
                )),
            }
        }
    }
}

/// Hashes every job (name, offset, size, digest), largest first, on every
/// core (or `threads`); returns the entries that verified, with their
/// sizes, and a problem for each that did not.
fn hash_all(
    file: &Source,
    mut jobs: Vec<(String, u64, u64, Digest)>,
    threads: usize,
    seal: Option<&SealKey>,
) -> (BTreeMap<String, u64>, Vec<Problem>, Seals) {
    jobs.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        threads
    };
    let outcomes = Outcomes::default();
    let seals = match seal {
        None => {
            // Nothing kept: hashed in place, two entries at a time per core.
            let spans: Vec<lanes::Span> = jobs.iter().map(|j| (j.1, j.2)).collect();
            let fallback = |i: usize| {
                let (_, offset, size, _) = &jobs[i];
                let mut buf = vec![0u8; 1 << 20];
                hash_range(file, *offset, *size, &mut buf, None, &mut Vec::new())
            };
            let done = |i: usize, result| {
                outcomes.record(&jobs[i], result);
            };
            lanes::hash(file, &spans, threads, &fallback, &done);
            Seals::new()
        }
        Some(key) => hash_sealing(file, &jobs, threads, key, &outcomes),
    };
    let mut failures = outcomes.failures.into_inner().unwrap_or_default();
    failures.sort_by(|a, b| a.entry.cmp(&b.entry));
    (
        outcomes.verified.into_inner().unwrap_or_default(),
        failures,
        seals,
    )
}

/// What hashing found, entry by entry, from every thread.
#[derive(Default)]
struct Outcomes {
    verified: Mutex<BTreeMap<String, u64>>,
    failures: Mutex<Vec<Problem>>,
}

impl Outcomes {
    /// Records `job`'s result: verified, or a problem saying why not.
    /// Returns whether it verified.
    fn record(&self, job: &HashJob, result: io::Result<Digest>) -> bool {
        let (name, _, size, want) = job;
        let message = match result {
            Ok(d) if &d == want => {
                if let Ok(mut v) = self.verified.lock() {
                    v.insert(name.clone(), *size);
                }
                return true;
            }
            Ok(d) => format!("content hashes to {d}, the manifest says {want}"),
            Err(e) => format!("cannot read: {e}"),
        };
        if let Ok(mut f) = self.failures.lock() {
            f.push(Problem {
                entry: name.clone(),
                message,
            });
        }
        false
    }
}

/// [`hash_all`] for a bundle opened to act on: each entry read into a
/// buffer of the thread's own and sealed with `key` from it as it is
/// hashed. Returns the seals of the entries that verified.
fn hash_sealing(
    file: &Source,
    jobs: &[HashJob],
    threads: usize,
    key: &SealKey,
    outcomes: &Outcomes,
) -> Seals {
    let next = AtomicUsize::new(0);
    let sealed = Mutex::new(Seals::new());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, 64).min(jobs.len().max(1)) {
            s.spawn(|| {
                // A multiple of SEAL_CHUNK.
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(job @ (name, offset, size, _)) = jobs.get(i) else {
                        return;
                    };
                    let mut seals = Vec::new();
                    let result = hash_range(file, *offset, *size, &mut buf, Some(key), &mut seals);
                    if outcomes.record(job, result)
                        && let Ok(mut t) = sealed.lock()
                    {
                        t.insert(name.clone(), seals.into());
                    }
                }
            });
        }
    });
    sealed.into_inner().unwrap_or_default()
}

/// The seals of each entry that verified, by name: see [`SealKey`].
pub type Seals = BTreeMap<String, std::sync::Arc<[Seal]>>;
