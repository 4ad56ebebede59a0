//! The install directory on disk: what bale owns in it, and the careful
//! file operations it makes there (no symlink followed, every write
//! temp-then-rename and fsynced).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::{InstallError, Release, io_err};

/// What bale keeps in `DIR/.bale`; anything else there was not made by bale.
const OWNED: &[&str] = &[
    "lock",
    "releases",
    "snapshots",
    "upgrade.json",
    "values.key",
];
/// Prefixes of what an interrupted run leaves in `.bale`, cleared on the next.
const LEFTOVER_PREFIXES: &[&str] = &["staging-", "current-"];
/// How often opening the lock is retried when a concurrent failed first
/// install removes `.bale` under us.
const LOCK_ATTEMPTS: usize = 100;

/// The install directory, locked against other installs for as long as
/// this value lives.
pub(super) struct Target {
    /// The directory, canonical.
    pub root: PathBuf,
    /// `root/.bale`.
    pub meta: PathBuf,
    lock: File,
    created_root: bool,
}

impl Target {
    /// Creates (race-free) and locks the install directory `dir`. Every
    /// bale-owned path is opened without following symlinks; a part of
    /// `.bale` that bale did not make is refused, not touched.
    pub fn open(dir: &Path) -> Result<Target, InstallError> {
        let created_root = match fs::metadata(dir) {
            Ok(m) if m.is_dir() => false,
            Ok(_) => {
                return Err(InstallError::Unsafe {
                    path: dir.to_owned(),
                    message: "is a file, not a directory: --target names the install directory (bale creates it if missing)".into(),
                });
            }
            Err(_) => {
                fs::create_dir_all(dir).map_err(io_err(dir))?;
                true
            }
        };
        let root = fs::canonicalize(dir).map_err(io_err(dir))?;
        let meta = root.join(".bale");
        let lock_path = meta.join("lock");
        for _ in 0..LOCK_ATTEMPTS {
            ensure_dir(&meta)?;
            let lock = match open_nofollow(&lock_path, true) {
                Ok(f) => f,
                // A concurrent first install failed and removed `.bale`.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(not_ours(&lock_path, e)),
            };
            lock.lock().map_err(io_err(&lock_path))?;
            // The file we locked must still be the one at the path: an
            // install that failed first removes it while we wait.
            let same = match (lock.metadata(), fs::symlink_metadata(&lock_path)) {
                (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                _ => false,
            };
            if !same {
                continue;
            }
            check_owned(&meta)?;
            ensure_dir(&meta.join("releases"))?;
            return Ok(Target {
                root,
                meta,
                lock,
                created_root,
            });
        }
        Err(InstallError::Unsafe {
            path: lock_path,
            message: "kept disappearing while bale waited for it: another process is removing the install directory".into(),
        })
    }

    /// Removes what a failed first install made, while still holding the
    /// lock, so that the directory is as it was. Kept: anything the
    /// operator put there (such as `.env`), and everything once a release
    /// is current.
    pub fn abandon_first_install(self, made: &[&str]) {
        if fs::symlink_metadata(self.root.join("current")).is_ok() {
            return;
        }
        // What this install made outside `.bale` (`.env`, `values/`),
        // named by the caller, which saw them missing before it started.
        for name in made {
            let p = self.root.join(name);
            let _ = fs::remove_dir_all(&p).or_else(|_| fs::remove_file(&p));
        }
        let _ = fs::remove_dir_all(self.meta.join("releases"));
        let _ = fs::remove_file(self.meta.join("values.key"));
        if let Ok(rd) = fs::read_dir(&self.meta) {
            for e in rd.flatten() {
                let n = e.file_name();
                let n = n.to_string_lossy();
                if LEFTOVER_PREFIXES.iter().any(|p| n.starts_with(p)) {
                    let _ = fs::remove_dir_all(e.path()).or_else(|_| fs::remove_file(e.path()));
                }
            }
        }
        // Unlinked before unlocking: a waiting install sees the change and
        // starts over with a fresh `.bale`.
        let _ = fs::remove_file(self.meta.join("lock"));
        let _ = fs::remove_dir(&self.meta);
        drop(self.lock);
        if self.created_root {
            let _ = fs::remove_dir(&self.root);
        }
    }

    /// The install's key for digests of site values (`.bale/values.key`,
    /// mode 0600), made on first use.
    pub fn values_key(&self) -> Result<String, InstallError> {
        let path = self.meta.join("values.key");
        if let Some(bytes) = read_nofollow(&path)? {
            return String::from_utf8(bytes).map_err(|_| InstallError::Unsafe {
                path,
                message: "is not a key bale made".into(),
            });
        }
        use rand::Rng as _;
        let key: String = (0..32)
            .map(|_| format!("{:02x}", rand::rng().random::<u8>()))
            .collect();
        write_private(&path, key.as_bytes(), 0o600)?;
        Ok(key)
    }

    /// Clears what a killed run left in `.bale` (staging trees, link temps,
    /// half-written snapshots).
    pub fn clear_leftovers(&self) {
        if let Ok(rd) = fs::read_dir(self.meta.join("snapshots")) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with("staging-") {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        if let Ok(rd) = fs::read_dir(&self.meta) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with("staging-") {
                    let _ = fs::remove_dir_all(e.path());
                } else if n.starts_with("current-") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
}

/// Opens `path` for reading and writing, never through a symlink; with
/// `create`, creates it (mode 0600) if missing.
pub(super) fn open_nofollow(path: &Path, create: bool) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(f)
}

/// Reads a regular file at `path` without following a symlink there;
/// `None` when it does not exist.
pub(super) fn read_nofollow(path: &Path) -> Result<Option<Vec<u8>>, InstallError> {
    // O_NONBLOCK: opening a FIFO planted here must not wait for a writer.
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path);
    let mut f = match f {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(not_ours(path, e)),
    };
    match f.metadata() {
        Ok(m) if m.is_file() => {}
        _ => return Err(not_ours(path, io::Error::other("not a regular file"))),
    }
    let mut out = Vec::new();
    f.read_to_end(&mut out).map_err(io_err(path))?;
    Ok(Some(out))
}

fn not_ours(path: &Path, e: io::Error) -> InstallError {
    if e.raw_os_error() == Some(libc::ELOOP) || e.kind() == io::ErrorKind::Other {
        InstallError::Unsafe {
            path: path.to_owned(),
            message: "is a symlink or not a regular file, so bale did not make it; refusing to use it (remove it if you know where it came from)".into(),
        }
    } else {
        io_err(path)(e)
    }
}

/// Makes directory `d` unless it exists; refuses a symlink or a file there.
pub(super) fn ensure_dir(d: &Path) -> Result<(), InstallError> {
    match fs::create_dir(d) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(d)(e)),
    }
    match fs::symlink_metadata(d) {
        Ok(m) if m.is_dir() && !m.file_type().is_symlink() => Ok(()),
        Ok(_) => Err(InstallError::Unsafe {
            path: d.to_owned(),
            message: "is not a directory bale made (a symlink or a file); refusing to use it"
                .into(),
        }),
        Err(e) => Err(io_err(d)(e)),
    }
}

