//! `bale scan`: the OS packages the signed SBOM lists in each image,
//! matched against an OSV database the operator carried in, each under its
//! package manager's version ordering, with OpenVEX statements applied.
//! Offline by construction: the database is files, the packages come from
//! the bundle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use crate::osv::{self, Database, Level, OsvError, Wanted};
use crate::packages::Purl;
use crate::vex::Statement;

pub mod report;

/// One vulnerability affecting one package of one image.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The record's id (`DSA-5532-1`, `ALPINE-CVE-…`, `CVE-…`).
    pub id: String,
    /// Other names of it (CVEs), sorted.
    pub aliases: Vec<String>,
    /// The installed package.
    pub package: String,
    /// Its purl.
    pub purl: String,
    /// The installed version.
    pub installed: String,
    /// The version that fixes it, where the record names one.
    pub fixed: Option<String>,
    /// Severity.
    pub severity: Level,
    /// CVSS v3 base score, where the record has a vector.
    pub score: Option<f64>,
    /// The record's summary.
    pub summary: Option<String>,
    /// The VEX statement that applies, if any.
    pub vex: Option<Statement>,
}

impl Finding {
    /// Whether a VEX statement settles it (`not_affected` or `fixed`).
    pub fn resolved(&self) -> bool {
        self.vex.as_ref().is_some_and(Statement::resolves)
    }
}

/// One image as scanned.
#[derive(Debug, Clone, Serialize)]
pub struct ImageScan {
    /// The service it runs as.
    pub service: String,
    /// Its name (`registry/repo:tag`).
    pub name: String,
    /// Its purl (with the manifest digest).
    pub purl: String,
    /// The OSV ecosystem its packages belong to, where osv.dev has one.
    pub ecosystem: Option<String>,
    /// OS packages scanned.
    pub packages: usize,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
}

/// The database as used.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseSummary {
    /// The files and directories given.
    pub sources: Vec<PathBuf>,
    /// Records read.
    pub records: u64,
    /// Withdrawn records left out.
    pub withdrawn: u64,
    /// The newest `modified` of its records.
    pub newest_modified: Option<String>,
    /// Whole days from `newest_modified` to the scan: how stale it is.
    pub age_days: Option<i64>,
    /// Records per ecosystem.
    pub ecosystems: BTreeMap<String, u64>,
}

/// What `bale scan` found.
#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    /// What was scanned: the bundle file or the install directory.
    pub subject: PathBuf,
    /// Bundle name and version, from the SBOM.
    pub bundle: String,
    /// When the scan ran (UTC).
    pub time: String,
    /// The database.
    pub database: DatabaseSummary,
    /// Where VEX statements came from, in order.
    pub vex: Vec<String>,
    /// Images.
    pub images: Vec<ImageScan>,
    /// Findings not settled by VEX, per severity.
    pub open: BTreeMap<&'static str, usize>,
}

impl ScanReport {
    /// Open findings at `level` or above (`Unknown` counts only at `Low`).
    pub fn open_at_or_above(&self, level: Level) -> usize {
        self.images
            .iter()
            .flat_map(|i| i.findings.iter())
            .filter(|f| !f.resolved())
            .filter(|f| {
                f.severity >= level || (f.severity == Level::Unknown && level == Level::Low)
            })
            .count()
    }
}

/// Errors scanning.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The database could not be read.
    #[error(transparent)]
    Osv(#[from] OsvError),
    /// The SBOM is not one bale wrote.
    #[error("{0}")]
    Sbom(String),
}

/// An image package of the SBOM and the OS packages it contains.
struct SbomImage {
    service: String,
    name: String,
    purl: String,
    packages: Vec<(String, Purl)>,
}

fn images_of(sbom: &[u8]) -> Result<(String, Vec<SbomImage>), ScanError> {
    let doc: Value =
        serde_json::from_slice(sbom).map_err(|_| ScanError::Sbom("the SBOM is not JSON".into()))?;
    let all = doc["packages"]
        .as_array()
        .ok_or_else(|| ScanError::Sbom("the SBOM lists no packages".into()))?;
    let by_id: BTreeMap<&str, &Value> = all
        .iter()
        .filter_map(|p| Some((p["SPDXID"].as_str()?, p)))
        .collect();
    let contains = crate::bundle::sbom::contains(&doc);
    let mut images = Vec::new();
    for p in all
        .iter()
        .filter(|p| p["primaryPackagePurpose"] == "CONTAINER")
    {
        let id = p["SPDXID"].as_str().unwrap_or_default();
        let service = p["comment"]
            .as_str()
            .and_then(|c| c.strip_prefix("service "))
            .and_then(|c| c.split(',').next())
            .unwrap_or(id)
            .to_owned();
        let packages = contains
            .get(id)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(|c| by_id.get(c))
            .filter_map(|c| {
                let purl = Purl::parse(crate::bundle::sbom::purl_of(c)?)?;
                purl.manager()?;
                Some((c["name"].as_str()?.to_owned(), purl))
            })
            .collect();
        images.push(SbomImage {
            service,
            name: p["name"].as_str().unwrap_or_default().to_owned(),
            purl: crate::bundle::sbom::purl_of(p)
                .unwrap_or_default()
                .to_owned(),
            packages,
        });
    }
    let bundle = by_id
        .get("SPDXRef-Bundle")
        .map(|b| {
            format!(
                "{} {}",
                b["name"].as_str().unwrap_or(""),
                b["versionInfo"].as_str().unwrap_or("")
            )
        })
        .unwrap_or_default();
    Ok((bundle, images))
}

