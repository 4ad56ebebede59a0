//! Checks of every field that can reach a path or a command line on the
//! installing host: names, versions, image references, platforms, install
//! targets. Leaves of their own, so that bundle.toml's parser and the
//! bundle's readers apply the same rules (`bundle::checks` runs them on a
//! signed bundle's fields).

use std::path::Path;

use crate::quote::quote;
use crate::reference::Reference;

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

/// Checks that `target` is a relative path without `..`, `.` or empty parts.
pub fn check_relative_target(target: &str) -> Result<(), String> {
    if target.is_empty() {
        return Err("target is empty".into());
    }
    if target.starts_with('/') || Path::new(target).is_absolute() {
        return Err(format!(
            "target `{target}` is absolute: targets are relative to the install directory"
        ));
    }
    if target.contains('\\') || target.contains('\0') {
        return Err(format!("target `{target}` contains a backslash or NUL"));
    }
    for part in target.split('/') {
        match part {
            ".." => {
                return Err(format!(
                    "target `{target}` contains `..`: targets must stay inside the install directory"
                ));
            }
            "" | "." => {
                return Err(format!(
                    "target `{target}` has an empty or `.` component: write it in plain form"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks an install target: relative and plain, and not one of the names
/// bale keeps in the install directory (`.bale/`, `.env`, `current`).
pub fn check_target(target: &str) -> Result<(), String> {
    check_relative_target(target)?;
    let first = target.split('/').next().unwrap_or_default();
    if first == ".bale" || first == ".env" || first == "current" {
        return Err(format!(
            "target `{target}` is reserved: bale keeps `.bale/`, `.env` and `current` in the install directory"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
