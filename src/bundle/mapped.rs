//! SHA-256 of a range of a file read through short-lived read-only
//! mappings instead of `pread`, for verification, which reads each byte
//! once and keeps none of them.
//!
//! Why: a `pread` copies every byte out of the page cache before it is
//! hashed, and on this project's machines that copy costs a fifth of a
//! verification (docs/benchmarks.md, part 15). A mapping hashes the page
//! cache in place; with one software prefetch two pages ahead (the hardware
//! prefetcher stops at page boundaries) it ran at 90–93 % of two cores'
//! SHA-256 rate where `pread` ran at 81–83 %.
//!
//! The cost of a mapping is that a page that cannot be read raises `SIGBUS`
//! on access instead of returning an error: the file cut short by another
//! process, or a disk read that fails after the page was evicted. Each
//! window is therefore populated with `MADV_POPULATE_READ` first (which
//! reports those failures as an error without touching the bytes), and a
//! `SIGBUS` handler covers what remains: a fault inside a window registered
//! here maps a page of zeros over the faulting page and marks the window
//! failed, so the hash goes on and the caller gets an error, never a crash.
//! A fault anywhere else goes to the handler that was there before.
//!
//! The bytes are hashed where they lie, so they may change while they are
//! read; that is why only a check that keeps nothing (a digest compared,
//! then forgotten) may use this. Seals, which certify the bytes a later
//! reader sends, are taken from a private copy (`pread`) instead.
//!
//! No crate offers a mapping that survives `SIGBUS` (memmap2 leaves it to
//! the caller), hence the handful of `libc` calls here.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

/// Bytes mapped in (and let go) at a time: the pages mapped stay a few MiB
/// of the process's resident size however large the entry.
const STEP: usize = 4 << 20;

/// How far ahead of the hash a page is prefetched: two pages ahead
/// measured best (one line per page is enough to start the hardware's own
/// prefetch in that page).
const PREFETCH_AHEAD: usize = 8192;

/// Windows that can be mapped at once: two per hashing thread, up to the
/// 64 threads verification starts; past that a range is left to `pread`.
const SLOTS: usize = 128;

/// A window's address range, registered while it is mapped, and whether a
/// fault replaced one of its pages.
struct Slot {
    taken: AtomicBool,
    start: AtomicUsize,
    end: AtomicUsize,
    failed: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)] // only to build the array
const FREE: Slot = Slot {
    taken: AtomicBool::new(false),
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    failed: AtomicBool::new(false),
};

static TABLE: [Slot; SLOTS] = [FREE; SLOTS];

/// The page size once the `SIGBUS` handler is installed, or why mappings
/// cannot be used here.
static SETUP: OnceLock<Result<usize, String>> = OnceLock::new();

/// The page size, for the handler.
static PAGE: AtomicUsize = AtomicUsize::new(4096);

/// The `SIGBUS` action found when ours was installed (leaked once, never
/// freed: the handler may read it at any time).
static PREVIOUS: AtomicPtr<libc::sigaction> = AtomicPtr::new(std::ptr::null_mut());

/// Why a range was not hashed through a mapping.
#[derive(Debug)]
pub enum MappedError {
    /// The range cannot be hashed through a mapping: the kernel lacks
    /// `MADV_POPULATE_READ`, the file cannot be mapped, no slot is free,
    /// or a page of it cannot be read in (the file ends early, a read
    /// error). Nothing was hashed: read the range another way, which also
    /// names the read error, if there is one.
    Unsupported,
    /// A page was lost while it was hashed (the file cut by another
    /// process, or a disk error after the page was read in).
    Read(io::Error),
}

/// The SHA-256 of the `size` bytes of `file` at `offset`, hashed in place
/// through a read-only mapping, [`STEP`] bytes mapped in at a time.
pub fn sha256(file: &File, offset: u64, size: u64) -> Result<Digest, MappedError> {
    if size == 0 {
        return Ok(Digest::of(&[]));
    }
    let mut r = MappedRange::open(file, offset, size)?;
    let mut h = Sha256::new();
    while r.remaining() > 0 {
        h.update(r.next(PIECE)?);
    }
    r.done()?;
    Ok(Digest::from_sha256(h))
}

/// Bytes a reader should take from [`MappedRange::next`] at a time: a page,
/// so that each piece asks for the page [`PREFETCH_AHEAD`] further on.
pub const PIECE: usize = 4096;

