//! `bale install` and `bale audit` end to end, against a real dockerd and
//! docker-compose, and a real containerd.

mod common;

use bale::error::exit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::daemons::{Containerd, Dockerd, Podman};
use common::*;

const COMPOSE: &str = r#"services:
  web:
    image: localhost/bale-demo/web:1.0
    command: ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/srv/site"]
    volumes: ["./site:/srv/site:ro"]
    ports: ["127.0.0.1:${WEB_PORT}:8080"]
    healthcheck:
      test: ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      timeout: 2s
      retries: 30
    networks: [stack]
  api:
    image: localhost/bale-demo/web:1.0
    command: ["/bin/busybox", "httpd", "-f", "-p", "9090", "-h", "/srv/api"]
    volumes: ["./api:/srv/api:ro"]
    ports: ["127.0.0.1:${API_PORT}:9090"]
    healthcheck:
      test: ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:9090/"]
      interval: 1s
      timeout: 2s
      retries: 30
    networks: [stack]
  worker:
    image: localhost/bale-demo/worker:1.0
    command: ["/bin/sh", "-c", "while true; do /bin/busybox wget -q -O /tmp/page http://web:8080/ && touch /tmp/ok; sleep 1; done"]
    environment:
      STACK_TOKEN: ${STACK_TOKEN}
    healthcheck:
      test: ["CMD", "/bin/busybox", "test", "-f", "/tmp/ok"]
      interval: 1s
      timeout: 2s
      retries: 30
    depends_on:
      web: {condition: service_healthy}
    networks: [stack]
networks:
  stack: {}
"#;

fn bundle_toml(version: &str) -> String {
    format!(
        r#"[bundle]
name = "stack"
version = "{version}"

[images]
web = "oci:images:localhost/bale-demo/web:1.0"
api = "oci:images:localhost/bale-demo/web:1.0"
worker = "oci:images:localhost/bale-demo/worker:1.0"

[compose]
file = "compose.yml"
project = "balestack"

[[overlays]]
source = "site"
target = "site"

[[overlays]]
source = "api"
target = "api"

[secrets.STACK_TOKEN]
length = 40
"#
    )
}

/// The three-service stack on a private dockerd, installed into `target/`.
struct Site {
    p: Project,
    docker: Dockerd,
    web_port: u16,
    api_port: u16,
}

/// The three-service stack's project, version 1.0.0, with a key pair.
fn stack_project() -> Project {
    let p = Project::new(&bundle_toml("1.0.0"));
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/images"),
        &p.path().join("images"),
    );
    p.write("compose.yml", COMPOSE);
    p.write("site/index.html", "web v1\n");
    p.write("api/index.html", "api v1\n");
    p.keygen();
    p
}

impl Site {
    fn new() -> Site {
        let p = stack_project();
        let docker = Dockerd::start();
        let (web_port, api_port) = (free_port(), free_port());
        // Operator settings go in .env before the first install; bale keeps them.
        p.write(
            "target/.env",
            &format!("# site settings\nWEB_PORT={web_port}\nAPI_PORT={api_port}\n"),
        );
        Site {
            p,
            docker,
            web_port,
            api_port,
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("DOCKER_HOST", self.docker.host.clone())]
    }

    fn bale(&self, args: &[&str]) -> Run {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.p.bale_env(args, &env)
    }

    fn bale_fault(&self, args: &[&str], step: &str) -> Run {
        self.p.bale_env(
            args,
            &[
                ("DOCKER_HOST", &self.docker.host),
                ("BALE_FAULT_AFTER", step),
            ],
        )
    }

    fn build(&self, version: &str, page: &str) -> String {
        self.p.write("bundle.toml", &bundle_toml(version));
        self.p.write("site/index.html", page);
        let out = format!("stack-{version}.bale");
        self.bale(&["build", "--sign-key", "keys/k.sec", "-o", &out])
            .ok();
        out
    }

