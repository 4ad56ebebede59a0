//! `bale fetch`: every locked blob into the store, verified.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::digest::Digest;
use crate::lock::{Blob, Lockfile};
use crate::reference::ImageSource;
use crate::registry::{RegistryClient, RegistryError};
use crate::spec::BundleSpec;
use crate::store::{IngestError, Ingested, OpenError, Store, StoreError};

/// Where a blob is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A registry repository.
    Registry {
        /// Canonical domain.
        domain: String,
        /// Repository path.
        path: String,
    },
    /// A local OCI image layout directory.
    Layout(PathBuf),
}

/// One blob to fetch.
#[derive(Clone, Debug)]
pub struct Job {
    /// The blob.
    pub blob: Blob,
    /// Whether it is a manifest (fetched from `/manifests/`).
    pub is_manifest: bool,
    /// The first service that needs it.
    pub service: String,
    /// Canonical name of that service's image.
    pub image: String,
    /// Where it is read from.
    pub origin: Origin,
}

/// Progress, as it happens. Sent from several threads.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The plan: all blobs, and how many are already in the store.
    Planned {
        /// Blobs in the lock, once each.
        blobs: usize,
        /// Their total size.
        bytes: u64,
        /// Blobs already in the store.
        present: usize,
        /// Their size.
        present_bytes: u64,
    },
    /// A download began.
    Started {
        /// Blob.
        digest: Digest,
        /// Its size.
        size: u64,
        /// Image it belongs to.
        image: String,
    },
    /// Bytes arrived.
    Progress {
        /// Blob.
        digest: Digest,
        /// Bytes in this step.
        bytes: u64,
    },
    /// A blob was stored.
    Finished {
        /// Blob.
        digest: Digest,
        /// Its size.
        size: u64,
        /// Bytes read from the source for it (less than size after a resume).
        transferred: u64,
        /// Image it belongs to.
        image: String,
    },
}

/// Receives [`Event`]s.
pub trait Reporter: Sync {
    /// Called for each event.
    fn event(&self, event: Event);

    /// Called once the work is over, so a display can clear itself.
    fn finish(&self) {}
}

/// A reporter that ignores everything.
pub struct Silent;

impl Reporter for Silent {
    fn event(&self, _: Event) {}
}

/// One blob that could not be fetched. Names image, service and digest.
#[derive(Debug, thiserror::Error)]
#[error("{image} (service `{service}`), blob {digest}: {kind}")]
pub struct BlobError {
    /// Canonical image name.
    pub image: String,
    /// Service.
    pub service: String,
    /// The blob.
    pub digest: Digest,
    /// What failed.
    pub kind: BlobErrorKind,
}

/// Kinds of [`BlobError`].
#[derive(Debug, thiserror::Error)]
pub enum BlobErrorKind {
    /// Registry failure.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Local layout could not be read.
    #[error("{0}")]
    Layout(String),
}

impl BlobError {
    /// Whether the failure is content that does not match its digest or size.
    pub fn is_integrity(&self) -> bool {
        matches!(
            self.kind,
            BlobErrorKind::Store(StoreError::DigestMismatch { .. } | StoreError::TooLong { .. })
        )
    }
}

/// Errors of a fetch.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Blobs failed; each is listed.
    #[error("{} blob(s) could not be fetched:\n{}", .0.len(), .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Blobs(Vec<BlobError>),
}

/// Totals of a fetch.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Blobs in the lock.
    pub blobs: usize,
    /// Their total size.
    pub bytes: u64,
    /// Blobs downloaded now.
    pub downloaded: usize,
    /// Bytes read from sources now.
    pub transferred: u64,
    /// Blobs that were already present.
    pub present: usize,
}

/// Lists the blobs of `lock`, each once, with where to read it.
pub fn plan(spec: &BundleSpec, lock: &Lockfile) -> Vec<Job> {
    let mut jobs: Vec<Job> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for img in &lock.images {
        let Some(image_spec) = spec.image(&img.service) else {
            continue;
        };
        let origin = match &image_spec.source {
            ImageSource::Registry(r) => Origin::Registry {
                domain: r.domain.clone(),
                path: r.path.clone(),
            },
            ImageSource::OciLayout { path, .. } => Origin::Layout(spec.source_path(path)),
        };
        let manifests = img.manifests();
        for blob in img.blobs() {
            if seen.insert(blob.digest.clone()) {
                jobs.push(Job {
                    is_manifest: manifests.contains(&&blob.digest),
                    blob,
                    service: img.service.clone(),
                    image: img.name.clone(),
                    origin: origin.clone(),
                });
            }
        }
    }
    jobs
}

fn open_error(message: String, e: impl std::error::Error + Send + Sync + 'static) -> OpenError {
    OpenError {
        message,
        source: Box::new(e),
    }
}

