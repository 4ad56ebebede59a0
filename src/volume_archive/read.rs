//! Reading an archive back into a fresh directory, trusting nothing in it.

use std::collections::{BTreeMap, HashSet};
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Component, Path, PathBuf};

use super::{ArchiveError, Counts, HOLE_BLOCK, SPARSE, XATTR, io_at};

/// What an entry's metadata says, applied once it exists.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: libc::timespec,
    atime: libc::timespec,
    xattrs: Vec<(CString, Vec<u8>)>,
}

/// Extracts the zstd-compressed tar stream `input` into `dest`, which must
/// not exist (it is created, mode 0700 until the archive's own root mode
/// is applied last). On an error, what was made stays for the caller to
/// remove with the directory.
pub fn extract(input: impl Read + Send, dest: &Path) -> Result<Counts, ArchiveError> {
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dest)
        .map_err(io_at(dest))?;
    // Decompression runs on its own core, a few chunks ahead of the
    // writes, as `zstd -dc | tar -x` does in two processes.
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(CHUNKS_AHEAD);
        // Emptied chunks go back to be filled again: no page faults for
        // fresh memory on every megabyte.
        let (back_tx, back_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let decoder = scope.spawn(move || decompress(input, &tx, &back_rx));
        let out = extract_tar(
            Chunks {
                rx,
                back: back_tx,
                cur: Vec::new(),
                pos: 0,
            },
            dest,
        );
        let _ = decoder.join();
        out
    })
}

/// Chunks of decompressed bytes in flight between the two threads.
const CHUNKS_AHEAD: usize = 8;
/// Size of one chunk.
const CHUNK: usize = 1 << 20;

/// Sends `input`, decompressed, in chunks (reusing those sent `back`),
/// until the receiver stops taking them (the tar stream ended) or the
/// input ends.
fn decompress(
    input: impl Read,
    tx: &std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
    back: &std::sync::mpsc::Receiver<Vec<u8>>,
) {
    let mut dec = match zstd::Decoder::new(input) {
        Ok(d) => d,
        Err(e) => {
            let _ = tx.send(Err(e));
            return;
        }
    };
    loop {
        let mut buf = back.try_recv().unwrap_or_default();
        buf.resize(CHUNK, 0);
        match read_full(&mut dec, &mut buf) {
            Ok(0) => return,
            Ok(n) => {
                buf.truncate(n);
                if tx.send(Ok(buf)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

/// The receiving end, as a reader.
struct Chunks {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    back: std::sync::mpsc::Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    let done = std::mem::replace(&mut self.cur, chunk?);
                    if done.capacity() >= CHUNK {
                        let _ = self.back.send(done);
                    }
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Extracts the (decompressed) tar stream `input` into `dest`.
fn extract_tar(input: impl Read, dest: &Path) -> Result<Counts, ArchiveError> {
    let mut archive = tar::Archive::new(input);
    let mut made_dirs: HashSet<PathBuf> = HashSet::from([PathBuf::new()]);
    // Directories get their owner, mode and times last, deepest first:
    // a read-only directory must take its entries before it is closed.
    let mut dirs: BTreeMap<PathBuf, Meta> = BTreeMap::new();
    let mut counts = Counts::default();
    // One buffer for every file's content: large writes, one allocation.
    let mut buf = vec![0u8; HOLE_BLOCK];
    let entries = archive.entries().map_err(io_at(dest))?;
    for (n, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| invalid(&format!("#{n}"), &e.to_string()))?;
        let rel = relative(&entry.path_bytes()).ok_or_else(|| {
            invalid(
                &crate::quote::quote(&String::from_utf8_lossy(&entry.path_bytes())),
                "not a relative path of plain names",
            )
        })?;
        let name = crate::quote::quote(&rel.to_string_lossy());
        let meta = meta_of(&mut entry).map_err(|m| invalid(&name, &m))?;
        let sparse = pax_value(&mut entry, SPARSE).is_some();
        counts.entries += 1;
        let kind = entry.header().entry_type();
        if rel.as_os_str().is_empty() {
            if kind != tar::EntryType::Directory {
                return Err(invalid(&name, "the root is not a directory"));
            }
            dirs.insert(rel, meta);
            continue;
        }
        let parent = rel.parent().unwrap_or(Path::new("")).to_owned();
        if !made_dirs.contains(&parent) {
            return Err(invalid(
                &name,
                "its parent is not a directory of the archive",
            ));
        }
        let path = dest.join(&rel);
        match kind {
            tar::EntryType::Directory => {
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&path)
                    .map_err(io_at(&path))?;
                made_dirs.insert(rel.clone());
                dirs.insert(rel, meta);
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.header().size().map_err(io_at(&path))?;
                let file = create_file(&path)?;
                copy_content(&mut entry, &file, size, sparse, &path, &mut buf)?;
                apply_fd(&file, &meta, &path)?;
                counts.files += 1;
                counts.bytes += size;
            }
            tar::EntryType::Symlink => {
                let to = entry
                    .link_name_bytes()
                    .ok_or_else(|| invalid(&name, "a symlink without a target"))?;
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&to), &path)
                    .map_err(io_at(&path))?;
                apply_path(&path, &meta, false)?;
            }
            tar::EntryType::Link => {
                let to = entry
                    .link_name_bytes()
                    .and_then(|b| relative(&b))
                    .ok_or_else(|| invalid(&name, "a hard link outside the archive"))?;
                let linked_parent = to.parent().unwrap_or(Path::new(""));
                let source = dest.join(&to);
                let is_file = std::fs::symlink_metadata(&source).is_ok_and(|m| m.is_file());
                if !made_dirs.contains(linked_parent) || !is_file {
                    return Err(invalid(&name, "a hard link to no file of the archive"));
                }
                std::fs::hard_link(&source, &path).map_err(io_at(&path))?;
            }
            tar::EntryType::Fifo | tar::EntryType::Char | tar::EntryType::Block => {
                make_node(&entry, kind, &path)?;
                apply_path(&path, &meta, true)?;
            }
            other => {
                return Err(invalid(&name, &format!("unsupported entry type {other:?}")));
            }
        }
    }
    for (rel, meta) in dirs.iter().rev() {
        apply_path(&dest.join(rel), meta, true)?;
    }
    // One flush of the file system for the whole tree, before anyone
    // swaps it in.
    if let Ok(f) = File::open(dest) {
        // SAFETY: a valid open file descriptor.
        unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&f)) };
    }
    Ok(counts)
}

