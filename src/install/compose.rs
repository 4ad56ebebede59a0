//! The compose side of a release: image pins, the command line, and `--up`
//! with its wait for every healthcheck.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{InstallError, Release};
use crate::bundle::ImageRecord;
use crate::runtime::{ComposeProject, Container, Runtime};

/// Each service of the compose file `text` with the bundle image it runs:
/// a service named in `[images]` runs that image; any other (one a
/// template made, such as one per tenant) runs the bundle image its
/// `image:` names. Without a compose file, every `[images]` service.
pub fn service_images<'a>(
    text: Option<&str>,
    images: &[&'a ImageRecord],
) -> BTreeMap<String, &'a ImageRecord> {
    let by_service: BTreeMap<&str, &ImageRecord> =
        images.iter().map(|r| (r.service.as_str(), *r)).collect();
    let doc = text.and_then(|t| serde_norway::from_str::<serde_norway::Value>(t).ok());
    let Some(services) = doc
        .as_ref()
        .and_then(|d| d.get("services"))
        .and_then(serde_norway::Value::as_mapping)
    else {
        return by_service
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
    };
    let mut out = BTreeMap::new();
    for (name, svc) in services {
        let Some(name) = name.as_str() else { continue };
        let named = svc.get("image").and_then(|i| i.as_str());
        let record = by_service
            .get(name)
            .copied()
            .or_else(|| named.and_then(|n| images.iter().copied().find(|r| r.name == n)));
        if let Some(r) = record {
            out.insert(name.to_owned(), r);
        }
    }
    out
}

