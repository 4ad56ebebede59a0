//! Supply-chain evidence for auditors: upstream attestations locked and
//! carried, the bundle's SPDX SBOM (validated by SPDX's own spdx-tools),
//! upstream cosign signatures checked at lock, fetch and offline verify,
//! and the audit report rendered by a real headless Chromium.

mod common;

use bale::error::exit;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use common::evidence::*;
use common::*;

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout()).unwrap_or_else(|e| panic!("{e}\n{}", run.describe()))
}

/// A project locking `app` from `reg` (with `extra` bundle.toml lines in
/// `[bundle]` and the image entry as `entry`), an overlay and a template.
fn project(reg: &Registry, entry: &str, extra: &str) -> Project {
    let p = Project::new(&format!(
        "[bundle]\nname = \"evidence\"\nversion = \"1.0.0\"\n{extra}\n[images]\napp = {entry}\n\n[[overlays]]\nsource = \"config/app.conf\"\ntarget = \"config/app.conf\"\n\n[[overlays]]\nsource = \"config/site.conf.j2\"\ntarget = \"config/site.conf\"\ntemplate = true\n"
    ));
    let _ = reg;
    p.write("config/app.conf", "listen = 8080\n");
    p.write("config/site.conf.j2", "name = {{ bundle.name }}\n");
    p.keygen();
    p
}

fn plain_entry(reg: &Registry, repo: &str, tag: &str) -> String {
    format!("\"{}/{repo}:{tag}\"", reg.host)
}

fn lock_table(p: &Project) -> toml::Value {
    toml::from_str(&p.read("bundle.lock"))
        .unwrap_or_else(|e| panic!("{e}\n{}", p.read("bundle.lock")))
}

fn build(p: &Project) {
    p.bale(&["build", "--sign-key", "keys/k.sec", "-o", "e.bale"])
        .ok();
}

