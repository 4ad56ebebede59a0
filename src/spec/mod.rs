//! `bundle.toml`: what a bundle holds.
//!
//! Parsed with spans so that every error names file, line and column.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use serde_spanned::Spanned;

pub use crate::located::LocatedError;
use crate::reference::ImageSource;

mod files;
mod images;
mod lifecycle;
mod secrets;
mod targets;
mod values;

pub use crate::platform::Platform;
pub use lifecycle::Lifecycle;
pub use secrets::{Alphabet, SecretSpec};
use targets::valid_name;
pub use values::{Preflight, Value, ValueSpec, ValueType, lenient_version};

/// Errors reading bundle.toml.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Syntax or meaning; names line and column.
    #[error(transparent)]
    Invalid(#[from] LocatedError),
}

/// A TOML error's message, naming the key where toml only says "duplicate key".
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim_end().to_owned();
    match e.span() {
        Some(span) if msg.starts_with("duplicate key") => {
            let key = text.get(span.clone()).unwrap_or_default().trim();
            let table = text[..span.start.min(text.len())]
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| l.starts_with('['))
                .unwrap_or("the top level");
            format!("duplicate key `{key}` in {table}: each key may appear once")
        }
        // `version = 1.0.0` reads as a float that does not end: TOML wants
        // the quotes a version, a name or an image needs.
        Some(span) if msg.starts_with("invalid float") || msg.starts_with("invalid number") => {
            let line_start = text[..span.start.min(text.len())]
                .rfind('\n')
                .map_or(0, |i| i + 1);
            let line = text[line_start..].lines().next().unwrap_or_default();
            match line.split_once('=') {
                Some((key, value)) => format!(
                    "{msg}: write a string in quotes: {} = \"{}\"",
                    key.trim(),
                    crate::quote::quote(value.trim())
                ),
                None => msg,
            }
        }
        _ => msg,
    }
}

/// The span of the header line `[name]`, if the text has one.
fn table_span(text: &str, name: &str) -> Option<Range<usize>> {
    let header = format!("[{name}]");
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim() == header {
            let start = offset + (line.len() - line.trim_start().len());
            return Some(start..start + header.len());
        }
        offset += line.len();
    }
    None
}

/// One image of the bundle.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// Service name (the key in `[images]`).
    pub service: String,
    /// The value as written.
    pub written: String,
    /// Where it comes from.
    pub source: ImageSource,
    /// The cosign public key its signature must verify with (relative to
    /// bundle.toml): the entry's own `cosign_key`, else the bundle's.
    pub cosign_key: Option<String>,
}

/// One overlay: a file or directory copied into the install directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overlay {
    /// Source, relative to bundle.toml, as written.
    pub source: String,
    /// Target, relative to the install directory.
    pub target: String,
    /// Whether the source is a directory.
    pub is_dir: bool,
    /// Whether its files are minijinja templates, rendered at install.
    pub template: bool,
}

/// The compose file of the stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compose {
    /// Source, relative to bundle.toml.
    pub source: String,
    /// Target in the install directory.
    pub target: String,
    /// Compose project name.
    pub project: String,
    /// Whether the compose file is a template, rendered at install.
    pub template: bool,
    /// One-shot services: `--up` waits for each to exit 0.
    pub jobs: Vec<String>,
}

