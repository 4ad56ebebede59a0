use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use super::*;

/// Everything the archive promises to keep, for each path below `root`.
fn describe(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).sort_by_file_name() {
        let e = e.unwrap_or_else(|e| panic!("{e}"));
        let m = e.metadata().unwrap_or_else(|e| panic!("{e}"));
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap_or(e.path())
            .display()
            .to_string();
        let content = if m.is_file() {
            crate::digest::hash_file(e.path())
                .map(|(d, _)| d.to_string())
                .unwrap_or_default()
        } else if m.file_type().is_symlink() {
            std::fs::read_link(e.path())
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        let sparse = m.is_file() && m.blocks() * 512 < m.size();
        let xattr = xattrs_of(e.path());
        // A symlink has no mode of its own; access times change as the
        // test itself reads the tree, so only modification times are kept
        // to compare.
        let mode = if m.file_type().is_symlink() {
            0
        } else {
            m.mode()
        };
        out.insert(
            rel,
            format!(
                "mode={mode:o} uid={} gid={} mtime={}.{} nlink={} size={} sparse={sparse} content={content} xattr={xattr:?}",
                m.uid(),
                m.gid(),
                m.mtime(),
                m.mtime_nsec(),
                if m.is_dir() { 0 } else { m.nlink() },
                if m.is_dir() { 0 } else { m.size() },
            ),
        );
    }
    out
}

fn xattrs_of(path: &Path) -> Vec<(String, Vec<u8>)> {
    write::xattrs(path).unwrap_or_default()
}

/// Sets a user attribute where the file system takes one (tmpfs and ext4
/// do; a test on one without has nothing to compare).
fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap_or_default();
    let n = std::ffi::CString::new(name).unwrap_or_default();
    // SAFETY: valid C strings and a value of the given length.
    let _ = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
}

fn set_times(path: &Path, secs: i64, nanos: i64) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap_or_default();
    let t = libc::timespec {
        tv_sec: secs,
        tv_nsec: nanos,
    };
    // SAFETY: a valid C string and two timespecs.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            [t, t].as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(r, 0, "utimensat {}", path.display());
}

