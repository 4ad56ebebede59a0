//! `bale scan --report FILE`: the scan as a document an auditor can file,
//! in the audit report's style: its facts (what was scanned, when, against
//! which database and how old it is), then a table per image.

use super::{ImageScan, ScanReport};
use crate::document::{Document, Format, Table};

/// The facts of a scan, as the scan and audit reports show them.
pub fn facts(r: &ScanReport) -> Vec<(&'static str, String)> {
    let db = &r.database;
    let age = db.age_days.map_or_else(
        || "no record says when it changed".to_owned(),
        |d| format!("{d} day(s) older than the scan"),
    );
    let open: Vec<String> = r.open.iter().map(|(k, v)| format!("{v} {k}")).collect();
    vec![
        ("Scanned", r.subject.display().to_string()),
        ("Scan time (UTC)", r.time.clone()),
        (
            "Vulnerability database",
            db.sources
                .iter()
                .map(|s| s.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        (
            "Records read",
            format!("{} ({} withdrawn, left out)", db.records, db.withdrawn),
        ),
        (
            "Newest record",
            format!(
                "{} ({age})",
                db.newest_modified.as_deref().unwrap_or("none")
            ),
        ),
        (
            "VEX documents",
            if r.vex.is_empty() {
                "none".to_owned()
            } else {
                r.vex.join(", ")
            },
        ),
        (
            "Open findings",
            if open.is_empty() {
                "none".to_owned()
            } else {
                open.join(", ")
            },
        ),
    ]
}

/// A table of one image's findings.
pub fn table(img: &ImageScan) -> Table {
    Table {
        caption: format!(
            "Vulnerabilities: {} ({} OS packages, {})",
            img.service,
            img.packages,
            img.ecosystem.as_deref().unwrap_or("no OSV ecosystem")
        ),
        head: vec![
            "Id",
            "Aliases",
            "Package",
            "Installed",
            "Fixed",
            "Severity",
            "VEX",
        ],
        rows: img
            .findings
            .iter()
            .map(|f| {
                let vex = f.vex.as_ref().map_or_else(String::new, |v| {
                    let why = v
                        .justification
                        .as_deref()
                        .or(v.impact_statement.as_deref())
                        .unwrap_or("");
                    format!("{} {why} ({})", v.status, v.source)
                });
                let severity = match f.score {
                    Some(s) => format!("{} ({s:.1})", f.severity.name()),
                    None => f.severity.name().to_owned(),
                };
                vec![
                    f.id.clone(),
                    f.aliases.join(", "),
                    f.package.clone(),
                    f.installed.clone(),
                    f.fixed.clone().unwrap_or_else(|| "—".to_owned()),
                    severity,
                    vex,
                ]
            })
            .collect(),
    }
}

/// Renders `r` in `format`.
pub fn render(r: &ScanReport, format: Format) -> String {
    let open = r.open.values().sum::<usize>();
    let mut facts = vec![("Bundle", r.bundle.clone())];
    facts.extend(self::facts(r));
    facts.push((
        "Result",
        if open == 0 {
            "no open finding".to_owned()
        } else {
            format!("{open} open finding(s)")
        },
    ));
    crate::document::render(
        &Document {
            title: format!("bale scan: {}", r.bundle),
            facts,
            ok: open == 0,
            tables: r.images.iter().map(table).collect(),
            footer: format!(
                "Written by bale {}. The machine-readable evidence is `bale scan --json`.",
                env!("CARGO_PKG_VERSION")
            ),
        },
        format,
    )
}