    fn install(&self, bundle: &str, extra: &[&str]) -> Run {
        let mut args = vec![
            "install",
            bundle,
            "--public-key",
            "keys/k.pub",
            "--target",
            "target",
            "--timeout",
            "120",
        ];
        args.extend_from_slice(extra);
        self.bale(&args)
    }

    fn audit(&self, extra: &[&str]) -> Run {
        let mut args = vec!["audit", "--target", "target"];
        args.extend_from_slice(extra);
        self.bale(&args)
    }

    fn target(&self) -> PathBuf {
        self.p.path().join("target")
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        // Stop the project's containers before dockerd goes.
        let _ = self.docker.docker(&[
            "rm",
            "-f",
            "-v",
            "balestack_web_1",
            "balestack_api_1",
            "balestack_worker_1",
        ]);
    }
}

/// `bale status --json`'s services: `status state health` by service.
fn service_states(s: &Site) -> BTreeMap<String, String> {
    let r = s.bale(&["status", "--target", "target", "--json"]);
    r.ok();
    let v: serde_json::Value =
        serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}\n{}", r.describe()));
    assert_eq!(v["project"], "balestack", "{v}");
    v["services"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            let f = |k: &str| x[k].as_str().unwrap_or_default().to_owned();
            (
                f("service"),
                format!("{} {} {}", f("status"), f("state"), f("health")),
            )
        })
        .collect()
}

/// Every path under `dir` with its type and content hash (or link target).
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p
                .strip_prefix(root)
                .map(|r| r.display().to_string())
                .unwrap_or_default();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            use std::os::unix::fs::PermissionsExt as _;
            if m.file_type().is_symlink() {
                out.insert(
                    rel,
                    format!(
                        "link {}",
                        std::fs::read_link(&p)
                            .map(|t| t.display().to_string())
                            .unwrap_or_default()
                    ),
                );
            } else if m.is_dir() {
                out.insert(
                    rel.clone(),
                    format!("dir {:o}", m.permissions().mode() & 0o777),
                );
                walk(root, &p, out);
            } else {
                out.insert(
                    rel,
                    format!(
                        "file {:o} {}",
                        m.permissions().mode() & 0o777,
                        sha(&std::fs::read(&p).unwrap_or_default())
                    ),
                );
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

#[test]
fn install_up_audit_reinstall_upgrade_refuse_drift_tamper_and_interrupted_upgrade() {
    let s = Site::new();
    let v1 = s.build("1.0.0", "web v1\n");
    let token = first_install_starts_every_service_with_its_secret(&s, &v1);
    let web_config = image_ids_are_the_locked_config_digests(&s);
    audit_passes_and_names_a_stopped_or_removed_service(&s, &v1);
    a_reinstall_changes_nothing(&s, &v1);
    let v2 = s.build("1.1.0", "web v2\n");
    an_upgrade_keeps_the_previous_release_and_the_secrets(&s, &v2, &token);
    an_older_version_is_refused_and_changes_nothing(&s, &v1);
    a_retagged_image_is_a_finding_until_put_back(&s, &web_config);
    drifted_files_are_findings_and_a_reinstall_restores_them(&s, &v2);
    let v3 = s.build("1.2.0", "web v3\n");
    a_tampered_bundle_installs_nothing(&s, &v3);
    a_killed_upgrade_leaves_the_old_release_and_a_rerun_completes(&s, &v3);
    a_rollback_with_up_runs_the_kept_release_again(&s, &v2);
}

/// `bale rollback --up` goes back to the release kept before (1.1.0)
/// without its bundle file, starts it, and the host is as that bundle
/// signed it.
fn a_rollback_with_up_runs_the_kept_release_again(s: &Site, v2: &str) {
    let r = s.bale(&["rollback", "--target", "target", "--up", "--timeout", "120"]);
    r.ok();
    r.says("rolled back from 1.2.0 to 1.1.0");
    assert!(http_get(s.web_port).contains("web v2"));
    let states = service_states(s);
    for svc in ["web", "api", "worker"] {
        assert_eq!(states[svc], "ok running healthy", "{states:?}");
    }
    s.audit(&[v2, "--public-key", "keys/k.pub"]).ok();
}

/// Into an empty target with `--up`: every service answers, and the generated secret is private, kept apart from the operator's settings, never printed, and reaches the stack; returns it.
fn first_install_starts_every_service_with_its_secret(s: &Site, v1: &str) -> String {
    // Install into an empty target and start: every service answers.
    let r = s.install(v1, &["--up"]);
    r.ok();
    r.says("stack 1.0.0 installed");
    for svc in ["web", "api", "worker"] {
        assert!(
            r.stderr()
                .lines()
                .any(|l| l.contains(&format!("service {svc}")) && l.contains("running healthy")),
            "{svc}\n{}",
            r.describe()
        );
    }
    assert!(http_get(s.web_port).contains("web v1"));
    assert!(http_get(s.api_port).contains("api v1"));
    let states = service_states(s);
    for svc in ["web", "api", "worker"] {
        assert_eq!(states[svc], "ok running healthy", "{states:?}");
    }

    // Secrets: generated, mode 0600, operator settings kept, never printed.
    let env = std::fs::read_to_string(s.target().join(".env")).unwrap_or_default();
    let token = env
        .lines()
        .find_map(|l| l.strip_prefix("STACK_TOKEN="))
        .unwrap_or_else(|| panic!("no token in .env"))
        .to_owned();
    assert_eq!(token.len(), 40);
    assert!(
        env.contains(&format!("WEB_PORT={}", s.web_port)) && env.starts_with("# site settings\n")
    );
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(s.target().join(".env"))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0),
        0o600
    );
    assert!(!r.stderr().contains(&token) && !r.stdout().contains(&token));
    let out = s.docker.docker(&[
        "exec",
        "balestack_worker_1",
        "/bin/sh",
        "-c",
        "echo $STACK_TOKEN",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        token,
        "the stack gets the generated secret"
    );
    token
}

