//! Secrets in the install directory's `.env`: generated once, kept across
//! upgrades, never printed.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use super::InstallError;
use super::target::{read_nofollow, write_private};
use crate::spec::SecretSpec;

/// Adds to `root/.env` every secret it lacks (existing values are kept) and
/// makes it mode 0600; returns the names (never the values) added.
pub(super) fn ensure(root: &Path, secrets: &[SecretSpec]) -> Result<Vec<String>, InstallError> {
    let env_path = root.join(".env");
    let existing = read_nofollow(&env_path)?.unwrap_or_default();
    let existing = String::from_utf8(existing).map_err(|_| InstallError::Unsafe {
        path: env_path.clone(),
        message: "is not UTF-8 text".into(),
    })?;
    let have = env_keys(&existing);
    let mut text = existing.clone();
    let mut added = Vec::new();
    for s in secrets {
        if !have.contains(&s.name) {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!("{}={}\n", s.name, generate_secret(s)));
            added.push(s.name.clone());
        }
    }
    let mode_ok =
        fs::symlink_metadata(&env_path).is_ok_and(|m| m.permissions().mode() & 0o077 == 0);
    if !added.is_empty() || !mode_ok {
        write_private(&env_path, text.as_bytes(), 0o600)?;
    }
    Ok(added)
}

/// Parses `.env`-style `KEY=VALUE` lines; returns the keys.
fn env_keys(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, _)| k.trim().trim_start_matches("export ").to_owned())
        })
        .collect()
}

/// A secret value from the OS-seeded CSPRNG, uniform over the alphabet.
pub fn generate_secret(spec: &SecretSpec) -> String {
    use rand::Rng as _;
    let chars = spec.alphabet.chars();
    let mut rng = rand::rng();
    (0..spec.length)
        .map(|_| chars[rng.random_range(0..chars.len())])
        .collect()
}
