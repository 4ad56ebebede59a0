//! `bale install --runtime swarm` on a single-node swarm of the private
//! dockerd: images pulled by digest from `bale serve`, then from a
//! docker-registry that `bale push` filled; audit of image digests and
//! replicas; upgrade and downgrade; a second dockerd pulling the same
//! images from `bale serve`.

mod common;

use bale::error::exit;

use std::path::Path;

use common::bundles::Served;
use common::daemons::Dockerd;
use common::*;

/// With `version:`, as most stack files are written (the pins must carry
/// the same one, or stack deploy refuses to merge them).
const COMPOSE: &str = r#"version: "3.8"
services:
  web:
    image: localhost/bale-demo/web:1.0
    command: ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/srv/site"]
    volumes: ["./site:/srv/site:ro"]
    healthcheck:
      test: ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      timeout: 2s
      retries: 30
    # Service VIPs need the iptables and IPVS rules this test's dockerd
    # does not make (--iptables=false); DNS round robin needs neither.
    deploy:
      endpoint_mode: dnsrr
    networks: [stack]
  worker:
    image: localhost/bale-demo/worker:1.0
    command: ["/bin/sh", "-c", "while true; do /bin/busybox wget -q -O /tmp/page http://web:8080/ && touch /tmp/ok; sleep 1; done"]
    environment:
      STACK_TOKEN: ${STACK_TOKEN}
      NOTE: ${NOTE}
    healthcheck:
      test: ["CMD", "/bin/busybox", "test", "-f", "/tmp/ok"]
      interval: 1s
      timeout: 2s
      retries: 30
    networks: [stack]
  init:
    image: localhost/bale-demo/worker:1.0
    command: ["/bin/sh", "-c", "echo set up"]
    networks: [stack]
networks:
  stack: {}
"#;

fn bundle_toml(version: &str) -> String {
    format!(
        r#"[bundle]
name = "swarmstack"
version = "{version}"

[images]
web = "oci:images:localhost/bale-demo/web:1.0"
worker = "oci:images:localhost/bale-demo/worker:1.0"
init = "oci:images:localhost/bale-demo/worker:1.0"

[compose]
file = "compose.yml"
project = "swarmstack"
jobs = ["init"]

[[overlays]]
source = "site"
target = "site"

[secrets.STACK_TOKEN]
length = 40

# Every character a dotenv reader would change: stack deploy must see the
# value as given.
[values.NOTE]
default = "listen 8080 #primary \"q\" 's' back\\slash ${{STACK_TOKEN}} $$ grüße"
"#
    )
}

fn build(p: &Project, version: &str, page: &str) -> String {
    p.write("bundle.toml", &bundle_toml(version));
    p.write("site/index.html", page);
    let out = format!("stack-{version}.bale");
    p.bale(&["lock"]).ok();
    p.bale(&["build", "--sign-key", "keys/k.sec", "-o", &out])
        .ok();
    out
}

fn swarm() -> Dockerd {
    let d = Dockerd::start();
    let out = d.docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d
}

/// `docker service ls` of the stack: service → (replicas, image).
fn services(d: &Dockerd) -> Vec<(String, String, String)> {
    let out = d.docker(&[
        "service",
        "ls",
        "--filter",
        "label=com.docker.stack.namespace=swarmstack",
        "--format",
        "{{.Name}} {{.Replicas}} {{.Image}}",
    ]);
    let mut v: Vec<(String, String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.into(), w.next()?.into(), w.next()?.into()))
        })
        .collect();
    v.sort();
    v
}

/// `run` must have succeeded; if not, what swarm says of the tasks too.
fn ok_on(d: &Dockerd, run: Run) -> Run {
    if run.code() != 0 {
        let ps = d.docker(&["stack", "ps", "swarmstack", "--no-trunc"]);
        panic!(
            "{}\n--- docker stack ps\n{}{}",
            run.describe(),
            String::from_utf8_lossy(&ps.stdout),
            String::from_utf8_lossy(&ps.stderr)
        );
    }
    run
}

fn locked(p: &Project, service: &str) -> String {
    common::bundles::locked_manifest(p, service)
}

