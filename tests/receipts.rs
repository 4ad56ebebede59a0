//! Signed audit receipts: `bale audit --receipt` writes an in-toto
//! statement in a DSSE envelope signed with the site's key; `bale
//! verify-receipt` and an independent DSSE implementation (Python's
//! securesystemslib), and openssl on the raw signature, accept it, and
//! refuse it once changed. The audit report names its time, host, target,
//! the scan and where it was written.

mod common;

use std::path::Path;
use std::process::Command;

use bale::error::exit;
use base64::Engine as _;
use common::distros::*;
use serde_json::{Value, json};

fn python_verify(receipt: &Path, public_key: &Path) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/verify_receipt.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(receipt)
        .arg(public_key)
        .output()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// openssl's own Ed25519 check of the envelope's signature over DSSE's
/// pre-authentication encoding, with the key as a PEM file.
fn openssl_verify(dir: &Path, envelope: &Value, public_key: &Path) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = std::fs::read_to_string(public_key).unwrap_or_default();
    let line = text
        .lines()
        .find(|l| !l.starts_with("untrusted comment:") && !l.is_empty())
        .unwrap_or("");
    let raw = b64.decode(line).unwrap_or_default();
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(&raw[10..42]);
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        b64.encode(der)
    );
    std::fs::write(dir.join("pub.pem"), pem).unwrap_or_else(|e| panic!("{e}"));
    let payload = b64
        .decode(envelope["payload"].as_str().unwrap_or(""))
        .unwrap_or_default();
    let ptype = envelope["payloadType"].as_str().unwrap_or("");
    let mut pae = format!("DSSEv1 {} {ptype} {} ", ptype.len(), payload.len()).into_bytes();
    pae.extend_from_slice(&payload);
    std::fs::write(dir.join("pae.bin"), pae).unwrap_or_else(|e| panic!("{e}"));
    let sig = b64
        .decode(envelope["signatures"][0]["sig"].as_str().unwrap_or(""))
        .unwrap_or_default();
    std::fs::write(dir.join("sig.bin"), sig).unwrap_or_else(|e| panic!("{e}"));
    Command::new("openssl")
        .args([
            "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", "pae.bin",
            "-sigfile", "sig.bin",
        ])
        .current_dir(dir)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_receipt_verifies_with_bale_securesystemslib_and_openssl_and_a_tampered_one_with_none() {
    let d = distros();
    let p = &d.p;
    p.bale(&["lock"]).ok();
    p.bale(&["build", "--sign-key", "keys/k.sec", "-o", "e.bale"])
        .ok();
    p.install_none("e.bale", "site").ok();
    // The site's own key, not the release engineer's.
    p.bale(&[
        "keygen",
        "--public-key",
        "keys/site.pub",
        "--secret-key",
        "keys/site.sec",
        "--no-password",
    ])
    .ok();
    let osv = p.path().join("osv");
    std::fs::create_dir_all(&osv).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        osv.join("CVE-2024-2511.json"),
        json!({"schema_version": "1.6.0", "id": "CVE-2024-2511", "modified": "2026-11-30T12:00:00Z",
               "affected": [{"package": {"ecosystem": "Alpine:v3.19", "name": "openssl"},
                             "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.1.4-r6"}]}]}]})
        .to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // Without a key, a receipt cannot be written; nothing is.
    p.bale(&["audit", "--target", "site", "--receipt", "r.json"])
        .fails(exit::USAGE);
    assert!(!p.path().join("r.json").exists());

    let run = p.bale(&[
        "audit",
        "--target",
        "site",
        "--db",
        "osv",
        "--report",
        "audit.html",
        "--receipt",
        "r.json",
        "--sign-key",
        "keys/site.sec",
        "--json",
    ]);
    run.ok();
    let site = std::fs::canonicalize(p.path().join("site")).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        run.stderr().contains("receipt written to /"),
        "{}",
        run.stderr()
    );

    // bale itself.
    let v = p.bale(&[
        "verify-receipt",
        "r.json",
        "--public-key",
        "keys/site.pub",
        "--json",
    ]);
    v.ok();
    let verified: Value = serde_json::from_str(&v.stdout()).unwrap_or_else(|e| panic!("{e}"));
    let st = &verified["statement"];
    assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
    let installed: Value = serde_json::from_str(&p.read("site/current/.bale/release.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    let manifest = installed["manifest_digest"].as_str().unwrap_or_default();
    assert_eq!(
        st["subject"][0]["digest"]["sha256"].as_str(),
        manifest.strip_prefix("sha256:")
    );
    let pred = &st["predicate"];
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    assert_eq!(pred["host"]["hostname"].as_str(), Some(hostname.trim()));
    if let Ok(m) = std::fs::read_to_string("/etc/machine-id")
        && m.trim().len() == 32
    {
        assert_eq!(pred["host"]["machine_id"].as_str(), Some(m.trim()));
    }
    assert_eq!(pred["target"].as_str(), site.to_str());
    assert_eq!(pred["runtime"], "none");
    assert_eq!(pred["result"], "as-signed");
    assert!(
        pred["time"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.len() == 20),
        "{pred}"
    );
    assert_eq!(pred["findings"], json!([]));
    assert_eq!(pred["images"].as_array().map(Vec::len), Some(4));
    let scan_findings = pred["scan"]["images"].to_string();
    assert!(scan_findings.contains("CVE-2024-2511"), "{scan_findings}");
    let text = p.bale(&["verify-receipt", "r.json", "--public-key", "keys/site.pub"]);
    text.ok();
    assert!(
        text.stderr().contains("receipt verified with key") && text.stderr().contains("as-signed"),
        "{}",
        text.stderr()
    );

    // Without bale: securesystemslib's DSSE, and openssl.
    let receipt = p.path().join("r.json");
    let public = p.path().join("keys/site.pub");
    let (ok, said) = python_verify(&receipt, &public);
    assert!(ok, "securesystemslib refuses the receipt:\n{said}");
    assert!(said.contains("audit-receipt/v1"), "{said}");
    let envelope: Value = serde_json::from_str(&p.read("r.json")).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        openssl_verify(p.path(), &envelope, &public),
        "openssl refuses the signature"
    );

    // Tampered: the statement says the host was as signed when it was not
    // (here: the result flipped); every verifier refuses it.
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut statement: Value = serde_json::from_slice(
        &b64.decode(envelope["payload"].as_str().unwrap_or(""))
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    statement["predicate"]["result"] = json!("not-as-signed");
    let mut forged = envelope.clone();
    forged["payload"] = json!(b64.encode(serde_json::to_vec(&statement).unwrap_or_default()));
    std::fs::write(p.path().join("forged.json"), forged.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    p.bale(&[
        "verify-receipt",
        "forged.json",
        "--public-key",
        "keys/site.pub",
    ])
    .fails(exit::INTEGRITY);
    let (ok, said) = python_verify(&p.path().join("forged.json"), &public);
    assert!(!ok, "securesystemslib accepted a tampered receipt:\n{said}");
    assert!(
        !openssl_verify(p.path(), &forged, &public),
        "openssl accepted a tampered receipt"
    );
    // Another key: refused, naming the key tried.
    let other = p.bale(&["verify-receipt", "r.json", "--public-key", "keys/k.pub"]);
    other.fails(exit::INTEGRITY);
    assert!(
        other.stderr().contains("no signature by key"),
        "{}",
        other.stderr()
    );
    std::fs::write(p.path().join("junk.json"), "not json").unwrap_or_else(|e| panic!("{e}"));
    p.bale(&[
        "verify-receipt",
        "junk.json",
        "--public-key",
        "keys/site.pub",
    ])
    .fails(exit::INVALID_INPUT);

    // The report an auditor files: time, host, absolute target, the scan,
    // and where it was written.
    let html = p.read("audit.html");
    let report_path =
        std::fs::canonicalize(p.path().join("audit.html")).unwrap_or_else(|e| panic!("{e}"));
    for want in [
        "Audit time (UTC)",
        hostname.trim(),
        site.to_str().unwrap_or("?"),
        "CVE-2024-2511",
        "Vulnerability database",
        &format!("to {}", report_path.display()),
    ] {
        assert!(html.contains(want), "{want} missing from the report");
    }
}
