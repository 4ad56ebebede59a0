//! The demo bundle's bytes, pinned. Two builds already agree with each
//! other (tests/bundle.rs); these digests make any change to the bundle
//! format a conscious one: update them together with docs/bundle-format.md.

mod common;

use common::*;

/// SHA-256 of `bale build -f demo/bundle.toml --offline --unsigned`.
const UNSIGNED: &str = "sha256:161ff7a9083e02cdbf157f35df846443fc8d1179fee536057d14493124c7898b";
/// The same, signed with `tests/fixtures/golden-test-only.key` (a key
/// committed for this test only: it signs nothing else).
const SIGNED: &str = "sha256:8d895829c1a35ab920a4f09e9bdebbad94e176b8e5e589f99699af5facecb0f3";
/// SHA-256 of the signed manifest inside both.
const MANIFEST: &str = "sha256:cad4bdbad3a9b3d2cbc88f8203c11334026551ccafa15ca6c036cd74c57125dc";

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
