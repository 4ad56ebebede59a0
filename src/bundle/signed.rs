//! The signed manifest (`bale-manifest`) and the trusted comment that ties
//! its signature to one bundle.

use crate::digest::Digest;

pub(super) const MANIFEST_HEADER: &str = "# bale bundle manifest, format 1";

/// One entry of the signed manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Path in the tar.
    pub path: String,
    /// SHA-256 of its content.
    pub sha256: Digest,
    /// Size in bytes.
    pub size: u64,
    /// In a delta: the base bundle provides it, so this bundle does not
    /// carry it (its digest and size are signed here all the same).
    pub from_base: bool,
}

/// The bundle a delta is built against.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BaseRef {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// SHA-256 of its signed manifest.
    pub manifest: Digest,
}

/// The signed manifest: name, version, and every other entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Bundle name.
    pub name: String,
    /// Bundle version.
    pub version: String,
    /// Entries, in tar order.
    pub entries: Vec<ManifestEntry>,
    /// For a delta: the base that provides the entries marked `from_base`.
    pub base: Option<BaseRef>,
}

impl Manifest {
    /// Whether this bundle carries `path` itself with this digest and size
    /// (listed, and not left to its own base).
    pub fn carries(&self, path: &str, sha256: &Digest, size: u64) -> bool {
        self.entries
            .iter()
            .any(|e| e.path == path && &e.sha256 == sha256 && e.size == size && !e.from_base)
    }

    /// The text form: comment lines sha256sum ignores, then for each entry
    /// a `#size` line and a `sha256sum` line.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{MANIFEST_HEADER}\n# name {}\n# version {}\n# Check: minisign -Vm bale-manifest -p KEY.pub && sha256sum --strict -c bale-manifest\n",
            self.name, self.version
        );
        if let Some(b) = &self.base {
            s.push_str(&format!("# base {} {} {}\n", b.name, b.version, b.manifest));
        }
        for e in &self.entries {
            // `#base` lines are comments to sha256sum: an extracted delta
            // checks what it carries.
            s.push_str(&format!(
                "#size {} {}\n{}{}  {}\n",
                e.size,
                e.path,
                if e.from_base { "#base " } else { "" },
                e.sha256.hex(),
                e.path
            ));
        }
        s
    }

    /// Parses the text form strictly.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut lines = text.lines();
        if lines.next() != Some(MANIFEST_HEADER) {
            return Err("not a bale manifest (format 1)".into());
        }
        let field = |line: Option<&str>, key: &str| -> Result<String, String> {
            line.and_then(|l| l.strip_prefix(&format!("# {key} ")))
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| format!("manifest lacks its `# {key}` line"))
        };
        let name = field(lines.next(), "name")?;
        let version = field(lines.next(), "version")?;
        lines.next();
        let mut lines = lines.peekable();
        let mut base = None;
        if let Some(b) = lines.peek().and_then(|l| l.strip_prefix("# base ")) {
            let mut w = b.split(' ');
            let (Some(n), Some(v), Some(d), None) = (w.next(), w.next(), w.next(), w.next()) else {
                return Err(format!("malformed base line `{}`", cut(b)));
            };
            base = Some(BaseRef {
                name: n.to_owned(),
                version: v.to_owned(),
                manifest: d
                    .parse()
                    .map_err(|_| format!("bad base digest `{}`", cut(d)))?,
            });
            lines.next();
        }
        let mut entries = Vec::new();
        while let Some(size_line) = lines.next() {
            let (size, path) = size_line
                .strip_prefix("#size ")
                .and_then(|r| r.split_once(' '))
                .ok_or_else(|| format!("malformed manifest line `{}`", cut(size_line)))?;
            let size: u64 = size
                .parse()
                .map_err(|_| format!("bad size in `{}`", cut(size_line)))?;
            let sum_line = lines
                .next()
                .ok_or_else(|| format!("manifest ends after the size of {}", cut(path)))?;
            let (from_base, sum_line) = match sum_line.strip_prefix("#base ") {
                Some(rest) if base.is_some() => (true, rest),
                Some(_) => return Err("a `#base` entry in a bundle that has no base".into()),
                None => (false, sum_line),
            };
            let (hex, sum_path) = sum_line
                .split_once("  ")
                .ok_or_else(|| format!("malformed manifest line `{}`", cut(sum_line)))?;
            if sum_path != path {
                return Err(format!("manifest names `{}` twice differently", cut(path)));
            }
            let sha256: Digest = format!("sha256:{hex}")
                .parse()
                .map_err(|_| format!("bad sha256 for `{}`", cut(path)))?;
            entries.push(ManifestEntry {
                path: path.to_owned(),
                sha256,
                size,
                from_base,
            });
        }
        Ok(Manifest {
            name,
            version,
            entries,
            base,
        })
    }
}

fn cut(s: &str) -> String {
    s.chars().take(120).collect()
}

/// The trusted comment signed with the manifest: it ties the signature to
/// this bundle's name, version and manifest digest.
pub fn trusted_comment(name: &str, version: &str, manifest: &Digest) -> String {
    format!("bale-bundle name={name} version={version} manifest={manifest}")
}

/// Parses a trusted comment written by [`trusted_comment`].
pub fn parse_trusted_comment(s: &str) -> Option<(String, String, String)> {
    let rest = s.strip_prefix("bale-bundle ")?;
    let mut name = None;
    let mut version = None;
    let mut manifest = None;
    for part in rest.split(' ') {
        match part.split_once('=')? {
            ("name", v) => name = Some(v.to_owned()),
            ("version", v) => version = Some(v.to_owned()),
            ("manifest", v) => manifest = Some(v.to_owned()),
            _ => return None,
        }
    }
    Some((name?, version?, manifest?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_and_is_strict() {
        let m = Manifest {
            name: "demo".into(),
            version: "1.0.0".into(),
            entries: vec![ManifestEntry {
                path: "files/a b.conf".into(),
                sha256: Digest::of(b"x"),
                size: 1,
                from_base: false,
            }],
            base: None,
        };
        let text = m.render();
        assert_eq!(Manifest::parse(&text), Ok(m.clone()));
        assert!(Manifest::parse(&text.replace("#size 1", "#size x")).is_err());
        assert!(Manifest::parse("hello").is_err());
        // A delta: its base named, and the entries the base provides.
        let mut d = m;
        d.base = Some(BaseRef {
            name: "demo".into(),
            version: "0.9.0".into(),
            manifest: Digest::of(b"old"),
        });
        d.entries[0].from_base = true;
        let text = d.render();
        assert!(text.contains("\n#base "), "{text}");
        assert_eq!(Manifest::parse(&text), Ok(d));
        // `#base` entries without a base line are refused.
        let no_base: String = text
            .lines()
            .filter(|l| !l.starts_with("# base "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(Manifest::parse(&no_base).is_err());
    }

    #[test]
    fn trusted_comment_round_trips() {
        let d = Digest::of(b"m");
        let c = trusted_comment("demo", "1.0.0", &d);
        assert_eq!(
            parse_trusted_comment(&c),
            Some(("demo".into(), "1.0.0".into(), d.to_string()))
        );
        assert_eq!(parse_trusted_comment("timestamp:1"), None);
    }
}
