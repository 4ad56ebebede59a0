//! OSV vulnerability records (ossf.github.io/osv-schema) as osv.dev
//! publishes them for the distributions: one JSON record per file, in the
//! per-ecosystem zip exports (`Debian/all.zip`, `Alpine/all.zip`, …) or a
//! directory of them. The operator carries the database in; nothing here
//! touches the network.
//!
//! Reading is bounded (records, bytes per record, entries per zip) and
//! keeps only the records that name a package bale was asked about, so
//! memory follows the findings, not the database.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Deserialize;

mod matching;
mod read;
mod severity;

pub use matching::{affected, ecosystem_applies, ecosystem_of};
pub use read::load;
pub use severity::{Level, level_of};

/// Largest single record read.
pub const MAX_RECORD_BYTES: u64 = 8 * 1024 * 1024;
/// Most records (files) one database may hold.
pub const MAX_RECORDS: u64 = 5_000_000;

/// One OSV record, the fields bale uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Record {
    /// `DSA-5532-1`, `CVE-2023-5678`, `ALSA-2024:0310`.
    pub id: String,
    /// When the record last changed (RFC 3339).
    #[serde(default)]
    pub modified: Option<String>,
    /// Set when the record was withdrawn: it no longer applies.
    #[serde(default)]
    pub withdrawn: Option<String>,
    /// Other ids of the same vulnerability (CVEs).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Ids of records this one is derived from (Debian's DSAs list CVEs here).
    #[serde(default)]
    pub upstream: Vec<String>,
    /// One line.
    #[serde(default)]
    pub summary: Option<String>,
    /// Scores of the vulnerability as a whole.
    #[serde(default)]
    pub severity: Vec<Severity>,
    /// The packages and versions it affects.
    #[serde(default)]
    pub affected: Vec<Affected>,
    /// Database-specific fields (a severity word, where given).
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

/// A severity score: `CVSS_V3` with a vector, or a distribution's word.
#[derive(Debug, Clone, Deserialize)]
pub struct Severity {
    /// `CVSS_V2`, `CVSS_V3`, `CVSS_V4`, `Ubuntu`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The vector or word.
    pub score: String,
}

/// One affected package.
#[derive(Debug, Clone, Deserialize)]
pub struct Affected {
    /// Which package, in which ecosystem.
    #[serde(default)]
    pub package: Option<PackageRef>,
    /// Version ranges.
    #[serde(default)]
    pub ranges: Vec<Range>,
    /// Versions listed one by one.
    #[serde(default)]
    pub versions: Vec<String>,
    /// Scores for this package.
    #[serde(default)]
    pub severity: Vec<Severity>,
    /// Ecosystem-specific fields (a severity word, where given).
    #[serde(default)]
    pub ecosystem_specific: Option<serde_json::Value>,
    /// Database-specific fields.
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

/// A package in an ecosystem.
#[derive(Debug, Clone, Deserialize)]
pub struct PackageRef {
    /// `Debian:12`, `Alpine:v3.19`, `Rocky Linux:9`.
    pub ecosystem: String,
    /// The package name (Debian: source package; Alpine: origin).
    pub name: String,
}

/// A version range: events in the ecosystem's ordering.
#[derive(Debug, Clone, Deserialize)]
pub struct Range {
    /// `ECOSYSTEM` (the only type that applies to OS packages), `SEMVER`, `GIT`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The events.
    #[serde(default)]
    pub events: Vec<Event>,
}

/// One event of a range: exactly one field is set.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Event {
    /// Affected from this version on (`0`: from the start).
    #[serde(default)]
    pub introduced: Option<String>,
    /// Fixed in this version.
    #[serde(default)]
    pub fixed: Option<String>,
    /// Affected up to and including this version.
    #[serde(default)]
    pub last_affected: Option<String>,
    /// Range limit (for GIT ranges; ignored here).
    #[serde(default)]
    pub limit: Option<String>,
}

/// What a database was asked about: the ecosystems and package names of
/// the packages scanned.
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    /// OSV ecosystems (`Debian:12`).
    pub ecosystems: BTreeSet<String>,
    /// Package and source package names.
    pub names: BTreeSet<String>,
}

/// A database as read: the records that may matter, and what it was.
#[derive(Debug, Clone, Default)]
pub struct Database {
    /// The records that name a wanted package in a wanted ecosystem.
    pub records: Vec<Record>,
    /// The files it was read from.
    pub sources: Vec<PathBuf>,
    /// Records read in all.
    pub read: u64,
    /// Withdrawn records left out.
    pub withdrawn: u64,
    /// The newest `modified` of any record: how fresh the database is.
    pub newest_modified: Option<String>,
    /// The ecosystems its records name (how many of each).
    pub ecosystems: std::collections::BTreeMap<String, u64>,
}

/// Errors reading an OSV database.
#[derive(Debug, thiserror::Error)]
pub enum OsvError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not what an OSV database holds.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file (a zip's, with the entry in `reason`).
        path: PathBuf,
        /// Why, never quoting its bytes.
        reason: String,
    },
}
