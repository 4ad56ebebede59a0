//! `bale audit --report FILE`: the audit as a document an auditor can file,
//! in HTML (one self-contained page: inline style, no script, no external
//! asset, readable printed) or Markdown: when and on which host it ran,
//! the absolute install directory, every image, service, file and finding
//! in a fixed order, the vulnerability scan when the audit had a database,
//! and where the report was written.

use std::path::Path;

use super::AuditReport;

pub use crate::document::Format;
use crate::document::{Document, Table};

fn opt<T: std::fmt::Display>(v: Option<&T>) -> String {
    v.map_or_else(|| "—".to_owned(), |d| d.to_string())
}

/// The sections of the report, shared by both formats.
fn sections(r: &AuditReport) -> (Vec<(&'static str, String)>, Vec<Table>) {
    let result = if r.ok() {
        "as signed: no finding".to_owned()
    } else {
        format!("NOT as signed: {} finding(s)", r.findings.len())
    };
    let identity = vec![
        ("Bundle", format!("{} {}", r.name, r.version)),
        ("Signed manifest (SHA-256)", r.manifest_digest.to_string()),
        ("Signature key (minisign key ID)", r.key_id.clone()),
        (
            "Checked against",
            match r.reference {
                "bundle" => "the signed bundle file".to_owned(),
                _ => "the installed record".to_owned(),
            },
        ),
        ("Audit time (UTC)", r.time.clone()),
        (
            "Host",
            match &r.host.machine_id {
                Some(m) => format!("{} (machine ID {m})", r.host.hostname),
                None => format!("{} (no machine ID)", r.host.hostname),
            },
        ),
        ("Install directory", r.target.display().to_string()),
        ("Runtime", r.runtime.clone()),
        ("SBOM (SPDX 2.3, SHA-256)", opt(r.sbom.as_ref())),
        ("Result", result),
    ];
    let images = Table {
        caption: "Images".into(),
        head: vec![
            "Service",
            "Image",
            "Platform",
            "Tag digest",
            "Manifest",
            "Config (image ID)",
            "Found",
            "Status",
            "Upstream signature",
            "Attestations",
            "SBOM packages",
        ],
        rows: r
            .images
            .iter()
            .map(|i| {
                vec![
                    i.service.clone(),
                    i.name.clone(),
                    i.platform.clone(),
                    i.digest.to_string(),
                    i.expected_manifest.to_string(),
                    i.expected.to_string(),
                    opt(i.found.as_ref()),
                    i.status.to_owned(),
                    i.signature
                        .as_ref()
                        .map_or("none required".to_owned(), |s| format!("cosign {s}")),
                    if i.attestations.is_empty() {
                        "none".to_owned()
                    } else {
                        i.attestations.join(", ")
                    },
                    opt(i.sbom_packages.as_ref()),
                ]
            })
            .collect(),
    };
    let services = Table {
        caption: "Services".into(),
        head: vec!["Service", "Containers", "State", "Health", "Status"],
        rows: r
            .services
            .iter()
            .map(|s| {
                vec![
                    s.service.clone(),
                    s.containers.join(", "),
                    s.state.clone(),
                    s.health.clone(),
                    s.status.to_owned(),
                ]
            })
            .collect(),
    };
    let files = Table {
        caption: "Installed files".into(),
        head: vec!["File", "Signed SHA-256", "Found SHA-256", "Status"],
        rows: r
            .files
            .iter()
            .map(|f| {
                vec![
                    f.target.clone(),
                    opt(f.expected.as_ref()),
                    opt(f.found.as_ref()),
                    f.status.to_owned(),
                ]
            })
            .collect(),
    };
    let findings = Table {
        caption: "Findings".into(),
        head: vec!["Kind", "Subject", "What differs"],
        rows: r
            .findings
            .iter()
            .map(|f| vec![f.kind.to_owned(), f.subject.clone(), f.message.clone()])
            .collect(),
    };
    (identity, vec![images, services, files, findings])
}

/// Renders `r` in `format`; `written_to` is the report's own absolute
/// path, which its last line states.
pub fn render(r: &AuditReport, format: Format, written_to: Option<&Path>) -> String {
    let (mut facts, mut tables) = sections(r);
    if let Some(scan) = &r.scan {
        // Before "Result": the scan's facts, then a table per image.
        let at = facts.len().saturating_sub(1);
        for (n, f) in crate::scan::report::facts(scan).into_iter().enumerate() {
            facts.insert(at + n, f);
        }
        tables.extend(scan.images.iter().map(crate::scan::report::table));
    }
    let mut footer = format!(
        "Written by bale {} on {} at {}",
        env!("CARGO_PKG_VERSION"),
        r.host.hostname,
        r.time
    );
    if let Some(p) = written_to {
        footer.push_str(&format!(" to {}", p.display()));
    }
    footer.push_str(". The machine-readable evidence is `bale audit --json`; a signed one, `bale audit --receipt`.");
    crate::document::render(
        &Document {
            title: format!("bale audit: {} {}", r.name, r.version),
            facts,
            ok: r.ok(),
            tables,
            footer,
        },
        format,
    )
}
