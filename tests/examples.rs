//! The example bundles, proven here without the internet: stand-in images
//! under the real names from a loopback registry acting as Docker Hub's
//! mirror; `bale lock`, `build` and `verify` on the real bundle.toml; an
//! install with the example's site values; every rendered config checked
//! by its real program (caddy, PostgreSQL, docker-compose).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A project holding a copy of the root BorgStack bundle (bundle.toml,
/// overlays/, site.example.toml), its images served by `reg` as stand-ins.
fn borgstack(reg: &Registry) -> Project {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let p = Project::new("");
    for f in ["bundle.toml", "site.example.toml"] {
        std::fs::copy(root.join(f), p.path().join(f)).unwrap_or_else(|e| panic!("{e}"));
    }
    copy_dir(&root.join("overlays"), &p.path().join("overlays"));
    serve_standins(reg, &p.path().join("bundle.toml"));
    write_mirror_config(&p, reg);
    p.keygen();
    p
}

/// Pushes a stand-in image under every registry name of `bundle_toml`.
fn serve_standins(reg: &Registry, bundle_toml: &Path) {
    let text = std::fs::read_to_string(bundle_toml).unwrap_or_else(|e| panic!("{e}"));
    let spec = bale::spec::BundleSpec::parse_unchecked(Path::new("bundle.toml"), &text)
        .unwrap_or_else(|e| panic!("{e}"));
    for i in &spec.images {
        if let bale::reference::ImageSource::Registry(r) = &i.source {
            reg.push_image(
                &r.path,
                Some(&r.tag),
                "linux",
                "amd64",
                None,
                &[gzip_layer(&[("stand-in", r.canonical_name().as_bytes())])],
                false,
            );
        }
    }
}

/// `config/bale.toml`: `reg` as Docker Hub's only mirror.
fn write_mirror_config(p: &Project, reg: &Registry) {
    p.write(
        "config/bale.toml",
        &format!(
            "[registries.\"docker.io\"]\nmirrors = [\"{}\"]\nupstream = false\n",
            reg.host
        ),
    );
}

/// A project holding a copy of `examples/NAME`, its Docker Hub images
/// served by `reg` (stand-ins under the real names), and a key pair.
fn example(name: &str, reg: &Registry) -> Project {
    let p = Project::new("");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name),
        p.path(),
    );
    serve_standins(reg, &p.path().join("bundle.toml"));
    write_mirror_config(&p, reg);
    p.keygen();
    p
}

