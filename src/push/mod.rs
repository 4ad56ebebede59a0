//! `bale push`: every image of a verified bundle into an existing registry
//! (distribution, Harbor, …), byte for byte, so that every digest stays.
//!
//! Each blob is skipped when the registry has it, else uploaded (in one
//! PUT when it fits in a chunk, else in chunks: POST, PATCH…, PUT) into
//! the first repository that needs it. A blob over 1 MiB is asked for by
//! a HEAD first; a smaller one by the POST that opens its upload, which
//! names it as a mount (from its own repository: a registry that mounts
//! answers 201 when it has it there), one request instead of two.
//! Uploads go largest first across all repositories; then each blob is
//! mounted into the other repositories that need it, where the registry
//! allows (a blob found there already is counted as mounted too). A chunk
//! that fails (a cut connection, a 5xx) is not resent blindly: the
//! registry is asked how much it holds (GET on the upload) and the upload
//! goes on from there, or starts again where the registry dropped it.
//! Manifests go last, children before the index that names them, as
//! their stored bytes.

use std::collections::BTreeMap;

use crate::catalog::{Catalog, CatalogError, Span};
use crate::digest::Digest;
use crate::manifest::{self, Parsed};
use crate::reference::Reference;
use crate::registry::{Endpoint, Payload, RegistryClient, RegistryError, header};
use crate::verify::{OpenBundle, OpenError};

mod upload;

/// Blobs uploaded at once: a push waits on the registry's round trips and
/// its hashing, not on bale's reads.
const PARALLEL_BLOBS: usize = 8;

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The bundle did not verify, or could not be read.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The bundle cannot be pushed as a registry's content.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The CA certificate file is unusable.
    #[error("{}: {message}", path.display())]
    Ca {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `--to` is not `REGISTRY[/PREFIX]`.
    #[error("--to {0}: write REGISTRY[/PREFIX], e.g. registry.site:5000/borgstack")]
    Target(String),
    /// The registry failed or refused.
    #[error("{what}: {source}")]
    Registry {
        /// What was being pushed.
        what: String,
        /// The registry's error.
        source: RegistryError,
    },
    /// The registry keeps accepting chunks without taking them.
    #[error(
        "{what}: the registry confirmed only {confirmed} of the {sent} bytes sent, {tries} times in a row; giving up on this blob"
    )]
    Stalled {
        /// What was pushed.
        what: String,
        /// Bytes sent so far.
        sent: u64,
        /// Bytes the registry last said it has.
        confirmed: u64,
        /// Answers in a row that confirmed less than was sent.
        tries: u32,
    },
    /// The registry stored something under another digest than bale sent.
    #[error("{what}: the registry reports digest {got}, not {want}: it did not keep the bytes")]
    Digest {
        /// What was pushed.
        what: String,
        /// The digest sent.
        want: Digest,
        /// The digest reported.
        got: String,
    },
}

/// How a blob reached the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobHow {
    /// The registry had it already.
    Present,
    /// Mounted from another repository of the registry.
    Mounted,
    /// Uploaded.
    Uploaded,
}

/// What a push reports while it runs; as JSON, an object whose `event`
/// names the kind.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum PushEvent {
    /// A blob is being uploaded: `sent` of `size` bytes so far.
    Progress {
        /// The blob.
        digest: Digest,
        /// Bytes the registry has confirmed.
        sent: u64,
        /// Its size.
        size: u64,
    },
    /// A chunk failed; the upload goes on from `offset`.
    Resumed {
        /// The blob.
        digest: Digest,
        /// Where the upload continues (0: started again).
        offset: u64,
        /// Why the chunk failed.
        reason: String,
    },
    /// A blob is in place.
    Blob {
        /// Target repository.
        repository: String,
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
        /// How.
        how: BlobHow,
    },
    /// A manifest is in place, by digest or by tag.
    Manifest {
        /// `REGISTRY/REPO:TAG` or `REGISTRY/REPO@DIGEST`.
        reference: String,
        /// What it names.
        digest: Digest,
        /// Whether it was already there.
        present: bool,
    },
}

