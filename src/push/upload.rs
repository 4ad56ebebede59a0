//! One blob into one repository: found there, mounted from a repository
//! this push filled, or uploaded in chunks, each failed chunk taken up
//! again where the registry says it stands.

use std::cell::RefCell;
use std::io::{self, Read};

use ureq::http::Response;

use super::{BlobHow, PushError, PushEvent, Pusher, reg_err, stored};
use crate::catalog::Span;
use crate::digest::Digest;
use crate::registry::{Payload, RegistryError, header};
use crate::verify::OpenError;
use crate::verify::sealed::{ChangedEntry, SealedReader};

/// Chunk failures a blob may survive before the push gives up on it.
const MAX_RESUMES: u32 = 8;
/// Blobs larger than this are asked for (HEAD) before anything else: sent
/// again, such a blob costs more than the question. A smaller one goes
/// straight to the POST that opens its upload, which also asks for it.
const ASK_FIRST_ABOVE: u64 = 1 << 20;
/// Answers in a row that confirm less of a chunk than was sent, before
/// the upload of that blob fails.
const MAX_SHORT_ANSWERS: u32 = 3;

impl Pusher<'_> {
    /// Puts blob `d` into `repo`: present, mounted or uploaded.
    pub(super) fn blob(&mut self, repo: &str, d: &Digest, span: Span) -> Result<(), PushError> {
        let what = format!("{}/{repo}@{d}", self.host);
        let large = span.size > ASK_FIRST_ABOVE;
        if large && self.present(repo, d, &what)? {
            self.done(repo, d, span, BlobHow::Present);
            return Ok(());
        }
        // One request asks for the blob and opens its upload: a mount from
        // the repository that holds it, or from this one when none does
        // yet (a registry that mounts answers 201 when it has the blob
        // there). A large blob the HEAD just missed needs no such question.
        let from = self.holders.get(d).map_or(repo, String::as_str).to_owned();
        let mount = if large && from == repo {
            String::new()
        } else {
            format!("?mount={d}&from={from}")
        };
        let how = match self.open_upload(repo, &mount, &what)? {
            None if from == repo => BlobHow::Present,
            None => BlobHow::Mounted,
            Some(location) => {
                self.upload(repo, d, span, location, &what)?;
                BlobHow::Uploaded
            }
        };
        self.done(repo, d, span, how);
        Ok(())
    }

    /// Whether the registry has blob `d` in `repo` (HEAD).
    fn present(&self, repo: &str, d: &Digest, what: &str) -> Result<bool, PushError> {
        let head = self.client.send(
            &self.ep,
            repo,
            "HEAD",
            &self.url(repo, &format!("blobs/{d}")),
            &[],
            &Payload::Empty,
            true,
        );
        match head {
            Ok(_) => Ok(true),
            Err(RegistryError::NotFound { .. }) => Ok(false),
            Err(e) => Err(reg_err(what)(e)),
        }
    }

    /// Counts blob `d`, put into `repo` as `how`, and says so.
    fn done(&mut self, repo: &str, d: &Digest, span: Span, how: BlobHow) {
        match how {
            BlobHow::Present => self.report.blobs_present += 1,
            BlobHow::Mounted => self.report.blobs_mounted += 1,
            BlobHow::Uploaded => self.report.blobs_uploaded += 1,
        }
        self.holders
            .entry(d.clone())
            .or_insert_with(|| repo.to_owned());
        (self.events)(PushEvent::Blob {
            repository: repo.to_owned(),
            digest: d.clone(),
            size: span.size,
            how,
        });
    }

    /// The upload of `d` at `location`: whole, or in chunks, resumed where
    /// a chunk fails.
    fn upload(
        &mut self,
        repo: &str,
        d: &Digest,
        span: Span,
        mut location: String,
        what: &str,
    ) -> Result<(), PushError> {
        let mut offset = 0u64;
        let mut failures = 0u32;
        let mut short = 0u32;
        let sent = RefCell::new(Sent::new(self.bundle.sealed(&d.blob_path())?));
        if span.size <= self.chunk {
            match self.whole(repo, d, span, &sent, &location, what)? {
                None => return Ok(()),
                Some(at) => {
                    failures = 1;
                    (location, offset) = at;
                }
            }
        }
        while offset < span.size {
            let len = (span.size - offset).min(self.chunk);
            let end = offset + len - 1;
            let url = self.absolute(&location);
            let sent = &sent;
            let open = move || -> io::Result<Box<dyn Read + '_>> {
                sent.borrow_mut().seek(offset);
                Ok(Box::new(SentReader { sent, left: len }))
            };
            let answer = self.client.send(
                &self.ep,
                repo,
                "PATCH",
                &url,
                &[
                    ("content-type", "application/octet-stream".into()),
                    ("content-range", format!("{offset}-{end}")),
                ],
                &Payload::Reader { open: &open, len },
                false,
            );
            match answer {
                Ok(resp) => {
                    location = header(&resp, "location").unwrap_or(location);
                    let next = confirmed(&resp).unwrap_or(end + 1).min(end + 1);
                    // A registry that confirms less than it was sent is
                    // answered by sending the rest again, a few times: one
                    // that never takes all of a chunk would be sent the
                    // same bytes without end.
                    if next < end + 1 {
                        short += 1;
                        if short >= MAX_SHORT_ANSWERS {
                            return Err(PushError::Stalled {
                                what: what.to_owned(),
                                sent: end + 1,
                                confirmed: next,
                                tries: short,
                            });
                        }
                    } else {
                        short = 0;
                    }
                    offset = next;
                    self.report.bytes_uploaded += len;
                    (self.events)(PushEvent::Progress {
                        digest: d.clone(),
                        sent: offset,
                        size: span.size,
                    });
                }
                Err(_) if sent.borrow().changed => return Err(self.cancel(repo, &url, d)),
                Err(e) if failures < MAX_RESUMES && resumable(&e) => {
                    failures += 1;
                    (location, offset) = self.resume(repo, d, &url, failures, &e, what)?;
                }
                Err(e) => return Err(reg_err(what)(e)),
            }
        }
        self.close(repo, d, &sent, &location, what)
    }

    /// Closes the upload at `location` of blob `d`, unless a chunk of it
    /// was found changed since verification. Every byte the registry holds
    /// came from a chunk that matched its seal; the registry checks the
    /// whole against `d` as it closes the upload.
    fn close(
        &self,
        repo: &str,
        d: &Digest,
        sent: &RefCell<Sent>,
        location: &str,
        what: &str,
    ) -> Result<(), PushError> {
        let url = self.absolute(location);
        self.checked(repo, d, sent, &url)?;
        self.put_checked(repo, &with_digest(&url, d), &[], &Payload::Empty, d, what)
    }

    /// Fails, cancelling the upload at `url`, when a chunk of blob `d` was
    /// found changed since verification.
    fn checked(
        &self,
        repo: &str,
        d: &Digest,
        sent: &RefCell<Sent>,
        url: &str,
    ) -> Result<(), PushError> {
        if sent.borrow().changed {
            Err(self.cancel(repo, url, d))
        } else {
            Ok(())
        }
    }

    /// A blob that fits in one chunk, in one request (the spec's POST then
    /// PUT): most blobs of a stack are configs and small layers, and each
    /// PATCH costs the registry a request and a saved hash state. `None`
    /// when the registry took it; else where the upload stands, to go on
    /// in chunks.
    fn whole(
        &mut self,
        repo: &str,
        d: &Digest,
        span: Span,
        sent: &RefCell<Sent>,
        location: &str,
        what: &str,
    ) -> Result<Option<(String, u64)>, PushError> {
        let url = self.absolute(location);
        let open = move || -> io::Result<Box<dyn Read + '_>> {
            sent.borrow_mut().seek(0);
            Ok(Box::new(SentReader {
                sent,
                left: span.size,
            }))
        };
        let answer = self.client.send(
            &self.ep,
            repo,
            "PUT",
            &with_digest(&url, d),
            &[("content-type", "application/octet-stream".into())],
            &Payload::Reader {
                open: &open,
                len: span.size,
            },
            false,
        );
        match answer {
            Ok(resp) => {
                self.checked(repo, d, sent, &url)?;
                stored(&resp, d, what)?;
                self.report.bytes_uploaded += span.size;
                (self.events)(PushEvent::Progress {
                    digest: d.clone(),
                    sent: span.size,
                    size: span.size,
                });
                Ok(None)
            }
            Err(_) if sent.borrow().changed => Err(self.cancel(repo, &url, d)),
            Err(e) if resumable(&e) => self.resume(repo, d, &url, 1, &e, what).map(Some),
            Err(e) => Err(reg_err(what)(e)),
        }
    }

    /// After failure number `failures` of the upload at `url` (error `e`):
    /// a pause, then where the upload stands.
    fn resume(
        &mut self,
        repo: &str,
        d: &Digest,
        url: &str,
        failures: u32,
        e: &RegistryError,
        what: &str,
    ) -> Result<(String, u64), PushError> {
        self.report.resumes += 1;
        std::thread::sleep(std::time::Duration::from_millis(200 << failures.min(5)));
        let (location, offset) = self.where_now(repo, url, what)?;
        (self.events)(PushEvent::Resumed {
            digest: d.clone(),
            offset,
            reason: e.to_string(),
        });
        Ok((location, offset))
    }

    /// The error for blob `d`, whose bytes in the bundle file no longer hash
    /// to its digest: the file changed after verification. The upload at
    /// `url` is cancelled (a registry that keeps it anyway never gets the
    /// request that closes it).
    fn cancel(&self, repo: &str, url: &str, d: &Digest) -> PushError {
        let _ = self
            .client
            .send(&self.ep, repo, "DELETE", url, &[], &Payload::Empty, false);
        PushError::Open(OpenError::Changed {
            entry: d.blob_path(),
        })
    }

    /// After a failed chunk: where the upload at `url` stands, or a new
    /// upload when the registry dropped it (distribution cancels an upload
    /// whose size no longer matches its state).
    fn where_now(&self, repo: &str, url: &str, what: &str) -> Result<(String, u64), PushError> {
        if let Ok(resp) = self
            .client
            .send(&self.ep, repo, "GET", url, &[], &Payload::Empty, true)
            && let Some(next) = confirmed(&resp)
        {
            return Ok((
                header(&resp, "location").unwrap_or_else(|| url.to_owned()),
                next,
            ));
        }
        let location = self.open_upload(repo, "", what)?.ok_or_else(|| {
            reg_err(what)(RegistryError::Protocol {
                url: self.url(repo, "blobs/uploads/"),
                message: "201 to a new upload without a mount".into(),
            })
        })?;
        Ok((location, 0))
    }

    /// Opens the upload of a blob in `repo`, asking first to mount it
    /// (`mount`: the query, or empty): `None` when the registry mounted it
    /// (201), else the upload's Location. A registry that refuses the
    /// mount's query outright (a 4xx other than for credentials, where the
    /// spec says it should open the upload anyway) gets a plain POST.
    fn open_upload(
        &self,
        repo: &str,
        mount: &str,
        what: &str,
    ) -> Result<Option<String>, PushError> {
        match self.post_upload(repo, mount) {
            Err(RegistryError::NotFound { .. } | RegistryError::Status { .. })
                if !mount.is_empty() =>
            {
                self.post_upload(repo, "")
            }
            r => r,
        }
        .map_err(reg_err(what))
    }

    /// POSTs a new upload to `repo` (`query`: a mount, or empty): `None`
    /// when the registry mounted the blob (201), else the upload's Location.
    fn post_upload(&self, repo: &str, query: &str) -> Result<Option<String>, RegistryError> {
        let url = self.url(repo, &format!("blobs/uploads/{query}"));
        let resp = self
            .client
            .send(&self.ep, repo, "POST", &url, &[], &Payload::Empty, true)?;
        if resp.status().as_u16() == 201 {
            return Ok(None);
        }
        header(&resp, "location")
            .map(Some)
            .ok_or_else(|| RegistryError::Protocol {
                url,
                message: "202 without Location".into(),
            })
    }
}

