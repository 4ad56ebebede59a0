//! The root bundle.toml is the real BorgStack stack: it parses, its overlays
//! and compose file exist, and the compose file holds what operators rely on.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use bale::spec::BundleSpec;
use serde_norway::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn spec() -> BundleSpec {
    BundleSpec::load(&root().join("bundle.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("overlays/docker-compose.yml"))
        .unwrap_or_else(|e| panic!("{e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn borgstack_bundle_declares_the_real_stack() {
    let s = spec();
    assert_eq!(s.name, "borgstack");
    let names: BTreeSet<String> = s
        .images
        .iter()
        .map(|i| i.source.reference().canonical_name())
        .collect();
    for want in [
        "docker.io/pgvector/pgvector:pg18",
        "docker.io/library/mongo:7.0",
        "docker.io/library/redis:8.2-alpine",
        "docker.io/chrislusf/seaweedfs:3.97",
        "docker.io/library/caddy:2.10-alpine",
        "docker.io/n8nio/n8n:1.112.6",
        "docker.io/atendai/evolution-api:v2.2.3",
        "docker.io/chatwoot/chatwoot:v4.6.0-ce",
        "docker.io/lowcoderorg/lowcoder-ce:2.7.4",
        "docker.io/directus/directus:11",
        "docker.io/revenz/fileflows:25.09",
        "docker.io/duplicati/duplicati:2.1.1.102",
    ] {
        assert!(names.contains(want), "{want} missing from bundle.toml");
    }
    assert!(s.image("chatwoot").is_some() && s.image("chatwoot-sidekiq").is_some());
    let targets: Vec<&str> = s.overlays.iter().map(|o| o.target.as_str()).collect();
    assert_eq!(targets.len(), 7);
    assert_eq!(
        s.compose.as_ref().map(|c| c.project.as_str()),
        Some("borgstack")
    );
}

#[test]
fn compose_services_match_bundle_images_with_healthchecks_and_no_database_ports() {
    let s = spec();
    let c = compose();
    let services = c["services"]
        .as_mapping()
        .unwrap_or_else(|| panic!("no services"));
    assert_eq!(services.len(), s.images.len());
    for (name, svc) in services {
        let name = name.as_str().unwrap_or_default();
        let image = s
            .image(name)
            .unwrap_or_else(|| panic!("compose service {name} has no image in bundle.toml"));
        assert_eq!(
            svc["image"].as_str(),
            Some(image.written.as_str()),
            "service {name}"
        );
        // A job exits when done: bale waits for its exit code instead.
        let job = s
            .compose
            .as_ref()
            .is_some_and(|c| c.jobs.iter().any(|j| j == name));
        assert!(
            job || svc.get("healthcheck").is_some(),
            "service {name} has no healthcheck"
        );
        if name != "caddy" {
            assert!(svc.get("ports").is_none(), "service {name} publishes ports");
        }
        if let Some(deps) = svc.get("depends_on").and_then(Value::as_mapping) {
            for (dep, cond) in deps {
                // A service waits for a healthy service, or a finished job.
                let dep_is_job = s
                    .compose
                    .as_ref()
                    .is_some_and(|c| c.jobs.iter().any(|j| Some(j.as_str()) == dep.as_str()));
                let want = if dep_is_job {
                    "service_completed_successfully"
                } else {
                    "service_healthy"
                };
                assert_eq!(cond["condition"].as_str(), Some(want), "{name} -> {dep:?}");
            }
        }
        for net in svc["networks"].as_sequence().into_iter().flatten() {
            assert!(net.as_str().is_some_and(|n| n.starts_with("borgstack_")));
        }
    }
    let volumes = c["volumes"]
        .as_mapping()
        .unwrap_or_else(|| panic!("no volumes"));
    assert!(
        volumes
            .keys()
            .all(|k| k.as_str().is_some_and(|k| k.starts_with("borgstack_")))
    );
    assert!(
        c["networks"].get("borgstack_internal").is_some()
            && c["networks"].get("borgstack_external").is_some()
    );
}

#[test]
fn every_variable_the_overlays_use_is_a_declared_secret_or_an_operator_setting() {
    let s = spec();
    let declared: BTreeSet<&str> = s
        .secrets
        .iter()
        .map(|x| x.name.as_str())
        .chain(s.values.iter().map(|v| v.name.as_str()))
        .collect();
    let operator: [&str; 0] = [];
    let mut used = BTreeSet::new();
    for file in [
        "overlays/docker-compose.yml",
        "overlays/Caddyfile",
        "overlays/init-databases.sql",
    ] {
        let text = std::fs::read_to_string(root().join(file)).unwrap_or_default();
        for (i, _) in text.match_indices("${").chain(text.match_indices("{$")) {
            let rest = &text[i + 2..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            used.insert(name);
        }
        for line in text.lines().filter(|l| l.starts_with("\\getenv")) {
            used.insert(
                line.split_whitespace()
                    .nth(2)
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    for u in &used {
        assert!(
            declared.contains(u.as_str()) || operator.contains(&u.as_str()),
            "{u} is used but not declared"
        );
    }
    // No secret value is written into any overlay.
    for o in &s.overlays {
        let text = std::fs::read_to_string(s.source_path(&o.source)).unwrap_or_default();
        assert!(
            text.lines()
                .all(|l| !l.trim_start().starts_with("requirepass")),
            "{} sets a password",
            o.source
        );
        assert!(
            !text.to_lowercase().contains("password '"),
            "{} holds a literal password",
            o.source
        );
    }
}

#[test]
fn compose_file_is_valid_for_docker_compose() {
    if !common::have("docker-compose") {
        panic!("docker-compose is not installed: run the README's test command");
    }
    for f in ["overlays/docker-compose.yml", "demo/compose.yml"] {
        let out = std::process::Command::new("docker-compose")
            .args(["-f", f, "config", "-q"])
            .current_dir(root())
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
