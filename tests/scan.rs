//! `bale scan`: the signed SBOM's OS packages against an OSV database the
//! operator carries in (a zip export as osv.dev publishes, a directory, a
//! record), under each package manager's ordering, with OpenVEX from the
//! bundle and from the command line; offline (run without a network).

mod common;

use std::path::Path;
use std::process::Command;

use bale::error::exit;
use common::distros::*;
use common::*;
use serde_json::{Value, json};

fn write_json(path: &Path, v: &Value) {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
}

/// An OSV record in the published schema, checked against it.
fn record(dir: &Path, file: &str, v: Value) {
    let path = dir.join(file);
    write_json(&path, &v);
    let (valid, said) = schema_valid("osv.schema.json", &path, &[]);
    assert!(valid, "{file} is not a valid OSV record:\n{said}");
}

fn affected(ecosystem: &str, name: &str, events: Value) -> Value {
    json!({"package": {"ecosystem": ecosystem, "name": name}, "ranges": [{"type": "ECOSYSTEM", "events": events}]})
}

/// A Debian package of the image (name, version, the name its records
/// use: the source package where there is one).
fn deb_package(doc: &Value, with_source: bool) -> (String, String, String) {
    packages_of(doc, "deb")
        .iter()
        .find_map(|p| {
            let purl =
                bale::packages::Purl::parse(p["externalRefs"][0]["referenceLocator"].as_str()?)?;
            let upstream = purl.qualifiers.get("upstream").cloned();
            if upstream.is_some() != with_source {
                return None;
            }
            Some((
                purl.name.clone(),
                purl.version.clone()?,
                upstream.unwrap_or(purl.name),
            ))
        })
        .unwrap_or_else(|| panic!("no deb package with source = {with_source}"))
}

