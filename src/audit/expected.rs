//! What an audit expects: the signed bundle's files and images, or the
//! installed release's record of them.

use std::collections::BTreeMap;
use std::path::Path;

use super::Findings;
use crate::bundle::{ImageRecord, ImagesFile};
use crate::install::{InstallError, InstalledFile, OpenBundle, Release};

/// The files, images and SBOM the host should have.
pub(super) struct Expected {
    /// `bundle` when read from the signed bundle, `record` otherwise.
    pub reference: &'static str,
    /// Every installed file, with its digest (a template's rendered one).
    pub files: Vec<InstalledFile>,
    /// The bundle's image list.
    pub images: ImagesFile,
    /// The SPDX SBOM's bytes, where there is one.
    pub sbom: Option<Vec<u8>>,
}

impl Expected {
    /// From the signed bundle; a release recorded from another bundle is a
    /// finding.
    pub fn from_bundle(b: &OpenBundle, release: &Release, findings: &mut Findings) -> Self {
        let digest = b.content_digest();
        if digest != release.manifest_digest {
            findings.add(
                "release",
                &release.version,
                format!(
                    "the installed release has manifest {}, the bundle {digest}",
                    release.manifest_digest
                ),
            );
        }
        // A template's rendered digest comes from the record, where the
        // record names this very template.
        let rendered: BTreeMap<&str, &InstalledFile> = release
            .files
            .iter()
            .map(|f| (f.target.as_str(), f))
            .collect();
        let files = b
            .manifest
            .entries
            .iter()
            .filter_map(|e| {
                let t = e.path.strip_prefix(crate::bundle::FILES_PREFIX)?;
                Some(match rendered.get(t) {
                    Some(r) if r.template.as_ref() == Some(&e.sha256) => (*r).clone(),
                    _ => InstalledFile {
                        target: t.to_owned(),
                        sha256: e.sha256.clone(),
                        size: e.size,
                        template: None,
                    },
                })
            })
            .collect();
        let mut sbom = Vec::new();
        let sbom = b
            .copy_entry(crate::bundle::SBOM_PATH, &mut sbom)
            .ok()
            .map(|()| sbom);
        Expected {
            reference: "bundle",
            files,
            images: b.images.clone(),
            sbom,
        }
    }

    /// From the installed release's record in `release_dir`.
    pub fn from_record(release_dir: &Path, release: &Release) -> Result<Self, InstallError> {
        let images = crate::install::recorded_images(release_dir)?;
        let sbom = std::fs::read(release_dir.join(".bale").join("sbom.spdx.json")).ok();
        Ok(Expected {
            reference: "record",
            files: release.files.clone(),
            images,
            sbom,
        })
    }

    /// The images of the platform the runtime runs: the bundle's first.
    pub fn platform_images(&self) -> Vec<&ImageRecord> {
        self.images.runtime_images()
    }
}
