//! The compose side of a release: image pins, the command line, and `--up`
//! with its wait for every healthcheck.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{InstallError, InstallOptions, Release};
use crate::bundle::ImageRecord;
use crate::runtime::{ComposeProject, Container};

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
    opts: &InstallOptions<'_>,
) -> Result<Vec<Container>, InstallError> {
    let project = compose_project(target, release_dir, release)
        .ok_or_else(|| InstallError::Bundle("the bundle has no compose file to start".into()))?;
    let said = opts.runtime.compose(
        &project,
        &["up".into(), "-d".into(), "--remove-orphans".into()],
    )?;
    let deadline = Instant::now() + opts.timeout;
    let mut poked = Instant::now();
    loop {
        let containers = opts.runtime.containers(&project.name)?;
        // Where no service manager runs healthchecks, run them here, about
        // once a second (compose intervals are seconds, not milliseconds).
        if poked.elapsed() >= Duration::from_secs(1) {
            for c in containers.iter().filter(|c| c.health == "starting") {
                opts.runtime.check_health(&c.name);
            }
            poked = Instant::now();
        }
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
                    // Some compose tools exit 0 when nothing started: show why.
                    vec![format!(
                        "no containers; compose said:\n{}",
                        said.lines()
                            .rev()
                            .take(15)
                            .collect::<Vec<_>>()
                            .into_iter()
                            .rev()
                            .collect::<Vec<_>>()
                            .join("\n")
                    )]
                } else {
                    waiting
                },
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
