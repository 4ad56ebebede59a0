//! Loading images into the runtime in waves: first, alone, the images that
//! carry the layers several of them share (so each shared layer is
//! unpacked once); then the rest in concurrent streams balanced by bytes,
//! where the runtime takes several loads at once (dockerd decompresses and
//! unpacks each `docker load` on its own core). With one stream, or one
//! image, it is one load, as before.

use std::collections::{BTreeMap, BTreeSet};

use super::archive::{self, write_archive};
use super::error::InstallError;
use crate::bundle::ImageRecord;
use crate::digest::Digest;
use crate::runtime::Runtime;
use crate::verify::open::ChangedEntry;
use crate::verify::{OpenBundle, OpenError};

/// Loads `images` (which the runtime lacks) leaving out the blobs in
/// `skip`, in waves where the runtime allows.
pub(super) fn in_waves(
    bundle: &OpenBundle,
    images: &[&ImageRecord],
    runtime: &dyn Runtime,
    skip: BTreeSet<Digest>,
) -> Result<(), InstallError> {
    let streams = runtime.parallel_loads();
    if streams <= 1 || images.len() <= 1 {
        return load(bundle, images, runtime, &skip);
    }
    let size = |d: &Digest| {
        bundle
            .expected(&format!("blobs/sha256/{}", d.hex()))
            .map_or(0, |(_, s)| s)
    };
    let (first, rest) = shared_first(images, &skip, &size);
    let mut skip = skip;
    if !first.is_empty() {
        load(bundle, &first, runtime, &skip)?;
        if rest.is_empty() {
            return Ok(());
        }
        // What the first wave unpacked is left out of the rest.
        skip = archive::skippable(bundle, &rest, runtime.archive_format(), &runtime.present()?)?;
    }
    let groups = balanced(&rest, streams, &skip, &size);
    let errors: Vec<InstallError> = std::thread::scope(|s| {
        let handles: Vec<_> = groups
            .iter()
            .map(|g| {
                let skip = &skip;
                s.spawn(move || load(bundle, g, runtime, skip))
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(r) => r.err(),
                Err(_) => Some(InstallError::Bundle("an image load stream panicked".into())),
            })
            .collect()
    });
    // An entry that changed after verification wins: it is the cause.
    let mut errors = errors;
    match errors
        .iter()
        .position(|e| matches!(e, InstallError::Open(OpenError::Changed { .. })))
    {
        Some(i) => Err(errors.swap_remove(i)),
        None => errors.into_iter().next().map_or(Ok(()), Err),
    }
}

/// The images to load first, alone: a greedy cover of the layers more
/// than one image uses (each pick the image carrying the most shared bytes
/// not yet covered); and the others.
fn shared_first<'a>(
    images: &[&'a ImageRecord],
    skip: &BTreeSet<Digest>,
    size: &dyn Fn(&Digest) -> u64,
) -> (Vec<&'a ImageRecord>, Vec<&'a ImageRecord>) {
    let mut uses: BTreeMap<&Digest, usize> = BTreeMap::new();
    for r in images {
        for l in r
            .layers
            .iter()
            .filter(|l| !skip.contains(*l))
            .collect::<BTreeSet<_>>()
        {
            *uses.entry(l).or_default() += 1;
        }
    }
    let mut uncovered: BTreeSet<&Digest> = uses
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(d, _)| *d)
        .collect();
    let mut first: Vec<&ImageRecord> = Vec::new();
    while !uncovered.is_empty() {
        let gain = |r: &ImageRecord| -> u64 {
            r.layers
                .iter()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .filter(|l| uncovered.contains(l))
                .map(size)
                .sum()
        };
        let Some(best) = images
            .iter()
            .filter(|r| !first.iter().any(|f| f.name == r.name))
            .max_by(|a, b| gain(a).cmp(&gain(b)).then_with(|| b.name.cmp(&a.name)))
        else {
            break;
        };
        if gain(best) == 0 {
            break;
        }
        for l in &best.layers {
            uncovered.remove(l);
        }
        first.push(best);
    }
    let rest = images
        .iter()
        .filter(|r| !first.iter().any(|f| f.name == r.name))
        .copied()
        .collect();
    (first, rest)
}

