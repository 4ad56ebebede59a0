//! Site values, templates, per-item secrets and setup jobs, end to end:
//! dockerd and docker-compose run what the templates render, and the real
//! `caddy validate` checks the Caddyfile rendered for each TLS choice.

mod common;

use bale::error::exit;

use std::path::Path;

use common::daemons::Dockerd;
use common::*;

const BUNDLE: &str = r#"[bundle]
name = "site"
version = "1.0.0"

[images]
web = "oci:images:localhost/bale-demo/web:1.0"
setup = "oci:images:localhost/bale-demo/worker:1.0"

[compose]
file = "compose.yml.j2"
target = "docker-compose.yml"
template = true
project = "siteproj"
jobs = ["setup"]

[[overlays]]
source = "conf"
target = "conf"
template = true

[[overlays]]
source = "www"
target = "www"
template = true

[values.DOMAIN]
description = "Public domain; each tenant answers at <tenant>.DOMAIN"
pattern = '^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$'

[values.TENANTS]
type = "list"
pattern = '^[a-z][a-z0-9-]{0,30}$'

[values.API_TOKEN]
secret = true

[values.BASE_PORT]
pattern = '^[0-9]{4,5}$'

[values.TLS]
choices = ["internal", "acme", "files"]
default = "internal"

[values.ACME_EMAIL]
default = "ops@example.org"

[values.TLS_CERT]
type = "file"
default = ""

[values.TLS_KEY]
type = "file"
default = ""

[values.SETUP_EXIT]
choices = ["0", "3"]
default = "0"

[secrets.TENANT_KEY]
length = 24
per = "TENANTS"
"#;

const COMPOSE: &str = r#"services:
{% for t in TENANTS %}
  tenant-{{ t }}:
    image: {{ images.web }}
    command: ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/srv/www"]
    volumes: ["./www:/srv/www:ro"]
    ports: ["127.0.0.1:{{ BASE_PORT|int + loop.index0 }}:8080"]
    environment:
      TENANT_KEY: "{{ TENANT_KEY[t] }}"
    healthcheck:
      test: ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      timeout: 2s
      retries: 30
    networks: [stack]
{% endfor %}
  setup:
    image: {{ images.setup }}
    command: ["/bin/sh", "-c", "echo setup running for {{ DOMAIN }}; test -n \"$$API_TOKEN\" && exit {{ SETUP_EXIT }}"]
    environment:
      API_TOKEN: ${API_TOKEN}
    networks: [stack]
networks:
  stack: {}
"#;

const CADDYFILE: &str = r#"{% for t in TENANTS %}{{ t }}.{{ DOMAIN }} {
{% if TLS == "internal" %}	tls internal
{% elif TLS == "files" %}	tls {{ TLS_CERT }} {{ TLS_KEY }}
{% else %}	tls {{ ACME_EMAIL }}
{% endif %}	reverse_proxy tenant-{{ t }}:8080
}
{% endfor %}"#;

/// A project with the site bundle's sources and a key pair.
fn project() -> Project {
    let p = Project::new(BUNDLE);
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/images"),
        &p.path().join("images"),
    );
    p.write("compose.yml.j2", COMPOSE);
    p.write("conf/Caddyfile", CADDYFILE);
    p.write(
        "www/index.html",
        "<h1>{{ bundle.name }} {{ bundle.version }} at {{ DOMAIN }}</h1>\n",
    );
    p.keygen();
    p.bale(&["build", "--sign-key", "keys/k.sec", "-o", "site.bale"])
        .ok();
    p
}

/// Three loopback ports in a row that are free now.
fn free_run() -> u16 {
    for _ in 0..50 {
        let base = free_port();
        if base < 65000
            && (1..3).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        {
            return base;
        }
    }
    panic!("no three free ports in a row");
}

/// The multi-tenant site on a private dockerd, installed into `target/`.
struct Tenants {
    p: Project,
    docker: Dockerd,
}

impl Tenants {
    fn install(&self, extra: &[&str]) -> Run {
        let mut args = vec![
            "install",
            "site.bale",
            "--public-key",
            "keys/k.pub",
            "--target",
            "target",
            "--timeout",
            "120",
        ];
        args.extend_from_slice(extra);
        self.p
            .bale_env(&args, &[("DOCKER_HOST", self.docker.host.as_str())])
    }

    fn audit(&self, extra: &[&str]) -> Run {
        let mut args = vec!["audit", "--target", "target"];
        args.extend_from_slice(extra);
        self.p
            .bale_env(&args, &[("DOCKER_HOST", self.docker.host.as_str())])
    }
}

