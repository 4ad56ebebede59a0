//! `bale split`: parts for removable media that `cat` rejoins, a signed
//! part list, and verify, install and serve reading the parts in place; a
//! missing or corrupt part named before anything else is read.

mod common;

use bale::error::exit;

use common::bundles::Served;
use common::daemons::Dockerd;
use common::*;

/// The demo bundle, signed, split into parts of 300 KiB.
fn split_demo() -> (Project, Vec<String>) {
    let p = Project::demo();
    p.build_demo("demo.bale");
    let run = p.bale(&[
        "split",
        "demo.bale",
        "--size",
        "300K",
        "--sign-key",
        "keys/k.sec",
    ]);
    run.ok();
    let mut parts: Vec<String> = std::fs::read_dir(p.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("demo.bale.") && n[10..].bytes().all(|b| b.is_ascii_digit()))
        .collect();
    parts.sort();
    (p, parts)
}

#[test]
fn parts_rejoin_with_cat_and_verify_install_and_serve_read_them_in_place() {
    let (p, parts) = split_demo();
    assert!(parts.len() >= 4, "{parts:?}");
    assert_eq!(parts[0], "demo.bale.001");
    // Each part is at most the size asked for; cat gives the exact bundle.
    let mut joined = Vec::new();
    for part in &parts {
        let bytes = std::fs::read(p.path().join(part)).unwrap_or_default();
        assert!(bytes.len() <= 300 * 1024, "{part}: {}", bytes.len());
        joined.extend(bytes);
    }
    assert_eq!(
        joined,
        std::fs::read(p.path().join("demo.bale")).unwrap_or_default()
    );
    // The list is sha256sum -c's, signed with minisign's format.
    let out = std::process::Command::new("sha256sum")
        .args(["--strict", "-c", "demo.bale.parts"])
        .current_dir(p.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new("minisign")
        .args(["-V", "-m", "demo.bale.parts", "-p", "keys/k.pub"])
        .current_dir(p.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Read in place, without the whole bundle beside them.
    std::fs::remove_file(p.path().join("demo.bale")).unwrap_or_else(|e| panic!("{e}"));
    p.bale(&["verify", "demo.bale.001", "--public-key", "keys/k.pub"])
        .ok();
    let i = p.bale(&["inspect", "demo.bale.001"]);
    i.ok();
    assert!(i.stdout().contains("bale-demo 1.0.0"), "{}", i.describe());
    p.install_none("demo.bale.001", "t").ok();
    assert!(p.path().join("t/current/site/index.html").is_file());
    let s = Served::start(&p, "demo.bale.001", &[]);
    let raw = skopeo_raw(&format!("{}/bale-demo/web:1.0", s.addr));
    assert!(!raw.is_empty());
    let (_, status) = s.stop();
    assert!(status.success());
}

#[test]
fn a_corrupt_or_missing_part_is_named_and_nothing_is_installed() {
    let (p, parts) = split_demo();
    let second = p.path().join(&parts[1]);
    let mut bytes = std::fs::read(&second).unwrap_or_default();
    bytes[100] ^= 0x01;
    std::fs::write(&second, &bytes).unwrap_or_else(|e| panic!("{e}"));
    p.bale(&["verify", "demo.bale.001", "--public-key", "keys/k.pub"])
        .fails(exit::INTEGRITY)
        .says("demo.bale.002")
        .says("corrupt");
    p.install_none("demo.bale.001", "t")
        .fails(exit::INTEGRITY)
        .says("demo.bale.002");
    assert!(
        !p.path().join("t").exists(),
        "a failed install left a target"
    );
    bytes[100] ^= 0x01;
    std::fs::write(&second, &bytes).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(p.path().join(&parts[2])).unwrap_or_else(|e| panic!("{e}"));
    p.bale(&["verify", "demo.bale.001", "--public-key", "keys/k.pub"])
        .fails(exit::INTEGRITY)
        .says("demo.bale.003")
        .says("missing");
}

#[test]
fn a_part_list_signed_by_another_key_or_not_at_all_is_refused() {
    let (p, _) = split_demo();
    std::fs::remove_file(p.path().join("demo.bale.parts.minisig"))
        .unwrap_or_else(|e| panic!("{e}"));
    p.bale(&["verify", "demo.bale.001", "--public-key", "keys/k.pub"])
        .fails(exit::INTEGRITY)
        .says("not signed");
    // A list that names other sizes than its parts have is refused too.
    let list = p.read("demo.bale.parts");
    p.write(
        "demo.bale.parts",
        &list.replacen("#size 307200", "#size 307199", 1),
    );
    p.bale(&["verify", "demo.bale.001", "--allow-unsigned"])
        .fails(exit::INTEGRITY);
}

#[test]
fn parts_install_into_docker_in_place() {
    let (p, _) = split_demo();
    let d = Dockerd::start();
    p.bale_env(
        &[
            "install",
            "demo.bale.001",
            "--public-key",
            "keys/k.pub",
            "--target",
            "t",
        ],
        &[("DOCKER_HOST", d.host.as_str())],
    )
    .ok()
    .says("image loaded");
    // Not started, so only its images are to check: every one is the locked one.
    let audit = p.bale_env(
        &["audit", "--target", "t", "--json"],
        &[("DOCKER_HOST", d.host.as_str())],
    );
    let v: serde_json::Value = serde_json::from_str(&audit.stdout()).unwrap_or_default();
    let images = v["images"].as_array().cloned().unwrap_or_default();
    assert_eq!(images.len(), 2, "{v}");
    assert!(images.iter().all(|i| i["status"] == "ok"), "{v}");
}

#[test]
fn parts_import_into_containerd_in_place() {
    let (p, _) = split_demo();
    let c = common::daemons::Containerd::start();
    let addr = c.address.display().to_string();
    p.install_containerd("demo.bale.001", "t", &addr, &[])
        .ok()
        .says("image loaded");
    let list =
        String::from_utf8_lossy(&c.ctr("default", &["images", "ls", "-q"]).stdout).into_owned();
    assert!(list.contains("localhost/bale-demo/web:1.0"), "{list}");
    p.audit_containerd("t", &addr, &[]).ok();
}