/// A parsed and checked bundle.toml.
#[derive(Clone, Debug)]
pub struct BundleSpec {
    /// Path of the bundle.toml read.
    pub path: PathBuf,
    /// Directory sources are relative to.
    pub root: PathBuf,
    /// Bundle name.
    pub name: String,
    /// Bundle version.
    pub version: semver::Version,
    /// Platforms, in the order written, deduplicated.
    pub platforms: Vec<Platform>,
    /// Images, ordered by service name.
    pub images: Vec<ImageSpec>,
    /// Overlays, in the order written.
    pub overlays: Vec<Overlay>,
    /// The compose file, if declared.
    pub compose: Option<Compose>,
    /// Secrets, ordered by name.
    pub secrets: Vec<SecretSpec>,
    /// Site values, ordered by name.
    pub values: Vec<ValueSpec>,
    /// What the host must have.
    pub preflight: Preflight,
    /// Whether upstream attestations are locked and carried (`[bundle]
    /// attestations`, default true).
    pub attestations: bool,
    /// Who supplies the bundle (`[bundle] supplier`), for its SBOM.
    pub supplier: Option<String>,
    /// Data paths, snapshot jobs and the upgrade's snapshot.
    pub lifecycle: Lifecycle,
    /// The bundle's OpenVEX document (`[bundle] vex`), relative to
    /// bundle.toml: carried signed as `bale/vex.json`, applied by `bale scan`.
    pub vex: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    bundle: Spanned<RawBundle>,
    #[serde(default)]
    images: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    overlays: Vec<Spanned<RawOverlay>>,
    compose: Option<Spanned<RawCompose>>,
    #[serde(default)]
    secrets: BTreeMap<String, Spanned<secrets::RawSecret>>,
    #[serde(default)]
    values: BTreeMap<String, Spanned<values::RawValueSpec>>,
    preflight: Option<values::RawPreflight>,
    data: Option<lifecycle::RawData>,
    snapshot: Option<lifecycle::RawSnapshot>,
    upgrade: Option<lifecycle::RawUpgrade>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBundle {
    name: Spanned<String>,
    version: Spanned<String>,
    platforms: Option<Vec<Spanned<String>>>,
    attestations: Option<bool>,
    cosign_key: Option<Spanned<String>>,
    supplier: Option<Spanned<String>>,
    vex: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverlay {
    source: Spanned<String>,
    target: Spanned<String>,
    #[serde(default)]
    template: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompose {
    file: Spanned<String>,
    target: Option<Spanned<String>>,
    project: Option<Spanned<String>>,
    #[serde(default)]
    template: bool,
    #[serde(default)]
    jobs: Vec<Spanned<String>>,
}

impl BundleSpec {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_owned(),
            source,
        })?;
        let root = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        Ok(Self::parse(path, &root, &text)?)
    }

    /// Parses `text` read from `path`, resolving sources under `root`.
    pub fn parse(path: &Path, root: &Path, text: &str) -> Result<Self, LocatedError> {
        Self::parse_inner(path, root, text, true)
    }

    /// Parses a bundle.toml taken from a bundle, where the sources it names
    /// are not on disk: everything is checked but their existence.
    pub fn parse_unchecked(path: &Path, text: &str) -> Result<Self, LocatedError> {
        Self::parse_inner(path, Path::new("."), text, false)
    }

    fn parse_inner(
        path: &Path,
        root: &Path,
        text: &str,
        check_fs: bool,
    ) -> Result<Self, LocatedError> {
        let err = |span: Range<usize>, msg: String| LocatedError::at(path, text, Some(span), msg);
        let raw: RawSpec = toml::from_str(text)
            .map_err(|e| LocatedError::at(path, text, e.span(), toml_message(text, &e)))?;

        let bundle = raw.bundle.get_ref();
        let name = bundle.name.get_ref().clone();
        if !valid_name(&name) {
            return Err(err(
                bundle.name.span(),
                format!(
                    "bundle name `{name}` must be lowercase letters, digits, `-`, `_`, `.` (at most 64)"
                ),
            ));
        }
        let version = semver::Version::parse(bundle.version.get_ref()).map_err(|e| {
            err(
                bundle.version.span(),
                format!("version `{}` is not semver: {e}", bundle.version.get_ref()),
            )
        })?;
        let platforms = platforms(&raw.bundle, &err)?;
        let images = images::parse(
            &raw.images,
            bundle.cosign_key.as_ref(),
            root,
            check_fs,
            &err,
        )?;
        if images.is_empty() {
            // At the empty table where there is one, else at the top.
            let at = table_span(text, "images");
            let what = if at.is_some() {
                "[images] is empty: map each service name to an image reference (web = \"nginx:1.27\")"
            } else {
                "no images: add an [images] table mapping service names to image references"
            };
            return Err(LocatedError::at(path, text, at, what.into()));
        }
        let sources = files::Sources {
            root,
            check_fs,
            err: &err,
        };
        let mut targets = BTreeSet::new();
        let overlays = files::overlays(&raw.overlays, &sources, &mut targets)?;
        let compose = raw
            .compose
            .as_ref()
            .map(|c| files::compose(c.get_ref(), &raw.images, &name, &sources, &mut targets))
            .transpose()?;
        let values = values::parse(&raw.values, &err)?;
        let secrets = secrets::parse(&raw.secrets, &values, &err)?;
        let preflight = match &raw.preflight {
            Some(p) => values::parse_preflight(p, &err)?,
            None => Preflight::default(),
        };
        let supplier = supplier(bundle, &err)?;
        let vex = files::vex(bundle.vex.as_ref(), &sources)?;
        let lifecycle = lifecycle::parse(
            raw.data.as_ref(),
            raw.snapshot.as_ref(),
            raw.upgrade.as_ref(),
            &raw.images,
            raw.compose.is_some(),
            &err,
        )?;
        Ok(BundleSpec {
            lifecycle,
            path: path.to_owned(),
            root: root.to_owned(),
            name,
            version,
            platforms,
            images,
            overlays,
            compose,
            secrets,
            values,
            preflight,
            attestations: bundle.attestations.unwrap_or(true),
            supplier,
            vex,
        })
    }

