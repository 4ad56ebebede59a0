//! Opening a bundle for install: verified whole first, then every entry
//! read again by position and re-hashed, so a file that changes after
//! verification is caught wherever it is read.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::{InstallError, io_err};
use crate::bundle::{IMAGES_PATH, ImageRecord, ImagesFile, MANIFEST_PATH, Manifest};
use crate::digest::Digest;
use crate::sign::VerifyingKey;
use crate::spec::BundleSpec;
use crate::verify::{self, RawEntry, Report, VerifyOptions};

/// The opened, verified bundle.
pub struct OpenBundle {
    file: File,
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
}

impl OpenBundle {
    /// Verifies `path` with `key`; fails with the report if anything is wrong.
    pub fn open(path: &Path, key: &VerifyingKey) -> Result<Self, InstallError> {
        let report = verify::verify(
            path,
            &VerifyOptions {
                key: Some(key),
                allow_unsigned: false,
                threads: 0,
            },
        )?;
        if !report.ok() {
            return Err(InstallError::NotVerified(Box::new(report)));
        }
        let file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        let (list, _) = verify::scan(&file, len);
        let entries: BTreeMap<String, RawEntry> = list
            .into_iter()
            .filter_map(|e| e.path.clone().ok().map(|p| (p, e)))
            .collect();
        // The manifest must still be the one whose signature was checked.
        let signed = report
            .manifest_digest
            .clone()
            .ok_or_else(|| InstallError::Bundle("no manifest digest".into()))?;
        let m = entry_in(&entries, MANIFEST_PATH)?;
        let mut text = Vec::new();
        copy_checked(&file, m, &signed, m.size, MANIFEST_PATH, &mut text)?;
        let manifest = std::str::from_utf8(&text)
            .map_err(|_| InstallError::Bundle("manifest is not UTF-8".into()))
            .and_then(|t| Manifest::parse(t).map_err(InstallError::Bundle))?;
        let read = |name: &str| -> Result<Vec<u8>, InstallError> {
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
            .map_err(|e| InstallError::Bundle(format!("{IMAGES_PATH}: {e}")))?;
        // Checked again here, not only by verify: paths and commands are
        // built from these fields below.
        let mut invalid = crate::validate::manifest(&manifest);
        invalid.extend(crate::validate::images_file(&images, &manifest));
        for e in &manifest.entries {
            if let Err(m) = crate::validate::entry_path(&e.path) {
                invalid.push(format!("{}: {m}", crate::validate::quote(&e.path)));
            }
        }
        if !invalid.is_empty() {
            return Err(InstallError::Invalid(invalid));
        }
        let toml = String::from_utf8(read("bale/bundle.toml")?)
            .map_err(|_| InstallError::Bundle("bundle.toml is not UTF-8".into()))?;
        let spec = BundleSpec::parse_unchecked(Path::new("bale/bundle.toml"), &toml)
            .map_err(|e| InstallError::Bundle(e.to_string()))?;
        Ok(OpenBundle {
            file,
            entries,
            report,
            manifest,
            manifest_digest: signed,
            images,
            spec,
        })
    }

    pub(super) fn entry(&self, name: &str) -> Result<&RawEntry, InstallError> {
        entry_in(&self.entries, name)
    }

    pub(super) fn expected(&self, name: &str) -> Result<(Digest, u64), InstallError> {
        expected_in(&self.manifest, name)
    }

    /// Reads a small entry whole, checking it against the manifest again.
    pub(super) fn read_small(&self, name: &str) -> Result<Vec<u8>, InstallError> {
        let mut out = Vec::new();
        self.copy_entry(name, &mut out)?;
        Ok(out)
    }

    /// Streams entry `name` into `w`, hashing as it goes; fails if the
    /// content no longer matches the manifest (the file changed since it
    /// was verified).
    pub fn copy_entry(&self, name: &str, w: &mut dyn Write) -> Result<(), InstallError> {
        let (want, size) = self.expected(name)?;
        copy_checked(&self.file, self.entry(name)?, &want, size, name, w)
    }

    /// Offset and size of entry `name` in the bundle file, as verified.
    pub fn span(&self, name: &str) -> Result<(u64, u64), InstallError> {
        let (_, size) = self.expected(name)?;
        let e = self.entry(name)?;
        if e.size != size {
            return Err(InstallError::Changed {
                entry: name.to_owned(),
            });
        }
        Ok((e.offset, e.size))
    }

    /// Another handle on the bundle file, for positioned reads elsewhere
    /// (the registry server); what it reads must still be hashed.
    pub fn file(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// The images of the platform a runtime gets: the first one of the bundle.
    pub fn runtime_images(&self) -> Vec<&ImageRecord> {
        let first = self.images.images.first().map(|i| i.platform.clone());
        self.images
            .images
            .iter()
            .filter(|i| Some(&i.platform) == first.as_ref())
            .collect()
    }
}

fn entry_in<'a>(
    entries: &'a BTreeMap<String, RawEntry>,
    name: &str,
) -> Result<&'a RawEntry, InstallError> {
    entries
        .get(name)
        .ok_or_else(|| InstallError::Bundle(format!("no entry {name}")))
}

fn expected_in(manifest: &Manifest, name: &str) -> Result<(Digest, u64), InstallError> {
    manifest
        .entries
        .iter()
        .find(|e| e.path == name)
        .map(|e| (e.sha256.clone(), e.size))
        .ok_or_else(|| InstallError::Bundle(format!("{name} is not in the manifest")))
}

/// Copies entry `e` of `file` into `w`, hashing as it goes; fails if it no
/// longer has the digest and size it was verified with.
fn copy_checked(
    file: &File,
    e: &RawEntry,
    want: &Digest,
    size: u64,
    name: &str,
    w: &mut dyn Write,
) -> Result<(), InstallError> {
    let io = |source| InstallError::Io {
        path: PathBuf::from(name),
        source,
    };
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0;
    while pos < e.size {
        let n = (e.size - pos).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], e.offset + pos)
            .map_err(io)?;
        h.update(&buf[..n]);
        w.write_all(&buf[..n]).map_err(io)?;
        pos += n as u64;
    }
    if &Digest::from_sha256(h) != want || e.size != size {
        return Err(InstallError::Changed {
            entry: name.to_owned(),
        });
    }
    Ok(())
}

/// Reads an entry's bytes by position, checking its digest at the end.
pub(super) struct EntryReader<'a> {
    pub(super) bundle: &'a OpenBundle,
    pub(super) offset: u64,
    pub(super) left: u64,
    pub(super) hasher: Sha256,
    pub(super) want: Digest,
}

impl io::Read for EntryReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(self.left) as usize;
        let n = self.bundle.file.read_at(&mut buf[..n], self.offset)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "bundle shrank",
            ));
        }
        self.hasher.update(&buf[..n]);
        self.offset += n as u64;
        self.left -= n as u64;
        if self.left == 0 {
            let got = Digest::from_sha256(std::mem::take(&mut self.hasher));
            if got != self.want {
                return Err(io::Error::other(ChangedEntry(format!(
                    "blobs/sha256/{}",
                    self.want.hex()
                ))));
            }
        }
        Ok(n)
    }
}

/// The error an [`EntryReader`] gives when its entry no longer hashes to
/// what was verified; install finds it inside the runtime's error.
#[derive(Debug)]
pub(super) struct ChangedEntry(pub String);

impl std::fmt::Display for ChangedEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} changed after it was verified", self.0)
    }
}

impl std::error::Error for ChangedEntry {}