/// Scans the packages `sbom` lists against the databases in `db`, with
/// `vex` statements (in order) applied; `now` is the scan's time in Unix
/// seconds.
pub fn scan(
    subject: PathBuf,
    sbom: &[u8],
    db: &[PathBuf],
    vex: &[Statement],
    vex_sources: Vec<String>,
    now: i64,
) -> Result<ScanReport, ScanError> {
    let (bundle, images) = images_of(sbom)?;
    let mut wanted = Wanted::default();
    for (_, p) in images.iter().flat_map(|i| i.packages.iter()) {
        if let Some(e) = osv::ecosystem_of(p) {
            wanted.ecosystems.insert(e);
        }
        wanted.names.insert(p.name.clone());
        if let Some(u) = p.qualifiers.get("upstream") {
            wanted.names.insert(u.clone());
        }
    }
    let database = osv::load(db, &wanted)?;
    let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (n, r) in database.records.iter().enumerate() {
        for a in &r.affected {
            if let Some(p) = &a.package {
                by_name.entry(p.name.as_str()).or_default().push(n);
            }
        }
    }
    let mut scanned = Vec::new();
    for img in &images {
        let mut findings = Vec::new();
        let mut ecosystem = None;
        for (name, purl) in &img.packages {
            let Some(eco) = osv::ecosystem_of(purl) else {
                continue;
            };
            ecosystem.get_or_insert_with(|| eco.clone());
            findings.extend(package_findings(
                &database, &by_name, name, purl, &eco, vex, &img.purl,
            ));
        }
        findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.package.cmp(&b.package))
                .then_with(|| a.id.cmp(&b.id))
        });
        scanned.push(ImageScan {
            service: img.service.clone(),
            name: img.name.clone(),
            purl: img.purl.clone(),
            ecosystem,
            packages: img.packages.len(),
            findings,
        });
    }
    let mut open = BTreeMap::new();
    for f in scanned
        .iter()
        .flat_map(|i| i.findings.iter())
        .filter(|f| !f.resolved())
    {
        *open.entry(f.severity.name()).or_default() += 1;
    }
    let age_days = database
        .newest_modified
        .as_deref()
        .and_then(crate::clock::parse_utc)
        .map(|t| (now - t).div_euclid(86_400));
    Ok(ScanReport {
        subject,
        bundle,
        time: crate::clock::utc(now),
        database: summary(database, age_days),
        vex: vex_sources,
        images: scanned,
        open,
    })
}

fn summary(d: Database, age_days: Option<i64>) -> DatabaseSummary {
    DatabaseSummary {
        sources: d.sources,
        records: d.read,
        withdrawn: d.withdrawn,
        newest_modified: d.newest_modified,
        age_days,
        ecosystems: d.ecosystems,
    }
}

/// The findings for one package: every record naming it (or its source
/// package) in its ecosystem whose ranges hold its version.
fn package_findings(
    db: &Database,
    by_name: &BTreeMap<&str, Vec<usize>>,
    name: &str,
    purl: &Purl,
    eco: &str,
    vex: &[Statement],
    image_purl: &str,
) -> Vec<Finding> {
    let (Some(manager), Some(version)) = (purl.manager(), purl.full_version()) else {
        return Vec::new();
    };
    let names: BTreeSet<&str> = [
        Some(purl.name.as_str()),
        purl.qualifiers.get("upstream").map(String::as_str),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for n in &names {
        for &i in by_name.get(n).map_or(&[][..], Vec::as_slice) {
            let r = &db.records[i];
            for a in &r.affected {
                let Some(p) = &a.package else { continue };
                if p.name != *n || !osv::ecosystem_applies(&p.ecosystem, eco) {
                    continue;
                }
                let Some(fixed) = osv::affected(a, manager.scheme(), &version) else {
                    continue;
                };
                if !seen.insert(r.id.clone()) {
                    continue;
                }
                let (severity, score) = osv::level_of(r, a);
                let mut aliases: Vec<String> =
                    r.aliases.iter().chain(r.upstream.iter()).cloned().collect();
                aliases.sort();
                aliases.dedup();
                let mut ids: Vec<&str> = vec![r.id.as_str()];
                ids.extend(aliases.iter().map(String::as_str));
                let full = purl_string(purl);
                out.push(Finding {
                    id: crate::packages::field(&r.id),
                    aliases: aliases.iter().map(|a| crate::packages::field(a)).collect(),
                    package: name.to_owned(),
                    purl: full.clone(),
                    installed: version.clone(),
                    fixed: fixed.map(|f| crate::packages::field(&f)),
                    severity,
                    score,
                    summary: r.summary.as_deref().map(crate::packages::field),
                    vex: crate::vex::applies(vex, &ids, image_purl, &full).cloned(),
                });
            }
        }
    }
    out
}

/// The purl as the SBOM wrote it (reassembled from its parts).
fn purl_string(p: &Purl) -> String {
    let mut s = p.base();
    if let Some(v) = &p.version {
        s.push('@');
        s.push_str(&crate::packages::encode(v));
    }
    for (n, (k, v)) in p.qualifiers.iter().enumerate() {
        s.push(if n == 0 { '?' } else { '&' });
        s.push_str(k);
        s.push('=');
        s.push_str(&crate::packages::encode(v));
    }
    s
}