    /// The distinct cosign key paths the images require, sorted.
    pub fn cosign_keys(&self) -> Vec<&str> {
        let keys: BTreeSet<&str> = self
            .images
            .iter()
            .filter_map(|i| i.cosign_key.as_deref())
            .collect();
        keys.into_iter().collect()
    }

    /// The compose file's setup jobs (none without a compose file).
    pub fn jobs(&self) -> Vec<String> {
        self.compose
            .as_ref()
            .map(|c| c.jobs.clone())
            .unwrap_or_default()
    }

    /// The value declared as `name`.
    pub fn value(&self, name: &str) -> Option<&ValueSpec> {
        self.values.iter().find(|v| v.name == name)
    }

    /// The image of `service`.
    pub fn image(&self, service: &str) -> Option<&ImageSpec> {
        self.images.iter().find(|i| i.service == service)
    }

    /// The full path of a source written relative to bundle.toml.
    pub fn source_path(&self, rel: &str) -> PathBuf {
        let mut p = self.root.clone();
        for c in Path::new(rel).components() {
            if let Component::Normal(n) = c {
                p.push(n);
            }
        }
        p
    }
}

/// How a located error is made: at a span of the file being parsed.
pub(super) type Err<'a> = &'a dyn Fn(Range<usize>, String) -> LocatedError;

/// `[bundle] platforms`, each known and listed once; linux/amd64 by default.
fn platforms(bundle: &Spanned<RawBundle>, err: Err<'_>) -> Result<Vec<Platform>, LocatedError> {
    let mut platforms = Vec::new();
    match &bundle.get_ref().platforms {
        None => platforms.push(Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }),
        Some(list) if list.is_empty() => {
            return Err(err(bundle.span(), "platforms is empty".into()));
        }
        Some(list) => {
            for p in list {
                let parsed = Platform::parse(p.get_ref()).ok_or_else(|| {
                    err(
                        p.span(),
                        format!(
                            "platform `{}` is not os/architecture[/variant]",
                            p.get_ref()
                        ),
                    )
                })?;
                if let Err(m) = parsed.check_known() {
                    return Err(err(p.span(), m));
                }
                if !platforms.contains(&parsed) {
                    platforms.push(parsed);
                }
            }
        }
    }

    Ok(platforms)
}