/// Each image ID equals its locked config digest; returns web's.
fn image_ids_are_the_locked_config_digests(s: &Site) -> String {
    // Image IDs equal the locked config digests.
    let lock: toml::Value =
        toml::from_str(&s.p.read("bundle.lock")).unwrap_or_else(|e| panic!("{e}"));
    let web_config = lock["image"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["service"].as_str() == Some("web")))
        .and_then(|i| i["platform"][0]["config"].as_str())
        .unwrap_or_default()
        .to_owned();
    let out = s.docker.docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        "localhost/bale-demo/web:1.0",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), web_config);
    web_config
}

/// Audit passes against the record and the signed bundle (JSON is evidence); a stopped and a removed service are findings until a re-install starts them.
fn audit_passes_and_names_a_stopped_or_removed_service(s: &Site, v1: &str) {
    // Audit passes, against the record and against the signed bundle; JSON is evidence.
    s.audit(&[]).ok();
    s.audit(&[v1, "--public-key", "keys/k.pub"]).ok();
    let r = s.audit(&["--json"]);
    let v: serde_json::Value =
        serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}\n{}", r.describe()));
    assert_eq!(v["ok"], true);
    assert_eq!(v["containers"].as_array().map(Vec::len), Some(3));
    assert!(
        v["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|c| c["status"] == "ok")
    );
    assert_eq!(v["services"].as_array().map(Vec::len), Some(3), "{v}");

    // A stopped service and a removed one are findings, each named.
    s.docker.docker(&["stop", "-t", "1", "balestack_api_1"]);
    s.docker.docker(&["rm", "-f", "balestack_worker_1"]);
    let r = s.audit(&[]);
    r.fails(exit::INTEGRITY);
    r.says("FINDING service api: stopped");
    r.says("FINDING service worker: missing");
    // `bale status` shows the same, and exits 0: a screen, not a check.
    let states = service_states(s);
    assert_eq!(states["web"], "ok running healthy", "{states:?}");
    // (dockerd keeps the last health of a stopped container, or none)
    assert!(states["api"].starts_with("stopped exited"), "{states:?}");
    assert_eq!(states["worker"], "missing  ", "{states:?}");
    // Re-installing with --up starts them again.
    s.install(v1, &["--up"]).ok();
    s.audit(&[]).ok();
}