/// One pushed image (a name and tag of the bundle).
#[derive(Clone, Debug, serde::Serialize)]
pub struct PushedImage {
    /// The canonical name in the bundle.
    pub name: String,
    /// Where it went: `REGISTRY/PREFIX/REPO:TAG`.
    pub target: String,
    /// What the target tag names now.
    pub digest: Digest,
    /// The platform manifests pushed by digest.
    pub manifests: Vec<Digest>,
    /// The multi-platform index, when the tag named one upstream: pushed,
    /// or why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
}

/// The whole push.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PushReport {
    /// `REGISTRY[/PREFIX]`.
    pub to: String,
    /// Each image.
    pub images: Vec<PushedImage>,
    /// Blobs the registry had.
    pub blobs_present: usize,
    /// Blobs mounted from another repository.
    pub blobs_mounted: usize,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Bytes uploaded (what the registry confirmed).
    pub bytes_uploaded: u64,
    /// Chunks that failed and were resumed or restarted.
    pub resumes: u32,
}

/// How to push.
#[derive(Clone, Debug)]
pub struct PushOptions {
    /// `REGISTRY[/PREFIX]`.
    pub to: String,
    /// Bytes per PATCH of an upload.
    pub chunk: u64,
}

/// Splits `REGISTRY[/PREFIX]`.
pub fn parse_target(to: &str) -> Result<(String, String), PushError> {
    let t = to.trim_end_matches('/');
    let (host, prefix) = t.split_once('/').unwrap_or((t, ""));
    let bad = || PushError::Target(crate::quote::quote(to));
    if host.is_empty() || host.contains(['@', ' ']) {
        return Err(bad());
    }
    // The prefix must be a valid repository path: check it as one.
    if !prefix.is_empty() {
        let probe = format!("{host}/{prefix}/x:1");
        let r: Reference = probe.parse().map_err(|_| bad())?;
        if r.domain != host {
            return Err(bad());
        }
    }
    Ok((host.to_owned(), prefix.to_owned()))
}

fn reg_err(what: impl Into<String>) -> impl FnOnce(RegistryError) -> PushError {
    let what = what.into();
    move |source| PushError::Registry { what, source }
}

struct Pusher<'a> {
    client: &'a RegistryClient,
    /// The verified bundle, whose sealed entries are sent.
    bundle: &'a OpenBundle,
    ep: Endpoint,
    host: String,
    chunk: u64,
    events: &'a (dyn Fn(PushEvent) + Sync),
    report: PushReport,
    /// Blob → a repository of this registry known to hold it.
    holders: BTreeMap<Digest, String>,
}

/// A registry client from `settings`, trusting only the PEM CA
/// certificate(s) in `ca` when given (a site's own CA).
pub fn client_with_ca(
    settings: crate::config::Settings,
    ca: Option<&std::path::Path>,
) -> Result<RegistryClient, PushError> {
    let retry = crate::registry::RetryPolicy::default();
    let Some(ca) = ca else {
        return Ok(RegistryClient::new(settings, retry));
    };
    let bad = |message: String| PushError::Ca {
        path: ca.to_owned(),
        message,
    };
    let pem = std::fs::read(ca).map_err(|e| bad(e.to_string()))?;
    RegistryClient::with_ca(settings, retry, &pem).map_err(bad)
}

/// Verifies the bundle at `path` with `key`, then pushes it with a client
/// made from `settings` (trusting only the CA in `ca`, if given).
pub fn push_file(
    path: &std::path::Path,
    key: &crate::sign::VerifyingKey,
    settings: crate::config::Settings,
    ca: Option<&std::path::Path>,
    opts: &PushOptions,
    events: &(dyn Fn(PushEvent) + Sync),
) -> Result<PushReport, PushError> {
    let client = client_with_ca(settings, ca)?;
    // The target is checked before the (long) verification.
    parse_target(&opts.to)?;
    let bundle = OpenBundle::open(path, key)?;
    push(&bundle, &client, opts, events)
}

