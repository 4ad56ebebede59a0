//! `bale push` into a real docker-registry: htpasswd auth behind TLS with a
//! CA the test makes, a second push of the same bundle, and a connection
//! cut in the middle of a blob.

mod common;

use std::process::Command;

use common::bundles::{MultiBundle, locked_manifest, multi_bundle};
use common::hostile::CutProxy;
use common::*;

/// `skopeo inspect --raw` of `reference` on the TLS registry with `creds`.
fn raw_over_tls(b: &MultiBundle, reference: &str, creds: &str) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--creds", creds, "--cert-dir"])
        .arg(b.p.path().join("certs"))
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap_or_else(|e| panic!("skopeo: {e}"));
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn login(b: &MultiBundle, host: &str, user: &str, password: &str) {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    b.p.write(
        "docker-config/config.json",
        &format!("{{\"auths\":{{\"{host}\":{{\"auth\":\"{auth}\"}}}}}}"),
    );
}

fn json_lines(run: &Run) -> Vec<serde_json::Value> {
    run.stdout()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn push_to_an_htpasswd_registry_behind_tls_keeps_every_digest_and_a_second_push_uploads_nothing() {
    let b = multi_bundle(300_000, &["linux/amd64"]);
    let dir = b.p.path();
    loopback_cert(dir);
    std::fs::create_dir_all(dir.join("certs")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(dir.join("ca.crt"), dir.join("certs/ca.crt")).unwrap_or_else(|e| panic!("{e}"));
    let site = Registry::start_tls(Some(("ops", "s3cret-pass")), dir);
    let to = format!("{}/site", site.host);
    let push = |extra: &[&str]| {
        let mut args = vec![
            "push",
            "served.bale",
            "--public-key",
            "keys/k.pub",
            "--to",
            &to,
            "--json",
        ];
        args.extend_from_slice(extra);
        b.p.bale(&args)
    };
    // No credentials: refused, saying how to log in.
    push(&["--ca-cert", "ca.crt"])
        .fails(5)
        .says("unauthorized")
        .says("docker login");
    login(&b, &site.host, "ops", "s3cret-pass");
    // Without the site's CA the registry's certificate is not trusted.
    push(&[]).fails(5);
    let first = push(&["--ca-cert", "ca.crt"]);
    first.ok();
    let lines = json_lines(&first);
    let summary = lines.last().cloned().unwrap_or_default();
    assert_eq!(summary["event"], "summary", "{}", first.describe());
    assert!(
        summary["blobs_uploaded"].as_u64().unwrap_or(0) >= 5,
        "{summary}"
    );
    // web and worker share busybox's layer: the second one is mounted.
    assert_eq!(summary["blobs_mounted"], 1, "{summary}");
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "blob" && l["how"] == "mounted")
    );
    let creds = "ops:s3cret-pass";
    for (service, repo) in [
        ("web", "site/bale-demo/web:1.0"),
        ("worker", "site/bale-demo/worker:1.0"),
        ("app", "site/multi/app:2.0"),
    ] {
        let raw = raw_over_tls(&b, &format!("{}/{repo}", site.host), creds);
        assert_eq!(sha(&raw), locked_manifest(&b.p, service), "{repo}");
    }
    // The list names arm64, which the bundle did not lock: it cannot be
    // pushed as it is, and the tag names the locked platform.
    let app = summary["images"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == "multi/app"))
        .cloned()
        .unwrap_or_default();
    assert!(
        app["index"]
            .as_str()
            .is_some_and(|n| n.starts_with("not pushed")),
        "{app}"
    );
    assert_eq!(app["digest"], b.amd64.manifest.as_str());

    // Again: every blob and manifest is found in place.
    let again = push(&["--ca-cert", "ca.crt"]);
    again.ok();
    let lines = json_lines(&again);
    let summary = lines.last().cloned().unwrap_or_default();
    assert_eq!(summary["blobs_uploaded"], 0, "{summary}");
    assert_eq!(summary["bytes_uploaded"], 0, "{summary}");
    assert!(
        lines
            .iter()
            .filter(|l| l["event"] == "manifest")
            .all(|l| l["present"] == true),
        "{}",
        again.stdout()
    );
}

