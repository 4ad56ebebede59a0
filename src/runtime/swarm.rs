//! Docker Swarm: a compose stack across hosts. Nodes do not load images
//! from the bundle; they pull them from a registry every node reaches
//! (the bundle served by `bale serve`, or pushed by `bale push`), pinned
//! by digest, so each node runs exactly the locked image.
//!
//! Through the `docker` CLI against a swarm manager (`DOCKER_HOST`):
//! `docker stack deploy` with the compose file and bale's pins, `docker
//! stack ps` for the tasks. Swarm keeps a task "starting" until its
//! healthcheck passes, so a running task is a healthy one.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{
    ArchiveFormat, ComposeProject, Container, Runtime, RuntimeError, RuntimeImage, command_line,
    env_values, redact, run, run_ok, tail,
};
use crate::bundle::ImageRecord;
use crate::digest::Digest;
use crate::manifest::{self, Parsed};
use crate::reference::Reference;
use crate::registry::RegistryClient;

/// A swarm whose nodes pull from `registry` (`HOST[/PREFIX]`).
pub struct Swarm {
    registry: String,
    client: RegistryClient,
    // Pinned reference → (config, manifest): the registry is asked once
    // per reference, not on every poll of `--up`.
    seen: std::sync::Mutex<std::collections::BTreeMap<String, (Digest, Digest)>>,
}

impl Swarm {
    /// A swarm pulling from `registry`, which bale reads with `client` to
    /// check that it holds the locked images.
    pub fn new(registry: &str, client: RegistryClient) -> Self {
        Swarm {
            registry: registry.trim_end_matches('/').to_owned(),
            client,
            seen: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        }
    }
}

/// One task, as `docker stack ps --format '{{json .}}'` prints it.
#[derive(serde::Deserialize)]
struct Task {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Image", default)]
    image: String,
    #[serde(rename = "DesiredState", default)]
    desired: String,
    #[serde(rename = "CurrentState", default)]
    current: String,
}

impl Swarm {
    /// The config digest of the manifest `reference` names, as the
    /// registry serves it (hashed: a registry is not trusted either).
    fn config_of(&self, reference: &str) -> Result<Option<(Digest, Digest)>, RuntimeError> {
        if let Some(hit) = self
            .seen
            .lock()
            .ok()
            .and_then(|m| m.get(reference).cloned())
        {
            return Ok(Some(hit));
        }
        let found = self.fetch_config(reference)?;
        if let (Some(f), Ok(mut m)) = (&found, self.seen.lock()) {
            m.insert(reference.to_owned(), f.clone());
        }
        Ok(found)
    }

    fn fetch_config(&self, reference: &str) -> Result<Option<(Digest, Digest)>, RuntimeError> {
        let Some((name, digest)) = reference.split_once('@') else {
            return Ok(None);
        };
        let r: Reference = format!("{name}:pinned")
            .parse()
            .map_err(|e| RuntimeError::Output {
                command: reference.to_owned(),
                message: format!("{e}"),
            })?;
        let fetched = match self.client.manifest(&r.domain, &r.path, digest) {
            Ok(m) => m,
            Err(crate::registry::RegistryError::NotFound { .. }) => return Ok(None),
            Err(crate::registry::RegistryError::Endpoints {
                not_found: true, ..
            }) => {
                return Ok(None);
            }
            Err(e) => {
                return Err(RuntimeError::Failed {
                    command: format!("GET {reference}"),
                    stderr: e.to_string(),
                });
            }
        };
        let got = Digest::of(&fetched.bytes);
        if got.to_string() != digest {
            return Err(RuntimeError::Failed {
                command: format!("GET {reference}"),
                stderr: format!("the registry served content with digest {got}"),
            });
        }
        match manifest::parse(&fetched.bytes, fetched.content_type.as_deref()) {
            Ok((_, Parsed::Image { config, .. })) => Ok(Some((config.digest, got))),
            _ => Ok(None),
        }
    }
}

impl Runtime for Swarm {
    fn name(&self) -> &str {
        "swarm"
    }

    fn archive_format(&self) -> ArchiveFormat {
        ArchiveFormat::Docker
    }

    fn reference(&self, r: &ImageRecord) -> String {
        super::registry_reference(&self.registry, r)
    }

    fn pulls(&self) -> bool {
        true
    }

    fn registry(&self) -> Option<String> {
        Some(self.registry.clone())
    }

    fn image(&self, reference: &str) -> Result<Option<RuntimeImage>, RuntimeError> {
        Ok(self
            .config_of(reference)?
            .map(|(config, manifest)| RuntimeImage {
                config: Some(config),
                manifest: Some(manifest),
            }))
    }

