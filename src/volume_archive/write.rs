//! Writing a directory tree as a zstd-compressed tar stream.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;

use super::{ArchiveError, Counts, SPARSE, XATTR, io_at};

/// zstd level: the default, which keeps up with a disk on one core per
/// worker (`zstd -T0` uses the same).
const LEVEL: i32 = 3;

/// Writes the tree at `dir` (not following links, not leaving its file
/// system) to `out` as a zstd-compressed tar stream, compressing on every
/// core; returns what it holds. Sockets are left out (they are made by
/// their server at start).
pub fn write(dir: &Path, out: impl Write) -> Result<Counts, ArchiveError> {
    let mut enc = zstd::Encoder::new(out, LEVEL).map_err(io_at(dir))?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    // Without the zstdmt feature this fails; one thread is then used.
    let _ = enc.multithread(workers);
    let mut tar = tar::Builder::new(enc);
    tar.follow_symlinks(false);
    let mut counts = Counts::default();
    let mut linked: HashMap<(u64, u64), String> = HashMap::new();
    let walk = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .same_file_system(true)
        .sort_by_file_name();
    for entry in walk {
        let entry = entry.map_err(|e| ArchiveError::Io {
            path: e.path().unwrap_or(dir).to_owned(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| io::Error::other("walk")),
        })?;
        let path = entry.path();
        let meta = entry.metadata().map_err(|e| ArchiveError::Io {
            path: path.to_owned(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| io::Error::other("stat")),
        })?;
        let rel = match path.strip_prefix(dir) {
            Ok(r) if r.as_os_str().is_empty() => ".".to_owned(),
            Ok(r) => r.to_string_lossy().into_owned(),
            Err(_) => continue,
        };
        if meta.file_type().is_socket() {
            continue;
        }
        append(&mut tar, path, &rel, &meta, &mut linked, &mut counts)?;
    }
    let enc = tar.into_inner().map_err(io_at(dir))?;
    enc.finish().map_err(io_at(dir))?;
    Ok(counts)
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &Path,
    rel: &str,
    meta: &Metadata,
    linked: &mut HashMap<(u64, u64), String>,
    counts: &mut Counts,
) -> Result<(), ArchiveError> {
    let ft = meta.file_type();
    let mut h = tar::Header::new_gnu();
    h.set_uid(meta.uid().into());
    h.set_gid(meta.gid().into());
    h.set_mode(meta.mode() & 0o7777);
    h.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
    h.set_size(0);
    let mut pax: Vec<(String, Vec<u8>)> = vec![
        (
            "mtime".into(),
            time(meta.mtime(), meta.mtime_nsec()).into_bytes(),
        ),
        (
            "atime".into(),
            time(meta.atime(), meta.atime_nsec()).into_bytes(),
        ),
    ];
    pax.extend(xattrs(path).map_err(io_at(path))?);
    counts.entries += 1;
    let key = (meta.dev(), meta.ino());
    if !ft.is_dir() && meta.nlink() > 1 {
        if let Some(first) = linked.get(&key) {
            h.set_entry_type(tar::EntryType::Link);
            return put_pax(tar, &pax, path)
                .and_then(|()| tar.append_link(&mut h, rel, first).map_err(io_at(path)));
        }
        linked.insert(key, rel.to_owned());
    }
    if ft.is_dir() {
        h.set_entry_type(tar::EntryType::Directory);
        put_pax(tar, &pax, path)?;
        let name = if rel == "." {
            "./".to_owned()
        } else {
            format!("{rel}/")
        };
        tar.append_data(&mut h, name, io::empty())
            .map_err(io_at(path))
    } else if ft.is_symlink() {
        h.set_entry_type(tar::EntryType::Symlink);
        let to = std::fs::read_link(path).map_err(io_at(path))?;
        put_pax(tar, &pax, path)?;
        tar.append_link(&mut h, rel, to).map_err(io_at(path))
    } else if ft.is_file() {
        let file = open_same(path, meta)?;
        // Fewer blocks than bytes: the file has holes, made again on restore.
        if meta.blocks().saturating_mul(512) < meta.size() {
            pax.push((SPARSE.into(), b"1".to_vec()));
        }
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(meta.size());
        put_pax(tar, &pax, path)?;
        counts.files += 1;
        counts.bytes += meta.size();
        tar.append_data(&mut h, rel, Exactly::new(file, meta.size()))
            .map_err(io_at(path))
    } else {
        let kind = if ft.is_fifo() {
            tar::EntryType::Fifo
        } else if ft.is_char_device() {
            tar::EntryType::Char
        } else {
            tar::EntryType::Block
        };
        h.set_entry_type(kind);
        if kind != tar::EntryType::Fifo {
            let rdev = meta.rdev();
            h.set_device_major(libc::major(rdev)).map_err(io_at(path))?;
            h.set_device_minor(libc::minor(rdev)).map_err(io_at(path))?;
        }
        put_pax(tar, &pax, path)?;
        tar.append_data(&mut h, rel, io::empty())
            .map_err(io_at(path))
    }
}