/// The same bundle again changes nothing on disk.
fn a_reinstall_changes_nothing(s: &Site, v1: &str) {
    // Re-install is a no-op.
    let before = snapshot(&s.target());
    let r = s.install(v1, &["--up"]);
    r.ok();
    assert!(
        r.stderr().contains("already installed; nothing changed")
            && r.stderr().contains("image present"),
        "{}",
        r.describe()
    );
    assert_eq!(snapshot(&s.target()), before);
}

/// A newer version upgrades; the previous release and the secrets are kept.
fn an_upgrade_keeps_the_previous_release_and_the_secrets(s: &Site, v2: &str, token: &str) {
    // A newer version upgrades; the previous release is kept.
    let r = s.install(v2, &["--up"]);
    r.ok();
    r.says("stack 1.1.0 upgraded from 1.0.0");
    assert!(http_get(s.web_port).contains("web v2"));
    let releases: Vec<String> = std::fs::read_dir(s.target().join(".bale/releases"))
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(releases.len(), 2, "{releases:?}");
    assert!(
        std::fs::read_to_string(s.target().join(".env"))
            .unwrap_or_default()
            .contains(&format!("STACK_TOKEN={token}")),
        "secrets kept on upgrade"
    );
    s.audit(&[]).ok();
}

/// An older version is refused and changes nothing.
fn an_older_version_is_refused_and_changes_nothing(s: &Site, v1: &str) {
    // An older version is refused and changes nothing.
    let before = snapshot(&s.target());
    let r = s.install(v1, &[]);
    r.fails(exit::REFUSED);
    r.says("older than the installed 1.1.0");
    assert_eq!(snapshot(&s.target()), before);
}

/// A tag re-pointed to other content: audit names each service that uses it.
fn a_retagged_image_is_a_finding_until_put_back(s: &Site, web_config: &str) {
    // A tag re-pointed to other content: audit names the service.
    let out = s.docker.docker(&[
        "tag",
        "localhost/bale-demo/worker:1.0",
        "localhost/bale-demo/web:1.0",
    ]);
    assert!(out.status.success());
    let r = s.audit(&[]);
    r.fails(exit::INTEGRITY);
    assert!(
        r.stderr()
            .lines()
            .any(|l| l.starts_with("FINDING image web:")),
        "{}",
        r.describe()
    );
    assert!(
        r.stderr()
            .lines()
            .any(|l| l.starts_with("FINDING image api:")),
        "{}",
        r.describe()
    );
    assert!(
        s.docker
            .docker(&["tag", web_config, "localhost/bale-demo/web:1.0"])
            .status
            .success()
    );
    s.audit(&[]).ok();
}

