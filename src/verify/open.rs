//! The one way bale reads a bundle it acts on (install, audit, serve,
//! push): verified whole first, then every entry read again by position and
//! checked again (small entries and plain files by SHA-256, blobs by their
//! chunk seals: see [`super::sealed`]), so a file that changes after
//! verification is caught wherever it is read.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::sealed::{SealBook, SealedReader};
use super::{RawEntry, Report, VerifyError, VerifyOptions};
use crate::bundle::source::Source;
use crate::bundle::{IMAGES_PATH, ImageRecord, ImagesFile, MANIFEST_PATH, Manifest};
use crate::digest::{Digest, SealKey};
use crate::sign::VerifyingKey;
use crate::spec::BundleSpec;

/// Errors opening a bundle or reading an entry of an opened one.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The bundle failed verification; nothing was changed.
    #[error("the bundle failed verification; nothing was changed:\n{}", .0.problems.iter().map(|p| format!("  - {}: {}", p.entry, p.message)).collect::<Vec<_>>().join("\n"))]
    NotVerified(Box<Report>),
    /// The bundle file could not be read.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Refused: the wrong base, or a file left to a base that is not here.
    #[error("refused: {0}")]
    Refused(String),
    /// The bundle's content is unusable (verified, but not as bale builds them).
    #[error("bundle: {0}")]
    Bundle(String),
    /// An entry of the bundle no longer matches what was verified.
    #[error(
        "{entry} changed after it was verified: the bundle file is being modified; nothing more was read from it"
    )]
    Changed {
        /// The entry.
        entry: String,
    },
    /// The signed manifest or image list holds a field bale refuses.
    #[error("the bundle's signed content is refused:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The opened, verified bundle.
pub struct OpenBundle {
    file: Source,
    entries: BTreeMap<String, RawEntry>,
    /// The verification report.
    pub report: Report,
    /// The signed manifest.
    pub manifest: Manifest,
    /// SHA-256 of the signed manifest's bytes.
    pub manifest_digest: Digest,
    /// The image list.
    pub images: ImagesFile,
    /// The bundle.toml it was built from.
    pub spec: BundleSpec,
    /// For a delta given its base: the base, opened and verified, which
    /// provides what the delta does not carry.
    base: Option<Box<OpenBundle>>,
    /// For a delta installed over its base without the base file: the
    /// base's release directory, whose plain files stand in for the ones
    /// the delta leaves out (each hashed against the signed digest).
    installed: Option<std::path::PathBuf>,
    /// Each entry's chunk seals, taken as it verified, and their key
    /// (never written anywhere).
    seals: SealBook,
}

impl OpenBundle {
    /// Verifies the delta (or bundle) at `path` and, when given, its base
    /// at `base`, both with `key`; the base must be the one the delta names
    /// and hold everything the delta leaves to it.
    pub fn open_with_base(
        path: &Path,
        key: &VerifyingKey,
        base: Option<&Path>,
    ) -> Result<Self, OpenError> {
        let mut b = Self::open(path, key)?;
        let (Some(want), Some(base_path)) = (b.manifest.base.clone(), base) else {
            return Ok(b);
        };
        let old = OpenBundle::open(base_path, key)?;
        if old.manifest_digest != want.manifest {
            return Err(OpenError::Refused(format!(
                "{} is {} {} (manifest {}); this delta needs {} {} (manifest {})",
                base_path.display(),
                old.manifest.name,
                old.manifest.version,
                old.manifest_digest,
                want.name,
                want.version,
                want.manifest
            )));
        }
        for e in b.manifest.entries.iter().filter(|e| e.from_base) {
            if !old.manifest.carries(&e.path, &e.sha256, e.size) {
                return Err(OpenError::Invalid(vec![format!(
                    "{}: left to the base, which does not carry it with this digest",
                    crate::quote::quote(&e.path)
                )]));
            }
        }
        b.base = Some(Box::new(old));
        Ok(b)
    }

    /// The digest a release of this bundle is recorded under: its signed
    /// manifest's, or for a delta the full bundle's (the same manifest
    /// without the base), so that a delta installs as the full bundle does.
    pub fn content_digest(&self) -> Digest {
        if self.manifest.base.is_none() {
            return self.manifest_digest.clone();
        }
        let mut full = self.manifest.clone();
        full.base = None;
        for e in &mut full.entries {
            e.from_base = false;
        }
        Digest::of(full.render().as_bytes())
    }

    /// For a delta without its base file: read the plain files it leaves
    /// to the base from `release_dir`, the installed base release.
    pub fn use_installed(&mut self, release_dir: &Path) {
        self.installed = Some(release_dir.to_owned());
    }

