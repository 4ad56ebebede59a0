//! Loading images into the runtime in concurrent streams, where the
//! runtime takes several loads at once (dockerd unpacks each `docker load`
//! one layer at a time, about one core's worth). Each image is one load.
//! The order: the images that carry the layer chains several images share
//! (so each chain is unpacked once; of two that carry as much of them, the
//! one with less beside them, as the images sharing its chains wait for
//! its whole load), then the rest, costliest first. An
//! image that shares a chain still to unpack with one before it waits for
//! that one, and its archive leaves out what that one unpacked; a stream
//! that comes free takes the first image with nothing left to wait for,
//! or else the first whose waits are all under way: its archive goes to
//! the runtime at once but for its last kilobyte (the end-of-archive
//! blocks), which waits for them. The runtime unpacks nothing before an
//! archive ends, so the stream inflates and sends while the shared layers
//! are unpacked, instead of idling. With one stream, or one image, it is
//! one load.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::sync::{Condvar, Mutex, MutexGuard};

use super::archive::{self, write_archive};
use super::error::InstallError;
use super::inflate::{Inflate, Uninflatable};
use crate::bundle::ImageRecord;
use crate::digest::Digest;
use crate::runtime::{ArchiveFormat, Present, Runtime};
use crate::verify::sealed::ChangedEntry;
use crate::verify::{OpenBundle, OpenError};

/// Loads `images` (which the runtime lacks) leaving out the blobs in
/// `skip` (what the runtime held, `present`, before), in concurrent
/// streams where the runtime allows.
pub(super) fn in_streams(
    bundle: &OpenBundle,
    images: &[&ImageRecord],
    runtime: &dyn Runtime,
    skip: BTreeSet<Digest>,
    present: Present,
) -> Result<(), InstallError> {
    let streams = runtime.parallel_loads();
    // Leaving out what another load of the same install unpacked is known
    // for Docker's chains only.
    if streams <= 1 || images.len() <= 1 || runtime.archive_format() != ArchiveFormat::Docker {
        return load(bundle, images, runtime, &skip, &|| Ok(()));
    }
    let unpacked = archive::unpacked_sizes(bundle, images)?;
    let size = |d: &Digest| unpacked.get(d).copied().unwrap_or(0);
    let order = ordered(images, &skip, &size);
    let chains = order
        .iter()
        .map(|r| archive::chain_ids(bundle, r))
        .collect::<Result<Vec<_>, _>>()?;
    let waits = waits(&chains, &present.chains);
    let queue = Queue {
        state: Mutex::new(State {
            started: vec![false; order.len()],
            done: vec![false; order.len()],
            have: present.chains,
            errors: Vec::new(),
        }),
        changed: Condvar::new(),
        waits,
        chains,
    };
    std::thread::scope(|s| {
        for _ in 0..streams.min(order.len()) {
            s.spawn(|| {
                while let Some((i, have)) = queue.next() {
                    let r = order[i];
                    // A stream that panicked would leave image `i` started
                    // and never done, and the images waiting for it waiting.
                    let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        archive::skippable(
                            bundle,
                            &[r],
                            ArchiveFormat::Docker,
                            &Present {
                                chains: have,
                                blobs: BTreeSet::new(),
                            },
                        )
                        .and_then(|skip| load(bundle, &[r], runtime, &skip, &|| queue.settled(i)))
                    }))
                    .unwrap_or_else(|_| {
                        Err(InstallError::Bundle("an image load stream panicked".into()))
                    });
                    queue.finished(i, loaded);
                }
            });
        }
    });
    let mut errors = std::mem::take(&mut queue.lock().errors);
    // An entry that changed after verification is the cause of whatever
    // else failed beside it.
    match errors
        .iter()
        .position(|e| matches!(e, InstallError::Open(OpenError::Changed { .. })))
    {
        Some(i) => Err(errors.swap_remove(i)),
        None => errors.into_iter().next().map_or(Ok(()), Err),
    }
}

/// What one layer costs the runtime beyond its bytes, in bytes of tar
/// unpacked: dockerd (overlay2) takes about 0.14 s for each layer of a
/// 31-layer image of small layers, about what 8 MiB of a large layer's
/// tar take it.
const LAYER_COST: u64 = 8 << 20;