/// An upload's URL with the `digest` that closes it.
fn with_digest(url: &str, d: &Digest) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}digest={d}")
}

/// The next offset an upload response confirms (`Range: 0-N` → N+1).
/// `0-0` is ambiguous (nothing, or one byte): read as nothing, so the
/// upload starts again rather than guess.
fn confirmed(resp: &Response<ureq::Body>) -> Option<u64> {
    let r = header(resp, "range")?;
    let end: u64 = r
        .trim()
        .strip_prefix("bytes=")
        .unwrap_or(r.trim())
        .split_once('-')?
        .1
        .parse()
        .ok()?;
    Some(if end == 0 { 0 } else { end + 1 })
}

fn resumable(e: &RegistryError) -> bool {
    matches!(
        e,
        RegistryError::Transport { .. } | RegistryError::GaveUp { .. }
    ) || matches!(e, RegistryError::Status { status, .. } if *status == 416 || *status >= 500)
}

/// One blob's bytes as an upload sends them, through a [`SealedReader`]:
/// every push verifies the bundle whole first, and each chunk sent is
/// checked against the seal verification took of it before any byte of
/// it leaves, so a bundle file changed after verification never sends a
/// changed byte (the request is cut short and the upload cancelled). A
/// request that starts again, or an upload resumed where the registry
/// stands, reads from that point on, checked the same way.
struct Sent {
    entry: SealedReader,
    /// A chunk of the blob no longer matches what was verified.
    changed: bool,
}

impl Sent {
    fn new(entry: SealedReader) -> Sent {
        Sent {
            entry,
            changed: false,
        }
    }

    /// Serves the blob from byte `at` on.
    fn seek(&mut self, at: u64) {
        self.entry.seek(at);
    }

    /// Reads the next checked bytes of the blob into `buf`; an error when
    /// the file no longer holds them or they are not the verified ones.
    fn read_next(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.entry.read(buf);
        if let Err(e) = &r
            && e.get_ref().is_some_and(|i| i.is::<ChangedEntry>())
        {
            self.changed = true;
        }
        r
    }
}

/// Reads the next `left` bytes of a blob through its [`Sent`].
struct SentReader<'s> {
    sent: &'s RefCell<Sent>,
    left: u64,
}

impl Read for SentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(self.left) as usize;
        let n = self.sent.borrow_mut().read_next(&mut buf[..n])?;
        self.left -= n as u64;
        Ok(n)
    }
}
