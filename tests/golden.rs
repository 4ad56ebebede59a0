//! The demo bundle's bytes, pinned. Two builds already agree with each
//! other (tests/bundle.rs); these digests make any change to the bundle
//! format a conscious one: update them together with docs/bundle-format.md.

mod common;

use common::*;

/// SHA-256 of `bale build -f demo/bundle.toml --offline --unsigned`.
const UNSIGNED: &str = "sha256:27d9b30bdc3e0de3ff66af003c6fecc24cf49f1a7b19c76da1430a49a3862016";
/// The same, signed with `tests/fixtures/golden-test-only.key` (a key
/// committed for this test only: it signs nothing else).
const SIGNED: &str = "sha256:ada36fad05f228e7d80675e6516f1f4a1e5faa8a08852e16c8203ce9545656ff";
/// SHA-256 of the signed manifest inside both.
const MANIFEST: &str = "sha256:b5e46e7eb0728cb7e9354b03da54e75269d6dec5ba94696ade8c64dd37862547";

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