/// Pushes every image of `bundle` (already verified) to `opts.to`.
pub fn push(
    bundle: &OpenBundle,
    client: &RegistryClient,
    opts: &PushOptions,
    events: &(dyn Fn(PushEvent) + Sync),
) -> Result<PushReport, PushError> {
    let (host, prefix) = parse_target(&opts.to)?;
    let catalog = Catalog::of(bundle)?;
    let mut p = Pusher {
        client,
        bundle,
        ep: client.push_endpoint(&host),
        host: host.clone(),
        chunk: opts.chunk.max(64 * 1024),
        events,
        report: PushReport {
            to: opts.to.clone(),
            ..PushReport::default()
        },
        holders: BTreeMap::new(),
    };
    // The platform a runtime gets first, per served name and tag: what the
    // tag names where the index cannot be pushed.
    let mut first: BTreeMap<(String, String), Digest> = BTreeMap::new();
    for r in &bundle.images.images {
        if let Ok(key) = crate::catalog::served_name(&r.name) {
            first.entry(key).or_insert_with(|| r.manifest.clone());
        }
    }
    let (uploads, mounts) = schedule(&catalog, &prefix);
    p.blobs(&uploads)?;
    p.blobs(&mounts)?;
    let images = p.manifests(&catalog, &prefix, &first)?;
    p.report.images = images;
    Ok(p.report)
}

/// Runs `work` on `n` threads at once; each one's result, a panic as an error.
fn on_workers<T: Send>(
    n: usize,
    work: impl Fn() -> Result<T, PushError> + Sync,
) -> Vec<Result<T, PushError>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n).map(|_| s.spawn(&work)).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(PushError::Target(
                        "a push worker stopped unexpectedly".into(),
                    ))
                })
            })
            .collect()
    })
}

/// The repository `name` of the bundle goes to under `prefix`.
fn target_of(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

/// One blob to put into one repository.
type Job<'c> = (String, &'c Digest, Span);

/// The order of a push's blobs: each blob once, into the first repository
/// that needs it, largest first across all repositories (the registry's
/// hashing and writing then keeps every core busy, not one repository's
/// largest layer at a time); then every other repository's copy, which the
/// registry mounts from the first without a byte sent.
fn schedule<'c>(catalog: &'c Catalog, prefix: &str) -> (Vec<Job<'c>>, Vec<Job<'c>>) {
    let mut uploads: Vec<Job<'c>> = Vec::new();
    let mut mounts: Vec<Job<'c>> = Vec::new();
    let mut homed: std::collections::BTreeSet<&Digest> = std::collections::BTreeSet::new();
    for (name, repo) in &catalog.repositories {
        for (d, span) in repo
            .blobs
            .iter()
            .filter_map(|d| catalog.blobs.get_key_value(d))
        {
            let job = (target_of(prefix, name), d, *span);
            if homed.insert(d) {
                uploads.push(job);
            } else {
                mounts.push(job);
            }
        }
    }
    uploads.sort_by(|a, b| b.2.size.cmp(&a.2.size).then(a.1.cmp(b.1)));
    (uploads, mounts)
}

