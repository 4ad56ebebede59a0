//! The bundle file: a deterministic, uncompressed tar.
//!
//! Entry order (see docs/bundle-format.md):
//!
//! ```text
//! bale-manifest            every other entry: sha256 and size (sha256sum -c format)
//! bale-manifest.minisig    minisign signature over bale-manifest (absent if unsigned)
//! bale/images.json         the images: service, name, platform, digests
//! oci-layout, index.json   an OCI image layout of every image and platform
//! manifest.json            `docker load` index (first platform)
//! blobs/sha256/<hex>       every blob once, by digest
//! bale/bundle.toml, bale/bundle.lock
//! files/<target>           overlays and the compose file
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, ThreadedHashWriter};
use crate::lock::{LockedImage, Lockfile};
use crate::sign::{SignError, SigningKey};
use crate::spec::BundleSpec;
use crate::store::Store;

/// The signed manifest's entry name.
pub const MANIFEST_PATH: &str = "bale-manifest";
/// The signature's entry name (`minisign -Vm bale-manifest` finds it).
pub const SIGNATURE_PATH: &str = "bale-manifest.minisig";
/// The image list's entry name.
pub const IMAGES_PATH: &str = "bale/images.json";
/// Prefix of overlay entries.
pub const FILES_PREFIX: &str = "files/";
/// Largest manifest or signature a reader accepts.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

const MANIFEST_HEADER: &str = "# bale bundle manifest, format 1";

/// Errors building a bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Blobs the store lacks.
    #[error("{} blob(s) are not in the store {}; run `bale fetch` (or build without --offline):\n{}", missing.len(), store.display(), missing.iter().map(|m| format!("  - {m}")).collect::<Vec<_>>().join("\n"))]
    Missing {
        /// The store.
        store: PathBuf,
        /// `digest (image)` for each.
        missing: Vec<String>,
    },
    /// An overlay that cannot go into a bundle.
    #[error("overlay {}: {message}", path.display())]
    Overlay {
        /// The offending path.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A store blob that no longer hashes to its name.
    #[error(
        "store blob {expected} hashes to {actual}: the store is corrupt; delete the file and fetch again"
    )]
    Corrupt {
        /// Its name.
        expected: Digest,
        /// What it hashes to.
        actual: Digest,
    },
    /// A source changed while the bundle was written.
    #[error("{}: changed while the bundle was being written", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// Signing.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// A template that does not render with placeholder values.
    #[error("template {}:{line}:{column}: {message}", path.display())]
    Template {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (0: unknown).
        column: usize,
        /// Why.
        message: String,
    },
    /// A compose file that would need a registry at install time.
    #[error("compose file {}: {message}", path.display())]
    Compose {
        /// The compose file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Checks, before any work, that a bundle can be written at `out`: its
/// directory exists and is a directory.
pub fn check_output(out: &Path) -> Result<(), BundleError> {
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(BundleError::Io {
            path: dir.to_owned(),
            source: io::Error::other(
                "is not a directory: -o must name a file in an existing directory",
            ),
        }),
        Err(e) => Err(BundleError::Io {
            path: dir.to_owned(),
            source: io::Error::new(
                e.kind(),
                format!(
                    "{e}: the output directory must exist (create it, or give -o another path)"
                ),
            ),
        }),
    }
}

/// One entry of the signed manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Path in the tar.
    pub path: String,
    /// SHA-256 of its content.
    pub sha256: Digest,
    /// Size in bytes.
    pub size: u64,
}

/// The signed manifest: name, version, and every other entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Bundle name.
    pub name: String,
    /// Bundle version.
    pub version: String,
    /// Entries, in tar order.
    pub entries: Vec<ManifestEntry>,
}

