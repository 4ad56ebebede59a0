//! `bale lock` and `bale fetch` against a real docker-registry.

mod common;

use bale::error::exit;

use common::*;

fn platform_json(os: &str, arch: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) => format!("{{\"os\":\"{os}\",\"architecture\":\"{arch}\",\"variant\":\"{v}\"}}"),
        None => format!("{{\"os\":\"{os}\",\"architecture\":\"{arch}\"}}"),
    }
}

/// A multi-arch OCI index with an attestation entry, as buildx writes them.
fn push_multiarch(reg: &Registry, repo: &str, tag: &str) -> (String, Pushed, Pushed) {
    let base = gzip_layer(&[("etc/base", b"shared base layer")]);
    let amd = reg.push_image(
        repo,
        None,
        "linux",
        "amd64",
        None,
        &[
            gzip_layer(&[("etc/base", b"shared base layer")]),
            gzip_layer(&[("bin/app", &noise(1, 50_000))]),
        ],
        false,
    );
    let arm = reg.push_image(
        repo,
        None,
        "linux",
        "arm64",
        Some("v8"),
        &[base, gzip_layer(&[("bin/app", &noise(2, 50_000))])],
        false,
    );
    // Attestation manifest: unknown/unknown, in-toto layer.
    let att_layer = LayerSpec {
        blob: b"{\"_type\":\"https://in-toto.io/Statement/v0.1\"}".to_vec(),
        media_type: "application/vnd.in-toto+json".into(),
        diff_id: String::new(),
    };
    let att = reg.push_image(repo, None, "unknown", "unknown", None, &[att_layer], false);
    let ann = format!(
        "{{\"vnd.docker.reference.digest\":\"{}\",\"vnd.docker.reference.type\":\"attestation-manifest\"}}",
        amd.manifest
    );
    let index = reg.push_index(
        repo,
        tag,
        &[
            (amd.clone(), platform_json("linux", "amd64", None), None),
            (
                arm.clone(),
                platform_json("linux", "arm64", Some("v8")),
                None,
            ),
            (att, platform_json("unknown", "unknown", None), Some(ann)),
        ],
        false,
    );
    (index, amd, arm)
}

fn lock_entry(project: &Project, service: &str) -> toml::Value {
    let lock: toml::Value = toml::from_str(&project.read("bundle.lock"))
        .unwrap_or_else(|e| panic!("bad lock: {e}\n{}", project.read("bundle.lock")));
    lock["image"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|i| i["service"].as_str() == Some(service))
                .cloned()
        })
        .unwrap_or_else(|| panic!("no {service} in lock:\n{}", project.read("bundle.lock")))
}

fn digest_of_platform_in_raw_index(raw: &[u8], arch: &str) -> String {
    let v: serde_json::Value = serde_json::from_slice(raw).unwrap_or_else(|e| panic!("{e}"));
    v["manifests"]
        .as_array()
        .and_then(|m| m.iter().find(|e| e["platform"]["architecture"] == arch))
        .and_then(|e| e["digest"].as_str())
        .unwrap_or_else(|| panic!("no {arch} in {v}"))
        .to_owned()
}

