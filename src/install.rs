//! `bale install`: from a verified bundle to images in the runtime, files in
//! the install directory, secrets in `.env`, and (with `--up`) a running stack.
//!
//! The install directory:
//!
//! ```text
//! DIR/current -> .bale/releases/<version>-<digest>   the one switch
//! DIR/.env                                           secrets, mode 0600, kept across upgrades
//! DIR/.bale/releases/<id>/...                        overlays and compose file at their targets
//! DIR/.bale/releases/<id>/.bale/release.json         what is installed there
//! DIR/.bale/releases/<id>/.bale/images.json          the bundle's image list
//! DIR/.bale/releases/<id>/.bale/compose.pins.yml     every service pinned to its loaded image
//! ```
//!
//! A release is staged in `.bale/staging-*`, renamed into `releases/`, and
//! made current by renaming a new symlink over `current`: at every moment
//! `current` names one complete release, old or new.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::bundle::{FILES_PREFIX, IMAGES_PATH, ImageRecord, ImagesFile, MANIFEST_PATH, Manifest};
use crate::digest::Digest;
use crate::runtime::{ArchiveFormat, Container, Runtime, RuntimeError};
use crate::sign::VerifyingKey;
use crate::spec::{BundleSpec, SecretSpec};
use crate::verify::{self, RawEntry, Report, VerifyOptions};

/// Errors of install and audit.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The bundle failed verification; nothing was changed.
    #[error("the bundle failed verification; nothing was changed:\n{}", .0.problems.iter().map(|p| format!("  - {}: {}", p.entry, p.message)).collect::<Vec<_>>().join("\n"))]
    NotVerified(Box<Report>),
    /// A file or directory operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The target holds something bale will not touch.
    #[error("{}: {message}", path.display())]
    Unsafe {
        /// The path.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Refused by policy: another bundle, or a downgrade.
    #[error("refused: {0}")]
    Refused(String),
    /// The bundle's content is unusable (verified, but not as bale builds them).
    #[error("bundle: {0}")]
    Bundle(String),
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// An image is not what was locked after loading.
    #[error("image {name} (service `{service}`): {message}")]
    Image {
        /// Service.
        service: String,
        /// Image name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// Services did not become healthy in time.
    #[error("services not healthy after {seconds} s: {}", services.join(", "))]
    Unhealthy {
        /// Seconds waited.
        seconds: u64,
        /// `service (state/health)` for each.
        services: Vec<String>,
    },
    /// Nothing installed in the target.
    #[error("{}: no bale installation here (no `current`)", .0.display())]
    NotInstalled(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> InstallError + '_ {
    move |source| InstallError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One installed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledFile {
    /// Target path.
    pub target: String,
    /// SHA-256 of its content.
    pub sha256: Digest,
    /// Size.
    pub size: u64,
}

/// `.bale/release.json`: what a release holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// Format version (1).
    pub format: u32,
    /// Bundle name.
    pub name: String,
    /// Bundle version.
    pub version: String,
    /// SHA-256 of the bundle's signed manifest.
    pub manifest_digest: Digest,
    /// Key ID the bundle was verified with.
    pub key_id: String,
    /// Compose file target, if any.
    pub compose: Option<String>,
    /// Compose project name.
    pub project: Option<String>,
    /// The platform whose images were loaded.
    pub platform: Option<String>,
    /// The runtime images were loaded into.
    pub runtime: String,
    /// Every file laid out.
    pub files: Vec<InstalledFile>,
}

/// Where the current release of `target` is, and what it holds.
pub fn current_release(target: &Path) -> Result<Option<(PathBuf, Release)>, InstallError> {
    let link = target.join("current");
    let meta = match fs::symlink_metadata(&link) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&link)(e)),
    };
    if !meta.file_type().is_symlink() {
        return Err(InstallError::Unsafe {
            path: link,
            message: "exists and is not bale's symlink; refusing to touch it".into(),
        });
    }
    let dest = fs::read_link(&link).map_err(io_err(&link))?;
    let id = dest
        .strip_prefix(".bale/releases")
        .ok()
        .and_then(|p| p.to_str())
        .filter(|p| !p.is_empty() && !p.contains('/') && !p.contains(".."))
        .ok_or_else(|| InstallError::Unsafe {
            path: link.clone(),
            message: format!("points to {}, outside .bale/releases", dest.display()),
        })?
        .to_owned();
    let dir = target.join(".bale").join("releases").join(&id);
    let path = dir.join(".bale").join("release.json");
    let text = fs::read(&path).map_err(io_err(&path))?;
    let release: Release = serde_json::from_slice(&text).map_err(|e| InstallError::Unsafe {
        path: path.clone(),
        message: format!("unreadable: {e}"),
    })?;
    Ok(Some((dir, release)))
}

