//! `bale build`, `keygen`, `verify` and `inspect`, checked with real tools:
//! minisign, skopeo, sha256sum, dockerd and containerd.

mod common;

use bale::error::exit;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::daemons::{Containerd, Dockerd};
use common::*;

fn demo() -> Project {
    Project::demo()
}

fn build(p: &Project, out: &str) -> PathBuf {
    p.build_demo(out)
}

fn verify(p: &Project, bundle: &Path, key: &str) -> Run {
    p.bale(&["verify", &bundle.display().to_string(), "--public-key", key])
}

/// (offset, size) of an entry's content.
fn entry(bundle: &Path, name: &str) -> (u64, u64) {
    let f = bale::bundle::source::Source::file(bundle).unwrap_or_else(|e| panic!("{e}"));
    let (entries, _) = bale::verify::scan(&f, f.len());
    entries
        .iter()
        .find(|e| e.path.as_deref() == Ok(name))
        .map(|e| (e.offset, e.size))
        .unwrap_or_else(|| panic!("no entry {name}"))
}

fn flip_byte(path: &Path, at: u64) {
    let mut b = std::fs::read(path).unwrap_or_else(|e| panic!("{e}"));
    b[at as usize] ^= 0x20;
    std::fs::write(path, b).unwrap_or_else(|e| panic!("{e}"));
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn extract(bundle: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    run(Command::new("tar")
        .arg("-xf")
        .arg(bundle)
        .arg("-C")
        .arg(dir.path()));
    dir
}

const WEB: &str = "localhost/bale-demo/web:1.0";
const WORKER: &str = "localhost/bale-demo/worker:1.0";

fn locked_config(p: &Project, service: &str) -> String {
    let lock: toml::Value =
        toml::from_str(&p.read("demo/bundle.lock")).unwrap_or_else(|e| panic!("{e}"));
    lock["image"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["service"].as_str() == Some(service)))
        .and_then(|i| i["platform"][0]["config"].as_str())
        .unwrap_or_else(|| panic!("no config for {service}"))
        .to_owned()
}

