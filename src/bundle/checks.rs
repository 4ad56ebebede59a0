//! The signed manifest's and image list's fields checked before anything
//! is built from them: a signature proves who made a bundle, not that its
//! maker is honest, so every reader of a bundle runs these.

use super::{ImagesFile, Manifest};
use crate::manifest::{DOCKER_MANIFEST, OCI_MANIFEST};
use crate::quote::quote;
use crate::validate::{
    bundle_name, bundle_version, image_name, platform, project_name, service_name,
};

/// Every problem of the signed manifest's own fields.
pub fn manifest(m: &Manifest) -> Vec<String> {
    let mut out = Vec::new();
    out.extend(bundle_name(&m.name).err());
    out.extend(bundle_version(&m.version).err());
    out
}

/// Every problem of the image list, which must agree with the manifest.
pub fn images_file(f: &ImagesFile, m: &Manifest) -> Vec<String> {
    let mut out = Vec::new();
    if f.name != m.name || f.version != m.version {
        out.push(format!(
            "names bundle `{}` {}, the manifest `{}` {}",
            quote(&f.name),
            quote(&f.version),
            quote(&m.name),
            quote(&m.version)
        ));
    }
    for r in &f.images {
        let what = format!("image of service `{}`", quote(&r.service));
        for e in [
            service_name(&r.service),
            image_name(&r.name),
            platform(&r.platform),
        ]
        .into_iter()
        .flat_map(Result::err)
        {
            out.push(format!("{what}: {e}"));
        }
        if r.manifest_media_type != OCI_MANIFEST && r.manifest_media_type != DOCKER_MANIFEST {
            out.push(format!(
                "{what}: manifest media type `{}` is not an image manifest",
                quote(&r.manifest_media_type)
            ));
        }
    }
    for t in f
        .files
        .iter()
        .map(|f| f.target.as_str())
        .chain(f.compose.as_deref())
    {
        if let Err(e) = crate::validate::check_target(t) {
            out.push(quote(&e));
        }
    }
    if let Some(p) = &f.project {
        out.extend(project_name(p).err());
    }
    out
}