/// The images in the order streams take them: a greedy cover of the
/// chains several images share, then the rest, the costliest first (so
/// that the last to finish is a small one). An image costs what `size`
/// gives for each layer the runtime unpacks for it (those on chains the
/// first images unpack left out) and [`LAYER_COST`] for each.
fn ordered<'a>(
    images: &[&'a ImageRecord],
    skip: &BTreeSet<Digest>,
    size: &dyn Fn(&Digest) -> u64,
) -> Vec<&'a ImageRecord> {
    let (mut first, mut rest) = shared_first(images, skip, size);
    // What the first ones unpack, the rest find there.
    let covered: BTreeSet<Vec<&Digest>> = first.iter().flat_map(|r| chains(r)).collect();
    let cost = |r: &ImageRecord| -> u64 {
        chains(r)
            .iter()
            .filter(|c| !covered.contains(*c))
            .filter_map(|c| c.last())
            .filter(|l| !skip.contains(**l))
            .map(|l| size(l) + LAYER_COST)
            .sum()
    };
    rest.sort_by(|a, b| cost(b).cmp(&cost(a)).then_with(|| a.name.cmp(&b.name)));
    first.append(&mut rest);
    first
}

/// What loading `r` costs the runtime: its layers' bytes, less those it
/// has, and [`LAYER_COST`] for each.
fn load_cost(r: &ImageRecord, skip: &BTreeSet<Digest>, size: &dyn Fn(&Digest) -> u64) -> u64 {
    r.layers
        .iter()
        .filter(|l| !skip.contains(*l))
        .map(|l| size(l) + LAYER_COST)
        .sum()
}

/// For each image (by its chain IDs, in load order), the images that
/// unpack a chain it has and the runtime lacks: for each such chain, the
/// first image in the order that has it. It waits for them, and then
/// leaves those chains out.
fn waits(chains: &[Vec<Digest>], present: &BTreeSet<Digest>) -> Vec<Vec<usize>> {
    let mut unpacker: BTreeMap<&Digest, usize> = BTreeMap::new();
    chains
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let mut on: BTreeSet<usize> = BTreeSet::new();
            for c in image.iter().filter(|c| !present.contains(*c)) {
                let first = *unpacker.entry(c).or_insert(i);
                if first != i {
                    on.insert(first);
                }
            }
            on.into_iter().collect()
        })
        .collect()
}

/// The loads of one install: which have started and finished, the chains
/// the runtime has by now, and what failed.
struct Queue {
    state: Mutex<State>,
    changed: Condvar,
    waits: Vec<Vec<usize>>,
    chains: Vec<Vec<Digest>>,
}

