//! Loading images into the runtime in two waves of concurrent streams,
//! where the runtime takes several loads at once (dockerd unpacks each
//! `docker load` one layer at a time, about one core's worth). First the
//! images that carry the layer chains several images share (so each is
//! unpacked once), beside the images that share nothing with them; then
//! the rest, balanced by bytes. With one stream, or one image, it is one
//! load.

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
    let (wave, rest) = first_wave(images, streams, &skip, &size);
    concurrently(bundle, &wave, runtime, &skip)?;
    if rest.is_empty() {
        return Ok(());
    }
    // What the first wave unpacked is left out of the rest.
    let skip = archive::skippable(bundle, &rest, runtime.archive_format(), &runtime.present()?)?;
    let groups = balanced(&rest, streams, &skip, &size);
    concurrently(bundle, &groups, runtime, &skip)
}

/// The first wave's streams: one with the images that carry the shared
/// layer chains, the others with the images that share nothing with them;
/// and the images left for the second wave.
fn first_wave<'a>(
    images: &[&'a ImageRecord],
    streams: usize,
    skip: &BTreeSet<Digest>,
    size: &dyn Fn(&Digest) -> u64,
) -> (Vec<Vec<&'a ImageRecord>>, Vec<&'a ImageRecord>) {
    let (first, rest) = shared_first(images, skip, size);
    let (independent, rest): (Vec<&ImageRecord>, Vec<&ImageRecord>) = rest
        .into_iter()
        .partition(|r| first.iter().all(|f| chains(f).is_disjoint(&chains(r))));
    if first.is_empty() {
        return (balanced(&independent, streams, skip, size), rest);
    }
    let mut wave = vec![first];
    wave.extend(balanced(
        &independent,
        streams.saturating_sub(1).max(1),
        skip,
        size,
    ));
    (wave, rest)
}

/// One load per group, all at once; the first error (an entry that changed
/// after verification before any other: it is the cause).
fn concurrently(
    bundle: &OpenBundle,
    groups: &[Vec<&ImageRecord>],
    runtime: &dyn Runtime,
    skip: &BTreeSet<Digest>,
) -> Result<(), InstallError> {
    let mut errors: Vec<InstallError> = std::thread::scope(|s| {
        let handles: Vec<_> = groups
            .iter()
            .map(|g| s.spawn(move || load(bundle, g, runtime, skip)))
            .collect();
        handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(r) => r.err(),
                Err(_) => Some(InstallError::Bundle("an image load stream panicked".into())),
            })
            .collect()
    });
    match errors
        .iter()
        .position(|e| matches!(e, InstallError::Open(OpenError::Changed { .. })))
    {
        Some(i) => Err(errors.swap_remove(i)),
        None => errors.into_iter().next().map_or(Ok(()), Err),
    }
}

/// The layer chains of an image: each layer with every layer below it,
/// as the runtime keys what it has unpacked (the same blob over another
/// base is another chain, unpacked again).
fn chains(r: &ImageRecord) -> BTreeSet<Vec<&Digest>> {
    (1..=r.layers.len())
        .map(|n| r.layers[..n].iter().collect())
        .collect()
}

/// The images to load first: a greedy cover of the layer chains more than
/// one image uses (each pick the image carrying the most shared bytes not
/// yet covered); and the others.
fn shared_first<'a>(
    images: &[&'a ImageRecord],
    skip: &BTreeSet<Digest>,
    size: &dyn Fn(&Digest) -> u64,
) -> (Vec<&'a ImageRecord>, Vec<&'a ImageRecord>) {
    let mut uses: BTreeMap<Vec<&Digest>, usize> = BTreeMap::new();
    for r in images {
        for c in chains(r) {
            *uses.entry(c).or_default() += 1;
        }
    }
    // A shared chain costs what its top layer costs (the rest is below).
    let cost = |c: &Vec<&Digest>| {
        c.last()
            .filter(|l| !skip.contains(**l))
            .map_or(0, |l| size(l))
    };
    let mut uncovered: BTreeSet<Vec<&Digest>> = uses
        .into_iter()
        .filter(|(c, n)| *n > 1 && cost(c) > 0)
        .map(|(c, _)| c)
        .collect();
    let mut first: Vec<&ImageRecord> = Vec::new();
    while !uncovered.is_empty() {
        let gain = |r: &ImageRecord| -> u64 {
            chains(r)
                .iter()
                .filter(|c| uncovered.contains(*c))
                .map(&cost)
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
        for c in chains(best) {
            uncovered.remove(&c);
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
    fn shared_chains_go_first_beside_what_shares_nothing_and_the_rest_is_balanced() {
        let sizes: BTreeMap<Digest, u64> = [
            ("base", 100),
            ("a", 50),
            ("b", 40),
            ("c", 30),
            ("solo", 80),
            ("top", 20),
        ]
        .iter()
        .map(|(l, n)| (Digest::of(l.as_bytes()), *n))
        .collect();
        let size = |d: &Digest| sizes.get(d).copied().unwrap_or(0);
        let (x, y, z) = (
            image("x", &["base", "a"]),
            image("y", &["base", "b"]),
            image("z", &["base", "c"]),
        );
        // `a` again, but over another base: another chain, shared with nobody.
        let w = image("w", &["solo", "a"]);
        let all = [&x, &y, &z, &w];
        let (wave, rest) = first_wave(&all, 2, &BTreeSet::new(), &size);
        // One image carries the shared base; `w` shares no chain with it
        // and loads beside it; the other two wait for the base.
        assert_eq!(wave.len(), 2, "{wave:?}");
        assert_eq!(wave[0].len(), 1);
        assert!(wave[0][0].layers.contains(&Digest::of(b"base")));
        assert_eq!(
            wave[1].iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["w"]
        );
        assert_eq!(rest.len(), 2);
        let skip: BTreeSet<Digest> = [Digest::of(b"base")].into();
        let groups = balanced(&rest, 2, &skip, &size);
        assert_eq!(groups.len(), 2);
        // Nothing shared: one stream of everything, no image waits.
        let v = image("v", &["top"]);
        let (wave, rest) = first_wave(&[&w, &v], 2, &BTreeSet::new(), &size);
        assert!(rest.is_empty());
        assert_eq!(wave.len(), 2, "two streams at once: {wave:?}");
    }
}
