//! containerd through `ctr`, and the runtime that is none.

use std::io::{self, Write};
use std::path::PathBuf;

use super::{
    ArchiveFormat, ComposeProject, Container, Present, Runtime, RuntimeError, RuntimeImage,
    load_via, run, run_ok,
};
use crate::digest::Digest;

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

    /// The content store's blobs: an import leaves out what it has.
    fn present(&self) -> Result<Present, RuntimeError> {
        let mut args = self.base();
        args.extend(["content".into(), "ls".into(), "-q".into()]);
        let out = run_ok("ctr", &args)?;
        Ok(Present {
            blobs: out
                .split_whitespace()
                .filter_map(|d| d.parse().ok())
                .collect(),
            ..Present::default()
        })
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
