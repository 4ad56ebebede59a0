//! Reports an auditor files (`bale audit --report`, `bale scan --report`):
//! a title, a list of facts and captioned tables, rendered as one
//! self-contained HTML page (inline style, no script, no external asset,
//! readable printed) or as Markdown. Everything shown is escaped: HTML's
//! special characters in both formats (Markdown renders raw HTML), and
//! Markdown's own and control characters in Markdown.

use std::fmt::Write as _;
use std::path::Path;

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
pub struct Table {
    /// The caption (its id in HTML, lower-case with dashes).
    pub caption: String,
    /// Column headings.
    pub head: Vec<&'static str>,
    /// Rows of cells.
    pub rows: Vec<Vec<String>>,
}

/// A whole report.
pub struct Document {
    /// The title.
    pub title: String,
    /// Facts, as (name, value); the one named `Result` is coloured by `ok`.
    pub facts: Vec<(&'static str, String)>,
    /// Whether the result is good.
    pub ok: bool,
    /// Tables, in order.
    pub tables: Vec<Table>,
    /// The closing line.
    pub footer: String,
}

/// Renders `d` in `format`.
pub fn render(d: &Document, format: Format) -> String {
    match format {
        Format::Html => html(d),
        Format::Markdown => markdown(d),
    }
}

/// HTML-escapes `s`.
pub fn escape(s: &str) -> String {
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

fn html(d: &Document) -> String {
    let mut o = String::new();
    let title = escape(&d.title);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    o.push_str("<table id=\"identity\">\n");
    for (k, v) in &d.facts {
        let class = match (*k == "Result", d.ok) {
            (true, true) => " class=\"ok\"",
            (true, false) => " class=\"bad\"",
            _ => "",
        };
        let _ = writeln!(
            o,
            "<tr><th>{}</th><td{class}>{}</td></tr>",
            escape(k),
            escape(v)
        );
    }
    o.push_str("</table>\n");
    for t in &d.tables {
        let id = t.caption.to_lowercase().replace(' ', "-");
        let _ = writeln!(o, "<h2>{} ({})</h2>", escape(&t.caption), t.rows.len());
        if t.rows.is_empty() {
            o.push_str("<p>None.</p>\n");
            continue;
        }
        let _ = write!(o, "<table id=\"{}\">\n<thead><tr>", escape(&id));
        for h in &t.head {
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
    let _ = writeln!(o, "<p>{}</p>\n</body>\n</html>", escape(&d.footer));
    o
}

/// A Markdown table cell: HTML escaped as in the HTML report (Markdown
/// renders raw HTML), the characters that make links, code and cells
/// escaped, and control characters shown as `\u{..}`, never sent raw.
pub fn cell(s: &str) -> String {
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

fn markdown(d: &Document) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# {}\n", cell(&d.title));
    o.push_str("| | |\n|---|---|\n");
    for (k, v) in &d.facts {
        let _ = writeln!(o, "| {} | {} |", k, cell(v));
    }
    for t in &d.tables {
        let _ = writeln!(o, "\n## {} ({})\n", cell(&t.caption), t.rows.len());
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
    let _ = writeln!(o, "\n{}", cell(&d.footer));
    o
}
