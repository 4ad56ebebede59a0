//! The audit's services and containers: every service of the compose
//! project running (a job completed), healthy, on its locked image.

use std::collections::BTreeMap;
use std::path::Path;

use super::expected::Expected;
use super::{ContainerAudit, Findings, ServiceAudit};
use crate::bundle::ImageRecord;
use crate::install::{self, Release};
use crate::runtime::{Container, Runtime, RuntimeError};

/// Every service of the project (where the runtime runs compose projects
/// and the bundle has a compose file), and every container it has.
pub(super) fn audit(
    expected: &Expected,
    release_dir: &Path,
    release: &Release,
    runtime: &dyn Runtime,
    findings: &mut Findings,
) -> Result<(Vec<ServiceAudit>, Vec<ContainerAudit>), RuntimeError> {
    let compose = install::compose_text(release_dir, release);
    let service_images = install::service_images(compose.as_deref(), &expected.platform_images());
    let by_service: BTreeMap<&str, &ImageRecord> = service_images
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    let project = release
        .project
        .clone()
        .unwrap_or_else(|| release.name.clone());
    let containers = runtime.containers(&project)?;
    let mut services = Vec::new();
    if runtime.runs_compose() && release.compose.is_some() {
        for service in by_service.keys() {
            let a = service_audit(
                service,
                &containers,
                release.jobs.iter().any(|j| j == service),
            );
            if let Some(m) = why(&a, &project) {
                findings.add("service", service, m);
            }
            services.push(a);
        }
    }
    let containers = containers
        .into_iter()
        .map(|c| container_audit(c, &by_service, findings))
        .collect();
    Ok((services, containers))
}

/// The finding for a service that is not as it should be.
fn why(a: &ServiceAudit, project: &str) -> Option<String> {
    match a.status {
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
    }
}

/// One container against its service's locked image; a running one of an
/// unknown service or on another image is a finding.
fn container_audit(
    c: Container,
    by_service: &BTreeMap<&str, &ImageRecord>,
    findings: &mut Findings,
) -> ContainerAudit {
    let expected = by_service.get(c.service.as_str()).map(|r| r.config.clone());
    let status = match &expected {
        None => "unknown-service",
        Some(e) if e.to_string() == c.image_id => "ok",
        Some(_) => "mismatch",
    };
    if c.state == "running" {
        match status {
            "unknown-service" => findings.add(
                "container",
                &c.name,
                format!(
                    "runs service `{}`, which the bundle does not have",
                    c.service
                ),
            ),
            "mismatch" => findings.add(
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
    ContainerAudit {
        name: c.name,
        service: c.service,
        image_id: c.image_id,
        expected,
        state: c.state,
        status,
    }
}

/// How one service's containers stand.
fn service_audit(service: &str, containers: &[Container], job: bool) -> ServiceAudit {
    let mine: Vec<&Container> = containers.iter().filter(|c| c.service == service).collect();
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
