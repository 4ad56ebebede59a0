//! Regressions from a new operator's and a release engineer's first hour
//! (part 11): what `--json` promises on usage errors, messages that name
//! the command's own choices, counts that agree, files as readable as the
//! bundle they belong to.

mod common;

use std::os::unix::fs::PermissionsExt as _;

use bale::error::exit;
use common::*;

#[test]
fn json_usage_errors_still_end_with_a_result_object() {
    let p = Project::new("");
    let r = p.bale(&["verify", "--json", "nothere.bale"]);
    r.fails(exit::USAGE);
    let v = r.summary();
    assert_eq!(v["ok"], false, "{}", r.describe());
    assert_eq!(v["exit_code"], exit::USAGE, "{}", r.describe());
}

#[test]
fn split_without_a_key_words_its_own_choice_and_parts_are_as_readable_as_the_bundle() {
    let p = Project::demo();
    let bundle = p.build_demo("demo.bale");
    let r = p.bale(&["split", "demo.bale", "--size", "1M"]);
    r.fails(exit::USAGE).says("or --unsigned, to sign nothing");
    assert!(!r.stderr().contains("to build"), "{}", r.describe());
    p.bale(&[
        "split",
        "demo.bale",
        "--size",
        "1M",
        "--sign-key",
        "keys/k.sec",
    ])
    .ok();
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    };
    let bundle_mode = mode(&bundle);
    let parts: Vec<_> = std::fs::read_dir(p.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("demo.bale."))
        .collect();
    assert!(parts.len() >= 2, "{parts:?}");
    for part in parts {
        assert_eq!(mode(&part.path()), bundle_mode, "{}", part.path().display());
    }
}

#[test]
fn build_and_verify_count_the_same_entries() {
    let p = Project::demo();
    let r = p.bale(&[
        "build",
        "-f",
        "demo/bundle.toml",
        "--offline",
        "--sign-key",
        "keys/k.sec",
        "-o",
        "demo.bale",
    ]);
    r.ok();
    let count = |text: &str, before: &str| {
        text.split(before)
            .next()
            .and_then(|h| h.rsplit([' ', '(']).next())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("no count in {text}"))
    };
    let built = count(&r.stderr(), " entries)");
    let v = p.bale(&["verify", "demo.bale", "--public-key", "keys/k.pub"]);
    v.ok();
    assert_eq!(built, count(&v.stderr(), " entries ("), "{}", v.describe());
}

#[test]
fn an_unquoted_version_suggests_quotes() {
    let p = Project::new("[bundle]\nname = \"x\"\nversion = 1.0.0\n");
    p.bale(&["lock"])
        .fails(exit::INVALID_INPUT)
        .says("bundle.toml:3:")
        .says("write a string in quotes: version = \"1.0.0\"");
}

#[test]
fn a_dry_run_says_what_would_happen_in_lowercase() {
    let p = Project::demo();
    p.build_demo("demo.bale");
    p.install_none_with("demo.bale", "t", &["--dry-run"])
        .ok()
        .says("would be installed (nothing was changed)");
}

#[test]
fn a_missing_input_file_is_the_same_exit_code_in_every_command() {
    let p = Project::demo();
    p.build_demo("demo.bale");
    for args in [
        "verify nothere.bale --public-key keys/k.pub",
        "verify demo.bale --public-key keys/nothere.pub",
        "install nothere.bale --public-key keys/k.pub --target t --runtime none",
        "install demo.bale --public-key keys/nothere.pub --target t --runtime none",
        "audit nothere.bale --public-key keys/k.pub --target t --runtime none",
        "serve nothere.bale --public-key keys/k.pub",
        "serve demo.bale --public-key keys/nothere.pub",
        "push nothere.bale --public-key keys/k.pub --to 127.0.0.1:9/x",
        "split nothere.bale --unsigned",
        "split demo.bale --sign-key keys/nothere.sec",
        "inspect nothere.bale",
        "sbom nothere.bale --public-key keys/k.pub",
        "sbom demo.bale --public-key keys/nothere.pub",
        "build -f nothere.toml --unsigned",
        "build -f demo/bundle.toml --offline --sign-key keys/nothere.sec",
        "lock -f nothere.toml",
    ] {
        let args: Vec<&str> = args.split(' ').collect();
        let r = p.bale(&args);
        r.fails(exit::INVALID_INPUT).says("nothere");
    }
    assert!(!p.path().join("t").exists());
}

