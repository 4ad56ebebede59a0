//! Docker and Podman, through their (compatible) CLIs and compose tools.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::digest::Digest;

use super::{
    ArchiveFormat, ComposeProject, Container, Present, Runtime, RuntimeError, RuntimeImage, Volume,
    chain_ids, command_line, engine, env_values, full_id, load_via, redact, run, run_ok, tail,
};

/// Docker, or Podman, through their (compatible) CLIs.
pub struct DockerCli {
    program: String,
    /// The compose command and what its `version` printed, found once: a
    /// probe of `docker-compose` (Python) costs most of a second.
    compose: std::sync::OnceLock<Option<(Vec<String>, String)>>,
    /// The Unix socket of the Engine API the CLI talks to, found once
    /// (`docker context inspect`, which honours `DOCKER_HOST` and contexts);
    /// `None` for Podman and for an endpoint that is no Unix socket.
    engine: std::sync::OnceLock<Option<PathBuf>>,
}

impl DockerCli {
    /// Docker: `docker`, compose as `docker compose` or `docker-compose`.
    pub fn docker() -> Self {
        DockerCli {
            program: "docker".into(),
            compose: std::sync::OnceLock::new(),
            engine: std::sync::OnceLock::new(),
        }
    }

    /// Podman: `podman`, compose as `podman compose` or `podman-compose`.
    pub fn podman() -> Self {
        DockerCli {
            program: "podman".into(),
            compose: std::sync::OnceLock::new(),
            engine: std::sync::OnceLock::new(),
        }
    }

    /// The Engine API's Unix socket the `docker` CLI would use: the host
    /// of its current context, so that bale talks to the daemon the
    /// operator's `docker` talks to, or to none.
    fn engine_socket(&self) -> Option<&PathBuf> {
        self.engine
            .get_or_init(|| {
                if self.program != "docker" {
                    return None;
                }
                let args: Vec<String> = vec![
                    "context".into(),
                    "inspect".into(),
                    "--format".into(),
                    "{{.Endpoints.docker.Host}}".into(),
                ];
                let out = run(&self.program, &args).ok()?;
                if !out.status.success() {
                    return None;
                }
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .strip_prefix("unix://")
                    .filter(|p| p.starts_with('/'))
                    .map(PathBuf::from)
            })
            .as_ref()
    }

    /// Asks dockerd's Engine API for `GET path` and reads its JSON answer:
    /// `Some(Ok(None))` for a 404 (no such object), `None` where there is
    /// no socket to ask, so that the caller asks through the CLI.
    fn engine_get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Option<Result<Option<T>, RuntimeError>> {
        let (status, body) = match engine::get(self.engine_socket()?, path)? {
            Ok(answer) => answer,
            Err(e) => return Some(Err(e)),
        };
        let request = || format!("GET {path} (Docker Engine API)");
        Some(match status {
            200 => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| RuntimeError::Output {
                    command: request(),
                    message: e.to_string(),
                }),
            404 => Ok(None),
            _ => Err(RuntimeError::Failed {
                command: request(),
                stderr: format!("dockerd answered {status}: {}", tail(&body)),
            }),
        })
    }

    fn compose_command(&self) -> Result<Vec<String>, RuntimeError> {
        self.compose_found().map(|(c, _)| c.clone()).ok_or_else(|| {
            RuntimeError::Unsupported(format!(
                "neither `{0} compose` nor `{0}-compose` is available",
                self.program
            ))
        })
    }

    /// `PROGRAM compose`, else `PROGRAM-compose`, with the output of its
    /// `version`; probed at the first call only.
    fn compose_found(&self) -> Option<&(Vec<String>, String)> {
        self.compose
            .get_or_init(|| {
                let version = |program: &str, args: &[String]| {
                    run(program, args)
                        .ok()
                        .filter(|o| o.status.success())
                        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                };
                if let Some(v) = version(&self.program, &["compose".into(), "version".into()]) {
                    return Some((vec![self.program.clone(), "compose".into()], v));
                }
                let standalone = format!("{}-compose", self.program);
                version(&standalone, &["version".into()]).map(|v| (vec![standalone], v))
            })
            .as_ref()
    }
}

#[derive(serde::Deserialize)]
struct Inspect {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Image", default)]
    image: String,
    #[serde(rename = "Config", default)]
    config: Option<InspectConfig>,
    #[serde(rename = "State", default)]
    state: Option<InspectState>,
}

