//! Regression tests for the site's edges (part 10), each named after the
//! attack or the accident it stops: site values that must arrive byte for
//! byte, secrets that must stay private, renders and reads that must stay
//! bounded, and installs that must leave nothing behind when refused.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use bale::error::exit;
use common::daemons::{Dockerd, Podman};
use common::*;

/// Values that every `.env` reader used to change: a comment, quotes of
/// both kinds, backslashes, a reference to a secret, dollars, spaces at
/// both ends, `=`, and non-ASCII.
const TRICKY: &[(&str, &str)] = &[
    ("V_HASH", "listen 8080 #primary"),
    ("V_DQ", "\"quoted\""),
    ("V_SQ", "'single'"),
    ("V_BS", "back\\slash\\"),
    ("V_REF", "${API_KEY}"),
    ("V_DOLLAR", "$HOME and $$ and $"),
    ("V_SPACE", "  both ends  "),
    ("V_EQ", "a=b=c"),
    ("V_UNI", "grüße — 日本"),
];

fn edges_bundle() -> String {
    let mut s = String::from(
        r#"[bundle]
name = "edges"
version = "1.0.0"

[images]
web = "oci:images:localhost/bale-demo/web:1.0"

[compose]
file = "compose.yml.j2"
target = "docker-compose.yml"
template = true
project = "edges"

[[overlays]]
source = "conf"
target = "conf"
template = true

[values.MODE]
default = "ok"

[values.TENANTS]
type = "list"
default = ["acme"]

[values.PASSWORD]
secret = true

[values.CERT]
type = "file"
default = ""

[secrets.API_KEY]
length = 16

[secrets.TKEY]
length = 16
per = "TENANTS"
"#,
    );
    for (name, _) in TRICKY {
        s.push_str(&format!("\n[values.{name}]\ndefault = \"plain\"\n"));
    }
    s
}

fn edges_compose() -> String {
    let mut s = String::from(
        "services:\n  web:\n    image: {{ images.web }}\n    command: [\"/bin/busybox\", \"sleep\", \"600\"]\n    labels:\n      rendered: \"{{ V_REF }}\"\n    environment:\n",
    );
    for (name, _) in TRICKY {
        s.push_str(&format!("      {name}: ${{{name}}}\n"));
    }
    s
}

/// A project whose bundle declares every tricky value, a compose template
/// that passes each to the container, and templates that write each.
fn edges_project() -> Project {
    let p = Project::new(&edges_bundle());
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/images"),
        &p.path().join("images"),
    );
    p.write("compose.yml.j2", &edges_compose());
    let mut values = String::new();
    for (name, _) in TRICKY {
        values.push_str(&format!("{name}=[{{{{ {name} }}}}]\n"));
    }
    p.write("conf/values.txt", &values);
    p.write(
        "conf/db.url",
        "postgres://app:{{ PASSWORD | urlencode }}@db/app\n",
    );
    p.write("conf/key.env", "KEY={{ API_KEY | upper }}\n");
    p.write("conf/public.txt", "{{ bundle.name }} for {{ MODE }}\n");
    p.write(
        "conf/mode.txt",
        "{% if MODE == \"bomb\" %}{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}\
         {% elif MODE == \"broken\" %}{{ no_such_name }}{% else %}{{ MODE }}{% endif %}\n",
    );
    p.keygen();
    p.bale(&["build", "--sign-key", "keys/k.sec", "-o", "edges.bale"])
        .ok();
    p
}

/// The tricky values as a `--values` file (JSON strings are TOML strings).
fn tricky_values_file(p: &Project) {
    let mut text = String::new();
    for (name, v) in TRICKY {
        text.push_str(&format!(
            "{name} = {}\n",
            serde_json::to_string(v).unwrap_or_default()
        ));
    }
    p.write("site.toml", &text);
}

