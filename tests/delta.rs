//! Delta bundles: `bale build --base OLD.bale` carries only what OLD lacks,
//! verify checks it alone or with its base, and install puts it over its
//! base (in Docker and containerd) with the result of the full bundle.

mod common;

use bale::error::exit;

use common::bundles::upgrade_project;
use common::daemons::{Containerd, Dockerd};
use common::*;

fn size(p: &Project, f: &str) -> u64 {
    std::fs::metadata(p.path().join(f))
        .map(|m| m.len())
        .unwrap_or(0)
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout()).unwrap_or_else(|e| panic!("{e}: {}", run.describe()))
}

#[test]
fn a_delta_carries_only_what_its_base_lacks_and_verifies_alone_or_with_it() {
    let (p, base) = upgrade_project();
    let (full, delta) = (size(&p, "v2.bale"), size(&p, "delta.bale"));
    // The base layer (2 MB) and the unchanged web image stay in the base.
    assert!(delta + 2_000_000 < full, "delta {delta} of full {full}");
    assert!(
        delta < 1024 * 1024,
        "delta {delta}: the changed blobs are small"
    );
    let alone = p.bale(&[
        "verify",
        "delta.bale",
        "--public-key",
        "keys/k.pub",
        "--json",
    ]);
    alone.ok();
    let v = json(&alone);
    assert_eq!(v["base"]["version"], "1.0.0", "{v}");
    let from_base: Vec<String> = v["from_base"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_owned))
        .collect();
    assert!(
        from_base.contains(&format!("blobs/sha256/{}", &sha(&base.blob)[7..])),
        "{v}"
    );
    assert!(from_base.contains(&"files/site/logo.txt".to_owned()), "{v}");
    assert!(!from_base.iter().any(|f| f.ends_with("index.html")), "{v}");
    assert_eq!(v["base_checked"], serde_json::Value::Null);
    p.bale(&["verify", "delta.bale", "--public-key", "keys/k.pub"])
        .ok()
        .says("must provide");
    let with = p.bale(&[
        "verify",
        "delta.bale",
        "--public-key",
        "keys/k.pub",
        "--base",
        "v1.bale",
        "--json",
    ]);
    with.ok();
    assert_eq!(json(&with)["base_checked"], true);
    // Another bundle as the base is refused, naming the base it needs.
    p.bale(&[
        "verify",
        "delta.bale",
        "--public-key",
        "keys/k.pub",
        "--base",
        "v2.bale",
    ])
    .fails(exit::INTEGRITY)
    .says("1.0.0");
    let i = p.bale(&["inspect", "delta.bale"]);
    i.ok();
    assert!(
        i.stdout().contains("DELTA of upgrade 1.0.0"),
        "{}",
        i.describe()
    );
    // A delta of a delta is refused at build.
    p.bale(&[
        "build",
        "--sign-key",
        "keys/k.sec",
        "-o",
        "d2.bale",
        "--base",
        "delta.bale",
    ])
    .fails(exit::INVALID_INPUT)
    .says("delta itself");
}

#[test]
fn a_delta_installs_over_its_base_in_docker_as_the_full_bundle_does() {
    let (p, _) = upgrade_project();
    let d = Dockerd::start();
    let env = [("DOCKER_HOST", d.host.as_str())];
    let install = |bundle: &str, target: &str, extra: &[&str]| {
        let mut args = vec![
            "install",
            bundle,
            "--public-key",
            "keys/k.pub",
            "--target",
            target,
        ];
        args.extend_from_slice(extra);
        p.bale_env(&args, &env)
    };
    // Over anything but its base it is refused, and nothing is made.
    install("delta.bale", "fresh", &[])
        .fails(exit::REFUSED)
        .says("1.0.0");
    assert!(!p.path().join("fresh").exists());
    install("v1.bale", "t", &[]).ok();
    // No base file needed: the runtime has the unchanged layers and image,
    // the installed base release the unchanged file.
    let r = install("delta.bale", "t", &["--json"]);
    r.ok();
    let report = json(&r);
    assert_eq!(report["action"], "upgraded", "{report}");
    assert_eq!(p.read("t/current/site/index.html"), "release 1.1.0\n");
    assert_eq!(
        p.read("t/current/site/logo.txt"),
        "the same in every release\n"
    );
    p.bale_env(&["audit", "--target", "t"], &env).ok();
    // Exactly what the full bundle gives: audit against it passes, and
    // installing it changes nothing.
    p.bale_env(
        &[
            "audit",
            "v2.bale",
            "--public-key",
            "keys/k.pub",
            "--target",
            "t",
        ],
        &env,
    )
    .ok();
    install("v2.bale", "t", &[])
        .ok()
        .says("already installed; nothing changed");
}

#[test]
fn without_the_images_in_the_runtime_a_delta_needs_its_base_file() {
    let (p, _) = upgrade_project();
    let c = Containerd::start();
    let addr = c.address.display().to_string();
    let install = |bundle: &str, extra: &[&str]| p.install_containerd(bundle, "t", &addr, extra);
    // The base went in without images (files only): containerd has none.
    p.install_none("v1.bale", "t").ok();
    install("delta.bale", &[])
        .fails(exit::REFUSED)
        .says("--base");
    assert_eq!(p.read("t/current/site/index.html"), "release 1.0.0\n");
    let r = install("delta.bale", &["--base", "v1.bale", "--json"]);
    r.ok();
    assert_eq!(json(&r)["action"], "upgraded");
    let list =
        String::from_utf8_lossy(&c.ctr("default", &["images", "ls", "-q"]).stdout).into_owned();
    assert!(
        list.contains("localhost/t/app:2") && list.contains("localhost/bale-demo/web:1.0"),
        "{list}"
    );
    p.audit_containerd("t", &addr, &["v2.bale", "--public-key", "keys/k.pub"])
        .ok();
    // A base that is not the one the delta names is refused.
    install("delta.bale", &["--base", "v2.bale"])
        .fails(exit::REFUSED)
        .says("1.0.0");
}