/// The opened, verified bundle.
pub struct OpenBundle {
    file: File,
    entries: BTreeMap<String, RawEntry>,
    /// The verification report.
    pub report: Report,
    /// The signed manifest.
    pub manifest: Manifest,
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
        )
        .map_err(|e| InstallError::Bundle(e.to_string()))?;
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
        let images = serde_json::from_slice(&read(IMAGES_PATH)?)
            .map_err(|e| InstallError::Bundle(format!("{IMAGES_PATH}: {e}")))?;
        let toml = String::from_utf8(read("bale/bundle.toml")?)
            .map_err(|_| InstallError::Bundle("bundle.toml is not UTF-8".into()))?;
        let spec = BundleSpec::parse_unchecked(Path::new("bale/bundle.toml"), &toml)
            .map_err(|e| InstallError::Bundle(e.to_string()))?;
        Ok(OpenBundle {
            file,
            entries,
            report,
            manifest,
            images,
            spec,
        })
    }

    fn entry(&self, name: &str) -> Result<&RawEntry, InstallError> {
        entry_in(&self.entries, name)
    }

    fn expected(&self, name: &str) -> Result<(Digest, u64), InstallError> {
        expected_in(&self.manifest, name)
    }

    /// Reads a small entry whole, checking it against the manifest again.
    fn read_small(&self, name: &str) -> Result<Vec<u8>, InstallError> {
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
        return Err(InstallError::Bundle(format!(
            "{name} changed since it was verified"
        )));
    }
    Ok(())
}

/// Writes a tar archive of `images` from `bundle` in `format` into `w`.
fn write_archive(
    bundle: &OpenBundle,
    images: &[&ImageRecord],
    format: ArchiveFormat,
    w: &mut dyn Write,
) -> io::Result<()> {
    let mut tar = tar::Builder::new(w);
    let mut add = |path: &str, bytes: &[u8]| -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(bytes.len() as u64);
        h.set_mtime(0);
        tar.append_data(&mut h, path, bytes)
    };
    let mut blobs: BTreeSet<&Digest> = BTreeSet::new();
    // Docker before 23 cannot read zstd layers: they go in decompressed,
    // which leaves the image ID (the config digest) unchanged.
    let mut zstd: BTreeSet<Digest> = BTreeSet::new();
    match format {
        ArchiveFormat::Docker => {
            for r in images {
                zstd.extend(zstd_layers(bundle, r).map_err(|e| io::Error::other(e.to_string()))?);
            }
            let layer_path = |l: &Digest| {
                if zstd.contains(l) {
                    format!("layers/{}.tar", l.hex())
                } else {
                    format!("blobs/sha256/{}", l.hex())
                }
            };
            let index: Vec<serde_json::Value> = images
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "Config": format!("blobs/sha256/{}", r.config.hex()),
                        "RepoTags": [r.name],
                        "Layers": r.layers.iter().map(layer_path).collect::<Vec<_>>(),
                    })
                })
                .collect();
            add(
                "manifest.json",
                &serde_json::to_vec(&index).map_err(io::Error::other)?,
            )?;
            for r in images {
                blobs.insert(&r.config);
                blobs.extend(r.layers.iter());
            }
        }
        ArchiveFormat::Oci => {
            add("oci-layout", b"{\"imageLayoutVersion\":\"1.0.0\"}")?;
            let manifests: Vec<serde_json::Value> = images
                .iter()
                .map(|r| {
                    let size = bundle
                        .expected(&format!("blobs/sha256/{}", r.manifest.hex()))
                        .map(|(_, s)| s)
                        .unwrap_or(0);
                    serde_json::json!({
                        "mediaType": r.manifest_media_type,
                        "digest": r.manifest.to_string(),
                        "size": size,
                        "annotations": {
                            "io.containerd.image.name": r.name,
                            "org.opencontainers.image.ref.name": r.name,
                        },
                    })
                })
                .collect();
            let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
            add(
                "index.json",
                &serde_json::to_vec(&index).map_err(io::Error::other)?,
            )?;
            for r in images {
                blobs.insert(&r.manifest);
                blobs.insert(&r.config);
                blobs.extend(r.layers.iter());
            }
        }
    }
    for d in blobs {
        let name = format!("blobs/sha256/{}", d.hex());
        let e = bundle
            .entry(&name)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(e.size);
        h.set_mtime(0);
        let reader = || EntryReader {
            bundle,
            offset: e.offset,
            left: e.size,
            hasher: Sha256::new(),
            want: d.clone(),
        };
        if zstd.contains(d) {
            // Two passes: the tar header needs the decompressed size first.
            let size = io::copy(
                &mut Unzstd::new(io::BufReader::new(reader())),
                &mut io::sink(),
            )?;
            h.set_size(size);
            let path = format!("layers/{}.tar", d.hex());
            tar.append_data(&mut h, &path, Unzstd::new(io::BufReader::new(reader())))?;
        } else {
            tar.append_data(&mut h, &name, reader())?;
        }
    }
    tar.finish()
}

