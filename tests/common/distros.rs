//! Images whose layers hold real package databases: a Debian one whose
//! dpkg status is paragraphs of this Debian machine's own (real names and
//! versions from Debian's archive), a distroless one with `status.d/`,
//! an Alpine one whose installed database lists Alpine 3.19's packages,
//! and a Rocky one whose `rpmdb.sqlite` Debian's rpm tool wrote.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::*;

/// The first `n` installed paragraphs of this machine's dpkg status.
pub fn real_dpkg_status(n: usize) -> String {
    let text = std::fs::read_to_string("/var/lib/dpkg/status")
        .unwrap_or_else(|e| panic!("/var/lib/dpkg/status (a Debian machine): {e}"));
    let paras: Vec<&str> = text
        .split("\n\n")
        .filter(|p| p.contains("Status: install ok installed"))
        .take(n)
        .collect();
    assert_eq!(paras.len(), n, "too few installed packages here");
    format!("{}\n", paras.join("\n\n"))
}

pub const DEBIAN_OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";
pub const ALPINE_OS_RELEASE: &str =
    "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME=\"Alpine Linux v3.19\"\n";
pub const ROCKY_OS_RELEASE: &str = "NAME=\"Rocky Linux\"\nVERSION=\"9.3 (Blue Onyx)\"\nID=\"rocky\"\nVERSION_ID=\"9.3\"\nPRETTY_NAME=\"Rocky Linux 9.3 (Blue Onyx)\"\n";

/// Alpine 3.19's base packages as its `apk` records them (names,
/// versions, origins and licences from Alpine's archive).
pub const ALPINE_PACKAGES: &[(&str, &str, &str, &str)] = &[
    (
        "alpine-baselayout",
        "3.4.3-r2",
        "alpine-baselayout",
        "GPL-2.0-only",
    ),
    ("alpine-keys", "2.4-r1", "alpine-keys", "MIT"),
    ("apk-tools", "2.14.0-r5", "apk-tools", "GPL-2.0-only"),
    ("busybox", "1.36.1-r15", "busybox", "GPL-2.0-only"),
    (
        "ca-certificates-bundle",
        "20230506-r0",
        "ca-certificates",
        "MPL-2.0 AND MIT",
    ),
    ("libcrypto3", "3.1.4-r5", "openssl", "Apache-2.0"),
    ("libssl3", "3.1.4-r5", "openssl", "Apache-2.0"),
    ("musl", "1.2.4_git20230717-r4", "musl", "MIT"),
    ("scanelf", "1.3.7-r2", "pax-utils", "GPL-2.0-only"),
    ("zlib", "1.3-r2", "zlib", "Zlib"),
];

