//! The demo bundle's bytes, pinned. Two builds already agree with each
//! other (tests/bundle.rs); these digests make any change to the bundle
//! format a conscious one: update them together with docs/bundle-format.md.

mod common;

use common::*;

/// SHA-256 of `bale build -f demo/bundle.toml --offline --unsigned`.
const UNSIGNED: &str = "sha256:e0a5cc0e7f7f971d7e13b55757fa10e804a25d4a4c29a0e62c3fe5245228ac01";
/// The same, signed with `tests/fixtures/golden-test-only.key` (a key
/// committed for this test only: it signs nothing else).
const SIGNED: &str = "sha256:575fde4daec28ee457fa6b28ce97cfc96f71b0cf417d7d3734dbef34646ea3cf";
/// SHA-256 of the signed manifest inside both.
const MANIFEST: &str = "sha256:23a805a3d20226fdbe37b079f701b55d33dc6bc8b2c27f6889d65c5efc1eac3a";

#[test]
fn the_demo_bundle_has_the_committed_bytes() {
    let p = Project::demo();
    let key = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/golden-test-only.key");
    for (args, want) in [
        (vec!["--unsigned"], UNSIGNED),
        (vec!["--sign-key", key.to_str().unwrap_or_default()], SIGNED),
    ] {
        let mut cmd = vec![
            "build",
            "-f",
            "demo/bundle.toml",
            "--offline",
            "-o",
            "golden.bale",
            "--json",
        ];
        cmd.extend(args);
        let run = p.bale(&cmd);
        run.ok();
        let v: serde_json::Value = serde_json::from_str(&run.stdout())
            .unwrap_or_else(|e| panic!("{e}\n{}", run.describe()));
        let bytes = std::fs::read(p.path().join("golden.bale")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            sha(&bytes),
            want,
            "the demo bundle's bytes changed: if the format changed on purpose, record it in docs/bundle-format.md and update this digest"
        );
        assert_eq!(v["sha256"], want);
        assert_eq!(v["manifest"], MANIFEST);
    }
}