/// `images` split into at most `streams` groups of about equal bytes to
/// load (largest image first, each to the lightest group).
fn balanced<'a>(
    images: &[&'a ImageRecord],
    streams: usize,
    skip: &BTreeSet<Digest>,
    size: &dyn Fn(&Digest) -> u64,
) -> Vec<Vec<&'a ImageRecord>> {
    let bytes = |r: &ImageRecord| -> u64 {
        r.layers
            .iter()
            .filter(|l| !skip.contains(*l))
            .map(size)
            .sum()
    };
    let mut sorted: Vec<&ImageRecord> = images.to_vec();
    sorted.sort_by(|a, b| bytes(b).cmp(&bytes(a)).then_with(|| a.name.cmp(&b.name)));
    let mut groups: Vec<(u64, Vec<&ImageRecord>)> =
        vec![(0, Vec::new()); streams.min(images.len())];
    for r in sorted {
        if let Some(g) = groups.iter_mut().min_by_key(|g| g.0) {
            g.0 += bytes(r);
            g.1.push(r);
        }
    }
    groups
        .into_iter()
        .map(|g| g.1)
        .filter(|g| !g.is_empty())
        .collect()
}

/// One `load` of `images`; an entry that changed after verification is an
/// integrity failure, not a runtime one.
fn load(
    bundle: &OpenBundle,
    images: &[&ImageRecord],
    runtime: &dyn Runtime,
    skip: &BTreeSet<Digest>,
) -> Result<(), InstallError> {
    let format = runtime.archive_format();
    let changed = std::cell::RefCell::new(None);
    let loaded = runtime.load(&mut |w| {
        write_archive(bundle, images, format, skip, w).inspect_err(|e| {
            if let Some(c) = e.get_ref().and_then(|i| i.downcast_ref::<ChangedEntry>()) {
                *changed.borrow_mut() = Some(c.0.clone());
            }
        })
    });
    if let Some(entry) = changed.into_inner() {
        return Err(OpenError::Changed { entry }.into());
    }
    Ok(loaded?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str, layers: &[&str]) -> ImageRecord {
        let d = |s: &str| Digest::of(s.as_bytes());
        ImageRecord {
            service: name.into(),
            name: name.into(),
            platform: "linux/amd64".into(),
            digest: d(name),
            manifest: d(name),
            manifest_media_type: String::new(),
            config: d(name),
            layers: layers.iter().map(|l| d(l)).collect(),
            size: 0,
            attestations: Vec::new(),
            signature: None,
        }
    }

    #[test]
    fn shared_layers_go_first_and_the_rest_is_balanced_by_bytes() {
        let sizes: BTreeMap<Digest, u64> =
            [("base", 100), ("a", 50), ("b", 40), ("c", 30), ("solo", 80)]
                .iter()
                .map(|(l, n)| (Digest::of(l.as_bytes()), *n))
                .collect();
        let size = |d: &Digest| sizes.get(d).copied().unwrap_or(0);
        let (x, y, z, w) = (
            image("x", &["base", "a"]),
            image("y", &["base", "b"]),
            image("z", &["base", "c"]),
            image("w", &["solo"]),
        );
        let all = [&x, &y, &z, &w];
        let (first, rest) = shared_first(&all, &BTreeSet::new(), &size);
        // One image carries the shared base; the others wait for it.
        assert_eq!(first.len(), 1);
        assert!(first[0].layers.contains(&Digest::of(b"base")));
        assert_eq!(rest.len(), 3);
        let skip: BTreeSet<Digest> = [Digest::of(b"base")].into();
        let groups = balanced(&rest, 2, &skip, &size);
        assert_eq!(groups.len(), 2);
        let load = |g: &Vec<&ImageRecord>| -> u64 {
            g.iter()
                .flat_map(|r| r.layers.iter())
                .filter(|l| !skip.contains(*l))
                .map(size)
                .sum()
        };
        let (a, b) = (load(&groups[0]), load(&groups[1]));
        assert!(a.abs_diff(b) <= 50, "{a} vs {b}");
        // Nothing shared: no first wave.
        let (first, rest) = shared_first(&[&w], &BTreeSet::new(), &size);
        assert!(first.is_empty() && rest.len() == 1);
    }
}
