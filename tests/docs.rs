//! docs/cli.md says what `--help` says: for every command, the long flags
//! in its table are exactly the flags `bale CMD --help` lists.

mod common;

use std::collections::BTreeSet;

use common::*;

/// The `--long` flags in `text`.
fn flags(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i + 2 < b.len() {
        let starts = b[i] == b'-'
            && b[i + 1] == b'-'
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric() && b[i - 1] != b'-');
        if starts && b[i + 2].is_ascii_lowercase() {
            let end = (i + 2..b.len())
                .find(|&j| !(b[j].is_ascii_lowercase() || b[j] == b'-'))
                .unwrap_or(b.len());
            out.insert(text[i..end].trim_end_matches('-').to_owned());
            i = end;
        } else {
            i += 1;
        }
    }
    out.remove("--help");
    out.remove("--version");
    out
}

/// The table rows of section `## bale CMD` of docs/cli.md.
fn documented(doc: &str, cmd: &str) -> BTreeSet<String> {
    let head = format!("## bale {cmd}\n");
    let start = doc
        .find(&head)
        .unwrap_or_else(|| panic!("docs/cli.md has no section `## bale {cmd}`"));
    let rest = &doc[start + head.len()..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let rows: String = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.split('|').nth(1).unwrap_or_default().to_owned() + "\n")
        .collect();
    flags(&rows)
}

#[test]
fn every_command_flag_is_in_docs_cli_md_and_nothing_else() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cli.md"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let p = Project::new("");
    let top = p.bale(&["--help"]);
    top.ok();
    let commands: Vec<String> = top
        .stdout()
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() >= 10, "{commands:?}");
    for cmd in &commands {
        let help = p.bale(&[cmd, "--help"]);
        help.ok();
        // The flag each option line starts with, not flags its help mentions.
        let options: String = help
            .stdout()
            .lines()
            .skip_while(|l| !l.starts_with("Options:"))
            .filter(|l| l.trim_start().starts_with('-'))
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("--")))
            .map(|w| w.trim_end_matches(',').to_owned() + "\n")
            .collect();
        assert_eq!(
            documented(&doc, cmd),
            flags(&options),
            "docs/cli.md's table for `bale {cmd}` (left) differs from `bale {cmd} --help` (right)"
        );
    }
}
