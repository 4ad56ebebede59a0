//! dpkg's status file (deb822 paragraphs): `Package`, `Status`, `Version`,
//! `Architecture`, `Source`. Only installed packages count (`Status: …
//! installed`); distroless `status.d/` files have no `Status` and list
//! installed packages only.

use super::{MAX_DATABASE_BYTES, MAX_PACKAGES, Manager, Package, PackagesError, field};

/// The installed packages of a status file.
pub fn parse_status(text: &[u8]) -> Result<Vec<Package>, PackagesError> {
    let bad = |reason: String| PackagesError::Malformed {
        what: "dpkg status",
        reason,
    };
    if text.len() as u64 > MAX_DATABASE_BYTES {
        return Err(bad(format!("larger than {MAX_DATABASE_BYTES} bytes")));
    }
    let text = String::from_utf8_lossy(text);
    let mut out = Vec::new();
    for (n, para) in text.split("\n\n").enumerate() {
        let mut fields: Vec<(&str, &str)> = Vec::new();
        for line in para.lines() {
            if line.starts_with([' ', '\t']) {
                continue; // a continuation of a long field (Description…)
            }
            if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim(), v.trim()));
            }
        }
        let get = |k: &str| {
            fields
                .iter()
                .find(|(f, _)| f.eq_ignore_ascii_case(k))
                .map(|(_, v)| *v)
        };
        let Some(name) = get("Package") else {
            continue;
        };
        if get("Status").is_some_and(|s| s.split_whitespace().last() != Some("installed")) {
            continue;
        }
        let version = get("Version").ok_or_else(|| {
            bad(format!(
                "paragraph {} ({}) has no Version",
                n + 1,
                field(name)
            ))
        })?;
        if out.len() >= MAX_PACKAGES {
            return Err(bad(format!("more than {MAX_PACKAGES} packages")));
        }
        // `Source: name (version)` when the source version differs.
        let source = get("Source")
            .and_then(|s| s.split_whitespace().next())
            .map(field)
            .filter(|s| s != name);
        out.push(Package {
            manager: Manager::Dpkg,
            name: field(name),
            version: field(version),
            arch: get("Architecture").map(field),
            source,
            license: None,
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
    fn keeps_installed_packages_and_their_source() {
        let text = b"Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl\nVersion: 3.0.15-1~deb12u1\nDescription: x\n more\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: zlib1g\nVersion: 1:1.2.13.dfsg-1\nSource: zlib (1.2.13.dfsg-1)\n";
        let p = super::parse_status(text).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].name.as_str(), p[0].source.as_deref()),
            ("libssl3", Some("openssl"))
        );
        assert_eq!(
            (p[1].version.as_str(), p[1].source.as_deref()),
            ("1:1.2.13.dfsg-1", Some("zlib"))
        );
    }
}