#[test]
fn a_stack_deploys_to_a_swarm_from_bale_serve_and_bale_push_and_is_audited() {
    let d = swarm();
    let p = Project::new("");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/images"),
        &p.path().join("images"),
    );
    p.write("compose.yml", COMPOSE);
    p.keygen();
    let v1 = build(&p, "1.0.0", "v1\n");
    let served = Served::start(&p, &v1, &[]);
    let registry = served.addr.clone();
    let env = [("DOCKER_HOST", d.host.as_str())];
    let install = |bundle: &str, registry: &str, extra: &[&str]| {
        let mut args = vec![
            "install",
            bundle,
            "--public-key",
            "keys/k.pub",
            "--target",
            "target",
            "--runtime",
            "swarm",
            "--registry",
            registry,
            "--timeout",
            "180",
        ];
        args.extend_from_slice(extra);
        p.bale_env(&args, &env)
    };
    // Without a registry there is nothing for the nodes to pull from.
    p.bale_env(
        &[
            "install",
            &v1,
            "--public-key",
            "keys/k.pub",
            "--target",
            "t0",
            "--runtime",
            "swarm",
        ],
        &env,
    )
    .fails(exit::USAGE)
    .says("--registry");
    ok_on(&d, install(&v1, &registry, &["--up"]));
    // The value reached the service byte for byte, not interpolated.
    let spec_env = d.docker(&[
        "service",
        "inspect",
        "swarmstack_worker",
        "--format",
        "{{json .Spec.TaskTemplate.ContainerSpec.Env}}",
    ]);
    let spec_env = String::from_utf8_lossy(&spec_env.stdout).into_owned();
    let spec_env: Vec<String> = serde_json::from_str(&spec_env).unwrap_or_default();
    assert!(
        spec_env.contains(
            &"NOTE=listen 8080 #primary \"q\" 's' back\\slash ${STACK_TOKEN} $$ grüße".to_owned()
        ),
        "{env:?}"
    );
    // Every service runs its locked manifest, pulled by digest; the job ran.
    let s = services(&d);
    assert_eq!(s.len(), 3, "{s:?}");
    for (name, replicas, image) in &s {
        let service = name.trim_start_matches("swarmstack_");
        let want = format!(
            "{registry}/bale-demo/{}@{}",
            if service == "web" { "web" } else { "worker" },
            locked(&p, service)
        );
        assert_eq!(image, &want, "{name}");
        if service != "init" {
            assert_eq!(replicas, "1/1", "{name}");
        }
    }
    let audit = p.bale_env(&["audit", "--target", "target", "--json"], &env);
    audit.ok();
    let report: serde_json::Value = serde_json::from_str(&audit.stdout()).unwrap_or_default();
    assert_eq!(report["runtime"], "swarm", "{report}");
    for svc in report["services"].as_array().cloned().unwrap_or_default() {
        let want = if svc["service"] == "init" {
            "completed"
        } else {
            "ok"
        };
        assert_eq!(svc["status"], want, "{svc}");
    }
    assert!(
        report["images"]
            .as_array()
            .is_some_and(|a| a.iter().all(|i| i["status"] == "ok")),
        "{report}"
    );
    // A service scaled away is found missing; installing again restores it.
    let out = d.docker(&["service", "scale", "--detach", "swarmstack_web=0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.bale_env(&["audit", "--target", "target"], &env)
        .fails(exit::INTEGRITY)
        .says("web");
    ok_on(&d, install(&v1, &registry, &["--up"]));
    p.bale_env(&["audit", "--target", "target"], &env).ok();

    // An upgrade; then the older bundle is refused.
    let v2 = build(&p, "1.1.0", "v2\n");
    ok_on(&d, install(&v2, &registry, &["--up"])).says("upgraded");
    install(&v1, &registry, &[]).fails(exit::REFUSED);

    // The same images through `bale push` into a site registry.
    let site = Registry::start();
    p.bale(&[
        "push",
        &v2,
        "--public-key",
        "keys/k.pub",
        "--to",
        &format!("{}/site", site.host),
    ])
    .ok();
    let pushed = format!("{}/site", site.host);
    ok_on(&d, install(&v2, &pushed, &["--up"]));
    for (name, replicas, image) in services(&d) {
        assert!(image.starts_with(&pushed), "{name} runs {image}");
        if name != "swarmstack_init" {
            assert_eq!(replicas, "1/1", "{name}");
        }
    }
    p.bale_env(&["audit", "--target", "target"], &env).ok();

    // A second daemon pulls the same images from `bale serve`.
    let other = Dockerd::start();
    let image = format!("{registry}/bale-demo/web@{}", locked(&p, "web"));
    let out = other.docker(&["pull", &image]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Uninstall removes the stack (`docker stack rm`); `.env` stays.
    p.bale_env(&["uninstall", "--target", "target"], &env).ok();
    let out = d.docker(&["stack", "ls", "--format", "{{.Name}}"]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("swarmstack"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(p.path().join("target/.env").is_file());
    drop(served);
}

/// The pins bale writes for a compose file whose first lines are `head`,
/// merged with it by Docker's own stack loader (`docker stack config`,
/// which needs no daemon) and by docker-compose.
#[test]
fn pins_merge_with_stack_files_of_any_compose_version() {
    let d = |c: char| bale::digest::Digest::of(c.to_string().as_bytes());
    let web = bale::bundle::ImageRecord {
        service: "web".into(),
        name: "docker.io/library/busybox:1.36".into(),
        platform: "linux/amd64".into(),
        digest: d('a'),
        manifest: d('b'),
        manifest_media_type: OCI_MANIFEST.into(),
        config: d('c'),
        layers: vec![d('e')],
        size: 1,
        attestations: Vec::new(),
        signature: None,
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for head in ["version: \"3.8\"\n", "version: '3'\n", ""] {
        let compose = format!("{head}services:\n  web:\n    image: busybox\n");
        let main = dir.path().join("docker-compose.yml");
        std::fs::write(&main, &compose).unwrap_or_else(|e| panic!("{e}"));
        for registry in [Some("registry.site:5000/stack"), None] {
            let pins = bale::install::compose_pins(&[&web], Some(&compose), registry, &[]);
            let pins_path = dir.path().join("pins.yml");
            std::fs::write(&pins_path, &pins).unwrap_or_else(|e| panic!("{e}"));
            let out = match registry {
                Some(_) => std::process::Command::new("docker")
                    .args(["stack", "config", "--compose-file"])
                    .arg(&main)
                    .arg("--compose-file")
                    .arg(&pins_path)
                    .output(),
                None => std::process::Command::new("docker-compose")
                    .arg("-f")
                    .arg(&main)
                    .arg("-f")
                    .arg(&pins_path)
                    .arg("config")
                    .output(),
            }
            .unwrap_or_else(|e| panic!("{e}"));
            let said = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "{head:?} {registry:?}: {said}\n{pins}"
            );
            let want = match registry {
                Some(_) => format!("registry.site:5000/stack/library/busybox@{}", d('b')),
                None => "docker.io/library/busybox:1.36".into(),
            };
            assert!(
                said.contains(&want),
                "{head:?}: the pin did not win:\n{said}"
            );
        }
    }
}