/// The database: Debian records zipped as osv.dev exports them, Alpine
/// records in a directory, one Rocky record file.
fn database(p: &Project, doc: &Value) -> (Vec<String>, (String, String, String)) {
    let dir = p.path().join("osv");
    let (bin, bin_version, bin_name) = deb_package(doc, false);
    let (src_pkg, src_version, src) = deb_package(doc, true);
    let deb = dir.join("debian");
    // Several events: fixed before the installed version, then again
    // introduced at it and fixed after it.
    record(
        &deb,
        "DSA-9001-1.json",
        json!({
            "schema_version": "1.6.0", "id": "DSA-9001-1", "modified": "2026-11-20T08:00:00Z",
            "upstream": ["CVE-2026-9001"], "summary": "two ranges",
            "affected": [affected("Debian:12", &bin_name, json!([
                {"introduced": "0"}, {"fixed": format!("{bin_version}~")},
                {"introduced": bin_version}, {"fixed": format!("{bin_version}.1")}
            ]))]
        }),
    );
    // Keyed by the source package, as Debian's records are.
    record(
        &deb,
        "DSA-9002-1.json",
        json!({
            "schema_version": "1.6.0", "id": "DSA-9002-1", "modified": "2026-11-28T09:30:00Z",
            "upstream": ["CVE-2026-9002"],
            "affected": [affected("Debian:12", &src, json!([{"introduced": "0"}, {"fixed": format!("{src_version}.1")}]))]
        }),
    );
    // Already fixed in the installed version.
    record(
        &deb,
        "DSA-9003-1.json",
        json!({
            "schema_version": "1.6.0", "id": "DSA-9003-1", "modified": "2026-10-01T00:00:00Z",
            "affected": [affected("Debian:12", &bin_name, json!([{"introduced": "0"}, {"fixed": format!("{bin_version}~")}]))]
        }),
    );
    // Withdrawn, another release, another distribution: none applies.
    record(
        &deb,
        "DSA-9004-1.json",
        json!({
            "schema_version": "1.6.0", "id": "DSA-9004-1", "modified": "2026-11-01T00:00:00Z",
            "withdrawn": "2026-11-02T00:00:00Z",
            "affected": [affected("Debian:12", &bin_name, json!([{"introduced": "0"}]))]
        }),
    );
    record(
        &deb,
        "DSA-9005-1.json",
        json!({
            "schema_version": "1.6.0", "id": "DSA-9005-1", "modified": "2026-11-01T00:00:00Z",
            "affected": [affected("Debian:11", &bin_name, json!([{"introduced": "0"}]))]
        }),
    );
    record(
        &deb,
        "USN-9006-1.json",
        json!({
            "schema_version": "1.6.0", "id": "USN-9006-1", "modified": "2026-11-01T00:00:00Z",
            "affected": [affected("Ubuntu:22.04:LTS", &bin_name, json!([{"introduced": "0"}]))]
        }),
    );
    // Zipped by Python's zipfile, as osv.dev's all.zip is a plain zip.
    let zip = dir.join("Debian-all.zip");
    let out = Command::new("python3")
        .args(["-c", "import sys, zipfile, pathlib\nwith zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n    for f in sorted(pathlib.Path(sys.argv[2]).glob('*.json')): z.write(f, f.name)"])
        .arg(&zip)
        .arg(&deb)
        .output()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let alpine = dir.join("alpine");
    record(
        &alpine,
        "CVE-2024-2511.json",
        json!({
            "schema_version": "1.6.0", "id": "CVE-2024-2511", "modified": "2026-11-30T12:00:00Z",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],
            "affected": [affected("Alpine:v3.19", "openssl", json!([{"introduced": "0"}, {"fixed": "3.1.4-r6"}]))]
        }),
    );
    record(
        &alpine,
        "CVE-2023-0001.json",
        json!({
            "schema_version": "1.6.0", "id": "CVE-2023-0001", "modified": "2026-01-01T00:00:00Z",
            "affected": [affected("Alpine:v3.19", "musl", json!([{"introduced": "1.2.4-r0"}, {"last_affected": "1.2.4_git20230717-r4"}]))],
            "database_specific": {"severity": "Critical"}
        }),
    );
    let rocky = dir.join("RLSA-2024-0310.json");
    record(
        &dir,
        "RLSA-2024-0310.json",
        json!({
            "schema_version": "1.6.0", "id": "RLSA-2024:0310", "modified": "2026-02-01T00:00:00Z",
            "aliases": ["CVE-2023-5678"],
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
            "affected": [affected("Rocky Linux:9", "openssl-libs", json!([{"introduced": "0"}, {"fixed": "1:3.0.7-25.el9_3"}]))]
        }),
    );
    (
        vec![
            zip.display().to_string(),
            alpine.display().to_string(),
            rocky.display().to_string(),
        ],
        (bin, src_pkg, src),
    )
}

/// A VEX document: libcrypto3 in the alpine image is not affected.
fn vex_libcrypto() -> Value {
    json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://example.org/vex/1",
        "author": "Example Site Operations",
        "timestamp": "2026-12-01T00:00:00Z",
        "version": 1,
        "statements": [{
            "vulnerability": {"name": "CVE-2024-2511"},
            "products": [{"@id": "pkg:oci/alpine", "subcomponents": [{"@id": "pkg:apk/alpine/libcrypto3"}]}],
            "status": "not_affected",
            "justification": "vulnerable_code_not_in_execute_path",
            "impact_statement": "the service never renegotiates TLS sessions"
        }]
    })
}

fn findings<'a>(report: &'a Value, service: &str) -> Vec<&'a Value> {
    report["images"]
        .as_array()
        .and_then(|is| is.iter().find(|i| i["service"] == service))
        .and_then(|i| i["findings"].as_array())
        .map(|f| f.iter().collect())
        .unwrap_or_default()
}

fn find<'a>(fs: &[&'a Value], id: &str, package: &str) -> &'a Value {
    fs.iter()
        .find(|f| f["id"] == id && f["package"] == package)
        .copied()
        .unwrap_or_else(|| panic!("no {id} for {package} in {fs:?}"))
}