#[test]
fn inputs_that_are_no_bundle_say_what_they_are_and_what_to_pass() {
    let p = Project::demo();
    p.build_demo("demo.bale");
    p.bale(&[
        "split",
        "demo.bale",
        "--size",
        "1M",
        "--sign-key",
        "keys/k.sec",
    ])
    .ok();
    std::fs::rename(p.path().join("demo.bale"), p.path().join("whole.bale"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir(p.path().join("out")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(
        p.path().join("whole.bale"),
        p.path().join("out/x-1.0.0.bale"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    p.write("empty.bale", "");
    for (input, says) in [
        ("out", "a directory; pass a bundle file in it: x-1.0.0.bale"),
        ("empty.bale", "an empty file"),
        (
            "demo.bale.parts",
            "the part list of a split bundle; pass its first part, demo.bale.001",
        ),
        (
            "demo.bale",
            "it does not exist, but its parts do: pass demo.bale.001",
        ),
    ] {
        for args in [
            vec!["verify", input, "--public-key", "keys/k.pub"],
            vec!["inspect", input],
            vec![
                "install",
                input,
                "--public-key",
                "keys/k.pub",
                "--target",
                "t",
                "--runtime",
                "none",
            ],
        ] {
            let r = p.bale(&args);
            r.fails(exit::INVALID_INPUT).says(says);
            assert!(!r.stderr().contains("signature failed"), "{}", r.describe());
        }
    }
    let r = p.bale(&["verify", "out", "--public-key", "keys/k.pub", "--json"]);
    r.fails(exit::INVALID_INPUT);
    assert_eq!(r.summary()["ok"], false);
    // The parts themselves verify in place.
    p.bale(&["verify", "demo.bale.001", "--public-key", "keys/k.pub"])
        .ok();
}

#[test]
fn install_defaults_to_the_runtime_the_release_recorded_and_a_dry_run_needs_no_daemon() {
    let p = Project::demo();
    p.build_demo("demo.bale");
    let no_daemon = [("DOCKER_HOST", "unix:///nonexistent/docker.sock")];
    // A plan even where no Docker daemon answers, saying what it could not check.
    let r = p.bale_env(
        &[
            "install",
            "demo.bale",
            "--public-key",
            "keys/k.pub",
            "--target",
            "t",
            "--dry-run",
        ],
        &no_daemon,
    );
    r.ok()
        .says("would be installed")
        .says("not checked: docker did not answer");
    assert!(!p.path().join("t").exists());
    p.install_none("demo.bale", "t").ok();
    // The runbook's repair: the same install again, no --runtime.
    let again = [
        "install",
        "demo.bale",
        "--public-key",
        "keys/k.pub",
        "--target",
        "t",
    ];
    p.bale_env(&again, &no_daemon)
        .ok()
        .says("already installed");
}

#[test]
fn every_command_has_a_man_page_with_its_flags_an_example_and_the_exit_codes() {
    let p = Project::new("");
    p.bale(&["man", "--dir", "man"]).ok();
    let top = p.read("man/bale.1");
    let mut referenced = 0;
    for line in top.lines().filter(|l| l.contains("(1)")) {
        // `bale\-lock(1)`: each page bale(1) refers to was written.
        if let Some(name) = line.split("(1)").next().and_then(|l| l.rsplit(' ').next()) {
            let file = format!(
                "man/{}.1",
                name.replace("\\-", "-").trim_start_matches("\\fB")
            );
            assert!(
                p.path().join(&file).is_file(),
                "bale(1) refers to a missing {file}"
            );
            referenced += 1;
        }
    }
    assert!(referenced >= 14, "{top}");
    let lock = p.read("man/bale-lock.1");
    for want in [
        "\\-\\-update",
        "\\-\\-check",
        "Examples:",
        "Exit status:",
        "bundle.lock missing or out of date",
    ] {
        assert!(lock.contains(want), "bale-lock(1) lacks {want}:\n{lock}");
    }
    let printed = p.bale(&["man", "lock"]);
    printed.ok();
    assert_eq!(printed.stdout(), lock);
    p.bale(&["man", "nothing"]).fails(exit::USAGE);
}

#[test]
fn lock_with_no_network_fails_fast_with_one_line_per_registry() {
    let p = Project::new(
        "[bundle]\nname = \"off\"\nversion = \"1.0.0\"\n[images]\nredis = \"docker.io/library/redis:8.2-alpine\"\ncaddy = \"caddy:2.10\"\nweb = \"ghcr.io/acme/web:1.0\"\n",
    );
    // A network namespace of its own has no interface but a loopback that
    // is down: no name resolves, and no packet can leave.
    let started = std::time::Instant::now();
    let out = std::process::Command::new("unshare")
        .args(["-n", env!("CARGO_BIN_EXE_bale"), "lock"])
        .current_dir(p.path())
        .env("HOME", p.path())
        .env("BALE_STORE", &p.store)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("unshare: {e}"));
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(exit::REGISTRY), "{err}");
    assert!(
        err.contains("cannot resolve registry-1.docker.io (no network, or no DNS for it): services caddy, redis"),
        "{err}"
    );
    assert!(err.contains("cannot resolve ghcr.io"), "{err}");
    assert!(
        !err.contains("gave up after"),
        "a name that does not resolve was retried: {err}"
    );
    // Before: six tries per image with backoff, tens of seconds.
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
}

/// `ntia-checker`'s verdict on an SPDX file: conformant, and what it said.
fn ntia(file: &std::path::Path) -> (bool, String) {
    let out = std::process::Command::new("ntia-checker")
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("ntia-checker (PyPI ntia-conformance-checker): {e}"));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    (said.contains("Conformant: True"), said)
}

#[test]
fn every_sbom_package_names_its_supplier_and_the_ntia_checker_agrees() {
    // An image whose config names its vendor, pushed to a real registry.
    let reg = Registry::start();
    let layer = gzip_layer(&[("hello", b"hi\n")]);
    let config = format!(
        "{{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{{\"Labels\":{{\"org.opencontainers.image.vendor\":\"ACME Widgets GmbH\"}}}},\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[\"{}\"]}}}}",
        layer.diff_id
    );
    let config_digest = reg.push_blob("acme/app", config.as_bytes());
    let layer_digest = reg.push_blob("acme/app", &layer.blob);
    let manifest = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{OCI_MANIFEST}\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{config_digest}\",\"size\":{}}},\"layers\":[{{\"mediaType\":\"{}\",\"digest\":\"{layer_digest}\",\"size\":{}}}]}}",
        config.len(),
        layer.media_type,
        layer.blob.len()
    );
    reg.push_manifest("acme/app", "1.0", OCI_MANIFEST, manifest.as_bytes());
    reg.push_app("plain/tool", "2.0", "t", b"t\n");
    let p = Project::new(&format!(
        "[bundle]\nname = \"sup\"\nversion = \"1.0.0\"\nsupplier = \"Example Site Operations\"\nplatforms = [\"linux/amd64\"]\n[images]\napp = \"{0}/acme/app:1.0\"\ntool = \"{0}/plain/tool:2.0\"\n",
        reg.host
    ));
    p.keygen();
    p.bale_env(
        &["lock"],
        &[("BALE_INSECURE_REGISTRIES", reg.host.as_str())],
    )
    .ok();
    p.bale_env(
        &[
            "build",
            "--locked",
            "--sign-key",
            "keys/k.sec",
            "-o",
            "sup.bale",
        ],
        &[("BALE_INSECURE_REGISTRIES", reg.host.as_str())],
    )
    .ok();
    let sbom = p.bale(&["sbom", "sup.bale", "--public-key", "keys/k.pub"]);
    sbom.ok();
    let file = p.path().join("sbom.json");
    std::fs::write(&file, &sbom.out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let doc: serde_json::Value = serde_json::from_slice(&sbom.out.stdout).unwrap_or_default();
    let supplier = |name: &str| {
        doc["packages"]
            .as_array()
            .and_then(|ps| {
                ps.iter()
                    .find(|p| p["name"].as_str().is_some_and(|n| n.contains(name)))
            })
            .map(|p| p["supplier"].clone())
            .unwrap_or_default()
    };
    assert_eq!(supplier("sup"), "Organization: Example Site Operations");
    assert_eq!(supplier("acme/app"), "Organization: ACME Widgets GmbH");
    assert_eq!(
        supplier("plain/tool"),
        format!("Organization: {}/plain", reg.host).as_str()
    );
    let (conformant, said) = ntia(&file);
    assert!(conformant, "{said}");
}

/// A two-platform OCI image (amd64 and arm64) built into `multi.bale`,
/// extracted into `x/`: the project, the registry, and the two pushes.
fn two_platform_bundle() -> (Project, Registry, Pushed, Pushed) {
    let reg = Registry::start();
    let amd64 = reg.push_image(
        "two/app",
        None,
        "linux",
        "amd64",
        None,
        &[gzip_layer(&[("bin/app", b"amd64\n")])],
        false,
    );
    let arm64 = reg.push_image(
        "two/app",
        None,
        "linux",
        "arm64",
        None,
        &[gzip_layer(&[("bin/app", b"arm64\n")])],
        false,
    );
    reg.push_index(
        "two/app",
        "1.0",
        &[
            (
                amd64.clone(),
                r#"{"os":"linux","architecture":"amd64"}"#.into(),
                None,
            ),
            (
                arm64.clone(),
                r#"{"os":"linux","architecture":"arm64"}"#.into(),
                None,
            ),
        ],
        false,
    );
    let p = Project::new(&format!(
        "[bundle]\nname = \"two\"\nversion = \"1.0.0\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n[images]\napp = \"{}/two/app:1.0\"\n",
        reg.host
    ));
    p.keygen();
    p.bale(&["lock"]).ok();
    p.bale(&["build", "--sign-key", "keys/k.sec", "-o", "multi.bale"])
        .ok();
    std::fs::create_dir(p.path().join("x")).unwrap_or_else(|e| panic!("{e}"));
    let ok = std::process::Command::new("tar")
        .args(["-xf", "multi.bale", "-C", "x"])
        .current_dir(p.path())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "tar -x");
    (p, reg, amd64, arm64)
}

fn run_ok(program: &str, args: &[&str], dir: &std::path::Path) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{program} {args:?}: {said}");
    said
}