impl Manifest {
    /// The text form: comment lines sha256sum ignores, then for each entry
    /// a `#size` line and a `sha256sum` line.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{MANIFEST_HEADER}\n# name {}\n# version {}\n# Check: minisign -Vm bale-manifest -p KEY.pub && sha256sum --strict -c bale-manifest\n",
            self.name, self.version
        );
        for e in &self.entries {
            s.push_str(&format!(
                "#size {} {}\n{}  {}\n",
                e.size,
                e.path,
                e.sha256.hex(),
                e.path
            ));
        }
        s
    }

    /// Parses the text form strictly.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut lines = text.lines();
        if lines.next() != Some(MANIFEST_HEADER) {
            return Err("not a bale manifest (format 1)".into());
        }
        let field = |line: Option<&str>, key: &str| -> Result<String, String> {
            line.and_then(|l| l.strip_prefix(&format!("# {key} ")))
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| format!("manifest lacks its `# {key}` line"))
        };
        let name = field(lines.next(), "name")?;
        let version = field(lines.next(), "version")?;
        lines.next();
        let mut entries = Vec::new();
        while let Some(size_line) = lines.next() {
            let (size, path) = size_line
                .strip_prefix("#size ")
                .and_then(|r| r.split_once(' '))
                .ok_or_else(|| format!("malformed manifest line `{}`", cut(size_line)))?;
            let size: u64 = size
                .parse()
                .map_err(|_| format!("bad size in `{}`", cut(size_line)))?;
            let sum_line = lines
                .next()
                .ok_or_else(|| format!("manifest ends after the size of {}", cut(path)))?;
            let (hex, sum_path) = sum_line
                .split_once("  ")
                .ok_or_else(|| format!("malformed manifest line `{}`", cut(sum_line)))?;
            if sum_path != path {
                return Err(format!("manifest names `{}` twice differently", cut(path)));
            }
            let sha256: Digest = format!("sha256:{hex}")
                .parse()
                .map_err(|_| format!("bad sha256 for `{}`", cut(path)))?;
            entries.push(ManifestEntry {
                path: path.to_owned(),
                sha256,
                size,
            });
        }
        Ok(Manifest {
            name,
            version,
            entries,
        })
    }
}

fn cut(s: &str) -> String {
    s.chars().take(120).collect()
}

/// The trusted comment signed with the manifest: it ties the signature to
/// this bundle's name, version and manifest digest.
pub fn trusted_comment(name: &str, version: &str, manifest: &Digest) -> String {
    format!("bale-bundle name={name} version={version} manifest={manifest}")
}

/// Parses a trusted comment written by [`trusted_comment`].
pub fn parse_trusted_comment(s: &str) -> Option<(String, String, String)> {
    let rest = s.strip_prefix("bale-bundle ")?;
    let mut name = None;
    let mut version = None;
    let mut manifest = None;
    for part in rest.split(' ') {
        match part.split_once('=')? {
            ("name", v) => name = Some(v.to_owned()),
            ("version", v) => version = Some(v.to_owned()),
            ("manifest", v) => manifest = Some(v.to_owned()),
            _ => return None,
        }
    }
    Some((name?, version?, manifest?))
}

/// One image and platform of the bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRecord {
    /// Service.
    pub service: String,
    /// Canonical name.
    pub name: String,
    /// Platform.
    pub platform: String,
    /// What the tag pointed to (index or manifest).
    pub digest: Digest,
    /// The platform's manifest.
    pub manifest: Digest,
    /// Its media type.
    pub manifest_media_type: String,
    /// The config; a runtime's image ID.
    pub config: Digest,
    /// Layers, in order.
    pub layers: Vec<Digest>,
    /// Manifest + config + layers, in bytes.
    pub size: u64,
}

/// An overlay file of the bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    /// Target path in the install directory.
    pub target: String,
    /// Size in bytes.
    pub size: u64,
    /// Whether it is executable.
    pub executable: bool,
    /// Whether it is a template, rendered at install.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub template: bool,
}

/// `bale/images.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagesFile {
    /// Format version (1).
    pub format: u32,
    /// Bundle name.
    pub name: String,
    /// Bundle version.
    pub version: String,
    /// Images, by service then platform.
    pub images: Vec<ImageRecord>,
    /// Overlay files, by target.
    pub files: Vec<FileRecord>,
    /// Compose file target, if any.
    pub compose: Option<String>,
    /// Compose project name, if any.
    pub project: Option<String>,
}

enum Source {
    Bytes(Vec<u8>),
    Blob(Digest),
    File(PathBuf),
}

struct Entry {
    path: String,
    mode: u32,
    size: u64,
    sha256: Digest,
    source: Source,
}

impl Entry {
    fn bytes(path: &str, bytes: Vec<u8>) -> Entry {
        Entry {
            path: path.to_owned(),
            mode: 0o644,
            size: bytes.len() as u64,
            sha256: Digest::of(&bytes),
            source: Source::Bytes(bytes),
        }
    }
}