#[test]
fn scan_finds_what_the_database_says_under_each_ordering_with_vex_applied_offline() {
    let d = distros_with("vex = \"vex.json\"");
    let p = &d.p;
    write_json(&p.path().join("vex.json"), &vex_libcrypto());
    p.bale(&["lock"]).ok();
    p.bale(&["build", "--sign-key", "keys/k.sec", "-o", "e.bale"])
        .ok();
    let (doc, _) = sbom(p);
    let (db, (bin, src_pkg, src)) = database(p, &doc);
    let mut args = vec!["scan", "e.bale", "--public-key", "keys/k.pub"];
    for x in &db {
        args.extend(["--db", x]);
    }
    // No network at all: the scan runs in a namespace without one.
    let bale = env!("CARGO_BIN_EXE_bale");
    let mut cmd = if have("unshare")
        && Command::new("unshare")
            .args(["-n", "true"])
            .status()
            .is_ok_and(|s| s.success())
    {
        let mut c = Command::new("unshare");
        c.args(["-n", bale]);
        c
    } else {
        Command::new(bale)
    };
    let out = cmd
        .args(&args)
        .arg("--json")
        .current_dir(p.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));

    // Debian: the two-range record holds, by binary and by source name;
    // the fixed, withdrawn, other-release and other-distribution ones not.
    let deb = findings(&report, "deb");
    let two = find(&deb, "DSA-9001-1", &bin);
    assert!(
        two["fixed"].as_str().is_some_and(|f| f.ends_with(".1")),
        "{two}"
    );
    assert_eq!(two["aliases"], json!(["CVE-2026-9001"]));
    assert_eq!(two["severity"], "unknown");
    let by_source = find(&deb, "DSA-9002-1", &src_pkg);
    assert!(
        by_source["purl"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("upstream={src}")),
        "{by_source}"
    );
    for gone in ["DSA-9003-1", "DSA-9004-1", "DSA-9005-1", "USN-9006-1"] {
        assert!(
            !deb.iter().any(|f| f["id"] == gone),
            "{gone} must not apply: {deb:?}"
        );
    }

    // Alpine: one record, two packages of the origin; the bundle's VEX
    // settles one, with its justification shown.
    let alpine = findings(&report, "alpine");
    let ssl = find(&alpine, "CVE-2024-2511", "libssl3");
    assert_eq!(
        (ssl["severity"].as_str(), ssl["score"].as_f64()),
        (Some("high"), Some(7.5))
    );
    assert_eq!(ssl["fixed"], "3.1.4-r6");
    assert!(ssl["vex"].is_null());
    let crypto = find(&alpine, "CVE-2024-2511", "libcrypto3");
    assert_eq!(crypto["vex"]["status"], "not_affected");
    assert_eq!(
        crypto["vex"]["justification"],
        "vulnerable_code_not_in_execute_path"
    );
    assert_eq!(crypto["vex"]["source"], "bundle");
    let musl = find(&alpine, "CVE-2023-0001", "musl");
    assert_eq!(
        (musl["severity"].as_str(), musl["fixed"].as_str()),
        (Some("critical"), None)
    );

    // Rocky: rpm's ordering with an epoch.
    let rocky = findings(&report, "rocky");
    let r = find(&rocky, "RLSA-2024:0310", "openssl-libs");
    assert_eq!(r["installed"], "1:3.0.7-24.el9");
    assert_eq!(r["fixed"], "1:3.0.7-25.el9_3");
    assert_eq!(
        (r["severity"].as_str(), r["score"].as_f64()),
        (Some("medium"), Some(5.9))
    );
    assert!(
        findings(&report, "distroless")
            .iter()
            .all(|f| f["id"] != "RLSA-2024:0310")
    );

    // The database's age is visible: its newest record, and days since.
    let dbr = &report["database"];
    assert_eq!(dbr["newest_modified"], "2026-11-30T12:00:00Z");
    assert!(dbr["age_days"].as_i64().is_some_and(|d| d >= 0), "{dbr}");
    assert_eq!(dbr["withdrawn"], 1);
    assert_eq!(dbr["records"], 9);

    // --fail-on: libssl3's high finding is open; the critical musl one too.
    p.bale(&[&args[..], &["--fail-on", "critical"]].concat())
        .fails(exit::VULNERABLE);
    // A site VEX settling both: nothing at high or above stays open.
    let site = p.path().join("site-vex.json");
    write_json(
        &site,
        &json!({"@context": "https://openvex.dev/ns/v0.2.0", "statements": [
            {"vulnerability": {"name": "CVE-2024-2511"}, "products": [{"@id": "pkg:apk/alpine/libssl3"}], "status": "fixed"},
            {"vulnerability": "CVE-2023-0001", "products": ["pkg:apk/alpine/musl"], "status": "not_affected", "justification": "component_not_present"}
        ]}),
    );
    let site_arg = site.display().to_string();
    p.bale(&[&args[..], &["--vex", &site_arg, "--fail-on", "high"]].concat())
        .ok();
    p.bale(&[&args[..], &["--vex", &site_arg, "--fail-on", "medium"]].concat())
        .fails(exit::VULNERABLE);

    // The report an auditor files, in both formats.
    let run = p.bale(&[&args[..], &["--report", "scan.html"]].concat());
    run.ok();
    assert!(
        run.stderr().contains("report written to scan.html"),
        "{}",
        run.stderr()
    );
    let html = p.read("scan.html");
    for want in [
        "CVE-2024-2511",
        "vulnerable_code_not_in_execute_path",
        "2026-11-30T12:00:00Z",
        "day(s) older than the scan",
        "RLSA-2024:0310",
    ] {
        assert!(html.contains(want), "{want} missing from the HTML report");
    }
    p.bale(&[&args[..], &["--report", "scan.md"]].concat()).ok();
    assert!(p.read("scan.md").contains("| CVE-2024-2511 |"));

    // Installed: the same findings from the SBOM and VEX on the host.
    p.install_none("e.bale", "site").ok();
    let mut targs = vec!["scan", "--target", "site", "--json"];
    for x in &db {
        targs.extend(["--db", x]);
    }
    let installed: Value =
        serde_json::from_str(&p.bale(&targs).stdout()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(installed["images"], report["images"]);
}

