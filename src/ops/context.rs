//! What the commands that read bundle.toml share: the spec, the settings
//! that apply to it and a registry client. Settings files are read here
//! only ([`settings`], which push uses too); the registry a swarm pulls
//! from is reached with the defaults and the site's CA alone.

use std::path::{Path, PathBuf};

use crate::config::Settings;
use crate::cosign::{CosignError, CosignKey};
use crate::error::Error;
use crate::lock::{self, ImageRepo, LayoutRepo, LockedImage, Lockfile, RegistryRepo, ResolveError};
use crate::reference::ImageSource;
use crate::registry::{RegistryClient, RetryPolicy};
use crate::spec::{BundleSpec, ImageSpec};
use crate::store::Store;

/// A loaded bundle.toml with the settings and client to act on it.
pub struct Context {
    /// The bundle.
    pub spec: BundleSpec,
    /// Registry client.
    pub client: RegistryClient,
    /// The cosign keys bundle.toml names, by path as written, with the
    /// SHA-256 of each file.
    pub cosign_keys: std::collections::BTreeMap<String, (CosignKey, crate::digest::Digest)>,
}

/// Options shared by the commands that talk to registries.
#[derive(Clone, Debug, Default)]
pub struct NetOptions {
    /// Settings file named on the command line or by `BALE_CONFIG`.
    pub config: Option<PathBuf>,
    /// `REGISTRY=MIRROR` entries from the command line.
    pub mirrors: Vec<String>,
    /// Hosts allowed over plain HTTP, from the command line.
    pub insecure: Vec<String>,
}

/// bale's settings for a command run from `dir`: `dir/config/bale.toml`,
/// the file `net` names, `BALE_MIRRORS` and `BALE_INSECURE_REGISTRIES`,
/// then the mirrors and plain-HTTP hosts of the command line.
pub fn settings(dir: &Path, net: &NetOptions) -> Result<Settings, Error> {
    let mut settings = Settings::load(dir, net.config.as_deref())?;
    for m in net.mirrors.iter().rev() {
        settings.add_mirror(m)?;
    }
    for h in &net.insecure {
        settings.add_insecure(h);
    }
    Ok(settings)
}

/// Told of each image as its resolution starts: service, image as written.
pub type Resolving<'a> = dyn Fn(&str, &str) + Sync + 'a;

impl Context {
    /// Loads `bundle` and the settings that apply to it.
    pub fn load(bundle: &Path, net: &NetOptions) -> Result<Self, Error> {
        let spec = BundleSpec::load(bundle)?;
        let settings = settings(&spec.root, net)?;
        let mut cosign_keys = std::collections::BTreeMap::new();
        for rel in spec.cosign_keys() {
            let path = spec.source_path(rel);
            let bytes = std::fs::read(&path).map_err(|e| CosignError::BadKey {
                what: path.display().to_string(),
                reason: e.to_string(),
            })?;
            let text = String::from_utf8_lossy(&bytes);
            let key = CosignKey::from_pem(&text, &path.display().to_string())?;
            cosign_keys.insert(rel.to_owned(), (key, crate::digest::Digest::of(&bytes)));
        }
        Ok(Context {
            spec,
            client: RegistryClient::new(settings, RetryPolicy::default()),
            cosign_keys,
        })
    }

    /// Resolves one image from its source.
    pub fn resolve(&self, image: &ImageSpec) -> Result<LockedImage, ResolveError> {
        let opts = lock::ResolveOptions {
            attestations: self.spec.attestations,
            cosign: image
                .cosign_key
                .as_ref()
                .and_then(|k| self.cosign_keys.get(k))
                .map(|(k, d)| (k, d)),
        };
        lock::resolve_image(
            self.repo(image).as_ref(),
            image,
            &self.spec.platforms,
            &opts,
        )
    }

    /// Where `image` is read from: its registry (through mirrors), or its
    /// local OCI layout.
    pub(super) fn repo(&self, image: &ImageSpec) -> Box<dyn ImageRepo + '_> {
        match &image.source {
            ImageSource::Registry(r) => Box::new(RegistryRepo {
                client: &self.client,
                domain: r.domain.clone(),
                path: r.path.clone(),
            }),
            ImageSource::OciLayout { path, .. } => Box::new(LayoutRepo {
                dir: self.spec.source_path(path),
            }),
        }
    }

    /// Where the lock lives.
    pub fn lock_path(&self) -> PathBuf {
        lock::lock_path(&self.spec)
    }

    /// Checks every locked cosign signature again from the store, with the
    /// key bundle.toml names for its image.
    pub fn check_signatures(&self, lock: &Lockfile, store: &Store) -> Result<(), Error> {
        for img in &lock.images {
            let Some(sig) = &img.signature else { continue };
            let refuse = |m: String| {
                Error::Cosign(CosignError::Refused(format!(
                    "service `{}` ({}): cosign signature: {m}",
                    img.service, img.name
                )))
            };
            let (key, key_digest) = self
                .spec
                .image(&img.service)
                .and_then(|i| i.cosign_key.as_ref())
                .and_then(|k| self.cosign_keys.get(k))
                .ok_or_else(|| refuse("bundle.toml names no cosign_key for it".into()))?;
            if sig.key.as_ref() != Some(key_digest) {
                return Err(refuse(format!(
                    "the key file ({key_digest}) is not the one the lock recorded: run `bale lock --update {}`",
                    img.service
                )));
            }
            let read = |d: &crate::digest::Digest, size: u64| {
                store.read_verified(d, size).map_err(|e| e.to_string())
            };
            crate::cosign::recheck(
                &sig.manifest,
                &sig.manifest_media_type,
                &img.digest,
                key,
                &read,
            )
            .map_err(|e| refuse(e.message()))?;
        }
        Ok(())
    }
}