/// What a build produced.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    /// The bundle file.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// SHA-256 of the whole file.
    pub sha256: Digest,
    /// SHA-256 of the signed manifest.
    pub manifest: Digest,
    /// Entries in the bundle.
    pub entries: usize,
    /// Signing key ID, if signed.
    pub key_id: Option<String>,
}

fn hash_file(path: &Path) -> Result<(Digest, u64), BundleError> {
    crate::digest::hash_file(path).map_err(io_err(path))
}

/// Checks that a path can be named in the manifest and in sha256sum's format.
fn plain_path(p: &str) -> bool {
    !p.is_empty() && !p.chars().any(|c| c.is_control() || c == '\\')
}

fn overlay_entries(spec: &BundleSpec) -> Result<(Vec<Entry>, Vec<FileRecord>), BundleError> {
    let mut sources: Vec<(String, String, bool)> = spec
        .overlays
        .iter()
        .map(|o| (o.source.clone(), o.target.clone(), o.template))
        .collect();
    if let Some(c) = &spec.compose {
        sources.push((c.source.clone(), c.target.clone(), c.template));
    }
    let mut files: BTreeMap<String, (PathBuf, bool, bool)> = BTreeMap::new();
    let mut add =
        |target: String, path: PathBuf, exec: bool, template: bool| -> Result<(), BundleError> {
            if !plain_path(&target) {
                return Err(BundleError::Overlay {
                    path,
                    message: "its name has a control character or backslash".into(),
                });
            }
            if files
                .insert(target.clone(), (path.clone(), exec, template))
                .is_some()
            {
                return Err(BundleError::Overlay {
                    path,
                    message: format!("target `{target}` comes from two overlays"),
                });
            }
            Ok(())
        };
    for (source, target, template) in sources {
        let root = spec.source_path(&source);
        for item in walkdir::WalkDir::new(&root)
            .follow_links(false)
            .sort_by_file_name()
        {
            let item = item.map_err(|e| BundleError::Overlay {
                path: e.path().map_or(root.clone(), Path::to_owned),
                message: e.to_string(),
            })?;
            let ft = item.file_type();
            if ft.is_dir() {
                continue;
            }
            let path = item.path().to_owned();
            if ft.is_symlink() {
                return Err(BundleError::Overlay {
                    path,
                    message: "is a symbolic link: bale copies only regular files and directories"
                        .into(),
                });
            }
            if !ft.is_file() {
                return Err(BundleError::Overlay {
                    path,
                    message: "is neither a regular file nor a directory".into(),
                });
            }
            let rel = item
                .path()
                .strip_prefix(&root)
                .ok()
                .and_then(|r| r.to_str())
                .ok_or_else(|| BundleError::Overlay {
                    path: path.clone(),
                    message: "its name is not UTF-8".into(),
                })?;
            let full_target = if rel.is_empty() {
                target.clone()
            } else {
                format!("{target}/{rel}")
            };
            use std::os::unix::fs::PermissionsExt as _;
            let meta = item.metadata().map_err(|e| BundleError::Overlay {
                path: path.clone(),
                message: e.to_string(),
            })?;
            add(
                full_target,
                path,
                meta.permissions().mode() & 0o111 != 0,
                template,
            )?;
        }
    }
    let mut entries = Vec::new();
    let mut records = Vec::new();
    for (target, (path, exec, template)) in files {
        let (sha256, size) = hash_file(&path)?;
        records.push(FileRecord {
            target: target.clone(),
            size,
            executable: exec,
            template,
        });
        entries.push(Entry {
            path: format!("{FILES_PREFIX}{target}"),
            mode: if exec { 0o755 } else { 0o644 },
            size,
            sha256,
            source: Source::File(path),
        });
    }
    Ok((entries, records))
}

