//! Regressions from a new operator's and a release engineer's first hour
//! (part 11): what `--json` promises on usage errors, messages that name
//! the command's own choices, counts that agree, files as readable as the
//! bundle they belong to.

mod common;

use std::os::unix::fs::PermissionsExt as _;

use bale::error::exit;
use common::*;

#[test]
fn json_usage_errors_still_end_with_a_result_object() {
    let p = Project::new("");
    let r = p.bale(&["verify", "--json", "nothere.bale"]);
    r.fails(exit::USAGE);
    let v = r.summary();
    assert_eq!(v["ok"], false, "{}", r.describe());
    assert_eq!(v["exit_code"], exit::USAGE, "{}", r.describe());
}

#[test]
fn split_without_a_key_words_its_own_choice_and_parts_are_as_readable_as_the_bundle() {
    let p = Project::demo();
    let bundle = p.build_demo("demo.bale");
    let r = p.bale(&["split", "demo.bale", "--size", "1M"]);
    r.fails(exit::USAGE).says("or --unsigned, to sign nothing");
    assert!(!r.stderr().contains("to build"), "{}", r.describe());
    p.bale(&[
        "split",
        "demo.bale",
        "--size",
        "1M",
        "--sign-key",
        "keys/k.sec",
    ])
    .ok();
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    };
    let bundle_mode = mode(&bundle);
    let parts: Vec<_> = std::fs::read_dir(p.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("demo.bale."))
        .collect();
    assert!(parts.len() >= 2, "{parts:?}");
    for part in parts {
        assert_eq!(mode(&part.path()), bundle_mode, "{}", part.path().display());
    }
}

#[test]
fn build_and_verify_count_the_same_entries() {
    let p = Project::demo();
    let r = p.bale(&[
        "build",
        "-f",
        "demo/bundle.toml",
        "--offline",
        "--sign-key",
        "keys/k.sec",
        "-o",
        "demo.bale",
    ]);
    r.ok();
    let count = |text: &str, before: &str| {
        text.split(before)
            .next()
            .and_then(|h| h.rsplit([' ', '(']).next())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("no count in {text}"))
    };
    let built = count(&r.stderr(), " entries)");
    let v = p.bale(&["verify", "demo.bale", "--public-key", "keys/k.pub"]);
    v.ok();
    assert_eq!(built, count(&v.stderr(), " entries ("), "{}", v.describe());
}

#[test]
fn an_unquoted_version_suggests_quotes() {
    let p = Project::new("[bundle]\nname = \"x\"\nversion = 1.0.0\n");
    p.bale(&["lock"])
        .fails(exit::INVALID_INPUT)
        .says("bundle.toml:3:")
        .says("write a string in quotes: version = \"1.0.0\"");
}

#[test]
fn a_dry_run_says_what_would_happen_in_lowercase() {
    let p = Project::demo();
    p.build_demo("demo.bale");
    p.bale(&[
        "install",
        "demo.bale",
        "--public-key",
        "keys/k.pub",
        "--target",
        "t",
        "--runtime",
        "none",
        "--dry-run",
    ])
    .ok()
    .says("would be installed (nothing was changed)");
}