fn invalid(entry: &str, message: &str) -> ArchiveError {
    ArchiveError::Invalid {
        entry: entry.to_owned(),
        message: message.to_owned(),
    }
}

/// `bytes` as a path of plain names (`.` and `./` are the root, empty);
/// `None` for an absolute path, `..`, or an empty name.
fn relative(bytes: &[u8]) -> Option<PathBuf> {
    let p = Path::new(std::ffi::OsStr::from_bytes(bytes));
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

fn pax_value<R: Read>(entry: &mut tar::Entry<'_, R>, key: &str) -> Option<Vec<u8>> {
    let exts = entry.pax_extensions().ok()??;
    exts.flatten()
        .find(|e| e.key_bytes() == key.as_bytes())
        .map(|e| e.value_bytes().to_vec())
}

fn meta_of<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Meta, String> {
    let h = entry.header();
    let uid = u32::try_from(h.uid().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let gid = u32::try_from(h.gid().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let mode = h.mode().map_err(|e| e.to_string())? & 0o7777;
    let secs = h.mtime().map_err(|e| e.to_string())?;
    let header_time = libc::timespec {
        tv_sec: i64::try_from(secs).unwrap_or(0),
        tv_nsec: 0,
    };
    let mut mtime = header_time;
    let mut atime = header_time;
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(|e| e.to_string())? {
        for e in exts {
            let e = e.map_err(|e| e.to_string())?;
            let key = e.key_bytes();
            if key == b"mtime" {
                mtime = timespec(e.value_bytes()).ok_or("a bad mtime")?;
            } else if key == b"atime" {
                atime = timespec(e.value_bytes()).ok_or("a bad atime")?;
            } else if let Some(name) = key.strip_prefix(XATTR.as_bytes()) {
                let name = CString::new(name).map_err(|_| "a bad attribute name")?;
                xattrs.push((name, e.value_bytes().to_vec()));
            }
        }
    }
    Ok(Meta {
        uid,
        gid,
        mode,
        mtime,
        atime,
        xattrs,
    })
}

/// `SECONDS[.FRACTION]` as PAX writes times.
fn timespec(v: &[u8]) -> Option<libc::timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let tv_sec: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let tv_nsec: i64 = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    Some(libc::timespec { tv_sec, tv_nsec })
}

fn create_file(path: &Path) -> Result<File, ArchiveError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(io_at(path))
}

/// Copies `size` bytes of content; for a sparse file, blocks of zeros
/// become holes again.
fn copy_content(
    from: &mut impl Read,
    mut file: &File,
    size: u64,
    sparse: bool,
    path: &Path,
    buf: &mut [u8],
) -> Result<(), ArchiveError> {
    let mut from = from.take(size);
    let mut done = 0u64;
    loop {
        let n = read_full(&mut from, buf).map_err(io_at(path))?;
        if n == 0 {
            break;
        }
        // A sparse file's blocks of zeros become holes again.
        if sparse && buf[..n].iter().all(|b| *b == 0) {
            file.seek(SeekFrom::Current(n as i64))
                .map_err(io_at(path))?;
        } else {
            file.write_all(&buf[..n]).map_err(io_at(path))?;
        }
        done += n as u64;
    }
    if done != size {
        return Err(invalid(
            &path.display().to_string(),
            "the archive ends inside it",
        ));
    }
    if sparse {
        file.set_len(size).map_err(io_at(path))?;
    }
    Ok(())
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn make_node<R: Read>(
    entry: &tar::Entry<'_, R>,
    kind: tar::EntryType,
    path: &Path,
) -> Result<(), ArchiveError> {
    let c = cpath(path)?;
    let (type_bits, dev) = match kind {
        tar::EntryType::Fifo => (libc::S_IFIFO, 0),
        other => {
            let h = entry.header();
            let major = h.device_major().ok().flatten().unwrap_or(0);
            let minor = h.device_minor().ok().flatten().unwrap_or(0);
            let bits = if other == tar::EntryType::Char {
                libc::S_IFCHR
            } else {
                libc::S_IFBLK
            };
            (bits, libc::makedev(major, minor))
        }
    };
    // SAFETY: a valid C string; mknod creates and never follows.
    if unsafe { libc::mknod(c.as_ptr(), type_bits | 0o600, dev) } != 0 {
        return Err(io_at(path)(io::Error::last_os_error()));
    }
    Ok(())
}

fn cpath(path: &Path) -> Result<CString, ArchiveError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|e| io_at(path)(io::Error::other(e)))
}