/// The compose override that pins every service of the compose file
/// `text` to its locked image: the one bale loaded, never pulled; or, on a
/// runtime whose nodes pull from `registry` (a swarm), the registry's copy
/// by digest, with `jobs` run once.
pub fn compose_pins(
    images: &[&ImageRecord],
    text: Option<&str>,
    registry: Option<&str>,
    jobs: &[String],
) -> String {
    // The pins carry the compose file's own `version:`: Docker's stack
    // deploy (and docker-compose 1.x) refuse to merge files of two versions,
    // and a file without one counts as the newest.
    let version = text
        .and_then(|t| serde_norway::from_str::<serde_norway::Value>(t).ok())
        .and_then(|d| match d.get("version")? {
            serde_norway::Value::String(v) => Some(v.clone()),
            serde_norway::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .filter(|v| v.bytes().all(|b| b.is_ascii_digit() || b == b'.') && !v.is_empty())
        .map(|v| format!("version: \"{v}\"\n"))
        .unwrap_or_default();
    if let Some(registry) = registry {
        let mut s = format!(
            "# Written by bale install: every service runs its locked image, pulled\n# by digest from the site's registry.\n{version}services:\n",
        );
        for (service, r) in service_images(text, images) {
            s.push_str(&format!(
                "  {service}:\n    image: {}\n",
                crate::runtime::registry_reference(registry, r)
            ));
            if jobs.contains(&service) {
                s.push_str("    deploy:\n      restart_policy:\n        condition: none\n");
            }
        }
        return s;
    }
    let mut s = format!(
        "# Written by bale install: every service runs the image bale loaded,\n# never pulled from a registry.\n{version}services:\n",
    );
    for (service, r) in service_images(text, images) {
        s.push_str(&format!(
            "  {service}:\n    image: {}\n    pull_policy: never\n",
            r.name
        ));
    }
    s
}

/// The compose file of the release in `dir`, as installed (rendered).
pub fn compose_text(dir: &Path, release: &Release) -> Option<String> {
    release
        .compose
        .as_ref()
        .and_then(|c| {
            crate::digest::read_regular(&dir.join(c), crate::templates::MAX_RENDERED as u64).ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
}

/// The compose project of a release: name, directory, env file, and the
/// compose file with bale's image pins merged over it.
pub fn compose_project(
    target: &Path,
    release_dir: &Path,
    release: &Release,
) -> Option<ComposeProject> {
    let compose = release.compose.as_ref()?;
    Some(ComposeProject {
        name: release
            .project
            .clone()
            .unwrap_or_else(|| release.name.clone()),
        directory: release_dir.to_owned(),
        env_file: target.join(".env"),
        files: vec![
            release_dir.join(compose),
            release_dir.join(".bale").join("compose.pins.yml"),
        ],
    })
}

pub(super) fn up(
    target: &Path,
    release_dir: &Path,
    release: &Release,
    runtime: &dyn Runtime,
    timeout: Duration,
    restart: &[String],
    images: &[&ImageRecord],
) -> Result<Vec<Container>, InstallError> {
    let project = compose_project(target, release_dir, release)
        .ok_or_else(|| InstallError::Bundle("the bundle has no compose file to start".into()))?;
    let said = runtime.up(&project, restart)?;
    let text = compose_text(release_dir, release);
    let images = service_images(text.as_deref(), images);
    let pinned: BTreeMap<&str, String> = images
        .iter()
        .map(|(s, r)| (s.as_str(), runtime.reference(r)))
        .collect();
    let deadline = Instant::now() + timeout;
    let mut poked = Instant::now();
    loop {
        let containers = runtime.containers(&project.name)?;
        // Where no service manager runs healthchecks, run them here, about
        // once a second (compose intervals are seconds, not milliseconds).
        if poked.elapsed() >= Duration::from_secs(1) {
            for c in containers.iter().filter(|c| c.health == "starting") {
                runtime.check_health(&c.name);
            }
            poked = Instant::now();
        }
        let is_job = |c: &Container| release.jobs.contains(&c.service);
        // Where nodes pull (a swarm), a task of the image before an
        // update is not the release running yet.
        let stale = |c: &Container| {
            runtime.pulls()
                && pinned
                    .get(c.service.as_str())
                    .is_some_and(|want| want != &c.image)
        };
        // A job that exited non-zero fails the install, with its log.
        if let Some(j) = containers
            .iter()
            .find(|c| is_job(c) && c.state == "exited" && c.exit_code != Some(0))
        {
            return Err(job_failed(j, &project, runtime));
        }
        let waiting: Vec<String> = containers
            .iter()
            .filter(|c| {
                if is_job(c) {
                    c.state != "exited" || stale(c)
                } else {
                    stale(c)
                        || c.state != "running"
                        || !(c.health.is_empty() || c.health == "healthy")
                }
            })
            .map(|c| {
                format!(
                    "{} ({}{})",
                    c.service,
                    c.state,
                    if c.health.is_empty() {
                        String::new()
                    } else {
                        format!("/{}", c.health)
                    }
                )
            })
            .collect();
        let failed = containers.iter().any(|c| {
            !is_job(c) && (c.state == "exited" || c.state == "dead" || c.health == "unhealthy")
        });
        if !containers.is_empty() && waiting.is_empty() {
            return Ok(containers);
        }
        if failed || Instant::now() >= deadline {
            let first = containers
                .iter()
                .find(|c| {
                    !is_job(c)
                        && (c.state == "exited" || c.state == "dead" || c.health == "unhealthy")
                })
                .or_else(|| {
                    containers.iter().find(|c| {
                        c.state != "running" || c.health != "healthy" && !c.health.is_empty()
                    })
                });
            return Err(InstallError::Unhealthy {
                log: first.map(|c| (c.service.clone(), redacted_log(c, &project, runtime))),
                seconds: timeout.as_secs(),
                services: if waiting.is_empty() && containers.is_empty() {
                    // Some compose tools exit 0 when nothing started: show why.
                    vec![format!(
                        "no containers; compose said:\n{}",
                        last_lines(&said, 15)
                    )]
                } else {
                    waiting
                },
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A failed job, with its last log lines (every `.env` value redacted).
fn job_failed(job: &Container, project: &ComposeProject, runtime: &dyn Runtime) -> InstallError {
    InstallError::JobFailed {
        job: job.service.clone(),
        code: job.exit_code.unwrap_or(-1),
        log: redacted_log(job, project, runtime),
    }
}

/// A container's last 20 log lines, every `.env` value redacted.
fn redacted_log(c: &Container, project: &ComposeProject, runtime: &dyn Runtime) -> String {
    let env = std::fs::read_to_string(&project.env_file).unwrap_or_default();
    let env = crate::runtime::env_values(&env);
    let values: Vec<&str> = env.iter().map(|(_, v)| v.as_str()).collect();
    let log = runtime.logs(&c.name, 20).unwrap_or_default();
    crate::runtime::redact(&last_lines(&log, 20), &values)
}

/// The services of the compose file in `release_dir` that bind-mount one of
/// `changed` (paths relative to the release), so that a re-rendered file
/// reaches the process that reads it.
pub(super) fn dependents(release_dir: &Path, release: &Release, changed: &[String]) -> Vec<String> {
    let Some(file) = &release.compose else {
        return Vec::new();
    };
    let Ok(text) = std::fs::read_to_string(release_dir.join(file)) else {
        return Vec::new();
    };
    let Ok(doc) = serde_norway::from_str::<serde_norway::Value>(&text) else {
        return Vec::new();
    };
    let Some(services) = doc
        .get("services")
        .and_then(serde_norway::Value::as_mapping)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, svc) in services {
        let Some(name) = name.as_str() else { continue };
        let sources: Vec<String> = svc
            .get("volumes")
            .and_then(serde_norway::Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(|v| match v {
                serde_norway::Value::String(s) => s.split(':').next().map(str::to_owned),
                m => m.get("source").and_then(|x| x.as_str()).map(str::to_owned),
            })
            .map(|s| s.trim_start_matches("./").trim_end_matches('/').to_owned())
            .collect();
        let uses = changed.iter().any(|c| {
            sources
                .iter()
                .any(|s| !s.is_empty() && (c == s || c.starts_with(&format!("{s}/"))))
        });
        if uses {
            out.push(name.to_owned());
        }
    }
    out
}