/// The zstd-compressed layers of an image, from its manifest in the bundle.
fn zstd_layers(bundle: &OpenBundle, r: &ImageRecord) -> Result<Vec<Digest>, InstallError> {
    let bytes = bundle.read_small(&format!("blobs/sha256/{}", r.manifest.hex()))?;
    match crate::manifest::parse(&bytes, Some(&r.manifest_media_type)) {
        Ok((_, crate::manifest::Parsed::Image { layers, .. })) => Ok(layers
            .into_iter()
            .filter(|l| l.media_type.ends_with("+zstd") || l.media_type.ends_with(".zstd"))
            .map(|l| l.digest)
            .collect()),
        Ok(_) => Err(InstallError::Bundle(format!(
            "{} is not an image manifest",
            r.manifest
        ))),
        Err(e) => Err(InstallError::Bundle(format!(
            "manifest {}: {e}",
            r.manifest
        ))),
    }
}

/// Decompresses a zstd stream of one or more frames.
struct Unzstd<R: io::BufRead> {
    frame: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
    inner: Option<R>,
}

impl<R: io::BufRead> Unzstd<R> {
    fn new(inner: R) -> Self {
        Unzstd {
            frame: None,
            inner: Some(inner),
        }
    }
}

impl<R: io::BufRead> io::Read for Unzstd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(f) = self.frame.as_mut() {
                let n = f.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                self.inner = self.frame.take().map(|f| f.into_inner());
            }
            let Some(mut inner) = self.inner.take() else {
                return Ok(0);
            };
            if inner.fill_buf()?.is_empty() {
                return Ok(0);
            }
            self.frame =
                Some(ruzstd::decoding::StreamingDecoder::new(inner).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}"))
                })?);
        }
    }
}

/// Reads an entry's bytes by position, checking its digest at the end.
struct EntryReader<'a> {
    bundle: &'a OpenBundle,
    offset: u64,
    left: u64,
    hasher: Sha256,
    want: Digest,
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
                return Err(io::Error::other(format!(
                    "blob {} changed since it was verified",
                    self.want
                )));
            }
        }
        Ok(n)
    }
}

/// The compose override that pins every service to the image bale loaded.
pub fn compose_pins(images: &[&ImageRecord]) -> String {
    let mut s = String::from(
        "# Written by bale install: every service runs the image bale loaded,\n# never pulled from a registry.\nservices:\n",
    );
    let mut seen = BTreeSet::new();
    for r in images {
        if seen.insert(&r.service) {
            s.push_str(&format!(
                "  {}:\n    image: {}\n    pull_policy: never\n",
                r.service, r.name
            ));
        }
    }
    s
}