/// A range of a file read in place, piece by piece: the next [`STEP`] of
/// pages mapped in before they are needed (so the prefetch reaches into
/// them), the pages behind let go once read (so they do not add up in the
/// resident size).
pub struct MappedRange {
    w: Window,
    /// The next byte to hand out, from the mapping's start.
    at: usize,
    populated: usize,
    released: usize,
}

impl MappedRange {
    /// The `size` bytes of `file` from `offset`, mapped but not yet read.
    /// [`MappedError::Unsupported`] for an empty range, among others.
    pub fn open(file: &File, offset: u64, size: u64) -> Result<MappedRange, MappedError> {
        let page = match SETUP.get_or_init(install) {
            Ok(p) => *p,
            Err(_) => return Err(MappedError::Unsupported),
        };
        if size == 0 {
            return Err(MappedError::Unsupported);
        }
        let slot = Claim::take().ok_or(MappedError::Unsupported)?;
        let w = Window::map(file, offset, size, page, slot)?;
        let at = w.skip;
        Ok(MappedRange {
            w,
            at,
            populated: 0,
            released: 0,
        })
    }

    /// Bytes not yet handed out.
    pub fn remaining(&self) -> usize {
        self.w.mapped - self.at
    }

    /// The next `max` bytes (fewer at the end), with the line
    /// [`PREFETCH_AHEAD`] bytes on asked for. A page that failed in an
    /// earlier piece, or that cannot be mapped in, ends the range.
    pub fn next(&mut self, max: usize) -> Result<&[u8], MappedError> {
        self.check()?;
        let end = self.w.mapped;
        let n = max.min(end - self.at);
        let want = (self.at + n + PREFETCH_AHEAD).min(end);
        while self.populated < want {
            let to = (self.populated + STEP).min(end);
            self.w.populate(self.populated..to)?;
            self.populated = to;
        }
        let behind = self.at / STEP * STEP;
        if behind > self.released {
            self.w.release(self.released..behind);
            self.released = behind;
        }
        let all = self.w.all();
        if let Some(ahead) = all.get(self.at + PREFETCH_AHEAD) {
            prefetch(ahead);
        }
        let piece = all.get(self.at..self.at + n).unwrap_or_default();
        self.at += n;
        Ok(piece)
    }

    /// Whether every byte handed out was read as it is in the file.
    pub fn done(self) -> Result<(), MappedError> {
        self.check()
    }

    fn check(&self) -> Result<(), MappedError> {
        if self.w.failed() {
            return Err(MappedError::Read(io::Error::other(
                "a page could not be read while it was hashed (the file changed or the disk failed)",
            )));
        }
        Ok(())
    }
}

#[cfg(target_arch = "x86_64")]
fn prefetch(byte: &u8) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    // SAFETY: a prefetch reads nothing architecturally and never faults;
    // the address is a valid reference besides.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(byte).cast::<i8>()) }
}

#[cfg(not(target_arch = "x86_64"))]
fn prefetch(_byte: &u8) {}