impl Drop for Tenants {
    fn drop(&mut self) {
        let _ = self.docker.docker(&[
            "rm",
            "-f",
            "-v",
            "siteproj_tenant-acme_1",
            "siteproj_tenant-beta_1",
            "siteproj_tenant-gamma_1",
            "siteproj_setup_1",
        ]);
    }
}

#[test]
fn values_templates_per_item_secrets_and_jobs_with_docker() {
    let t = Tenants {
        p: project(),
        docker: Dockerd::start(),
    };
    missing_values_are_each_named_and_nothing_is_touched(&t);
    invalid_values_are_each_named(&t);
    let (base, token, key_acme) = a_values_file_brings_every_tenant_up_privately(&t);
    one_more_tenant_is_one_more_service_and_secrets_are_kept(&t, base, &key_acme);
    a_rendered_file_edited_and_a_value_edited_by_hand_are_findings(&t);
    a_changed_value_rerenders_and_restarts_what_mounts_it(&t, base);
    a_failing_job_fails_up_with_its_log_redacted(&t, &token);
}

/// No values and no terminal: every missing one named, nothing touched, no image loaded.
fn missing_values_are_each_named_and_nothing_is_touched(t: &Tenants) {
    // No values and no terminal: every missing one named, nothing touched.
    let r = t.install(&["--up"]);
    r.fails(exit::INVALID_INPUT);
    for name in ["DOMAIN", "TENANTS", "API_TOKEN", "BASE_PORT"] {
        assert!(
            r.stderr().contains(&format!("{name}: required")),
            "{name}\n{}",
            r.describe()
        );
    }
    assert!(
        !t.p.path().join("target").exists(),
        "a refused install touched the target"
    );
    let images = t.docker.docker(&["images", "-q"]);
    assert!(
        String::from_utf8_lossy(&images.stdout).trim().is_empty(),
        "an image was loaded"
    );
}

/// Invalid values: each named, the secret one without its value.
fn invalid_values_are_each_named(t: &Tenants) {
    // Invalid values: each named, the secret one without its value.
    let r = t.install(&[
        "--set",
        "DOMAIN=Not A Domain",
        "--set",
        "TENANTS=ok,Bad_Name",
        "--set",
        "API_TOKEN=x y",
        "--set",
        "BASE_PORT=80",
        "--set",
        "TLS=plain",
    ]);
    r.fails(exit::INVALID_INPUT);
    for want in [
        "DOMAIN: `Not A Domain` does not match",
        "TENANTS: `Bad_Name`",
        "BASE_PORT",
        "TLS: `plain` is not one of: internal, acme, files",
    ] {
        assert!(r.stderr().contains(want), "{want}\n{}", r.describe());
    }
}

/// With a values file every tenant is up and answering, no secret is printed, the compose file holding per-tenant secrets is private, and the setup job completed; returns the base port, the token and acme's key.
fn a_values_file_brings_every_tenant_up_privately(t: &Tenants) -> (u16, String, String) {
    // With a values file: every tenant up and answering.
    let base = free_run();
    let token = "tok-secret-123456";
    t.p.write(
        "site.toml",
        &format!("DOMAIN = \"example.org\"\nTENANTS = [\"acme\", \"beta\"]\nAPI_TOKEN = \"{token}\"\nBASE_PORT = \"{base}\"\n"),
    );
    let r = t.install(&["--values", "site.toml", "--up"]);
    r.ok();
    for port in [base, base + 1] {
        assert!(
            http_get(port).contains("site 1.0.0 at example.org"),
            "port {port}"
        );
    }
    let envfile = t.p.read("target/.env");
    let key_acme = envfile
        .lines()
        .find_map(|l| l.strip_prefix("TENANT_KEY_ACME="))
        .unwrap_or_else(|| panic!("no per-tenant secret:\n{envfile}"))
        .to_owned();
    assert!(envfile.contains("TENANTS=acme,beta"), "{envfile}");
    assert!(envfile.contains(&format!("API_TOKEN={token}")));
    for out in [r.stdout(), r.stderr()] {
        assert!(
            !out.contains(token) && !out.contains(&key_acme),
            "a secret was printed:\n{}",
            r.describe()
        );
    }
    // The compose file holds per-tenant secrets: it is private.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |rel: &str| {
        std::fs::metadata(t.p.path().join("target/current").join(rel))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    };
    assert_eq!(mode("docker-compose.yml"), 0o600);
    assert_eq!(mode("www/index.html"), 0o644);
    let a = t.audit(&["--json"]);
    a.ok();
    let v: serde_json::Value =
        serde_json::from_str(&a.stdout()).unwrap_or_else(|e| panic!("{e}\n{}", a.describe()));
    let setup = v["services"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["service"] == "setup"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(setup["status"], "completed", "{v}");
    assert!(!a.stdout().contains(token));
    (base, token.to_owned(), key_acme)
}

