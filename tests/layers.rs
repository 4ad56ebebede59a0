//! Upgrades that skip what the runtime holds, down to the layer: an image
//! whose top layer alone changed loads only that layer, into a real
//! dockerd and a real containerd.

mod common;

use common::daemons::{Containerd, Dockerd};
use common::*;

/// A project with two versions of one image on the same base: the base
/// layer (2 MB) and a top layer that differs. `bundle-VERSION.bale` each.
fn two_versions() -> (Project, LayerSpec) {
    let p = Project::new("");
    let base = || gzip_layer(&[("usr/lib/base.bin", &noise(41, 2_000_000))]);
    write_oci_layout(
        &p.path().join("v1"),
        "localhost/t/app:1",
        &[base(), gzip_layer(&[("etc/release", b"1\n")])],
    );
    write_oci_layout(
        &p.path().join("v2"),
        "localhost/t/app:2",
        &[base(), gzip_layer(&[("etc/release", b"2\n")])],
    );
    p.keygen();
    for (version, layout, tag) in [("1.0.0", "v1", "1"), ("1.1.0", "v2", "2")] {
        p.write(
            "bundle.toml",
            &format!(
                "[bundle]\nname = \"layers\"\nversion = \"{version}\"\n[images]\napp = \"oci:{layout}:localhost/t/app:{tag}\"\n"
            ),
        );
        p.bale(&["lock"]).ok();
        p.bale(&[
            "build",
            "--sign-key",
            "keys/k.sec",
            "-o",
            &format!("bundle-{version}.bale"),
        ])
        .ok();
    }
    (p, base())
}

fn image_outcome(run: &Run) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&run.stdout()).unwrap_or_else(|e| panic!("{e}: {}", run.describe()));
    v["images"][0].clone()
}

fn locked_config(p: &Project) -> String {
    let lock: toml::Value =
        toml::from_str(&p.read("bundle.lock")).unwrap_or_else(|e| panic!("{e}"));
    lock["image"][0]["platform"][0]["config"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn an_upgrade_that_changes_the_top_layer_loads_only_that_layer_into_docker() {
    let (p, base) = two_versions();
    let d = Dockerd::start();
    let env = [("DOCKER_HOST", d.host.as_str())];
    let install = |bundle: &str| {
        let r = p.bale_env(
            &[
                "install",
                bundle,
                "--public-key",
                "keys/k.pub",
                "--target",
                "t",
                "--json",
            ],
            &env,
        );
        r.ok();
        image_outcome(&r)
    };
    let first = install("bundle-1.0.0.bale");
    assert_eq!(first["status"], "loaded");
    assert!(first.get("layers_present").is_none(), "{first}");
    let second = install("bundle-1.1.0.bale");
    assert_eq!(second["status"], "loaded", "{second}");
    assert_eq!(
        second["layers_present"], 1,
        "the base layer was sent again: {second}"
    );
    // The image docker built from the archive is the locked one, with both
    // layers: the base from the daemon, the top from the bundle.
    let out = d.docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}} {{len .RootFS.Layers}} {{index .RootFS.Layers 0}}",
        "localhost/t/app:2",
    ]);
    let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        said,
        format!("{} 2 {}", locked_config(&p), base.diff_id),
        "{said}"
    );
    p.bale_env(&["audit", "--target", "t"], &env).ok();
    // The exported image has both layers' content (saved in the test's
    // own directory: a test run leaves the work tree as it found it).
    let saved = p.path().join("saved.tar");
    let out = d.docker(&[
        "save",
        "-o",
        &saved.display().to_string(),
        "localhost/t/app:2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut archive =
        tar::Archive::new(std::fs::File::open(&saved).unwrap_or_else(|e| panic!("{e}")));
    let manifest: serde_json::Value = archive
        .entries()
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .find(|e| e.path().is_ok_and(|p| p.as_os_str() == "manifest.json"))
        .and_then(|e| serde_json::from_reader(e).ok())
        .unwrap_or_default();
    assert_eq!(
        manifest[0]["Layers"].as_array().map(Vec::len),
        Some(2),
        "{manifest}"
    );
}

#[test]
fn an_upgrade_that_changes_the_top_layer_leaves_containerds_blobs_out() {
    let (p, base) = two_versions();
    let c = Containerd::start();
    let addr = c.address.display().to_string();
    let install = |bundle: &str| {
        let r = p.install_containerd(bundle, "t", &addr, &["--json"]);
        r.ok();
        image_outcome(&r)
    };
    assert!(install("bundle-1.0.0.bale").get("layers_present").is_none());
    let second = install("bundle-1.1.0.bale");
    assert_eq!(second["status"], "loaded", "{second}");
    assert_eq!(second["layers_present"], 1, "{second}");
    let list =
        String::from_utf8_lossy(&c.ctr("default", &["images", "ls", "-q"]).stdout).into_owned();
    assert!(list.contains("localhost/t/app:2"), "{list}");
    // The shared base blob is in the store once, and the image unpacks.
    let out = c.ctr("default", &["content", "get", &sha(&base.blob)]);
    assert!(out.status.success());
    assert_eq!(sha(&out.stdout), sha(&base.blob));
    p.audit_containerd("t", &addr, &[]).ok();
}

/// Docker gets gzip layers inflated, straight through its Engine API
/// socket; a layer whose gzip trailer does not give its inflated length
/// (two gzip members: the trailer counts the last one only) is sent as it
/// is, in a load made again, and the image is the locked one either way.
#[test]
fn gzip_layers_reach_docker_inflated_and_a_two_member_layer_goes_as_it_is() {
    let p = Project::new("");
    let plain = gzip_layer(&[("usr/lib/one.bin", &noise(7, 300_000))]);
    let tar = tar_of(&[("etc/two.bin", &noise(8, 100_000))]);
    let (a, b) = tar.split_at(tar.len() / 2);
    let mut blob = gzip(a);
    blob.extend(gzip(b));
    let two = LayerSpec {
        diff_id: sha(&tar),
        blob,
        media_type: OCI_LAYER_GZIP.into(),
    };
    let diffs = format!("[\"{}\",\"{}\"]", plain.diff_id, two.diff_id);
    write_oci_layout(&p.path().join("l"), "localhost/t/app:1", &[plain, two]);
    p.keygen();
    p.write(
        "bundle.toml",
        "[bundle]\nname = \"inflate\"\nversion = \"1.0.0\"\n[images]\napp = \"oci:l:localhost/t/app:1\"\n",
    );
    p.bale(&["lock"]).ok();
    p.bale(&["build", "--sign-key", "keys/k.sec", "-o", "b.bale"])
        .ok();
    let d = Dockerd::start();
    let r = p.bale_env(
        &[
            "install",
            "b.bale",
            "--public-key",
            "keys/k.pub",
            "--target",
            "t",
            "--json",
        ],
        &[("DOCKER_HOST", d.host.as_str())],
    );
    r.ok();
    assert_eq!(image_outcome(&r)["status"], "loaded", "{}", r.describe());
    let out = d.docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}} {{json .RootFS.Layers}}",
        "localhost/t/app:1",
    ]);
    let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(said, format!("{} {diffs}", locked_config(&p)), "{said}");
}
