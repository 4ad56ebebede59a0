//! Install targets and names: what bundle.toml may name, and where.

use std::path::Path;

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

pub(super) fn valid_name(s: &str) -> bool {
    crate::validate::bundle_name(s).is_ok()
}

pub(super) fn valid_env_name(s: &str) -> bool {
    s.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}
