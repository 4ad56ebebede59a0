//! Hashing entries in place, two at a time on each core.
//!
//! Each thread keeps two lanes, each an entry being hashed where it lies
//! in the page cache ([`crate::bundle::mapped`]); the two advance a page
//! at a time together, their SHA-256 rounds interleaved
//! ([`crate::sha256x2`]), because one stream's rounds leave the core
//! waiting on their own latency. When an entry ends, its lane takes the
//! next one; once none is left, the last lane goes on alone. An entry that
//! cannot be mapped (across two parts of a split bundle, a file system
//! without mappings, a page that cannot be read in) is hashed by the
//! caller's reader instead, from its start.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::bundle::mapped::{MappedError, MappedRange, PIECE};
use crate::bundle::source::Source;
use crate::digest::Digest;
use crate::sha256x2::{Sha256State, update_pair};

/// Where an entry lies: its offset and size in the bundle.
pub(super) type Span = (u64, u64);

/// Hashes span `i` another way, when it cannot be mapped.
pub(super) type Fallback<'a> = dyn Fn(usize) -> io::Result<Digest> + Sync + 'a;

/// Takes span `i`'s digest, or why it could not be read.
pub(super) type Done<'a> = dyn Fn(usize, io::Result<Digest>) + Sync + 'a;

/// One entry being hashed.
struct Lane {
    job: usize,
    range: MappedRange,
    state: Sha256State,
}

/// Hashes every span of `spans` (largest first) on `threads` threads, two
/// lanes each, calling `done` with each one's index and digest (or why it
/// could not be read); `fallback` hashes a span that cannot be mapped.
pub(super) fn hash(
    file: &Source,
    spans: &[Span],
    threads: usize,
    fallback: &Fallback<'_>,
    done: &Done<'_>,
) {
    let next = AtomicUsize::new(0);
    let take = || {
        let i = next.fetch_add(1, Ordering::SeqCst);
        (i < spans.len()).then_some(i)
    };
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, 64).min(spans.len().max(1)) {
            s.spawn(|| run(file, spans, &take, fallback, done));
        }
    });
}

/// One thread's loop: keep both lanes busy while entries are left.
fn run(
    file: &Source,
    spans: &[Span],
    take: &(dyn Fn() -> Option<usize> + Sync),
    fallback: &Fallback<'_>,
    done: &Done<'_>,
) {
    let mut lanes: [Option<Lane>; 2] = [None, None];
    loop {
        for lane in &mut lanes {
            while lane.is_none() {
                let Some(job) = take() else { break };
                *lane = open(file, spans, job, fallback, done);
            }
        }
        match &mut lanes {
            [Some(a), Some(b)] => {
                // Whole blocks only, so that both streams stay aligned to
                // blocks and can go on interleaved; an entry's last bytes
                // under a block go alone.
                let n = PIECE.min(a.range.remaining()).min(b.range.remaining()) & !63;
                if n == 0 {
                    let short = if a.range.remaining() < 64 { 0 } else { 1 };
                    step_alone(&mut lanes[short], fallback, done);
                } else {
                    step_pair(&mut lanes, n, fallback, done);
                }
            }
            [Some(_), None] => step_alone(&mut lanes[0], fallback, done),
            [None, Some(_)] => step_alone(&mut lanes[1], fallback, done),
            [None, None] => return,
        }
        for lane in &mut lanes {
            if lane.as_ref().is_some_and(|l| l.range.remaining() == 0) {
                finish(lane, done);
            }
        }
    }
}

/// A lane for span `job`, or `None` once the span is dealt with otherwise:
/// empty, or not mappable and hashed by `fallback`.
fn open(
    file: &Source,
    spans: &[Span],
    job: usize,
    fallback: &Fallback<'_>,
    done: &Done<'_>,
) -> Option<Lane> {
    let (offset, size) = spans[job];
    if size == 0 {
        done(job, Ok(Digest::of(&[])));
        return None;
    }
    let mapped = file
        .file_holding(offset, size)
        .map(|(f, at)| MappedRange::open(f, at, size));
    match mapped {
        Some(Ok(range)) => Some(Lane {
            job,
            range,
            state: Sha256State::new(),
        }),
        Some(Err(MappedError::Read(e))) => {
            done(job, Err(e));
            None
        }
        Some(Err(MappedError::Unsupported)) | None => {
            done(job, fallback(job));
            None
        }
    }
}

