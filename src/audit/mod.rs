//! `bale audit`: is what runs on this host exactly what was signed?
//!
//! Checks the installed release against its record (or, given the bundle,
//! against the signed bundle itself): every image in the runtime has its
//! locked config digest (and manifest digest where the runtime keeps it),
//! every container of the compose project runs its service's locked image,
//! and every installed file is byte-identical (`.env` excepted).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bundle::{ImageRecord, ImagesFile};
use crate::digest::Digest;
use crate::install::{self, InstallError, OpenBundle, compose_pins, current_release};
use crate::runtime::Runtime;
use crate::sign::VerifyingKey;

pub mod report;

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
    /// Install directory.
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
}

impl AuditReport {
    /// Whether nothing was found.
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Audits the installation in `target` with `runtime`; with `bundle` (and
/// its key), against the signed bundle rather than the installed record.
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
    let mut findings = Vec::new();
    let mut find = |kind: &'static str, subject: &str, message: String| {
        findings.push(Finding {
            kind,
            subject: subject.to_owned(),
            message,
        })
    };

    // What is expected: from the signed bundle, or from the record.
    let (reference, files, images, sbom): (
        &'static str,
        Vec<install::InstalledFile>,
        ImagesFile,
        Option<Vec<u8>>,
    ) = match opened {
        Some(b) => {
            let digest = Some(b.content_digest());
            if digest.as_ref() != Some(&release.manifest_digest) {
                find(
                    "release",
                    &release.version,
                    format!(
                        "the installed release has manifest {}, the bundle {}",
                        release.manifest_digest,
                        digest.map_or("none".into(), |d| d.to_string())
                    ),
                );
            }
            // A template's rendered digest comes from the record,
            // where the record names this very template.
            let rendered: BTreeMap<&str, &install::InstalledFile> = release
                .files
                .iter()
                .map(|f| (f.target.as_str(), f))
                .collect();
            let files = b
                .manifest
                .entries
                .iter()
                .filter_map(|e| {
                    e.path.strip_prefix(crate::bundle::FILES_PREFIX).map(|t| {
                        match rendered.get(t) {
                            Some(r) if r.template.as_ref() == Some(&e.sha256) => (*r).clone(),
                            _ => install::InstalledFile {
                                target: t.to_owned(),
                                sha256: e.sha256.clone(),
                                size: e.size,
                                template: None,
                            },
                        }
                    })
                })
                .collect();
            let mut sbom = Vec::new();
            let sbom = b
                .copy_entry(crate::bundle::SBOM_PATH, &mut sbom)
                .ok()
                .map(|()| sbom);
            ("bundle", files, b.images.clone(), sbom)
        }
        None => {
            let path = release_dir.join(".bale").join("images.json");
            let images: ImagesFile = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| InstallError::Unsafe {
                    path: path.clone(),
                    message: "missing or unreadable".into(),
                })?;
            let sbom = std::fs::read(release_dir.join(".bale").join("sbom.spdx.json")).ok();
            ("record", release.files.clone(), images, sbom)
        }
    };
    let sbom_counts = sbom
        .as_deref()
        .map(|b| crate::bundle::sbom::contained_counts(b, images.images.len()));
    let first = images.images.first().map(|i| i.platform.clone());
    let platform_images: Vec<&ImageRecord> = images
        .images
        .iter()
        .filter(|i| Some(&i.platform) == first.as_ref())
        .collect();

    // Images in the runtime.
    let mut image_audits = Vec::new();
    for (n, r) in images
        .images
        .iter()
        .enumerate()
        .filter(|(_, i)| Some(&i.platform) == first.as_ref())
    {
        let (found, found_manifest, status) = if runtime.name() == "none" {
            (None, None, "skipped")
        } else {
            match runtime.image(&runtime.reference(r))? {
                None => {
                    find(
                        "image",
                        &r.service,
                        format!("{} is not in {}", r.name, runtime.name()),
                    );
                    (None, None, "missing")
                }
                Some(img) => {
                    let config_ok = img.config.as_ref() == Some(&r.config);
                    let manifest_ok = img.manifest.as_ref().is_none_or(|m| m == &r.manifest);
                    if !config_ok {
                        find(
                            "image",
                            &r.service,
                            format!(
                                "{} is {} in {}, locked {}",
                                r.name,
                                img.config
                                    .as_ref()
                                    .map_or("unknown".into(), |d| d.to_string()),
                                runtime.name(),
                                r.config
                            ),
                        );
                    } else if !manifest_ok {
                        find(
                            "image",
                            &r.service,
                            format!(
                                "{} has manifest {}, locked {}",
                                r.name,
                                img.manifest
                                    .as_ref()
                                    .map_or("unknown".into(), |d| d.to_string()),
                                r.manifest
                            ),
                        );
                    }
                    let status = if config_ok && manifest_ok {
                        "ok"
                    } else {
                        "mismatch"
                    };
                    (img.config, img.manifest, status)
                }
            }
        };
        image_audits.push(ImageAudit {
            service: r.service.clone(),
            name: r.name.clone(),
            expected: r.config.clone(),
            found,
            expected_manifest: r.manifest.clone(),
            found_manifest,
            status,
            platform: r.platform.clone(),
            digest: r.digest.clone(),
            signature: r.signature.as_ref().map(|s| s.manifest.clone()),
            attestations: r
                .attestations
                .iter()
                .flat_map(|a| a.predicate_types.iter().cloned())
                .collect(),
            sbom_packages: sbom_counts.as_ref().map(|c| c.get(n).copied().unwrap_or(0)),
        });
    }

    // Containers of the project.
    let compose = install::compose_text(&release_dir, &release);
    let service_images = install::service_images(compose.as_deref(), &platform_images);
    let by_service: BTreeMap<&str, &ImageRecord> = service_images
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    let project = release
        .project
        .clone()
        .unwrap_or_else(|| release.name.clone());
    let containers = runtime.containers(&project)?;
    let mut service_audits = Vec::new();
    if runtime.runs_compose() && release.compose.is_some() {
        for service in by_service.keys() {
            let a = service_audit(
                service,
                &containers,
                release.jobs.iter().any(|j| j == service),
            );
            let why = match a.status {
                "missing" => Some(format!(
                    "missing: no container of project `{project}` runs it (start the stack: `bale install … --up`)"
                )),
                "stopped" => Some(format!(
                    "stopped: {} is {}",
                    a.containers.join(", "),
                    a.state
                )),
                "unhealthy" => Some(format!(
                    "unhealthy: its healthcheck fails ({})",
                    a.containers.join(", ")
                )),
                "failed" => Some(format!(
                    "job failed: {} exited with an error; `bale install … --up` runs it again",
                    a.containers.join(", ")
                )),
                _ => None,
            };
            if let Some(m) = why {
                find("service", service, m);
            }
            service_audits.push(a);
        }
    }
    let mut container_audits = Vec::new();
    for c in containers {
        let expected = by_service.get(c.service.as_str()).map(|r| r.config.clone());
        let status = match &expected {
            None => "unknown-service",
            Some(e) if e.to_string() == c.image_id => "ok",
            Some(_) => "mismatch",
        };
        if c.state == "running" {
            match status {
                "unknown-service" => find(
                    "container",
                    &c.name,
                    format!(
                        "runs service `{}`, which the bundle does not have",
                        c.service
                    ),
                ),
                "mismatch" => find(
                    "container",
                    &c.service,
                    format!(
                        "container {} runs image {}, locked {}",
                        c.name,
                        c.image_id,
                        expected.as_ref().map_or(String::new(), |d| d.to_string())
                    ),
                ),
                _ => {}
            }
        }
        container_audits.push(ContainerAudit {
            name: c.name,
            service: c.service,
            image_id: c.image_id,
            expected,
            state: c.state,
            status,
        });
    }

    // Files: every expected one byte-identical, nothing added.
    let mut file_audits = Vec::new();
    let expected: BTreeMap<&str, &Digest> = files
        .iter()
        .map(|f| (f.target.as_str(), &f.sha256))
        .collect();
    let mut present = BTreeSet::new();
    for e in walkdir::WalkDir::new(&release_dir)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() != 1 || e.file_name() != ".bale")
        .flatten()
    {
        if e.file_type().is_dir() {
            continue;
        }
        let rel = e
            .path()
            .strip_prefix(&release_dir)
            .ok()
            .and_then(|p| p.to_str())
            .unwrap_or_default()
            .to_owned();
        present.insert(rel.clone());
        let found = if e.file_type().is_file() {
            crate::digest::hash_regular(e.path()).ok().map(|(d, _)| d)
        } else {
            None
        };
        match expected.get(rel.as_str()) {
            None => {
                find("file", &rel, "added: not part of the bundle".into());
                file_audits.push(FileAudit {
                    target: rel,
                    expected: None,
                    found,
                    status: "added",
                });
            }
            Some(want) => {
                let ok = found.as_ref() == Some(*want) && e.file_type().is_file();
                if !ok {
                    find(
                        "file",
                        &rel,
                        format!(
                            "modified: {} instead of {want}",
                            found
                                .as_ref()
                                .map_or("not a regular file".into(), |d| d.to_string())
                        ),
                    );
                }
                file_audits.push(FileAudit {
                    target: rel,
                    expected: Some((*want).clone()),
                    found,
                    status: if ok { "ok" } else { "modified" },
                });
            }
        }
    }
    for f in &files {
        if !present.contains(&f.target) {
            find("file", &f.target, "missing".into());
            file_audits.push(FileAudit {
                target: f.target.clone(),
                expected: Some(f.sha256.clone()),
                found: None,
                status: "missing",
            });
        }
    }
    for name in install::changed_since_install(target, &release) {
        find(
            "value",
            &name,
            "changed in .env since the last install; `bale install` of the same bundle applies it"
                .into(),
        );
    }
    let pins = release_dir.join(".bale").join("compose.pins.yml");
    if crate::digest::read_regular(&pins, crate::templates::MAX_RENDERED as u64)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .as_deref()
        != Some(
            compose_pins(
                &platform_images,
                compose.as_deref(),
                release.runtime_registry.as_deref(),
                &release.jobs,
            )
            .as_str(),
        )
    {
        find(
            "file",
            ".bale/compose.pins.yml",
            "modified: the compose image pins are not the locked images".into(),
        );
    }
    file_audits.sort_by(|a, b| a.target.cmp(&b.target));

    Ok(AuditReport {
        target: target.to_owned(),
        name: release.name.clone(),
        version: release.version.clone(),
        manifest_digest: release.manifest_digest.clone(),
        key_id: release.key_id.clone(),
        sbom: sbom.as_deref().map(Digest::of),
        reference,
        runtime: runtime.name().to_owned(),
        images: image_audits,
        containers: container_audits,
        services: service_audits,
        files: file_audits,
        findings,
    })
}