/// An edited and an added file are findings, file by file; re-installing the same bundle puts the signed content back.
fn drifted_files_are_findings_and_a_reinstall_restores_them(s: &Site, v2: &str) {
    // An edited config file: audit reports the drift, file by file.
    let page = s.target().join("current/site/index.html");
    std::fs::write(&page, "defaced\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(s.target().join("current/site/extra.html"), "new\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let r = s.audit(&[]);
    r.fails(exit::INTEGRITY);
    assert!(
        r.stderr()
            .contains("FINDING file site/index.html: modified"),
        "{}",
        r.describe()
    );
    r.says("FINDING file site/extra.html: added");
    // Re-installing the same bundle puts the signed content back.
    let r = s.install(v2, &[]);
    r.ok();
    for line in [
        "restored modified  site/index.html",
        "restored added     site/extra.html",
    ] {
        assert!(r.stderr().contains(line), "{line}\n{}", r.describe());
    }
    assert_eq!(
        std::fs::read_to_string(&page).unwrap_or_default(),
        "web v2\n"
    );
    s.audit(&[]).ok();
}

/// A tampered bundle installs nothing and leaves the target and the images as they were.
fn a_tampered_bundle_installs_nothing(s: &Site, v3: &str) {
    // A tampered bundle installs nothing and leaves the target as it was.
    let tampered = s.p.path().join("tampered.bale");
    let mut bytes = std::fs::read(s.p.path().join(v3)).unwrap_or_default();
    let f =
        bale::bundle::source::Source::file(&s.p.path().join(v3)).unwrap_or_else(|e| panic!("{e}"));
    let (entries, _) = bale::verify::scan(&f, bytes.len() as u64);
    let page_entry = entries
        .iter()
        .find(|e| e.path.as_deref() == Ok("files/site/index.html"))
        .unwrap_or_else(|| panic!("no page"));
    bytes[page_entry.offset as usize] ^= 1;
    std::fs::write(&tampered, bytes).unwrap_or_else(|e| panic!("{e}"));
    let before = snapshot(&s.target());
    let images = || {
        let out = s.docker.docker(&[
            "images",
            "--no-trunc",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}}",
        ]);
        let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    };
    let images_before = images();
    let r = s.install("tampered.bale", &["--up"]);
    r.fails(exit::INTEGRITY);
    r.says("files/site/index.html");
    assert_eq!(snapshot(&s.target()), before);
    assert_eq!(images(), images_before);
}

/// Killed in the middle of an upgrade, the old version stays intact and current; the re-run completes and leaves nothing behind.
fn a_killed_upgrade_leaves_the_old_release_and_a_rerun_completes(s: &Site, v3: &str) {
    // Killed in the middle of an upgrade: the old version stays intact and
    // current; the re-run completes.
    for step in ["load", "stage", "secrets"] {
        let r = s.bale_fault(
            &[
                "install",
                v3,
                "--public-key",
                "keys/k.pub",
                "--target",
                "target",
            ],
            step,
        );
        assert_ne!(
            r.code(),
            0,
            "fault after {step} must kill the run\n{}",
            r.describe()
        );
        let link = std::fs::read_link(s.target().join("current")).unwrap_or_default();
        assert!(
            link.display().to_string().contains("1.1.0-"),
            "after a kill at {step}, current is {}",
            link.display()
        );
        assert_eq!(
            std::fs::read_to_string(s.target().join("current/site/index.html")).unwrap_or_default(),
            "web v2\n"
        );
        s.audit(&[]).ok();
    }
    let r = s.install(v3, &["--up"]);
    r.ok();
    r.says("stack 1.2.0 upgraded from 1.1.0");
    assert!(http_get(s.web_port).contains("web v3"));
    s.audit(&[v3, "--public-key", "keys/k.pub"]).ok();
    let leftovers: Vec<String> = std::fs::read_dir(s.target().join(".bale"))
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("staging-") || n.starts_with("current-"))
                .collect()
        })
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn another_bundle_into_the_same_target_is_refused() {
    let p = Project::demo();
    p.build_demo("demo.bale");
    p.install_none("demo.bale", "t").ok();
    let other = p
        .read("demo/bundle.toml")
        .replace("name = \"bale-demo\"", "name = \"other\"");
    p.write("demo/bundle.toml", &other);
    p.bale(&[
        "build",
        "-f",
        "demo/bundle.toml",
        "--offline",
        "--sign-key",
        "keys/k.sec",
        "-o",
        "other.bale",
    ])
    .ok();
    let r = p.install_none("other.bale", "t");
    r.fails(exit::REFUSED);
    r.says("holds bundle `bale-demo`");
    // A `current` that is not bale's symlink is never touched.
    let q = Project::new("");
    q.write("t/current", "operator's own file");
    let r = p.install_none("demo.bale", &q.path().join("t").display().to_string());
    assert_ne!(r.code(), 0);
    assert_eq!(q.read("t/current"), "operator's own file");
}