    /// Whether entry `name` is left to a base this bundle cannot read:
    /// no base file given (a plain file may still come from the installed
    /// base release).
    pub fn lacks(&self, name: &str) -> bool {
        self.left_to_base(name) && self.base.is_none()
    }

    fn left_to_base(&self, name: &str) -> bool {
        self.manifest
            .entries
            .iter()
            .any(|e| e.path == name && e.from_base)
    }

    /// The bundle and entry that hold `name`: this one, or its base.
    pub fn locate(&self, name: &str) -> Result<(&OpenBundle, &RawEntry), OpenError> {
        if self.left_to_base(name) {
            let base = self.base.as_ref().ok_or_else(|| {
                OpenError::Refused(format!(
                    "{name} is left to the base bundle, and the runtime does not have what needs it: give the base with --base OLD.bale"
                ))
            })?;
            return Ok((base, base.entry(name)?));
        }
        Ok((self, self.entry(name)?))
    }

    /// Verifies `path` with `key`; fails with the report if anything is wrong.
    pub fn open(path: &Path, key: &VerifyingKey) -> Result<Self, OpenError> {
        let seal_key = std::sync::Arc::new(SealKey::new());
        let (report, seals) = super::verify_sealing(
            path,
            &VerifyOptions {
                key: Some(key),
                allow_unsigned: false,
                threads: 0,
                base: None,
            },
            Some(&seal_key),
        )?;
        if !report.ok() {
            return Err(OpenError::NotVerified(Box::new(report)));
        }
        // Whole, or the parts in place (checked by verify just now).
        let file = crate::bundle::split::open(path).map_err(io_err(path))?;
        let len = file.len();
        let (list, _) = super::scan(&file, len);
        let entries: BTreeMap<String, RawEntry> = list
            .into_iter()
            .filter_map(|e| e.path.clone().ok().map(|p| (p, e)))
            .collect();
        // The manifest must still be the one whose signature was checked.
        let signed = report
            .manifest_digest
            .clone()
            .ok_or_else(|| OpenError::Bundle("no manifest digest".into()))?;
        let m = entry_in(&entries, MANIFEST_PATH)?;
        let mut text = Vec::new();
        copy_checked(&file, m, &signed, m.size, MANIFEST_PATH, &mut text)?;
        let manifest = std::str::from_utf8(&text)
            .map_err(|_| OpenError::Bundle("manifest is not UTF-8".into()))
            .and_then(|t| Manifest::parse(t).map_err(OpenError::Bundle))?;
        let read = |name: &str| -> Result<Vec<u8>, OpenError> {
            let (want, size) = expected_in(&manifest, name)?;
            let mut out = Vec::new();
            copy_checked(
                &file,
                entry_in(&entries, name)?,
                &want,
                size,
                name,
                &mut out,
            )?;
            Ok(out)
        };
        let images: ImagesFile = serde_json::from_slice(&read(IMAGES_PATH)?)
            .map_err(|e| OpenError::Bundle(format!("{IMAGES_PATH}: {e}")))?;
        // Checked again here, not only by verify: paths and commands are
        // built from these fields below.
        let mut invalid = crate::bundle::checks::manifest(&manifest);
        invalid.extend(crate::bundle::checks::images_file(&images, &manifest));
        for e in &manifest.entries {
            if let Err(m) = crate::validate::entry_path(&e.path) {
                invalid.push(format!("{}: {m}", crate::quote::quote(&e.path)));
            }
        }
        if !invalid.is_empty() {
            return Err(OpenError::Invalid(invalid));
        }
        let toml = String::from_utf8(read("bale/bundle.toml")?)
            .map_err(|_| OpenError::Bundle("bundle.toml is not UTF-8".into()))?;
        let spec = BundleSpec::parse_unchecked(Path::new("bale/bundle.toml"), &toml)
            .map_err(|e| OpenError::Bundle(e.to_string()))?;
        Ok(OpenBundle {
            file,
            entries,
            report,
            manifest,
            manifest_digest: signed,
            images,
            spec,
            base: None,
            installed: None,
            seals: SealBook {
                key: seal_key,
                seals,
            },
        })
    }

    /// Entry `name` of this bundle, read again through the seals taken
    /// of it as it verified: see [`SealedReader`].
    pub fn sealed(&self, name: &str) -> Result<SealedReader, OpenError> {
        let e = self.entry(name)?;
        let seals = self
            .seals
            .seals
            .get(name)
            .ok_or_else(|| OpenError::Bundle(format!("{name} has no seals")))?;
        Ok(SealedReader::new(
            self.file.clone(),
            name,
            e.offset,
            e.size,
            self.seals.key.clone(),
            seals.clone(),
        ))
    }

