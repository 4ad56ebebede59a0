//! Bundles made by hand as a holder of a signing key could make them:
//! every entry as bale writes it, the manifest and signature made anew.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::Project;

/// Every entry of a bundle after the manifest and signature, in order.
pub fn entries_of(bundle: &Path) -> Vec<(String, Vec<u8>)> {
    let f = std::fs::File::open(bundle).unwrap_or_else(|e| panic!("{e}"));
    let mut a = tar::Archive::new(f);
    let mut out = Vec::new();
    for e in a.entries().unwrap_or_else(|e| panic!("{e}")) {
        let mut e = e.unwrap_or_else(|e| panic!("{e}"));
        let path = e
            .path()
            .unwrap_or_else(|e| panic!("{e}"))
            .display()
            .to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap_or_else(|e| panic!("{e}"));
        if path != "bale-manifest" && path != "bale-manifest.minisig" {
            out.push((path, data));
        }
    }
    out
}

/// A bundle with `name`, `version` and `entries`, manifest and signature
/// made as bale makes them, signed with the secret key at `key` (relative
/// to the project).
pub fn resign_with(
    p: &Project,
    key: &str,
    out: &str,
    name: &str,
    version: &str,
    entries: &[(String, Vec<u8>)],
) -> PathBuf {
    let manifest = bale::bundle::Manifest {
        name: name.to_owned(),
        version: version.to_owned(),
        entries: entries
            .iter()
            .map(|(path, data)| bale::bundle::ManifestEntry {
                path: path.clone(),
                sha256: bale::digest::Digest::of(data),
                size: data.len() as u64,
                from_base: false,
            })
            .collect(),
        base: None,
    };
    let text = manifest.render();
    let digest = bale::digest::Digest::of(text.as_bytes());
    let key = bale::sign::SigningKey::from_file(&p.path().join(key), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let sig = key.sign(
        text.as_bytes(),
        &bale::bundle::trusted_comment(name, version, &digest),
    );
    let path = p.path().join(out);
    let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap_or_else(|e| panic!("{e}")));
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        b.append_data(&mut h, name, data)
            .unwrap_or_else(|e| panic!("{e}"));
    };
    add("bale-manifest", text.as_bytes());
    add("bale-manifest.minisig", sig.as_bytes());
    for (n, d) in entries {
        add(n, d);
    }
    b.finish().unwrap_or_else(|e| panic!("{e}"));
    path
}