/// One more tenant: exactly one more service, existing secrets kept.
fn one_more_tenant_is_one_more_service_and_secrets_are_kept(
    t: &Tenants,
    base: u16,
    key_acme: &str,
) {
    // One more tenant: exactly one more service, existing secrets kept.
    let r = t.install(&[
        "--values",
        "site.toml",
        "--set",
        "TENANTS=acme,beta,gamma",
        "--up",
    ]);
    r.ok();
    r.says("reconfigured");
    assert!(http_get(base + 2).contains("example.org"));
    let envfile = t.p.read("target/.env");
    assert!(
        envfile.contains(&format!("TENANT_KEY_ACME={key_acme}")),
        "{envfile}"
    );
    assert!(envfile.contains("TENANT_KEY_GAMMA="), "{envfile}");
    let ps = t.docker.docker(&[
        "ps",
        "--filter",
        "label=com.docker.compose.project=siteproj",
        "--format",
        "{{.Names}}",
    ]);
    let names = String::from_utf8_lossy(&ps.stdout).to_string();
    assert_eq!(
        names.lines().filter(|n| n.contains("tenant-")).count(),
        3,
        "{names}"
    );
    t.audit(&[]).ok();
    let caddy = t.p.read("target/current/conf/Caddyfile");
    assert!(
        caddy.contains("gamma.example.org {") && caddy.contains("tls internal"),
        "{caddy}"
    );
}

/// An edited rendered file is drift; a value edited by hand in .env is named, its value never printed.
fn a_rendered_file_edited_and_a_value_edited_by_hand_are_findings(t: &Tenants) {
    // An edited rendered file is drift; a value edited by hand in .env is named.
    t.p.write("target/current/conf/Caddyfile", "edited\n");
    let envfile =
        t.p.read("target/.env")
            .replace("DOMAIN=example.org", "DOMAIN=other.example.org");
    t.p.write("target/.env", &envfile);
    let a = t.audit(&[]);
    a.fails(exit::INTEGRITY);
    a.says("FINDING file conf/Caddyfile: modified");
    a.says("FINDING value DOMAIN: changed");
    assert!(
        !a.stderr().contains("other.example.org"),
        "audit printed a value"
    );
}

