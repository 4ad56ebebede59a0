//! The OS packages inside the images, cataloged at build into the signed
//! SBOM: images whose layers hold real package databases (dpkg, apk, rpm),
//! with whiteouts and opaque directories applied across layers, checked
//! against what `dpkg-query` and `rpm -qa` report for the same files, and
//! the document validated by spdx-tools and the NTIA checker.

mod common;

use std::path::Path;
use std::process::Command;

use common::distros::*;
use serde_json::Value;

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
    assert_eq!(listed(&rocky), d.rpm_expected);
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
