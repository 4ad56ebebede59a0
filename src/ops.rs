//! The commands, as library calls: what the CLI runs, minus the printing.

use std::path::{Path, PathBuf};

use crate::bundle::{self, BuildReport};
use crate::config::Settings;
use crate::cosign::{CosignError, CosignKey};
use crate::error::Error;
use crate::fetch::Origin;
use crate::fetch::{self, Reporter, Summary};
use crate::lock::{
    self, Change, ImageRepo, LayoutRepo, LockError, LockedImage, Lockfile, RegistryRepo,
    ResolveError, Update,
};
use crate::reference::ImageSource;
use crate::registry::{RegistryClient, RetryPolicy};
use crate::sign::SigningKey;
use crate::spec::{BundleSpec, ImageSpec};
use crate::store::{Store, write_atomic};

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

/// Told of each image as its resolution starts: service, image as written.
pub type Resolving<'a> = dyn Fn(&str, &str) + Sync + 'a;

/// What `bale lock` did.
#[derive(Debug)]
pub struct LockOutcome {
    /// The lock file.
    pub path: PathBuf,
    /// Per service.
    pub changes: Vec<Change>,
    /// Whether the file's bytes changed.
    pub written: bool,
}

impl Context {
    /// Loads `bundle` and the settings that apply to it.
    pub fn load(bundle: &Path, net: &NetOptions) -> Result<Self, Error> {
        let spec = BundleSpec::load(bundle)?;
        let mut settings = Settings::load(&spec.root, net.config.as_deref())?;
        for m in net.mirrors.iter().rev() {
            settings.add_mirror(m)?;
        }
        for h in &net.insecure {
            settings.add_insecure(h);
        }
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
    fn repo(&self, image: &ImageSpec) -> Box<dyn ImageRepo + '_> {
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

    /// `bale outdated`: what each locked service's tag resolves to now,
    /// through the same mirrors and credentials as `bale lock`.
    pub fn outdated(&self, lock: &Lockfile, resolving: &Resolving<'_>) -> OutdatedReport {
        let mut services = Vec::new();
        for image in &self.spec.images {
            let Some(locked) = lock.image(&image.service) else {
                continue;
            };
            resolving(&image.service, &image.written);
            let reference = image.source.reference();
            let (current, status, error) = if reference.digest.is_some() {
                (None, OutdatedStatus::Pinned, None)
            } else {
                match self.current_digest(image) {
                    Ok(d) if d == locked.digest => (Some(d), OutdatedStatus::Current, None),
                    Ok(d) => (Some(d), OutdatedStatus::Moved, None),
                    Err(e) => (None, OutdatedStatus::Failed, Some(e.to_string())),
                }
            };
            services.push(Outdated {
                service: image.service.clone(),
                image: locked.name.clone(),
                locked: locked.digest.clone(),
                current,
                status,
                error,
            });
        }
        OutdatedReport { services }
    }

    /// The digest `image`'s tag (or layout ref name) points to now.
    fn current_digest(&self, image: &ImageSpec) -> Result<crate::digest::Digest, ResolveError> {
        lock::current_digest(self.repo(image).as_ref(), image)
    }

    /// Where the lock lives.
    pub fn lock_path(&self) -> PathBuf {
        lock::lock_path(&self.spec)
    }

    /// `bale lock`: resolves what `update` asks for and what bundle.toml
    /// changed, writes the lock if its bytes change. `resolving` is told
    /// of each image as its resolution starts.
    pub fn lock(&self, update: &Update, resolving: &Resolving<'_>) -> Result<LockOutcome, Error> {
        let path = self.lock_path();
        let existing = Lockfile::load(&path)?;
        let (new, changes) = lock::relock(&self.spec, existing.as_ref(), update, &|i| {
            resolving(&i.service, &i.written);
            self.resolve(i)
        })?;
        let text = new.render();
        let old = std::fs::read(&path).ok();
        let written = old.as_deref() != Some(text.as_bytes());
        if written {
            write_atomic(&path, text.as_bytes())?;
        }
        Ok(LockOutcome {
            path,
            changes,
            written,
        })
    }

    /// The lock, which must exist and agree with bundle.toml
    /// (`bale lock --check`, `--locked`).
    pub fn locked(&self) -> Result<Lockfile, Error> {
        let path = self.lock_path();
        let lock = Lockfile::load(&path)?.ok_or(LockError::Missing { path: path.clone() })?;
        let problems = lock.disagreements(&self.spec);
        if !problems.is_empty() {
            return Err(LockError::OutOfDate { path, problems }.into());
        }
        Ok(lock)
    }

    /// The lock, updated first where bundle.toml changed (without `--locked`).
    pub fn lock_if_needed(&self, locked: bool) -> Result<Lockfile, Error> {
        if !locked {
            self.lock(&Update::Missing, &|_, _| {})?;
        }
        self.locked()
    }

    /// `bale fetch`: every blob of `lock` into `store`.
    pub fn fetch(
        &self,
        lock: &Lockfile,
        store: &Store,
        parallel: usize,
        reporter: &dyn Reporter,
    ) -> Result<Summary, Error> {
        let jobs = fetch::plan(&self.spec, lock);
        let summary = fetch::fetch(&jobs, store, &self.client, parallel, reporter)?;
        self.check_signatures(lock, store)?;
        Ok(summary)
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
            lock::recheck(
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

    /// `bale build`: the bundle file from the lock and the store, fetching
    /// what the store lacks first. `offline` fetches only from local OCI
    /// layouts and never changes the lock.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        &self,
        locked: bool,
        offline: bool,
        store: &Store,
        parallel: usize,
        output: Option<&Path>,
        key: Option<&SigningKey>,
        base: Option<&Path>,
        reporter: &dyn Reporter,
    ) -> Result<BuildReport, Error> {
        // The base is read before anything is fetched: a wrong path is said
        // first.
        let base = base.map(crate::verify::manifest_of).transpose()?;
        let lock = self.lock_if_needed(locked || offline)?;
        // Templates are checked before anything is downloaded.
        bundle::check_templates(&self.spec, &lock)?;
        let mut jobs = fetch::plan(&self.spec, &lock);
        if offline {
            jobs.retain(|j| matches!(j.origin, Origin::Layout(_)));
        }
        fetch::fetch(&jobs, store, &self.client, parallel, reporter)?;
        self.check_signatures(&lock, store)?;
        let default = PathBuf::from(format!("{}-{}.bale", self.spec.name, self.spec.version));
        let output = output.unwrap_or(&default);
        Ok(bundle::build(
            &self.spec,
            &lock,
            store,
            output,
            key,
            base.as_ref().map(|(m, d)| (m, d)),
        )?)
    }
}

/// Whether a service's tag still points where the lock says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutdatedStatus {
    /// The tag resolves to the locked digest.
    Current,
    /// The tag resolves to other content now.
    Moved,
    /// bundle.toml pins a digest: the tag is not followed.
    Pinned,
    /// The registry could not say.
    Failed,
}

/// One service in `bale outdated`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outdated {
    /// Service.
    pub service: String,
    /// Canonical image name.
    pub image: String,
    /// The digest in bundle.lock.
    pub locked: crate::digest::Digest,
    /// What the tag resolves to now.
    pub current: Option<crate::digest::Digest>,
    /// The verdict.
    pub status: OutdatedStatus,
    /// Why the registry could not say, for `failed`.
    pub error: Option<String>,
}

/// What `bale outdated` found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutdatedReport {
    /// Per service, in bundle.toml's order.
    pub services: Vec<Outdated>,
}

impl OutdatedReport {
    /// Services whose tag moved.
    pub fn moved(&self) -> usize {
        self.services
            .iter()
            .filter(|s| s.status == OutdatedStatus::Moved)
            .count()
    }

    /// Services the registry could not answer for.
    pub fn failed(&self) -> usize {
        self.services
            .iter()
            .filter(|s| s.status == OutdatedStatus::Failed)
            .count()
    }
}
