//! Regression tests, each named after the attack it stops: bundles signed
//! with the real key but crafted by whoever holds it, planted symlinks in
//! the install directory, racing installs, oversized tar headers, and a
//! bundle that changes after it was verified.

mod common;

use bale::error::exit;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;

use common::bundles::{flip_in_entry, shrink_in_entry};
use common::forge::{entries_of, resign_with};

/// [`resign_with`] the project's own key: what a stolen key or a
/// malicious insider can produce.
fn resign(
    p: &Project,
    out: &str,
    name: &str,
    version: &str,
    entries: &[(String, Vec<u8>)],
) -> PathBuf {
    resign_with(p, "keys/k.sec", out, name, version, entries)
}

/// Every path below `dir` whose name contains `needle`.
fn find_named(dir: &Path, needle: &str) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(needle))
        .map(|e| e.path().to_owned())
        .collect()
}

#[test]
fn path_escape_through_the_manifest_version_is_refused_by_verify_and_install() {
    let p = Project::demo();
    let good = p.build_demo("demo.bale");
    let entries = entries_of(&good);
    // Images.json names the same version, so only the version is at fault.
    let entries: Vec<(String, Vec<u8>)> = entries
        .into_iter()
        .map(|(n, d)| {
            if n == "bale/images.json" {
                let mut v: serde_json::Value =
                    serde_json::from_slice(&d).unwrap_or_else(|e| panic!("{e}"));
                v["version"] = "../../escaped".into();
                (n, serde_json::to_vec_pretty(&v).unwrap_or_default())
            } else {
                (n, d)
            }
        })
        .collect();
    resign(&p, "evil.bale", "bale-demo", "../../escaped", &entries);

    let v = p.bale(&["verify", "evil.bale", "--public-key", "keys/k.pub"]);
    v.fails(exit::INTEGRITY);
    v.says("is not semver");

    p.install_none("evil.bale", "target").fails(exit::INTEGRITY);
    assert!(
        find_named(p.path(), "escaped").is_empty(),
        "a release directory was created from the version: {:?}",
        find_named(p.path(), "escaped")
    );
    assert!(
        !p.path().join("target").exists(),
        "a refused first install left the target"
    );
}

#[test]
fn image_names_and_services_that_reach_commands_are_refused() {
    let p = Project::demo();
    let good = p.build_demo("demo.bale");
    let entries: Vec<(String, Vec<u8>)> = entries_of(&good)
        .into_iter()
        .map(|(n, d)| {
            if n == "bale/images.json" {
                let mut v: serde_json::Value =
                    serde_json::from_slice(&d).unwrap_or_else(|e| panic!("{e}"));
                v["images"][0]["name"] = "localhost/x:1 --privileged".into();
                v["images"][0]["service"] = "../../x".into();
                (n, serde_json::to_vec_pretty(&v).unwrap_or_default())
            } else {
                (n, d)
            }
        })
        .collect();
    resign(&p, "evil.bale", "bale-demo", "1.0.0", &entries);
    let v = p.bale(&[
        "verify",
        "evil.bale",
        "--public-key",
        "keys/k.pub",
        "--json",
    ]);
    v.fails(exit::INTEGRITY);
    let out = v.stdout();
    assert!(out.contains("is not a canonical"), "{}", v.describe());
    assert!(out.contains("service name"), "{}", v.describe());
    p.install_none("evil.bale", "target").fails(exit::INTEGRITY);
}