/// Refuses entries of `.bale` that bale does not make.
fn check_owned(meta: &Path) -> Result<(), InstallError> {
    let rd = fs::read_dir(meta).map_err(io_err(meta))?;
    for e in rd.flatten() {
        let n = e.file_name();
        let n = n.to_string_lossy();
        if OWNED.contains(&n.as_ref()) || LEFTOVER_PREFIXES.iter().any(|p| n.starts_with(p)) {
            continue;
        }
        return Err(InstallError::Unsafe {
            path: e.path(),
            message: "was not made by bale; refusing to install next to it (move it out of .bale)"
                .into(),
        });
    }
    Ok(())
}

/// Where the current release of `target` is, and what it holds.
pub fn current_release(target: &Path) -> Result<Option<(PathBuf, Release)>, InstallError> {
    let link = target.join("current");
    let meta = match fs::symlink_metadata(&link) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&link)(e)),
    };
    if !meta.file_type().is_symlink() {
        return Err(InstallError::Unsafe {
            path: link,
            message: "exists and is not bale's symlink; refusing to touch it".into(),
        });
    }
    let dest = fs::read_link(&link).map_err(io_err(&link))?;
    let id = dest
        .strip_prefix(".bale/releases")
        .ok()
        .and_then(|p| p.to_str())
        .filter(|p| valid_release_id(p))
        .ok_or_else(|| InstallError::Unsafe {
            path: link.clone(),
            message: format!("points to {}, outside .bale/releases", dest.display()),
        })?
        .to_owned();
    let dir = target.join(".bale").join("releases").join(&id);
    match fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() && !m.file_type().is_symlink() => {}
        _ => {
            return Err(InstallError::Unsafe {
                path: dir,
                message: "the current release is not a directory bale made".into(),
            });
        }
    }
    let release = current_record(&dir)?;
    Ok(Some((dir, release)))
}

