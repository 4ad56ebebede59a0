//! The compose side of a release: image pins, the command line, and `--up`
//! with its wait for every healthcheck.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{InstallError, InstallOptions, Release};
use crate::bundle::ImageRecord;
use crate::runtime::Container;

/// The compose override that pins every service to the image bale loaded.
pub fn compose_pins(images: &[&ImageRecord]) -> String {
    let mut s = String::from(
        "# Written by bale install: every service runs the image bale loaded,\n# never pulled from a registry.\nservices:\n",
    );
    let mut seen = BTreeSet::new();
    for r in images {
        if seen.insert(&r.service) {
            s.push_str(&format!(
                "  {}:\n    image: {}\n    pull_policy: never\n",
                r.service, r.name
            ));
        }
    }
    s
}

/// The compose command line for a release: project, files, env file.
pub fn compose_args(target: &Path, release_dir: &Path, release: &Release) -> Option<Vec<String>> {
    let compose = release.compose.as_ref()?;
    let project = release
        .project
        .clone()
        .unwrap_or_else(|| release.name.clone());
    Some(vec![
        "--project-name".into(),
        project,
        "--project-directory".into(),
        release_dir.display().to_string(),
        "--env-file".into(),
        target.join(".env").display().to_string(),
        "-f".into(),
        release_dir.join(compose).display().to_string(),
        "-f".into(),
        release_dir
            .join(".bale")
            .join("compose.pins.yml")
            .display()
            .to_string(),
    ])
}

pub(super) fn up(
    target: &Path,
    release_dir: &Path,
    release: &Release,
    opts: &InstallOptions<'_>,
) -> Result<Vec<Container>, InstallError> {
    let mut args = compose_args(target, release_dir, release)
        .ok_or_else(|| InstallError::Bundle("the bundle has no compose file to start".into()))?;
    args.extend(["up".into(), "-d".into(), "--remove-orphans".into()]);
    opts.runtime.compose(&args)?;
    let project = release
        .project
        .clone()
        .unwrap_or_else(|| release.name.clone());
    let deadline = Instant::now() + opts.timeout;
    loop {
        let containers = opts.runtime.containers(&project)?;
        let waiting: Vec<String> = containers
            .iter()
            .filter(|c| c.state != "running" || !(c.health.is_empty() || c.health == "healthy"))
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
        let failed = containers
            .iter()
            .any(|c| c.state == "exited" || c.state == "dead" || c.health == "unhealthy");
        if !containers.is_empty() && waiting.is_empty() {
            return Ok(containers);
        }
        if failed || Instant::now() >= deadline {
            return Err(InstallError::Unhealthy {
                seconds: opts.timeout.as_secs(),
                services: if waiting.is_empty() {
                    vec!["no containers".into()]
                } else {
                    waiting
                },
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
