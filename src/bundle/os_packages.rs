//! The OS packages inside each image as SPDX packages of the bundle's
//! SBOM: read from the images' layers in the store (`inventory`), each
//! supplied by its distribution, with the licence its database states and
//! a purl qualified by the distribution.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::licenses::Extracted;
use super::{BundleError, ImageRecord};
use crate::digest::Digest;
use crate::inventory::{self, Inventory};
use crate::lock::{LockedPlatform, Lockfile};
use crate::packages::{Distro, Manager, Package};
use crate::store::Store;

/// The lock's platform entry for an image record.
fn locked_platform<'a>(lock: &'a Lockfile, r: &ImageRecord) -> Option<&'a LockedPlatform> {
    lock.images
        .iter()
        .filter(|i| i.service == r.service)
        .flat_map(|i| i.platforms.iter())
        .find(|p| p.platform == r.platform && p.manifest == r.manifest)
}

/// The OS packages of each image (by manifest), read from its layers in
/// the store: every distinct layer once, on every core.
pub(super) fn inventories(
    lock: &Lockfile,
    records: &[ImageRecord],
    store: &Store,
) -> Result<BTreeMap<Digest, Inventory>, BundleError> {
    let mut manifests = Vec::new();
    let mut images = Vec::new();
    for r in records {
        if manifests.contains(&r.manifest) {
            continue;
        }
        let Some(p) = locked_platform(lock, r) else {
            continue;
        };
        manifests.push(r.manifest.clone());
        images.push(
            p.layers
                .iter()
                .map(|b| inventory::Layer {
                    digest: &b.digest,
                    size: b.size,
                    media_type: &b.media_type,
                })
                .collect::<Vec<_>>(),
        );
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let found = inventory::of_images(store, &images, threads)?;
    Ok(manifests.into_iter().zip(found).collect())
}

/// An OS package of an image as an SPDX package: supplied by its
/// distribution (an rpm's own vendor where its database names one), with
/// the licence its database states and a purl qualified by the distribution.
pub(super) fn os_package(
    id: &str,
    p: &Package,
    distro: Option<&Distro>,
    licenses: &mut Extracted,
) -> Value {
    let supplier = match (&p.vendor, distro) {
        (Some(v), _) if p.manager == Manager::Rpm => v.clone(),
        (_, Some(d)) => d.supplier(),
        _ => match p.manager {
            Manager::Apk => "Alpine Linux",
            Manager::Dpkg => "Debian",
            Manager::Rpm => "NOASSERTION",
        }
        .to_owned(),
    };
    let declared = p
        .license
        .as_deref()
        .map_or_else(|| "NOASSERTION".to_owned(), |l| licenses.expression(l));
    let database = match p.manager {
        Manager::Apk => "apk",
        Manager::Dpkg => "dpkg",
        Manager::Rpm => "rpm",
    };
    let mut comment = format!("from the image's {database} database");
    if let Some(s) = &p.source {
        comment.push_str(&format!("; source package {s}"));
    }
    json!({
        "SPDXID": id,
        "name": p.name,
        "versionInfo": p.version,
        "supplier": if supplier == "NOASSERTION" { supplier } else { format!("Organization: {supplier}") },
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": declared,
        "copyrightText": "NOASSERTION",
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": p.purl(distro),
        }],
        "comment": comment,
    })
}
