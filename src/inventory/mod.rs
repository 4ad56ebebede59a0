//! What OS packages an image holds: its layers read from the store in
//! order, with whiteouts and opaque directories applied, and the package
//! databases found at the end parsed (`packages`).
//!
//! Each layer is read once, decompressed as a stream and hashed as it is
//! read; only the few files that matter (`os-release`, the apk, dpkg and
//! rpm databases) are kept, bounded. What one layer holds is cached in the
//! store (`catalogs/v1/<digest>.json`) after its digest checked, so a
//! second build of the same images reads no layer again. The cache is
//! derived data under the store's own trust: whoever can write the store
//! can already change what a build packs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::packages::{Distro, Package};
use crate::store::Store;

mod layer;

pub use layer::Compression;

/// One layer of an image, as its manifest describes it.
#[derive(Debug, Clone, Copy)]
pub struct Layer<'a> {
    /// Its digest.
    pub digest: &'a Digest,
    /// Its size.
    pub size: u64,
    /// Its media type (gzip, zstd or plain tar).
    pub media_type: &'a str,
}

/// The packages of one image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// The distribution its `os-release` names.
    pub distro: Option<Distro>,
    /// The installed OS packages, sorted.
    pub packages: Vec<Package>,
    /// Which databases they came from (`var/lib/dpkg/status`, …).
    pub databases: Vec<String>,
    /// What could not be read, and why (an unsupported rpm database).
    pub notes: Vec<String>,
}

/// Errors reading an image's layers.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// A layer could not be read from the store.
    #[error("layer {digest}: {}: {source}", path.display())]
    Io {
        /// The layer.
        digest: Digest,
        /// Its file in the store.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A layer's bytes are not those its digest names.
    #[error(
        "layer {digest} in the store reads as {actual} ({size} bytes): the store is corrupt; delete the file and fetch again"
    )]
    Corrupt {
        /// The layer's digest.
        digest: Digest,
        /// What it hashed to.
        actual: Digest,
        /// How many bytes were read.
        size: u64,
    },
}

/// What one layer contributes: the files that matter, and what it deletes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Findings {
    files: BTreeMap<String, Found>,
    deleted: Vec<String>,
    opaque: Vec<String>,
}

/// One file that matters, as read from a layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Found {
    Packages(Vec<Package>),
    OsRelease(Distro),
    Link(String),
    Note(String),
}

/// Where the files that matter live.
const OS_RELEASE: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];
const APK: &str = "lib/apk/db/installed";
const DPKG: &str = "var/lib/dpkg/status";
const DPKG_D: &str = "var/lib/dpkg/status.d/";
const RPM_SQLITE: [&str; 2] = [
    "var/lib/rpm/rpmdb.sqlite",
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
];
const RPM_OLD: [&str; 4] = [
    "var/lib/rpm/Packages",
    "var/lib/rpm/Packages.db",
    "usr/lib/sysimage/rpm/Packages",
    "usr/lib/sysimage/rpm/Packages.db",
];

/// Whether a deletion of `path` can touch a file that matters.
fn covers(path: &str) -> bool {
    let all = OS_RELEASE
        .iter()
        .chain(RPM_SQLITE.iter())
        .chain(RPM_OLD.iter())
        .chain([APK, DPKG, DPKG_D].iter());
    all.into_iter()
        .any(|f| *f == path || f.starts_with(&format!("{path}/")) || path.starts_with(DPKG_D))
}

/// The packages of the image whose layers, bottom first, are `layers`.
pub fn of_image(store: &Store, layers: &[Layer]) -> Result<Inventory, InventoryError> {
    Ok(of_images(store, &[layers.to_vec()], 1)?.remove(0))
}

/// The packages of each image (its layers bottom first), every distinct
/// layer read once, on up to `threads` threads: a large image's layers
/// decompress on every core at once.
pub fn of_images(
    store: &Store,
    images: &[Vec<Layer>],
    threads: usize,
) -> Result<Vec<Inventory>, InventoryError> {
    let mut distinct: Vec<&Layer> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for l in images.iter().flatten() {
        if seen.insert(l.digest) {
            distinct.push(l);
        }
    }
    // Largest first, so one big layer does not finish alone at the end.
    distinct.sort_by(|a, b| b.size.cmp(&a.size).then(a.digest.cmp(b.digest)));
    let read = read_all(store, &distinct, threads)?;
    Ok(images
        .iter()
        .map(|layers| assemble(layers, &read))
        .collect())
}

type Read = BTreeMap<Digest, (Findings, Vec<String>)>;

/// Each layer's findings (and notes), read on up to `threads` threads; the
/// first error stops the others from starting a layer.
fn read_all(store: &Store, layers: &[&Layer], threads: usize) -> Result<Read, InventoryError> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let out: Mutex<Result<Read, InventoryError>> = Mutex::new(Ok(BTreeMap::new()));
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, 16).min(layers.len().max(1)) {
            s.spawn(|| {
                while !stop.load(Ordering::SeqCst) {
                    let Some(l) = layers.get(next.fetch_add(1, Ordering::SeqCst)) else {
                        return;
                    };
                    let mut notes = Vec::new();
                    let found = findings(store, l, &mut notes);
                    let Ok(mut all) = out.lock() else { return };
                    match (found, all.as_mut()) {
                        (Ok(f), Ok(map)) => {
                            map.insert(l.digest.clone(), (f, notes));
                        }
                        (Err(e), Ok(_)) => {
                            stop.store(true, Ordering::SeqCst);
                            *all = Err(e);
                        }
                        (_, Err(_)) => return,
                    }
                }
            });
        }
    });
    out.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// One image's inventory from its layers' findings, in order: each layer's