/// How one service's containers stand.
fn service_audit(
    service: &str,
    containers: &[crate::runtime::Container],
    job: bool,
) -> ServiceAudit {
    let mine: Vec<&crate::runtime::Container> =
        containers.iter().filter(|c| c.service == service).collect();
    if job && !mine.is_empty() {
        // A job that finished is done, not stopped.
        let failed = mine
            .iter()
            .find(|c| c.state == "exited" && c.exit_code != Some(0));
        let c = failed.copied().unwrap_or(mine[0]);
        return ServiceAudit {
            service: service.to_owned(),
            containers: mine.iter().map(|c| c.name.clone()).collect(),
            state: c.state.clone(),
            health: c.health.clone(),
            status: match (failed, c.state.as_str()) {
                (Some(_), _) => "failed",
                (None, "exited") => "completed",
                _ => "ok",
            },
        };
    }
    let stopped = mine.iter().find(|c| c.state != "running");
    let unhealthy = mine.iter().find(|c| c.health == "unhealthy");
    let (state, health, status) = match (mine.first(), stopped, unhealthy) {
        (None, _, _) => (String::new(), String::new(), "missing"),
        (_, Some(c), _) => (c.state.clone(), c.health.clone(), "stopped"),
        (_, None, Some(c)) => (c.state.clone(), c.health.clone(), "unhealthy"),
        (Some(c), None, None) => (c.state.clone(), c.health.clone(), "ok"),
    };
    ServiceAudit {
        service: service.to_owned(),
        containers: mine.iter().map(|c| c.name.clone()).collect(),
        state,
        health,
        status,
    }
}
