//! Checks of every bundle field that can reach a path or a command line on
//! the installing host, and bounded quoting of untrusted text in messages.
//!
//! A signature proves who made a bundle, not that its maker is honest: a
//! stolen key or a malicious insider signs whatever they like. So `verify`
//! and `install` both run these checks on the signed manifest and image
//! list, and install builds paths only from values that passed them.

use crate::bundle::{ImagesFile, Manifest};
use crate::manifest::{DOCKER_MANIFEST, OCI_MANIFEST};
use crate::reference::Reference;

/// The most characters of an untrusted name or value an error quotes.
pub const QUOTE_CHARS: usize = 160;

/// `s` cut to [`QUOTE_CHARS`] characters, control characters escaped, with
/// the full length said when it was cut: error lines stay short whatever an
/// attacker puts in a name. A cut name keeps its head and its tail
/// (`files/d/d/…/../../../etc/x`): where a path points is at its end.
pub fn quote(s: &str) -> String {
    let escaped = |part: &str, out: &mut String| {
        for c in part.chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
    };
    let count = s.chars().count();
    let mut out = String::new();
    if count <= QUOTE_CHARS {
        escaped(s, &mut out);
        return out;
    }
    let half = QUOTE_CHARS / 2;
    let head_end = s.char_indices().nth(half).map_or(s.len(), |(i, _)| i);
    let tail_start = s
        .char_indices()
        .nth(count - half)
        .map_or(s.len(), |(i, _)| i);
    escaped(&s[..head_end], &mut out);
    out.push('…');
    escaped(&s[tail_start..], &mut out);
    out.push_str(&format!(" ({} bytes in all)", s.len()));
    out
}

/// A bundle name: lowercase letters, digits, `-`, `_`, `.`, starting with a
/// letter or digit, at most 64 characters (as bundle.toml requires).
pub fn bundle_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bundle name `{}` is not a plain name (lowercase letters, digits, `-`, `_`, `.`; at most 64)",
            quote(s)
        ))
    }
}

/// A bundle version: semver, at most 128 characters. Semver's alphabet
/// (`0-9A-Za-z.+-`) holds no `/`, so a version is safe in a directory name.
pub fn bundle_version(s: &str) -> Result<semver::Version, String> {
    if s.len() > 128 {
        return Err(format!("version `{}` is longer than 128 bytes", quote(s)));
    }
    semver::Version::parse(s).map_err(|e| format!("version `{}` is not semver: {e}", quote(s)))
}

/// A service name: letters, digits, `-`, `_`, `.`, not starting with `.`.
pub fn service_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "service name `{}` may hold only letters, digits, `-`, `_`, `.`",
            quote(s)
        ))
    }
}

/// A tar entry path: relative, plain, printable.
pub fn entry_path(p: &str) -> Result<(), String> {
    let why = if p.is_empty() {
        "empty path"
    } else if p.starts_with('/') {
        "absolute path"
    } else if p.split('/').any(|c| c == "..") {
        "path with `..`"
    } else if p.split('/').any(|c| c.is_empty() || c == ".")
        || p.contains('\\')
        || p.chars().any(char::is_control)
    {
        "path with an empty, `.` or unprintable component"
    } else if p.len() > 4096 {
        "path longer than 4096 bytes"
    } else {
        return Ok(());
    };
    Err(format!("refused: {why}"))
}

/// A compose project name, as docker-compose accepts it.
pub fn project_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "compose project `{}` must be lowercase letters, digits, `-`, `_`",
            quote(s)
        ))
    }
}

/// An image name as bale writes it: a canonical `domain/path:tag`.
pub fn image_name(s: &str) -> Result<(), String> {
    match s.parse::<Reference>() {
        Ok(r) if r.digest.is_none() && r.canonical_name() == s => Ok(()),
        _ => Err(format!(
            "image name `{}` is not a canonical `registry/repository:tag`",
            quote(s)
        )),
    }
}

/// A platform: `os/arch` or `os/arch/variant`, lowercase letters, digits, `_`.
pub fn platform(s: &str) -> Result<(), String> {
    let parts: Vec<&str> = s.split('/').collect();
    let ok = (2..=3).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 32
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "platform `{}` is not `os/arch[/variant]`",
            quote(s)
        ))
    }
}

/// Every problem of the signed manifest's own fields.
pub fn manifest(m: &Manifest) -> Vec<String> {
    let mut out = Vec::new();
    out.extend(bundle_name(&m.name).err());
    out.extend(bundle_version(&m.version).err());
    out
}

/// Every problem of the image list, which must agree with the manifest.
pub fn images_file(f: &ImagesFile, m: &Manifest) -> Vec<String> {
    let mut out = Vec::new();
    if f.name != m.name || f.version != m.version {
        out.push(format!(
            "names bundle `{}` {}, the manifest `{}` {}",
            quote(&f.name),
            quote(&f.version),
            quote(&m.name),
            quote(&m.version)
        ));
    }
    for r in &f.images {
        let what = format!("image of service `{}`", quote(&r.service));
        for e in [
            service_name(&r.service),
            image_name(&r.name),
            platform(&r.platform),
        ]
        .into_iter()
        .flat_map(Result::err)
        {
            out.push(format!("{what}: {e}"));
        }
        if r.manifest_media_type != OCI_MANIFEST && r.manifest_media_type != DOCKER_MANIFEST {
            out.push(format!(
                "{what}: manifest media type `{}` is not an image manifest",
                quote(&r.manifest_media_type)
            ));
        }
    }
    for t in f
        .files
        .iter()
        .map(|f| f.target.as_str())
        .chain(f.compose.as_deref())
    {
        if let Err(e) = crate::spec::check_target(t) {
            out.push(quote(&e));
        }
    }
    if let Some(p) = &f.project {
        out.extend(project_name(p).err());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_cuts_long_names_and_escapes_control_characters() {
        let long = "a".repeat(10_000);
        let q = quote(&long);
        assert!(q.len() < 200, "{q}");
        assert!(q.ends_with("(10000 bytes in all)"), "{q}");
        assert_eq!(quote("a\nb"), "a\\nb");
    }

    #[test]
    fn a_long_escaping_name_keeps_its_head_and_its_tail() {
        let name = format!("files/{}../../../etc/x", "d/".repeat(200));
        let q = quote(&name);
        assert!(q.starts_with("files/d/d/"), "{q}");
        assert!(q.contains("…"), "{q}");
        assert!(q.ends_with("/../../../etc/x (420 bytes in all)"), "{q}");
        assert!(q.chars().count() < QUOTE_CHARS + 40, "{q}");
    }

    #[test]
    fn versions_that_reach_paths_are_semver_only() {
        assert!(bundle_version("1.2.3-rc.1+build.5").is_ok());
        assert!(bundle_version("../../../../tmp/x").is_err());
        assert!(bundle_version("1.0.0/../../x").is_err());
        assert!(bundle_name("../x").is_err());
        assert!(bundle_name("borgstack").is_ok());
    }

    #[test]
    fn image_names_must_be_canonical() {
        assert!(image_name("docker.io/library/redis:8.2-alpine").is_ok());
        assert!(image_name("redis:8.2").is_err());
        assert!(image_name("docker.io/library/redis:8.2 --privileged").is_err());
        assert!(platform("linux/arm64/v8").is_ok());
        assert!(platform("linux/../x").is_err());
    }
}