/// One release kept under `.bale/releases`.
#[derive(Debug, Clone)]
pub struct KeptRelease {
    /// Its directory name, `<version>-<12 hex digits>`.
    pub id: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Its record.
    pub release: Release,
    /// When its record was last written (at install, or at a repair).
    pub recorded: std::time::SystemTime,
}

/// Every release kept in `target`, oldest version first; a directory that
/// is not one bale made (a bad name, a link, no readable record) is left
/// out.
pub fn kept_releases(target: &Path) -> Result<Vec<KeptRelease>, InstallError> {
    let root = target.join(".bale").join("releases");
    let entries = match fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&root)(e)),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let dir = entry.path();
        let is_dir = fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir());
        if !valid_release_id(&id) || !is_dir {
            continue;
        }
        let Ok(release) = current_record(&dir) else {
            continue;
        };
        let recorded = fs::symlink_metadata(dir.join(".bale").join("release.json"))
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        out.push(KeptRelease {
            id,
            dir,
            release,
            recorded,
        });
    }
    out.sort_by(|a, b| {
        let v = |r: &KeptRelease| semver::Version::parse(&r.release.version).ok();
        v(a).cmp(&v(b)).then_with(|| a.id.cmp(&b.id))
    });
    Ok(out)
}

/// Whether `id` is a release directory name bale makes:
/// `<semver>-<12 hex digits of the manifest digest>`.
fn valid_release_id(id: &str) -> bool {
    id.rsplit_once('-').is_some_and(|(v, hex)| {
        hex.len() == 12
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            && crate::validate::bundle_version(v).is_ok()
    })
}

/// The image list the release in `dir` recorded, read without following
/// symlinks.
pub fn recorded_images(dir: &Path) -> Result<crate::bundle::ImagesFile, InstallError> {
    let path = dir.join(".bale").join("images.json");
    read_nofollow(&path)?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| InstallError::Unsafe {
            path,
            message: "missing or unreadable".into(),
        })
}

/// The record of the release in `dir`, read without following symlinks.
pub(super) fn current_record(dir: &Path) -> Result<Release, InstallError> {
    let path = dir.join(".bale").join("release.json");
    let text = read_nofollow(&path)?.ok_or_else(|| InstallError::Unsafe {
        path: path.clone(),
        message: "missing: the current release has no record".into(),
    })?;
    serde_json::from_slice(&text).map_err(|e| InstallError::Unsafe {
        path: path.clone(),
        message: format!("unreadable: {e}"),
    })
}

pub(super) fn write_private(path: &Path, content: &[u8], mode: u32) -> Result<(), InstallError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".bale-tmp-")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    tmp.as_file().write_all(content).map_err(io_err(path))?;
    tmp.as_file().sync_all().map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
    sync_dir(dir);
    Ok(())
}

pub(super) fn sync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Creates `dir` and its parents below `root`, refusing symlinks on the way.
pub(super) fn create_dirs(root: &Path, dir: &Path) -> Result<(), InstallError> {
    let rel = dir.strip_prefix(root).map_err(|_| InstallError::Unsafe {
        path: dir.to_owned(),
        message: "outside the staging directory".into(),
    })?;
    let mut cur = root.to_owned();
    for c in rel.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() && !m.file_type().is_symlink() => {}
            Ok(_) => {
                return Err(InstallError::Unsafe {
                    path: cur,
                    message: "is not a directory".into(),
                });
            }
            Err(_) => fs::create_dir(&cur).map_err(io_err(&cur))?,
        }
    }
    Ok(())
}

pub(super) fn sync_tree(root: &Path) {
    for e in walkdir::WalkDir::new(root)
        .contents_first(true)
        .into_iter()
        .flatten()
    {
        if e.file_type().is_dir() {
            sync_dir(e.path());
        }
    }
}