#[test]
fn a_bad_vex_document_fails_the_build_and_a_bad_database_names_its_entry() {
    let d = distros_with("vex = \"vex.json\"");
    let p = &d.p;
    // not_affected without a justification or an impact statement.
    write_json(
        &p.path().join("vex.json"),
        &json!({"statements": [{"vulnerability": "CVE-1", "status": "not_affected"}]}),
    );
    for cmd in [
        &["lock"][..],
        &["build", "--sign-key", "keys/k.sec", "-o", "e.bale"],
    ] {
        let run = p.bale(cmd);
        run.fails(exit::INVALID_INPUT);
        assert!(
            run.stderr().contains("bundle.toml:6:7") && run.stderr().contains("justification"),
            "{}",
            run.stderr()
        );
    }
    assert!(!p.path().join("e.bale").exists());

    write_json(&p.path().join("vex.json"), &vex_libcrypto());
    p.bale(&["lock"]).ok();
    p.bale(&["build", "--sign-key", "keys/k.sec", "-o", "e.bale"])
        .ok();
    // A record that is not OSV JSON: the file and the line are named,
    // its bytes are not quoted.
    let bad = p.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        bad.join("x.json"),
        "{\"id\": \"SECRET-TOKEN-abc\", \"affected\": 7}",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let run = p.bale(&[
        "scan",
        "e.bale",
        "--public-key",
        "keys/k.pub",
        "--db",
        "bad",
    ]);
    run.fails(exit::INVALID_INPUT);
    assert!(
        run.stderr().contains("x.json") && run.stderr().contains("not an OSV record"),
        "{}",
        run.stderr()
    );
    assert!(!run.stderr().contains("SECRET-TOKEN"), "{}", run.stderr());
    p.bale(&[
        "scan",
        "e.bale",
        "--public-key",
        "keys/k.pub",
        "--db",
        "missing.zip",
    ])
    .fails(exit::INVALID_INPUT);
    p.bale(&["scan", "e.bale", "--db", "bad"])
        .fails(exit::USAGE);
}