/// Parses `.env`-style `KEY=VALUE` lines; returns the keys.
fn env_keys(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, _)| k.trim().trim_start_matches("export ").to_owned())
        })
        .collect()
}

/// A secret value from the OS-seeded CSPRNG, uniform over the alphabet.
pub fn generate_secret(spec: &SecretSpec) -> String {
    use rand::Rng as _;
    let chars = spec.alphabet.chars();
    let mut rng = rand::rng();
    (0..spec.length)
        .map(|_| chars[rng.random_range(0..chars.len())])
        .collect()
}

fn write_private(path: &Path, content: &[u8], mode: u32) -> Result<(), InstallError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".bale-tmp-")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    tmp.as_file().write_all(content).map_err(io_err(path))?;
    tmp.as_file().sync_all().map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
    sync_dir(dir);
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

/// What `--fault-after` (the `BALE_FAULT_AFTER` test hook) stops after.
fn fault_point(step: &str) {
    if std::env::var("BALE_FAULT_AFTER").is_ok_and(|s| s == step) {
        std::process::abort();
    }
}

/// Install options.
pub struct InstallOptions<'a> {
    /// The key the bundle must be signed with.
    pub key: &'a VerifyingKey,
    /// The install directory.
    pub target: PathBuf,
    /// The runtime.
    pub runtime: &'a dyn Runtime,
    /// Start the stack and wait for health.
    pub up: bool,
    /// Allow an older version, or the same version with other content.
    pub allow_downgrade: bool,
    /// How long `--up` waits for healthchecks.
    pub timeout: Duration,
}

/// What happened to the install directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Nothing was installed before.
    Installed,
    /// A newer version replaced an older one.
    Upgraded,
    /// An older version replaced a newer one (`--allow-downgrade`).
    Downgraded,
    /// The same bundle was already current.
    Unchanged,
}

/// One image after install.
#[derive(Debug, Clone, Serialize)]
pub struct ImageOutcome {
    /// Service.
    pub service: String,
    /// Name.
    pub name: String,
    /// Locked config digest, now the image ID.
    pub config: Digest,
    /// `loaded` or `present`.
    pub status: &'static str,
}

/// What install did.
#[derive(Debug, Clone, Serialize)]
pub struct InstallReport {
    /// Bundle name.
    pub name: String,
    /// Installed version.
    pub version: String,
    /// Previous version, if any.
    pub previous: Option<String>,
    /// What happened.
    pub action: Action,
    /// Manifest digest of the installed bundle.
    pub manifest_digest: Digest,
    /// The release directory.
    pub release: PathBuf,
    /// Images.
    pub images: Vec<ImageOutcome>,
    /// Names (never values) of the secrets generated now.
    pub secrets_added: Vec<String>,
    /// Containers after `--up`.
    pub services: Vec<Container>,
}

fn release_id(version: &str, manifest: &Digest) -> String {
    format!("{version}-{}", &manifest.hex()[..12])
}