/// opaque directories and whiteouts first, then its files.
fn assemble(layers: &[Layer], read: &Read) -> Inventory {
    let mut state: BTreeMap<String, Found> = BTreeMap::new();
    let mut notes = Vec::new();
    for l in layers {
        let Some((f, n)) = read.get(l.digest) else {
            continue;
        };
        notes.extend(n.iter().cloned());
        let under = |dir: &str, p: &str| p.starts_with(&format!("{dir}/"));
        for d in &f.opaque {
            state.retain(|p, _| !under(d, p));
        }
        for d in &f.deleted {
            state.retain(|p, _| p != d && !under(d, p));
        }
        state.extend(f.files.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let distro = OS_RELEASE.iter().find_map(|p| match state.get(*p) {
        Some(Found::OsRelease(d)) => Some(d.clone()),
        _ => None,
    });
    let mut inv = Inventory {
        distro,
        ..Inventory::default()
    };
    for (path, found) in state {
        match found {
            Found::Packages(ps) => {
                inv.packages.extend(ps);
                inv.databases.push(path);
            }
            Found::Note(n) => notes.push(format!("{path}: {n}")),
            Found::OsRelease(_) | Found::Link(_) => {}
        }
    }
    inv.packages.sort();
    inv.packages.dedup();
    notes.sort();
    notes.dedup();
    inv.notes = notes;
    inv
}

/// A layer's findings: from the cache when present, else read.
fn findings(store: &Store, l: &Layer, notes: &mut Vec<String>) -> Result<Findings, InventoryError> {
    let cache = store
        .root()
        .join("catalogs")
        .join("v1")
        .join(format!("{}.json", l.digest.hex()));
    if let Ok(bytes) = crate::digest::read_regular(&cache, 64 * 1024 * 1024)
        && let Ok(f) = serde_json::from_slice::<Findings>(&bytes)
    {
        return Ok(f);
    }
    let Some(compression) = layer::Compression::of(l.media_type) else {
        notes.push(format!(
            "layer {} ({}) is not a tar layer; not read",
            l.digest, l.media_type
        ));
        return Ok(Findings::default());
    };
    let f = layer::read(store, l, compression)?;
    // A cache that cannot be written only costs a re-read next time.
    if let Ok(bytes) = serde_json::to_vec(&f)
        && let Some(dir) = cache.parent()
        && std::fs::create_dir_all(dir).is_ok()
    {
        let _ = crate::store::write_atomic(&cache, &bytes);
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            match link {
                Some(l) => b.append_link(&mut h, path, l).unwrap(),
                None => b.append_data(&mut h, path, *data).unwrap(),
            }
        }
        b.into_inner().unwrap()
    }

    fn image(layers: &[Vec<u8>]) -> (tempfile::TempDir, Result<Inventory, InventoryError>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let digests: Vec<(Digest, u64)> = layers
            .iter()
            .map(|l| {
                let d = Digest::of(l);
                store.put_bytes(&d, l).unwrap();
                (d, l.len() as u64)
            })
            .collect();
        let refs: Vec<Layer> = digests
            .iter()
            .map(|(d, n)| Layer {
                digest: d,
                size: *n,
                media_type: "application/vnd.oci.image.layer.v1.tar",
            })
            .collect();
        let inv = of_image(&store, &refs);
        (dir, inv)
    }

    #[test]
    fn a_package_database_that_links_out_of_the_image_is_never_followed() {
        use tar::EntryType::{Link, Regular, Symlink};
        let status = b"Package: real\nStatus: install ok installed\nVersion: 1\n";
        let (_d, inv) = image(&[
            tar(&[("var/lib/dpkg/status", Regular, status, None)]),
            // The next layer replaces it by a link to the host's files,
            // and points apk's database at another file by a hard link.
            tar(&[
                ("var/lib/dpkg/status", Symlink, b"", Some("/etc/shadow")),
                ("etc/passwd", Regular, b"root:x:0:0\n", None),
                ("lib/apk/db/installed", Link, b"", Some("etc/passwd")),
            ]),
        ]);
        let inv = inv.unwrap();
        assert!(inv.packages.is_empty(), "{:?}", inv.packages);
        assert!(
            inv.notes.iter().any(|n| n.contains("hard link")),
            "{:?}",
            inv.notes
        );
    }

    #[test]
    fn a_layer_altered_in_the_store_is_refused_not_cataloged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let good = tar(&[(
            "etc/os-release",
            tar::EntryType::Regular,
            b"ID=debian\n",
            None,
        )]);
        let d = Digest::of(&good);
        store.put_bytes(&d, &good).unwrap();
        let mut bad = good.clone();
        bad[600] ^= 1;
        std::fs::write(store.blob_path(&d), &bad).unwrap();
        let err = of_image(
            &store,
            &[Layer {
                digest: &d,
                size: good.len() as u64,
                media_type: "application/vnd.oci.image.layer.v1.tar",
            }],
        )
        .unwrap_err();
        assert!(matches!(err, InventoryError::Corrupt { .. }), "{err}");
        assert!(!dir.path().join("catalogs").exists(), "nothing cached");
    }
}