/// An apk installed database of `packages`.
pub fn apk_installed(packages: &[(&str, &str, &str, &str)]) -> String {
    packages
        .iter()
        .map(|(n, v, o, l)| {
            format!("C:Q1{}=\nP:{n}\nV:{v}\nA:x86_64\nS:100\nI:200\nT:{n}\nU:https://alpinelinux.org\nL:{l}\no:{o}\nm:Natanael Copa <ncopa@alpinelinux.org>\n", &sha(n.as_bytes())[7..30])
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Rocky 9's packages for the RPM database: name, epoch, version,
/// release, licence as Rocky's rpm headers state it.
pub const ROCKY_PACKAGES: &[(&str, Option<u32>, &str, &str, &str)] = &[
    ("bash", None, "5.1.8", "6.el9_1", "GPLv3+"),
    ("openssl-libs", Some(1), "3.0.7", "24.el9", "ASL 2.0"),
    ("zlib", None, "1.2.11", "40.el9", "zlib and Boost"),
    (
        "ca-certificates",
        None,
        "2023.2.60_v7.0.306",
        "90.1.el9_2",
        "MIT AND GPL-2.0-or-later",
    ),
];

/// An `rpmdb.sqlite` holding `packages`, written by Debian's rpm tool
/// (rpmbuild, then `rpm -i --justdb`) under `dir`; returns its path.
pub fn rpm_database(dir: &Path, packages: &[(&str, Option<u32>, &str, &str, &str)]) -> PathBuf {
    let top = dir.join("rpmbuild");
    let db = dir.join("rpmdb");
    std::fs::create_dir_all(&db).unwrap_or_else(|e| panic!("{e}"));
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let mut rpms = Vec::new();
    for (name, epoch, version, release, license) in packages {
        let spec = dir.join(format!("{name}.spec"));
        let epoch = epoch.map(|e| format!("Epoch: {e}\n")).unwrap_or_default();
        std::fs::write(
            &spec,
            format!("Name: {name}\nVersion: {version}\nRelease: {release}\n{epoch}Summary: {name}\nLicense: {license}\nVendor: Rocky Enterprise Software Foundation\nBuildArch: x86_64\n%description\n{name}\n%files\n"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        run(Command::new("rpmbuild")
            .arg("--define")
            .arg(format!("_topdir {}", top.display()))
            .args(["--define", "_build_id_links none", "--quiet", "-bb"])
            .arg(&spec));
        rpms.push(
            top.join("RPMS/x86_64")
                .join(format!("{name}-{version}-{release}.x86_64.rpm")),
        );
    }
    run(Command::new("rpm").arg("--dbpath").arg(&db).arg("--initdb"));
    run(Command::new("rpm")
        .arg("--dbpath")
        .arg(&db)
        .args([
            "-i",
            "--justdb",
            "--nodeps",
            "--ignorearch",
            "--ignoreos",
            "--quiet",
        ])
        .args(&rpms));
    db.join("rpmdb.sqlite")
}

/// What `rpm --dbpath DIR -qa` says: `name epoch:version-release arch`,
/// sorted (epoch `(none)` left out).
pub fn rpm_qa(db_dir: &Path) -> Vec<String> {
    let out = Command::new("rpm")
        .arg("--dbpath")
        .arg(db_dir)
        .args([
            "-qa",
            "--qf",
            "%{NAME} %|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE} %{ARCH}\\n",
        ])
        .output()
        .unwrap_or_else(|e| panic!("rpm: {e}"));
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// What `dpkg-query --admindir DIR -W` says of a status file: `name
/// version arch`, sorted.
pub fn dpkg_query(status: &str, dir: &Path) -> Vec<String> {
    let admin = dir.join("dpkg-admin");
    std::fs::create_dir_all(admin.join("info")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(admin.join("updates")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(admin.join("status"), status).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new("dpkg-query")
        .arg(format!("--admindir={}", admin.display()))
        .args([
            "-W",
            "-f",
            "${db:Status-Status} ${Package} ${Version} ${Architecture}\\n",
        ])
        .output()
        .unwrap_or_else(|e| panic!("dpkg-query: {e}"));
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("installed "))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// A tar entry that is a symlink.
pub fn tar_with_links(files: &[(&str, &[u8])], links: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, path, *data)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    for (path, target) in links {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        h.set_mtime(0);
        b.append_link(&mut h, path, target)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    b.into_inner().unwrap_or_else(|e| panic!("{e}"))
}

/// A gzip layer from a tar.
pub fn gzip_tar_layer(t: Vec<u8>) -> LayerSpec {
    LayerSpec {
        diff_id: sha(&t),
        blob: gzip(&t),
        media_type: OCI_LAYER_GZIP.into(),
    }
}

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
    distros_with("")
}

/// [`distros`] with `extra` lines in `[bundle]`.
pub fn distros_with(extra: &str) -> Distros {
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
        "[bundle]\nname = \"distros\"\nversion = \"1.0.0\"\nsupplier = \"Example Site Operations\"\nplatforms = [\"linux/amd64\"]\n{extra}\n[images]\ndeb = \"{0}/os/debian:12\"\ndistroless = \"{0}/os/distroless:12\"\nalpine = \"{0}/os/alpine:3.19\"\nrocky = \"{0}/os/rocky:9.3\"\n",
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