/// Installs the bundle at `path`.
pub fn install(path: &Path, opts: &InstallOptions<'_>) -> Result<InstallReport, InstallError> {
    // 1. Verify everything before touching anything.
    let bundle = OpenBundle::open(path, opts.key)?;
    fault_point("verify");
    let name = bundle.manifest.name.clone();
    let version = bundle.manifest.version.clone();
    let manifest_digest = bundle
        .report
        .manifest_digest
        .clone()
        .ok_or_else(|| InstallError::Bundle("no manifest digest".into()))?;

    fs::create_dir_all(&opts.target).map_err(io_err(&opts.target))?;
    let target = fs::canonicalize(&opts.target).map_err(io_err(&opts.target))?;
    let meta_dir = target.join(".bale");
    for d in [meta_dir.clone(), meta_dir.join("releases")] {
        match fs::symlink_metadata(&d) {
            Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
                return Err(InstallError::Unsafe {
                    path: d,
                    message: "is not a directory bale made (a symlink or a file)".into(),
                });
            }
            Ok(_) => {}
            Err(_) => fs::create_dir(&d).map_err(io_err(&d))?,
        }
    }

    // One install at a time per target; what a killed run left is cleared.
    let lock_path = meta_dir.join("lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    lock.lock().map_err(io_err(&lock_path))?;
    if let Ok(rd) = fs::read_dir(&meta_dir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("staging-") {
                let _ = fs::remove_dir_all(e.path());
            } else if n.starts_with("current-") {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    // 2. Policy: same bundle, upgrade, downgrade, other bundle.
    let current = current_release(&target)?;
    let action = match &current {
        None => Action::Installed,
        Some((_, r)) if r.name != name => {
            return Err(InstallError::Refused(format!(
                "{} holds bundle `{}`, not `{name}`",
                target.display(),
                r.name
            )));
        }
        Some((_, r)) if r.manifest_digest == manifest_digest => Action::Unchanged,
        Some((_, r)) => {
            let parse = |v: &str| {
                semver::Version::parse(v)
                    .map_err(|e| InstallError::Bundle(format!("version `{v}`: {e}")))
            };
            let (old, new) = (parse(&r.version)?, parse(&version)?);
            if new > old {
                Action::Upgraded
            } else if opts.allow_downgrade {
                Action::Downgraded
            } else if new == old {
                return Err(InstallError::Refused(format!(
                    "version {version} is installed with other content (manifest {}); pass --allow-downgrade to replace it",
                    r.manifest_digest
                )));
            } else {
                return Err(InstallError::Refused(format!(
                    "{version} is older than the installed {}; pass --allow-downgrade to roll back",
                    r.version
                )));
            }
        }
    };
    let previous = current.as_ref().map(|(_, r)| r.version.clone());

    // 3. Images: load what the runtime lacks, then check every ID.
    let images = bundle.runtime_images();
    let mut outcomes = Vec::new();
    let mut to_load: Vec<&ImageRecord> = Vec::new();
    let mut seen = BTreeSet::new();
    for r in &images {
        if opts.runtime.name() == "none" {
            break;
        }
        let have = opts.runtime.image(&r.name)?;
        let ok = have
            .as_ref()
            .is_some_and(|h| h.config.as_ref() == Some(&r.config));
        if !ok && seen.insert(r.name.clone()) {
            to_load.push(r);
        }
        outcomes.push(ImageOutcome {
            service: r.service.clone(),
            name: r.name.clone(),
            config: r.config.clone(),
            status: if ok { "present" } else { "loaded" },
        });
    }
    if !to_load.is_empty() {
        let format = opts.runtime.archive_format();
        opts.runtime
            .load(&mut |w| write_archive(&bundle, &to_load, format, w))?;
        for r in &images {
            let have = opts.runtime.image(&r.name)?;
            let id = have.as_ref().and_then(|h| h.config.clone());
            if id.as_ref() != Some(&r.config) {
                return Err(InstallError::Image {
                    service: r.service.clone(),
                    name: r.name.clone(),
                    message: format!(
                        "after loading, the runtime has {} instead of the locked {}",
                        id.map_or("no image".into(), |d| d.to_string()),
                        r.config
                    ),
                });
            }
            if let Some(m) = have.as_ref().and_then(|h| h.manifest.as_ref())
                && m != &r.manifest
            {
                return Err(InstallError::Image {
                    service: r.service.clone(),
                    name: r.name.clone(),
                    message: format!("manifest {m} instead of the locked {}", r.manifest),
                });
            }
        }
    }
    fault_point("load");

    // 4. Stage the release, then rename it into place.
    let id = release_id(&version, &manifest_digest);
    let release_dir = meta_dir.join("releases").join(&id);
    let is_current = current.as_ref().is_some_and(|(d, _)| d == &release_dir);
    let mut files = Vec::new();
    for e in &bundle.manifest.entries {
        if let Some(t) = e.path.strip_prefix(FILES_PREFIX) {
            crate::spec::check_target(t).map_err(InstallError::Bundle)?;
            files.push(InstalledFile {
                target: t.to_owned(),
                sha256: e.sha256.clone(),
                size: e.size,
            });
        }
    }
    let release = Release {
        format: 1,
        name: name.clone(),
        version: version.clone(),
        manifest_digest: manifest_digest.clone(),
        key_id: opts.key.key_id(),
        compose: bundle.images.compose.clone(),
        project: bundle.images.project.clone(),
        platform: images.first().map(|i| i.platform.clone()),
        runtime: opts.runtime.name().to_owned(),
        files: files.clone(),
    };
    if !is_current {
        let staging = tempfile::Builder::new()
            .prefix("staging-")
            .tempdir_in(&meta_dir)
            .map_err(io_err(&meta_dir))?;
        let root = staging.path();
        let executable: BTreeSet<&str> = bundle
            .images
            .files
            .iter()
            .filter(|f| f.executable)
            .map(|f| f.target.as_str())
            .collect();
        for f in &files {
            let dest = root.join(&f.target);
            if let Some(parent) = dest.parent() {
                create_dirs(root, parent)?;
            }
            let mode = if executable.contains(f.target.as_str()) {
                0o755
            } else {
                0o644
            };
            let mut out = OpenOptions::new()
                .write(true)
                .create_new(true)
                // create_new: O_EXCL never follows a symlink at `dest`.
                .mode(mode)
                .open(&dest)
                .map_err(io_err(&dest))?;
            bundle.copy_entry(&format!("{FILES_PREFIX}{}", f.target), &mut out)?;
            out.sync_all().map_err(io_err(&dest))?;
        }
        let meta = root.join(".bale");
        fs::create_dir(&meta).map_err(io_err(&meta))?;
        write_private(&meta.join("release.json"), &to_json(&release), 0o644)?;
        let mut images_json = Vec::new();
        bundle.copy_entry(IMAGES_PATH, &mut images_json)?;
        write_private(&meta.join("images.json"), &images_json, 0o644)?;
        write_private(
            &meta.join("compose.pins.yml"),
            compose_pins(&images).as_bytes(),
            0o644,
        )?;
        sync_tree(root);
        // A release directory left by an interrupted run is replaced whole.
        if fs::symlink_metadata(&release_dir).is_ok() {
            fs::remove_dir_all(&release_dir).map_err(io_err(&release_dir))?;
        }
        let staged = staging.keep();
        fs::rename(&staged, &release_dir).map_err(io_err(&release_dir))?;
        sync_dir(&meta_dir.join("releases"));
    }
    fault_point("stage");

    // 5. Secrets: keep every existing value, add only what is missing.
    let env_path = target.join(".env");
    let existing = match fs::symlink_metadata(&env_path) {
        Ok(m) if m.file_type().is_symlink() || !m.is_file() => {
            return Err(InstallError::Unsafe {
                path: env_path,
                message: "is not a regular file; refusing to write secrets through it".into(),
            });
        }
        Ok(_) => fs::read_to_string(&env_path).map_err(io_err(&env_path))?,
        Err(_) => String::new(),
    };
    let have = env_keys(&existing);
    let mut text = existing.clone();
    let mut added = Vec::new();
    for s in &bundle.spec.secrets {
        if !have.contains(&s.name) {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!("{}={}\n", s.name, generate_secret(s)));
            added.push(s.name.clone());
        }
    }
    let mode_ok = fs::metadata(&env_path).is_ok_and(|m| m.permissions().mode() & 0o077 == 0);
    if !added.is_empty() || !mode_ok {
        write_private(&env_path, text.as_bytes(), 0o600)?;
    }
    fault_point("secrets");

    // 6. Switch: one rename makes the new release current.
    if !is_current {
        let link_tmp = meta_dir.join(format!("current-{}", std::process::id()));
        let _ = fs::remove_file(&link_tmp);
        std::os::unix::fs::symlink(Path::new(".bale/releases").join(&id), &link_tmp)
            .map_err(io_err(&link_tmp))?;
        fs::rename(&link_tmp, target.join("current")).map_err(io_err(&target.join("current")))?;
        sync_dir(&target);
        prune(
            &meta_dir.join("releases"),
            &id,
            current.as_ref().map(|(d, _)| d.as_path()),
        );
    }
    fault_point("switch");

    // 7. Start and wait.
    let mut services = Vec::new();
    if opts.up {
        services = up(&target, &release_dir, &release, opts)?;
    }
    drop(lock);
    Ok(InstallReport {
        name,
        version,
        previous,
        action,
        manifest_digest,
        release: release_dir,
        images: outcomes,
        secrets_added: added,
        services,
    })
}

fn to_json(v: &impl Serialize) -> Vec<u8> {
    // Plain structs of strings and numbers always serialise.
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Creates `dir` and its parents below `root`, refusing symlinks on the way.
fn create_dirs(root: &Path, dir: &Path) -> Result<(), InstallError> {
    let rel = dir.strip_prefix(root).map_err(|_| InstallError::Unsafe {
        path: dir.to_owned(),
        message: "outside the staging directory".into(),
    })?;
    let mut cur = root.to_owned();
    for c in rel.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() && !m.file_type().is_symlink() => {}
            Ok(_) => {
                return Err(InstallError::Unsafe {
                    path: cur,
                    message: "is not a directory".into(),
                });
            }
            Err(_) => fs::create_dir(&cur).map_err(io_err(&cur))?,
        }
    }
    Ok(())
}

