//! Package URLs (github.com/package-url/purl-spec) for OS packages:
//! `pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=amd64&distro=debian-12&upstream=openssl`.
//! Written into the SBOM at build and read back from it by `bale scan`,
//! so both directions live here.

use std::collections::BTreeMap;

use super::{Distro, Manager, Package};

/// A parsed package URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purl {
    /// `deb`, `apk`, `rpm`, `oci`, …
    pub kind: String,
    /// The namespace (`debian`, `alpine`), where there is one.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
    /// The version, where there is one.
    pub version: Option<String>,
    /// The qualifiers, sorted by key.
    pub qualifiers: BTreeMap<String, String>,
}

/// Percent-encodes all but purl's unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Package {
    /// The package's purl, qualified by the image's distribution.
    pub fn purl(&self, distro: Option<&Distro>) -> String {
        let namespace = distro.map(|d| d.id.clone()).unwrap_or_else(|| {
            match self.manager {
                Manager::Apk => "alpine",
                Manager::Dpkg => "debian",
                Manager::Rpm => "",
            }
            .to_owned()
        });
        let mut q = BTreeMap::new();
        let mut version = self.version.clone();
        if self.manager == Manager::Rpm
            && let Some((e, rest)) = self.version.split_once(':')
        {
            q.insert("epoch", e.to_owned());
            version = rest.to_owned();
        }
        if let Some(a) = &self.arch {
            q.insert("arch", a.clone());
        }
        if let Some(d) = distro {
            q.insert("distro", d.qualifier());
        }
        if let Some(s) = &self.source {
            q.insert("upstream", s.clone());
        }
        let mut out = format!("pkg:{}/", self.manager.purl_type());
        if !namespace.is_empty() {
            out.push_str(&encode(&namespace));
            out.push('/');
        }
        out.push_str(&encode(&self.name));
        out.push('@');
        out.push_str(&encode(&version));
        for (n, (k, v)) in q.iter().enumerate() {
            out.push(if n == 0 { '?' } else { '&' });
            out.push_str(k);
            out.push('=');
            out.push_str(&encode(v));
        }
        out
    }
}

impl Purl {
    /// Parses a purl; `None` when it is not one.
    pub fn parse(s: &str) -> Option<Purl> {
        let rest = s.strip_prefix("pkg:")?;
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
        let (rest, qs) = rest.split_once('?').unwrap_or((rest, ""));
        let (kind, path) = rest.trim_start_matches('/').split_once('/')?;
        let (path, version) = match path.rsplit_once('@') {
            Some((p, v)) => (p, Some(decode(v)?)),
            None => (path, None),
        };
        let (namespace, name) = match path.rsplit_once('/') {
            Some((ns, n)) => (Some(decode(ns)?), decode(n)?),
            None => (None, decode(path)?),
        };
        let mut qualifiers = BTreeMap::new();
        for kv in qs.split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=')?;
            qualifiers.insert(k.to_ascii_lowercase(), decode(v)?);
        }
        (!name.is_empty()).then(|| Purl {
            kind: kind.to_ascii_lowercase(),
            namespace,
            name,
            version,
            qualifiers,
        })
    }

    /// The purl's package manager, for the three OS ones.
    pub fn manager(&self) -> Option<Manager> {
        match self.kind.as_str() {
            "apk" => Some(Manager::Apk),
            "deb" => Some(Manager::Dpkg),
            "rpm" => Some(Manager::Rpm),
            _ => None,
        }
    }

    /// The version as the package manager orders it (rpm: the epoch
    /// qualifier put back in front).
    pub fn full_version(&self) -> Option<String> {
        let v = self.version.clone()?;
        Some(match (self.manager(), self.qualifiers.get("epoch")) {
            (Some(Manager::Rpm), Some(e)) => format!("{e}:{v}"),
            _ => v,
        })
    }

    /// The purl without version and qualifiers: what VEX statements and
    /// the scan compare when they name a package.
    pub fn base(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("pkg:{}/{}/{}", self.kind, encode(ns), encode(&self.name)),
            None => format!("pkg:{}/{}", self.kind, encode(&self.name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purl_written_reads_back_with_every_part() {
        let p = Package {
            manager: Manager::Rpm,
            name: "openssl-libs".into(),
            version: "1:3.0.7-25.el9_3".into(),
            arch: Some("x86_64".into()),
            source: Some("openssl".into()),
            license: None,
            vendor: None,
        };
        let d = Distro {
            id: "rocky".into(),
            version_id: Some("9.3".into()),
            pretty_name: None,
        };
        let s = p.purl(Some(&d));
        assert_eq!(
            s,
            "pkg:rpm/rocky/openssl-libs@3.0.7-25.el9_3?arch=x86_64&distro=rocky-9.3&epoch=1&upstream=openssl"
        );
        let back = Purl::parse(&s).unwrap();
        assert_eq!(back.full_version().as_deref(), Some("1:3.0.7-25.el9_3"));
        assert_eq!(back.base(), "pkg:rpm/rocky/openssl-libs");
        let deb = Purl::parse("pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?arch=amd64").unwrap();
        assert_eq!(deb.version.as_deref(), Some("1:1.2.13.dfsg-1"));
        assert!(Purl::parse("http://x").is_none());
    }
}
