//! Secrets in the install directory's `.env`: generated once, kept across
//! upgrades, never printed.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use super::InstallError;
use super::env::EnvFile;
use super::target::{read_nofollow, write_private};
use crate::spec::{SecretSpec, Value};

/// Reads `root/.env` (empty when missing), never through a symlink.
pub(super) fn read_env(root: &Path) -> Result<EnvFile, InstallError> {
    let path = root.join(".env");
    let bytes = read_nofollow(&path)?.unwrap_or_default();
    let text = String::from_utf8(bytes).map_err(|_| InstallError::Unsafe {
        path,
        message: "is not UTF-8 text".into(),
    })?;
    Ok(EnvFile::parse(&text))
}

/// Sets every value in `env` and generates every secret it lacks (one per
/// item for a `per` secret); existing secrets are kept. Returns the keys
/// (never the values) of the secrets generated.
pub(super) fn plan(
    env: &mut EnvFile,
    values: &BTreeMap<String, Value>,
    secrets: &[SecretSpec],
) -> Vec<String> {
    for (k, v) in values {
        env.set(k, &v.env_form());
    }
    let mut added = Vec::new();
    for s in secrets {
        let keys: Vec<String> = match &s.per {
            None => vec![s.name.clone()],
            Some(list) => match values.get(list) {
                Some(Value::List(items)) => items.iter().map(|i| s.key_for(i)).collect(),
                _ => Vec::new(),
            },
        };
        for k in keys {
            if env.get(&k).is_none() {
                env.set(&k, &generate_secret(s));
                added.push(k);
            }
        }
    }
    added
}

/// Writes `env` as `root/.env`, mode 0600, when its text or mode differ.
pub(super) fn write_env(root: &Path, env: &EnvFile) -> Result<(), InstallError> {
    let path = root.join(".env");
    let text = env.render();
    let same = read_nofollow(&path)?.is_some_and(|b| b == text.as_bytes());
    let mode_ok = fs::symlink_metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o077 == 0);
    if !same || !mode_ok {
        write_private(&path, text.as_bytes(), 0o600)?;
    }
    Ok(())
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