    fn load(
        &self,
        _write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), RuntimeError> {
        Err(RuntimeError::Unsupported(format!(
            "swarm nodes pull images from {0}, which does not hold them all: put the bundle there first (`bale push BUNDLE --public-key KEY --to {0}`, or `bale serve BUNDLE` at that address)",
            self.registry
        )))
    }

    fn containers(&self, project: &str) -> Result<Vec<Container>, RuntimeError> {
        let args: Vec<String> = [
            "stack",
            "ps",
            project,
            "--no-trunc",
            "--format",
            "{{json .}}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = run("docker", &args)?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
            // No stack of that name (yet): no tasks.
            if err.contains("nothing found in stack") {
                return Ok(Vec::new());
            }
            return Err(RuntimeError::Failed {
                command: command_line("docker", &args),
                stderr: tail(&out.stderr),
            });
        }
        let prefix = format!("{project}_");
        let mut rows = Vec::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let t: Task = serde_json::from_str(line).map_err(|e| RuntimeError::Output {
                command: command_line("docker", &args[..2]),
                message: e.to_string(),
            })?;
            // History rows may be printed as `\_ name`.
            let task_name = t.name.trim_start_matches("\\_ ").trim().to_owned();
            let service = task_name
                .strip_prefix(&prefix)
                .and_then(|s| s.split('.').next())
                .unwrap_or(&task_name)
                .to_owned();
            rows.push((service, task_name, t));
        }
        // A service's tasks that should run are its state, and so are those
        // still being stopped (an update or a scale-down under way: not
        // done yet). A failed task that swarm replaced is history. A
        // service with none that should run whose newest task ended by
        // itself (a job: complete or failed) is told by that task.
        let live: std::collections::BTreeSet<String> = rows
            .iter()
            .filter(|(_, _, t)| t.desired.eq_ignore_ascii_case("running"))
            .map(|(s, _, _)| s.clone())
            .collect();
        let mut ended = std::collections::BTreeSet::new();
        let mut tasks = Vec::new();
        for (service, task_name, t) in rows {
            let running = t.desired.eq_ignore_ascii_case("running");
            let current = t
                .current
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_lowercase();
            let job_end = matches!(current.as_str(), "complete" | "failed" | "rejected");
            let stopping = !running && current == "running";
            if !running
                && !stopping
                && (live.contains(&service) || !job_end || !ended.insert(service.clone()))
            {
                continue;
            }
            let (state, exit_code) = match current.as_str() {
                "running" if stopping => ("stopping", None),
                "running" => ("running", None),
                "complete" => ("exited", Some(0)),
                "failed" | "rejected" => ("exited", Some(1)),
                "shutdown" | "orphaned" | "remove" => ("exited", None),
                // new, pending, assigned, accepted, preparing, ready,
                // starting: swarm runs a task only once it is healthy.
                _ => ("starting", None),
            };
            let image_id = self
                .config_of(&t.image)
                .ok()
                .flatten()
                .map(|(c, _)| c.to_string())
                .unwrap_or_default();
            tasks.push(Container {
                name: format!("{task_name}.{}", t.id),
                service,
                image_id,
                image: t.image,
                state: state.into(),
                health: String::new(),
                exit_code,
            });
        }
        tasks.sort_by(|a, b| a.service.cmp(&b.service).then(a.name.cmp(&b.name)));
        Ok(tasks)
    }

    fn runs_compose(&self) -> bool {
        true
    }

    fn compose(&self, _project: &ComposeProject, args: &[String]) -> Result<String, RuntimeError> {
        Err(RuntimeError::Unsupported(format!(
            "`compose {}` on a swarm: bale deploys stacks with `docker stack deploy`",
            args.join(" ")
        )))
    }

    fn up(&self, project: &ComposeProject, restart: &[String]) -> Result<String, RuntimeError> {
        // `docker stack deploy` reads no env file: the values reach its
        // interpolation through the environment, never the command line.
        let env = std::fs::read_to_string(&project.env_file).unwrap_or_default();
        let env = env_values(&env);
        let mut args: Vec<String> = vec!["stack".into(), "deploy".into(), "--prune".into()];
        for f in &project.files {
            args.push("--compose-file".into());
            args.push(f.display().to_string());
        }
        args.push(project.name.clone());
        let out = Command::new("docker")
            .args(&args)
            .current_dir(&project.directory)
            .envs(env.iter().cloned())
            .stdin(Stdio::null())
            .output()
            .map_err(|source| RuntimeError::Spawn {
                program: "docker".into(),
                source,
            })?;
        let values: Vec<&str> = env.iter().map(|(_, v)| v.as_str()).collect();
        if !out.status.success() {
            return Err(RuntimeError::Failed {
                command: command_line("docker", &args[..2]),
                stderr: redact(&tail(&out.stderr), &values),
            });
        }
        for s in restart {
            run_ok(
                "docker",
                &[
                    "service".into(),
                    "update".into(),
                    "--force".into(),
                    "--detach".into(),
                    format!("{}_{s}", project.name),
                ],
            )?;
        }
        Ok(redact(
            &format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            &values,
        ))
    }

    fn down(&self, project: &ComposeProject) -> Result<String, RuntimeError> {
        let args: Vec<String> = vec!["stack".into(), "rm".into(), project.name.clone()];
        removed_in_time(
            || run_ok("docker", &args),
            Duration::from_secs(1),
            STACK_RM_WAIT,
        )
    }

    fn data_root(&self) -> Option<PathBuf> {
        None
    }

    fn version(&self) -> Option<String> {
        run_ok(
            "docker",
            &[
                "version".into(),
                "--format".into(),
                "{{.Server.Version}}".into(),
            ],
        )
        .ok()
        .map(|v| v.trim().to_owned())
    }

    fn logs(&self, container: &str, lines: usize) -> Result<String, RuntimeError> {
        // `name.slot.taskid` → the task ID, which `service logs` takes.
        let task = container.rsplit('.').next().unwrap_or(container);
        let out = run(
            "docker",
            &[
                "service".into(),
                "logs".into(),
                "--raw".into(),
                "--tail".into(),
                lines.to_string(),
                task.into(),
            ],
        )?;
        Ok(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// How long a stack's removal is tried again while its networks are still
/// held: the services' tasks stop within their grace period (10 s unless
/// the stack file sets `stop_grace_period`), and a database given longer
/// takes longer.
const STACK_RM_WAIT: Duration = Duration::from_secs(120);

/// Runs `rm` (a `docker stack rm`) until it succeeds, again every `pause`
/// while it fails only because a network is still in use, for at most
/// `wait`. Swarm removes the services at once but their tasks stop in
/// their own time, and it refuses to remove a network a stopping task
/// still holds (moby/moby#31068); a later `stack rm` finds the services
/// gone and removes what is left. Any other failure, or the same one
/// after `wait`, is returned as it is.
fn removed_in_time(
    mut rm: impl FnMut() -> Result<String, RuntimeError>,
    pause: Duration,
    wait: Duration,
) -> Result<String, RuntimeError> {
    let until = Instant::now() + wait;
    loop {
        match rm() {
            Err(RuntimeError::Failed { stderr, .. })
                if stderr.contains("is in use by task") && Instant::now() < until =>
            {
                std::thread::sleep(pause);
            }
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IN_USE: &str = "Failed to remove network o2td4b0s2c8d: Error response from daemon: rpc error: code = FailedPrecondition desc = network o2td4b0s2c8d is in use by task t3ppckm4jdlkfailed to remove some resources from stack: s";

    fn failed(stderr: &str) -> RuntimeError {
        RuntimeError::Failed {
            command: "docker stack rm s".into(),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn a_network_still_held_by_a_stopping_task_is_removed_on_a_later_try() {
        let mut tries = 0;
        let out = removed_in_time(
            || {
                tries += 1;
                if tries < 3 {
                    Err(failed(IN_USE))
                } else {
                    Ok("Removing network s_default\n".into())
                }
            },
            Duration::from_millis(1),
            Duration::from_secs(10),
        );
        assert_eq!(out.ok().as_deref(), Some("Removing network s_default\n"));
        assert_eq!(tries, 3);
    }

    /// A removal that always fails with `stderr`: what it returned, and
    /// how many times `docker stack rm` ran.
    fn always_failing(
        stderr: &str,
        pause: Duration,
        wait: Duration,
    ) -> (Result<String, RuntimeError>, u32) {
        let mut tries = 0;
        let out = removed_in_time(
            || {
                tries += 1;
                Err(failed(stderr))
            },
            pause,
            wait,
        );
        (out, tries)
    }

    #[test]
    fn a_stack_removal_that_fails_otherwise_is_not_tried_again() {
        let (out, tries) = always_failing(
            "Cannot connect to the Docker daemon",
            Duration::from_millis(1),
            Duration::from_secs(10),
        );
        assert!(
            matches!(out, Err(RuntimeError::Failed { stderr, .. }) if stderr.contains("Cannot connect"))
        );
        assert_eq!(tries, 1);
    }

    #[test]
    fn a_network_held_past_the_wait_fails_naming_the_task() {
        let (out, tries) =
            always_failing(IN_USE, Duration::from_millis(5), Duration::from_millis(30));
        assert!(
            matches!(out, Err(RuntimeError::Failed { stderr, .. }) if stderr.contains("in use by task"))
        );
        assert!((2..=10).contains(&tries), "{tries} tries");
    }
}