fn run_job(
    job: &Job,
    store: &Store,
    client: &RegistryClient,
    reporter: &dyn Reporter,
) -> Result<Ingested, BlobErrorKind> {
    let digest = &job.blob.digest;
    let size = job.blob.size;
    if job.is_manifest
        && let Origin::Registry { domain, path } = &job.origin
    {
        let fetched = client.manifest(domain, path, &digest.to_string())?;
        if fetched.bytes.len() as u64 != size {
            let actual = Digest::of(&fetched.bytes);
            return Err(if actual != *digest {
                StoreError::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                    size: fetched.bytes.len() as u64,
                }
            } else {
                StoreError::TooShort {
                    expected: size,
                    got: fetched.bytes.len() as u64,
                }
            }
            .into());
        }
        reporter.event(Event::Progress {
            digest: digest.clone(),
            bytes: size,
        });
        return Ok(store.put_bytes(digest, &fetched.bytes)?);
    }
    let mut open = |offset: u64| -> Result<(Box<dyn Read + Send>, u64), OpenError> {
        match &job.origin {
            Origin::Registry { domain, path } => {
                let body = client
                    .blob(domain, path, &digest.to_string(), offset)
                    .map_err(|e| open_error(e.to_string(), e))?;
                if let Some(len) = body.content_length
                    && body.start + len > size
                {
                    let e = StoreError::TooLong { expected: size };
                    return Err(open_error(
                        format!(
                            "server announces {} bytes from offset {}; {e}",
                            len, body.start
                        ),
                        e,
                    ));
                }
                Ok((body.reader, body.start))
            }
            Origin::Layout(dir) => {
                let p = dir.join("blobs").join("sha256").join(digest.hex());
                let mut f = std::fs::File::open(&p)
                    .map_err(|e| open_error(format!("{}: {e}", p.display()), e))?;
                f.seek(SeekFrom::Start(offset))
                    .map_err(|e| open_error(format!("{}: {e}", p.display()), e))?;
                Ok((Box::new(f), offset))
            }
        }
    };
    let mut progress = |n: u64| {
        reporter.event(Event::Progress {
            digest: digest.clone(),
            bytes: n,
        })
    };
    match store.ingest(digest, size, &mut open, 5, &mut progress) {
        Ok(i) => Ok(i),
        Err(IngestError::Store(e)) => Err(e.into()),
        Err(IngestError::Open { message, source }) => {
            Err(match source.downcast::<RegistryError>() {
                Ok(r) => BlobErrorKind::Registry(*r),
                Err(source) => match source.downcast::<StoreError>() {
                    Ok(s) => BlobErrorKind::Store(*s),
                    Err(_) => BlobErrorKind::Layout(message),
                },
            })
        }
    }
}

/// Fetches `jobs` into `store` with up to `parallel` downloads at once.
/// On the first failure no new download starts; those under way finish, and
/// every failure is returned.
pub fn fetch(
    jobs: &[Job],
    store: &Store,
    client: &RegistryClient,
    parallel: usize,
    reporter: &dyn Reporter,
) -> Result<Summary, FetchError> {
    let present: Vec<bool> = jobs
        .iter()
        .map(|j| store.has(&j.blob.digest, j.blob.size))
        .collect();
    let mut summary = Summary {
        blobs: jobs.len(),
        bytes: jobs.iter().map(|j| j.blob.size).sum(),
        present: present.iter().filter(|p| **p).count(),
        ..Summary::default()
    };
    reporter.event(Event::Planned {
        blobs: summary.blobs,
        bytes: summary.bytes,
        present: summary.present,
        present_bytes: jobs
            .iter()
            .zip(&present)
            .filter(|(_, p)| **p)
            .map(|(j, _)| j.blob.size)
            .sum(),
    });
    // Largest first, so the long downloads overlap the many small ones.
    let mut todo: Vec<&Job> = jobs
        .iter()
        .zip(&present)
        .filter(|(_, p)| !**p)
        .map(|(j, _)| j)
        .collect();
    todo.sort_by(|a, b| {
        b.blob
            .size
            .cmp(&a.blob.size)
            .then(a.blob.digest.cmp(&b.blob.digest))
    });
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let errors = Mutex::new(Vec::new());
    let done = Mutex::new((0usize, 0u64, 0usize));
    std::thread::scope(|s| {
        for _ in 0..parallel.clamp(1, 64).min(todo.len().max(1)) {
            s.spawn(|| {
                loop {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(job) = todo.get(i) else { return };
                    reporter.event(Event::Started {
                        digest: job.blob.digest.clone(),
                        size: job.blob.size,
                        image: job.image.clone(),
                    });
                    match run_job(job, store, client, reporter) {
                        Ok(outcome) => {
                            let transferred = match outcome {
                                Ingested::Written { transferred } => transferred,
                                Ingested::Present => 0,
                            };
                            if let Ok(mut d) = done.lock() {
                                match outcome {
                                    Ingested::Written { .. } => d.0 += 1,
                                    Ingested::Present => d.2 += 1,
                                }
                                d.1 += transferred;
                            }
                            reporter.event(Event::Finished {
                                digest: job.blob.digest.clone(),
                                size: job.blob.size,
                                transferred,
                                image: job.image.clone(),
                            });
                        }
                        Err(kind) => {
                            stop.store(true, Ordering::SeqCst);
                            if let Ok(mut e) = errors.lock() {
                                e.push(BlobError {
                                    image: job.image.clone(),
                                    service: job.service.clone(),
                                    digest: job.blob.digest.clone(),
                                    kind,
                                });
                            }
                        }
                    }
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap_or_default();
    if !errors.is_empty() {
        return Err(FetchError::Blobs(errors));
    }
    let (downloaded, transferred, raced) = done.into_inner().unwrap_or_default();
    summary.downloaded = downloaded;
    summary.transferred = transferred;
    // Another process may have stored some meanwhile.
    summary.present += raced;
    Ok(summary)
}
