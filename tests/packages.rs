//! The OS packages inside the images, cataloged at build into the signed
//! SBOM: images whose layers hold real package databases (dpkg, apk, rpm),
//! with whiteouts and opaque directories applied across layers, checked
//! against what `dpkg-query` and `rpm -qa` report for the same files, and
//! the document validated by spdx-tools and the NTIA checker.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::distros::*;
use common::*;
use serde_json::Value;

/// A registry with the four test images, and a project that locks them.
pub struct Distros {
    pub reg: Registry,
    pub p: Project,
    pub deb_expected: Vec<String>,
    pub distroless_expected: Vec<String>,
    pub rpm_expected: Vec<String>,
}

fn without_status(para: &str) -> String {
    para.lines()
        .filter(|l| !l.starts_with("Status:"))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

pub fn distros() -> Distros {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Debian: the base layer's status, a status.d file the next layer
    // deletes (a whiteout), and a later layer's fuller status.
    let base = real_dpkg_status(20);
    let later = real_dpkg_status(28);
    let stale = "Package: stale-package\nVersion: 0.1-1\nArchitecture: amd64\n";
    let deb1 = gzip_tar_layer(tar_with_links(
        &[
            ("usr/lib/os-release", DEBIAN_OS_RELEASE.as_bytes()),
            ("var/lib/dpkg/status", base.as_bytes()),
            ("var/lib/dpkg/status.d/stale", stale.as_bytes()),
        ],
        &[("etc/os-release", "../usr/lib/os-release")],
    ));
    let deb2 = zstd_layer(&[
        ("var/lib/dpkg/status", later.as_bytes()),
        ("var/lib/dpkg/status.d/.wh.stale", b""),
        ("srv/app", b"app\n"),
    ]);
    reg.push_image(
        "os/debian",
        Some("12"),
        "linux",
        "amd64",
        None,
        &[deb1, deb2],
        false,
    );
    let deb_expected = dpkg_query(&later, work.path());

    // Distroless: one status.d file per package, no Status fields.
    let paras: Vec<String> = real_dpkg_status(3)
        .split("\n\n")
        .map(without_status)
        .collect();
    let names: Vec<String> = paras
        .iter()
        .map(|p| {
            p.lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("Package: ")
                .to_owned()
        })
        .collect();
    let mut files: Vec<(String, Vec<u8>)> =
        vec![("etc/os-release".into(), DEBIAN_OS_RELEASE.into())];
    for (n, p) in names.iter().zip(&paras) {
        files.push((format!("var/lib/dpkg/status.d/{n}"), p.clone().into_bytes()));
        files.push((
            format!("var/lib/dpkg/status.d/{n}.md5sums"),
            b"0123  /usr/x\n".to_vec(),
        ));
    }
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_slice()))
        .collect();
    reg.push_image(
        "os/distroless",
        Some("12"),
        "linux",
        "amd64",
        None,
        &[gzip_layer(&refs)],
        false,
    );
    let with_status: Vec<String> = paras
        .iter()
        .map(|p| p.replacen('\n', "\nStatus: install ok installed\n", 1))
        .collect();
    let distroless_expected = dpkg_query(&with_status.join("\n"), &work.path().join("dl"));

    // Alpine: the base layer's database, replaced by the next layer's
    // through an opaque directory.
    let apk1 = gzip_layer(&[
        ("etc/os-release", ALPINE_OS_RELEASE.as_bytes()),
        (
            "lib/apk/db/installed",
            apk_installed(&ALPINE_PACKAGES[..4]).as_bytes(),
        ),
        ("lib/apk/db/triggers", b""),
    ]);
    let apk2 = gzip_layer(&[
        ("lib/apk/db/.wh..wh..opq", b""),
        (
            "lib/apk/db/installed",
            apk_installed(&ALPINE_PACKAGES[3..]).as_bytes(),
        ),
    ]);
    reg.push_image(
        "os/alpine",
        Some("3.19"),
        "linux",
        "amd64",
        None,
        &[apk1, apk2],
        false,
    );

    // Rocky: an rpmdb.sqlite written by rpm itself.
    let db = rpm_database(work.path(), ROCKY_PACKAGES);
    let sqlite = std::fs::read(&db).unwrap_or_else(|e| panic!("{e}"));
    let rpm_expected = rpm_qa(db.parent().unwrap_or(Path::new(".")));
    reg.push_image(
        "os/rocky",
        Some("9.3"),
        "linux",
        "amd64",
        None,
        &[gzip_layer(&[
            ("etc/os-release", ROCKY_OS_RELEASE.as_bytes()),
            ("var/lib/rpm/rpmdb.sqlite", &sqlite),
        ])],
        false,
    );

    let p = Project::new(&format!(
        "[bundle]\nname = \"distros\"\nversion = \"1.0.0\"\nsupplier = \"Example Site Operations\"\nplatforms = [\"linux/amd64\"]\n[images]\ndeb = \"{0}/os/debian:12\"\ndistroless = \"{0}/os/distroless:12\"\nalpine = \"{0}/os/alpine:3.19\"\nrocky = \"{0}/os/rocky:9.3\"\n",
        reg.host
    ));
    p.keygen();
    Distros {
        reg,
        p,
        deb_expected,
        distroless_expected,
        rpm_expected,
    }
}