fn install_args<'a>(runtime: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "install",
        "edges.bale",
        "--public-key",
        "keys/k.pub",
        "--target",
        "target",
        "--runtime",
        runtime,
        "--set",
        "PASSWORD=p@ss/word$1 x",
    ];
    args.extend_from_slice(extra);
    args
}

/// Every tricky value, as a container's environment must hold it.
fn expected_env() -> Vec<String> {
    TRICKY.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// The rendered `conf/values.txt` and the container's environment and
/// label carry every value exactly; a second install reads `.env` back
/// unchanged.
fn assert_values_arrive_exactly(
    p: &Project,
    inspect: &dyn Fn() -> serde_json::Value,
    install: &dyn Fn(&[&str]) -> Run,
) {
    let rendered = p.read("target/current/conf/values.txt");
    for (name, v) in TRICKY {
        assert!(
            rendered.contains(&format!("{name}=[{v}]\n")),
            "{name} rendered otherwise:\n{rendered}"
        );
    }
    let c = inspect();
    let env: Vec<String> = c["Config"]["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for want in expected_env() {
        assert!(env.contains(&want), "container lacks {want:?}: {env:?}");
    }
    assert_eq!(
        c["Config"]["Labels"]["rendered"], "${API_KEY}",
        "a value in the compose template was interpolated"
    );
    // `.env` read back by bale: nothing changed, nothing re-rendered.
    let again = install(&["--json"]);
    again.ok();
    let result: serde_json::Value = serde_json::from_str(&again.stdout()).unwrap_or_default();
    assert_eq!(result["action"], "unchanged", "{}", again.describe());
}

#[test]
fn env_file_values_with_comments_quotes_backslashes_and_references_arrive_byte_for_byte_in_docker_compose()
 {
    let p = edges_project();
    tricky_values_file(&p);
    let docker = Dockerd::start();
    let env = [("DOCKER_HOST", docker.host.as_str())];
    let install = |extra: &[&str]| {
        let mut all = vec!["--values", "site.toml", "--up", "--timeout", "120"];
        all.extend_from_slice(extra);
        p.bale_env(&install_args("docker", &all), &env)
    };
    install(&[]).ok();
    let inspect = || {
        let id = docker.docker(&[
            "ps",
            "-q",
            "--filter",
            "label=com.docker.compose.service=web",
        ]);
        let id = String::from_utf8_lossy(&id.stdout).trim().to_owned();
        let out = docker.docker(&["inspect", &id]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v[0].clone()
    };
    assert_values_arrive_exactly(&p, &inspect, &install);
}

#[test]
fn env_file_values_with_comments_quotes_backslashes_and_references_arrive_byte_for_byte_in_podman_compose()
 {
    let p = edges_project();
    tricky_values_file(&p);
    let podman = Podman::new();
    let env = podman.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let install = |extra: &[&str]| {
        let mut all = vec!["--values", "site.toml", "--up", "--timeout", "120"];
        all.extend_from_slice(extra);
        p.bale_env(&install_args("podman", &all), &env)
    };
    install(&[]).ok();
    let inspect = || {
        let id = podman.podman(&["ps", "-a", "-q"]);
        let id = String::from_utf8_lossy(&id.stdout).trim().to_owned();
        let out = podman.podman(&["inspect", &id]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v[0].clone()
    };
    assert_values_arrive_exactly(&p, &inspect, &install);
}

fn mode(p: &Project, rel: &str) -> u32 {
    std::fs::symlink_metadata(p.path().join(rel))
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0)
}

#[test]
fn a_secret_through_urlencode_or_upper_makes_the_rendered_file_private() {
    let p = edges_project();
    p.bale(&install_args("none", &[])).ok();
    let url = p.read("target/current/conf/db.url");
    assert!(url.contains("p%40ss/word%241%20x"), "{url}");
    assert_eq!(mode(&p, "target/current/conf/db.url"), 0o600);
    assert_eq!(mode(&p, "target/current/conf/key.env"), 0o600);
    // The compose file names the secret only as `${…}` for compose: no
    // secret content, so it stays readable; a file without secrets too.
    assert_eq!(mode(&p, "target/current/conf/public.txt"), 0o644);
    assert_eq!(mode(&p, "target/current/docker-compose.yml"), 0o644);
    assert_eq!(mode(&p, "target/.env"), 0o600);
}

#[test]
fn per_item_secrets_of_colliding_or_unnameable_items_are_refused_naming_them() {
    let p = edges_project();
    let r = p.bale(&install_args("none", &["--set", "TENANTS=acme-1,acme_1"]));
    r.fails(exit::INVALID_INPUT)
        .says("items `acme-1` and `acme_1` of TENANTS would share the secret TKEY_ACME_1");
    let r = p.bale(&install_args("none", &["--set", "TENANTS=a=b,ok"]));
    r.fails(exit::INVALID_INPUT).says("item `a=b` of TENANTS");
    assert!(
        !p.path().join("target").exists(),
        "a refused install made the target"
    );
    // One secret per item, generated once, kept by the next install.
    p.bale(&install_args("none", &["--set", "TENANTS=acme,beta"]))
        .ok();
    let first = p.read("target/.env");
    p.bale(&install_args("none", &["--set", "TENANTS=acme,beta"]))
        .ok();
    assert_eq!(p.read("target/.env"), first);
    assert_eq!(first.matches("TKEY_ACME=").count(), 1, "{first}");
}

#[test]
fn a_file_value_is_never_written_through_a_planted_symlink() {
    let p = edges_project();
    p.write("cert.pem", "FIRST\n");
    p.bale(&install_args("none", &["--set", "CERT=cert.pem"]))
        .ok();
    assert_eq!(p.read("target/values/CERT"), "FIRST\n");
    assert_eq!(mode(&p, "target/values/CERT"), 0o600);

    // `values/CERT` as a symlink to a file elsewhere: replaced, not followed.
    p.write("outside/victim", "UNTOUCHED\n");
    let victim = p.path().join("outside/victim");
    std::fs::remove_file(p.path().join("target/values/CERT")).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(&victim, p.path().join("target/values/CERT"))
        .unwrap_or_else(|e| panic!("{e}"));
    p.write("cert.pem", "SECOND\n");
    p.bale(&install_args("none", &["--set", "CERT=cert.pem"]))
        .ok();
    assert_eq!(p.read("outside/victim"), "UNTOUCHED\n");
    assert_eq!(p.read("target/values/CERT"), "SECOND\n");

    // `values` itself as a symlink to a directory elsewhere: refused.
    std::fs::remove_dir_all(p.path().join("target/values")).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(p.path().join("outside"), p.path().join("target/values"))
        .unwrap_or_else(|e| panic!("{e}"));
    p.write("cert.pem", "THIRD\n");
    let r = p.bale(&install_args("none", &["--set", "CERT=cert.pem"]));
    assert_ne!(r.code(), 0, "{}", r.describe());
    r.says("values");
    assert!(
        !p.path().join("outside/CERT").exists(),
        "a file value was written through the symlink"
    );
}

#[test]
fn a_template_expansion_bomb_fails_naming_the_template_and_line() {
    let p = edges_project();
    let r = p.bale(&install_args("none", &["--set", "MODE=bomb"]));
    r.fails(exit::INVALID_INPUT)
        .says("template conf/mode.txt:1:")
        .says("larger than 16 MiB");
    assert!(
        !p.path().join("target").exists(),
        "a refused install made the target"
    );
}

#[test]
fn an_endless_template_in_the_bundle_fails_the_build_naming_it() {
    let p = edges_project();
    p.write(
        "conf/spin.txt",
        "\n{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}\n",
    );
    let r = p.bale(&["build", "--sign-key", "keys/k.sec", "-o", "spin.bale"]);
    assert_ne!(r.code(), 0, "{}", r.describe());
    r.says("spin.txt:2:").says("steps");
}

#[test]
fn a_huge_values_file_or_value_is_refused_with_a_clear_error() {
    let p = edges_project();
    let f = std::fs::File::create(p.path().join("huge.toml")).unwrap_or_else(|e| panic!("{e}"));
    f.set_len(300 * 1024 * 1024)
        .unwrap_or_else(|e| panic!("{e}"));
    let r = p.bale(&install_args("none", &["--values", "huge.toml"]));
    r.fails(exit::INVALID_INPUT)
        .says("--values huge.toml: is larger than 1024 KiB");
    let long = format!("MODE={}", "y".repeat(70 * 1024));
    let r = p.bale(&install_args("none", &["--set", &long]));
    r.fails(exit::INVALID_INPUT)
        .says("MODE: is 71680 bytes long; a value may hold at most 64 KiB");
    assert!(!p.path().join("target").exists());
}

/// Runs `args`, killing bale if it has not finished in 60 s.
fn run_bounded(p: &Project, args: &[&str]) -> (Option<std::process::ExitStatus>, Duration) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bale"))
        .args(args)
        .current_dir(p.path())
        .env("HOME", p.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(Some(status)) = child.try_wait() {
            return (Some(status), start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    (None, start.elapsed())
}

fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mkfifo {}", path.display());
}

#[test]
fn a_planted_fifo_does_not_hang_dry_run_or_audit() {
    let p = edges_project();
    p.bale(&install_args("none", &[])).ok();
    let cur = p.path().join("target/current");
    std::fs::remove_file(cur.join("conf/public.txt")).unwrap_or_else(|e| panic!("{e}"));
    mkfifo(&cur.join("conf/public.txt"));
    mkfifo(&p.path().join("fifo"));
    std::fs::remove_file(cur.join("conf/values.txt")).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(p.path().join("fifo"), cur.join("conf/values.txt"))
        .unwrap_or_else(|e| panic!("{e}"));
    let (status, took) = run_bounded(&p, &install_args("none", &["--dry-run"]));
    assert!(
        status.is_some(),
        "install --dry-run hung on a FIFO ({took:?})"
    );
    let (status, took) = run_bounded(&p, &["audit", "--target", "target", "--runtime", "none"]);
    let status = status.unwrap_or_else(|| panic!("audit hung on a FIFO ({took:?})"));
    assert_eq!(
        status.code(),
        Some(exit::INTEGRITY),
        "audit must report both files"
    );
}

#[test]
fn a_first_install_refused_by_a_template_leaves_the_target_as_it_found_it() {
    let p = edges_project();
    let r = p.bale(&install_args("none", &["--set", "MODE=broken"]));
    r.fails(exit::INVALID_INPUT)
        .says("template conf/mode.txt:1:");
    assert!(
        !p.path().join("target").exists(),
        "the target was left behind"
    );

    // An existing, empty directory stays empty.
    std::fs::create_dir(p.path().join("target")).unwrap_or_else(|e| panic!("{e}"));
    p.bale(&install_args("none", &["--set", "MODE=broken"]))
        .fails(exit::INVALID_INPUT);
    let left: Vec<_> = std::fs::read_dir(p.path().join("target"))
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_forged_sbom_with_its_manifest_line_edited_is_refused_by_bale_sbom() {
    let p = Project::demo();
    let good = p.build_demo("demo.bale");
    let forged: Vec<(String, Vec<u8>)> = common::forge::entries_of(&good)
        .into_iter()
        .map(|(n, d)| {
            if n == "bale/sbom.spdx.json" {
                (
                    n,
                    b"{\"spdxVersion\":\"SPDX-2.3\",\"name\":\"clean\"}".to_vec(),
                )
            } else {
                (n, d)
            }
        })
        .collect();
    // Re-signed by someone else's key: the manifest line matches the
    // forged document, the signature does not match the site's key.
    p.bale(&[
        "keygen",
        "--public-key",
        "keys/other.pub",
        "--secret-key",
        "keys/other.sec",
        "--no-password",
    ])
    .ok();
    common::forge::resign_with(
        &p,
        "keys/other.sec",
        "forged.bale",
        "bale-demo",
        "1.0.0",
        &forged,
    );
    let r = p.bale(&["sbom", "forged.bale", "--public-key", "keys/k.pub"]);
    r.fails(exit::INTEGRITY).says("signature check failed");
    assert!(r.stdout().is_empty(), "a forged SBOM was printed");
    // Without a key bale refuses unless told, and then says so.
    p.bale(&["sbom", "forged.bale"]).fails(exit::USAGE);
    let r = p.bale(&["sbom", "forged.bale", "--allow-unsigned"]);
    r.ok().says("nothing says who made it");
    // The genuine one prints with no word on stderr.
    let r = p.bale(&["sbom", "demo.bale", "--public-key", "keys/k.pub"]);
    r.ok();
    assert!(r.stderr().is_empty(), "{}", r.describe());
}

#[test]
fn a_file_name_with_terminal_escapes_is_shown_escaped_by_audit_and_its_reports() {
    let p = Project::demo();
    p.build_demo("demo.bale");
    p.install_none("demo.bale", "target").ok();
    let cur = p.path().join("target/current");
    let evil = "x\u{1b}[2K\rall files as signed\u{1b}]0;owned\u{7}";
    std::fs::write(cur.join(evil), "planted\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(cur.join("<img src=x onerror=alert(1)>.txt"), "x\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let r = p.bale(&[
        "audit",
        "--target",
        "target",
        "--runtime",
        "none",
        "--report",
        "audit.md",
    ]);
    r.fails(exit::INTEGRITY);
    let err = r.stderr();
    assert!(
        !err.contains('\u{1b}') && !err.contains('\r') && !err.contains('\u{7}'),
        "raw control characters reached the terminal: {err:?}"
    );
    assert!(
        err.contains("x\\u{1b}[2K\\u{d}all files as signed"),
        "{err}"
    );
    let md = p.read("audit.md");
    assert!(
        !md.contains("<img"),
        "raw HTML in the Markdown report:\n{md}"
    );
    assert!(
        md.contains("&lt;img src=x onerror=alert(1)&gt;.txt"),
        "{md}"
    );
    assert!(!md.contains('\u{1b}'), "raw ESC in the Markdown report");
}

#[test]
fn a_secrets_file_passed_as_a_bundle_is_described_never_quoted() {
    let p = Project::demo();
    let mut secrets = String::new();
    for i in 0..40 {
        secrets.push_str(&format!("DB_PASSWORD_{i}=hunter2-secret-{i}\n"));
    }
    p.write("site.env", &secrets);
    for args in [
        vec!["verify", "site.env", "--public-key", "keys/k.pub"],
        vec![
            "install",
            "site.env",
            "--public-key",
            "keys/k.pub",
            "--target",
            "t",
            "--runtime",
            "none",
        ],
        vec![
            "audit",
            "site.env",
            "--public-key",
            "keys/k.pub",
            "--target",
            "t",
            "--runtime",
            "none",
        ],
    ] {
        let r = p.bale(&args);
        assert_ne!(r.code(), 0, "{}", r.describe());
        assert!(!r.stderr().contains("hunter2"), "{}", r.describe());
        assert!(!r.stdout().contains("hunter2"), "{}", r.describe());
        r.says("it looks like a text file of KEY=VALUE lines");
    }
}

#[test]
fn a_closed_pipe_ends_bale_quietly() {
    let p = Project::demo();
    p.build_demo("demo.bale");
    for args in [
        vec![
            "verify",
            "demo.bale",
            "--public-key",
            "keys/k.pub",
            "--json",
        ],
        vec!["inspect", "demo.bale"],
        vec!["sbom", "demo.bale", "--public-key", "keys/k.pub"],
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bale"))
            .args(&args)
            .current_dir(p.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        // `| head -0`: the reader is gone before bale writes.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(exit::OK), "{args:?}: {err}");
    }
}