impl<'a> Pusher<'a> {
    fn url(&self, repo: &str, rest: &str) -> String {
        format!("{}/v2/{repo}/{rest}", self.ep.base())
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            format!("{}{location}", self.ep.base())
        }
    }

    /// One tag: its platform manifests by digest, then the index (if the
    /// bundle holds every manifest it names), then the tag.
    fn image(
        &self,
        catalog: &Catalog,
        target: &str,
        name: &str,
        tag: &str,
        top: &Digest,
        first: Option<&Digest>,
    ) -> Result<PushedImage, PushError> {
        let stored = catalog
            .manifests
            .get(top)
            .ok_or_else(|| PushError::Target(format!("{name}:{tag} has no manifest")))?;
        let repo = &catalog.repositories[name];
        let mut pushed = Vec::new();
        let mut index = None;
        let mut tag_names = top.clone();
        if let Ok((_, Parsed::Index { manifests })) =
            manifest::parse(&stored.bytes, Some(&stored.media_type))
        {
            let missing = manifests
                .iter()
                .filter(|m| !repo.manifests.contains(&m.digest))
                .count();
            for m in manifests
                .iter()
                .filter(|m| repo.manifests.contains(&m.digest))
            {
                self.manifest(catalog, target, &m.digest.to_string(), &m.digest)?;
                pushed.push(m.digest.clone());
            }
            if missing == 0 {
                self.manifest(catalog, target, &top.to_string(), top)?;
                index = Some(format!("pushed {top}"));
            } else {
                // A registry refuses an index whose manifests it lacks, and
                // a rewritten index would have another digest: the tag
                // names the first platform's manifest instead.
                tag_names = first.cloned().unwrap_or_else(|| pushed[0].clone());
                index = Some(format!(
                    "not pushed: {top} names {missing} manifest(s) the bundle does not hold (platforms not locked, or attestations left out); the tag names the {} manifest",
                    if first.is_some() {
                        "first platform's"
                    } else {
                        "first"
                    }
                ));
            }
        } else {
            pushed.push(top.clone());
        }
        self.manifest(catalog, target, tag, &tag_names)?;
        Ok(PushedImage {
            name: name.to_owned(),
            target: format!("{}/{target}:{tag}", self.host),
            digest: tag_names,
            manifests: pushed,
            index,
        })
    }

    /// Puts manifest `digest` under `reference` (a tag or the digest),
    /// unless the registry already has it there.
    fn manifest(
        &self,
        catalog: &Catalog,
        repo: &str,
        reference: &str,
        digest: &Digest,
    ) -> Result<(), PushError> {
        let m = catalog
            .manifests
            .get(digest)
            .ok_or_else(|| PushError::Target(format!("no manifest {digest}")))?;
        let url = self.url(repo, &format!("manifests/{reference}"));
        let shown = if reference.contains(':') {
            format!("{}/{repo}@{reference}", self.host)
        } else {
            format!("{}/{repo}:{reference}", self.host)
        };
        let accept = [("accept", m.media_type.clone())];
        let present =
            match self
                .client
                .send(&self.ep, repo, "HEAD", &url, &accept, &Payload::Empty, true)
            {
                Ok(resp) => {
                    header(&resp, "docker-content-digest").as_deref() == Some(&digest.to_string())
                }
                Err(RegistryError::NotFound { .. }) => false,
                Err(e) => return Err(reg_err(shown)(e)),
            };
        if !present {
            self.put_checked(
                repo,
                &url,
                &[("content-type", m.media_type.clone())],
                &Payload::Bytes(&m.bytes),
                digest,
                &shown,
            )?;
        }
        (self.events)(PushEvent::Manifest {
            reference: shown,
            digest: digest.clone(),
            present,
        });
        Ok(())
    }

    /// Every repository's manifests and tags, [`PARALLEL_BLOBS`]
    /// repositories at a time, each repository's in order (platform
    /// manifests, the index, the tag); the images in catalog order.
    fn manifests(
        &self,
        catalog: &Catalog,
        prefix: &str,
        first: &BTreeMap<(String, String), Digest>,
    ) -> Result<Vec<PushedImage>, PushError> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let repos: Vec<(&String, &crate::catalog::Repository)> =
            catalog.repositories.iter().collect();
        let next = AtomicUsize::new(0);
        // Each worker: (repository's place, its images in tag order).
        let work = || -> Result<Vec<(usize, Vec<PushedImage>)>, PushError> {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((name, repo)) = repos.get(i) else {
                    return Ok(done);
                };
                let target = target_of(prefix, name);
                let mut images = Vec::new();
                for (tag, top) in &repo.tags {
                    let key = ((*name).clone(), tag.clone());
                    images.push(self.image(catalog, &target, name, tag, top, first.get(&key))?);
                }
                done.push((i, images));
            }
        };
        let results = on_workers(PARALLEL_BLOBS.min(repos.len()), work);
        let mut by_repo = Vec::new();
        for r in results {
            by_repo.extend(r?);
        }
        by_repo.sort_by_key(|(i, _)| *i);
        Ok(by_repo.into_iter().flat_map(|(_, images)| images).collect())
    }

    /// Puts every blob of `todo` into its repository, [`PARALLEL_BLOBS`] at
    /// a time; stops at the first failure (the others finish their blob).
    fn blobs(&mut self, todo: &[Job<'_>]) -> Result<(), PushError> {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let base: &Pusher<'_> = self;
        let work = || -> Result<Pusher<'_>, PushError> {
            let mut w = base.worker();
            while !failed.load(Ordering::SeqCst) {
                let Some((repo, d, span)) = todo.get(next.fetch_add(1, Ordering::SeqCst)) else {
                    break;
                };
                if let Err(e) = w.blob(repo, d, *span) {
                    failed.store(true, Ordering::SeqCst);
                    return Err(e);
                }
            }
            Ok(w)
        };
        let results = on_workers(PARALLEL_BLOBS.min(todo.len()), work);
        let mut first_error = None;
        let mut merged = Vec::new();
        for r in results {
            match r {
                Ok(w) => merged.push((w.report, w.holders)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        for (report, holders) in merged {
            self.report.blobs_present += report.blobs_present;
            self.report.blobs_mounted += report.blobs_mounted;
            self.report.blobs_uploaded += report.blobs_uploaded;
            self.report.bytes_uploaded += report.bytes_uploaded;
            self.report.resumes += report.resumes;
            for (d, r) in holders {
                self.holders.entry(d).or_insert(r);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// PUTs `payload` to `url` (a manifest, or an upload's last request)
    /// and checks the digest the registry says it stored, where it says one.
    fn put_checked(
        &self,
        repo: &str,
        url: &str,
        headers: &[(&str, String)],
        payload: &Payload<'_>,
        want: &Digest,
        what: &str,
    ) -> Result<(), PushError> {
        let resp = self
            .client
            .send(&self.ep, repo, "PUT", url, headers, payload, true)
            .map_err(reg_err(what))?;
        stored(&resp, want, what)
    }

    /// A pusher for one worker: the same registry and bundle, its own
    /// counts, and the holders known so far (for mounts).
    fn worker(&self) -> Pusher<'a> {
        Pusher {
            client: self.client,
            bundle: self.bundle,
            ep: self.ep.clone(),
            host: self.host.clone(),
            chunk: self.chunk,
            events: self.events,
            report: PushReport::default(),
            holders: self.holders.clone(),
        }
    }
}

/// Checks the digest a registry says it stored, where it says one.
fn stored(
    resp: &ureq::http::Response<ureq::Body>,
    want: &Digest,
    what: &str,
) -> Result<(), PushError> {
    if let Some(got) = header(resp, "docker-content-digest")
        && got != want.to_string()
    {
        return Err(PushError::Digest {
            what: what.to_owned(),
            want: want.clone(),
            got,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_a_registry_and_an_optional_prefix() {
        assert_eq!(
            parse_target("registry.site:5000/borgstack").ok(),
            Some(("registry.site:5000".into(), "borgstack".into()))
        );
        assert_eq!(
            parse_target("127.0.0.1:5000").ok(),
            Some(("127.0.0.1:5000".into(), String::new()))
        );
        assert!(parse_target("reg/Bad Prefix").is_err());
        assert!(parse_target("").is_err());
    }
}