/// The SBOM of `p`'s signed bundle `e.bale`.
pub fn sbom(p: &Project) -> (Value, Vec<u8>) {
    let run = p.bale(&["sbom", "e.bale", "--public-key", "keys/k.pub"]);
    run.ok();
    let doc = serde_json::from_slice(&run.out.stdout).unwrap_or_else(|e| panic!("{e}"));
    (doc, run.out.stdout.clone())
}

/// The packages the image of `service` CONTAINS.
pub fn packages_of<'a>(doc: &'a Value, service: &str) -> Vec<&'a Value> {
    let all = doc["packages"].as_array().map_or(&[][..], Vec::as_slice);
    let image = all
        .iter()
        .find(|p| {
            p["primaryPackagePurpose"] == "CONTAINER"
                && p["SPDXID"]
                    .as_str()
                    .is_some_and(|id| id.ends_with(&format!("-{service}")))
        })
        .unwrap_or_else(|| panic!("no image package for {service}"));
    let id = image["SPDXID"].as_str().unwrap_or_default();
    let contained: BTreeSet<&str> = doc["relationships"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter(|r| r["spdxElementId"] == id && r["relationshipType"] == "CONTAINS")
        .filter_map(|r| r["relatedSpdxElement"].as_str())
        .collect();
    all.iter()
        .filter(|p| p["SPDXID"].as_str().is_some_and(|s| contained.contains(s)))
        .collect()
}

fn purl(p: &Value) -> &str {
    p["externalRefs"][0]["referenceLocator"]
        .as_str()
        .unwrap_or_default()
}

/// `name version arch` of each package, sorted (arch from the purl).
fn listed(pkgs: &[&Value]) -> Vec<String> {
    let mut v: Vec<String> = pkgs
        .iter()
        .map(|p| {
            let arch = purl(p)
                .split(['?', '&'])
                .find_map(|q| q.strip_prefix("arch="))
                .unwrap_or("");
            format!(
                "{} {} {arch}",
                p["name"].as_str().unwrap_or_default(),
                p["versionInfo"].as_str().unwrap_or_default()
            )
        })
        .collect();
    v.sort();
    v
}

fn validate_spdx(file: &Path) {
    let out = Command::new("pyspdxtools")
        .arg("-i")
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("pyspdxtools (PyPI spdx-tools): {e}"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !said.contains("ERROR") && !said.contains("invalid"),
        "spdx-tools rejects the SBOM:\n{said}"
    );
    let out = Command::new("ntia-checker")
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("ntia-checker (PyPI ntia-conformance-checker): {e}"));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("Conformant: True"), "{said}");
}