/// Owner, then mode (a chown clears set-id bits), then attributes, then
/// times, on an open regular file.
fn apply_fd(file: &File, m: &Meta, path: &Path) -> Result<(), ArchiveError> {
    use std::os::fd::AsRawFd as _;
    let fd = file.as_raw_fd();
    let err = || io_at(path)(io::Error::last_os_error());
    // SAFETY: `fd` is open for the duration; the pointers are valid.
    unsafe {
        if libc::fchown(fd, m.uid, m.gid) != 0 {
            return Err(err());
        }
        if libc::fchmod(fd, m.mode) != 0 {
            return Err(err());
        }
        for (k, v) in &m.xattrs {
            if libc::fsetxattr(fd, k.as_ptr(), v.as_ptr().cast(), v.len(), 0) != 0 {
                return Err(err());
            }
        }
        let times = [m.atime, m.mtime];
        if libc::futimens(fd, times.as_ptr()) != 0 {
            return Err(err());
        }
    }
    Ok(())
}

/// The same for a path that is not opened (directories, links, nodes),
/// never following a link; a symlink has no mode of its own.
fn apply_path(path: &Path, m: &Meta, chmod: bool) -> Result<(), ArchiveError> {
    let c = cpath(path)?;
    let err = || io_at(path)(io::Error::last_os_error());
    // SAFETY: `c` is a valid C string; the pointers are valid.
    unsafe {
        if libc::lchown(c.as_ptr(), m.uid, m.gid) != 0 {
            return Err(err());
        }
        if chmod && libc::fchmodat(libc::AT_FDCWD, c.as_ptr(), m.mode, 0) != 0 {
            return Err(err());
        }
        for (k, v) in &m.xattrs {
            if libc::lsetxattr(c.as_ptr(), k.as_ptr(), v.as_ptr().cast(), v.len(), 0) != 0 {
                return Err(err());
            }
        }
        let times = [m.atime, m.mtime];
        if libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        ) != 0
        {
            return Err(err());
        }
    }
    Ok(())
}