/// Reconfiguring: a changed value re-renders what uses it, and the services that mount a re-rendered file are restarted.
fn a_changed_value_rerenders_and_restarts_what_mounts_it(t: &Tenants, base: u16) {
    // Reconfiguring: a changed value re-renders what uses it, and the
    // services that mount a re-rendered file are restarted.
    let started = || {
        let o = t.docker.docker(&[
            "inspect",
            "--format",
            "{{.State.StartedAt}}",
            "siteproj_tenant-acme_1",
        ]);
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    let before = started();
    let r = t.install(&[
        "--values",
        "site.toml",
        "--set",
        "TENANTS=acme,beta,gamma",
        "--set",
        "DOMAIN=new.example.org",
        "--up",
    ]);
    r.ok();
    r.says("restored rerendered www/index.html");
    r.says("restored modified  conf/Caddyfile");
    assert!(http_get(base).contains("at new.example.org"));
    assert_ne!(
        started(),
        before,
        "tenant-acme mounts ./www and was not restarted"
    );
    t.audit(&[]).ok();
}

/// A failing job fails --up and shows its log, every site value redacted.
fn a_failing_job_fails_up_with_its_log_redacted(t: &Tenants, token: &str) {
    // A failing job fails --up and shows its log.
    let r = t.install(&[
        "--values",
        "site.toml",
        "--set",
        "TENANTS=acme,beta,gamma",
        "--set",
        "SETUP_EXIT=3",
        "--up",
    ]);
    r.fails(exit::RUNTIME);
    r.says("job `setup` failed (exit 3)");
    // Its log, with every site value redacted (site values never enter a log).
    r.says("setup running for <redacted>");
    assert!(!r.stderr().contains(token));
}

#[test]
fn a_template_error_stops_the_build_naming_file_line_and_column() {
    let p = project();
    p.write(
        "conf/Caddyfile",
        "{{ DOMAIN }}\n{% for t in TENANTS %}\n  {{ NO_SUCH_VALUE }}\n{% endfor %}\n",
    );
    let r = p.bale(&["build", "--sign-key", "keys/k.sec", "-o", "bad.bale"]);
    r.fails(exit::INVALID_INPUT);
    r.says("conf/Caddyfile:3:6");
    assert!(!p.path().join("bad.bale").exists());
}

#[test]
fn caddy_validates_the_caddyfile_rendered_for_each_tls_choice() {
    assert!(
        have("caddy"),
        "caddy is not installed: run the README's test command"
    );
    let p = project();
    self_signed_cert(p.path(), "example.org");
    let base = free_port().to_string();
    for tls in ["internal", "acme", "files"] {
        let target = format!("t-{tls}");
        let mut args = vec![
            "install",
            "site.bale",
            "--public-key",
            "keys/k.pub",
            "--target",
            &target,
            "--runtime",
            "none",
            "--set",
            "DOMAIN=example.org",
            "--set",
            "TENANTS=acme,beta",
            "--set",
            "API_TOKEN=tok-secret",
            "--set",
        ];
        let port = format!("BASE_PORT={base}");
        let tls_set = format!("TLS={tls}");
        args.extend([port.as_str(), "--set", tls_set.as_str()]);
        if tls == "files" {
            args.extend(["--set", "TLS_CERT=site.crt", "--set", "TLS_KEY=site.key"]);
        }
        p.bale(&args).ok();
        let file = p.path().join(&target).join("current/conf/Caddyfile");
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let want = match tls {
            "internal" => "tls internal".to_owned(),
            "acme" => "tls ops@example.org".to_owned(),
            _ => format!(
                "tls {}",
                p.path().join(&target).join("values/TLS_CERT").display()
            ),
        };
        assert!(text.contains(&want), "{tls}: {text}");
        caddy_validate(p.path(), &file);
    }
    // The site's key was copied in with mode 0600.
    use std::os::unix::fs::PermissionsExt as _;
    let m = std::fs::metadata(p.path().join("t-files/values/TLS_KEY"))
        .map(|m| m.permissions().mode() & 0o777);
    assert_eq!(m.unwrap_or(0), 0o600);
}

fn none_install(p: &Project, extra: &[&str]) -> Run {
    let mut args = vec![
        "install",
        "site.bale",
        "--public-key",
        "keys/k.pub",
        "--target",
        "target",
        "--runtime",
        "none",
        "--set",
        "DOMAIN=example.org",
        "--set",
        "TENANTS=acme,beta",
        "--set",
        "API_TOKEN=tok-secret-987",
        "--set",
        "BASE_PORT=18000",
    ];
    args.extend_from_slice(extra);
    p.bale(&args)
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let p = project();
    let r = none_install(&p, &["--dry-run"]);
    r.ok();
    assert!(
        !p.path().join("target").exists(),
        "a dry run created the target"
    );
    let err = r.stderr();
    for want in [
        "would be installed",
        "file  add      docker-compose.yml",
        "file  add      conf/Caddyfile",
        "values to set: ",
        "secrets to generate: TENANT_KEY_ACME, TENANT_KEY_BETA",
        "jobs --up runs: setup",
    ] {
        assert!(err.contains(want), "{want}\n{}", r.describe());
    }
    assert!(!err.contains("tok-secret-987"));

    none_install(&p, &[]).ok();
    let before = std::fs::read(p.path().join("target/.env")).unwrap_or_default();
    let r = none_install(
        &p,
        &["--set", "TENANTS=acme,beta,gamma", "--dry-run", "--json"],
    );
    r.ok();
    let v: serde_json::Value =
        serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}\n{}", r.describe()));
    assert_eq!(v["ok"], true);
    assert_eq!(v["action"], "unchanged");
    let change = |t: &str| {
        v["files"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["target"] == t))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(change("conf/Caddyfile")["change"], "change", "{v}");
    assert_eq!(change("conf/Caddyfile")["lines"][0], 4, "{v}");
    assert_eq!(change("www/index.html")["change"], "same", "{v}");
    // The compose file holds secrets: its lines are not compared.
    assert_eq!(change("docker-compose.yml")["change"], "change");
    assert!(change("docker-compose.yml")["lines"].is_null(), "{v}");
    assert_eq!(v["values_changed"], serde_json::json!(["TENANTS"]));
    assert_eq!(
        v["secrets_to_generate"],
        serde_json::json!(["TENANT_KEY_GAMMA"])
    );
    assert!(!r.stdout().contains("tok-secret-987"));
    assert_eq!(
        std::fs::read(p.path().join("target/.env")).unwrap_or_default(),
        before,
        ".env changed"
    );
    assert!(!p.read("target/current/conf/Caddyfile").contains("gamma"));
}

