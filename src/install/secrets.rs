//! Secrets in the install directory's `.env`: generated once, kept across
//! upgrades, never printed.

use std::collections::BTreeSet;

use crate::spec::SecretSpec;

/// Parses `.env`-style `KEY=VALUE` lines; returns the keys.
pub(super) fn env_keys(text: &str) -> BTreeSet<String> {
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