    pub fn entry(&self, name: &str) -> Result<&RawEntry, OpenError> {
        entry_in(&self.entries, name)
    }

    pub fn expected(&self, name: &str) -> Result<(Digest, u64), OpenError> {
        expected_in(&self.manifest, name)
    }

    /// Reads a small entry whole, checking it against the manifest again.
    pub fn read_small(&self, name: &str) -> Result<Vec<u8>, OpenError> {
        let mut out = Vec::new();
        self.copy_entry(name, &mut out)?;
        Ok(out)
    }

    /// Streams entry `name` into `w`, hashing as it goes; fails if the
    /// content no longer matches the manifest (the file changed since it
    /// was verified).
    pub fn copy_entry(&self, name: &str, w: &mut dyn Write) -> Result<(), OpenError> {
        let (want, size) = self.expected(name)?;
        if self.lacks(name)
            && let (Some(dir), Some(target)) = (
                &self.installed,
                name.strip_prefix(crate::bundle::FILES_PREFIX),
            )
        {
            return copy_installed(dir, target, &want, size, name, w);
        }
        let (holder, e) = self.locate(name)?;
        copy_checked(&holder.file, e, &want, size, name, w)
    }

    /// Offset and size of entry `name` in the bundle file, as verified.
    pub fn span(&self, name: &str) -> Result<(u64, u64), OpenError> {
        let (_, size) = self.expected(name)?;
        let e = self.entry(name)?;
        if e.size != size {
            return Err(OpenError::Changed {
                entry: name.to_owned(),
            });
        }
        Ok((e.offset, e.size))
    }

    /// The bundle's bytes, for positioned reads elsewhere (the registry
    /// server, push); what is read must still be hashed.
    pub fn source(&self) -> Source {
        self.file.clone()
    }

    /// The images of the platform a runtime gets: the first one of the bundle.
    pub fn runtime_images(&self) -> Vec<&ImageRecord> {
        self.images.runtime_images()
    }
}

fn entry_in<'a>(
    entries: &'a BTreeMap<String, RawEntry>,
    name: &str,
) -> Result<&'a RawEntry, OpenError> {
    entries
        .get(name)
        .ok_or_else(|| OpenError::Bundle(format!("no entry {name}")))
}

fn expected_in(manifest: &Manifest, name: &str) -> Result<(Digest, u64), OpenError> {
    manifest
        .entries
        .iter()
        .find(|e| e.path == name)
        .map(|e| (e.sha256.clone(), e.size))
        .ok_or_else(|| OpenError::Bundle(format!("{name} is not in the manifest")))
}

/// Copies `target` of the installed base release in `dir` into `w`, as a
/// delta's stand-in for a file it leaves to its base: a regular file (no
/// link followed) that must hash to the signed digest.
fn copy_installed(
    dir: &Path,
    target: &str,
    want: &Digest,
    size: u64,
    name: &str,
    w: &mut dyn Write,
) -> Result<(), OpenError> {
    let path = dir.join(target);
    let drifted = || {
        OpenError::Refused(format!(
            "{name} is left to the base, and the installed base's copy ({}) is not the signed one: repair the base (`bale install OLD.bale`) or give --base OLD.bale",
            path.display()
        ))
    };
    let meta = std::fs::symlink_metadata(&path).map_err(|_| drifted())?;
    if !meta.is_file() || meta.len() != size {
        return Err(drifted());
    }
    let bytes = std::fs::read(&path).map_err(io_err(&path))?;
    if &Digest::of(&bytes) != want {
        return Err(drifted());
    }
    w.write_all(&bytes).map_err(io_err(&path))
}

/// Copies entry `e` of `file` into `w`, hashing as it goes; fails if it no
/// longer has the digest and size it was verified with.
fn copy_checked(
    file: &Source,
    e: &RawEntry,
    want: &Digest,
    size: u64,
    name: &str,
    w: &mut dyn Write,
) -> Result<(), OpenError> {
    let io = |source| OpenError::Io {
        path: PathBuf::from(name),
        source,
    };
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0;
    while pos < e.size {
        let n = (e.size - pos).min(buf.len() as u64) as usize;
        match file.read_exact_at(&mut buf[..n], e.offset + pos) {
            Ok(()) => {}
            // Verified to hold the entry, the file no longer does: it shrank.
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(OpenError::Changed {
                    entry: name.to_owned(),
                });
            }
            Err(err) => return Err(io(err)),
        }
        h.update(&buf[..n]);
        w.write_all(&buf[..n]).map_err(io)?;
        pos += n as u64;
    }
    if &Digest::from_sha256(h) != want || e.size != size {
        return Err(OpenError::Changed {
            entry: name.to_owned(),
        });
    }
    Ok(())
}