/// Renders every template with placeholder values, so that an undefined
/// name or a syntax error stops the build, naming file, line and column.
/// Returns the rendered compose file when it is a template.
pub fn check_templates(spec: &BundleSpec, lock: &Lockfile) -> Result<Option<String>, BundleError> {
    let images = lock
        .images
        .iter()
        .map(|i| (i.service.clone(), i.name.clone()))
        .collect();
    let ctx = crate::install::templates::placeholder_context(spec, images);
    let render = |path: &Path| -> Result<String, BundleError> {
        let text = std::fs::read_to_string(path).map_err(|e| BundleError::Overlay {
            path: path.to_owned(),
            message: format!("a template must be UTF-8 text: {e}"),
        })?;
        let name = path.display().to_string();
        crate::install::templates::render(&name, &text, &ctx).map_err(|e| BundleError::Template {
            path: path.to_owned(),
            line: e.line,
            column: e.column,
            message: e.message,
        })
    };
    for o in spec.overlays.iter().filter(|o| o.template) {
        let root = spec.source_path(&o.source);
        for item in walkdir::WalkDir::new(&root)
            .sort_by_file_name()
            .into_iter()
            .flatten()
        {
            if item.file_type().is_file() {
                render(item.path())?;
            }
        }
    }
    match &spec.compose {
        Some(c) if c.template => render(&spec.source_path(&c.source)).map(Some),
        _ => Ok(None),
    }
}

/// Every compose service must run an image of the bundle, under the same
/// service name: otherwise the installed stack would need a registry.
fn check_compose(
    spec: &BundleSpec,
    rendered: Option<&str>,
    names: &BTreeSet<String>,
) -> Result<(), BundleError> {
    let Some(c) = &spec.compose else {
        return Ok(());
    };
    let path = spec.source_path(&c.source);
    let err = |message: String| BundleError::Compose {
        path: path.clone(),
        message,
    };
    let text = match rendered {
        Some(t) => t.to_owned(),
        None => std::fs::read_to_string(&path).map_err(io_err(&path))?,
    };
    let doc: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| err(format!("not valid YAML: {e}")))?;
    let services = doc
        .get("services")
        .and_then(serde_norway::Value::as_mapping)
        .ok_or_else(|| err("has no `services` mapping".into()))?;
    for (name, svc) in services {
        let name = name.as_str().unwrap_or_default();
        // A service of [images], or one (from a template) that names a
        // bundle image: `image: {{ images.web }}`.
        let image = svc.get("image").and_then(|i| i.as_str());
        if spec.image(name).is_none() && !image.is_some_and(|i| names.contains(i)) {
            return Err(err(format!(
                "service `{name}` has no image in bundle.toml's [images]: add `{name} = \"IMAGE:TAG\"`, or give it `image:` of a bundle image (`{{{{ images.SERVICE }}}}` in a template)"
            )));
        }
        if svc.get("build").is_some() {
            return Err(err(format!(
                "service `{name}` has `build:`: a bundle carries images, not build contexts"
            )));
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct IndexJson<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    manifests: Vec<IndexEntry<'a>>,
}

#[derive(Serialize)]
struct IndexEntry<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    digest: &'a Digest,
    size: u64,
    platform: BTreeMap<&'static str, String>,
    annotations: BTreeMap<&'static str, &'a str>,
}

#[derive(Serialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Vec<String>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn json(v: &impl Serialize) -> Vec<u8> {
    // Serialising plain structs of strings and numbers cannot fail.
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Image records of a lock: one per image and platform.
pub fn image_records(lock: &Lockfile) -> Vec<ImageRecord> {
    let mut out = Vec::new();
    for img in &lock.images {
        for p in &img.platforms {
            out.push(ImageRecord {
                service: img.service.clone(),
                name: img.name.clone(),
                platform: p.platform.clone(),
                digest: img.digest.clone(),
                manifest: p.manifest.clone(),
                manifest_media_type: p.manifest_media_type.clone(),
                config: p.config.clone(),
                layers: p.layers.iter().map(|l| l.digest.clone()).collect(),
                size: p.manifest_size
                    + p.config_size
                    + p.layers.iter().map(|l| l.size).sum::<u64>(),
            });
        }
    }
    out
}

