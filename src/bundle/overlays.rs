//! Overlays and the compose file: what goes into `files/`, checked (no
//! links, templates that render, compose services that run bundle images).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::{BundleError, Entry, FILES_PREFIX, FileRecord, Source, hash_file, io_err};
use crate::lock::Lockfile;
use crate::spec::BundleSpec;

/// Checks that a path can be named in the manifest and in sha256sum's format.
fn plain_path(p: &str) -> bool {
    !p.is_empty() && !p.chars().any(|c| c.is_control() || c == '\\')
}

pub(super) fn overlay_entries(
    spec: &BundleSpec,
) -> Result<(Vec<Entry>, Vec<FileRecord>), BundleError> {
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
    let ctx = crate::templates::placeholder_context(spec, images);
    use crate::templates::Kind;
    let render = |path: &Path, kind: Kind| -> Result<String, BundleError> {
        let text = std::fs::read_to_string(path).map_err(|e| BundleError::Overlay {
            path: path.to_owned(),
            message: format!("a template must be UTF-8 text: {e}"),
        })?;
        let name = path.display().to_string();
        crate::templates::render(&name, &text, &ctx, kind).map_err(|e| BundleError::Template {
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
                render(item.path(), Kind::Plain)?;
            }
        }
    }
    match &spec.compose {
        Some(c) if c.template => render(&spec.source_path(&c.source), Kind::Compose).map(Some),
        _ => Ok(None),
    }
}

/// Every compose service must run an image of the bundle, under the same
/// service name: otherwise the installed stack would need a registry.
pub(super) fn check_compose(
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