/// A slot of [`TABLE`] held by one hashing thread.
struct Claim(&'static Slot);

impl Claim {
    fn take() -> Option<Claim> {
        TABLE
            .iter()
            .find(|s| {
                s.taken
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
            .map(Claim)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.taken.store(false, Ordering::Release);
    }
}

/// One read-only mapping, registered in its slot while it lives.
struct Window {
    base: *mut libc::c_void,
    mapped: usize,
    skip: usize,
    slot: Claim,
}

// SAFETY: the mapping is read-only and owned by the window alone; moving
// it to another thread moves nothing the kernel ties to a thread.
unsafe impl Send for Window {}

impl Window {
    /// Maps `len` bytes of `file` from `offset` (rounded down to a page);
    /// nothing is read until [`Window::populate`].
    fn map(
        file: &File,
        offset: u64,
        len: u64,
        page: usize,
        slot: Claim,
    ) -> Result<Window, MappedError> {
        let skip = (offset % page as u64) as usize;
        let start = offset - skip as u64;
        let mapped = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(skip))
            .ok_or(MappedError::Unsupported)?;
        let at = libc::off_t::try_from(start).map_err(|_| MappedError::Unsupported)?;
        // SAFETY: a fresh read-only shared mapping of an open file, at an
        // address the kernel picks; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                at,
            )
        };
        if base == libc::MAP_FAILED {
            // A file system without mappings, say: `pread` still works.
            return Err(MappedError::Unsupported);
        }
        let s = slot.0;
        s.failed.store(false, Ordering::Release);
        s.start.store(base as usize, Ordering::Release);
        s.end.store(base as usize + mapped, Ordering::Release);
        Ok(Window {
            base,
            mapped,
            skip,
            slot,
        })
    }

    /// Reads the pages of `range` (offsets from the mapping's start) in; a
    /// page that cannot be read (past the file's end, a read error) fails
    /// the call instead of raising `SIGBUS`.
    fn populate(&self, range: std::ops::Range<usize>) -> Result<(), MappedError> {
        // SAFETY: a page-aligned range inside this window's own mapping.
        let r = unsafe {
            libc::madvise(
                self.base.cast::<u8>().add(range.start).cast(),
                range.len(),
                libc::MADV_POPULATE_READ,
            )
        };
        if r == 0 {
            return Ok(());
        }
        // EINVAL before Linux 5.14; EFAULT for a page past the file's end
        // or one that fails to read, which a read then names.
        Err(MappedError::Unsupported)
    }

    /// Unmaps the pages of `range` from this process (they stay in the
    /// page cache); a later access would map them in again.
    fn release(&self, range: std::ops::Range<usize>) {
        // SAFETY: a page-aligned range inside this window's own mapping;
        // on a shared file mapping the advice only drops page table entries.
        unsafe {
            libc::madvise(
                self.base.cast::<u8>().add(range.start).cast(),
                range.len(),
                libc::MADV_DONTNEED,
            )
        };
    }

    /// Every mapped byte, from the page the range starts in.
    fn all(&self) -> &[u8] {
        // SAFETY: `mapped` readable bytes from `base` while the window
        // lives; a page that fails on access is replaced with zeros by
        // the handler, so every read returns.
        unsafe { std::slice::from_raw_parts(self.base.cast::<u8>().cast_const(), self.mapped) }
    }

    fn failed(&self) -> bool {
        self.slot.0.failed.load(Ordering::Acquire)
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        let s = self.slot.0;
        s.start.store(0, Ordering::Release);
        s.end.store(0, Ordering::Release);
        // SAFETY: this window's own mapping, no longer borrowed.
        unsafe { libc::munmap(self.base, self.mapped) };
    }
}