fn put_pax<W: Write>(
    tar: &mut tar::Builder<W>,
    pax: &[(String, Vec<u8>)],
    path: &Path,
) -> Result<(), ArchiveError> {
    tar.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
        .map_err(io_at(path))
}

fn time(secs: i64, nanos: i64) -> String {
    if secs < 0 {
        return secs.to_string();
    }
    format!("{secs}.{nanos:09}")
}

/// Opens the regular file the walk saw at `path`: not through a link, not
/// blocking on a FIFO swapped in, and the same inode.
fn open_same(path: &Path, meta: &Metadata) -> Result<File, ArchiveError> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(io_at(path))?;
    let now = f.metadata().map_err(io_at(path))?;
    if now.ino() != meta.ino() || now.dev() != meta.dev() || !now.is_file() {
        return Err(ArchiveError::Io {
            path: path.to_owned(),
            source: io::Error::other("was replaced while it was copied"),
        });
    }
    Ok(f)
}

/// Exactly `size` bytes of a file: a file that shrank while copied is
/// padded with zeros, one that grew is cut, so that the tar stream stays
/// whole. (With the services stopped, neither happens.)
struct Exactly {
    file: io::Take<File>,
    left: u64,
}

impl Exactly {
    fn new(file: File, size: u64) -> Self {
        Exactly {
            file: file.take(size),
            left: size,
        }
    }
}

impl Read for Exactly {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = self.file.read(buf)?;
        let n = if n == 0 {
            let pad = buf
                .len()
                .min(usize::try_from(self.left).unwrap_or(usize::MAX));
            buf[..pad].fill(0);
            pad
        } else {
            n
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// The extended attributes of `path` (not following a link), as PAX
/// records.
pub(super) fn xattrs(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let names = call_sized(|buf, len| unsafe {
        // SAFETY: `c` is a valid C string; `buf` has `len` bytes.
        libc::llistxattr(c.as_ptr(), buf.cast(), len)
    })?;
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).map_err(io::Error::other)?;
        let value = call_sized(|buf, len| unsafe {
            // SAFETY: as above; `cname` is a valid C string.
            libc::lgetxattr(c.as_ptr(), cname.as_ptr(), buf.cast(), len)
        })?;
        out.push((format!("{XATTR}{}", String::from_utf8_lossy(name)), value));
    }
    Ok(out)
}

/// Calls a size-then-fill libc function (`llistxattr`, `lgetxattr`),
/// retrying when the value grew between the two calls. A file system
/// without extended attributes has none.
fn call_sized(f: impl Fn(*mut u8, usize) -> isize) -> io::Result<Vec<u8>> {
    for _ in 0..4 {
        let len = f(std::ptr::null_mut(), 0);
        if len < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOTSUP) || e.raw_os_error() == Some(libc::ENODATA) {
                return Ok(Vec::new());
            }
            return Err(e);
        }
        let mut buf = vec![0u8; len as usize];
        let got = f(buf.as_mut_ptr(), buf.len());
        if got >= 0 {
            buf.truncate(got as usize);
            return Ok(buf);
        }
        if io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE) {
            return Err(io::Error::last_os_error());
        }
    }
    Err(io::Error::other("extended attributes kept changing"))
}