impl Inspect {
    /// An image as `image` reports it: its ID is its config digest.
    fn runtime_image(&self) -> RuntimeImage {
        RuntimeImage {
            config: full_id(&self.id).parse().ok(),
            manifest: None,
        }
    }
}

/// An image as `GET /images/json` lists it.
#[derive(serde::Deserialize)]
struct Listed {
    #[serde(rename = "Id")]
    id: String,
}

/// The layers of an image as `GET /images/{id}/json` gives them.
#[derive(serde::Deserialize)]
struct Layers {
    #[serde(rename = "RootFS", default)]
    rootfs: RootFs,
}

#[derive(serde::Deserialize, Default)]
struct RootFs {
    #[serde(rename = "Layers", default)]
    layers: Option<Vec<String>>,
}

#[derive(serde::Deserialize, Default)]
struct InspectConfig {
    #[serde(rename = "Image", default)]
    image: String,
    #[serde(rename = "Labels", default)]
    labels: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(serde::Deserialize, Default)]
struct InspectState {
    #[serde(rename = "Status", default)]
    status: String,
    #[serde(rename = "Health", default)]
    health: Option<InspectHealth>,
    #[serde(rename = "ExitCode", default)]
    exit_code: Option<i64>,
}

#[derive(serde::Deserialize, Default)]
struct InspectHealth {
    #[serde(rename = "Status", default)]
    status: String,
}

impl DockerCli {
    /// Whether a container of `project` was made by compose running in
    /// another directory than the project's (another release).
    fn made_elsewhere(&self, project: &ComposeProject) -> Result<bool, RuntimeError> {
        let out = run_ok(
            &self.program,
            &[
                "ps".into(),
                "-a".into(),
                "--filter".into(),
                format!("label=com.docker.compose.project={}", project.name),
                "--format".into(),
                "{{ index .Labels \"com.docker.compose.project.working_dir\" }}".into(),
            ],
        )?;
        let here = project.directory.display().to_string();
        Ok(out
            .lines()
            .map(str::trim)
            .any(|d| !d.is_empty() && d != here))
    }
}

impl Runtime for DockerCli {
    fn name(&self) -> &str {
        &self.program
    }

    fn archive_format(&self) -> ArchiveFormat {
        ArchiveFormat::Docker
    }

    fn warm(&self, compose: bool) {
        // `docker context inspect` takes 0.04 s and the loads want its
        // answer first. `docker-compose version` (Python) takes 0.4 s of
        // wall and 0.6 s of CPU, taken from dockerd's unpacking on a
        // busy host: it runs only for an install that will need it.
        let _ = self.engine_socket();
        if compose {
            let _ = self.compose_found();
        }
    }

    fn parallel_loads(&self) -> usize {
        // dockerd takes concurrent loads; Podman's storage serialises
        // them on its own lock, so one stream is as fast there.
        if self.program == "docker" {
            docker_streams(std::thread::available_parallelism().map_or(2, |n| n.get()))
        } else {
            1
        }
    }

