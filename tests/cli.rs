//! The command line: errors a user sees, and the offline demo.

mod common;

use bale::error::exit;

use common::*;

const HEAD: &str = "[bundle]\nname = \"t\"\nversion = \"1.0.0\"\n";

#[test]
fn invalid_bundle_toml_names_file_line_and_column_with_exit_3() {
    for (body, want) in [
        (
            format!("{HEAD}colour = \"red\"\n[images]\nweb = \"nginx:1\"\n"),
            "bundle.toml:4:1: unknown field `colour`",
        ),
        (
            format!("{HEAD}[images]\nweb = \"Nginx:1\"\n"),
            "bundle.toml:5:7: image of service `web`: invalid repository name",
        ),
        (
            format!("{HEAD}[images]\nweb = \"nginx\"\n"),
            "bundle.toml:5:7: image of service `web`: `nginx` has no tag",
        ),
        (
            format!(
                "{HEAD}[images]\nweb = \"nginx:1\"\n[[overlays]]\nsource = \"missing.conf\"\ntarget = \"a\"\n"
            ),
            "bundle.toml:7:10: overlay source",
        ),
        (
            format!(
                "{HEAD}[images]\nweb = \"nginx:1\"\n[[overlays]]\nsource = \"bundle.toml\"\ntarget = \"../etc/passwd\"\n"
            ),
            "bundle.toml:8:10: target `../etc/passwd` contains `..`",
        ),
        (
            format!(
                "{HEAD}[images]\nweb = \"nginx:1\"\n[[overlays]]\nsource = \"bundle.toml\"\ntarget = \"/etc/passwd\"\n"
            ),
            "bundle.toml:8:10: target `/etc/passwd` is absolute",
        ),
        ("[bundle\n".to_owned(), "bundle.toml:1:"),
    ] {
        let p = Project::new(&body);
        let run = p.bale(&["lock"]);
        run.fails(exit::INVALID_INPUT);
        assert!(
            run.stderr().contains(want),
            "want `{want}`\n{}",
            run.describe()
        );
    }
}

#[test]
fn symlinked_overlay_source_is_refused() {
    let p = Project::new(&format!(
        "{HEAD}[images]\nweb = \"nginx:1\"\n[[overlays]]\nsource = \"link.conf\"\ntarget = \"a.conf\"\n"
    ));
    p.write("real.conf", "x");
    std::os::unix::fs::symlink(p.path().join("real.conf"), p.path().join("link.conf"))
        .unwrap_or_else(|e| panic!("{e}"));
    let run = p.bale(&["lock"]);
    run.fails(exit::INVALID_INPUT);
    assert!(run.stderr().contains("symbolic link"), "{}", run.describe());
}

#[test]
fn bad_lock_file_is_named_with_line_and_column() {
    let p = Project::new(&format!("{HEAD}[images]\nweb = \"nginx:1\"\n"));
    p.write(
        "bundle.lock",
        "version = 1\n[[image]]\nservice = \"web\"\nbogus = 1\n",
    );
    let run = p.bale(&["lock", "--check"]);
    run.fails(exit::INVALID_INPUT);
    assert!(run.stderr().contains("bundle.lock:"), "{}", run.describe());
    p.write("bundle.lock", "version = 9\n");
    let run = p.bale(&["lock", "--check"]);
    run.fails(exit::INVALID_INPUT);
    assert!(
        run.stderr().contains("version 9 is not supported"),
        "{}",
        run.describe()
    );
}

#[test]
fn demo_locks_and_fetches_offline_from_its_oci_layout() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let p = Project::new("");
    // A copy of the demo, in a fresh directory: nothing may depend on the checkout path.
    copy_dir(&root.join("demo"), &p.path().join("demo"));
    let committed = p.read("demo/bundle.lock");
    let run = p.bale(&["lock", "-f", "demo/bundle.toml", "--check"]);
    run.ok();
    p.bale(&["lock", "-f", "demo/bundle.toml", "--update"]).ok();
    assert_eq!(
        p.read("demo/bundle.lock"),
        committed,
        "the committed demo lock is stale"
    );
    let run = p.bale(&["fetch", "-f", "demo/bundle.toml", "--locked", "--json"]);
    run.ok();
    assert_eq!(run.summary()["blobs"], 6, "{}", run.describe());
    assert!(p.store_blobs().iter().all(|(_, ok)| *ok));
    assert_eq!(p.store_blobs().len(), 6);
}

#[test]
fn corrupt_blob_in_a_local_layout_is_refused() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let p = Project::new("");
    copy_dir(&root.join("demo"), &p.path().join("demo"));
    let layer = p
        .path()
        .join("demo/images/blobs/sha256")
        .read_dir()
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .max_by_key(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .map(|e| e.path())
        .unwrap_or_else(|| panic!("no blobs"));
    let mut bytes = std::fs::read(&layer).unwrap_or_default();
    bytes[1000] ^= 0x40;
    std::fs::write(&layer, bytes).unwrap_or_else(|e| panic!("{e}"));
    let run = p.bale(&["fetch", "-f", "demo/bundle.toml", "--locked"]);
    run.fails(exit::INTEGRITY);
    let name = layer
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert!(
        run.stderr().contains(&name) && run.stderr().contains("localhost/bale-demo/"),
        "{}",
        run.describe()
    );
    assert!(!p.store_blobs().iter().any(|(d, _)| d.ends_with(&name)));
}

#[test]
fn help_lists_the_commands() {
    let p = Project::new("");
    let run = p.bale(&["--help"]);
    run.ok();
    for cmd in ["lock", "fetch"] {
        assert!(run.stdout().contains(cmd), "{}", run.describe());
    }
    p.bale(&["frobnicate"]).fails(exit::USAGE);
}