#[test]
fn minisign_accepts_the_signature_and_the_documented_recipe_verifies() {
    let p = demo();
    let bundle = build(&p, "demo.bale");
    let x = extract(&bundle);
    let out = Command::new("minisign")
        .args(["-V", "-m"])
        .arg(x.path().join("bale-manifest"))
        .arg("-p")
        .arg(p.path().join("keys/k.pub"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest_sha = sha(&std::fs::read(x.path().join("bale-manifest")).unwrap_or_default());
    assert!(
        text.contains(&format!(
            "bale-bundle name=bale-demo version=1.0.0 manifest={manifest_sha}"
        )),
        "{text}"
    );

    // The recipe in docs/bundle-format.md, run as written.
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/bundle-format.md"),
    )
    .unwrap_or_default();
    let start = doc
        .find("<!-- recipe:start -->")
        .unwrap_or_else(|| panic!("no recipe"));
    let end = doc
        .find("<!-- recipe:end -->")
        .unwrap_or_else(|| panic!("no recipe end"));
    let script: String = doc[start..end]
        .lines()
        .filter(|l| !l.starts_with("```") && !l.starts_with("<!--"))
        .collect::<Vec<_>>()
        .join("\n");
    let recipe = |bundle: &Path| {
        Command::new("bash")
            .arg("-c")
            .arg(&script)
            .env("BUNDLE", bundle)
            .env("KEY", p.path().join("keys/k.pub"))
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let out = recipe(&bundle);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("bundle verified"));
    // ... and it catches a flipped byte and an appended entry.
    let (off, _) = entry(&bundle, "files/site/index.html");
    let bad = p.path().join("bad.bale");
    std::fs::copy(&bundle, &bad).unwrap_or_else(|e| panic!("{e}"));
    flip_byte(&bad, off);
    assert!(!recipe(&bad).status.success());
    std::fs::copy(&bundle, &bad).unwrap_or_else(|e| panic!("{e}"));
    p.write("extra.txt", "not listed");
    run(Command::new("tar")
        .current_dir(p.path())
        .args(["-rf", "bad.bale", "extra.txt"]));
    assert!(!recipe(&bad).status.success());
}

#[test]
fn skopeo_reads_every_image_of_an_extracted_bundle() {
    let p = demo();
    let bundle = build(&p, "demo.bale");
    let x = extract(&bundle);
    let lock: toml::Value =
        toml::from_str(&p.read("demo/bundle.lock")).unwrap_or_else(|e| panic!("{e}"));
    for img in lock["image"].as_array().cloned().unwrap_or_default() {
        let name = img["name"].as_str().unwrap_or_default();
        let out = run(Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:{name}", x.path().display())));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            v["Digest"].as_str(),
            img["platform"][0]["manifest"].as_str(),
            "{name}"
        );
        let raw = run(Command::new("skopeo")
            .args(["inspect", "--config", "--raw"])
            .arg(format!("oci:{}:{name}", x.path().display())));
        assert_eq!(
            Some(sha(raw.as_bytes()).as_str()),
            img["platform"][0]["config"].as_str()
        );
    }
}

#[test]
fn docker_load_gives_the_locked_image_ids_and_a_container_runs() {
    let p = demo();
    let bundle = build(&p, "demo.bale");
    let d = Dockerd::start();
    let out = d.docker(&["load", "-i", &bundle.display().to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (service, name) in [("web", WEB), ("worker", WORKER)] {
        let out = d.docker(&["image", "inspect", "--format", "{{.Id}}", name]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            locked_config(&p, service),
            "{name}"
        );
    }
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        WORKER,
        "/bin/busybox",
        "echo",
        "ran-from-bundle",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ran-from-bundle"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ctr_import_into_containerd_names_every_image() {
    let p = demo();
    let bundle = build(&p, "demo.bale");
    let c = Containerd::start();
    let out = c.ctr("bale", &["images", "import", &bundle.display().to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = c.ctr("bale", &["images", "ls"]);
    let list = String::from_utf8_lossy(&out.stdout);
    let lock: toml::Value =
        toml::from_str(&p.read("demo/bundle.lock")).unwrap_or_else(|e| panic!("{e}"));
    for img in lock["image"].as_array().cloned().unwrap_or_default() {
        let line = list
            .lines()
            .find(|l| l.starts_with(img["name"].as_str().unwrap_or("?")))
            .unwrap_or_else(|| panic!("{list}"));
        assert!(
            line.contains(img["platform"][0]["manifest"].as_str().unwrap_or("?")),
            "{line}"
        );
    }
}

#[test]
fn builds_from_different_checkouts_stores_time_zones_and_umasks_are_identical() {
    let a = demo();
    let b = Project::new("");
    copy_dir(
        &a.path().join("demo"),
        &b.path().join("elsewhere/checkout/demo"),
    );
    copy_dir(&a.path().join("keys"), &b.path().join("keys"));
    // Different file modes and times in the second checkout.
    let page = b.path().join("elsewhere/checkout/demo/site/index.html");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&page, std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("{e}"));
    let one = build(&a, "one.bale");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 077; exec '{}' build -f elsewhere/checkout/demo/bundle.toml --offline --sign-key keys/k.sec -o two.bale",
            env!("CARGO_BIN_EXE_bale")
        ))
        .current_dir(b.path())
        .env("TZ", "Pacific/Kiritimati")
        .env("BALE_STORE", b.path().join("another-store"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let two = b.path().join("two.bale");
    let (x, y) = (
        std::fs::read(&one).unwrap_or_default(),
        std::fs::read(&two).unwrap_or_default(),
    );
    assert!(!x.is_empty());
    assert!(x == y, "builds differ: {} vs {}", sha(&x), sha(&y));
    // Unsigned builds are reproducible too, and differ from signed ones only by the signature.
    a.bale(&[
        "build",
        "-f",
        "demo/bundle.toml",
        "--offline",
        "--unsigned",
        "-o",
        "u1.bale",
    ])
    .ok();
    a.bale(&[
        "build",
        "-f",
        "demo/bundle.toml",
        "--offline",
        "--unsigned",
        "-o",
        "u2.bale",
    ])
    .ok();
    assert_eq!(
        std::fs::read(a.path().join("u1.bale")).ok(),
        std::fs::read(a.path().join("u2.bale")).ok()
    );
}

fn assert_fails_naming(run: &Run, entry: &str) {
    run.fails(exit::INTEGRITY);
    assert!(
        run.stderr()
            .lines()
            .any(|l| l.starts_with("FAIL ") && l.contains(entry)),
        "want a failure naming {entry}\n{}",
        run.describe()
    );
}

#[test]
fn tampering_is_caught_and_named() {
    let p = demo();
    let bundle = build(&p, "demo.bale");
    verify(&p, &bundle, "keys/k.pub").ok();
    let copy = |name: &str| {
        let to = p.path().join(name);
        std::fs::copy(&bundle, &to).unwrap_or_else(|e| panic!("{e}"));
        to
    };
    let layer = "blobs/sha256/bde88eaecc461349af79ab95431044e1bfb435cf4da155a030c71055d605615a";

    let t = copy("layer.bale");
    let (off, size) = entry(&t, layer);
    flip_byte(&t, off + size / 2);
    assert_fails_naming(&verify(&p, &t, "keys/k.pub"), layer);

    let t = copy("overlay.bale");
    flip_byte(&t, entry(&t, "files/site/index.html").0 + 3);
    assert_fails_naming(&verify(&p, &t, "keys/k.pub"), "files/site/index.html");

    let t = copy("manifest.bale");
    let (off, size) = entry(&t, "bale-manifest");
    // A digit of the last checksum line, so the manifest still parses.
    flip_byte(&t, off + size - 3);
    assert_fails_naming(&verify(&p, &t, "keys/k.pub"), "bale-manifest");

    let t = copy("truncated.bale");
    let len = std::fs::metadata(&t).map(|m| m.len()).unwrap_or(0);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&t)
        .and_then(|f| f.set_len(len / 2))
        .unwrap_or_else(|e| panic!("{e}"));
    let r = verify(&p, &t, "keys/k.pub");
    r.fails(exit::INTEGRITY);
    assert!(r.stderr().contains("truncated"), "{}", r.describe());

    let t = copy("appended.bale");
    p.write("extra.txt", "smuggled");
    run(Command::new("tar")
        .current_dir(p.path())
        .args(["-rf", "appended.bale", "extra.txt"]));
    assert_fails_naming(&verify(&p, &t, "keys/k.pub"), "extra.txt");

    let t = copy("dotdot.bale");
    run(Command::new("python3").arg("-c").arg(
        "import tarfile,io,sys\nt=tarfile.open(sys.argv[1],'a')\ni=tarfile.TarInfo('../../etc/cron.d/evil')\nd=b'* * * * * root true\\n'\ni.size=len(d)\nt.addfile(i,io.BytesIO(d))\nt.close()",
    ).arg(&t));
    assert_fails_naming(&verify(&p, &t, "keys/k.pub"), "../../etc/cron.d/evil");

    let t = copy("symlink.bale");
    run(Command::new("python3").arg("-c").arg(
        "import tarfile,sys\nt=tarfile.open(sys.argv[1],'a')\ni=tarfile.TarInfo('files/link')\ni.type=tarfile.SYMTYPE\ni.linkname='/etc/shadow'\nt.addfile(i)\nt.close()",
    ).arg(&t));
    assert_fails_naming(&verify(&p, &t, "keys/k.pub"), "files/link");

    p.bale(&[
        "keygen",
        "--public-key",
        "keys/other.pub",
        "--secret-key",
        "keys/other.sec",
        "--no-password",
    ])
    .ok();
    let r = verify(&p, &bundle, "keys/other.pub");
    assert_fails_naming(&r, "bale-manifest");
    assert!(
        r.stderr().contains("not by the given public key"),
        "{}",
        r.describe()
    );
}

#[test]
fn a_manifest_and_signature_from_another_bundle_are_refused() {
    let p = demo();
    let v1 = build(&p, "v1.bale");
    let toml = p
        .read("demo/bundle.toml")
        .replace("version = \"1.0.0\"", "version = \"1.0.1\"");
    p.write("demo/bundle.toml", &toml);
    p.write("demo/site/index.html", "<p>version two</p>\n");
    let v2 = build(&p, "v2.bale");
    // v2's manifest and signature in front of v1's content.
    let spliced = p.path().join("spliced.bale");
    run(Command::new("python3").arg("-c").arg(
        "import tarfile,sys\na=tarfile.open(sys.argv[1]);b=tarfile.open(sys.argv[2]);o=tarfile.open(sys.argv[3],'w',format=tarfile.GNU_FORMAT)\nfor m in b.getmembers()[:2]: o.addfile(m,b.extractfile(m))\nfor m in a.getmembers()[2:]: o.addfile(m,a.extractfile(m))\no.close()",
    ).arg(&v1).arg(&v2).arg(&spliced));
    let r = verify(&p, &spliced, "keys/k.pub");
    assert_fails_naming(&r, "files/site/index.html");
    assert_fails_naming(&r, "bale/bundle.toml");
    // v1's manifest with v2's signature: the signature is over another manifest.
    let mixed = p.path().join("mixed.bale");
    run(Command::new("python3").arg("-c").arg(
        "import tarfile,sys\na=tarfile.open(sys.argv[1]);b=tarfile.open(sys.argv[2]);o=tarfile.open(sys.argv[3],'w',format=tarfile.GNU_FORMAT)\nms=a.getmembers();o.addfile(ms[0],a.extractfile(ms[0]));s=b.getmembers()[1];o.addfile(s,b.extractfile(s))\nfor m in ms[2:]: o.addfile(m,a.extractfile(m))\no.close()",
    ).arg(&v1).arg(&v2).arg(&mixed));
    assert_fails_naming(&verify(&p, &mixed, "keys/k.pub"), "bale-manifest");
}

#[test]
fn verify_json_is_an_auditors_report() {
    let p = demo();
    let bundle = build(&p, "demo.bale");
    let r = p.bale(&[
        "verify",
        &bundle.display().to_string(),
        "--public-key",
        "keys/k.pub",
        "--json",
    ]);
    r.ok();
    let v: serde_json::Value =
        serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}\n{}", r.describe()));
    assert_eq!(v["ok"], true);
    assert_eq!(v["name"], "bale-demo");
    assert_eq!(v["version"], "1.0.0");
    assert_eq!(v["signature"], "verified");
    let x = extract(&bundle);
    assert_eq!(
        v["manifest_digest"].as_str(),
        Some(sha(&std::fs::read(x.path().join("bale-manifest")).unwrap_or_default()).as_str())
    );
    let key_line = p.read("keys/k.pub");
    assert!(
        key_line.contains(v["key_id"].as_str().unwrap_or("?")),
        "{key_line}"
    );
    let images = v["images"].as_array().cloned().unwrap_or_default();
    assert_eq!(images.len(), 2);
    for img in images {
        assert_eq!(img["status"], "ok");
        assert_eq!(img["platform"], "linux/amd64");
        let service = img["service"].as_str().unwrap_or_default();
        assert_eq!(
            img["config"].as_str(),
            Some(locked_config(&p, service).as_str())
        );
    }
    // A failing bundle's report lists its problems, still as JSON.
    flip_byte(&bundle, entry(&bundle, "files/site/index.html").0);
    let r = p.bale(&[
        "verify",
        &bundle.display().to_string(),
        "--public-key",
        "keys/k.pub",
        "--json",
    ]);
    r.fails(exit::INTEGRITY);
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["ok"], false);
    assert_eq!(v["problems"][0]["entry"], "files/site/index.html");
}

#[test]
fn inspect_shows_images_overlays_sizes_and_shared_layers() {
    let p = demo();
    let bundle = build(&p, "demo.bale");
    let r = p.bale(&["inspect", &bundle.display().to_string()]);
    r.ok();
    let out = r.stdout();
    for want in [
        "web",
        WEB,
        WORKER,
        "linux/amd64",
        "site/index.html",
        "docker-compose.yml",
        "(compose)",
        "1 shared layer",
    ] {
        assert!(out.contains(want), "missing {want}\n{out}");
    }
    let r = p.bale(&["inspect", &bundle.display().to_string(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}"));
    let shared = v["shared_layers"].as_object().cloned().unwrap_or_default();
    assert_eq!(shared.len(), 1);
    assert!(v["unique_size"].as_u64() < v["images_size"].as_u64());
}

#[test]
fn signing_needs_a_key_or_an_explicit_unsigned() {
    let p = demo();
    let r = p.bale(&[
        "build",
        "-f",
        "demo/bundle.toml",
        "--offline",
        "-o",
        "x.bale",
    ]);
    r.fails(exit::USAGE);
    assert!(r.stderr().contains("--unsigned"), "{}", r.describe());
    assert!(!p.path().join("x.bale").exists());
    p.bale(&[
        "build",
        "-f",
        "demo/bundle.toml",
        "--offline",
        "--unsigned",
        "-o",
        "x.bale",
    ])
    .ok();
    let r = p.bale(&["verify", "x.bale", "--public-key", "keys/k.pub"]);
    r.fails(exit::INTEGRITY);
    assert!(r.stderr().contains("unsigned"), "{}", r.describe());
    p.bale(&["verify", "x.bale", "--allow-unsigned"]).ok();
}

#[test]
fn keys_from_the_reference_tool_and_encrypted_keys_in_the_environment_work() {
    let p = demo();
    run(Command::new("minisign").current_dir(p.path()).args([
        "-G",
        "-W",
        "-p",
        "keys/ref.pub",
        "-s",
        "keys/ref.sec",
    ]));
    p.bale(&[
        "build",
        "-f",
        "demo/bundle.toml",
        "--offline",
        "--sign-key",
        "keys/ref.sec",
        "-o",
        "ref.bale",
    ])
    .ok();
    p.bale(&["verify", "ref.bale", "--public-key", "keys/ref.pub"])
        .ok();

    // An encrypted key made by bale, handed over as CI secrets.
    p.bale_env(
        &[
            "keygen",
            "--public-key",
            "keys/enc.pub",
            "--secret-key",
            "keys/enc.sec",
        ],
        &[("BALE_SIGN_KEY_PASSWORD", "correct horse")],
    )
    .ok();
    let secret = p.read("keys/enc.sec");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(p.path().join("keys/enc.sec"))
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0);
    assert_eq!(mode, 0o600);
    let r = p.bale_env(
        &[
            "build",
            "-f",
            "demo/bundle.toml",
            "--offline",
            "-o",
            "enc.bale",
        ],
        &[("BALE_SIGN_KEY", &secret)],
    );
    r.fails(exit::INVALID_INPUT);
    assert!(
        r.stderr().contains("BALE_SIGN_KEY_PASSWORD"),
        "{}",
        r.describe()
    );
    let r = p.bale_env(
        &[
            "build",
            "-f",
            "demo/bundle.toml",
            "--offline",
            "-o",
            "enc.bale",
        ],
        &[
            ("BALE_SIGN_KEY", &secret),
            ("BALE_SIGN_KEY_PASSWORD", "hunter2-not-it"),
        ],
    );
    r.fails(exit::INVALID_INPUT);
    assert!(
        !r.stderr().contains("hunter2"),
        "the password must not be echoed\n{}",
        r.describe()
    );
    p.bale_env(
        &[
            "build",
            "-f",
            "demo/bundle.toml",
            "--offline",
            "-o",
            "enc.bale",
        ],
        &[
            ("BALE_SIGN_KEY", &secret),
            ("BALE_SIGN_KEY_PASSWORD", "correct horse"),
        ],
    )
    .ok();
    p.bale(&["verify", "enc.bale", "--public-key", "keys/enc.pub"])
        .ok();
    // minisign itself accepts bale's encrypted key format too.
    let x = extract(&p.path().join("enc.bale"));
    run(Command::new("minisign")
        .arg("-Vm")
        .arg(x.path().join("bale-manifest"))
        .arg("-p")
        .arg(p.path().join("keys/enc.pub")));
    // keygen never overwrites a key by accident.
    p.bale(&[
        "keygen",
        "--public-key",
        "keys/enc.pub",
        "--secret-key",
        "keys/enc.sec",
        "--no-password",
    ])
    .fails(exit::FAILURE);
    assert_eq!(p.read("keys/enc.sec"), secret);
}

#[test]
fn overlay_directory_with_a_symlink_is_refused() {
    let p = demo();
    std::os::unix::fs::symlink("/etc/passwd", p.path().join("demo/site/passwd"))
        .unwrap_or_else(|e| panic!("{e}"));
    let r = p.bale(&[
        "build",
        "-f",
        "demo/bundle.toml",
        "--offline",
        "--sign-key",
        "keys/k.sec",
        "-o",
        "x.bale",
    ]);
    r.fails(exit::INVALID_INPUT);
    assert!(
        r.stderr().contains("site/passwd") && r.stderr().contains("symbolic link"),
        "{}",
        r.describe()
    );
    assert!(!p.path().join("x.bale").exists());
}

#[test]
fn offline_build_with_registry_blobs_missing_names_them() {
    let reg = Registry::start();
    reg.push_app("off/line", "1", "x", b"1");
    let p = Project::new(&format!(
        "[bundle]\nname = \"off\"\nversion = \"1.0.0\"\n[images]\napp = \"{}/off/line:1\"\n",
        reg.host
    ));
    p.bale(&["lock"]).ok();
    let r = p.bale(&["build", "--offline", "--unsigned"]);
    r.fails(exit::FAILURE);
    assert!(
        r.stderr().contains("not in the store") && r.stderr().contains("/off/line:1"),
        "{}",
        r.describe()
    );
    // Online, build fetches what is missing.
    p.bale(&["build", "--locked", "--unsigned"]).ok();
    p.bale(&["verify", "off-1.0.0.bale", "--allow-unsigned"])
        .ok();
}

/// A store blob whose bytes changed after it was fetched (same size, one
/// byte flipped) is caught while the bundle is written: exit 6 naming the
/// blob, and neither the bundle nor a temporary file is left. One whose
/// size changed is fetched again (the store knows every blob's size).
#[test]
fn a_store_blob_changed_after_fetch_fails_the_build_and_leaves_nothing() {
    let p = demo();
    build(&p, "first.bale");
    let size_of = |d: &str| {
        std::fs::metadata(p.store.join("blobs/sha256").join(&d["sha256:".len()..]))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let (digest, _) = p
        .store_blobs()
        .into_iter()
        .max_by_key(|(d, _)| size_of(d))
        .unwrap_or_else(|| panic!("an empty store"));
    let blob = p
        .store
        .join("blobs/sha256")
        .join(&digest["sha256:".len()..]);
    let good = std::fs::read(&blob).unwrap_or_else(|e| panic!("{e}"));
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x01;
    std::fs::write(&blob, &flipped).unwrap_or_else(|e| panic!("{e}"));
    let second = [
        "build",
        "-f",
        "demo/bundle.toml",
        "--offline",
        "--sign-key",
        "keys/k.sec",
        "-o",
        "second.bale",
    ];
    let run = p.bale(&second);
    run.fails(exit::INTEGRITY);
    assert!(
        run.stderr().contains(&digest) && run.stderr().contains("store is corrupt"),
        "{}",
        run.describe()
    );
    assert!(!p.path().join("second.bale").exists());
    let leftovers: Vec<String> = std::fs::read_dir(p.path())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".bale-build-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    std::fs::write(&blob, &good[..good.len() - 1]).unwrap_or_else(|e| panic!("{e}"));
    let run = p.bale(&second);
    run.ok();
    assert!(
        run.stderr().contains(&format!("fetched {digest}")),
        "{}",
        run.describe()
    );
    assert_eq!(
        std::fs::read(p.path().join("first.bale")).ok(),
        std::fs::read(p.path().join("second.bale")).ok(),
        "the same store gives the same bytes"
    );
}

/// A build whose disk fills up fails naming the cause, leaves the file
/// already under the output name as it was and no temporary file: the
/// write that fails is the writing thread's, and its error, not a "thread
/// stopped", is what the operator reads.
#[test]
fn a_build_onto_a_full_disk_fails_naming_it_and_leaves_the_old_bundle() {
    let p = demo();
    let small = p.path().join("small");
    let _disk = SmallDisk::mount(&small, "256k");
    let out = small.join("demo.bale");
    std::fs::write(&out, b"the previous bundle").unwrap_or_else(|e| panic!("{e}"));
    let run = p.try_build_demo(&out.display().to_string());
    run.fails(exit::FAILURE);
    assert!(
        run.stderr().contains("No space left on device") && !run.stderr().contains("stopped"),
        "{}",
        run.describe()
    );
    assert_eq!(
        std::fs::read(&out).ok().as_deref(),
        Some(&b"the previous bundle"[..])
    );
    let left: Vec<String> = std::fs::read_dir(&small)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["demo.bale"]);
}
