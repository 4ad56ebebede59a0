//! The operator's path, as a newcomer walks it with only the README: repair
//! by re-installing, audit after a non-Docker install, messages that say
//! what to do, one JSON result on every outcome, consistent exit codes.

mod common;

use bale::error::exit;

use common::*;

/// The last JSON value on stdout, which may be pretty-printed.
fn last_json(run: &Run) -> serde_json::Value {
    let out = run.stdout();
    let start = out
        .rfind("\n{")
        .map(|i| i + 1)
        .or_else(|| out.find('{'))
        .unwrap_or_else(|| panic!("no JSON on stdout\n{}", run.describe()));
    serde_json::from_str(out[start..].trim()).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout does not end with one JSON object\n{}",
            run.describe()
        )
    })
}

#[test]
fn audit_after_a_runtime_none_install_uses_the_recorded_runtime() {
    let p = Project::demo();
    p.build_demo("demo.bale");
    p.install_none("demo.bale", "target").ok();
    // No Docker here: defaulting to it would fail.
    let run = p.bale_env(
        &["audit", "--target", "target", "--json"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    run.ok();
    let v = last_json(&run);
    assert_eq!(v["runtime"], "none", "{}", run.describe());
    assert_eq!(v["ok"], true);
    assert!(
        v["images"]
            .as_array()
            .is_some_and(|a| a.iter().all(|i| i["status"] == "skipped")),
        "{v}"
    );
    let human = p.bale(&["audit", "--target", "target"]);
    human.ok();
    assert!(
        human.stderr().contains(": 0 images (2 skipped"),
        "skipped images are not counted as checked\n{}",
        human.describe()
    );
}

#[test]
fn reinstalling_the_same_bundle_restores_drifted_files_and_keeps_env() {
    let p = Project::demo();
    p.build_demo("demo.bale");
    p.install_none("demo.bale", "target").ok();
    let files: Vec<String> = walkdir::WalkDir::new(p.path().join("target/current/"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && !e.path().to_string_lossy().contains("/.bale/"))
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(files.len() >= 2, "the demo installs files: {files:?}");
    let before: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect();
    std::fs::write(&files[0], "edited\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(&files[1]).unwrap_or_else(|e| panic!("{e}"));
    p.write("target/current/planted.txt", "not signed\n");
    let env_before = format!("{}SITE_SETTING=kept\n", p.read("target/.env"));
    p.write("target/.env", &env_before);

    let audit = p.bale(&["audit", "--target", "target", "--json"]);
    audit.fails(exit::INTEGRITY);
    let v = last_json(&audit);
    let status = |path: &str| {
        v["files"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|f| path.ends_with(f["target"].as_str().unwrap_or("?")))
            })
            .map(|f| f["status"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(status(&files[0]), "modified", "{v}");
    assert_eq!(status(&files[1]), "missing", "{v}");
    assert_eq!(status("planted.txt"), "added", "{v}");

    let run = p.install_none("demo.bale", "target");
    run.ok();
    let err = run.stderr();
    assert!(err.contains("drifted files restored"), "{}", run.describe());
    assert!(err.contains("restored modified"), "{}", run.describe());
    assert!(err.contains("restored missing"), "{}", run.describe());
    assert!(err.contains("restored added"), "{}", run.describe());
    for (f, want) in files.iter().zip(&before) {
        assert_eq!(&std::fs::read_to_string(f).unwrap_or_default(), want, "{f}");
    }
    assert!(!p.path().join("target/current/planted.txt").exists());
    assert_eq!(p.read("target/.env"), env_before, ".env must be left alone");
    p.bale(&["audit", "--target", "target"]).ok();
    // Nothing drifted now: nothing to restore.
    let again = p.install_none("demo.bale", "target");
    again.ok();
    again.says("nothing changed");
}

#[test]
fn messages_say_what_is_wrong_and_what_to_do() {
    let p = Project::demo();
    p.bale(&[
        "build",
        "-f",
        "demo/bundle.toml",
        "--offline",
        "--unsigned",
        "-o",
        "unsigned.bale",
    ])
    .ok();
    // install has no --allow-unsigned: it must not suggest it.
    let run = p.install_none("unsigned.bale", "target");
    run.fails(exit::INTEGRITY);
    run.says("unsigned");
    assert!(
        !run.stderr().contains("pass --allow-unsigned"),
        "{}",
        run.describe()
    );
    assert!(
        !p.path().join("target").exists(),
        "a refused install left debris"
    );

    // A signed bundle, --allow-unsigned and no key: digests checked, signature unchecked.
    p.build_demo("signed.bale");
    let run = p.bale(&["verify", "signed.bale", "--allow-unsigned"]);
    run.ok();
    run.says("not checked");
    assert!(!run.stderr().contains("not intact"), "{}", run.describe());

    // A missing --public-key is a usage error naming the flag.
    let run = p.bale(&["verify", "signed.bale"]);
    run.fails(exit::USAGE);
    run.says("--public-key");

    // A target that is a file.
    p.write("afile", "x\n");
    let run = p.install_none("signed.bale", "afile");
    assert_ne!(run.code(), 0);
    run.says("is a file, not a directory");
    assert_eq!(p.read("afile"), "x\n");
}

#[test]
fn every_json_command_ends_with_one_result_object_on_failure() {
    let p = Project::demo();
    p.build_demo("demo.bale");
    let port = free_port();
    p.write(
        "bundle.toml",
        &format!(
            "[bundle]\nname = \"x\"\nversion = \"1.0.0\"\n[images]\nweb = \"127.0.0.1:{port}/stack/web:1\"\n"
        ),
    );
    for (args, code) in [
        (vec!["fetch", "--json"], 5),
        (
            vec!["verify", "missing.bale", "--allow-unsigned", "--json"],
            3,
        ),
        (vec!["inspect", "missing.bale", "--json"], 3),
        (
            vec![
                "install",
                "missing.bale",
                "--public-key",
                "keys/k.pub",
                "--target",
                "t",
                "--json",
            ],
            3,
        ),
        (vec!["audit", "--target", "nowhere", "--json"], 1),
        (vec!["outdated", "--json"], 4),
    ] {
        let run = p.bale(&args);
        run.fails(code);
        let v = last_json(&run);
        assert_eq!(v["ok"], false, "{}", run.describe());
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
        assert_eq!(v["exit_code"], code, "{v}");
    }
    let run = p.bale(&["fetch", "--json"]);
    let last = run.stdout().lines().last().unwrap_or_default().to_owned();
    let v: serde_json::Value =
        serde_json::from_str(&last).unwrap_or_else(|e| panic!("{e}: {last}"));
    assert_eq!(v["event"], "summary", "{v}");
    // And a success ends with ok: true.
    let run = p.bale(&[
        "verify",
        "demo.bale",
        "--public-key",
        "keys/k.pub",
        "--json",
    ]);
    run.ok();
    assert_eq!(last_json(&run)["ok"], true);
}

#[test]
fn lock_names_every_unreachable_service_and_every_mirror_tried() {
    let p = Project::new("");
    let (reg, mirror) = (free_port(), free_port());
    p.write(
        "bundle.toml",
        &format!(
            "[bundle]\nname = \"x\"\nversion = \"1.0.0\"\n[images]\nweb = \"127.0.0.1:{reg}/stack/web:1\"\napi = \"127.0.0.1:{reg}/stack/api:1\"\n"
        ),
    );
    let run = p.bale(&[
        "lock",
        "--mirror",
        &format!("127.0.0.1:{reg}=127.0.0.1:{mirror}"),
    ]);
    run.fails(exit::REGISTRY);
    let err = run.stderr();
    for needle in [
        "service `web`".to_owned(),
        "service `api`".to_owned(),
        format!("127.0.0.1:{mirror}:"),
        format!("127.0.0.1:{reg}:"),
        "--mirror".to_owned(),
        "config/bale.toml".to_owned(),
    ] {
        assert!(
            err.contains(&needle),
            "missing {needle:?}\n{}",
            run.describe()
        );
    }
}

#[test]
fn the_same_condition_gets_the_same_exit_code_everywhere() {
    let p = Project::demo();
    for args in [
        vec!["verify", "missing.bale", "--public-key", "keys/k.pub"],
        vec!["inspect", "missing.bale"],
        vec![
            "install",
            "missing.bale",
            "--public-key",
            "keys/k.pub",
            "--target",
            "t",
        ],
        vec![
            "audit",
            "missing.bale",
            "--public-key",
            "keys/k.pub",
            "--target",
            "t",
        ],
    ] {
        let run = p.bale(&args);
        assert_eq!(run.code(), 3, "a missing bundle file\n{}", run.describe());
        run.says("missing.bale");
    }
}

#[test]
fn bundle_toml_mistakes_are_named_where_they_are() {
    let p = Project::new("");
    let head = "[bundle]\nname = \"x\"\nversion = \"1.0.0\"\n";
    for (body, want) in [
        (
            format!("{head}[images]\nweb = \"nginx:1\"\nweb = \"nginx:2\"\n"),
            "bundle.toml:6:1: duplicate key `web` in [images]",
        ),
        (format!("{head}\n[images]\n"), "bundle.toml:5:1: [images] is empty"),
        (
            format!("name = 1\n{head}"),
            "bundle.toml:",
        ),
        (
            "[bundle]\nname = \"x\"\nversion = \"1.0.0\"\nplatforms = [\"linux/x86_64\"]\n[images]\nweb = \"nginx:1\"\n".to_owned(),
            "write `linux/amd64`",
        ),
    ] {
        p.write("bundle.toml", &body);
        let run = p.bale(&["lock", "--check"]);
        run.fails(exit::INVALID_INPUT);
        assert!(run.stderr().contains(want), "want {want:?}\n{}", run.describe());
    }
}

#[test]
fn build_into_a_missing_directory_fails_before_fetching() {
    let p = Project::new("");
    let port = free_port();
    p.write(
        "bundle.toml",
        &format!("[bundle]\nname = \"x\"\nversion = \"1.0.0\"\n[images]\nweb = \"127.0.0.1:{port}/a/b:1\"\n"),
    );
    let started = std::time::Instant::now();
    let run = p.bale(&["build", "--unsigned", "-o", "no/such/dir/x.bale"]);
    run.fails(exit::FAILURE);
    run.says("no/such/dir");
    run.says("must exist");
    assert!(!p.path().join("bundle.lock").exists(), "it locked first");
    assert!(
        started.elapsed().as_secs() < 5,
        "it tried the registry first"
    );
}

#[test]
fn file_flag_appears_only_where_bundle_toml_is_read() {
    let p = Project::new("");
    for (cmd, has) in [
        ("lock", true),
        ("fetch", true),
        ("build", true),
        ("outdated", true),
        ("verify", false),
        ("install", false),
        ("audit", false),
        ("inspect", false),
        ("keygen", false),
    ] {
        let run = p.bale(&[cmd, "--help"]);
        run.ok();
        assert_eq!(run.stdout().contains("--file"), has, "{}", run.describe());
    }
}

#[test]
fn completions_and_the_man_page_come_from_the_same_definitions() {
    let p = Project::new("");
    for (shell, marker) in [
        ("bash", "_bale()"),
        ("zsh", "#compdef bale"),
        ("fish", "complete -c bale"),
    ] {
        let run = p.bale(&["completions", shell]);
        run.ok();
        let out = run.stdout();
        assert!(out.contains(marker), "{shell}\n{}", run.describe());
        // Every command and a flag of each are completed.
        for word in ["outdated", "install", "public-key", "allow-downgrade"] {
            assert!(out.contains(word), "{shell} lacks {word}");
        }
    }
    let man = p.bale(&["man"]);
    man.ok();
    let page = man.stdout();
    assert!(
        page.starts_with(".ie") || page.contains(".TH bale"),
        "{}",
        &page[..200.min(page.len())]
    );
    for word in ["outdated", "install", "audit", "completions"] {
        assert!(page.contains(word), "man page lacks {word}");
    }
}

/// The shell block of docs/runbook.md that follows the line starting with
/// `heading`.
fn runbook_block(heading: &str) -> String {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/runbook.md"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("docs/runbook.md has no `{heading}`"));
    let rest = &doc[start..];
    let open = rest.find("```sh\n").map(|i| i + 6).unwrap_or(0);
    let close = rest[open..].find("```").map_or(rest.len(), |i| open + i);
    rest[open..close].to_owned()
}

/// Runs a runbook block with `sh -e` and bale first on PATH, BUNDLE, KEY
/// and DIR set to the demo's; returns its output.
fn run_block(p: &Project, block: &str, env: &[(&str, &str)]) -> String {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_bale"))
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let out = std::process::Command::new("sh")
        .args(["-e", "-c", block])
        .current_dir(p.path())
        .env(
            "PATH",
            format!("{bin}:{}", std::env::var("PATH").unwrap_or_default()),
        )
        .env("HOME", p.path())
        .env("BALE_STORE", &p.store)
        .env("BUNDLE", "demo.bale")
        .env("KEY", "keys/k.pub")
        .env("DIR", p.path().join("srv").display().to_string())
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("sh: {e}"));
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the runbook's block failed:\n{block}\n{said}"
    );
    said
}

/// The demo, its web port moved to a free one, built as `demo.bale`, and
/// an empty `site.toml` (the demo declares no values).
fn runbook_demo() -> Project {
    let p = Project::demo();
    let compose = p.read("demo/compose.yml").replace(
        "127.0.0.1:8080:8080",
        &format!("127.0.0.1:{}:8080", free_port()),
    );
    p.write("demo/compose.yml", &compose);
    p.build_demo("demo.bale");
    p.write("site.toml", "");
    p
}

#[test]
fn the_runbooks_first_hour_works_as_written_with_no_runtime() {
    let p = runbook_demo();
    let said = run_block(
        &p,
        &runbook_block("With no container runtime on this host"),
        &[],
    );
    assert!(said.contains("would be installed"), "{said}");
    assert!(said.contains("already installed"), "{said}");
}

#[test]
fn the_runbooks_first_hour_works_as_written_with_docker() {
    let p = runbook_demo();
    let docker = common::daemons::Dockerd::start();
    let said = run_block(
        &p,
        &runbook_block("With Docker (the default runtime)"),
        &[("DOCKER_HOST", docker.host.as_str())],
    );
    assert!(said.contains("already installed"), "{said}");
}

#[test]
fn the_runbooks_first_hour_works_as_written_with_podman() {
    let p = runbook_demo();
    let podman = common::daemons::Podman::new();
    let env = podman.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let said = run_block(
        &p,
        &runbook_block("With Podman (and `podman-compose`)"),
        &env,
    );
    assert!(said.contains("already installed"), "{said}");
}