/// `[bundle] supplier`: printable, at most 200 characters.
fn supplier(bundle: &RawBundle, err: Err<'_>) -> Result<Option<String>, LocatedError> {
    Ok(match &bundle.supplier {
        None => None,
        Some(s) => {
            let v = s.get_ref().trim();
            if v.is_empty() || v.len() > 200 || v.chars().any(char::is_control) {
                return Err(err(
                    s.span(),
                    "supplier: the organisation that supplies the bundle, at most 200 printable characters".into(),
                ));
            }
            Some(v.to_owned())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BundleSpec, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        std::fs::write(dir.path().join("a.conf"), "x").map_err(|e| e.to_string())?;
        BundleSpec::parse(Path::new("bundle.toml"), dir.path(), text).map_err(|e| e.to_string())
    }

    const HEAD: &str =
        "[bundle]\nname = \"demo\"\nversion = \"1.0.0\"\n[images]\nweb = \"nginx:1.27\"\n";

    #[test]
    fn data_paths_snapshot_jobs_and_the_upgrade_snapshot_are_read_and_checked() {
        let compose = "[compose]\nfile = \"a.conf\"\n";
        let ok = parse(&format!(
            "{HEAD}{compose}[data]\npaths = [\"data/\", \"uploads/files\"]\n[snapshot]\njobs = [\"web\"]\n[upgrade]\nsnapshot = false\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.lifecycle.data_paths, ["data", "uploads/files"]);
        assert_eq!(ok.lifecycle.snapshot_jobs, ["web"]);
        assert!(!ok.lifecycle.upgrade_snapshot);
        assert!(
            parse(HEAD)
                .unwrap_or_else(|e| panic!("{e}"))
                .lifecycle
                .upgrade_snapshot
        );
        for (bad, says) in [
            ("[data]\npaths = [\"../etc\"]\n", "contains `..`"),
            ("[data]\npaths = [\"/var/lib\"]\n", "absolute"),
            ("[data]\npaths = [\".bale/x\"]\n", "is bale's own"),
            ("[snapshot]\njobs = [\"db\"]\n", "not a service of [images]"),
            ("[upgrade]\nsnapshots = true\n", "unknown field"),
        ] {
            let e = parse(&format!("{HEAD}{compose}{bad}"))
                .err()
                .unwrap_or_default();
            assert!(e.contains(says) && e.contains("bundle.toml:"), "{bad}: {e}");
        }
    }

    #[test]
    fn minimal_bundle_defaults_to_linux_amd64() {
        let s = parse(HEAD).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.platforms[0].to_string(), "linux/amd64");
        assert_eq!(
            s.images[0].source.reference().canonical_name(),
            "docker.io/library/nginx:1.27"
        );
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let e = parse(&format!("{HEAD}[bundle2]\n"))
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("bundle.toml:6:2:"), "{e}");
        assert!(e.contains("unknown field"), "{e}");
        let e = parse("[bundle]\nname = \"demo\"\nversoin = \"1\"\n")
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("bundle.toml:3:1:"), "{e}");
    }

    #[test]
    fn bad_reference_names_its_value() {
        let e =
            parse("[bundle]\nname = \"demo\"\nversion = \"1.0.0\"\n[images]\nweb = \"Nginx:1\"\n")
                .err()
                .unwrap_or_default();
        assert!(e.starts_with("bundle.toml:5:7:"), "{e}");
        assert!(e.contains("service `web`"), "{e}");
    }

    #[test]
    fn overlay_targets_must_stay_inside() {
        for (target, want) in [
            ("/etc/x", "absolute"),
            ("a/../../x", "`..`"),
            ("a//b", "empty"),
        ] {
            let e = parse(&format!(
                "{HEAD}[[overlays]]\nsource = \"a.conf\"\ntarget = \"{target}\"\n"
            ))
            .err()
            .unwrap_or_default();
            assert!(e.starts_with("bundle.toml:8:10:"), "{e}");
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn missing_overlay_source_is_named() {
        let e = parse(&format!(
            "{HEAD}[[overlays]]\nsource = \"nope.conf\"\ntarget = \"x\"\n"
        ))
        .err()
        .unwrap_or_default();
        assert!(e.starts_with("bundle.toml:7:10:"), "{e}");
        assert!(e.contains("nope.conf"), "{e}");
    }

    #[test]
    fn secrets_are_checked() {
        let s = parse(&format!(
            "{HEAD}[secrets.DB_PASSWORD]\nlength = 32\nalphabet = \"hex\"\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.secrets[0].alphabet, Alphabet::Hex);
        let e = parse(&format!("{HEAD}[secrets.db]\nlength = 32\n"))
            .err()
            .unwrap_or_default();
        assert!(e.contains("environment variable name"), "{e}");
        let e = parse(&format!("{HEAD}[secrets.DB]\nlength = 3\n"))
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("bundle.toml:7:10:"), "{e}");
    }
}