#[test]
fn preflight_refuses_a_host_that_lacks_what_the_bundle_needs() {
    let p = project();
    let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap_or_else(|e| panic!("{e}"));
    let port = held.local_addr().map(|a| a.port()).unwrap_or(0);
    p.write(
        "bundle.toml",
        &format!("{BUNDLE}\n[preflight]\nmemory_gib = 100000\ndisk_gib = 0.001\nports = [{port}]\nruntime_version = \"20.10\"\n"),
    );
    p.bale(&["build", "--sign-key", "keys/k.sec", "-o", "site.bale"])
        .ok();
    let r = none_install(&p, &[]);
    r.fails(exit::REFUSED);
    for want in [
        "memory: ",
        "100000 GiB required",
        &format!("port(s) {port} in use"),
        "runtime_version: cannot tell",
    ] {
        assert!(r.stderr().contains(want), "{want}\n{}", r.describe());
    }
    assert!(
        !r.stderr().contains("disk:"),
        "disk passed\n{}",
        r.describe()
    );
    assert!(!p.path().join("target").exists());
    // Each overridden by name, and the report says so.
    let r = none_install(
        &p,
        &[
            "--skip-preflight",
            "memory",
            "--skip-preflight",
            "ports",
            "--skip-preflight",
            "runtime_version",
            "--json",
        ],
    );
    r.ok();
    let v: serde_json::Value =
        serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}\n{}", r.describe()));
    let status = |n: &str| {
        v["preflight"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == n))
            .map(|c| c["status"].clone())
            .unwrap_or_default()
    };
    assert_eq!(status("memory"), "skipped", "{v}");
    assert_eq!(status("ports"), "skipped");
    assert_eq!(status("disk"), "ok");
    drop(held);
}

#[test]
fn on_a_terminal_bale_asks_for_each_missing_value() {
    assert!(
        have("script"),
        "script (util-linux) is needed for a terminal"
    );
    let p = project();
    // Prompts come in name order: API_TOKEN, BASE_PORT, DOMAIN, TENANTS.
    let cmd = format!(
        "'{}' install site.bale --public-key keys/k.pub --target target --runtime none",
        env!("CARGO_BIN_EXE_bale")
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(p.path())
        .env("BALE_STORE", &p.store)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("script: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write as _;
        let _ = stdin.write_all(b"tok-from-prompt\n18000\nexample.org\nacme,beta\n");
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("DOMAIN (Public domain"), "{said}");
    assert!(said.contains("TENANTS [comma-separated]"), "{said}");
    let env = p.read("target/.env");
    for want in [
        "API_TOKEN=tok-from-prompt",
        "BASE_PORT=18000",
        "DOMAIN=example.org",
        "TENANTS=acme,beta",
    ] {
        assert!(env.contains(want), "{want}\n{env}");
    }
}

#[test]
fn an_upgrade_keeps_values_and_asks_only_for_new_ones() {
    let p = project();
    none_install(&p, &[]).ok();
    // Against the signed bundle, rendered files check out too.
    p.bale(&[
        "audit",
        "site.bale",
        "--public-key",
        "keys/k.pub",
        "--target",
        "target",
    ])
    .ok();
    let v2 = BUNDLE.replace("version = \"1.0.0\"", "version = \"1.1.0\"")
        + "\n[values.SUPPORT_EMAIL]\ndescription = \"Where tenants write to\"\n";
    p.write("bundle.toml", &v2);
    p.bale(&["build", "--sign-key", "keys/k.sec", "-o", "site-2.bale"])
        .ok();
    let upgrade = |extra: &[&str]| {
        let mut args = vec![
            "install",
            "site-2.bale",
            "--public-key",
            "keys/k.pub",
            "--target",
            "target",
            "--runtime",
            "none",
        ];
        args.extend_from_slice(extra);
        p.bale(&args)
    };
    let r = upgrade(&[]);
    r.fails(exit::INVALID_INPUT);
    assert!(
        r.stderr()
            .contains("SUPPORT_EMAIL: required (Where tenants write to)"),
        "{}",
        r.describe()
    );
    for old in ["DOMAIN", "TENANTS", "API_TOKEN", "BASE_PORT"] {
        assert!(
            !r.stderr().contains(&format!("{old}:")),
            "asked again for {old}\n{}",
            r.describe()
        );
    }
    let r = upgrade(&["--set", "SUPPORT_EMAIL=help@example.org"]);
    r.ok();
    r.says("upgraded from 1.0.0");
    let env = p.read("target/.env");
    assert!(
        env.contains("DOMAIN=example.org") && env.contains("SUPPORT_EMAIL=help@example.org"),
        "{env}"
    );
}
