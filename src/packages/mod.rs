//! The OS packages an image holds, as its package manager's database says:
//! Alpine's `lib/apk/db/installed`, dpkg's `var/lib/dpkg/status` (and the
//! `status.d/` files distroless images carry), rpm's SQLite `rpmdb.sqlite`;
//! and `os-release`, which names the distribution. Parsers only: which
//! layer holds which file is `inventory`'s concern.
//!
//! Each parser is bounded: it reads at most [`MAX_DATABASE_BYTES`] and
//! [`MAX_PACKAGES`] packages, and keeps no field longer than
//! [`MAX_FIELD`]; a database that breaks these is an error, not a guess.

use serde::{Deserialize, Serialize};

use crate::versions::Scheme;

mod apk;
mod dpkg;
mod osrelease;
mod purl;
mod rpm;

pub use apk::parse_installed as parse_apk;
pub use dpkg::parse_status as parse_dpkg;
pub use osrelease::parse as parse_os_release;
pub use purl::{Purl, encode};
pub use rpm::{parse_header as parse_rpm_header, read_sqlite as read_rpmdb};

/// Largest package database read.
pub const MAX_DATABASE_BYTES: u64 = 256 * 1024 * 1024;
/// Most packages one database may list.
pub const MAX_PACKAGES: usize = 100_000;
/// Longest field kept (longer ones are cut at a character boundary).
pub const MAX_FIELD: usize = 1024;

/// Which package manager installed a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Manager {
    /// Alpine's apk.
    Apk,
    /// Debian's dpkg.
    Dpkg,
    /// rpm.
    Rpm,
}

impl Manager {
    /// The version ordering its versions follow.
    pub fn scheme(self) -> Scheme {
        match self {
            Manager::Apk => Scheme::Apk,
            Manager::Dpkg => Scheme::Dpkg,
            Manager::Rpm => Scheme::Rpm,
        }
    }

    /// The purl type of its packages.
    pub fn purl_type(self) -> &'static str {
        match self {
            Manager::Apk => "apk",
            Manager::Dpkg => "deb",
            Manager::Rpm => "rpm",
        }
    }
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Package {
    /// Its package manager.
    pub manager: Manager,
    /// Binary package name.
    pub name: String,
    /// Full version as the manager writes it (rpm: `[epoch:]version-release`).
    pub version: String,
    /// Architecture, where recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// The source package (dpkg `Source`, apk origin, rpm source rpm's
    /// name), where it differs from `name`: what distributions' security
    /// trackers key their advisories by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Licence as the database states it (apk `L:`, rpm `License`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Vendor as the database states it (rpm `Vendor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
}

/// The distribution an image is built from, from its `os-release`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Distro {
    /// `ID` (`debian`, `alpine`, `rocky`).
    pub id: String,
    /// `VERSION_ID` (`12`, `3.19.1`, `9.3`), where given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// `PRETTY_NAME`, where given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretty_name: Option<String>,
}

impl Distro {
    /// `id-version_id`, as purls' `distro` qualifier has it.
    pub fn qualifier(&self) -> String {
        match &self.version_id {
            Some(v) => format!("{}-{v}", self.id),
            None => self.id.clone(),
        }
    }

    /// The supplier an SBOM names for the distribution's packages.
    pub fn supplier(&self) -> String {
        match self.id.as_str() {
            "debian" => "Debian".to_owned(),
            "ubuntu" => "Canonical".to_owned(),
            "alpine" => "Alpine Linux".to_owned(),
            "rocky" => "Rocky Enterprise Software Foundation".to_owned(),
            "almalinux" => "AlmaLinux OS Foundation".to_owned(),
            "fedora" => "Fedora Project".to_owned(),
            "rhel" => "Red Hat".to_owned(),
            _ => self.pretty_name.clone().unwrap_or_else(|| self.id.clone()),
        }
    }
}

/// Errors reading a package database.
#[derive(Debug, thiserror::Error)]
pub enum PackagesError {
    /// The database is not what its format says it should be.
    #[error("{what}: {reason}")]
    Malformed {
        /// Which database.
        what: &'static str,
        /// Why (never its bytes).
        reason: String,
    },
    /// The database could not be read.
    #[error("{what}: {source}")]
    Io {
        /// Which database.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
}

/// Keeps a field: trimmed, cut at [`MAX_FIELD`] bytes on a character
/// boundary, with control characters left out (fields end up in SBOMs
/// and on terminals).
pub(crate) fn field(s: &str) -> String {
    let mut out = String::new();
    for c in s.trim().chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_FIELD {
            break;
        }
        out.push(c);
    }
    out
}
