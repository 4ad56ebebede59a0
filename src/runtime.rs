//! Container runtimes, behind a trait so that install and audit can be
//! tested without one. The implementations drive each runtime's own CLI
//! (`docker`, `podman`, `ctr`), which honours its usual environment
//! (`DOCKER_HOST`, contexts, `CONTAINER_HOST`).

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::digest::Digest;

/// Errors talking to a runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The program could not be started.
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        /// Program.
        program: String,
        /// Cause.
        source: io::Error,
    },
    /// The program failed.
    #[error("`{command}` failed: {stderr}")]
    Failed {
        /// The command line (no secrets are ever passed on it).
        command: String,
        /// The end of its error output.
        stderr: String,
    },
    /// Output bale could not read.
    #[error("`{command}`: unexpected output: {message}")]
    Output {
        /// The command line.
        command: String,
        /// What was wrong.
        message: String,
    },
    /// Not supported by this runtime.
    #[error("{0}")]
    Unsupported(String),
}

/// An image as the runtime has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeImage {
    /// The config digest (Docker and Podman's image ID).
    pub config: Option<Digest>,
    /// The manifest digest, where the runtime keeps it (containerd).
    pub manifest: Option<Digest>,
}

/// A container of a compose project.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Container {
    /// Container name.
    pub name: String,
    /// Compose service.
    pub service: String,
    /// Image ID the container runs.
    pub image_id: String,
    /// Image reference it was created from.
    pub image: String,
    /// `running`, `exited`, ….
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`, or empty without healthcheck.
    pub health: String,
    /// The exit code, once it has exited.
    pub exit_code: Option<i64>,
}

/// A compose project as bale starts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeProject {
    /// Project name.
    pub name: String,
    /// Project directory (relative paths in the files resolve here).
    pub directory: PathBuf,
    /// The env file interpolation reads (secrets and site values).
    pub env_file: PathBuf,
    /// Compose files, merged in order.
    pub files: Vec<PathBuf>,
}

/// What a runtime loads: a `docker save` archive or an OCI layout archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `manifest.json` + blobs.
    Docker,
    /// `oci-layout` + `index.json` + blobs.
    Oci,
}

/// A container runtime.
pub trait Runtime {
    /// Its name, for messages.
    fn name(&self) -> &str;
    /// The archive format `load` takes.
    fn archive_format(&self) -> ArchiveFormat;
    /// The image named `reference`, if present.
    fn image(&self, reference: &str) -> Result<Option<RuntimeImage>, RuntimeError>;
    /// Loads an archive that `write` streams in.
    fn load(
        &self,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), RuntimeError>;
    /// The containers of compose project `project`.
    fn containers(&self, project: &str) -> Result<Vec<Container>, RuntimeError>;
    /// Runs compose for `project` with `args` (`up -d`, …); `Unsupported`
    /// where there is no compose.
    fn compose(&self, project: &ComposeProject, args: &[String]) -> Result<String, RuntimeError>;
    /// Runs a container's healthcheck now, for runtimes that run them only
    /// through a service manager that may be absent (Podman without
    /// systemd); elsewhere nothing.
    fn check_health(&self, _container: &str) {}
    /// Where the runtime keeps its images, for the disk preflight.
    fn data_root(&self) -> Option<PathBuf> {
        None
    }
    /// The runtime's (server) version, as it prints it.
    fn version(&self) -> Option<String> {
        None
    }
    /// The compose tool's version, as it prints it.
    fn compose_version(&self) -> Option<String> {
        None
    }
    /// The last `lines` lines a container logged (stdout and stderr).
    fn logs(&self, _container: &str, _lines: usize) -> Result<String, RuntimeError> {
        Ok(String::new())
    }
    /// Whether this runtime runs compose projects, so that their services
    /// can be expected to be running.
    fn runs_compose(&self) -> bool {
        false
    }
}

fn command_line(program: &str, args: &[String]) -> String {
    std::iter::once(program.to_owned())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let t = s.trim();
    let start = t.len().saturating_sub(2000);
    let mut i = start;
    while i < t.len() && !t.is_char_boundary(i) {
        i += 1;
    }
    t[i..].to_owned()
}

fn run(program: &str, args: &[String]) -> Result<std::process::Output, RuntimeError> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| RuntimeError::Spawn {
            program: program.to_owned(),
            source,
        })
}

fn run_ok(program: &str, args: &[String]) -> Result<String, RuntimeError> {
    output_ok(
        program,
        args,
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output(),
    )
}

/// The stdout of a finished command, or its failure with the end of stderr.
fn output_ok(
    program: &str,
    args: &[String],
    out: io::Result<std::process::Output>,
) -> Result<String, RuntimeError> {
    let out = out.map_err(|source| RuntimeError::Spawn {
        program: program.to_owned(),
        source,
    })?;
    if !out.status.success() {
        return Err(RuntimeError::Failed {
            command: command_line(program, args),
            stderr: tail(&out.stderr),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn load_via(
    program: &str,
    args: &[String],
    write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
) -> Result<(), RuntimeError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| RuntimeError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| RuntimeError::Unsupported("no stdin".into()))?;
    // Drain stderr while writing, so a chatty loader cannot block us.
    let mut stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_end(&mut buf);
        }
        buf
    });
    let written = write(&mut stdin);
    drop(stdin);
    if written.is_err() {
        let _ = child.kill();
    }
    let out = child
        .wait_with_output()
        .map_err(|source| RuntimeError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    let err = reader.join().unwrap_or_default();
    if let Err(e) = written {
        return Err(RuntimeError::Failed {
            command: command_line(program, args),
            stderr: format!("stream interrupted: {e}; {}", tail(&err)),
        });
    }
    if !out.status.success() {
        return Err(RuntimeError::Failed {
            command: command_line(program, args),
            stderr: tail(&err),
        });
    }
    Ok(())
}

/// Docker, or Podman, through their (compatible) CLIs.
pub struct DockerCli {
    program: String,
    compose: Option<Vec<String>>,
}

impl DockerCli {
    /// Docker: `docker`, compose as `docker compose` or `docker-compose`.
    pub fn docker() -> Self {
        DockerCli {
            program: "docker".into(),
            compose: None,
        }
    }

    /// Podman: `podman`, compose as `podman compose` or `podman-compose`.
    pub fn podman() -> Self {
        DockerCli {
            program: "podman".into(),
            compose: None,
        }
    }

    fn compose_command(&self) -> Result<Vec<String>, RuntimeError> {
        if let Some(c) = &self.compose {
            return Ok(c.clone());
        }
        let plugin = run(&self.program, &["compose".into(), "version".into()])
            .is_ok_and(|o| o.status.success());
        if plugin {
            return Ok(vec![self.program.clone(), "compose".into()]);
        }
        let standalone = format!("{}-compose", self.program);
        if run(&standalone, &["version".into()]).is_ok_and(|o| o.status.success()) {
            return Ok(vec![standalone]);
        }
        Err(RuntimeError::Unsupported(format!(
            "neither `{0} compose` nor `{0}-compose` is available",
            self.program
        )))
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

impl Runtime for DockerCli {
    fn name(&self) -> &str {
        &self.program
    }

    fn archive_format(&self) -> ArchiveFormat {
        ArchiveFormat::Docker
    }

    fn image(&self, reference: &str) -> Result<Option<RuntimeImage>, RuntimeError> {
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
        Ok(list.first().map(|i| RuntimeImage {
            config: full_id(&i.id).parse().ok(),
            manifest: None,
        }))
    }

    fn load(
        &self,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), RuntimeError> {
        load_via(&self.program, &["load".into()], write)
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
        c.stdin(Stdio::null());
        if program.ends_with("podman-compose") {
            // podman-compose (1.0) has neither --project-directory nor
            // --env-file: it runs in the project directory, and the env
            // file's values reach its interpolation through the environment.
            cmd.extend(["-p".into(), project.name.clone()]);
            cmd.extend(files);
            c.current_dir(&project.directory).envs(env.iter().cloned());
        } else {
            cmd.extend([
                "--project-name".into(),
                project.name.clone(),
                "--project-directory".into(),
                project.directory.display().to_string(),
                "--env-file".into(),
                project.env_file.display().to_string(),
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
        let mut cmd = self.compose_command().ok()?;
        let program = cmd.remove(0);
        cmd.push("version".into());
        let out = run_ok(&program, &cmd).ok()?;
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

    fn check_health(&self, container: &str) {
        if self.program == "podman" {
            let _ = run(
                &self.program,
                &["healthcheck".into(), "run".into(), container.into()],
            );
        }
    }
}

/// `KEY=VALUE` pairs of an env file (comments, blank lines and `export`
/// skipped; one pair of surrounding quotes removed).
pub fn env_values(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
                .unwrap_or(v);
            (
                k.trim().trim_start_matches("export ").to_owned(),
                v.to_owned(),
            )
        })
        .collect()
}

/// `text` with every value of `secrets` (of 4 characters or more) replaced.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    let mut long: Vec<&&str> = secrets.iter().filter(|s| s.len() >= 4).collect();
    // Longest first, so that a value containing another is hidden whole.
    long.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in long {
        out = out.replace(*s, "<redacted>");
    }
    out
}

/// An image or container ID as `sha256:<hex>`: Podman prints bare hex.
fn full_id(id: &str) -> String {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("sha256:{id}")
    } else {
        id.to_owned()
    }
}

/// containerd, through `ctr`.
pub struct Ctr {
    /// Socket address.
    pub address: Option<PathBuf>,
    /// Namespace (`default`; `k8s.io` for k3s and Kubernetes).
    pub namespace: String,
}

impl Ctr {
    fn base(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(a) = &self.address {
            v.push("-a".into());
            v.push(a.display().to_string());
        }
        v.push("-n".into());
        v.push(self.namespace.clone());
        v
    }
}

impl Runtime for Ctr {
    fn name(&self) -> &str {
        "containerd"
    }

    fn archive_format(&self) -> ArchiveFormat {
        ArchiveFormat::Oci
    }

    fn image(&self, reference: &str) -> Result<Option<RuntimeImage>, RuntimeError> {
        let mut args = self.base();
        args.extend(["images".into(), "ls".into(), format!("name=={reference}")]);
        let out = run_ok("ctr", &args)?;
        // REF TYPE DIGEST SIZE PLATFORMS LABELS
        for line in out.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.first() == Some(&reference) {
                let manifest = cols.get(2).and_then(|d| d.parse().ok());
                let config = match &manifest {
                    Some(m) => self.config_of(m)?,
                    None => None,
                };
                return Ok(Some(RuntimeImage { config, manifest }));
            }
        }
        Ok(None)
    }

    fn load(
        &self,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), RuntimeError> {
        let mut args = self.base();
        args.extend(["images".into(), "import".into(), "-".into()]);
        load_via("ctr", &args, write)
    }

    fn containers(&self, _project: &str) -> Result<Vec<Container>, RuntimeError> {
        Ok(Vec::new())
    }

    fn compose(&self, _: &ComposeProject, _args: &[String]) -> Result<String, RuntimeError> {
        Err(RuntimeError::Unsupported(
            "containerd has no compose: install with --runtime containerd loads images only; start the stack with your orchestrator".into(),
        ))
    }
}

impl Ctr {
    fn config_of(&self, manifest: &Digest) -> Result<Option<Digest>, RuntimeError> {
        let mut args = self.base();
        args.extend(["content".into(), "get".into(), manifest.to_string()]);
        let out = run("ctr", &args)?;
        if !out.status.success() {
            return Ok(None);
        }
        #[derive(serde::Deserialize)]
        struct M {
            config: Option<crate::manifest::Descriptor>,
        }
        Ok(serde_json::from_slice::<M>(&out.stdout)
            .ok()
            .and_then(|m| m.config)
            .map(|c| c.digest))
    }
}

/// No runtime: install lays out files only; audit skips images.
pub struct NoRuntime;

impl Runtime for NoRuntime {
    fn name(&self) -> &str {
        "none"
    }
    fn archive_format(&self) -> ArchiveFormat {
        ArchiveFormat::Docker
    }
    fn image(&self, _: &str) -> Result<Option<RuntimeImage>, RuntimeError> {
        Ok(None)
    }
    fn load(
        &self,
        _: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), RuntimeError> {
        Ok(())
    }
    fn containers(&self, _: &str) -> Result<Vec<Container>, RuntimeError> {
        Ok(Vec::new())
    }
    fn compose(&self, _: &ComposeProject, _: &[String]) -> Result<String, RuntimeError> {
        Err(RuntimeError::Unsupported(
            "--runtime none cannot start the stack".into(),
        ))
    }
}

/// Which runtime, by name.
pub fn by_name(name: &str, address: Option<&Path>, namespace: &str) -> Option<Box<dyn Runtime>> {
    match name {
        "docker" => Some(Box::new(DockerCli::docker())),
        "podman" => Some(Box::new(DockerCli::podman())),
        "containerd" => Some(Box::new(Ctr {
            address: address.map(Path::to_owned),
            namespace: namespace.to_owned(),
        })),
        "none" => Some(Box::new(NoRuntime)),
        _ => None,
    }
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
    fn podman_ids_are_read_as_digests() {
        let hex = "a".repeat(64);
        assert_eq!(full_id(&hex), format!("sha256:{hex}"));
        assert_eq!(full_id(&format!("sha256:{hex}")), format!("sha256:{hex}"));
    }
}
