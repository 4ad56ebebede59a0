//! `bale rollback`: back to a kept release without its bundle file, its
//! files checked against its record and its images by ID first.

mod common;

use bale::error::exit;

use common::daemons::Dockerd;
use common::*;

/// The demo built as 1.0.0 and as 1.1.0 (another page), both installed
/// into `t` with `runtime`'s flags; 1.1.0 is current.
fn two_releases(p: &Project, install: &dyn Fn(&str) -> Run) {
    p.build_demo("v1.bale");
    let toml = p.read("demo/bundle.toml");
    p.write(
        "demo/bundle.toml",
        &toml.replace("version = \"1.0.0\"", "version = \"1.1.0\""),
    );
    p.write("demo/site/index.html", "version two\n");
    p.build_demo("v2.bale");
    install("v1.bale").ok();
    install("v2.bale").ok();
}

fn current_link(p: &Project) -> String {
    std::fs::read_link(p.path().join("t/current"))
        .unwrap_or_default()
        .display()
        .to_string()
}

#[test]
fn a_rollback_goes_back_to_the_kept_release_and_forward_again() {
    let p = Project::demo();
    let page_v1 = p.read("demo/site/index.html");
    two_releases(&p, &|b| p.install_none(b, "t"));
    assert_eq!(p.read("t/current/site/index.html"), "version two\n");

    let r = p.bale(&["rollback", "--target", "t", "--json"]);
    r.ok();
    let v: serde_json::Value =
        serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}\n{}", r.describe()));
    assert_eq!(
        (v["from"].as_str(), v["to"].as_str()),
        (Some("1.1.0"), Some("1.0.0"))
    );
    assert!(v["files_checked"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(current_link(&p).contains("1.0.0-"), "{}", current_link(&p));
    assert_eq!(p.read("t/current/site/index.html"), page_v1);
    p.bale(&["audit", "--target", "t"]).ok();
    p.bale(&[
        "audit",
        "v1.bale",
        "--public-key",
        "keys/k.pub",
        "--target",
        "t",
    ])
    .ok();

    // Both releases are still kept: forward again by version.
    let r = p.bale(&["rollback", "--target", "t", "--to", "1.1.0"]);
    r.ok();
    r.says("rolled back from 1.0.0 to 1.1.0");
    assert_eq!(p.read("t/current/site/index.html"), "version two\n");
}

#[test]
fn a_kept_release_whose_files_drifted_is_refused_and_nothing_changes() {
    let p = Project::demo();
    two_releases(&p, &|b| p.install_none(b, "t"));
    let before = current_link(&p);
    let kept = std::fs::read_dir(p.path().join("t/.bale/releases"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|d| d.display().to_string().contains("1.0.0-"))
        .unwrap_or_else(|| panic!("no 1.0.0 release kept"));
    std::fs::write(kept.join("site/extra.html"), "planted\n").unwrap_or_else(|e| panic!("{e}"));
    let r = p.bale(&["rollback", "--target", "t"]);
    r.fails(exit::INTEGRITY);
    r.says("site/extra.html: added");
    assert_eq!(current_link(&p), before);
    std::fs::remove_file(kept.join("site/extra.html")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(kept.join("site/index.html"), "defaced\n").unwrap_or_else(|e| panic!("{e}"));
    let r = p.bale(&["rollback", "--target", "t"]);
    r.fails(exit::INTEGRITY);
    r.says("site/index.html");
    assert_eq!(current_link(&p), before);
    assert_eq!(p.read("t/current/site/index.html"), "version two\n");
}

#[test]
fn with_no_other_release_kept_or_an_unknown_one_named_rollback_refuses() {
    let p = Project::demo();
    p.build_demo("v1.bale");
    p.install_none("v1.bale", "t").ok();
    let r = p.bale(&["rollback", "--target", "t"]);
    r.fails(exit::REFUSED);
    r.says("no earlier release is kept");
    let r = p.bale(&["rollback", "--target", "t", "--to", "0.9.0"]);
    r.fails(exit::REFUSED);
    r.says("no kept release is `0.9.0`");
    let r = p.bale(&["rollback", "--target", "nowhere"]);
    r.fails(exit::FAILURE);
}

#[test]
fn a_rollback_whose_images_left_the_runtime_is_refused_naming_them() {
    let p = Project::demo();
    let docker = Dockerd::start();
    let env = [("DOCKER_HOST", docker.host.as_str())];
    two_releases(&p, &|b| {
        p.bale_env(
            &["install", b, "--public-key", "keys/k.pub", "--target", "t"],
            &env,
        )
    });
    let before = current_link(&p);
    // The images are there: a rollback checks each by ID and goes.
    let r = p.bale_env(&["rollback", "--target", "t", "--json"], &env);
    r.ok();
    let v: serde_json::Value =
        serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}\n{}", r.describe()));
    assert_eq!(v["images_checked"], 2, "{v}");
    // Gone from dockerd: refused, naming the image; nothing switched.
    let after = current_link(&p);
    assert_ne!(after, before);
    let out = docker.docker(&["rmi", "-f", "localhost/bale-demo/worker:1.0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = p.bale_env(&["rollback", "--target", "t"], &env);
    r.fails(exit::REFUSED);
    r.says("localhost/bale-demo/worker:1.0");
    assert_eq!(current_link(&p), after);
}

#[test]
fn with_several_releases_kept_a_rollback_goes_to_the_one_installed_last_before() {
    let p = Project::demo();
    two_releases(&p, &|b| p.install_none(b, "t"));
    let toml = p.read("demo/bundle.toml");
    p.write(
        "demo/bundle.toml",
        &toml.replace("version = \"1.1.0\"", "version = \"1.2.0\""),
    );
    p.write("demo/site/index.html", "version three\n");
    p.build_demo("v3.bale");
    // Each install records its release a moment after the last.
    std::thread::sleep(std::time::Duration::from_millis(20));
    p.install_none("v3.bale", "t").ok();
    p.bale(&["rollback", "--target", "t"])
        .ok()
        .says("rolled back from 1.2.0 to 1.1.0");
    // And back: the release it left is now the latest besides it.
    p.bale(&["rollback", "--target", "t"])
        .ok()
        .says("rolled back from 1.1.0 to 1.2.0");
    // Prune keeps the current one and the latest before it.
    let r = p.bale(&["prune", "--target", "t", "--keep", "2", "--json"]);
    r.ok();
    let v: serde_json::Value =
        serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}\n{}", r.describe()));
    assert_eq!(v["releases"].as_array().map(Vec::len), Some(1), "{v}");
    assert!(
        v["releases"][0]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("1.0.0-")),
        "{v}"
    );
    assert!(v["bytes_freed"].as_u64().unwrap_or(0) > 0, "{v}");
    p.bale(&["rollback", "--target", "t", "--to", "1.0.0"])
        .fails(exit::REFUSED);
}
