//! The install directory on disk: what bale owns in it, and the careful
//! file operations it makes there (no symlink followed, every write
//! temp-then-rename and fsynced).

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use super::{InstallError, Release, io_err};

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
        .filter(|p| !p.is_empty() && !p.contains('/') && !p.contains(".."))
        .ok_or_else(|| InstallError::Unsafe {
            path: link.clone(),
            message: format!("points to {}, outside .bale/releases", dest.display()),
        })?
        .to_owned();
    let dir = target.join(".bale").join("releases").join(&id);
    let path = dir.join(".bale").join("release.json");
    let text = fs::read(&path).map_err(io_err(&path))?;
    let release: Release = serde_json::from_slice(&text).map_err(|e| InstallError::Unsafe {
        path: path.clone(),
        message: format!("unreadable: {e}"),
    })?;
    Ok(Some((dir, release)))
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

/// Removes releases other than the new and the previous one.
pub(super) fn prune(releases: &Path, keep: &str, previous: Option<&Path>) {
    let Ok(rd) = fs::read_dir(releases) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_name().to_str() == Some(keep) || Some(p.as_path()) == previous {
            continue;
        }
        let _ = fs::remove_dir_all(&p);
    }
}