#[test]
fn containerd_install_imports_names_and_checks_manifest_digests() {
    let p = Project::demo();
    p.build_demo("demo.bale");
    let c = Containerd::start();
    let addr = c.address.display().to_string();
    let args = [
        "install",
        "demo.bale",
        "--public-key",
        "keys/k.pub",
        "--target",
        "t",
        "--runtime",
        "containerd",
        "--containerd-address",
        &addr,
        "--namespace",
        "k8s.io",
    ];
    let r = p.bale(&args);
    r.ok();
    assert_eq!(
        r.stderr().matches("image loaded").count(),
        2,
        "{}",
        r.describe()
    );
    let list =
        String::from_utf8_lossy(&c.ctr("k8s.io", &["images", "ls", "-q"]).stdout).into_owned();
    assert!(
        list.contains("localhost/bale-demo/web:1.0")
            && list.contains("localhost/bale-demo/worker:1.0"),
        "{list}"
    );
    let r = p.bale(&args);
    r.ok();
    assert_eq!(
        r.stderr().matches("image present").count(),
        2,
        "{}",
        r.describe()
    );
    let audit = [
        "audit",
        "--target",
        "t",
        "--runtime",
        "containerd",
        "--containerd-address",
        &addr,
        "--namespace",
        "k8s.io",
        "--json",
    ];
    let r = p.bale(&audit);
    r.ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        v["images"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|i| i["status"] == "ok" && i["found_manifest"] == i["expected_manifest"]),
        "{v}"
    );
    // Re-point the name in containerd to the other image: audit names the service.
    let _ = c.ctr("k8s.io", &["images", "rm", "localhost/bale-demo/web:1.0"]);
    let out = c.ctr(
        "k8s.io",
        &[
            "images",
            "tag",
            "localhost/bale-demo/worker:1.0",
            "localhost/bale-demo/web:1.0",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = p.bale(&audit);
    r.fails(exit::INTEGRITY);
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        v["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| f["subject"] == "web"),
        "{v}"
    );
}

#[test]
fn zstd_layers_load_into_docker_with_the_locked_image_id() {
    // Docker 20.10 cannot read zstd layers itself; bale decompresses them
    // on the way in, which keeps the image ID.
    let reg = Registry::start();
    let busybox =
        std::fs::read("/bin/busybox").unwrap_or_else(|e| panic!("busybox-static is needed: {e}"));
    let img = reg.push_image(
        "zstd/app",
        Some("1"),
        "linux",
        "amd64",
        None,
        &[
            zstd_layer(&[("bin/busybox", &busybox)]),
            gzip_layer(&[("etc/motd", b"zstd ok\n")]),
        ],
        false,
    );
    let p = Project::new(&format!(
        "[bundle]\nname = \"z\"\nversion = \"1.0.0\"\n[images]\napp = \"{}/zstd/app:1\"\n",
        reg.host
    ));
    p.bale(&[
        "keygen",
        "--public-key",
        "k.pub",
        "--secret-key",
        "k.sec",
        "--no-password",
    ])
    .ok();
    p.bale(&["build", "--sign-key", "k.sec", "-o", "z.bale"])
        .ok();
    let d = Dockerd::start();
    let r = p.bale_env(
        &[
            "install",
            "z.bale",
            "--public-key",
            "k.pub",
            "--target",
            "t",
        ],
        &[("DOCKER_HOST", &d.host)],
    );
    r.ok();
    let name = format!("{}/zstd/app:1", reg.host);
    let out = d.docker(&["image", "inspect", "--format", "{{.Id}}", &name]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), img.config);
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        &name,
        "/bin/busybox",
        "cat",
        "/etc/motd",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "zstd ok\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.bale_env(&["audit", "--target", "t"], &[("DOCKER_HOST", &d.host)])
        .ok();
}