/// Installs the `SIGBUS` handler once, keeping the action it replaces.
fn install() -> Result<usize, String> {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = usize::try_from(page).ok().filter(|p| p.is_power_of_two());
    let Some(page) = page else {
        return Err("no page size".into());
    };
    PAGE.store(page, Ordering::Release);
    // SAFETY: zeroed sigaction structs are valid; the handler only makes
    // async-signal-safe calls (mmap, sigaction) and atomic loads/stores.
    unsafe {
        let mut ours: libc::sigaction = std::mem::zeroed();
        ours.sa_sigaction = on_sigbus as *const () as usize;
        ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut ours.sa_mask);
        // The action to fall back on is stored before ours can run.
        let mut previous: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut previous) != 0 {
            return Err(io::Error::last_os_error().to_string());
        }
        PREVIOUS.store(Box::into_raw(Box::new(previous)), Ordering::Release);
        if libc::sigaction(libc::SIGBUS, &ours, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error().to_string());
        }
    }
    Ok(page)
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE.load(Ordering::Acquire);
    for s in &TABLE {
        let (a, b) = (
            s.start.load(Ordering::Acquire),
            s.end.load(Ordering::Acquire),
        );
        if a != 0 && a <= addr && addr < b {
            // SAFETY: replaces one page inside a window this module mapped
            // and still holds with a read-only page of zeros.
            let r = unsafe {
                libc::mmap(
                    (addr & !(page - 1)) as *mut libc::c_void,
                    page,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if r != libc::MAP_FAILED {
                s.failed.store(true, Ordering::Release);
                return;
            }
            break;
        }
    }
    // Not a window of ours: whatever handled SIGBUS before.
    // SAFETY: set in `install` from a valid sigaction before this handler
    // was, and never freed.
    let Some(prev) = (unsafe { PREVIOUS.load(Ordering::Acquire).as_ref() }) else {
        return;
    };
    let handler = prev.sa_sigaction;
    if prev.sa_flags & libc::SA_SIGINFO != 0 && handler > libc::SIG_IGN {
        // SAFETY: an SA_SIGINFO handler has this signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        f(sig, info, ctx);
    } else if handler > libc::SIG_IGN {
        // SAFETY: a plain handler has this signature.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        f(sig);
    } else {
        // The default action: restore it; the faulting access runs again
        // and the signal does what it would have done without us.
        // SAFETY: restores a sigaction the kernel handed us.
        unsafe { libc::sigaction(libc::SIGBUS, prev, std::ptr::null_mut()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("b");
        std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("{e}"));
        (dir, p)
    }

    fn open(p: &std::path::Path) -> File {
        File::open(p).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn hashes_any_range_as_a_read_would() {
        // Past two windows, from offsets on and off page boundaries.
        let bytes: Vec<u8> = (0..(9u32 << 20) + 777)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let (_dir, p) = file_of(&bytes);
        let f = open(&p);
        for (offset, size) in [
            (0usize, bytes.len()),
            (512, 5 << 20),
            (4096, 4 << 20),
            (1000, 1),
            (bytes.len() - 3, 3),
            (77, 0),
        ] {
            let want = Digest::of(&bytes[offset..offset + size]);
            match sha256(&f, offset as u64, size as u64) {
                Ok(got) => assert_eq!(got, want, "{offset}+{size}"),
                Err(MappedError::Unsupported) => panic!("no mappings on this machine"),
                Err(MappedError::Read(e)) => panic!("{offset}+{size}: {e}"),
            }
        }
    }

    #[test]
    fn a_range_past_the_end_of_the_file_is_left_to_a_read() {
        // Populating the pages past the end fails before any is touched:
        // no SIGBUS, and the caller's read names the short file.
        let (_dir, p) = file_of(&[1u8; 10_000]);
        let f = open(&p);
        assert!(matches!(
            sha256(&f, 0, 20_000),
            Err(MappedError::Unsupported)
        ));
    }

    #[test]
    fn a_file_cut_short_while_it_is_hashed_is_an_error_not_a_crash() {
        // The window is populated, then another writer cuts the file: the
        // pages past the new end raise SIGBUS on access, which must end as
        // a failed window with the rest of the process untouched.
        let (_dir, p) = file_of(&vec![7u8; 3 * 4096 * 16]);
        let f = open(&p);
        let len = 3 * 4096 * 16;
        let mut r = match MappedRange::open(&f, 0, len) {
            Ok(r) => r,
            Err(MappedError::Read(e)) => panic!("{e}"),
            Err(MappedError::Unsupported) => panic!("no mappings on this machine"),
        };
        // The first piece maps the whole range in (it is under a STEP).
        match r.next(PIECE) {
            Ok(first) => assert_eq!(first, [7u8; 4096]),
            Err(_) => panic!("the first piece failed"),
        }
        let cut = std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap_or_else(|e| panic!("{e}"));
        cut.set_len(4096).unwrap_or_else(|e| panic!("{e}"));
        let mut h = Sha256::new();
        let mut failed = false;
        while r.remaining() > 0 {
            match r.next(PIECE) {
                Ok(piece) => h.update(piece),
                Err(MappedError::Read(_)) => {
                    failed = true;
                    break;
                }
                Err(MappedError::Unsupported) => panic!("populated pages asked for again"),
            }
        }
        if !failed {
            assert!(
                matches!(r.done(), Err(MappedError::Read(_))),
                "the cut went unnoticed"
            );
        }
        // The process goes on, and so do new ranges.
        let (_d2, q) = file_of(&[3u8; 10_000]);
        assert!(matches!(sha256(&open(&q), 0, 10_000), Ok(d) if d == Digest::of(&[3u8; 10_000])));
        assert!(matches!(sha256(&f, 0, 8192), Err(MappedError::Unsupported)));
    }

    #[test]
    fn a_fault_outside_any_window_is_left_to_the_handler_before() {
        // Installing ours keeps the action it found; a fault elsewhere
        // goes there (here: the standard library's, or the default).
        let Ok(_) = SETUP.get_or_init(install) else {
            panic!("no SIGBUS handler")
        };
        let prev = PREVIOUS.load(Ordering::Acquire);
        assert!(!prev.is_null());
        // SAFETY: queries the current action only.
        let now = unsafe {
            let mut now: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut now);
            now
        };
        assert_eq!(now.sa_sigaction, on_sigbus as *const () as usize);
    }
}