fn tree(root: &Path) {
    let w = |rel: &str, bytes: &[u8]| {
        std::fs::write(root.join(rel), bytes).unwrap_or_else(|e| panic!("{rel}: {e}"));
    };
    std::fs::create_dir_all(root.join("db/base")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(root.join("ro")).unwrap_or_else(|e| panic!("{e}"));
    w("db/base/1259", &vec![7u8; 200_000]);
    w("db/PG_VERSION", b"16\n");
    w("ro/inside", b"read-only dir\n");
    std::fs::hard_link(root.join("db/PG_VERSION"), root.join("hardlink"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink("db/PG_VERSION", root.join("link"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink("/nowhere/at/all", root.join("dangling"))
        .unwrap_or_else(|e| panic!("{e}"));
    // A sparse file: 8 MiB with data at 1 MiB and at its end.
    let mut f = std::fs::File::create(root.join("sparse.img")).unwrap_or_else(|e| panic!("{e}"));
    f.set_len(8 << 20).unwrap_or_else(|e| panic!("{e}"));
    use std::io::Seek as _;
    f.seek(std::io::SeekFrom::Start(1 << 20))
        .unwrap_or_else(|e| panic!("{e}"));
    f.write_all(b"data in the middle")
        .unwrap_or_else(|e| panic!("{e}"));
    f.seek(std::io::SeekFrom::Start((8 << 20) - 4))
        .unwrap_or_else(|e| panic!("{e}"));
    f.write_all(b"end!").unwrap_or_else(|e| panic!("{e}"));
    drop(f);
    let fifo = std::ffi::CString::new(root.join("fifo").as_os_str().as_encoded_bytes())
        .unwrap_or_default();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
    set_xattr(&root.join("db/PG_VERSION"), "user.bale.test", b"kept");
    std::fs::set_permissions(
        root.join("db/base/1259"),
        std::fs::Permissions::from_mode(0o4640),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Another owner, where the test may set one (as root).
    let c = std::ffi::CString::new(root.join("db/base").as_os_str().as_encoded_bytes())
        .unwrap_or_default();
    // SAFETY: a valid C string.
    let _ = unsafe { libc::lchown(c.as_ptr(), 999, 998) };
    for (i, rel) in [
        "db/base/1259",
        "db/PG_VERSION",
        "link",
        "sparse.img",
        "ro/inside",
        "db/base",
        "db",
        "ro",
        "",
    ]
    .iter()
    .enumerate()
    {
        set_times(
            &root.join(rel),
            1_700_000_000 + i as i64,
            123_456_789 + i as i64,
        );
    }
    std::fs::set_permissions(root.join("ro"), std::fs::Permissions::from_mode(0o555))
        .unwrap_or_else(|e| panic!("{e}"));
    set_times(&root.join("ro"), 1_600_000_000, 42);
}

#[test]
fn a_tree_comes_back_with_owners_modes_times_links_holes_and_attributes() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap_or_else(|e| panic!("{e}"));
    tree(&src);
    let before = describe(&src);
    let mut archive = Vec::new();
    let wrote = write(&src, &mut archive).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        archive.len() < 100_000,
        "holes and repeats compress: {}",
        archive.len()
    );
    let dest = dir.path().join("dest");
    let read = extract(archive.as_slice(), &dest).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wrote, read);
    assert_eq!(read.files, 4, "hard links count once: {read:?}");
    let after = describe(&dest);
    for (k, v) in &before {
        assert_eq!(after.get(k), Some(v), "{k}");
    }
    assert_eq!(before.len(), after.len());
    assert!(
        before["sparse.img"].contains("sparse=true"),
        "{}",
        before["sparse.img"]
    );
}

/// A tar stream (zstd-compressed) of raw entries, as an attacker writes it.
fn hostile(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, kind, data, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        // Written raw: the tar crate's own path checks refuse some of these.
        let name = h.as_gnu_mut().map(|g| &mut g.name);
        if let Some(name) = name {
            name[..path.len()].copy_from_slice(path.as_bytes());
        }
        if let (Some(l), Some(g)) = (link, h.as_gnu_mut()) {
            g.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_cksum();
        tar.append(&h, *data).unwrap_or_else(|e| panic!("{e}"));
    }
    let raw = tar.into_inner().unwrap_or_else(|e| panic!("{e}"));
    zstd::encode_all(raw.as_slice(), 1).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn an_archive_that_climbs_out_or_writes_through_a_link_is_refused() {
    use tar::EntryType as T;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap_or_else(|e| panic!("{e}"));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "dotdot",
            hostile(&[
                ("./", T::Directory, b"", None),
                ("../escaped", T::Regular, b"x", None),
            ]),
        ),
        (
            "absolute",
            hostile(&[("/tmp/escaped", T::Regular, b"x", None)]),
        ),
        (
            "through a symlink",
            hostile(&[
                ("./", T::Directory, b"", None),
                (
                    "out",
                    T::Symlink,
                    b"",
                    Some(outside.to_str().unwrap_or_default()),
                ),
                ("out/escaped", T::Regular, b"x", None),
            ]),
        ),
        (
            "hard link out",
            hostile(&[
                ("./", T::Directory, b"", None),
                ("h", T::Link, b"", Some("../../etc/passwd")),
            ]),
        ),
        (
            "twice",
            hostile(&[("a", T::Regular, b"x", None), ("a", T::Regular, b"y", None)]),
        ),
    ];
    for (name, bytes) in cases {
        let dest = dir.path().join(format!("dest-{}", name.replace(' ', "-")));
        assert!(
            extract(bytes.as_slice(), &dest).is_err(),
            "{name} was accepted"
        );
        assert_eq!(
            std::fs::read_dir(&outside).map(|d| d.count()).unwrap_or(0),
            0,
            "{name} wrote outside"
        );
    }
    assert!(!dir.path().join("escaped").exists());
}
