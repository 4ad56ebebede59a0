//! `[images]`: service names to image references, each optionally with the
//! cosign key its upstream signature must verify with.

use std::collections::BTreeMap;
use std::path::Path;

use serde_spanned::Spanned;

use super::{ImageSpec, LocatedError};
use crate::reference::ImageSource;
use crate::validate::check_relative_target;

use super::Err;

/// Parses `[images]`; `bundle_key` is `[bundle] cosign_key`, the default
/// of every entry. With `check_fs`, OCI layouts and key files must exist
/// under `root`.
pub(super) fn parse(
    raw: &BTreeMap<String, Spanned<toml::Value>>,
    bundle_key: Option<&Spanned<String>>,
    root: &Path,
    check_fs: bool,
    err: Err<'_>,
) -> Result<Vec<ImageSpec>, LocatedError> {
    if let Some(k) = bundle_key {
        check_key_path(root, k.get_ref(), check_fs).map_err(|m| err(k.span(), m))?;
    }
    let mut images = Vec::new();
    for (service, value) in raw {
        if !service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            || service.is_empty()
        {
            return Err(err(
                value.span(),
                format!("service name `{service}` may hold only letters, digits, `-`, `_`, `.`"),
            ));
        }
        let (written, own_key) = image_entry(value.get_ref())
            .map_err(|m| err(value.span(), format!("service `{service}`: {m}")))?;
        let source = ImageSource::parse(&written)
            .map_err(|e| err(value.span(), format!("image of service `{service}`: {e}")))?;
        if let ImageSource::OciLayout { path: p, .. } = &source
            && check_fs
            && !root.join(p).join("index.json").is_file()
        {
            return Err(err(
                value.span(),
                format!(
                    "image of service `{service}`: `{}` is not an OCI image layout (no index.json)",
                    root.join(p).display()
                ),
            ));
        }
        let cosign_key = match own_key {
            Some(k) => {
                check_key_path(root, &k, check_fs)
                    .map_err(|m| err(value.span(), format!("service `{service}`: {m}")))?;
                Some(k)
            }
            None => bundle_key.map(|k| k.get_ref().clone()),
        };
        images.push(ImageSpec {
            service: service.clone(),
            written,
            source,
            cosign_key,
        });
    }
    Ok(images)
}

/// An `[images]` value: a reference, or a table `{ image = "...",
/// cosign_key = "..." }`; returns the reference and the entry's key.
fn image_entry(value: &toml::Value) -> Result<(String, Option<String>), String> {
    match value {
        toml::Value::String(s) => Ok((s.clone(), None)),
        toml::Value::Table(t) => {
            if let Some(k) = t.keys().find(|k| *k != "image" && *k != "cosign_key") {
                return Err(format!(
                    "unknown key `{k}` (an image entry takes `image` and `cosign_key`)"
                ));
            }
            let text = |key: &str| match t.get(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("`{key}` must be a string")),
            };
            let image = text("image")?.ok_or("the entry has no `image`")?;
            Ok((image, text("cosign_key")?))
        }
        _ => Err("an image entry is a reference string or a table with `image`".into()),
    }
}

/// Checks a cosign key path: relative, inside the project, and a file.
fn check_key_path(root: &Path, rel: &str, check_fs: bool) -> Result<(), String> {
    check_relative_target(rel)
        .map_err(|m| format!("cosign_key: {}", m.replace("target", "path")))?;
    if check_fs && !root.join(rel).is_file() {
        return Err(format!(
            "cosign_key `{}` is not a readable file",
            root.join(rel).display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_a_reference_or_a_table() {
        let plain = toml::Value::String("redis:8".into());
        assert_eq!(image_entry(&plain), Ok(("redis:8".into(), None)));
        let table: toml::Value = toml::from_str("image = \"redis:8\"\ncosign_key = \"k.pub\"")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            image_entry(&table),
            Ok(("redis:8".into(), Some("k.pub".into())))
        );
        let stray: toml::Value = toml::from_str("image = \"redis:8\"\nkey = \"k.pub\"")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(image_entry(&stray).is_err_and(|m| m.contains("unknown key `key`")));
        assert!(check_key_path(Path::new("."), "../k.pub", false).is_err());
    }
}