/// Both lanes take `n` bytes (a whole number of blocks, in each).
fn step_pair(lanes: &mut [Option<Lane>; 2], n: usize, fallback: &Fallback<'_>, done: &Done<'_>) {
    let [Some(a), Some(b)] = lanes else { return };
    let pa = a.range.next(n);
    let pb = b.range.next(n);
    match (pa, pb) {
        (Ok(pa), Ok(pb)) => update_pair(&mut a.state, pa, &mut b.state, pb),
        (ra, rb) => {
            // A lane whose piece failed ends here; the other's piece was
            // not hashed, so it ends too and starts again as a fallback.
            let (ea, eb) = (ra.err(), rb.err());
            let [la, lb] = lanes;
            fail(la, ea, fallback, done);
            fail(lb, eb, fallback, done);
        }
    }
}

/// One lane takes a piece alone.
fn step_alone(lane: &mut Option<Lane>, fallback: &Fallback<'_>, done: &Done<'_>) {
    let Some(l) = lane else { return };
    match l.range.next(PIECE) {
        Ok(piece) => l.state.update(piece),
        Err(e) => fail(lane, Some(e), fallback, done),
    }
}

/// Ends `lane` after a failed piece (or, with `None`, one left unhashed
/// beside it): a page lost is the entry's error; anything else leaves the
/// entry to `fallback`, from its start.
fn fail(
    lane: &mut Option<Lane>,
    error: Option<MappedError>,
    fallback: &Fallback<'_>,
    done: &Done<'_>,
) {
    let Some(l) = lane.take() else { return };
    match error {
        Some(MappedError::Read(e)) => done(l.job, Err(e)),
        Some(MappedError::Unsupported) | None => done(l.job, fallback(l.job)),
    }
}

/// A lane whose entry is all hashed: its digest, unless a page of it was
/// lost while it was read.
fn finish(lane: &mut Option<Lane>, done: &Done<'_>) {
    let Some(l) = lane.take() else { return };
    match l.range.done() {
        Ok(()) => done(l.job, Ok(l.state.finish())),
        Err(MappedError::Read(e)) => done(l.job, Err(e)),
        Err(MappedError::Unsupported) => done(l.job, Err(io::Error::other("unreadable"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn every_span_hashes_as_a_read_would_whatever_its_size_and_partner() {
        // Sizes that end pairs at every kind of point: empty, under a
        // block, between blocks, past a page, past a mapping step; and a
        // span across two parts, which goes to the fallback.
        let sizes = [0u64, 1, 63, 64, 65, 4095, 4097, 100_000, (5 << 20) + 3, 777];
        let whole: Vec<u8> = (0..sizes.iter().sum::<u64>() as u32 + 9000)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
            .collect();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cut = 4_000_000usize;
        let mut parts = Vec::new();
        for (i, bytes) in [&whole[..cut], &whole[cut..]].iter().enumerate() {
            let p = dir.path().join(format!("b.{i}"));
            std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("{e}"));
            parts.push((p, bytes.len() as u64));
        }
        let file = Source::parts(&parts).unwrap_or_else(|(p, m)| panic!("{}: {m}", p.display()));
        let mut spans = Vec::new();
        let mut at = 100u64;
        for s in sizes {
            spans.push((at, s));
            at += s + 512;
        }
        spans.sort_by_key(|s| std::cmp::Reverse(s.1));
        let fell_back = Mutex::new(Vec::new());
        let got = Mutex::new(vec![None; spans.len()]);
        let fallback = |i: usize| {
            if let Ok(mut f) = fell_back.lock() {
                f.push(i);
            }
            let (o, n) = spans[i];
            Ok(Digest::of(&whole[o as usize..(o + n) as usize]))
        };
        let done = |i: usize, r: io::Result<Digest>| {
            if let Ok(mut g) = got.lock() {
                g[i] = Some(r.map_err(|e| e.to_string()));
            }
        };
        for threads in [1, 2, 3] {
            // Each round's results alone: none left over from the last.
            if let Ok(mut g) = got.lock() {
                g.iter_mut().for_each(|r| *r = None);
            }
            hash(&file, &spans, threads, &fallback, &done);
            let got = got.lock().unwrap_or_else(|e| panic!("{e}")).clone();
            for (i, (o, n)) in spans.iter().enumerate() {
                let want = Digest::of(&whole[*o as usize..(o + n) as usize]);
                assert_eq!(
                    got[i],
                    Some(Ok(want)),
                    "span {i} ({n} bytes), {threads} threads"
                );
            }
        }
        // Only the span across the parts' boundary was read another way.
        let across: Vec<usize> = spans
            .iter()
            .enumerate()
            .filter(|(_, (o, n))| *o < cut as u64 && o + n > cut as u64)
            .map(|(i, _)| i)
            .collect();
        let mut f = fell_back.into_inner().unwrap_or_default();
        f.sort();
        f.dedup();
        assert_eq!(f, across);
    }
}