fn sync_tree(root: &Path) {
    for e in walkdir::WalkDir::new(root)
        .contents_first(true)
        .into_iter()
        .flatten()
    {
        if e.file_type().is_dir() {
            sync_dir(e.path());
        }
    }
}

/// Removes releases other than the new and the previous one.
fn prune(releases: &Path, keep: &str, previous: Option<&Path>) {
    let Ok(rd) = fs::read_dir(releases) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_name().to_str() == Some(keep) || Some(p.as_path()) == previous {
            continue;
        }
        let _ = fs::remove_dir_all(&p);
    }
}

/// The compose command line for a release: project, files, env file.
pub fn compose_args(target: &Path, release_dir: &Path, release: &Release) -> Option<Vec<String>> {
    let compose = release.compose.as_ref()?;
    let project = release
        .project
        .clone()
        .unwrap_or_else(|| release.name.clone());
    Some(vec![
        "--project-name".into(),
        project,
        "--project-directory".into(),
        release_dir.display().to_string(),
        "--env-file".into(),
        target.join(".env").display().to_string(),
        "-f".into(),
        release_dir.join(compose).display().to_string(),
        "-f".into(),
        release_dir
            .join(".bale")
            .join("compose.pins.yml")
            .display()
            .to_string(),
    ])
}