struct State {
    started: Vec<bool>,
    done: Vec<bool>,
    have: BTreeSet<Digest>,
    errors: Vec<InstallError>,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A stream that panicked holding the lock leaves the counts as
        // they were; they are still the truth.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next image to load: the first with nothing left to wait for,
    /// else the first whose waits have all started (its archive's end then
    /// waits in [`Queue::settled`]); and the chains the runtime will have
    /// when its archive ends. `None` when nothing is left to start or a
    /// load failed. Waits while no image qualifies.
    fn next(&self) -> Option<(usize, BTreeSet<Digest>)> {
        let mut st = self.lock();
        loop {
            if !st.errors.is_empty() || st.started.iter().all(|s| *s) {
                return None;
            }
            let first = |on: &[bool]| {
                (0..st.started.len())
                    .find(|&i| !st.started[i] && self.waits[i].iter().all(|&j| on[j]))
            };
            if let Some(i) = first(&st.done).or_else(|| first(&st.started)) {
                st.started[i] = true;
                let mut have = st.have.clone();
                for &j in &self.waits[i] {
                    have.extend(self.chains[j].iter().cloned());
                }
                return Some((i, have));
            }
            st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Waits until every load image `i` waits for is done; an error once
    /// any load failed, so that `i`'s archive stops short and the runtime
    /// drops it.
    fn settled(&self, i: usize) -> io::Result<()> {
        let mut st = self.lock();
        loop {
            if !st.errors.is_empty() {
                return Err(io::Error::other("an image loaded beside this one failed"));
            }
            if self.waits[i].iter().all(|&j| st.done[j]) {
                return Ok(());
            }
            st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Records how the load of image `i` ended.
    fn finished(&self, i: usize, loaded: Result<(), InstallError>) {
        let mut st = self.lock();
        match loaded {
            Ok(()) => {
                st.done[i] = true;
                st.have.extend(self.chains[i].iter().cloned());
            }
            Err(e) => st.errors.push(e),
        }
        self.changed.notify_all();
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
/// yet covered; of those that carry as many, the one with the least of its
/// own, since every image that shares them waits until its whole load is
/// done); and the others.
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
        let own = |r: &ImageRecord| load_cost(r, skip, size).saturating_sub(gain(r));
        let Some(best) = images
            .iter()
            .filter(|r| !first.iter().any(|f| f.name == r.name))
            .max_by(|a, b| {
                gain(a)
                    .cmp(&gain(b))
                    .then_with(|| own(b).cmp(&own(a)))
                    .then_with(|| b.name.cmp(&a.name))
            })
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

/// One `load` of `images`; an entry that changed after verification is an
/// integrity failure, not a runtime one. A gzip layer that did not
/// inflate to its trailer's length is sent as it is in a load made again.
/// The archive's end waits for `settled`: its error stops the archive
/// short.
fn load(
    bundle: &OpenBundle,
    images: &[&ImageRecord],
    runtime: &dyn Runtime,
    skip: &BTreeSet<Digest>,
    settled: &dyn Fn() -> io::Result<()>,
) -> Result<(), InstallError> {
    let format = runtime.archive_format();
    let mut inflate =
        Inflate::new(format == ArchiveFormat::Docker && runtime.takes_inflated_layers());
    loop {
        let changed = std::cell::RefCell::new(None);
        let refused = std::cell::RefCell::new(None);
        let loaded = runtime.load(&mut |w| {
            let mut held = HeldEnd::new(w);
            write_archive(bundle, images, format, skip, &inflate, &mut held)
                .and_then(|()| settled())
                .and_then(|()| held.release())
                .inspect_err(|e| {
                    let inner = e.get_ref();
                    if let Some(c) = inner.and_then(|i| i.downcast_ref::<ChangedEntry>()) {
                        *changed.borrow_mut() = Some(c.0.clone());
                    }
                    if let Some(u) = inner.and_then(|i| i.downcast_ref::<Uninflatable>()) {
                        *refused.borrow_mut() = Some(u.0.clone());
                    }
                })
        });
        if let Some(entry) = changed.into_inner() {
            return Err(OpenError::Changed { entry }.into());
        }
        // The runtime dropped the archive cut short: nothing of it loaded.
        let again = refused
            .into_inner()
            .is_some_and(|layer| inflate.refuse(layer));
        if !again {
            return Ok(loaded?);
        }
    }
}

/// How much of an archive's end is held back: tar's end-of-archive, two
/// zero blocks. The runtime reads the archive whole before it unpacks a
/// layer, so while these are held it has unpacked nothing of it.
const HELD: usize = 1024;

/// A writer that passes on all but the last [`HELD`] bytes written to it
/// until [`HeldEnd::release`].
struct HeldEnd<'a> {
    inner: &'a mut dyn Write,
    tail: Vec<u8>,
}

impl<'a> HeldEnd<'a> {
    fn new(inner: &'a mut dyn Write) -> Self {
        HeldEnd {
            inner,
            tail: Vec::with_capacity(2 * HELD),
        }
    }

    /// Passes on what was held.
    fn release(self) -> io::Result<()> {
        self.inner.write_all(&self.tail)
    }
}

impl Write for HeldEnd<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() >= HELD {
            let (now, later) = buf.split_at(buf.len() - HELD);
            self.inner.write_all(&self.tail)?;
            self.inner.write_all(now)?;
            self.tail.clear();
            self.tail.extend_from_slice(later);
        } else {
            self.tail.extend_from_slice(buf);
            let over = self.tail.len().saturating_sub(HELD);
            if over > 0 {
                self.inner.write_all(&self.tail[..over])?;
                self.tail.drain(..over);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_end_is_held_until_released_whatever_the_writes() {
        let data: Vec<u8> = (0..5000u32).map(|n| (n % 251) as u8).collect();
        for sizes in [
            &[5000][..],
            &[1, 1023, 1, 3975],
            &[700, 700, 700, 2900],
            &[3000, 10, 1990],
        ] {
            let mut out = Vec::new();
            let mut held = HeldEnd::new(&mut out);
            let mut at = 0;
            for n in sizes {
                assert!(held.write_all(&data[at..at + n]).is_ok());
                at += n;
            }
            assert!(held.release().is_ok());
            assert!(out == data, "{sizes:?}");
            let mut out = Vec::new();
            let mut held = HeldEnd::new(&mut out);
            assert!(held.write_all(&data).is_ok());
            drop(held);
            assert!(out == data[..data.len() - HELD], "{sizes:?}");
        }
    }

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
    fn of_the_images_sharing_a_base_the_one_with_least_beside_it_loads_first() {
        // Sizes as the runtime unpacks them (`archive::unpacked_sizes`: a
        // gzip layer's trailer length), whatever its blob's size.
        let sizes: BTreeMap<Digest, u64> =
            [("base", 300), ("big", 370), ("other", 370), ("small", 20)]
                .iter()
                .map(|(l, n)| (Digest::of(l.as_bytes()), *n << 20))
                .collect();
        let size = |d: &Digest| sizes.get(d).copied().unwrap_or(0);
        // By name, `a-first` would win the tie on the shared base: every
        // other image would then wait for its 370 MiB.
        let a = image("a-first", &["base", "big"]);
        let b = image("b-second", &["base", "small"]);
        let c = image("c-third", &["base", "other"]);
        let order = ordered(&[&a, &b, &c], &BTreeSet::new(), &size);
        let names: Vec<&str> = order.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["b-second", "a-first", "c-third"]);
        // What the first one unpacks is left out of the rest's cost: `x`
        // costs its 370 MiB top layer, not the 690 MiB of all its layers,
        // and goes after `y`'s 400 MiB.
        let x = image("x", &["base", "small", "big"]);
        let y = image("y", &["solo"]);
        let sizes_y = |d: &Digest| {
            if d == &Digest::of(b"solo") {
                400 << 20
            } else {
                size(d)
            }
        };
        let order = ordered(&[&b, &x, &y], &BTreeSet::new(), &sizes_y);
        let names: Vec<&str> = order.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["b-second", "y", "x"]);
    }

    #[test]
    fn shared_chains_go_first_what_shares_them_waits_and_the_rest_goes_largest_first() {
        // In MiB, beside the 8 MiB each layer costs.
        let sizes: BTreeMap<Digest, u64> = [
            ("base", 100),
            ("a", 10),
            ("b", 60),
            ("c", 20),
            ("solo", 20),
            ("top", 5),
        ]
        .iter()
        .map(|(l, n)| (Digest::of(l.as_bytes()), *n << 20))
        .collect();
        let size = |d: &Digest| sizes.get(d).copied().unwrap_or(0);
        let (x, y, z) = (
            image("x", &["base", "a"]),
            image("y", &["base", "b"]),
            image("z", &["base", "c"]),
        );
        // `a` again, but over another base: another chain, shared with nobody.
        let w = image("w", &["solo", "a"]);
        let v = image("v", &["top"]);
        let order = ordered(&[&v, &x, &y, &z, &w], &BTreeSet::new(), &size);
        let names: Vec<&str> = order.iter().map(|r| r.name.as_str()).collect();
        // One image carries the shared base, the one with the least of its
        // own; then the rest by what is left to unpack of them.
        assert_eq!(names[0], "x", "{names:?}");
        assert_eq!(names[1..], ["y", "w", "z", "v"]);
        // Chains stand in for chain IDs here: each prefix of the layers.
        let chains: Vec<Vec<Digest>> = order
            .iter()
            .map(|r| {
                (1..=r.layers.len())
                    .map(|n| Digest::of(format!("{:?}", &r.layers[..n]).as_bytes()))
                    .collect()
            })
            .collect();
        let waits = waits(&chains, &BTreeSet::new());
        // `y` and `z` wait for `x`, which unpacks the base (not for each
        // other); `w` and `v` share nothing.
        assert_eq!(waits, [vec![], vec![0], vec![], vec![0], vec![]]);
        // A base the runtime has already: nobody waits.
        let have: BTreeSet<Digest> = chains[0][..1].iter().cloned().collect();
        assert!(super::waits(&chains, &have).iter().all(Vec::is_empty));
        // Two streams: `x` starts, and `w` beside it (`y` must wait); when
        // `w` is done, `v` may start while `x` loads; then `y`, whose
        // archive is sent while `x` loads but ends only once `x` is done.
        let queue = Queue {
            state: Mutex::new(State {
                started: vec![false; 5],
                done: vec![false; 5],
                have: BTreeSet::new(),
                errors: Vec::new(),
            }),
            changed: Condvar::new(),
            waits,
            chains: chains.clone(),
        };
        let first = queue.next().map(|(i, _)| i);
        let second = queue.next().map(|(i, _)| i);
        queue.finished(2, Ok(()));
        let third = queue.next().map(|(i, _)| i);
        assert_eq!((first, second, third), (Some(0), Some(2), Some(4)));
        let (fourth, have) = queue.next().unwrap_or_default();
        assert_eq!(fourth, 1);
        // What `w` unpacked, and what `x` is unpacking, is left out of it.
        assert!(chains[0].iter().chain(&chains[2]).all(|c| have.contains(c)));
        std::thread::scope(|s| {
            let end = s.spawn(|| queue.settled(1));
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(
                !end.is_finished(),
                "the archive ended before `x` was loaded"
            );
            queue.finished(0, Ok(()));
            assert!(matches!(end.join(), Ok(Ok(()))));
        });
        let (fifth, _) = queue.next().unwrap_or_default();
        assert_eq!(fifth, 3);
        // A failed load: nothing more starts, and an archive waiting for
        // its end is stopped short.
        queue.finished(1, Err(InstallError::Bundle("boom".into())));
        assert!(queue.next().is_none());
        assert!(queue.settled(3).is_err());
    }
}
