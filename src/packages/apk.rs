//! apk's installed database: paragraphs of `X:value` lines; `P` name, `V`
//! version, `A` architecture, `L` licence, `o` origin (source package).

use super::{MAX_DATABASE_BYTES, MAX_PACKAGES, Manager, Package, PackagesError, field};

/// The packages of `lib/apk/db/installed`.
pub fn parse_installed(text: &[u8]) -> Result<Vec<Package>, PackagesError> {
    let bad = |reason: String| PackagesError::Malformed {
        what: "apk installed database",
        reason,
    };
    if text.len() as u64 > MAX_DATABASE_BYTES {
        return Err(bad(format!("larger than {MAX_DATABASE_BYTES} bytes")));
    }
    let text = String::from_utf8_lossy(text);
    let mut out = Vec::new();
    for (n, para) in text.split("\n\n").enumerate() {
        let get = |k: char| {
            para.lines()
                .find(|l| l.len() > 2 && l.starts_with(k) && l.as_bytes()[1] == b':')
                .map(|l| &l[2..])
        };
        let Some(name) = get('P') else {
            continue;
        };
        let version = get('V')
            .ok_or_else(|| bad(format!("entry {} ({}) has no V: line", n + 1, field(name))))?;
        if out.len() >= MAX_PACKAGES {
            return Err(bad(format!("more than {MAX_PACKAGES} packages")));
        }
        out.push(Package {
            manager: Manager::Apk,
            name: field(name),
            version: field(version),
            arch: get('A').map(field),
            source: get('o').map(field).filter(|o| o != name),
            license: get('L').map(field).filter(|l| !l.is_empty()),
            vendor: None,
        });
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_name_version_origin_and_licence() {
        let text = b"C:Q1abc=\nP:libcrypto3\nV:3.1.4-r5\nA:x86_64\nL:Apache-2.0\no:openssl\nm:Ariadne\n\nP:musl\nV:1.2.4_git20230717-r4\nA:x86_64\nL:MIT\no:musl\n";
        let p = super::parse_installed(text).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].name.as_str(), p[0].source.as_deref()),
            ("libcrypto3", Some("openssl"))
        );
        assert_eq!(
            (p[1].license.as_deref(), p[1].source.as_deref()),
            (Some("MIT"), None)
        );
    }
}