fn up(
    target: &Path,
    release_dir: &Path,
    release: &Release,
    opts: &InstallOptions<'_>,
) -> Result<Vec<Container>, InstallError> {
    let mut args = compose_args(target, release_dir, release)
        .ok_or_else(|| InstallError::Bundle("the bundle has no compose file to start".into()))?;
    args.extend(["up".into(), "-d".into(), "--remove-orphans".into()]);
    opts.runtime.compose(&args)?;
    let project = release
        .project
        .clone()
        .unwrap_or_else(|| release.name.clone());
    let deadline = Instant::now() + opts.timeout;
    loop {
        let containers = opts.runtime.containers(&project)?;
        let waiting: Vec<String> = containers
            .iter()
            .filter(|c| c.state != "running" || !(c.health.is_empty() || c.health == "healthy"))
            .map(|c| {
                format!(
                    "{} ({}{})",
                    c.service,
                    c.state,
                    if c.health.is_empty() {
                        String::new()
                    } else {
                        format!("/{}", c.health)
                    }
                )
            })
            .collect();
        let failed = containers
            .iter()
            .any(|c| c.state == "exited" || c.state == "dead" || c.health == "unhealthy");
        if !containers.is_empty() && waiting.is_empty() {
            return Ok(containers);
        }
        if failed || Instant::now() >= deadline {
            return Err(InstallError::Unhealthy {
                seconds: opts.timeout.as_secs(),
                services: if waiting.is_empty() {
                    vec!["no containers".into()]
                } else {
                    waiting
                },
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