#[test]
fn a_two_platform_image_is_read_by_skopeo_umoci_ctr_and_docker_load() {
    let (p, reg, amd64, arm64) = two_platform_bundle();
    let name = format!("{}/two/app:1.0", reg.host);
    // One name, one index of the two platforms; one name per platform.
    let refs = run_ok("umoci", &["ls", "--layout", "x"], p.path());
    let refs: Vec<&str> = refs.lines().collect();
    assert_eq!(
        refs,
        [
            name.clone(),
            format!("{name}-linux-amd64"),
            format!("{name}-linux-arm64")
        ],
        "{refs:?}"
    );
    for (platform, pushed, content) in [("amd64", &amd64, "amd64\n"), ("arm64", &arm64, "arm64\n")]
    {
        let dest = format!("unpacked-{platform}");
        run_ok(
            "umoci",
            &[
                "unpack",
                "--rootless",
                "--image",
                &format!("x:{name}-linux-{platform}"),
                &dest,
            ],
            p.path(),
        );
        assert_eq!(p.read(&format!("{dest}/rootfs/bin/app")), content);
        // skopeo resolves the name to the platform it is asked for.
        let inspected = run_ok(
            "skopeo",
            &[
                "--override-arch",
                platform,
                "inspect",
                &format!("oci:x:{name}"),
            ],
            p.path(),
        );
        let v: serde_json::Value = serde_json::from_str(&inspected).unwrap_or_default();
        assert_eq!(v["Architecture"], platform, "{inspected}");
        assert_eq!(v["Layers"][0], pushed.layers[0].as_str(), "{inspected}");
    }
    // ctr imports the name with both platforms; docker load the first.
    let ctr = common::daemons::Containerd::start();
    let bundle = p.path().join("multi.bale").display().to_string();
    let out = ctr.ctr("bale", &["images", "import", "--all-platforms", &bundle]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed =
        String::from_utf8_lossy(&ctr.ctr("bale", &["images", "ls", "-q"]).stdout).into_owned();
    assert!(listed.lines().any(|l| l == name), "{listed}");
    let docker = common::daemons::Dockerd::start();
    let out = docker.docker(&["load", "-i", &bundle]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = docker.docker(&["image", "inspect", "--format", "{{.Id}}", &name]);
    assert_eq!(String::from_utf8_lossy(&id.stdout).trim(), amd64.config);
}