fn layout_entries(lock: &Lockfile, records: &[ImageRecord]) -> (Vec<Entry>, BTreeMap<Digest, u64>) {
    let mut blobs: BTreeMap<Digest, u64> = BTreeMap::new();
    for img in &lock.images {
        for b in LockedImage::blobs(img) {
            blobs.insert(b.digest, b.size);
        }
    }
    // One index entry per (name, platform): services sharing an image share it.
    let mut seen = BTreeSet::new();
    let mut index = Vec::new();
    let mut docker = Vec::new();
    let first_platform = lock
        .images
        .first()
        .and_then(|i| i.platforms.first())
        .map(|p| p.platform.clone());
    let mut sorted: Vec<&ImageRecord> = records.iter().collect();
    sorted.sort_by(|a, b| (&a.name, &a.platform).cmp(&(&b.name, &b.platform)));
    for r in sorted {
        if !seen.insert((r.name.clone(), r.platform.clone())) {
            continue;
        }
        let mut platform = BTreeMap::new();
        let mut parts = r.platform.split('/');
        platform.insert("os", parts.next().unwrap_or_default().to_owned());
        platform.insert("architecture", parts.next().unwrap_or_default().to_owned());
        if let Some(v) = parts.next() {
            platform.insert("variant", v.to_owned());
        }
        let mut annotations = BTreeMap::new();
        annotations.insert("io.containerd.image.name", r.name.as_str());
        annotations.insert("org.opencontainers.image.ref.name", r.name.as_str());
        index.push(IndexEntry {
            media_type: &r.manifest_media_type,
            digest: &r.manifest,
            size: blobs.get(&r.manifest).copied().unwrap_or(0),
            platform,
            annotations,
        });
        if Some(&r.platform) == first_platform.as_ref() {
            docker.push(DockerEntry {
                config: blob_path(&r.config),
                repo_tags: vec![r.name.clone()],
                layers: r.layers.iter().map(blob_path).collect(),
            });
        }
    }
    let entries = vec![
        Entry::bytes(
            "oci-layout",
            b"{\"imageLayoutVersion\":\"1.0.0\"}\n".to_vec(),
        ),
        Entry::bytes(
            "index.json",
            json(&IndexJson {
                schema_version: 2,
                media_type: crate::manifest::OCI_INDEX,
                manifests: index,
            }),
        ),
        Entry::bytes("manifest.json", json(&docker)),
    ];
    (entries, blobs)
}