#[test]
fn attestations_are_locked_carried_and_listed() {
    let reg = Registry::start();
    let a = attested_image(&reg, "att/app", "1.0");
    let p = project(&reg, &plain_entry(&reg, "att/app", "1.0"), "");
    p.bale(&["lock"]).ok();
    let lock = lock_table(&p);
    let plat = &lock["image"][0]["platform"][0];
    assert_eq!(plat["manifest"].as_str(), Some(a.amd64.manifest.as_str()));
    let att = &plat["attestation"][0];
    assert_eq!(
        att["manifest"].as_str(),
        Some(a.attestation.as_str()),
        "{}",
        p.read("bundle.lock")
    );
    assert_eq!(
        att["layers"][0]["predicate-type"].as_str(),
        Some(SPDX_PREDICATE)
    );
    build(&p);
    // The attestation travels: verify checks its blobs like any other.
    p.bale(&["verify", "e.bale", "--public-key", "keys/k.pub"])
        .ok();
    let i = p.bale(&["inspect", "e.bale", "--json"]);
    i.ok();
    let v = json(&i);
    let rec = &v["images"][0];
    assert_eq!(
        rec["attestations"][0]["manifest"].as_str(),
        Some(a.attestation.as_str())
    );
    assert_eq!(
        rec["attestations"][0]["predicate_types"],
        serde_json::json!([SPDX_PREDICATE, PROVENANCE_PREDICATE])
    );
    let text = p.bale(&["inspect", "e.bale"]);
    assert!(
        text.stdout()
            .contains(&format!("attestation {}", a.attestation)),
        "{}",
        text.describe()
    );
    // skopeo, an independent reader, sees the attestation manifest as served.
    let served = common::bundles::Served::start(&p, "e.bale", &[]);
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!(
            "docker://127.0.0.1:{}/att/app@{}",
            served.port(),
            a.attestation
        ))
        .output()
        .unwrap_or_else(|e| panic!("skopeo: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sha(&out.stdout), a.attestation);
}

#[test]
fn attestations_false_opts_out() {
    let reg = Registry::start();
    attested_image(&reg, "att/app", "1.0");
    let p = project(&reg, &plain_entry(&reg, "att/app", "1.0"), "");
    p.bale(&["lock"]).ok();
    assert!(
        p.read("bundle.lock")
            .contains("[[image.platform.attestation]]")
    );
    // Turning them off makes the lock out of date, then locks without them.
    let toml = p.read("bundle.toml").replace(
        "version = \"1.0.0\"\n",
        "version = \"1.0.0\"\nattestations = false\n",
    );
    p.write("bundle.toml", &toml);
    p.bale(&[
        "build",
        "--locked",
        "--sign-key",
        "keys/k.sec",
        "-o",
        "e.bale",
    ])
    .fails(exit::LOCK_OUT_OF_DATE)
    .says("attestations = false");
    assert!(!p.path().join("e.bale").exists());
    p.bale(&["lock"]).ok();
    assert!(
        !p.read("bundle.lock").contains("attestation"),
        "{}",
        p.read("bundle.lock")
    );
    build(&p);
    let v = json(&p.bale(&["inspect", "e.bale", "--json"]));
    assert!(v["images"][0].get("attestations").is_none(), "{v}");
}

fn pyspdxtools() -> bool {
    Command::new("pyspdxtools")
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Validates `file` with SPDX's spdx-tools; returns its output.
fn spdx_validate(file: &Path) -> (bool, String) {
    let out = Command::new("pyspdxtools")
        .arg("-i")
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("pyspdxtools: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && !text.contains("ERROR") && !text.contains("invalid"),
        text,
    )
}

fn sha1_hex(path: &Path) -> String {
    let out = Command::new("sha1sum")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn sbom_is_valid_spdx_with_images_files_and_upstream_packages() {
    assert!(
        pyspdxtools(),
        "pyspdxtools (PyPI spdx-tools) is not installed: scripts/test installs it"
    );
    let reg = Registry::start();
    let a = attested_image(&reg, "att/app", "1.0");
    let p = project(&reg, &plain_entry(&reg, "att/app", "1.0"), "");
    p.bale(&["lock"]).ok();
    build(&p);
    let run = p.bale(&["sbom", "e.bale", "--public-key", "keys/k.pub"]);
    run.ok();
    let file = p.path().join("sbom.spdx.json");
    std::fs::write(&file, &run.out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let (valid, said) = spdx_validate(&file);
    assert!(
        valid,
        "spdx-tools rejects the SBOM:\n{said}\n{}",
        run.stdout()
    );

    let doc = json(&run);
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    let creators = doc["creationInfo"]["creators"].to_string();
    assert!(
        creators.contains(&format!("Tool: bale-{}", env!("CARGO_PKG_VERSION"))),
        "{creators}"
    );
    let packages = doc["packages"].as_array().cloned().unwrap_or_default();
    let image = packages
        .iter()
        .find(|p| p["primaryPackagePurpose"] == "CONTAINER")
        .unwrap_or_else(|| panic!("no image package: {doc}"));
    let purl = image["externalRefs"][0]["referenceLocator"]
        .as_str()
        .unwrap_or_default();
    assert!(
        purl.starts_with(&format!(
            "pkg:oci/app@sha256%3A{}?",
            a.amd64.manifest.trim_start_matches("sha256:")
        )),
        "{purl}"
    );
    assert!(purl.contains("tag=1.0"), "{purl}");
    assert_eq!(
        image["checksums"][0]["checksumValue"].as_str(),
        Some(a.amd64.manifest.trim_start_matches("sha256:"))
    );
    // The upstream SPDX attestation's packages are taken in, under the image.
    let names: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(
        names.contains(&"busybox") && names.contains(&"musl"),
        "{names:?}"
    );
    let busybox = packages
        .iter()
        .find(|p| p["name"] == "busybox")
        .unwrap_or(&serde_json::Value::Null);
    assert_eq!(busybox["versionInfo"], "1.36.1");
    assert!(
        busybox["comment"]
            .as_str()
            .unwrap_or_default()
            .contains(&a.sbom_layer)
    );
    // Every overlay and template, with its SHA-256 and SHA1.
    let files = doc["files"].as_array().cloned().unwrap_or_default();
    let conf = files
        .iter()
        .find(|f| f["fileName"] == "./config/app.conf")
        .unwrap_or_else(|| panic!("no app.conf: {doc}"));
    let sums = conf["checksums"].to_string();
    assert!(
        sums.contains(&sha1_hex(&p.path().join("config/app.conf"))),
        "{sums}"
    );
    assert!(
        sums.contains(sha(b"listen = 8080\n").trim_start_matches("sha256:")),
        "{sums}"
    );
    assert!(
        files.iter().any(|f| f["fileName"] == "./config/site.conf"),
        "{doc}"
    );

    // Deterministic: a second build gives the same document, and the
    // signed manifest lists it.
    std::fs::rename(p.path().join("e.bale"), p.path().join("first.bale"))
        .unwrap_or_else(|e| panic!("{e}"));
    build(&p);
    let again = p.bale(&["sbom", "e.bale", "--public-key", "keys/k.pub"]);
    assert_eq!(again.out.stdout, run.out.stdout);
    let v = p.bale(&["verify", "e.bale", "--public-key", "keys/k.pub", "--json"]);
    v.ok();
    // Without bale: the same bytes are a plain tar entry.
    let tar = Command::new("tar")
        .args(["-xOf", "e.bale", "bale/sbom.spdx.json"])
        .current_dir(p.path())
        .output()
        .unwrap_or_else(|e| panic!("tar: {e}"));
    assert_eq!(tar.stdout, run.out.stdout);
    // Installed, it stays on the host for auditors.
    p.install_none("e.bale", "site").ok();
    let on_host =
        std::fs::read(p.path().join("site/current/.bale/sbom.spdx.json")).unwrap_or_default();
    assert_eq!(on_host, run.out.stdout);
}

#[test]
fn a_tampered_sbom_is_refused() {
    // The SBOM is an entry of the signed manifest like any other: a
    // bundle whose SBOM was edited fails verification and `bale sbom`.
    let reg = Registry::start();
    attested_image(&reg, "att/app", "1.0");
    let p = project(&reg, &plain_entry(&reg, "att/app", "1.0"), "");
    p.bale(&["lock"]).ok();
    build(&p);
    let path = p.path().join("e.bale");
    let mut bytes = std::fs::read(&path).unwrap_or_default();
    let needle = b"\"name\": \"busybox\"";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("no busybox in the bundle"));
    bytes[at + 10] = b'B';
    std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
    p.bale(&["sbom", "e.bale", "--public-key", "keys/k.pub"])
        .fails(exit::INTEGRITY)
        .says("does not match the manifest");
    p.bale(&["verify", "e.bale", "--public-key", "keys/k.pub"])
        .fails(exit::INTEGRITY)
        .says("bale/sbom.spdx.json");
}

/// A project whose `app` requires a signature by `keys/vendor.pub`.
fn signed_project(reg: &Registry, per_image: bool) -> Project {
    let image = format!("{}/att/app:1.0", reg.host);
    let p = if per_image {
        project(
            reg,
            &format!("{{ image = \"{image}\", cosign_key = \"keys/vendor.pub\" }}"),
            "",
        )
    } else {
        project(
            reg,
            &format!("\"{image}\""),
            "cosign_key = \"keys/vendor.pub\"",
        )
    };
    cosign_keypair(&p.path().join("keys"), "vendor");
    p
}

/// The attested `att/app:1.0`, signed by `keys/vendor.key`, and a project
/// requiring that key (per image, or for the whole bundle): the registry,
/// the image, the project and the signature artifact's digest.
fn vendor_signed(per_image: bool) -> (Registry, Attested, Project, String) {
    let reg = Registry::start();
    let a = attested_image(&reg, "att/app", "1.0");
    let p = signed_project(&reg, per_image);
    let sig = cosign_sign(&reg, "att/app", &a.index, &p.path().join("keys"), "vendor");
    (reg, a, p, sig)
}

#[test]
fn cosign_signature_is_locked_carried_and_verified_offline() {
    let (reg, a, p, sig) = vendor_signed(true);
    p.bale(&["lock"]).ok();
    let lock = lock_table(&p);
    let s = &lock["image"][0]["signature"];
    assert_eq!(
        s["manifest"].as_str(),
        Some(sig.as_str()),
        "{}",
        p.read("bundle.lock")
    );
    let pub_bytes = std::fs::read(p.path().join("keys/vendor.pub")).unwrap_or_default();
    assert_eq!(s["key"].as_str(), Some(sha(&pub_bytes).as_str()));
    // fetch re-checks from the store.
    p.bale(&["fetch", "--locked"]).ok();
    build(&p);
    let v = p.bale(&["verify", "e.bale", "--public-key", "keys/k.pub", "--json"]);
    v.ok();
    assert_eq!(
        json(&v)["images"][0]["cosign"],
        "verified",
        "{}",
        v.stdout()
    );
    p.bale(&["verify", "e.bale", "--public-key", "keys/k.pub"])
        .ok()
        .says("upstream cosign signature of app");
    let i = p.bale(&["inspect", "e.bale"]);
    assert!(
        i.stdout().contains(&format!("cosign signature {sig}")),
        "{}",
        i.describe()
    );
    // Without bale, as docs/audit.md shows: the payload and its signature
    // from the bundle's blobs, checked by openssl with the vendor's key.
    let extract = |entry: &str| {
        let out = Command::new("tar")
            .args(["-xOf", "e.bale", entry])
            .current_dir(p.path())
            .output()
            .unwrap_or_else(|e| panic!("tar: {e}"));
        assert!(out.status.success(), "tar {entry}");
        out.stdout
    };
    let hex = |d: &str| d.trim_start_matches("sha256:").to_owned();
    let sig_manifest: serde_json::Value =
        serde_json::from_slice(&extract(&format!("blobs/sha256/{}", hex(&sig))))
            .unwrap_or_default();
    let layer = &sig_manifest["layers"][0];
    let payload = extract(&format!(
        "blobs/sha256/{}",
        hex(layer["digest"].as_str().unwrap_or_default())
    ));
    let der = base64::engine::general_purpose::STANDARD
        .decode(
            layer["annotations"]["dev.cosignproject.cosign/signature"]
                .as_str()
                .unwrap_or_default(),
        )
        .unwrap_or_default();
    std::fs::write(p.path().join("payload.json"), &payload).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(p.path().join("sig.der"), &der).unwrap_or_else(|e| panic!("{e}"));
    openssl(
        &[
            "dgst",
            "-sha256",
            "-verify",
            "keys/vendor.pub",
            "-signature",
            "sig.der",
            "payload.json",
        ],
        p.path(),
    );
    assert!(String::from_utf8_lossy(&payload).contains(&a.index));
    // The artifact goes on where cosign looks for it: served by `bale
    // serve`, pushed by `bale push`, under its tag, bytes unchanged.
    let tag = format!("sha256-{}.sig", a.index.trim_start_matches("sha256:"));
    let served = common::bundles::Served::start(&p, "e.bale", &[]);
    assert_eq!(
        sha(&skopeo_raw(&format!(
            "127.0.0.1:{}/att/app:{tag}",
            served.port()
        ))),
        sig
    );
    drop(served);
    let site_reg = Registry::start();
    p.bale(&[
        "push",
        "e.bale",
        "--public-key",
        "keys/k.pub",
        "--to",
        &site_reg.host,
    ])
    .ok();
    assert_eq!(
        sha(&skopeo_raw(&format!("{}/att/app:{tag}", site_reg.host))),
        sig
    );
    // Offline: a copy of the bundle alone, in a directory without the keys
    // or the registry, still verifies the upstream signature.
    drop(reg);
    let site = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(p.path().join("e.bale"), site.path().join("e.bale"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(p.path().join("keys/k.pub"), site.path().join("k.pub"))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_bale"))
        .args(["verify", "e.bale", "--public-key", "k.pub", "--json"])
        .current_dir(site.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert!(out.status.success(), "{v}");
    assert_eq!(v["images"][0]["cosign"], "verified", "{v}");
}

#[test]
fn cosign_key_for_the_whole_bundle_applies_to_every_image() {
    let (_reg, _a, p, _) = vendor_signed(false);
    p.bale(&["lock"]).ok();
    assert!(
        p.read("bundle.lock").contains("[image.signature]"),
        "{}",
        p.read("bundle.lock")
    );
}

#[test]
fn unsigned_image_is_refused_naming_it() {
    let reg = Registry::start();
    attested_image(&reg, "att/app", "1.0");
    let p = signed_project(&reg, true);
    p.bale(&["lock"])
        .fails(exit::INTEGRITY)
        .says("service `app`")
        .says("not signed");
    assert!(!p.path().join("bundle.lock").exists());
}

#[test]
fn signature_by_an_untrusted_key_is_refused() {
    let reg = Registry::start();
    let a = attested_image(&reg, "att/app", "1.0");
    let p = signed_project(&reg, true);
    cosign_keypair(&p.path().join("other"), "mallory");
    cosign_sign(
        &reg,
        "att/app",
        &a.index,
        &p.path().join("other"),
        "mallory",
    );
    p.bale(&["lock"])
        .fails(exit::INTEGRITY)
        .says("service `app`")
        .says("does not verify with the key");
    assert!(!p.path().join("bundle.lock").exists());
}

#[test]
fn replayed_signature_of_another_digest_is_refused() {
    // A valid vendor signature, but of another image, placed under this
    // image's signature tag.
    let reg = Registry::start();
    let a = attested_image(&reg, "att/app", "1.0");
    let p = signed_project(&reg, true);
    let keys = p.path().join("keys");
    let other = a.amd64.manifest.clone();
    let payload = simple_signing(&format!("{}/att/app", reg.host), &other);
    let sig = openssl_sign(&keys.join("vendor.key"), &payload);
    push_cosign_signature(&reg, "att/app", &a.index, &[(payload, sig)]);
    p.bale(&["lock"])
        .fails(exit::INTEGRITY)
        .says("not the locked");
}

#[test]
fn a_swapped_cosign_key_file_is_refused_at_build() {
    let (_reg, _a, p, _) = vendor_signed(true);
    p.bale(&["lock"]).ok();
    // Someone replaces the vendor key after locking.
    cosign_keypair(&p.path().join("keys"), "vendor");
    p.bale(&[
        "build",
        "--locked",
        "--sign-key",
        "keys/k.sec",
        "-o",
        "e.bale",
    ])
    .fails(exit::INTEGRITY)
    .says("not the one the lock recorded");
    assert!(!p.path().join("e.bale").exists());
}

#[test]
fn a_cosign_key_that_is_not_p256_is_refused() {
    let reg = Registry::start();
    attested_image(&reg, "att/app", "1.0");
    let p = signed_project(&reg, true);
    p.write("keys/vendor.pub", "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAuRaMDmnm1KvsbmBeB/iPRyrb00muRV+aqBBFS4ADvDk=\n-----END PUBLIC KEY-----\n");
    p.bale(&["lock"])
        .fails(exit::INVALID_INPUT)
        .says("vendor.pub")
        .says("P-256");
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn chromium_args(profile: &Path) -> Vec<String> {
    vec![
        "--headless".into(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        format!("--user-data-dir={}", profile.display()),
    ]
}

#[test]
fn audit_report_renders_in_chromium_and_shows_every_image() {
    let browser =
        chromium().unwrap_or_else(|| panic!("chromium is not installed: scripts/test installs it"));
    let reg = Registry::start();
    let a = attested_image(&reg, "att/app", "1.0");
    attested_image(&reg, "att/worker", "2.0");
    let p = signed_project(&reg, true);
    cosign_sign(&reg, "att/app", &a.index, &p.path().join("keys"), "vendor");
    let toml = p.read("bundle.toml").replace(
        "[images]\n",
        &format!("[images]\nworker = \"{}/att/worker:2.0\"\n", reg.host),
    );
    p.write("bundle.toml", &toml);
    p.bale(&["lock"]).ok();
    build(&p);
    p.install_none("e.bale", "site").ok();
    // A finding, so that the report shows one.
    p.write("site/current/config/app.conf", "listen = 9999\n");
    let audit = |report: &str| {
        p.bale(&[
            "audit",
            "e.bale",
            "--public-key",
            "keys/k.pub",
            "--target",
            "site",
            "--runtime",
            "none",
            "--report",
            report,
        ])
    };
    audit("report.html").fails(exit::INTEGRITY);
    audit("report.md").fails(exit::INTEGRITY);
    let html = p.read("report.html");
    // Self-contained: no script, no stylesheet, image or link elsewhere.
    for banned in ["<script", "<link", "src=", "href=", "url(", "@import"] {
        assert!(!html.contains(banned), "report has {banned}");
    }
    // Deterministic but for the time it ran and the path it names.
    audit("again.html").fails(exit::INTEGRITY);
    let steady = |text: &str| {
        let time =
            regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").unwrap_or_else(|e| panic!("{e}"));
        time.replace_all(text, "TIME")
            .replace("again.html", "report.html")
    };
    assert_eq!(steady(&p.read("again.html")), steady(&html));
    assert!(
        html.contains(&format!(
            "to {}",
            std::fs::canonicalize(p.path())
                .unwrap_or_default()
                .join("report.html")
                .display()
        )),
        "the report does not say where it was written"
    );

    let profile = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let url = format!("file://{}", p.path().join("report.html").display());
    let dom = Command::new(browser)
        .args(chromium_args(profile.path()))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap_or_else(|e| panic!("{browser}: {e}"));
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    for image in [
        format!("{}/att/app:1.0", reg.host),
        format!("{}/att/worker:2.0", reg.host),
    ] {
        assert!(
            dom.contains(&format!("<td>{image}</td>")),
            "the rendered page lacks {image}:\n{dom}"
        );
    }
    assert!(
        dom.contains("config/app.conf") && dom.contains("modified"),
        "{dom}"
    );
    assert!(dom.contains(&format!("cosign {}", "sha256:")), "{dom}");
    assert!(dom.contains("https://spdx.dev/Document"), "{dom}");
    // Printed: Chromium lays it out as PDF pages.
    let pdf = p.path().join("report.pdf");
    let printed = Command::new(browser)
        .args(chromium_args(profile.path()))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg("--no-pdf-header-footer")
        .arg(&url)
        .output()
        .unwrap_or_else(|e| panic!("{browser}: {e}"));
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    let pdf_bytes = std::fs::read(&pdf).unwrap_or_default();
    assert!(pdf_bytes.starts_with(b"%PDF"), "no PDF printed");

    let md = p.read("report.md");
    assert!(
        md.contains(&format!("| app | {}/att/app:1.0 |", reg.host)),
        "{md}"
    );
    assert!(md.contains("## Findings (1)"), "{md}");
}

#[test]
fn audit_report_of_another_format_is_a_usage_error() {
    let p = Project::demo();
    p.build_demo("demo.bale");
    p.install_none("demo.bale", "site").ok();
    p.bale(&[
        "audit",
        "--target",
        "site",
        "--runtime",
        "none",
        "--report",
        "r.pdf",
    ])
    .fails(exit::USAGE)
    .says(".html or .md");
    assert!(!p.path().join("r.pdf").exists());
}

/// Rewrites `bundle` as an attacker without the release key would: the
/// carried cosign key replaced by `new_key` (and the image list's record of
/// it), the manifest's lines for both updated, the minisign signature
/// dropped. Python's tarfile writes the new archive.
fn forge_cosign_key(bundle: &Path, new_key: &Path) {
    let script = r#"
import hashlib, sys, tarfile, io
src, key_path = sys.argv[1], sys.argv[2]
new_key = open(key_path, 'rb').read()
entries = []
with tarfile.open(src) as t:
    for m in t.getmembers():
        entries.append((m, t.extractfile(m).read()))
data = {m.name: d for m, d in entries}
old_key = data['bale/cosign/keys/vendor.pub']
assert len(old_key) == len(new_key)
old_kd, new_kd = hashlib.sha256(old_key).hexdigest(), hashlib.sha256(new_key).hexdigest()
images = data['bale/images.json'].replace(old_kd.encode(), new_kd.encode())
manifest = data['bale-manifest']
manifest = manifest.replace(old_kd.encode(), new_kd.encode())
manifest = manifest.replace(hashlib.sha256(data['bale/images.json']).hexdigest().encode(),
                            hashlib.sha256(images).hexdigest().encode())
data['bale/cosign/keys/vendor.pub'], data['bale/images.json'], data['bale-manifest'] = new_key, images, manifest
with tarfile.open(src, 'w', format=tarfile.GNU_FORMAT) as out:
    for m, _ in entries:
        if m.name == 'bale-manifest.minisig':
            continue
        m.size = len(data[m.name])
        out.addfile(m, io.BytesIO(data[m.name]))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(bundle)
        .arg(new_key)
        .output()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn forged_upstream_key_in_an_unsigned_bundle_is_caught_offline() {
    // Without the release signature, nothing vouches for the bundle; the
    // upstream signature is still checked against the key it carries, and
    // a key that did not sign the image fails, naming it.
    let (_reg, _a, p, _) = vendor_signed(true);
    p.bale(&["lock"]).ok();
    build(&p);
    p.bale(&["verify", "e.bale", "--allow-unsigned"]).ok();
    cosign_keypair(&p.path().join("other"), "mallory");
    forge_cosign_key(
        &p.path().join("e.bale"),
        &p.path().join("other/mallory.pub"),
    );
    let v = p.bale(&["verify", "e.bale", "--allow-unsigned", "--json"]);
    v.fails(exit::INTEGRITY);
    let report = json(&v);
    assert_eq!(report["images"][0]["cosign"], "failed", "{report}");
    assert!(
        report["problems"]
            .to_string()
            .contains("does not verify with the key"),
        "{report}"
    );
    // With the release key, the missing signature is what fails first.
    p.bale(&["verify", "e.bale", "--public-key", "keys/k.pub"])
        .fails(exit::INTEGRITY);
}

#[test]
fn a_delta_leaves_an_unchanged_signature_to_its_base() {
    let (_reg, _a, p, _) = vendor_signed(true);
    p.bale(&["lock"]).ok();
    build(&p);
    let toml = p
        .read("bundle.toml")
        .replace("version = \"1.0.0\"", "version = \"1.0.1\"");
    p.write("bundle.toml", &toml);
    p.write("config/app.conf", "listen = 8081\n");
    p.bale(&[
        "build",
        "--locked",
        "--sign-key",
        "keys/k.sec",
        "--base",
        "e.bale",
        "-o",
        "d.bale",
    ])
    .ok();
    let alone = p.bale(&["verify", "d.bale", "--public-key", "keys/k.pub", "--json"]);
    alone.ok();
    assert_eq!(
        json(&alone)["images"][0]["cosign"],
        "from-base",
        "{}",
        alone.stdout()
    );
    let with_base = p.bale(&[
        "verify",
        "d.bale",
        "--public-key",
        "keys/k.pub",
        "--base",
        "e.bale",
        "--json",
    ]);
    with_base.ok();
    assert_eq!(
        json(&with_base)["base_checked"],
        true,
        "{}",
        with_base.stdout()
    );
}
