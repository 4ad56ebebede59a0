//! Container runtimes, behind a trait so that install and audit can be
//! tested without one. The implementations drive each runtime's own CLI
//! (`docker`, `podman`, `ctr`), which honours its usual environment
//! (`DOCKER_HOST`, contexts, `CONTAINER_HOST`); `docker load` alone goes
//! straight to the Engine API's Unix socket that the CLI names.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::bundle::ImageRecord;
use crate::digest::Digest;

mod containerd;
mod docker;
mod engine;
mod swarm;

pub use containerd::{Ctr, NoRuntime};
pub use docker::DockerCli;
pub use swarm::Swarm;

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

/// What a runtime holds already, so that an archive can leave it out.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Present {
    /// Layer chain IDs: `docker load` opens no layer whose chain ID the
    /// daemon has.
    pub chains: std::collections::BTreeSet<Digest>,
    /// Blobs of a content store (containerd), by digest.
    pub blobs: std::collections::BTreeSet<Digest>,
}

/// The chain IDs of a stack of layers given by their diff IDs:
/// `chain(0) = diff(0)`, `chain(n) = sha256(chain(n-1) + " " + diff(n))`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
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

/// A named volume of a compose project, as the runtime keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Volume {
    /// The runtime's name for it (`<project>_<volume>` as compose names it).
    pub name: String,
    /// Where its data is on this host (root's to read and write).
    pub mountpoint: PathBuf,
}

/// What a runtime loads: a `docker save` archive or an OCI layout archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `manifest.json` + blobs.
    Docker,
    /// `oci-layout` + `index.json` + blobs.
    Oci,
}

/// A container runtime. `Sync`: install asks it about several images at
/// once (each question a CLI call of tens of milliseconds).
pub trait Runtime: Sync {
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
    /// The reference a service runs `r` by: the bundle's name where the
    /// runtime loaded it, a registry's pinned digest where nodes pull it.
    fn reference(&self, r: &ImageRecord) -> String {
        r.name.clone()
    }
    /// Whether the runtime's nodes pull images from a registry instead of
    /// having them loaded.
    fn pulls(&self) -> bool {
        false
    }
    /// The registry the nodes pull from, recorded with the release.
    fn registry(&self) -> Option<String> {
        None
    }
    /// Starts (or updates) the project and restarts `restart`'s services;
    /// compose `up -d` where the runtime has compose.
    fn up(&self, project: &ComposeProject, restart: &[String]) -> Result<String, RuntimeError> {
        let said = self.compose(
            project,
            &["up".into(), "-d".into(), "--remove-orphans".into()],
        )?;
        if !restart.is_empty() {
            let mut args = vec!["restart".to_owned()];
            args.extend(restart.iter().cloned());
            self.compose(project, &args)?;
        }
        Ok(said)
    }
    /// What the runtime holds already, for an archive that leaves it out;
    /// nothing where the runtime's loader needs every blob.
    fn present(&self) -> Result<Present, RuntimeError> {
        Ok(Present::default())
    }
    /// Runs a container's healthcheck now, for runtimes that run them only
    /// through a service manager that may be absent (Podman without
    /// systemd); elsewhere nothing.
    fn check_health(&self, _container: &str) {}
    /// How many archives `load` may take at once (each `docker load`
    /// decompresses and unpacks on its own core); 1 where loads must not
    /// overlap.
    fn parallel_loads(&self) -> usize {
        1
    }
    /// Whether `load` is faster given gzip layers already inflated (see
    /// `install::inflate`); the archive is the same image either way.
    fn takes_inflated_layers(&self) -> bool {
        false
    }
    /// Runs the runtime's slow probes ahead, so that their answers are at
    /// hand when asked for; the caller does other work meanwhile. Which
    /// compose tool it has is probed only when `compose` says it will be
    /// used: the probe costs CPU the image loads want.
    fn warm(&self, _compose: bool) {}
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
    /// The named volumes of compose project `project` on this host.
    fn volumes(&self, _project: &str) -> Result<Vec<Volume>, RuntimeError> {
        Err(self.unsupported("named volumes"))
    }
    /// Stops the containers named (waiting up to `grace` for each).
    fn stop(&self, _containers: &[String], _grace: u64) -> Result<(), RuntimeError> {
        Err(self.unsupported("stopping containers"))
    }
    /// Starts the containers named again.
    fn start(&self, _containers: &[String]) -> Result<(), RuntimeError> {
        Err(self.unsupported("starting containers"))
    }
    /// Stops and removes the project's containers and networks (volumes
    /// are kept).
    fn down(&self, project: &ComposeProject) -> Result<String, RuntimeError> {
        self.compose(project, &["down".into(), "--remove-orphans".into()])
    }
    /// Removes volume `name`.
    fn remove_volume(&self, _name: &str) -> Result<(), RuntimeError> {
        Err(self.unsupported("removing volumes"))
    }
    /// Removes the image with ID `id` unless a container uses it or other
    /// names still point to it; returns its size when it was removed,
    /// `None` when it was kept (or was not there).
    fn remove_image(&self, _id: &Digest) -> Result<Option<u64>, RuntimeError> {
        Ok(None)
    }
    /// The size of the image with ID `id`, when the runtime has it.
    fn image_size(&self, _id: &Digest) -> Result<Option<u64>, RuntimeError> {
        Ok(None)
    }
    /// The error for what this runtime does not do.
    fn unsupported(&self, what: &str) -> RuntimeError {
        RuntimeError::Unsupported(format!("{what}: not done through {}", self.name()))
    }
}