/// Builds the bundle of `spec` and `lock` from `store` into `output`,
/// signed with `key` when given. The file appears only when complete.
pub fn build(
    spec: &BundleSpec,
    lock: &Lockfile,
    store: &Store,
    output: &Path,
    key: Option<&SigningKey>,
) -> Result<BuildReport, BundleError> {
    let records = image_records(lock);
    let (layout, blobs) = layout_entries(lock, &records);
    let missing: Vec<String> = lock
        .images
        .iter()
        .flat_map(|img| {
            img.blobs()
                .into_iter()
                .filter(|b| !store.has(&b.digest, b.size))
                .map(|b| format!("{} ({})", b.digest, img.name))
                .collect::<Vec<_>>()
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !missing.is_empty() {
        return Err(BundleError::Missing {
            store: store.root().to_owned(),
            missing,
        });
    }
    let rendered_compose = check_templates(spec, lock)?;
    let names = lock.images.iter().map(|i| i.name.clone()).collect();
    check_compose(spec, rendered_compose.as_deref(), &names)?;
    let (files, file_records) = overlay_entries(spec)?;
    let images = ImagesFile {
        format: 1,
        name: spec.name.clone(),
        version: spec.version.to_string(),
        images: records,
        files: file_records,
        compose: spec.compose.as_ref().map(|c| c.target.clone()),
        project: spec.compose.as_ref().map(|c| c.project.clone()),
    };
    let read = |p: &Path| std::fs::read(p).map_err(io_err(p));
    let mut entries = vec![Entry::bytes(IMAGES_PATH, json(&images))];
    entries.extend(layout);
    for (digest, size) in &blobs {
        entries.push(Entry {
            path: blob_path(digest),
            mode: 0o644,
            size: *size,
            sha256: digest.clone(),
            source: Source::Blob(digest.clone()),
        });
    }
    entries.push(Entry::bytes("bale/bundle.toml", read(&spec.path)?));
    entries.push(Entry::bytes(
        "bale/bundle.lock",
        read(&crate::lock::lock_path(spec))?,
    ));
    entries.extend(files);

    let manifest = Manifest {
        name: spec.name.clone(),
        version: spec.version.to_string(),
        entries: entries
            .iter()
            .map(|e| ManifestEntry {
                path: e.path.clone(),
                sha256: e.sha256.clone(),
                size: e.size,
            })
            .collect(),
    };
    let manifest_bytes = manifest.render().into_bytes();
    let manifest_digest = Digest::of(&manifest_bytes);
    let mut head = vec![Entry::bytes(MANIFEST_PATH, manifest_bytes.clone())];
    if let Some(k) = key {
        let comment = trusted_comment(&manifest.name, &manifest.version, &manifest_digest);
        head.push(Entry::bytes(
            SIGNATURE_PATH,
            k.sign(&manifest_bytes, &comment).into_bytes(),
        ));
    }
    head.extend(entries);

    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".bale-build-")
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    let mut builder = tar::Builder::new(ThreadedHashWriter::new(io::BufWriter::with_capacity(
        1 << 20,
        tmp.as_file(),
    )));
    for e in &head {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(e.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(e.size);
        match &e.source {
            Source::Bytes(b) => builder
                .append_data(&mut h, &e.path, &b[..])
                .map_err(io_err(tmp.path()))?,
            Source::Blob(d) => {
                // 1 MiB reads: far fewer system calls than io::copy's 8 KiB.
                let mut r = io::BufReader::with_capacity(
                    1 << 20,
                    CheckedReader::new(store.read(d).map_err(|e| BundleError::Io {
                        path: store.blob_path(d),
                        source: io::Error::other(e.to_string()),
                    })?),
                );
                builder
                    .append_data(&mut h, &e.path, &mut r)
                    .map_err(io_err(tmp.path()))?;
                let (actual, n) = r.into_inner().finish();
                if &actual != d || n != e.size {
                    return Err(BundleError::Corrupt {
                        expected: d.clone(),
                        actual,
                    });
                }
            }
            Source::File(p) => {
                let mut r = CheckedReader::new(File::open(p).map_err(io_err(p))?);
                builder
                    .append_data(&mut h, &e.path, &mut r)
                    .map_err(|_| BundleError::Changed { path: p.clone() })?;
                let (actual, n) = r.finish();
                if actual != e.sha256 || n != e.size {
                    return Err(BundleError::Changed { path: p.clone() });
                }
            }
        }
    }
    let hw = builder.into_inner().map_err(io_err(tmp.path()))?;
    let size = hw.written();
    let (sha256, mut buf) = hw.finish().map_err(io_err(tmp.path()))?;
    buf.flush().map_err(io_err(tmp.path()))?;
    drop(buf);
    tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
    use std::os::unix::fs::PermissionsExt as _;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(io_err(tmp.path()))?;
    tmp.persist(output).map_err(|e| BundleError::Io {
        path: output.to_owned(),
        source: e.error,
    })?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(BuildReport {
        path: output.to_owned(),
        size,
        sha256,
        manifest: manifest_digest,
        entries: head.len(),
        key_id: key.map(SigningKey::key_id),
    })
}

/// A reader that hashes what passes and stops at `tar`'s declared size:
/// a source longer than announced is caught by the size check after.
struct CheckedReader<R> {
    inner: R,
    hasher: sha2::Sha256,
    n: u64,
}

impl<R: Read> CheckedReader<R> {
    fn new(inner: R) -> Self {
        use sha2::Digest as _;
        CheckedReader {
            inner,
            hasher: sha2::Sha256::new(),
            n: 0,
        }
    }

    fn finish(mut self) -> (Digest, u64) {
        // Bytes past the declared size mean the source changed; count them.
        let mut extra = [0u8; 1];
        if matches!(self.inner.read(&mut extra), Ok(1)) {
            self.n += 1;
        }
        (Digest::from_sha256(self.hasher), self.n)
    }
}

impl<R: Read> Read for CheckedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use sha2::Digest as _;
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_and_is_strict() {
        let m = Manifest {
            name: "demo".into(),
            version: "1.0.0".into(),
            entries: vec![ManifestEntry {
                path: "files/a b.conf".into(),
                sha256: Digest::of(b"x"),
                size: 1,
            }],
        };
        let text = m.render();
        assert_eq!(Manifest::parse(&text), Ok(m));
        assert!(Manifest::parse(&text.replace("#size 1", "#size x")).is_err());
        assert!(Manifest::parse("hello").is_err());
    }

    #[test]
    fn trusted_comment_round_trips() {
        let d = Digest::of(b"m");
        let c = trusted_comment("demo", "1.0.0", &d);
        assert_eq!(
            parse_trusted_comment(&c),
            Some(("demo".into(), "1.0.0".into(), d.to_string()))
        );
        assert_eq!(parse_trusted_comment("timestamp:1"), None);
    }
}