#[test]
fn packages_inside_the_images_match_dpkg_query_and_rpm_and_the_sbom_validates() {
    let d = distros();
    let p = &d.p;
    p.bale(&["lock"]).ok();
    p.bale(&["build", "--sign-key", "keys/k.sec", "-o", "e.bale"])
        .ok();
    let (doc, bytes) = sbom(p);
    // What the package managers read from the same files: never empty.
    assert_eq!(d.deb_expected.len(), 28, "{:?}", d.deb_expected);
    assert_eq!(
        d.distroless_expected.len(),
        3,
        "{:?}",
        d.distroless_expected
    );
    assert_eq!(
        d.rpm_expected.len(),
        ROCKY_PACKAGES.len(),
        "{:?}",
        d.rpm_expected
    );

    // Debian: the later layer's status, the stale status.d file deleted
    // by its whiteout; exactly what dpkg-query reads from that file.
    let deb = packages_of(&doc, "deb");
    assert_eq!(listed(&deb), d.deb_expected);
    assert!(!deb.iter().any(|p| p["name"] == "stale-package"));
    assert!(
        deb.iter().all(|p| p["supplier"] == "Organization: Debian"),
        "{deb:?}"
    );
    assert!(
        deb.iter().all(|p| purl(p).starts_with("pkg:deb/debian/") && purl(p).contains("distro=debian-12")),
        "{deb:?}"
    );
    assert_eq!(
        listed(&packages_of(&doc, "distroless")),
        d.distroless_expected
    );

    // Alpine: only the upper layer's database (the opaque directory hides
    // the lower one); licences and origins as apk records them.
    let alpine = packages_of(&doc, "alpine");
    let mut want: Vec<String> = ALPINE_PACKAGES[3..]
        .iter()
        .map(|(n, v, _, _)| format!("{n} {v} x86_64"))
        .collect();
    want.sort();
    assert_eq!(listed(&alpine), want);
    let ssl = alpine
        .iter()
        .find(|p| p["name"] == "libssl3")
        .unwrap_or_else(|| panic!("{alpine:?}"));
    assert_eq!(
        purl(ssl),
        "pkg:apk/alpine/libssl3@3.1.4-r5?arch=x86_64&distro=alpine-3.19.1&upstream=openssl"
    );
    assert_eq!(ssl["licenseDeclared"], "Apache-2.0");
    assert_eq!(ssl["supplier"], "Organization: Alpine Linux");
    let ca = alpine
        .iter()
        .find(|p| p["name"] == "ca-certificates-bundle")
        .unwrap_or_else(|| panic!());
    assert_eq!(ca["licenseDeclared"], "MPL-2.0 AND MIT");

    // Rocky: what `rpm -qa` reads from the same database.
    let rocky = packages_of(&doc, "rocky");
    let mut got: Vec<String> = rocky
        .iter()
        .map(|p| {
            let arch = purl(p)
                .split(['?', '&'])
                .find_map(|q| q.strip_prefix("arch="))
                .unwrap_or("");
            format!(
                "{} {} {arch}",
                p["name"].as_str().unwrap_or(""),
                p["versionInfo"].as_str().unwrap_or("")
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, d.rpm_expected);
    let ossl = rocky
        .iter()
        .find(|p| p["name"] == "openssl-libs")
        .unwrap_or_else(|| panic!("{rocky:?}"));
    assert_eq!(
        purl(ossl),
        "pkg:rpm/rocky/openssl-libs@3.0.7-24.el9?arch=x86_64&distro=rocky-9.3&epoch=1"
    );
    assert_eq!(
        ossl["supplier"],
        "Organization: Rocky Enterprise Software Foundation"
    );
    // A licence that is no SPDX expression is kept in the database's own
    // words as an extracted licence.
    let bash = rocky
        .iter()
        .find(|p| p["name"] == "bash")
        .unwrap_or_else(|| panic!());
    let r = bash["licenseDeclared"].as_str().unwrap_or_default();
    assert!(r.starts_with("LicenseRef-GPLv3"), "{r}");
    let extracted = doc["hasExtractedLicensingInfos"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        extracted
            .iter()
            .any(|x| x["licenseId"] == r && x["extractedText"] == "GPLv3+"),
        "{extracted:?}"
    );

    let file = p.path().join("sbom.spdx.json");
    std::fs::write(&file, &bytes).unwrap_or_else(|e| panic!("{e}"));
    validate_spdx(&file);

    // Deterministic, from the layer cache or without it.
    std::fs::remove_dir_all(p.store.join("catalogs")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(p.path().join("e.bale"), p.path().join("first.bale"))
        .unwrap_or_else(|e| panic!("{e}"));
    p.bale(&["build", "--sign-key", "keys/k.sec", "-o", "e.bale"])
        .ok();
    assert_eq!(
        sbom(p).1,
        bytes,
        "a rebuild without the cache changed the SBOM"
    );
    std::fs::rename(p.path().join("e.bale"), p.path().join("second.bale"))
        .unwrap_or_else(|e| panic!("{e}"));
    p.bale(&["build", "--sign-key", "keys/k.sec", "-o", "e.bale"])
        .ok();
    assert_eq!(
        sbom(p).1,
        bytes,
        "a rebuild from the cache changed the SBOM"
    );
    drop(d.reg);
}

/// Runs tests/fixtures/validate_schema.py (Python's jsonschema).
pub fn schema_valid(schema: &str, doc: &Path, referenced: &[&str]) -> (bool, String) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let out = Command::new("python3")
        .arg(fixtures.join("validate_schema.py"))
        .arg(fixtures.join("schemas").join(schema))
        .arg(doc)
        .args(referenced.iter().map(|r| fixtures.join("schemas").join(r)))
        .output()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn cyclonedx_is_made_from_the_same_data_and_validates_against_its_schema() {
    let d = distros();
    let p = &d.p;
    p.bale(&["lock"]).ok();
    p.bale(&["build", "--sign-key", "keys/k.sec", "-o", "e.bale"])
        .ok();
    let (spdx, _) = sbom(p);
    let run = p.bale(&[
        "sbom",
        "e.bale",
        "--public-key",
        "keys/k.pub",
        "--format",
        "cyclonedx",
    ]);
    run.ok();
    let file = p.path().join("bom.json");
    std::fs::write(&file, &run.out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let (valid, said) = schema_valid(
        "bom-1.5.schema.json",
        &file,
        &["spdx.schema.json", "jsf-0.82.schema.json"],
    );
    assert!(valid, "the CycloneDX schema rejects the document:\n{said}");
    let bom: Value = serde_json::from_slice(&run.out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bom["specVersion"], "1.5");
    assert_eq!(bom["metadata"]["component"]["name"], "distros");
    // Every image, with the same packages (by purl) as the SPDX document.
    for service in ["deb", "distroless", "alpine", "rocky"] {
        let mut want: Vec<String> = packages_of(&spdx, service)
            .iter()
            .map(|p| purl(p).to_owned())
            .collect();
        want.sort();
        let image = bom["components"]
            .as_array()
            .and_then(|cs| {
                cs.iter().find(|c| {
                    c["type"] == "container"
                        && c["bom-ref"]
                            .as_str()
                            .is_some_and(|r| r.ends_with(&format!("-{service}")))
                })
            })
            .unwrap_or_else(|| panic!("no container component for {service}"));
        let mut got: Vec<String> = image["components"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(|c| c["purl"].as_str().map(str::to_owned))
            .collect();
        got.sort();
        assert_eq!(got, want, "{service}");
        assert!(!got.is_empty());
    }
    // Deterministic, and the same for the same bundle.
    let again = p.bale(&[
        "sbom",
        "e.bale",
        "--public-key",
        "keys/k.pub",
        "--format",
        "cyclonedx",
    ]);
    assert_eq!(again.out.stdout, run.out.stdout);
}