pub(crate) fn command_line(program: &str, args: &[String]) -> String {
    std::iter::once(program.to_owned())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let t = s.trim();
    let start = t.len().saturating_sub(2000);
    let mut i = start;
    while i < t.len() && !t.is_char_boundary(i) {
        i += 1;
    }
    t[i..].to_owned()
}

pub(crate) fn run(program: &str, args: &[String]) -> Result<std::process::Output, RuntimeError> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| RuntimeError::Spawn {
            program: program.to_owned(),
            source,
        })
}

pub(crate) fn run_ok(program: &str, args: &[String]) -> Result<String, RuntimeError> {
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
pub(crate) fn output_ok(
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

/// Asks for a 1 MiB pipe (Linux allows it unprivileged), so that the
/// loader reads a megabyte per wakeup rather than 64 KiB; a refusal only
/// leaves the pipe as it was.
fn widen_pipe(stdin: &std::process::ChildStdin) {
    use std::os::fd::AsRawFd as _;
    // SAFETY: F_SETPIPE_SZ on a pipe this process owns; it changes only
    // the pipe's capacity, and its result is ignored.
    unsafe {
        libc::fcntl(stdin.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20);
    }
}

pub(crate) fn load_via(
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
    widen_pipe(&stdin);
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

/// `KEY=VALUE` pairs of an env file, decoded as bale writes them (see
/// [`crate::dotenv`]).
pub fn env_values(text: &str) -> Vec<(String, String)> {
    crate::dotenv::pairs(text)
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
pub(crate) fn full_id(id: &str) -> String {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("sha256:{id}")
    } else {
        id.to_owned()
    }
}

/// `r` in `registry` (`HOST[/PREFIX]`), pinned by its platform manifest's
/// digest: what `bale push` and `bale serve` make it.
pub fn registry_reference(registry: &str, r: &ImageRecord) -> String {
    let path = r
        .name
        .parse::<crate::reference::Reference>()
        .map(|x| x.path)
        .unwrap_or_else(|_| r.name.clone());
    format!("{}/{path}@{}", registry.trim_end_matches('/'), r.manifest)
}

/// Which runtime, by name; `registry` is where a swarm's nodes pull from.
pub fn by_name(
    name: &str,
    address: Option<&Path>,
    namespace: &str,
    registry: Option<(&str, crate::registry::RegistryClient)>,
) -> Option<Box<dyn Runtime>> {
    match name {
        "swarm" => registry.map(|(r, client)| Box::new(Swarm::new(r, client)) as Box<dyn Runtime>),
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
mod chain_tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = Digest::of(b"layer a");
        let b = Digest::of(b"layer b");
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        assert_eq!(c[1], Digest::of(format!("{a} {b}").as_bytes()));
        assert_eq!(c.len(), 2);
    }
}