#[test]
fn planted_lock_symlink_creates_no_file_outside_the_target() {
    let p = Project::demo();
    p.build_demo("demo.bale");
    p.install_none("demo.bale", "target").ok();
    let lock = p.path().join("target/.bale/lock");
    let outside = p.path().join("outside-created");
    std::fs::remove_file(&lock).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(&outside, &lock).unwrap_or_else(|e| panic!("{e}"));
    let run = p.install_none("demo.bale", "target");
    assert_ne!(run.code(), 0, "{}", run.describe());
    run.says(".bale/lock");
    assert!(
        !outside.exists(),
        "install created a file through the planted symlink"
    );

    // The same before any install, and with a file bale never makes.
    std::fs::create_dir_all(p.path().join("fresh/.bale")).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(&outside, p.path().join("fresh/.bale/lock"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(p.install_none("demo.bale", "fresh").code(), 0);
    assert!(!outside.exists());
    std::fs::create_dir_all(p.path().join("other/.bale")).unwrap_or_else(|e| panic!("{e}"));
    p.write("other/.bale/notes", "mine\n");
    let run = p.install_none("demo.bale", "other");
    assert_ne!(run.code(), 0, "{}", run.describe());
    run.says("not made by bale");
    assert_eq!(p.read("other/.bale/notes"), "mine\n");
}

#[test]
fn two_first_installs_racing_into_one_missing_directory_both_succeed() {
    let p = Project::demo();
    p.build_demo("demo.bale");
    let bin = env!("CARGO_BIN_EXE_bale");
    for round in 0..12 {
        let target = format!("race-{round}");
        let spawn = || {
            std::process::Command::new(bin)
                .args([
                    "install",
                    "demo.bale",
                    "--public-key",
                    "keys/k.pub",
                    "--target",
                    &target,
                    "--runtime",
                    "none",
                ])
                .current_dir(p.path())
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(spawn);
            let b = s.spawn(spawn);
            (a.join(), b.join())
        });
        let (a, b) = (
            a.unwrap_or_else(|_| panic!("thread")),
            b.unwrap_or_else(|_| panic!("thread")),
        );
        for o in [&a, &b] {
            assert!(
                o.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&a.stderr),
            String::from_utf8_lossy(&b.stderr)
        );
        assert!(said.contains("already installed"), "round {round}: {said}");
    }
}

/// A tar whose first header is an extension of type `kind` claiming `size`
/// bytes; the content is a hole, so the file costs no disk.
fn tar_with_extension(path: &Path, kind: u8, size: u64) {
    let mut h = tar::Header::new_gnu();
    h.set_path("././@LongLink")
        .unwrap_or_else(|e| panic!("{e}"));
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    let mut f = std::fs::File::create(path).unwrap_or_else(|e| panic!("{e}"));
    f.write_all(h.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    f.set_len(512 + size.div_ceil(512) * 512 + 1024)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn oversized_pax_headers_and_long_names_are_refused_without_reading_them() {
    let p = Project::demo();
    p.write("keys/none", "");
    for (kind, size, what) in [
        (b'x', 256 << 20, "PAX"),
        (b'x', 1 << 30, "PAX"),
        (b'L', 64 << 20, "GNU long name"),
    ] {
        let path = p.path().join("big.bale");
        tar_with_extension(&path, kind, size);
        let run = p.bale(&["verify", "big.bale", "--public-key", "keys/k.pub"]);
        run.fails(exit::INTEGRITY);
        let err = run.stderr();
        assert!(
            err.contains(&format!("a {what} header extension of {size} bytes")),
            "{}",
            run.describe()
        );
        assert!(err.len() < 2000, "error output of {} bytes", err.len());
        p.install_none("big.bale", "target").fails(exit::INTEGRITY);
        assert!(!p.path().join("target").exists());
    }
}

#[test]
fn long_overlay_paths_within_the_bound_still_verify() {
    let p = Project::demo();
    let deep = format!("{}/{}", "d".repeat(90), "f".repeat(90));
    let toml = std::fs::read_to_string(p.path().join("demo/bundle.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    p.write(
        "demo/bundle.toml",
        &format!("{toml}\n[[overlays]]\nsource = \"long\"\ntarget = \"long\"\n"),
    );
    p.write(&format!("demo/long/{deep}"), "deep\n");
    p.build_demo("demo.bale");
    p.bale(&["verify", "demo.bale", "--public-key", "keys/k.pub"])
        .ok();
    p.install_none("demo.bale", "target").ok();
    assert_eq!(p.read(&format!("target/current/long/{deep}")), "deep\n");
}

#[test]
fn names_in_errors_are_cut_to_a_bounded_length() {
    let p = Project::demo();
    let good = p.build_demo("demo.bale");
    let mut entries = entries_of(&good);
    // A long name within the tar bound, not in the signed manifest.
    let long = format!("files/{}", "n".repeat(60_000));
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    let path = p.path().join("long.bale");
    resign(&p, "long.bale", "bale-demo", "1.0.0", &entries);
    // Append the unlisted entry before the end-of-archive marker.
    let mut data = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
    data.truncate(data.len() - 1024);
    let mut extra = tar::Builder::new(Vec::new());
    h.set_mode(0o644);
    extra
        .append_data(&mut h, &long, &b"x"[..])
        .unwrap_or_else(|e| panic!("{e}"));
    data.extend(extra.into_inner().unwrap_or_else(|e| panic!("{e}")));
    std::fs::write(&path, data).unwrap_or_else(|e| panic!("{e}"));
    entries.clear();
    let run = p.bale(&["verify", "long.bale", "--public-key", "keys/k.pub"]);
    run.fails(exit::INTEGRITY);
    assert!(
        run.stderr()
            .contains("(60006 bytes in all): refused: path longer than 4096 bytes"),
        "{}",
        run.describe()
    );
    assert!(
        run.stderr().lines().all(|l| l.len() < 400),
        "{}",
        run.describe()
    );
    assert!(
        run.stderr().len() < 2000,
        "an error line quoted {} bytes",
        run.stderr().len()
    );
}

#[test]
fn a_file_that_is_not_a_bundle_is_named_not_dumped() {
    let p = Project::demo();
    let junk: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(p.path().join("junk.bale"), &junk).unwrap_or_else(|e| panic!("{e}"));
    let run = p.bale(&["verify", "junk.bale", "--public-key", "keys/k.pub"]);
    // Nothing could be checked: an input that is no bundle, not a bundle
    // that failed its checks.
    run.fails(exit::INVALID_INPUT);
    run.says("not a bale bundle");
    assert!(
        run.stderr().chars().all(|c| !c.is_control() || c == '\n'),
        "raw bytes printed: {}",
        run.describe()
    );
}

/// A runtime whose loader is `tar -t`: a real reader of the archive bale
/// streams, for the one thing tested here, a stream cut by bale itself.
struct TarReader;

impl bale::runtime::Runtime for TarReader {
    fn name(&self) -> &str {
        "tar"
    }
    fn archive_format(&self) -> bale::runtime::ArchiveFormat {
        bale::runtime::ArchiveFormat::Docker
    }
    fn image(
        &self,
        _: &str,
    ) -> Result<Option<bale::runtime::RuntimeImage>, bale::runtime::RuntimeError> {
        Ok(None)
    }
    fn load(
        &self,
        write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), bale::runtime::RuntimeError> {
        let mut child = std::process::Command::new("tar")
            .args(["-tf", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("stdin"));
        let r = write(&mut stdin);
        drop(stdin);
        let _ = child.wait();
        r.map_err(|e| bale::runtime::RuntimeError::Failed {
            command: "tar -tf -".into(),
            stderr: format!("stream interrupted: {e}"),
        })
    }
    fn containers(
        &self,
        _: &str,
    ) -> Result<Vec<bale::runtime::Container>, bale::runtime::RuntimeError> {
        Ok(Vec::new())
    }
    fn compose(
        &self,
        _: &bale::runtime::ComposeProject,
        _: &[String],
    ) -> Result<String, bale::runtime::RuntimeError> {
        Ok(String::new())
    }
}

#[test]
fn a_bundle_changed_after_verification_exits_with_the_integrity_code() {
    let p = Project::demo();
    let key = bale::sign::VerifyingKey::from_file(&p.path().join("keys/k.pub"))
        .unwrap_or_else(|e| panic!("{e}"));
    // A flipped byte, and the file cut short in the middle of the entry.
    for (prefix, runtime, shrink) in [
        ("blobs/", &TarReader as &dyn bale::runtime::Runtime, false),
        ("files/", &bale::runtime::NoRuntime, false),
        ("blobs/", &TarReader, true),
    ] {
        let path = p.build_demo("demo.bale");
        let bundle = bale::install::OpenBundle::open(&path, &key).unwrap_or_else(|e| panic!("{e}"));
        if shrink {
            shrink_in_entry(&path, prefix);
        } else {
            flip_in_entry(&path, prefix);
        }
        let target = p.path().join(format!(
            "target-{}{}",
            prefix.trim_end_matches('/'),
            if shrink { "-cut" } else { "" }
        ));
        let err = bale::install::install_opened(
            &bundle,
            &bale::install::InstallOptions {
                key: &key,
                target: target.clone(),
                runtime,
                runtime_address: None,
                runtime_namespace: None,
                values: Default::default(),
                prompt: None,
                skip_preflight: Vec::new(),
                up: false,
                allow_downgrade: false,
                timeout: std::time::Duration::from_secs(1),
                base: None,
                snapshot: true,
                rollback: true,
            },
        )
        .err()
        .unwrap_or_else(|| panic!("{prefix}: a changed entry was installed"));
        let err = bale::Error::from(err);
        assert_eq!(err.exit_code(), 6, "{prefix}: {err}");
        assert!(
            err.to_string().contains("changed after it was verified"),
            "{err}"
        );
        assert!(
            !target.exists(),
            "{prefix}: the failed first install left the target"
        );
    }
}