#[test]
fn lock_records_index_and_platform_digests_as_skopeo_sees_them() {
    let reg = Registry::start();
    let (index, amd, _) = push_multiarch(&reg, "multi/app", "1.0");
    let p = Stack::new("t")
        .platforms(&["linux/amd64", "linux/arm64"])
        .image("app", &format!("{}/multi/app:1.0", reg.host))
        .project();
    p.bale(&["lock"]).ok();
    let e = lock_entry(&p, "app");
    let raw = skopeo_raw(&format!("{}/multi/app:1.0", reg.host));
    assert_eq!(e["digest"].as_str(), Some(sha(&raw).as_str()));
    assert_eq!(sha(&raw), index);
    assert_eq!(e["media-type"].as_str(), Some(OCI_INDEX));
    assert_eq!(
        e["name"].as_str(),
        Some(format!("{}/multi/app:1.0", reg.host).as_str())
    );
    let amd_digest = digest_of_platform_in_raw_index(&raw, "amd64");
    let amd_raw = skopeo_raw(&format!("{}/multi/app@{amd_digest}", reg.host));
    let plats = e["platform"].as_array().cloned().unwrap_or_default();
    assert_eq!(plats.len(), 2, "attestation entries must be skipped");
    assert_eq!(plats[0]["platform"].as_str(), Some("linux/amd64"));
    assert_eq!(plats[0]["manifest"].as_str(), Some(sha(&amd_raw).as_str()));
    assert_eq!(plats[0]["config"].as_str(), Some(amd.config.as_str()));
    let layers: Vec<&str> = plats[0]["layers"]
        .as_array()
        .map(|a| a.iter().filter_map(|l| l["digest"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        layers,
        amd.layers.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(plats[1]["platform"].as_str(), Some("linux/arm64"));
}

#[test]
fn lock_handles_docker_manifest_lists() {
    let reg = Registry::start();
    let amd = reg.push_image(
        "dock/list",
        None,
        "linux",
        "amd64",
        None,
        &[gzip_layer(&[("a", b"amd")])],
        true,
    );
    let arm = reg.push_image(
        "dock/list",
        None,
        "linux",
        "arm",
        Some("v7"),
        &[gzip_layer(&[("a", b"arm")])],
        true,
    );
    let list = reg.push_index(
        "dock/list",
        "2",
        &[
            (amd.clone(), platform_json("linux", "amd64", None), None),
            (arm, platform_json("linux", "arm", Some("v7")), None),
        ],
        true,
    );
    let p = Stack::new("t")
        .platforms(&["linux/amd64"])
        .image("svc", &format!("{}/dock/list:2", reg.host))
        .project();
    p.bale(&["lock"]).ok();
    let e = lock_entry(&p, "svc");
    let raw = skopeo_raw(&format!("{}/dock/list:2", reg.host));
    assert_eq!(e["digest"].as_str(), Some(sha(&raw).as_str()));
    assert_eq!(sha(&raw), list);
    assert_eq!(e["media-type"].as_str(), Some(DOCKER_LIST));
    let plat = &e["platform"][0];
    let amd_raw = skopeo_raw(&format!(
        "{}/dock/list@{}",
        reg.host,
        digest_of_platform_in_raw_index(&raw, "amd64")
    ));
    assert_eq!(plat["manifest"].as_str(), Some(sha(&amd_raw).as_str()));
    assert_eq!(plat["manifest-media-type"].as_str(), Some(DOCKER_MANIFEST));
    assert_eq!(plat["config"].as_str(), Some(amd.config.as_str()));
}

#[test]
fn fetch_stores_every_blob_verified_and_second_runs_change_nothing() {
    let reg = Registry::start();
    push_multiarch(&reg, "multi/app", "1.0");
    // Many small layers, and a zstd layer.
    let small: Vec<LayerSpec> = (0..30)
        .map(|i| gzip_layer(&[(format!("f{i}").as_str(), format!("layer {i}").as_bytes())]))
        .collect();
    reg.push_image(
        "many/layers",
        Some("3"),
        "linux",
        "amd64",
        None,
        &small,
        false,
    );
    reg.push_image(
        "zstd/img",
        Some("1"),
        "linux",
        "amd64",
        None,
        &[zstd_layer(&[("z", &noise(9, 300_000))])],
        false,
    );
    let p = Stack::new("t")
        .platforms(&["linux/amd64"])
        .image("app", &format!("{}/multi/app:1.0", reg.host))
        .image("many", &format!("{}/many/layers:3", reg.host))
        .image("zed", &format!("{}/zstd/img:1", reg.host))
        .project();
    p.bale(&["lock"]).ok();
    let lock1 = p.read("bundle.lock");
    assert!(lock1.contains(OCI_LAYER_ZSTD), "{lock1}");
    let run = p.bale(&["fetch", "--json"]);
    run.ok();
    let s = run.summary();
    // app: index + manifest + config + 2 layers, and its attestation
    // (manifest, config, statement); many: manifest + config + 30; zstd:
    // manifest + config + 1.
    assert_eq!(s["blobs"], 5 + 3 + 32 + 3, "{}", run.describe());
    assert_eq!(s["downloaded"], s["blobs"], "{}", run.describe());
    // Every locked digest is in the store and hashes to its name.
    let blobs = p.store_blobs();
    let lock: toml::Value = toml::from_str(&lock1).unwrap_or_else(|e| panic!("{e}"));
    for img in lock["image"].as_array().cloned().unwrap_or_default() {
        let mut digests = vec![img["digest"].as_str().unwrap_or_default().to_owned()];
        for plat in img["platform"].as_array().cloned().unwrap_or_default() {
            digests.push(plat["manifest"].as_str().unwrap_or_default().to_owned());
            digests.push(plat["config"].as_str().unwrap_or_default().to_owned());
            for l in plat["layers"].as_array().cloned().unwrap_or_default() {
                digests.push(l["digest"].as_str().unwrap_or_default().to_owned());
            }
        }
        for d in digests {
            assert!(
                blobs.contains(&(d.clone(), true)),
                "{d} missing or corrupt in store: {blobs:?}"
            );
        }
    }
    assert!(blobs.iter().all(|(_, ok)| *ok));
    assert!(p.store.join("CACHEDIR.TAG").is_file());
    // Second fetch: nothing downloaded.
    let run = p.bale(&["fetch", "--json", "--locked"]);
    run.ok();
    assert_eq!(run.summary()["downloaded"], 0, "{}", run.describe());
    assert_eq!(run.summary()["transferred"], 0, "{}", run.describe());
    // Second lock: same bytes.
    p.bale(&["lock"]).ok();
    assert_eq!(p.read("bundle.lock"), lock1);
    p.bale(&["lock", "--check"]).ok();
    // Re-resolving everything from the registry also gives the same bytes.
    p.bale(&["lock", "--update"]).ok();
    assert_eq!(p.read("bundle.lock"), lock1);
}

#[test]
fn pins_are_kept_until_update_is_asked() {
    let reg = Registry::start();
    reg.push_app("moving/tag", "1", "v", b"one");
    let p = Stack::new("t")
        .platforms(&["linux/amd64"])
        .image("web", &format!("{}/moving/tag:1", reg.host))
        .image("db", &format!("{}/moving/tag:1", reg.host))
        .project();
    p.bale(&["lock"]).ok();
    let before = p.read("bundle.lock");
    let second = reg.push_app("moving/tag", "1", "v", b"two");
    p.bale(&["lock"]).ok();
    assert_eq!(p.read("bundle.lock"), before, "a plain lock must keep pins");
    let run = p.bale(&["lock", "--update", "web"]);
    run.ok();
    assert!(run.stderr().contains("updated  web"), "{}", run.describe());
    assert_eq!(
        lock_entry(&p, "web")["digest"].as_str(),
        Some(second.manifest.as_str())
    );
    assert_ne!(
        lock_entry(&p, "db")["digest"].as_str(),
        Some(second.manifest.as_str())
    );
}

#[test]
fn check_and_locked_fail_when_bundle_and_lock_disagree() {
    let reg = Registry::start();
    reg.push_app("a/b", "1", "x", b"1");
    reg.push_app("a/b", "2", "x", b"2");
    let p = Stack::new("t")
        .platforms(&["linux/amd64"])
        .image("web", &format!("{}/a/b:1", reg.host))
        .project();
    p.bale(&["lock", "--check"]).fails(exit::LOCK_OUT_OF_DATE);
    p.bale(&["lock"]).ok();
    p.bale(&["lock", "--check"]).ok();
    p.write(
        "bundle.toml",
        &Stack::new("t")
            .platforms(&["linux/amd64"])
            .image("web", &format!("{}/a/b:2", reg.host))
            .toml_text(),
    );
    let before = p.read("bundle.lock");
    let run = p.bale(&["lock", "--check"]);
    run.fails(exit::LOCK_OUT_OF_DATE);
    assert!(run.stderr().contains("service `web`"), "{}", run.describe());
    p.bale(&["fetch", "--locked"]).fails(exit::LOCK_OUT_OF_DATE);
    assert_eq!(
        p.read("bundle.lock"),
        before,
        "--check and --locked must not write"
    );
    // Without --locked, fetch updates the lock first.
    p.bale(&["fetch"]).ok();
    assert!(p.read("bundle.lock").contains("/a/b:2"));
}

#[test]
fn missing_platform_is_an_error_never_a_fallback() {
    let reg = Registry::start();
    push_multiarch(&reg, "multi/app", "1.0");
    reg.push_image(
        "single/arm",
        Some("1"),
        "linux",
        "arm64",
        None,
        &[gzip_layer(&[("x", b"arm")])],
        false,
    );
    let p = Stack::new("t")
        .platforms(&["linux/s390x"])
        .image("app", &format!("{}/multi/app:1.0", reg.host))
        .project();
    let run = p.bale(&["lock"]);
    run.fails(exit::INVALID_INPUT);
    assert!(
        run.stderr().contains("no linux/s390x image") && run.stderr().contains("linux/amd64"),
        "{}",
        run.describe()
    );
    let p = Stack::new("t")
        .platforms(&["linux/amd64"])
        .image("arm", &format!("{}/single/arm:1", reg.host))
        .project();
    let run = p.bale(&["lock"]);
    run.fails(exit::INVALID_INPUT);
    assert!(
        run.stderr().contains("for linux/arm64, not linux/amd64"),
        "{}",
        run.describe()
    );
    assert!(!p.path().join("bundle.lock").exists());
}

#[test]
fn pinned_digest_must_match() {
    let reg = Registry::start();
    let img = reg.push_app("pin/me", "1", "x", b"1");
    let p = Stack::new("t")
        .platforms(&["linux/amd64"])
        .image("web", &format!("{}/pin/me:1@{}", reg.host, img.manifest))
        .project();
    p.bale(&["lock"]).ok();
    assert_eq!(
        lock_entry(&p, "web")["digest"].as_str(),
        Some(img.manifest.as_str())
    );
    let wrong = sha(b"not it");
    let p = Stack::new("t")
        .platforms(&["linux/amd64"])
        .image("web", &format!("{}/pin/me:1@{wrong}", reg.host))
        .project();
    let run = p.bale(&["lock"]);
    assert_ne!(run.code(), 0, "{}", run.describe());
    assert!(run.stderr().contains("service `web`"), "{}", run.describe());
}

#[test]
fn basic_auth_uses_docker_config_credentials() {
    let reg = Registry::start_with(Some(("alice", "s3cret-pw")));
    reg.push_app("private/app", "1", "x", b"private");
    let p = Stack::new("t")
        .platforms(&["linux/amd64"])
        .image("app", &format!("{}/private/app:1", reg.host))
        .project();
    let run = p.bale(&["lock"]);
    run.fails(exit::REGISTRY);
    assert!(
        run.stderr().contains("unauthorized") && run.stderr().contains("docker login"),
        "{}",
        run.describe()
    );
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret-pw");
    p.write(
        "docker-config/config.json",
        &format!("{{\"auths\":{{\"{}\":{{\"auth\":\"{auth}\"}}}}}}", reg.host),
    );
    p.bale(&["lock"]).ok();
    let run = p.bale(&["fetch"]);
    run.ok();
    assert!(!run.stderr().contains("s3cret-pw"));
    assert_eq!(p.store_blobs().len(), 3);

    // The same through a credential helper named in credHelpers.
    let bin = p.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap_or_else(|e| panic!("{e}"));
    let helper = bin.join("docker-credential-baletest");
    std::fs::write(
        &helper,
        "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\necho \"{\\\"ServerURL\\\":\\\"$server\\\",\\\"Username\\\":\\\"alice\\\",\\\"Secret\\\":\\\"s3cret-pw\\\"}\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{e}"));
    p.write(
        "docker-config/config.json",
        &format!("{{\"credHelpers\":{{\"{}\":\"baletest\"}}}}", reg.host),
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = p.bale_env(&["lock", "--update"], &[("PATH", &path)]);
    run.ok();
    assert!(!run.stderr().contains("s3cret-pw"));
}

#[test]
fn mirror_serves_but_lock_records_canonical_names() {
    let mirror = Registry::start();
    let img = mirror.push_app("library/mirrored", "7", "m", b"mirror");
    let p = Stack::new("t")
        .platforms(&["linux/amd64"])
        .image("m", "mirrored:7")
        .project();
    // Never let a test fall back to the real Docker Hub.
    p.write(
        "config/bale.toml",
        "[registries.\"docker.io\"]\nupstream = false\n",
    );
    let flag = format!("docker.io={}", mirror.host);
    p.bale(&["lock", "--mirror", &flag]).ok();
    let e = lock_entry(&p, "m");
    assert_eq!(e["name"].as_str(), Some("docker.io/library/mirrored:7"));
    assert_eq!(e["digest"].as_str(), Some(img.manifest.as_str()));
    let first = p.read("bundle.lock");
    // The same content through another mirror, named in config/, locks the same bytes.
    let other = Registry::start();
    other.push_app("library/mirrored", "7", "m", b"mirror");
    p.write(
        "config/bale.toml",
        &format!(
            "[registries.\"docker.io\"]\nmirrors = [\"{}\"]\nupstream = false\n",
            other.host
        ),
    );
    drop(mirror);
    p.bale(&["lock", "--update"]).ok();
    assert_eq!(p.read("bundle.lock"), first);
    let run = p.bale_env(
        &["fetch", "--json"],
        &[("BALE_MIRRORS", &format!("docker.io={}", other.host))],
    );
    run.ok();
    assert_eq!(run.summary()["downloaded"], 3);
}

#[test]
fn two_fetches_at_once_leave_the_store_consistent() {
    let reg = Registry::start();
    let layers: Vec<LayerSpec> = (0..8)
        .map(|i| gzip_layer(&[("f", &noise(100 + i, 400_000))]))
        .collect();
    reg.push_image("big/one", Some("1"), "linux", "amd64", None, &layers, false);
    let p = Stack::new("t")
        .platforms(&["linux/amd64"])
        .image("app", &format!("{}/big/one:1", reg.host))
        .project();
    p.bale(&["lock"]).ok();
    let bin = env!("CARGO_BIN_EXE_bale");
    let spawn = || {
        std::process::Command::new(bin)
            .args(["fetch", "--locked", "--json", "-j", "3"])
            .current_dir(p.path())
            .env("BALE_STORE", &p.store)
            .env("DOCKER_CONFIG", &p.docker_config)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let (a, b) = (spawn(), spawn());
    for c in [a, b] {
        let out = c.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let blobs = p.store_blobs();
    assert_eq!(blobs.len(), 10, "{blobs:?}");
    assert!(blobs.iter().all(|(_, ok)| *ok), "{blobs:?}");
    let leftovers: Vec<_> = std::fs::read_dir(p.store.join("tmp"))
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn outdated_reports_a_tag_that_moved_after_lock() {
    let reg = Registry::start();
    let first = reg.push_app("stack/web", "1.0", "bin/app", b"release one");
    reg.push_app("stack/db", "2.0", "bin/db", b"db");
    let p = Stack::new("t")
        .platforms(&["linux/amd64"])
        .image("web", &format!("{}/stack/web:1.0", reg.host))
        .image("db", &format!("{}/stack/db:2.0", reg.host))
        .project();
    p.bale(&["lock"]).ok();
    p.bale(&["outdated"]).ok();

    // Other content pushed to the same tag.
    let second = reg.push_app("stack/web", "1.0", "bin/app", b"release two");
    assert_ne!(first.manifest, second.manifest);
    // The lock stays on the locked digest...
    p.bale(&["lock", "--check"]).ok();
    assert_eq!(
        lock_entry(&p, "web")["digest"].as_str(),
        Some(first.manifest.as_str())
    );
    // ...and outdated says that the tag moved, and where to.
    let run = p.bale(&["outdated", "--json"]);
    run.fails(exit::LOCK_OUT_OF_DATE);
    let v: serde_json::Value =
        serde_json::from_str(&run.stdout()).unwrap_or_else(|e| panic!("{e}\n{}", run.describe()));
    assert_eq!(v["ok"], false);
    let web = &v["services"][1];
    assert_eq!(web["service"], "web", "{v}");
    assert_eq!(web["status"], "moved", "{v}");
    assert_eq!(web["locked"].as_str(), Some(first.manifest.as_str()));
    assert_eq!(web["current"].as_str(), Some(second.manifest.as_str()));
    assert_eq!(v["services"][0]["status"], "current", "{v}");
    let human = p.bale(&["outdated"]);
    human.fails(exit::LOCK_OUT_OF_DATE);
    assert!(
        human.stderr().contains("MOVED    web"),
        "{}",
        human.describe()
    );
    // Updating takes the new content; then nothing is outdated.
    p.bale(&["lock", "--update", "web"]).ok();
    p.bale(&["outdated"]).ok();
}
