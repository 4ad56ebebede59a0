//! The files bundle.toml declares: overlays and the compose file, each
//! source a plain relative path to a regular file or directory (no link)
//! and each target declared once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_spanned::Spanned;

use super::targets::valid_name;
use super::{Compose, Err, Overlay, RawCompose, RawOverlay};
use crate::located::LocatedError;
use crate::validate::{check_relative_target, check_target};

/// Where sources are read from, and how errors are located.
pub(super) struct Sources<'a> {
    /// The directory of bundle.toml.
    pub root: &'a Path,
    /// Whether sources are looked at on disk (not when reading a bundle's
    /// own copy).
    pub check_fs: bool,
    /// An error at a span of bundle.toml.
    pub err: Err<'a>,
}

impl Sources<'_> {
    /// Checks source `s` of `what`; whether it is a directory.
    fn check(&self, s: &Spanned<String>, what: &str) -> Result<bool, LocatedError> {
        let (root, check_fs, err) = (self.root, self.check_fs, self.err);
        let rel = s.get_ref();
        check_relative_target(rel).map_err(|m| {
            err(
                s.span(),
                format!("{what} source: {}", m.replace("target", "path")),
            )
        })?;
        if !check_fs {
            return Ok(false);
        }
        let full = root.join(rel);
        let meta = std::fs::symlink_metadata(&full).map_err(|e| {
            err(
                s.span(),
                format!("{what} source `{}` cannot be read: {e}", full.display()),
            )
        })?;
        if meta.file_type().is_symlink() {
            return Err(err(
                s.span(),
                format!(
                    "{what} source `{}` is a symbolic link: bale copies only regular files and directories",
                    full.display()
                ),
            ));
        }
        if !meta.is_file() && !meta.is_dir() {
            return Err(err(
                s.span(),
                format!(
                    "{what} source `{}` is neither a regular file nor a directory",
                    full.display()
                ),
            ));
        }
        Ok(meta.is_dir())
    }
}

/// `[[overlays]]`, each target added to `targets`.
pub(super) fn overlays(
    raw: &[Spanned<RawOverlay>],
    sources: &Sources<'_>,
    targets: &mut BTreeSet<String>,
) -> Result<Vec<Overlay>, LocatedError> {
    let err = sources.err;
    let mut overlays = Vec::new();
    for o in raw {
        let o = o.get_ref();
        let is_dir = sources.check(&o.source, "overlay")?;
        check_target(o.target.get_ref()).map_err(|m| err(o.target.span(), m))?;
        if !targets.insert(o.target.get_ref().clone()) {
            return Err(err(
                o.target.span(),
                format!("target `{}` is declared twice", o.target.get_ref()),
            ));
        }
        overlays.push(Overlay {
            source: o.source.get_ref().clone(),
            target: o.target.get_ref().clone(),
            is_dir,
            template: o.template,
        });
    }
    Ok(overlays)
}

/// `[compose]`: its file, target (`docker-compose.yml` by default),
/// project (the bundle's name by default) and jobs (services of `images`).
pub(super) fn compose(
    c: &RawCompose,
    images: &BTreeMap<String, Spanned<toml::Value>>,
    name: &str,
    sources: &Sources<'_>,
    targets: &mut BTreeSet<String>,
) -> Result<Compose, LocatedError> {
    let err = sources.err;
    if sources.check(&c.file, "compose")? {
        return Err(err(c.file.span(), "compose file is a directory".into()));
    }
    let target = match &c.target {
        Some(t) => {
            check_target(t.get_ref()).map_err(|m| err(t.span(), m))?;
            t.get_ref().clone()
        }
        None => "docker-compose.yml".to_owned(),
    };
    if !targets.insert(target.clone()) {
        let span = c.target.as_ref().map_or(c.file.span(), |t| t.span());
        return Err(err(span, format!("target `{target}` is declared twice")));
    }
    let project = match &c.project {
        Some(p) if valid_name(p.get_ref()) => p.get_ref().clone(),
        Some(p) => {
            return Err(err(
                p.span(),
                format!(
                    "project `{}` must be lowercase letters, digits, `-`, `_`",
                    p.get_ref()
                ),
            ));
        }
        None => name.to_owned(),
    };
    for j in &c.jobs {
        if !images.contains_key(j.get_ref()) {
            return Err(err(
                j.span(),
                format!("job `{}` is not a service of [images]", j.get_ref()),
            ));
        }
    }
    Ok(Compose {
        source: c.file.get_ref().clone(),
        target,
        project,
        template: c.template,
        jobs: c.jobs.iter().map(|j| j.get_ref().clone()).collect(),
    })
}

/// `[bundle] vex`: a regular file that is an OpenVEX document bale can
/// apply, checked now so a bad one fails the build, not a scan at the site.
pub(super) fn vex(
    raw: Option<&Spanned<String>>,
    sources: &Sources,
) -> Result<Option<String>, LocatedError> {
    let Some(s) = raw else {
        return Ok(None);
    };
    if sources.check(s, "vex")? {
        return Err((sources.err)(
            s.span(),
            "vex must name a file (an OpenVEX JSON document), not a directory".into(),
        ));
    }
    if sources.check_fs {
        let full = sources.root.join(s.get_ref());
        let bytes = crate::digest::read_regular(&full, crate::vex::MAX_VEX_BYTES + 1)
            .map_err(|e| (sources.err)(s.span(), format!("vex `{}`: {e}", full.display())))?;
        crate::vex::parse(&bytes, s.get_ref())
            .map_err(|e| (sources.err)(s.span(), e.to_string()))?;
    }
    Ok(Some(s.get_ref().clone()))
}