    fn image(&self, reference: &str) -> Result<Option<RuntimeImage>, RuntimeError> {
        if let Some(answer) = self.engine_get(&format!("/images/{reference}/json")) {
            return Ok(answer?.as_ref().map(Inspect::runtime_image));
        }
        let args: Vec<String> = vec!["image".into(), "inspect".into(), reference.into()];
        let out = run(&self.program, &args)?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
            // Docker: "No such image"; Podman: "image not known".
            if err.contains("no such")
                || err.contains("not found")
                || err.contains("unknown")
                || err.contains("not known")
            {
                return Ok(None);
            }
            return Err(RuntimeError::Failed {
                command: command_line(&self.program, &args),
                stderr: tail(&out.stderr),
            });
        }
        let list: Vec<Inspect> =
            serde_json::from_slice(&out.stdout).map_err(|e| RuntimeError::Output {
                command: command_line(&self.program, &args),
                message: e.to_string(),
            })?;
        Ok(list.first().map(Inspect::runtime_image))
    }

    fn load(
        &self,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), RuntimeError> {
        // Straight to dockerd where the CLI would talk to a local socket:
        // the CLI would only copy the archive from its stdin to it.
        if let Some(stream) = self.engine_socket().and_then(|p| engine::connect(p)) {
            return engine::load(stream, write);
        }
        load_via(&self.program, &["load".into()], write)
    }

    fn takes_inflated_layers(&self) -> bool {
        // dockerd inflates a gzip layer with `unpigz` at twice the CPU
        // zlib-rs takes; through the CLI the 2.6× larger stream would cost
        // that back.
        self.engine_socket().is_some()
    }

    /// The chain IDs of every image's layers. Docker only: `podman load`
    /// reads every layer file the archive lists.
    fn present(&self) -> Result<Present, RuntimeError> {
        if self.program != "docker" {
            return Ok(Present::default());
        }
        if let Some(listed) = self.engine_get::<Vec<Listed>>("/images/json?all=1") {
            let mut present = Present::default();
            for image in listed?.unwrap_or_default() {
                let layers = self
                    .engine_get::<Layers>(&format!("/images/{}/json", image.id))
                    .transpose()?
                    .flatten();
                // An image removed between the two questions holds nothing.
                let diffs = layers.and_then(|l| l.rootfs.layers).unwrap_or_default();
                present.chains.extend(chains_of(&diffs));
            }
            return Ok(present);
        }
        let ids = run_ok(
            &self.program,
            &[
                "image".into(),
                "ls".into(),
                "-aq".into(),
                "--no-trunc".into(),
            ],
        )?;
        let mut ids: Vec<String> = ids.split_whitespace().map(str::to_owned).collect();
        ids.sort();
        ids.dedup();
        let mut present = Present::default();
        if ids.is_empty() {
            return Ok(present);
        }
        let mut args: Vec<String> = vec![
            "image".into(),
            "inspect".into(),
            "--format".into(),
            "{{json .RootFS.Layers}}".into(),
        ];
        args.extend(ids);
        let out = run_ok(&self.program, &args)?;
        for line in out.lines().filter(|l| !l.trim().is_empty()) {
            let diffs = serde_json::from_str::<Option<Vec<String>>>(line)
                .map_err(|e| RuntimeError::Output {
                    command: command_line(&self.program, &args[..2]),
                    message: e.to_string(),
                })?
                .unwrap_or_default();
            present.chains.extend(chains_of(&diffs));
        }
        Ok(present)
    }

    fn containers(&self, project: &str) -> Result<Vec<Container>, RuntimeError> {
        let ids = run_ok(
            &self.program,
            &[
                "ps".into(),
                "-a".into(),
                "-q".into(),
                "--no-trunc".into(),
                "--filter".into(),
                format!("label=com.docker.compose.project={project}"),
            ],
        )?;
        let ids: Vec<String> = ids.split_whitespace().map(str::to_owned).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec!["container".to_owned(), "inspect".to_owned()];
        args.extend(ids);
        let out = run_ok(&self.program, &args)?;
        let list: Vec<Inspect> = serde_json::from_str(&out).map_err(|e| RuntimeError::Output {
            command: command_line(&self.program, &args[..2]),
            message: e.to_string(),
        })?;
        let mut out: Vec<Container> = list
            .into_iter()
            .map(|i| {
                let config = i.config.unwrap_or_default();
                let state = i.state.unwrap_or_default();
                Container {
                    name: i.name.trim_start_matches('/').to_owned(),
                    service: config
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("com.docker.compose.service").cloned())
                        .unwrap_or_default(),
                    image_id: full_id(&i.image),
                    image: config.image,
                    exit_code: (state.status == "exited")
                        .then_some(state.exit_code)
                        .flatten(),
                    state: state.status,
                    health: state.health.map(|h| h.status).unwrap_or_default(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.service.cmp(&b.service).then(a.name.cmp(&b.name)));
        Ok(out)
    }

    fn runs_compose(&self) -> bool {
        true
    }

    fn compose(&self, project: &ComposeProject, args: &[String]) -> Result<String, RuntimeError> {
        let mut cmd = self.compose_command()?;
        let program = cmd.remove(0);
        let env = std::fs::read_to_string(&project.env_file).unwrap_or_default();
        let env = env_values(&env);
        let files = project
            .files
            .iter()
            .flat_map(|f| ["-f".to_owned(), f.display().to_string()]);
        let mut c = Command::new(&program);
        // The values reach compose's interpolation through the environment,
        // byte for byte: no compose tool parses `.env` (their dotenv readers
        // expand `${X}` and strip quotes and comments; see `crate::dotenv`).
        c.stdin(Stdio::null())
            .current_dir(&project.directory)
            .envs(env.iter().cloned());
        if program.ends_with("podman-compose") {
            // podman-compose (1.0) has neither --project-directory nor
            // --env-file: it runs in the project directory.
            cmd.extend(["-p".into(), project.name.clone()]);
            cmd.extend(files);
        } else {
            cmd.extend([
                "--project-name".into(),
                project.name.clone(),
                "--project-directory".into(),
                project.directory.display().to_string(),
            ]);
            cmd.extend(files);
        }
        cmd.extend(args.iter().cloned());
        let out = c
            .args(&cmd)
            .output()
            .map_err(|source| RuntimeError::Spawn {
                program: program.clone(),
                source,
            })?;
        // Compose tools echo the commands they run, secrets included:
        // nothing of theirs reaches bale's output unredacted.
        let values: Vec<&str> = env.iter().map(|(_, v)| v.as_str()).collect();
        let said = redact(
            &format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            &values,
        );
        if !out.status.success() {
            return Err(RuntimeError::Failed {
                command: command_line(&program, &cmd[..cmd.len().min(2)]),
                stderr: redact(&tail(&out.stderr), &values),
            });
        }
        Ok(said)
    }

    fn data_root(&self) -> Option<PathBuf> {
        let format = if self.program == "podman" {
            "{{.Store.GraphRoot}}"
        } else {
            "{{.DockerRootDir}}"
        };
        let out = run_ok(
            &self.program,
            &["info".into(), "--format".into(), format.into()],
        )
        .ok()?;
        let p = out.trim();
        (!p.is_empty()).then(|| PathBuf::from(p))
    }

    fn version(&self) -> Option<String> {
        let format = if self.program == "podman" {
            "{{.Version}}"
        } else {
            "{{.Server.Version}}"
        };
        run_ok(
            &self.program,
            &["version".into(), "--format".into(), format.into()],
        )
        .ok()
        .map(|v| v.trim().to_owned())
    }

    fn compose_version(&self) -> Option<String> {
        let (_, out) = self.compose_found()?;
        // "docker-compose version 1.29.2, build …", "podman-compose version 1.0.3",
        // "Docker Compose version v2.20.2": the word after the first "version".
        out.lines().find_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "version")?;
            words.next().map(|w| w.trim_end_matches(',').to_owned())
        })
    }

    fn logs(&self, container: &str, lines: usize) -> Result<String, RuntimeError> {
        let args = vec![
            "logs".to_owned(),
            "--tail".to_owned(),
            lines.to_string(),
            container.to_owned(),
        ];
        let out = run(&self.program, &args)?;
        Ok(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    fn up(&self, project: &ComposeProject, restart: &[String]) -> Result<String, RuntimeError> {
        let mut args = vec![
            "up".to_owned(),
            "-d".to_owned(),
            "--remove-orphans".to_owned(),
        ];
        // podman-compose (1.0) never recreates a container whose
        // configuration changed: it starts the old one again. A container
        // made from another release's directory is recreated by hand.
        if self
            .compose_command()?
            .first()
            .is_some_and(|c| c.ends_with("podman-compose"))
            && self.made_elsewhere(project)?
        {
            // (Its `-t` is passed on as a float, which `podman stop`
            // refuses: the default 10 s grace stays.)
            args = vec!["up".into(), "-d".into(), "--force-recreate".into()];
        }
        let said = self.compose(project, &args)?;
        if !restart.is_empty() {
            let mut args = vec!["restart".to_owned()];
            args.extend(restart.iter().cloned());
            self.compose(project, &args)?;
        }
        Ok(said)
    }

    fn down(&self, project: &ComposeProject) -> Result<String, RuntimeError> {
        // podman-compose (1.0) knows no --remove-orphans for `down`.
        let standalone = self
            .compose_command()?
            .first()
            .is_some_and(|c| c.ends_with("podman-compose"));
        let mut args = vec!["down".to_owned()];
        if !standalone {
            args.push("--remove-orphans".into());
        }
        self.compose(project, &args)
    }

    fn volumes(&self, project: &str) -> Result<Vec<Volume>, RuntimeError> {
        // docker-compose and podman-compose both label what they create
        // with the project.
        let names = run_ok(
            &self.program,
            &[
                "volume".into(),
                "ls".into(),
                "-q".into(),
                "--filter".into(),
                format!("label=com.docker.compose.project={project}"),
            ],
        )?;
        let mut names: Vec<String> = names.split_whitespace().map(str::to_owned).collect();
        names.sort();
        names.dedup();
        let mut out = Vec::new();
        for name in names {
            let args = vec![
                "volume".to_owned(),
                "inspect".to_owned(),
                "--format".to_owned(),
                "{{.Mountpoint}}".to_owned(),
                name.clone(),
            ];
            let at = run_ok(&self.program, &args)?;
            let at = at.trim();
            if !at.starts_with('/') {
                return Err(RuntimeError::Output {
                    command: command_line(&self.program, &args[..2]),
                    message: format!(
                        "volume {name} has no local mountpoint (another volume driver)"
                    ),
                });
            }
            out.push(Volume {
                name,
                mountpoint: PathBuf::from(at),
            });
        }
        Ok(out)
    }

    fn stop(&self, containers: &[String], grace: u64) -> Result<(), RuntimeError> {
        if containers.is_empty() {
            return Ok(());
        }
        let mut args = vec!["stop".to_owned(), "-t".to_owned(), grace.to_string()];
        args.extend(containers.iter().cloned());
        run_ok(&self.program, &args).map(drop)
    }

    fn start(&self, containers: &[String]) -> Result<(), RuntimeError> {
        if containers.is_empty() {
            return Ok(());
        }
        let mut args = vec!["start".to_owned()];
        args.extend(containers.iter().cloned());
        run_ok(&self.program, &args).map(drop)
    }

    fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        run_ok(&self.program, &["volume".into(), "rm".into(), name.into()]).map(drop)
    }

    fn remove_image(&self, id: &Digest) -> Result<Option<u64>, RuntimeError> {
        let Some(size) = self.image_size(id)? else {
            return Ok(None);
        };
        // Never forced: an image a container uses, or one tagged under
        // other names too, stays.
        let out = run(
            &self.program,
            &["image".into(), "rm".into(), id.to_string()],
        )?;
        Ok(out.status.success().then_some(size))
    }

    fn image_size(&self, id: &Digest) -> Result<Option<u64>, RuntimeError> {
        let out = run(
            &self.program,
            &[
                "image".into(),
                "inspect".into(),
                "--format".into(),
                "{{.Size}}".into(),
                id.to_string(),
            ],
        )?;
        if !out.status.success() {
            return Ok(None);
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse().ok())
    }

    fn check_health(&self, container: &str) {
        if self.program == "podman" {
            let _ = run(
                &self.program,
                &["healthcheck".into(), "run".into(), container.into()],
            );
        }
    }
}

