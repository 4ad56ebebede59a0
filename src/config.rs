//! bale's own settings: registry mirrors and insecure (plain HTTP) registries.
//!
//! Read from, in order, each overriding the one before: `config/bale.toml`
//! next to bundle.toml, the file named by `--config` or `BALE_CONFIG`, the
//! `BALE_MIRRORS` / `BALE_INSECURE_REGISTRIES` variables, and the
//! `--mirror` / `--insecure-registry` flags.
//!
//! ```toml
//! [registries."docker.io"]
//! mirrors = ["mirror.internal:5000"]
//! upstream = false            # never fall back to docker.io itself
//! [registries."registry.internal:5000"]
//! insecure = true
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::located::LocatedError;

/// Settings for one registry host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrySettings {
    /// Hosts (`host[:port]`) tried in order before the registry itself.
    pub mirrors: Vec<String>,
    /// Whether plain HTTP is allowed for this host.
    pub insecure: bool,
    /// Whether the registry itself is tried after its mirrors (default true;
    /// false keeps every request on the mirrors, as a closed site wants).
    pub upstream: bool,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        RegistrySettings {
            mirrors: Vec::new(),
            insecure: false,
            upstream: true,
        }
    }
}

/// All settings.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Per registry host (canonical domain, `docker.io` for Hub).
    pub registries: BTreeMap<String, RegistrySettings>,
}

/// Errors reading settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable file.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Bad content.
    #[error(transparent)]
    Invalid(#[from] LocatedError),
    /// A bad `--mirror` or `BALE_MIRRORS` entry.
    #[error(
        "invalid mirror `{0}`: write REGISTRY=MIRROR, for example docker.io=mirror.internal:5000"
    )]
    BadMirror(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    registries: BTreeMap<String, RawRegistry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    #[serde(default)]
    mirrors: Vec<String>,
    #[serde(default)]
    insecure: bool,
    upstream: Option<bool>,
}

impl Settings {
    /// Merges the file at `path` into these settings (a missing file is an error).
    pub fn merge_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let raw: RawConfig = toml::from_str(&text).map_err(|e| {
            LocatedError::at(path, &text, e.span(), e.message().trim_end().to_owned())
        })?;
        for (host, r) in raw.registries {
            let entry = self.registries.entry(normalise_host(&host)).or_default();
            entry.mirrors = r.mirrors;
            entry.insecure |= r.insecure;
            if let Some(u) = r.upstream {
                entry.upstream = u;
            }
        }
        Ok(())
    }

    /// Adds a `REGISTRY=MIRROR` mirror, placed before those already known.
    pub fn add_mirror(&mut self, spec: &str) -> Result<(), ConfigError> {
        let (host, mirror) = spec
            .split_once('=')
            .filter(|(h, m)| !h.is_empty() && !m.is_empty() && !m.contains('/'))
            .ok_or_else(|| ConfigError::BadMirror(spec.to_owned()))?;
        let entry = self.registries.entry(normalise_host(host)).or_default();
        entry.mirrors.retain(|m| m != mirror);
        entry.mirrors.insert(0, mirror.to_owned());
        Ok(())
    }

    /// Marks `host` as reachable over plain HTTP.
    pub fn add_insecure(&mut self, host: &str) {
        self.registries
            .entry(normalise_host(host))
            .or_default()
            .insecure = true;
    }

    /// Settings for `host`.
    pub fn registry(&self, host: &str) -> RegistrySettings {
        self.registries.get(host).cloned().unwrap_or_default()
    }

    /// Whether plain HTTP may be used for `host`: loopback hosts and hosts
    /// marked insecure (by the registry they mirror or by themselves).
    pub fn allows_http(&self, host: &str) -> bool {
        is_loopback(host) || self.registries.get(host).is_some_and(|r| r.insecure)
    }

    /// Reads the standard places: `<bundle dir>/config/bale.toml`, then
    /// `explicit` (flag or `BALE_CONFIG`), then the environment variables.
    pub fn load(bundle_dir: &Path, explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let mut s = Settings::default();
        let local = bundle_dir.join("config").join("bale.toml");
        if local.is_file() {
            s.merge_file(&local)?;
        }
        if let Some(p) = explicit {
            s.merge_file(p)?;
        }
        if let Ok(list) = std::env::var("BALE_MIRRORS") {
            for m in list
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .rev()
            {
                s.add_mirror(m)?;
            }
        }
        if let Ok(list) = std::env::var("BALE_INSECURE_REGISTRIES") {
            for h in list.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                s.add_insecure(h);
            }
        }
        Ok(s)
    }
}

fn normalise_host(h: &str) -> String {
    match h {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        _ => h.to_ascii_lowercase(),
    }
}

/// Whether `host[:port]` names this machine's loopback interface.
pub fn is_loopback(host: &str) -> bool {
    let h = match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    };
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("127.3.4.5"));
        assert!(is_loopback("localhost:80"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("10.0.0.1:5000"));
        assert!(!is_loopback("registry.example"));
    }

    #[test]
    fn flag_mirrors_come_first() {
        let mut s = Settings::default();
        s.add_mirror("docker.io=a:1").ok();
        s.add_mirror("index.docker.io=b:2").ok();
        assert_eq!(s.registry("docker.io").mirrors, vec!["b:2", "a:1"]);
        assert!(s.add_mirror("docker.io").is_err());
    }
}