#[test]
fn podman_install_up_audit_reinstall_and_a_stopped_service() {
    let p = stack_project();
    p.bale(&["build", "--sign-key", "keys/k.sec", "-o", "stack.bale"])
        .ok();
    let podman = Podman::new();
    let (web_port, api_port) = (free_port(), free_port());
    p.write(
        "target/.env",
        &format!("WEB_PORT={web_port}\nAPI_PORT={api_port}\n"),
    );
    let env = podman.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let bale = |args: &[&str]| p.bale_env(args, &env);
    let install = [
        "install",
        "stack.bale",
        "--public-key",
        "keys/k.pub",
        "--target",
        "target",
        "--runtime",
        "podman",
        "--up",
        "--timeout",
        "60",
    ];

    let r = bale(&install);
    r.ok();
    for svc in ["web", "api", "worker"] {
        assert!(
            r.stderr()
                .lines()
                .any(|l| l.contains(&format!("service {svc}")) && l.contains("running healthy")),
            "{svc}\n{}",
            r.describe()
        );
    }
    assert!(http_get(web_port).contains("web v1"));
    assert!(http_get(api_port).contains("api v1"));
    // Image IDs are the locked config digests, as Docker's are.
    let lock: toml::Value =
        toml::from_str(&p.read("bundle.lock")).unwrap_or_else(|e| panic!("{e}"));
    let web_config = lock["image"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["service"].as_str() == Some("web")))
        .and_then(|i| i["platform"][0]["config"].as_str())
        .unwrap_or_default()
        .to_owned();
    let out = podman.podman(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        "localhost/bale-demo/web:1.0",
    ]);
    assert_eq!(
        format!("sha256:{}", String::from_utf8_lossy(&out.stdout).trim()),
        web_config
    );

    // Audit finds podman from the record, with no --runtime.
    let a = bale(&["audit", "--target", "target", "--json"]);
    a.ok();
    let v: serde_json::Value =
        serde_json::from_str(&a.stdout()).unwrap_or_else(|e| panic!("{e}\n{}", a.describe()));
    assert_eq!(v["runtime"], "podman");
    assert_eq!(v["services"].as_array().map(Vec::len), Some(3), "{v}");

    // Re-install: nothing changed, every image present.
    let r = bale(&install);
    r.ok();
    assert!(
        r.stderr().contains("already installed; nothing changed")
            && r.stderr().contains("image present"),
        "{}",
        r.describe()
    );

    // The generated secret reached the stack, and no output of bale.
    let token = p
        .read("target/.env")
        .lines()
        .find_map(|l| l.strip_prefix("STACK_TOKEN=").map(str::to_owned))
        .unwrap_or_else(|| panic!("no token in .env"));
    let out = podman.podman(&[
        "exec",
        "balestack_worker_1",
        "/bin/sh",
        "-c",
        "echo $STACK_TOKEN",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), token);
    for run in [&r, &a] {
        assert!(!run.stderr().contains(&token) && !run.stdout().contains(&token));
    }

    // A stopped service is a finding; re-install with --up starts it again.
    podman.podman(&["stop", "-t", "1", "balestack_api_1"]);
    let a = bale(&["audit", "--target", "target"]);
    a.fails(exit::INTEGRITY);
    a.says("FINDING service api: stopped");
    // `bale status` finds podman from the record too, and says the same.
    let st = bale(&["status", "--target", "target"]);
    st.ok();
    assert!(
        st.stdout().contains("runtime podman")
            && st
                .stdout()
                .lines()
                .any(|l| l.trim_start().starts_with("api ") && l.ends_with("stopped")),
        "{}",
        st.describe()
    );
    bale(&install).ok();
    bale(&["audit", "--target", "target"]).ok();
}