/// The chain IDs of an image whose layers dockerd lists by diff ID.
fn chains_of(diff_ids: &[String]) -> Vec<Digest> {
    let diffs: Vec<Digest> = diff_ids.iter().filter_map(|d| d.parse().ok()).collect();
    chain_ids(&diffs)
}

/// How many loads go to dockerd at once on `cores` cores: one more than
/// the cores. Each load spends part of its time with dockerd copying the
/// archive into its temporary directory, which takes little CPU; a third
/// stream on two cores fills those gaps (a scale-1 install: 19.28 s
/// against 19.77 s, median of 11 runs each in turns, part 15); a fourth
/// was slower again.
fn docker_streams(cores: usize) -> usize {
    (cores + 1).clamp(2, 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_output_never_carries_env_values() {
        let env = env_values("# c\nTOKEN=s3cr3t-value\nexport PORT=\"8080\"\nX=ab\n");
        assert_eq!(env[1], ("PORT".to_owned(), "8080".to_owned()));
        let values: Vec<&str> = env.iter().map(|(_, v)| v.as_str()).collect();
        let said = redact("podman run -e TOKEN=s3cr3t-value -p 8080:80 ab", &values);
        assert_eq!(said, "podman run -e TOKEN=<redacted> -p <redacted>:80 ab");
    }

    #[test]
    fn dockerd_gets_one_load_more_than_the_cores() {
        assert_eq!(docker_streams(1), 2);
        assert_eq!(docker_streams(2), 3);
        assert_eq!(docker_streams(64), 5);
        assert_eq!(DockerCli::podman().parallel_loads(), 1);
        assert!(DockerCli::docker().parallel_loads() >= 2);
    }

    #[test]
    fn the_compose_tool_is_probed_only_for_an_install_that_starts_services() {
        let cli = DockerCli {
            program: "bale-test-no-such-runtime".into(),
            compose: std::sync::OnceLock::new(),
            engine: std::sync::OnceLock::new(),
        };
        cli.warm(false);
        assert!(cli.compose.get().is_none(), "probed without `up`");
        cli.warm(true);
        // Probed, and found nothing: the probe ran.
        assert_eq!(cli.compose.get(), Some(&None));
    }

    #[test]
    fn podman_ids_are_read_as_digests() {
        let hex = "a".repeat(64);
        assert_eq!(full_id(&hex), format!("sha256:{hex}"));
        assert_eq!(full_id(&format!("sha256:{hex}")), format!("sha256:{hex}"));
    }
}
