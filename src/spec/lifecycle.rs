//! What a stack's life on a site needs from bundle.toml: the bind-mounted
//! directories that hold data (`[data] paths`), the dump jobs that make a
//! live snapshot consistent (`[snapshot] jobs`), and whether an upgrade
//! snapshots first (`[upgrade] snapshot`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_spanned::Spanned;

use super::Err;
use crate::located::LocatedError;
use crate::validate::check_relative_target;

/// The parsed sections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lifecycle {
    /// Directories relative to the install directory whose contents are
    /// the site's data (bind mounts), snapshotted with the volumes.
    pub data_paths: Vec<String>,
    /// Services run (to completion) before a snapshot, instead of stopping
    /// the stack: they write a consistent dump while it keeps running.
    pub snapshot_jobs: Vec<String>,
    /// Whether `install --up` over an installed release snapshots first.
    pub upgrade_snapshot: bool,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            data_paths: Vec::new(),
            snapshot_jobs: Vec::new(),
            upgrade_snapshot: true,
        }
    }
}

/// `[data]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawData {
    #[serde(default)]
    paths: Vec<Spanned<String>>,
}

/// `[snapshot]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSnapshot {
    #[serde(default)]
    jobs: Vec<Spanned<String>>,
}

/// `[upgrade]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpgrade {
    snapshot: Option<bool>,
}

/// Checks the three sections; snapshot jobs must be services of `[images]`
/// and the stack must have a compose file to run them.
pub(super) fn parse(
    data: Option<&RawData>,
    snapshot: Option<&RawSnapshot>,
    upgrade: Option<&RawUpgrade>,
    images: &BTreeMap<String, Spanned<toml::Value>>,
    has_compose: bool,
    err: Err<'_>,
) -> Result<Lifecycle, LocatedError> {
    let mut data_paths = Vec::new();
    for p in data.map(|d| d.paths.as_slice()).unwrap_or_default() {
        let plain = p.get_ref().trim_end_matches('/');
        check_relative_target(plain).map_err(|m| {
            err(
                p.span(),
                format!("[data] path: {}", m.replace("target", "path")),
            )
        })?;
        let first = plain.split('/').next().unwrap_or_default();
        if [".bale", "current", ".env", "values"].contains(&first) {
            return Err(err(
                p.span(),
                format!(
                    "[data] path `{plain}` is bale's own; name a directory of the stack's data"
                ),
            ));
        }
        if !data_paths.contains(&plain.to_owned()) {
            data_paths.push(plain.to_owned());
        }
    }
    let mut snapshot_jobs = Vec::new();
    for j in snapshot.map(|s| s.jobs.as_slice()).unwrap_or_default() {
        if !has_compose || !images.contains_key(j.get_ref()) {
            return Err(err(
                j.span(),
                format!(
                    "[snapshot] job `{}` is not a service of [images] with a [compose] file",
                    j.get_ref()
                ),
            ));
        }
        snapshot_jobs.push(j.get_ref().clone());
    }
    Ok(Lifecycle {
        data_paths,
        snapshot_jobs,
        upgrade_snapshot: upgrade.and_then(|u| u.snapshot).unwrap_or(true),
    })
}
