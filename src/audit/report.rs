//! `bale audit --report FILE`: the audit as a document an auditor can file,
//! in HTML (one self-contained page: inline style, no script, no external
//! asset, readable printed) or Markdown. Deterministic: the same audit
//! gives the same bytes; it carries no clock, and lists in a fixed order.

use std::fmt::Write as _;
use std::path::Path;

use super::AuditReport;

/// The report's format, from the file's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `.html` or `.htm`.
    Html,
    /// `.md`.
    Markdown,
}

impl Format {
    /// The format `path`'s extension names, if bale writes it.
    pub fn of(path: &Path) -> Option<Format> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("html" | "htm") => Some(Format::Html),
            Some("md" | "markdown") => Some(Format::Markdown),
            _ => None,
        }
    }
}

/// A table: a caption, its headings and its rows of cells.
struct Table {
    caption: &'static str,
    head: &'static [&'static str],
    rows: Vec<Vec<String>>,
}

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
        ("Install directory", r.target.display().to_string()),
        ("Runtime", r.runtime.clone()),
        ("SBOM (SPDX 2.3, SHA-256)", opt(r.sbom.as_ref())),
        ("Result", result),
    ];
    let images = Table {
        caption: "Images",
        head: &[
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
        caption: "Services",
        head: &["Service", "Containers", "State", "Health", "Status"],
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
        caption: "Installed files",
        head: &["File", "Signed SHA-256", "Found SHA-256", "Status"],
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
        caption: "Findings",
        head: &["Kind", "Subject", "What differs"],
        rows: r
            .findings
            .iter()
            .map(|f| vec![f.kind.to_owned(), f.subject.clone(), f.message.clone()])
            .collect(),
    };
    (identity, vec![images, services, files, findings])
}

/// Renders `r` in `format`.
pub fn render(r: &AuditReport, format: Format) -> String {
    match format {
        Format::Html => html(r),
        Format::Markdown => markdown(r),
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.4 sans-serif;margin:2em;color:#111}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.5em}\
table{border-collapse:collapse;width:100%;margin:.5em 0}\
th,td{border:1px solid #999;padding:.25em .4em;text-align:left;vertical-align:top}\
th{background:#eee}.d{overflow-wrap:anywhere;font-family:monospace;font-size:.85em}\
.bad{color:#a00;font-weight:bold}.ok{color:#060}\
@media print{body{margin:0;font-size:10px}tr{page-break-inside:avoid}th{background:none}}";

fn html(r: &AuditReport) -> String {
    let (identity, tables) = sections(r);
    let mut o = String::new();
    let title = escape(&format!("bale audit: {} {}", r.name, r.version));
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    o.push_str("<table id=\"identity\">\n");
    for (k, v) in &identity {
        let class = if *k == "Result" {
            if r.ok() {
                " class=\"ok\""
            } else {
                " class=\"bad\""
            }
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "<tr><th>{}</th><td{class}>{}</td></tr>",
            escape(k),
            escape(v)
        );
    }
    o.push_str("</table>\n");
    for t in tables {
        let id = t.caption.to_lowercase().replace(' ', "-");
        let _ = writeln!(o, "<h2>{} ({})</h2>", escape(t.caption), t.rows.len());
        if t.rows.is_empty() {
            o.push_str("<p>None.</p>\n");
            continue;
        }
        let _ = write!(o, "<table id=\"{id}\">\n<thead><tr>");
        for h in t.head {
            let _ = write!(o, "<th>{}</th>", escape(h));
        }
        o.push_str("</tr></thead>\n<tbody>\n");
        for row in &t.rows {
            o.push_str("<tr>");
            for c in row {
                // Digests may break anywhere; words keep whole.
                let class = if c.contains("sha256:") {
                    " class=\"d\""
                } else {
                    ""
                };
                let _ = write!(o, "<td{class}>{}</td>", escape(c));
            }
            o.push_str("</tr>\n");
        }
        o.push_str("</tbody>\n</table>\n");
    }
    let _ = writeln!(
        o,
        "<p>Written by bale {}. The machine-readable evidence is <code>bale audit --json</code>.</p>\n</body>\n</html>",
        env!("CARGO_PKG_VERSION")
    );
    o
}

/// A Markdown table cell: HTML escaped as in the HTML report (Markdown
/// renders raw HTML), the characters that make links, code and cells
/// escaped, and control characters shown as `\u{..}`, never sent raw.
fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in escape(s).chars() {
        match c {
            '\\' | '|' | '[' | ']' | '`' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn markdown(r: &AuditReport) -> String {
    let (identity, tables) = sections(r);
    let mut o = String::new();
    let _ = writeln!(o, "# bale audit: {} {}\n", cell(&r.name), cell(&r.version));
    o.push_str("| | |\n|---|---|\n");
    for (k, v) in &identity {
        let _ = writeln!(o, "| {} | {} |", k, cell(v));
    }
    for t in tables {
        let _ = writeln!(o, "\n## {} ({})\n", t.caption, t.rows.len());
        if t.rows.is_empty() {
            o.push_str("None.\n");
            continue;
        }
        let _ = writeln!(o, "| {} |", t.head.join(" | "));
        let _ = writeln!(o, "|{}", "---|".repeat(t.head.len()));
        for row in &t.rows {
            let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
            let _ = writeln!(o, "| {} |", cells.join(" | "));
        }
    }
    let _ = writeln!(
        o,
        "\nWritten by bale {}. The machine-readable evidence is `bale audit --json`.",
        env!("CARGO_PKG_VERSION")
    );
    o
}
