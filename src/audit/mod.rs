//! `bale audit`: is what runs on this host exactly what was signed?
//!
//! Checks the installed release against its record (or, given the bundle,
//! against the signed bundle itself): every image in the runtime has its
//! locked config digest (and manifest digest where the runtime keeps it),
//! every container of the compose project runs its service's locked image,
//! and every installed file is byte-identical (`.env` excepted).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::digest::Digest;
use crate::install::{InstallError, OpenBundle, current_release};
use crate::runtime::Runtime;
use crate::sign::VerifyingKey;

mod expected;
mod files;
mod images;
pub mod receipt;
pub mod report;
mod services;

use expected::Expected;

/// One finding: something on the host that is not as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `image`, `container`, `service`, `file`, `value` or `release`.
    pub kind: &'static str,
    /// The service, container or file concerned.
    pub subject: String,
    /// What differs.
    pub message: String,
}

/// One image as found.
#[derive(Debug, Clone, Serialize)]
pub struct ImageAudit {
    /// Service.
    pub service: String,
    /// Name.
    pub name: String,
    /// Locked config digest.
    pub expected: Digest,
    /// What the runtime has under the name.
    pub found: Option<Digest>,
    /// Locked manifest digest.
    pub expected_manifest: Digest,
    /// The runtime's manifest digest, where it keeps one.
    pub found_manifest: Option<Digest>,
    /// `ok`, `missing`, `mismatch` or `skipped` (no runtime).
    pub status: &'static str,
    /// Platform.
    pub platform: String,
    /// What the tag pointed to when locked (index or manifest).
    pub digest: Digest,
    /// The upstream cosign signature manifest the bundle carries, checked
    /// with its key at lock, fetch, verify and install.
    pub signature: Option<Digest>,
    /// The in-toto predicate types of its upstream attestations.
    pub attestations: Vec<String>,
    /// Packages the SBOM lists inside it (from upstream SPDX attestations).
    pub sbom_packages: Option<usize>,
}

/// One container as found.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerAudit {
    /// Container name.
    pub name: String,
    /// Compose service.
    pub service: String,
    /// Image ID it runs.
    pub image_id: String,
    /// The locked config digest for the service, if it has one.
    pub expected: Option<Digest>,
    /// Container state.
    pub state: String,
    /// `ok`, `mismatch` or `unknown-service`.
    pub status: &'static str,
}

/// One service of the installed compose project, as found.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceAudit {
    /// Compose service.
    pub service: String,
    /// Its containers.
    pub containers: Vec<String>,
    /// The worst state among them (`running`, `exited`, …), or empty.
    pub state: String,
    /// Their health (`healthy`, `unhealthy`, `starting`), or empty without healthcheck.
    pub health: String,
    /// `ok`, `missing`, `stopped` or `unhealthy`; for a job also
    /// `completed` (exited 0) or `failed`.
    pub status: &'static str,
}

/// One file as found.
#[derive(Debug, Clone, Serialize)]
pub struct FileAudit {
    /// Target path.
    pub target: String,
    /// Expected SHA-256 (none for an added file).
    pub expected: Option<Digest>,
    /// Found SHA-256 (none for a missing file).
    pub found: Option<Digest>,
    /// `ok`, `modified`, `missing` or `added`.
    pub status: &'static str,
}

/// The auditor's evidence.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    /// When the audit ran (UTC).
    pub time: String,
    /// The host it ran on.
    pub host: crate::host::Host,
    /// Install directory, absolute.
    pub target: PathBuf,
    /// Installed bundle name.
    pub name: String,
    /// Installed version.
    pub version: String,
    /// Installed bundle's manifest digest.
    pub manifest_digest: Digest,
    /// The minisign key ID the bundle was verified with at install.
    pub key_id: String,
    /// SHA-256 of the bundle's SPDX SBOM, where it has one.
    pub sbom: Option<Digest>,
    /// `bundle` when checked against the signed bundle, `record` otherwise.
    pub reference: &'static str,
    /// Runtime checked.
    pub runtime: String,
    /// Images.
    pub images: Vec<ImageAudit>,
    /// Containers of the compose project.
    pub containers: Vec<ContainerAudit>,
    /// Every service of the compose project (empty where the runtime runs
    /// no compose projects, or the bundle has no compose file).
    pub services: Vec<ServiceAudit>,
    /// Files.
    pub files: Vec<FileAudit>,
    /// Every finding; empty when the host is as signed.
    pub findings: Vec<Finding>,
    /// The vulnerability scan of the release's packages, when the audit
    /// was given a database (`--db`); informational, not a finding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan: Option<crate::scan::ScanReport>,
}

impl AuditReport {
    /// Whether nothing was found.
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Every service of the release installed in `release_dir` as `runtime`
/// runs it (empty where the runtime runs no compose projects, or the
/// bundle has no compose file): what `bale status` shows.
pub fn services(
    release_dir: &Path,
    release: &crate::install::Release,
    runtime: &dyn Runtime,
) -> Result<Vec<ServiceAudit>, InstallError> {
    // Only the image list is needed here, not the files or the SBOM.
    let expected = Expected {
        reference: "record",
        files: Vec::new(),
        images: crate::install::recorded_images(release_dir)?,
        sbom: None,
    };
    let (found, _) = services::audit(
        &expected,
        release_dir,
        release,
        runtime,
        &mut Findings::default(),
    )?;
    Ok(found)
}

/// Findings as the steps make them.
#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, kind: &'static str, subject: &str, message: String) {
        self.0.push(Finding {
            kind,
            subject: subject.to_owned(),
            message,
        });
    }
}

/// Audits the installation in `target` with `runtime`; with `bundle` (and
/// its key), against the signed bundle rather than the installed record.
/// In steps: what is expected, then the images in the runtime, the
/// project's services and containers, and the installed files.
pub fn audit(
    target: &Path,
    runtime: &dyn Runtime,
    bundle: Option<(&Path, &VerifyingKey)>,
) -> Result<AuditReport, InstallError> {
    // The bundle named on the command line is read first: a missing or
    // broken one is an input error, whatever the target holds.
    let opened = bundle
        .map(|(path, key)| OpenBundle::open(path, key))
        .transpose()?;
    let (release_dir, release) =
        current_release(target)?.ok_or_else(|| InstallError::NotInstalled(target.to_owned()))?;
    let target = &std::path::absolute(target).unwrap_or_else(|_| target.to_owned());
    let mut findings = Findings::default();
    let expected = match &opened {
        Some(b) => Expected::from_bundle(b, &release, &mut findings),
        None => Expected::from_record(&release_dir, &release)?,
    };
    let images = images::audit(&expected, runtime, &mut findings)?;
    let (services, containers) =
        services::audit(&expected, &release_dir, &release, runtime, &mut findings)?;
    let files = files::audit(&expected, target, &release_dir, &release, &mut findings);
    Ok(AuditReport {
        time: crate::clock::utc(crate::clock::now()),
        host: crate::host::this(),
        target: target.to_owned(),
        name: release.name.clone(),
        version: release.version.clone(),
        manifest_digest: release.manifest_digest.clone(),
        key_id: release.key_id.clone(),
        sbom: expected.sbom.as_deref().map(Digest::of),
        reference: expected.reference,
        runtime: runtime.name().to_owned(),
        images,
        containers,
        services,
        files,
        findings: findings.0,
        scan: None,
    })
}
