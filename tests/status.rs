//! `bale status`: the current release and since when, the releases kept,
//! each service as the runtime runs it; read only.

mod common;

use bale::error::exit;

use common::*;

#[test]
fn status_shows_the_current_release_and_every_release_kept() {
    let p = Project::demo();
    p.build_demo("v1.bale");
    let toml = p.read("demo/bundle.toml");
    p.write(
        "demo/bundle.toml",
        &toml.replace("version = \"1.0.0\"", "version = \"1.1.0\""),
    );
    p.build_demo("v2.bale");
    p.install_none("v1.bale", "t").ok();
    p.install_none("v2.bale", "t").ok();
    let before = p.read("t/.env");

    let r = p.bale(&["status", "--target", "t", "--json"]);
    r.ok();
    let v: serde_json::Value =
        serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}\n{}", r.describe()));
    assert_eq!(v["ok"], true);
    assert_eq!(v["name"], "bale-demo");
    assert_eq!(v["version"], "1.1.0");
    assert_eq!(v["runtime"], "none", "the runtime the release recorded");
    let releases = v["releases"].as_array().cloned().unwrap_or_default();
    let versions: Vec<&str> = releases
        .iter()
        .filter_map(|r| r["version"].as_str())
        .collect();
    assert_eq!(versions, ["1.0.0", "1.1.0"], "{v}");
    let current: Vec<bool> = releases.iter().map(|r| r["current"] == true).collect();
    assert_eq!(current, [false, true], "{v}");
    let since = v["current_since"].as_str().unwrap_or_default();
    assert!(
        since.len() == 20 && since.ends_with('Z') && since.starts_with("20"),
        "{since}"
    );
    assert_eq!(v["services"].as_array().map(Vec::len), Some(0), "{v}");

    let r = p.bale(&["status", "--target", "t"]);
    r.ok();
    assert!(
        r.stdout().contains("bale-demo 1.1.0 (manifest sha256:"),
        "{}",
        r.describe()
    );
    assert!(
        r.stdout()
            .lines()
            .any(|l| l.starts_with("* 1.1.0") && l.contains("installed 20")),
        "{}",
        r.describe()
    );
    assert!(
        r.stdout().lines().any(|l| l.starts_with("  1.0.0")),
        "{}",
        r.describe()
    );
    // Read only.
    assert_eq!(p.read("t/.env"), before);
}

#[test]
fn status_of_a_directory_with_nothing_installed_says_so() {
    let p = Project::demo();
    std::fs::create_dir_all(p.path().join("empty")).unwrap_or_else(|e| panic!("{e}"));
    let r = p.bale(&["status", "--target", "empty", "--json"]);
    r.fails(exit::FAILURE);
    let last = r.stdout().lines().last().unwrap_or_default().to_owned();
    let v: serde_json::Value =
        serde_json::from_str(&last).unwrap_or_else(|e| panic!("{e}\n{}", r.describe()));
    assert_eq!(v["ok"], false);
    assert!(r.stderr().contains("empty"), "{}", r.describe());
}