#[test]
fn a_multi_platform_bundle_pushes_its_index_byte_for_byte() {
    let b = multi_bundle(1000, &["linux/amd64", "linux/arm64"]);
    let site = Registry::start();
    b.p.bale(&[
        "push",
        "served.bale",
        "--public-key",
        "keys/k.pub",
        "--to",
        &site.host,
    ])
    .ok()
    .says("index pushed");
    assert_eq!(
        sha(&skopeo_raw(&format!("{}/multi/app:2.0", site.host))),
        b.list
    );
    for m in [&b.amd64.manifest, &b.arm64.manifest] {
        assert_eq!(
            &sha(&skopeo_raw(&format!("{}/multi/app@{m}", site.host))),
            m
        );
    }
}

#[test]
fn a_connection_cut_in_the_middle_of_a_blob_is_resumed() {
    // A 3 MB layer in 256 KiB chunks; the link drops after 2 MB of the
    // push's traffic, most of which is that layer's chunks.
    let b = multi_bundle(3_000_000, &["linux/amd64"]);
    let site = Registry::start();
    let proxy = CutProxy::start(&site.host, 2_000_000);
    let run = b.p.bale(&[
        "push",
        "served.bale",
        "--public-key",
        "keys/k.pub",
        "--to",
        &proxy.host(),
        "--chunk-size",
        "256K",
        "--json",
    ]);
    run.ok();
    assert_eq!(proxy.cuts(), 1, "the proxy never cut a connection");
    let lines = json_lines(&run);
    let resumed: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["event"] == "resumed").collect();
    assert_eq!(resumed.len(), 1, "{}", run.stdout());
    // distribution 2.8 drops an upload whose chunk was cut (its size no
    // longer matches its state), so the blob starts again at 0; a registry
    // that keeps it answers its Range, and the push goes on from there.
    // Either way it goes on from a chunk boundary, never from a guess.
    let offset = resumed[0]["offset"].as_u64().unwrap_or(1);
    assert_eq!(offset % (256 * 1024), 0, "{}", run.stdout());
    let summary = lines.last().cloned().unwrap_or_default();
    assert_eq!(summary["resumes"], 1, "{summary}");
    // What arrived is exactly the locked image.
    assert_eq!(
        sha(&skopeo_raw(&format!("{}/multi/app:2.0", site.host))),
        b.amd64.manifest
    );
    let layer = &b.amd64.layers[1];
    let out = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{}/multi/app:2.0", site.host))
        .arg(format!("oci:{}:app", b.p.path().join("copied").display()))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copied = std::fs::read(
        b.p.path()
            .join("copied/blobs/sha256")
            .join(layer.trim_start_matches("sha256:")),
    )
    .unwrap_or_default();
    assert_eq!(&sha(&copied), layer);
}

#[test]
fn a_bundle_that_fails_verification_is_not_pushed() {
    let b = multi_bundle(1000, &["linux/amd64"]);
    let mut bytes = std::fs::read(b.p.path().join("served.bale")).unwrap_or_else(|e| panic!("{e}"));
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(b.p.path().join("tampered.bale"), bytes).unwrap_or_else(|e| panic!("{e}"));
    let site = Registry::start();
    b.p.bale(&[
        "push",
        "tampered.bale",
        "--public-key",
        "keys/k.pub",
        "--to",
        &site.host,
    ])
    .fails(6);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let body = agent
        .get(&format!("http://{}/v2/_catalog", site.host))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default();
    assert!(body.contains("\"repositories\":[]"), "{body}");
    // A target that is not REGISTRY[/PREFIX] is refused before anything.
    b.p.bale(&[
        "push",
        "served.bale",
        "--public-key",
        "keys/k.pub",
        "--to",
        "reg/Bad Prefix",
    ])
    .fails(3)
    .says("REGISTRY[/PREFIX]");
}