/// The engine's OCI layout, made as the example's README says: `engine/build`.
fn build_engine(p: &Project) {
    let out = std::process::Command::new(p.path().join("engine/build"))
        .current_dir(p.path())
        .output()
        .unwrap_or_else(|e| panic!("engine/build: {e}"));
    assert!(
        out.status.success(),
        "engine/build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Installs `bundle` into `t-<tls>` with the example's site values and the
/// value `tls_value` set to `tls`, the disk and memory preflight skipped,
/// plus `extra`; checks that `secret` (an example secret value) was not
/// printed.
fn install_tls(
    p: &Project,
    bundle: &str,
    (tls_value, tls): (&str, &str),
    extra: &[&str],
    secret: Option<&str>,
) -> String {
    let target = format!("t-{tls}");
    let tls_set = format!("{tls_value}={tls}");
    let mut args = vec![
        "install",
        bundle,
        "--public-key",
        "keys/k.pub",
        "--target",
        &target,
        "--runtime",
        "none",
        "--values",
        "site.example.toml",
        "--set",
        &tls_set,
        // These tests check what is rendered, not the machine running them:
        // CI hosts have less free disk and memory than a site (preflight is
        // tested in tests/values.rs).
        "--skip-preflight",
        "disk",
        "--skip-preflight",
        "memory",
    ];
    args.extend_from_slice(extra);
    let r = p.bale(&args);
    r.ok();
    if let Some(secret) = secret {
        assert!(
            !r.stderr().contains(secret) && !r.stdout().contains(secret),
            "{}",
            r.describe()
        );
    }
    target
}

/// `docker-compose config` of an installed release: it must accept the
/// rendered file, and every service must run a locked image.
fn compose_config(p: &Project, target: &str) -> serde_norway::Value {
    let t = p.path().join(target);
    let cur = t.join("current");
    let out = Command::new("docker-compose")
        .arg("--project-directory")
        .arg(&cur)
        .arg("--env-file")
        .arg(t.join(".env"))
        .arg("-f")
        .arg(cur.join("docker-compose.yml"))
        .arg("-f")
        .arg(cur.join(".bale/compose.pins.yml"))
        .arg("config")
        .output()
        .unwrap_or_else(|e| panic!("docker-compose: {e}"));
    assert!(
        out.status.success(),
        "docker-compose config:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_norway::Value =
        serde_norway::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let lock: toml::Value =
        toml::from_str(&p.read("bundle.lock")).unwrap_or_else(|e| panic!("{e}"));
    let locked: Vec<String> = lock["image"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["name"].as_str().map(str::to_owned))
        .collect();
    let services = doc
        .get("services")
        .and_then(|s| s.as_mapping())
        .cloned()
        .unwrap_or_default();
    assert!(!services.is_empty());
    for (name, svc) in &services {
        let image = svc
            .get("image")
            .and_then(|i| i.as_str())
            .unwrap_or_default();
        assert!(
            locked.iter().any(|l| l == image),
            "service {name:?} runs {image}, not a locked image"
        );
    }
    // docker-compose 1.29 drops pull_policy from its output: the pins say it.
    let pins = std::fs::read_to_string(cur.join(".bale/compose.pins.yml")).unwrap_or_default();
    assert_eq!(
        pins.matches("pull_policy: never").count(),
        services.len(),
        "every service pinned, never pulled:\n{pins}"
    );
    doc
}

/// A scratch PostgreSQL cluster (Debian's server): an initdb'd data
/// directory owned by `postgres`, in a temp directory that also holds the
/// socket; `as_pg` runs a server program as `postgres`.
struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl PgCluster {
    fn new() -> PgCluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|rd| {
                rd.flatten()
                    .map(|e| e.path().join("bin"))
                    .find(|b| b.join("initdb").exists())
            })
            .unwrap_or_else(|| {
                panic!("postgresql is not installed: run the README's test command")
            });
        let dir = tempfile::Builder::new()
            .prefix("bale-pg")
            .tempdir()
            .unwrap_or_else(|e| panic!("{e}"));
        let c = PgCluster { dir, bin };
        c.give_to_postgres(c.dir.path());
        let init = c
            .as_pg("initdb")
            .arg("-D")
            .arg(c.data())
            .args(["-A", "trust"])
            .output();
        assert!(
            init.as_ref().is_ok_and(|o| o.status.success()),
            "initdb: {init:?}"
        );
        c
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn give_to_postgres(&self, path: &Path) {
        let chown = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(path)
            .status();
        assert!(chown.is_ok_and(|s| s.success()));
    }

    fn as_pg(&self, program: &str) -> Command {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(self.bin.join(program));
        c
    }
}

/// Runs `sql` in a real PostgreSQL (Debian's), started for the test on a
/// private socket. Returns whether pgvector was available; without it the
/// `CREATE EXTENSION vector` statement is skipped, and said so.
fn postgres_runs(sql: &str, check: &str) -> (bool, String) {
    let (vector, mut found) = postgres_runs_with(sql, &[("postgres", check)], &[]);
    (vector, found.pop().unwrap_or_default())
}

/// [`postgres_runs`] with `env` set for psql (`\getenv` reads it), and each
/// check a query in the database it names.
fn postgres_runs_with(
    sql: &str,
    checks: &[(&str, &str)],
    env: &[(&str, &str)],
) -> (bool, Vec<String>) {
    let pg = PgCluster::new();
    let data = pg.data();
    let sock = pg.dir.path().to_owned();
    let port = free_port().to_string();
    let mut server = pg
        .as_pg("postgres")
        .arg("-D")
        .arg(&data)
        .args(["-p", &port, "-c", "listen_addresses=", "-k"])
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("postgres: {e}"));
    let psql_in = |db: &str, sql: &str| {
        pg.as_pg("psql")
            .arg("-h")
            .arg(&sock)
            .args([
                "-p",
                &port,
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ])
            .output()
            .unwrap_or_else(|e| panic!("psql: {e}"))
    };
    let psql = |sql: &str| psql_in("postgres", sql);
    let mut up = false;
    for _ in 0..100 {
        if psql("SELECT 1").status.success() {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(up, "postgres did not come up");
    let vector = String::from_utf8_lossy(
        &psql("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'").stdout,
    )
    .trim()
        == "1";
    let script: String = if vector {
        sql.to_owned()
    } else {
        sql.lines()
            .filter(|l| {
                !l.to_lowercase()
                    .contains("create extension if not exists vector")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    // A file, so that psql meta-commands (`\gexec`) work as in the image.
    let file = pg.dir.path().join("init.sql");
    std::fs::write(&file, script).unwrap_or_else(|e| panic!("{e}"));
    pg.give_to_postgres(&file);
    let run = pg
        .as_pg("psql")
        .envs(env.iter().copied())
        .arg("-h")
        .arg(&sock)
        .args(["-p", &port, "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("psql: {e}"));
    let found = checks
        .iter()
        .map(|(db, q)| {
            String::from_utf8_lossy(&psql_in(db, q).stdout)
                .trim()
                .to_owned()
        })
        .collect();
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        run.status.success(),
        "init SQL failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    (vector, found)
}

#[test]
fn flomastr_builds_installs_and_every_rendered_config_passes_its_validator() {
    for program in ["caddy", "docker-compose", "runuser", "openssl"] {
        assert!(
            have(program),
            "{program} is not installed: run the README's test command"
        );
    }
    let reg = Registry::start();
    let p = example("flomastr", &reg);
    build_engine(&p);
    p.bale(&["lock"]).ok();
    p.bale(&["build", "--sign-key", "keys/k.sec", "-o", "flomastr.bale"])
        .ok();
    p.bale(&["verify", "flomastr.bale", "--public-key", "keys/k.pub"])
        .ok();

    self_signed_cert(p.path(), "*.flomastr.example");
    for (tls, extra) in [
        ("internal", vec![]),
        ("acme", vec!["--set", "ACME_EMAIL=ops@flomastr.example"]),
        (
            "files",
            vec!["--set", "TLS_CERT=site.crt", "--set", "TLS_KEY=site.key"],
        ),
    ] {
        let target = install_tls(
            &p,
            "flomastr.bale",
            ("TLS", tls),
            &extra,
            Some("example-openai-key"),
        );
        let caddyfile = p.path().join(&target).join("current/caddy/Caddyfile");
        let text = std::fs::read_to_string(&caddyfile).unwrap_or_default();
        for site in [
            "engine.flomastr.example {",
            "whappstream.n8n.flomastr.example {",
            "mmi-sa.flomastr.example {",
        ] {
            assert!(text.contains(site), "{tls}: no site {site}\n{text}");
        }
        assert!(
            text.contains("header_up X-Tenant-Slug \"mmi-sa\""),
            "{text}"
        );
        caddy_validate(p.path(), &caddyfile);
        let doc = compose_config(&p, &target);
        let services = doc
            .get("services")
            .and_then(|s| s.as_mapping())
            .cloned()
            .unwrap_or_default();
        for s in [
            "caddy",
            "engine",
            "postgres",
            "n8n-whappstream",
            "n8n-mmi-sa",
        ] {
            assert!(
                services.keys().any(|k| k.as_str() == Some(s)),
                "{tls}: no service {s}"
            );
        }
    }
    // One encryption key per tenant, distinct, never printed.
    let env = p.read("t-internal/.env");
    let keys: Vec<&str> = env
        .lines()
        .filter(|l| l.starts_with("N8N_ENCRYPTION_KEY_"))
        .collect();
    assert_eq!(keys.len(), 2, "{env}");
    assert!(env.contains("N8N_ENCRYPTION_KEY_MMI_SA="), "{env}");

    // The init SQL, in a real PostgreSQL.
    let (vector, jobs) = postgres_runs(
        &p.read("t-internal/current/postgres/init.sql"),
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'jobs'",
    );
    assert_eq!(jobs, "1", "the jobs table was not created");
    if !vector {
        eprintln!(
            "pgvector: SKIPPED (Debian's PostgreSQL server lacks the extension; the bundle's pgvector/pgvector image has it)"
        );
    }
}

/// A real redis-server started with the rendered redis.conf (on a loopback
/// port and a private directory), answering with the rendered password.
fn redis_runs(conf: &Path, password: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = free_port().to_string();
    let mut server = Command::new("redis-server")
        .arg(conf)
        .args([
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--daemonize",
            "no",
            "--dir",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("redis-server: {e}"));
    let cli = |args: &[&str]| {
        Command::new("redis-cli")
            .args(["-p", &port, "-a", password, "--no-auth-warning"])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for _ in 0..100 {
        if cli(&["ping"]) == "PONG" {
            out.push("PONG".to_owned());
            out.push(cli(&["config", "get", "maxmemory-policy"]));
            out.push(cli(&["config", "get", "appendonly"]));
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = server.kill();
    let _ = server.wait();
    out
}

#[test]
fn chatwoot_n8n_directus_builds_installs_and_every_rendered_config_passes_its_validator() {
    for program in [
        "docker-compose",
        "runuser",
        "openssl",
        "redis-server",
        "redis-cli",
    ] {
        assert!(
            have(program),
            "{program} is not installed: run the README's test command"
        );
    }
    let reg = Registry::start();
    let p = example("chatwoot-n8n-directus", &reg);
    p.bale(&["lock"]).ok();
    p.bale(&["build", "--sign-key", "keys/k.sec", "-o", "cnd.bale"])
        .ok();
    p.bale(&["verify", "cnd.bale", "--public-key", "keys/k.pub"])
        .ok();
    self_signed_cert(p.path(), "*.shop.example");
    for (tls, extra) in [
        ("self-signed", vec![]),
        ("acme", vec![]),
        (
            "files",
            vec!["--set", "TLS_CERT=site.crt", "--set", "TLS_KEY=site.key"],
        ),
    ] {
        let target = install_tls(
            &p,
            "cnd.bale",
            ("TLS", tls),
            &extra,
            Some("example-claude-key"),
        );
        let doc = compose_config(&p, &target);
        let services = doc
            .get("services")
            .and_then(|s| s.as_mapping())
            .cloned()
            .unwrap_or_default();
        for s in [
            "chatwoot",
            "chatwoot-sidekiq",
            "n8n",
            "n8n-worker",
            "directus",
            "postgres",
            "redis",
            "pangolin",
            "gerbil",
            "traefik",
        ] {
            assert!(
                services.keys().any(|k| k.as_str() == Some(s)),
                "{tls}: no service {s}"
            );
        }
        // n8n in queue mode, with a worker; memory limits from the seed.
        let n8n = services
            .iter()
            .find(|(k, _)| k.as_str() == Some("n8n"))
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        assert_eq!(
            n8n["environment"]["EXECUTIONS_MODE"].as_str(),
            Some("queue")
        );
        let traefik = p.read(&format!("{target}/current/traefik/dynamic.yml"));
        let yaml: serde_norway::Value =
            serde_norway::from_str(&traefik).unwrap_or_else(|e| panic!("{tls}: dynamic.yml: {e}"));
        assert_eq!(yaml["tls"].is_null(), tls != "files", "{traefik}");
    }
    let env = p.read("t-self-signed/.env");
    let get = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k} in .env"))
            .to_owned()
    };
    // The rendered redis.conf in a real redis-server.
    let conf = p.path().join("t-self-signed/current/redis/redis.conf");
    let said = redis_runs(&conf, &get("REDIS_PASSWORD"));
    assert_eq!(said.first().map(String::as_str), Some("PONG"), "{said:?}");
    assert!(said.iter().any(|l| l.contains("noeviction")), "{said:?}");
    // The databases job's SQL in a real PostgreSQL, twice (it must be idempotent).
    let sql = p.read("t-self-signed/current/postgres/databases.sql");
    let (_, n) = postgres_runs(
        &format!("{sql}\n{sql}"),
        "SELECT count(*) FROM pg_database WHERE datname IN ('chatwoot', 'n8n', 'directus')",
    );
    assert_eq!(n, "3");
}

/// What a real PostgreSQL reads from the rendered postgresql.conf: the value
/// of `parameter` (`postgres -C`, which parses the file and exits).
fn postgres_conf_value(conf: &Path, parameter: &str) -> String {
    let pg = PgCluster::new();
    let copy = pg.dir.path().join("postgresql.conf");
    std::fs::copy(conf, &copy).unwrap_or_else(|e| panic!("{e}"));
    pg.give_to_postgres(&copy);
    let out = pg
        .as_pg("postgres")
        .arg("-D")
        .arg(pg.data())
        .arg("-c")
        .arg(format!("config_file={}", copy.display()))
        .args(["-C", parameter])
        .output()
        .unwrap_or_else(|e| panic!("postgres: {e}"));
    assert!(
        out.status.success(),
        "postgres rejects {}:\n{}",
        conf.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn borgstack_root_bundle_builds_installs_and_its_configs_pass_their_validators() {
    for program in [
        "caddy",
        "docker-compose",
        "runuser",
        "openssl",
        "redis-server",
    ] {
        assert!(
            have(program),
            "{program} is not installed: run the README's test command"
        );
    }
    let reg = Registry::start();
    let p = borgstack(&reg);
    p.bale(&["lock"]).ok();
    p.bale(&["build", "--sign-key", "keys/k.sec", "-o", "borgstack.bale"])
        .ok();
    p.bale(&["verify", "borgstack.bale", "--public-key", "keys/k.pub"])
        .ok();
    each_tls_mode_renders_a_caddyfile_caddy_and_compose_accept(&p);
    redis_conf_runs_in_a_real_redis_server(&p);
    lowcoder_seaweedfs_and_backups_are_wired_as_the_architecture_asks(&p);
    postgresql_reads_its_sizing_for_both_host_sizes(&p);
    init_databases_sql_runs_in_a_real_postgresql(&p);
}

/// Value `key` of the `t-internal` install's `.env`.
fn env_value(p: &Project, key: &str) -> String {
    p.read("t-internal/.env")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
        .unwrap_or_else(|| panic!("no {key} in .env"))
}

/// Installed once per TLS mode (`t-internal`, `t-acme`, `t-files`): each Caddyfile names the sites, keeps S3 internal, carries the architecture's headers and passes `caddy validate`; each compose file passes `docker-compose config`.
fn each_tls_mode_renders_a_caddyfile_caddy_and_compose_accept(p: &Project) {
    self_signed_cert(p.path(), "*.borgstack.example");
    for (tls, extra) in [
        ("internal", vec![]),
        (
            "acme",
            vec!["--set", "BORGSTACK_ACME_EMAIL=ops@borgstack.example"],
        ),
        (
            "files",
            vec![
                "--set",
                "BORGSTACK_TLS_CERT=site.crt",
                "--set",
                "BORGSTACK_TLS_KEY=site.key",
            ],
        ),
    ] {
        let target = install_tls(p, "borgstack.bale", ("BORGSTACK_TLS", tls), &extra, None);
        let caddyfile = p
            .path()
            .join(&target)
            .join("current/config/caddy/Caddyfile");
        let text = std::fs::read_to_string(&caddyfile).unwrap_or_default();
        for site in ["n8n.borgstack.example {", "duplicati.borgstack.example {"] {
            assert!(text.contains(site), "{tls}: no {site}\n{text}");
        }
        assert!(
            !text.contains("s3."),
            "SeaweedFS' S3 API must stay internal\n{text}"
        );
        for want in [
            r"header_regexp origin Origin ^https://[a-z0-9-]+\.borgstack\.example$",
            "Content-Security-Policy \"default-src 'self';",
            "read_timeout 60s",
        ] {
            assert!(text.contains(want), "{tls}: no {want}\n{text}");
        }
        // In the container the site's files are under /etc/caddy/site, which
        // the compose file mounts from <install dir>/values: validate with
        // the host's path.
        let host_view = text.replace(
            "/etc/caddy/site/",
            &format!("{}/", p.path().join(&target).join("values").display()),
        );
        let check = p.path().join(format!("Caddyfile-{tls}"));
        std::fs::write(&check, host_view).unwrap_or_else(|e| panic!("{e}"));
        caddy_validate(p.path(), &check);
        compose_config(p, &target);
    }
}

/// redis.conf in a real redis-server; the compose file gives the password on the command line, so does this.
fn redis_conf_runs_in_a_real_redis_server(p: &Project) {
    let get = |k: &str| env_value(p, k);
    // redis.conf in a real redis-server; the compose file gives the password
    // on the command line, so does this.
    let conf = p.path().join("t-internal/current/config/redis/redis.conf");
    let with_password = p.path().join("redis-test.conf");
    std::fs::write(
        &with_password,
        format!(
            "include {}\nrequirepass {}\n",
            conf.display(),
            get("REDIS_PASSWORD")
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let said = redis_runs(&with_password, &get("REDIS_PASSWORD"));
    assert_eq!(said.first().map(String::as_str), Some("PONG"), "{said:?}");
    assert!(
        p.read("t-internal/current/config/redis/redis.conf")
            .contains("maxmemory 4gb")
    );
}

/// Lowcoder's own MongoDB user, Directus and Chatwoot on SeaweedFS, SeaweedFS' private S3 identities, and backup scripts that parse and run.
fn lowcoder_seaweedfs_and_backups_are_wired_as_the_architecture_asks(p: &Project) {
    let get = |k: &str| env_value(p, k);
    // Lowcoder connects as its own MongoDB user, made by the mongodb-init job.
    let compose = p.read("t-internal/current/docker-compose.yml");
    assert!(
        compose.contains("mongodb://lowcoder_user:"),
        "Lowcoder connects as root"
    );
    let js = p
        .path()
        .join("t-internal/current/config/mongodb/lowcoder-user.js");
    if have("node") {
        let out = Command::new("node")
            .arg("--check")
            .arg(&js)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("lowcoder-user.js syntax: SKIPPED (no node here to check it)");
    }
    // Directus and Chatwoot keep their files in SeaweedFS, after the bucket exists.
    assert!(compose.contains("STORAGE_S3_ENDPOINT: http://seaweedfs:8333"));
    assert!(compose.contains("ACTIVE_STORAGE_SERVICE: s3_compatible"));
    // SeaweedFS' S3 identities: valid JSON, the generated keys, private.
    let s3 = p.path().join("t-internal/current/config/seaweedfs/s3.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&s3).unwrap_or_default())
        .unwrap_or_else(|e| panic!("s3.json: {e}"));
    assert_eq!(
        v["identities"][0]["credentials"][0]["accessKey"].as_str(),
        Some(get("SEAWEEDFS_S3_ACCESS_KEY").as_str())
    );
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&s3)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0),
        0o600
    );
    // The backup dump scripts parse as POSIX shell.
    for script in ["pg-dumps.sh", "mongo-dumps.sh", "duplicati-backup.sh"] {
        let path = p
            .path()
            .join("t-internal/current/config/backup")
            .join(script);
        let out = Command::new("sh")
            .arg("-n")
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    backup_job_runs_duplicati_as_the_architecture_asks(
        &p.path()
            .join("t-internal/current/config/backup/duplicati-backup.sh"),
    );
}

/// PostgreSQL reads the sizing for the architecture's 36 GB server, and for its 16 GB minimum; and the site's time zone.
fn postgresql_reads_its_sizing_for_both_host_sizes(p: &Project) {
    // PostgreSQL reads the sizing for the architecture's 36 GB server, and
    // for its 16 GB minimum; and the site's time zone.
    let pgconf = p
        .path()
        .join("t-internal/current/config/postgresql/postgresql.conf");
    // In 8 kB pages, as `postgres -C` prints it: 8 GB.
    assert_eq!(postgres_conf_value(&pgconf, "shared_buffers"), "1048576");
    assert_eq!(
        postgres_conf_value(&pgconf, "TimeZone"),
        "America/Sao_Paulo"
    );
    // In milliseconds, as `postgres -C` prints it.
    assert_eq!(
        postgres_conf_value(&pgconf, "idle_in_transaction_session_timeout"),
        "60000"
    );
    p.install_none_with(
        "borgstack.bale",
        "t-16",
        &[
            "--values",
            "site.example.toml",
            "--set",
            "BORGSTACK_HOST_MEMORY_GIB=16",
            "--skip-preflight",
            "disk",
            "--skip-preflight",
            "memory",
        ],
    )
    .ok();
    let pgconf = p
        .path()
        .join("t-16/current/config/postgresql/postgresql.conf");
    assert_eq!(postgres_conf_value(&pgconf, "shared_buffers"), "524288");
    assert!(
        p.read("t-16/current/config/redis/redis.conf")
            .contains("maxmemory 2gb")
    );
}

/// init-databases.sql in a real PostgreSQL, its passwords from the environment.
fn init_databases_sql_runs_in_a_real_postgresql(p: &Project) {
    let get = |k: &str| env_value(p, k);
    // init-databases.sql in a real PostgreSQL, its passwords from the environment.
    let sql = p.read("t-internal/current/config/postgresql/init-databases.sql");
    let pw: Vec<(String, String)> = [
        "N8N_DB_PASSWORD",
        "CHATWOOT_DB_PASSWORD",
        "DIRECTUS_DB_PASSWORD",
        "EVOLUTION_DB_PASSWORD",
    ]
    .iter()
    .map(|k| (k.to_string(), get(k)))
    .collect();
    let pw_env: Vec<(&str, &str)> = pw.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (vector, found) = postgres_runs_with(
        &sql,
        &[
            (
                "postgres",
                "SELECT count(*) FROM pg_database WHERE datname IN ('n8n_db', 'chatwoot_db', 'directus_db', 'evolution_db')",
            ),
            // The tables workflow 1's error handling writes to, the n8n user's.
            (
                "n8n_db",
                "SELECT string_agg(tablename || ':' || tableowner, ',' ORDER BY tablename) FROM pg_tables WHERE tablename IN ('error_queue', 'failed_messages')",
            ),
            // pg_stat_statements where the monitoring section queries it.
            (
                "postgres",
                "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'",
            ),
        ],
        &pw_env,
    );
    assert_eq!(
        found,
        ["4", "error_queue:n8n_user,failed_messages:n8n_user", "1"]
    );
    if !vector {
        eprintln!(
            "pgvector: SKIPPED (Debian's PostgreSQL server lacks the extension; pgvector/pgvector:pg18 has it)"
        );
    }
}

/// The nightly backup script, run once with a stand-in for Duplicati's CLI
/// (no Debian package has Duplicati) that fails its first call: the script
/// retries, and passes the architecture's retention, AES and the site's
/// passphrase; an empty passphrase is refused; no destination idles healthy.
fn backup_job_runs_duplicati_as_the_architecture_asks(script: &Path) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let cli = d.join("duplicati-cli");
    std::fs::write(
        &cli,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >> {0}/args\n[ -f {0}/failed-once ] || {{ touch {0}/failed-once; exit 1; }}\n",
            d.display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{e}"));
    let run = |dest: &str, pass: &str| {
        Command::new("sh")
            .arg(script)
            .env("DUPLICATI_CLI", &cli)
            .env("BACKUP_STATE_DIR", d)
            .env("BACKUP_DESTINATION", dest)
            .env("BACKUP_PASSPHRASE", pass)
            .env("BACKUP_AT", "02:00")
            .env("BACKUP_ONCE", "1")
            .env("RETRY_AFTER", "0")
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let out = run("file:///mnt/backup", "site-passphrase");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("retrying in one hour"), "{stderr}");
    let args = std::fs::read_to_string(d.join("args")).unwrap_or_default();
    for want in [
        "backup\nfile:///mnt/backup\n/source/\n",
        "--passphrase=site-passphrase\n",
        "--encryption-module=aes\n",
        "--retention-policy=7D:1D,4W:1W,12M:1M,5Y:1Y\n",
    ] {
        assert!(args.contains(want), "no {want:?} in\n{args}");
    }
    assert!(d.join(".backup-ok").exists() && !d.join(".backup-failed").exists());
    let out = run("file:///mnt/backup", "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to write unencrypted"));
}
