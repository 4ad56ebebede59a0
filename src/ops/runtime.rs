//! Which container runtime a host command uses: the one named, else the
//! one the installed release recorded (so that a repair runs as written on
//! a Podman or `--runtime none` host), else Docker.

use std::path::PathBuf;

use crate::error::Error;
use crate::install::Release;
use crate::runtime::{self, Runtime};

/// The runtime options of `bale install` and `bale audit`.
#[derive(Clone, Debug, Default)]
pub struct RuntimeChoice {
    /// `docker`, `podman`, `containerd`, `swarm` or `none`.
    pub runtime: Option<String>,
    /// The registry swarm nodes pull from.
    pub registry: Option<String>,
    /// The CA trusted for that registry.
    pub registry_ca: Option<PathBuf>,
    /// containerd's socket.
    pub containerd_address: Option<PathBuf>,
    /// containerd's namespace.
    pub namespace: Option<String>,
}

/// A runtime, with the containerd address and namespace to record.
pub struct Chosen {
    /// The runtime.
    pub runtime: Box<dyn Runtime>,
    /// containerd's socket, as chosen.
    pub address: Option<PathBuf>,
    /// containerd's namespace, for containerd only.
    pub namespace: Option<String>,
}

impl RuntimeChoice {
    /// The runtime named, else the one `recorded` by the installed release,
    /// else Docker; with its address, namespace and registry likewise.
    pub fn choose(&self, recorded: Option<&Release>) -> Result<Chosen, Error> {
        let from_record = self.runtime.is_none();
        let recorded = recorded.filter(|_| from_record);
        let name = self
            .runtime
            .clone()
            .or_else(|| recorded.map(|r| r.runtime.clone()))
            .unwrap_or_else(|| "docker".into());
        let address = self
            .containerd_address
            .clone()
            .or_else(|| recorded.and_then(|r| r.runtime_address.clone()));
        let namespace = self
            .namespace
            .clone()
            .or_else(|| recorded.and_then(|r| r.runtime_namespace.clone()));
        let registry = self
            .registry
            .clone()
            .or_else(|| recorded.and_then(|r| r.runtime_registry.clone()));
        if name == "swarm" && registry.is_none() {
            return Err(Error::Usage(
                "--runtime swarm needs --registry HOST[/PREFIX]: the registry every node pulls the images from (`bale push` or `bale serve` puts them there)".into(),
            ));
        }
        let client = registry
            .as_ref()
            .map(|_| {
                crate::push::client_with_ca(
                    crate::config::Settings::default(),
                    self.registry_ca.as_deref(),
                )
            })
            .transpose()?;
        let rt = runtime::by_name(
            &name,
            address.as_deref(),
            namespace.as_deref().unwrap_or("default"),
            registry.as_deref().zip(client),
        )
        .unwrap_or_else(|| Box::new(runtime::NoRuntime));
        let namespace =
            (name == "containerd").then(|| namespace.unwrap_or_else(|| "default".into()));
        Ok(Chosen {
            runtime: rt,
            address,
            namespace,
        })
    }
}

/// The runtime for a command on an installed target: the one named, else
/// the one its current release recorded, else Docker.
pub fn for_target(choice: &RuntimeChoice, target: &std::path::Path) -> Result<Chosen, Error> {
    let recorded = crate::install::current_release(target)
        .ok()
        .flatten()
        .map(|(_, r)| r);
    choice.choose(recorded.as_ref())
}
