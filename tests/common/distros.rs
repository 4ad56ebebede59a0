//! Images whose layers hold real package databases: a Debian one whose
//! dpkg status is paragraphs of this Debian machine's own (real names and
//! versions from Debian's archive), a distroless one with `status.d/`,
//! an Alpine one whose installed database lists Alpine 3.19's packages,
//! and a Rocky one whose `rpmdb.sqlite` Debian's rpm tool wrote.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

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
        let e = epoch.is_empty();
        let _ = e;
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
