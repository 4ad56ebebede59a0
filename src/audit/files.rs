//! The audit's files: every installed file byte-identical, nothing added,
//! no value changed in `.env` since the install, the image pins intact.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::expected::Expected;
use super::{FileAudit, Findings};
use crate::digest::Digest;
use crate::install::{self, Release, compose_pins};

/// Every file of the release as found, sorted by target.
pub(super) fn audit(
    expected: &Expected,
    target: &Path,
    release_dir: &Path,
    release: &Release,
    findings: &mut Findings,
) -> Vec<FileAudit> {
    let want: BTreeMap<&str, &Digest> = expected
        .files
        .iter()
        .map(|f| (f.target.as_str(), &f.sha256))
        .collect();
    let mut out = Vec::new();
    let mut present = BTreeSet::new();
    for e in walkdir::WalkDir::new(release_dir)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() != 1 || e.file_name() != ".bale")
        .flatten()
    {
        if e.file_type().is_dir() {
            continue;
        }
        let rel = e
            .path()
            .strip_prefix(release_dir)
            .ok()
            .and_then(|p| p.to_str())
            .unwrap_or_default()
            .to_owned();
        present.insert(rel.clone());
        let found = if e.file_type().is_file() {
            crate::digest::hash_regular(e.path()).ok().map(|(d, _)| d)
        } else {
            None
        };
        out.push(file_audit(
            rel,
            found,
            e.file_type().is_file(),
            &want,
            findings,
        ));
    }
    for f in &expected.files {
        if !present.contains(&f.target) {
            findings.add("file", &f.target, "missing".into());
            out.push(FileAudit {
                target: f.target.clone(),
                expected: Some(f.sha256.clone()),
                found: None,
                status: "missing",
            });
        }
    }
    for name in install::changed_since_install(target, release) {
        findings.add(
            "value",
            &name,
            "changed in .env since the last install; `bale install` of the same bundle applies it"
                .into(),
        );
    }
    pins(expected, release_dir, release, findings);
    out.sort_by(|a, b| a.target.cmp(&b.target));
    out
}

/// One file found under the release: expected and equal, modified, or added.
fn file_audit(
    rel: String,
    found: Option<Digest>,
    regular: bool,
    want: &BTreeMap<&str, &Digest>,
    findings: &mut Findings,
) -> FileAudit {
    let Some(want) = want.get(rel.as_str()) else {
        findings.add("file", &rel, "added: not part of the bundle".into());
        return FileAudit {
            target: rel,
            expected: None,
            found,
            status: "added",
        };
    };
    let ok = found.as_ref() == Some(*want) && regular;
    if !ok {
        findings.add(
            "file",
            &rel,
            format!(
                "modified: {} instead of {want}",
                found
                    .as_ref()
                    .map_or("not a regular file".into(), |d| d.to_string())
            ),
        );
    }
    FileAudit {
        target: rel,
        expected: Some((*want).clone()),
        found,
        status: if ok { "ok" } else { "modified" },
    }
}

/// The compose image pins bale wrote must still pin the locked images.
fn pins(expected: &Expected, release_dir: &Path, release: &Release, findings: &mut Findings) {
    let compose = install::compose_text(release_dir, release);
    let path = release_dir.join(".bale").join("compose.pins.yml");
    let want = compose_pins(
        &expected.platform_images(),
        compose.as_deref(),
        release.runtime_registry.as_deref(),
        &release.jobs,
    );
    let found = crate::digest::read_regular(&path, crate::templates::MAX_RENDERED as u64)
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    if found.as_deref() != Some(want.as_str()) {
        findings.add(
            "file",
            ".bale/compose.pins.yml",
            "modified: the compose image pins are not the locked images".into(),
        );
    }
}
