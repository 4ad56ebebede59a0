//! The lock file: read strictly, written with `toml_edit` in a fixed
//! order, and compared with bundle.toml.

use std::path::Path;

use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value, value};

use super::{LOCK_VERSION, LockError, LockedArtifact, LockedImage, Lockfile};
use crate::spec::{BundleSpec, ImageSpec, LocatedError, Platform};

impl Lockfile {
    /// Reads `path`; `Ok(None)` if it does not exist.
    pub fn load(path: &Path) -> Result<Option<Self>, LockError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LockError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let lock: Lockfile = toml::from_str(&text).map_err(|e| {
            LocatedError::at(path, &text, e.span(), e.message().trim_end().to_owned())
        })?;
        if lock.version != LOCK_VERSION {
            return Err(LockError::Version {
                path: path.to_owned(),
                found: lock.version,
            });
        }
        Ok(Some(lock))
    }

    /// The entry of `service`.
    pub fn image(&self, service: &str) -> Option<&LockedImage> {
        self.images.iter().find(|i| i.service == service)
    }

    /// Renders the lock in its one canonical form.
    pub fn render(&self) -> String {
        let mut doc = DocumentMut::new();
        doc.decor_mut().set_prefix(
            "# bundle.lock: written by `bale lock`. Commit it; do not edit it by hand.\n",
        );
        doc["version"] = value(self.version);
        let mut images = ArrayOfTables::new();
        let mut sorted: Vec<&LockedImage> = self.images.iter().collect();
        sorted.sort_by(|a, b| a.service.cmp(&b.service));
        for img in sorted {
            let mut t = Table::new();
            t["service"] = value(&img.service);
            t["reference"] = value(&img.reference);
            t["name"] = value(&img.name);
            t["digest"] = value(img.digest.to_string());
            t["size"] = value(img.size as i64);
            t["media-type"] = value(&img.media_type);
            let mut plats = ArrayOfTables::new();
            for p in &img.platforms {
                let mut pt = Table::new();
                pt["platform"] = value(&p.platform);
                pt["manifest"] = value(p.manifest.to_string());
                pt["manifest-size"] = value(p.manifest_size as i64);
                pt["manifest-media-type"] = value(&p.manifest_media_type);
                pt["config"] = value(p.config.to_string());
                pt["config-size"] = value(p.config_size as i64);
                pt["config-media-type"] = value(&p.config_media_type);
                pt["layers"] = layers_item(
                    p.layers
                        .iter()
                        .map(|l| (&l.digest, l.size, l.media_type.as_str(), None)),
                );
                if !p.attestations.is_empty() {
                    let mut atts = ArrayOfTables::new();
                    for a in &p.attestations {
                        atts.push(artifact_table(a));
                    }
                    pt["attestation"] = Item::ArrayOfTables(atts);
                }
                plats.push(pt);
            }
            t["platform"] = Item::ArrayOfTables(plats);
            if let Some(sig) = &img.signature {
                t["signature"] = Item::Table(artifact_table(sig));
            }
            images.push(t);
        }
        doc["image"] = Item::ArrayOfTables(images);
        doc.to_string()
    }

    /// What disagrees between `spec` and this lock; empty when they agree.
    pub fn disagreements(&self, spec: &BundleSpec) -> Vec<String> {
        let mut out = Vec::new();
        for image in &spec.images {
            let Some(l) = self.image(&image.service) else {
                out.push(format!("service `{}` is not locked", image.service));
                continue;
            };
            out.extend(entry_disagreement(l, image, spec));
        }
        for l in &self.images {
            if spec.image(&l.service).is_none() {
                out.push(format!(
                    "service `{}` is locked but not in bundle.toml",
                    l.service
                ));
            }
        }
        out
    }
}

/// An attestation or signature manifest as a lock table.
fn artifact_table(a: &LockedArtifact) -> Table {
    let mut t = Table::new();
    t["manifest"] = value(a.manifest.to_string());
    t["manifest-size"] = value(a.manifest_size as i64);
    t["manifest-media-type"] = value(&a.manifest_media_type);
    t["config"] = value(a.config.to_string());
    t["config-size"] = value(a.config_size as i64);
    t["config-media-type"] = value(&a.config_media_type);
    if let Some(k) = &a.key {
        t["key"] = value(k.to_string());
    }
    t["layers"] = layers_item(a.layers.iter().map(|l| {
        (
            &l.digest,
            l.size,
            l.media_type.as_str(),
            l.predicate_type.as_deref(),
        )
    }));
    t
}

/// A `layers` array, one inline table a line: digest, size, media type
/// and, for attestations, the predicate type.
fn layers_item<'a>(
    layers: impl Iterator<Item = (&'a crate::digest::Digest, u64, &'a str, Option<&'a str>)>,
) -> Item {
    let mut arr = Array::new();
    for (digest, size, media_type, predicate) in layers {
        let mut it = InlineTable::new();
        it.insert("digest", digest.to_string().into());
        it.insert("size", (size as i64).into());
        it.insert("media-type", media_type.into());
        if let Some(p) = predicate {
            it.insert("predicate-type", p.into());
        }
        let mut v = Value::InlineTable(it);
        v.decor_mut().set_prefix("\n  ");
        arr.push_formatted(v);
    }
    arr.set_trailing_comma(true);
    arr.set_trailing("\n");
    Item::Value(Value::Array(arr))
}

/// Why a lock entry no longer fits its bundle.toml image, if it does not.
pub(super) fn entry_disagreement(
    l: &LockedImage,
    image: &ImageSpec,
    spec: &BundleSpec,
) -> Option<String> {
    let platforms: &[Platform] = &spec.platforms;
    if !spec.attestations && l.platforms.iter().any(|p| !p.attestations.is_empty()) {
        return Some(format!(
            "service `{}`: attestations = false in bundle.toml, the lock has attestations",
            image.service
        ));
    }
    if l.reference != image.written {
        return Some(format!(
            "service `{}`: bundle.toml says `{}`, the lock has `{}`",
            image.service, image.written, l.reference
        ));
    }
    if let Some(pin) = &image.source.reference().digest
        && pin != &l.digest
    {
        return Some(format!(
            "service `{}`: pinned to {pin}, locked at {}",
            image.service, l.digest
        ));
    }
    if image.cosign_key.is_some() != l.signature.is_some() {
        return Some(match &image.cosign_key {
            Some(k) => format!(
                "service `{}`: bundle.toml requires a cosign signature ({k}), the lock has none",
                image.service
            ),
            None => format!(
                "service `{}`: the lock has a cosign signature bundle.toml no longer requires",
                image.service
            ),
        });
    }
    let want: Vec<String> = platforms.iter().map(|p| p.to_string()).collect();
    let have: Vec<String> = l.platforms.iter().map(|p| p.platform.clone()).collect();
    if want != have {
        return Some(format!(
            "service `{}`: platforms {} in bundle.toml, {} in the lock",
            image.service,
            want.join(", "),
            have.join(", ")
        ));
    }
    None
}
