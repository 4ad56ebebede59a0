//! `bale split`: a bundle in parts for removable media (`NAME.001`,
//! `NAME.002`, …, which `cat` rejoins into the exact bundle), and a signed
//! part list (`NAME.parts`, in `sha256sum -c` form, with
//! `NAME.parts.minisig`) that names a missing or corrupt part before
//! anything else of the bundle is read.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::source::Source;
use crate::digest::Digest;
use crate::sign::{SigningKey, VerifyingKey};

/// The default part size: under FAT32's 4 GiB file limit.
pub const DEFAULT_PART_SIZE: u64 = 4 * 1024 * 1024 * 1024 - 1024 * 1024;
/// Most parts a bundle is split into.
const MAX_PARTS: usize = 999;
/// Largest part list a reader accepts.
const MAX_LIST: u64 = 256 * 1024;

/// Errors splitting a bundle or reading its parts.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// A file could not be read or written.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The input or the part size cannot be split.
    #[error("{0}")]
    Refused(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SplitError + '_ {
    move |e| SplitError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// One part of a list.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PartEntry {
    /// File name, beside the list.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of its bytes.
    pub sha256: Digest,
}

/// The part list: the bundle's file name, size and SHA-256, and each part.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PartList {
    /// The bundle's file name.
    pub bundle: String,
    /// Its size.
    pub size: u64,
    /// SHA-256 of the whole bundle.
    pub sha256: Digest,
    /// The parts, in order.
    pub parts: Vec<PartEntry>,
}

impl PartList {
    /// The list as written: comments for `sha256sum -c`, then one
    /// `#size` and one checksum line per part.
    pub fn render(&self) -> String {
        let mut s = format!(
            "# bale bundle parts, format 1\n# bundle {}\n# size {}\n# sha256 {}\n# Rejoin: cat {}.??? > {}\n",
            self.bundle, self.size, self.sha256, self.bundle, self.bundle
        );
        for p in &self.parts {
            s.push_str(&format!(
                "#size {} {}\n{}  {}\n",
                p.size,
                p.name,
                p.sha256.hex(),
                p.name
            ));
        }
        s
    }

    /// Parses a list written by [`PartList::render`].
    pub fn parse(text: &str) -> Result<PartList, String> {
        let mut bundle = None;
        let mut size = None;
        let mut sha256 = None;
        let mut parts = Vec::new();
        let mut pending: Option<(u64, String)> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("#size ") {
                let (n, name) = rest.split_once(' ').ok_or("a #size line without a name")?;
                pending = Some((
                    n.parse().map_err(|_| "a #size that is not a number")?,
                    name.to_owned(),
                ));
            } else if let Some(v) = line.strip_prefix("# bundle ") {
                bundle = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("# size ") {
                size = Some(
                    v.parse::<u64>()
                        .map_err(|_| "a size that is not a number")?,
                );
            } else if let Some(v) = line.strip_prefix("# sha256 ") {
                sha256 = Some(v.parse::<Digest>().map_err(|e| e.to_string())?);
            } else if line.starts_with('#') || line.is_empty() {
            } else {
                let (hex, name) = line
                    .split_once("  ")
                    .ok_or("a line that is not `HEX  NAME`")?;
                let (psize, pname) = pending.take().ok_or("a checksum line without its #size")?;
                if pname != name {
                    return Err(format!("#size names {pname}, the checksum {name}"));
                }
                parts.push(PartEntry {
                    name: name.to_owned(),
                    size: psize,
                    sha256: format!("sha256:{hex}")
                        .parse()
                        .map_err(|e: crate::digest::DigestParseError| e.to_string())?,
                });
            }
        }
        let list = PartList {
            bundle: bundle.ok_or("no `# bundle` line")?,
            size: size.ok_or("no `# size` line")?,
            sha256: sha256.ok_or("no `# sha256` line")?,
            parts,
        };
        // Every name is a plain file name beside the list: nothing reads
        // outside that directory.
        for p in std::iter::once(&list.bundle).chain(list.parts.iter().map(|p| &p.name)) {
            if p.is_empty() || p.contains('/') || p == ".." || p.contains('\0') {
                return Err(format!("`{}` is not a file name", crate::quote::quote(p)));
            }
        }
        if list.parts.iter().map(|p| p.size).sum::<u64>() != list.size {
            return Err("the parts' sizes do not add up to the bundle's".into());
        }
        Ok(list)
    }

    /// The trusted comment its signature carries.
    pub fn trusted_comment(&self, list_digest: &Digest) -> String {
        format!(
            "bale-parts bundle={} size={} sha256={} list={list_digest}",
            self.bundle, self.size, self.sha256
        )
    }
}

/// What `bale split` wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SplitReport {
    /// The part list.
    pub list: PathBuf,
    /// Its signature, if signed.
    pub signature: Option<PathBuf>,
    /// The parts.
    pub parts: PartList,
}

/// Writes `file` through a temp file beside `path`, fsynced, renamed.
fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<(), SplitError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    use std::os::unix::fs::PermissionsExt as _;
    // Readable as the bundle is (0644): parts and their list are no secret.
    let mut tmp = tempfile::Builder::new()
        .prefix(".bale-split-")
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    write(tmp.as_file_mut()).map_err(io_err(path))?;
    tmp.as_file().sync_all().map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| SplitError::Io {
        path: path.to_owned(),
        message: e.error.to_string(),
    })?;
    Ok(())
}

/// Splits `bundle` into parts of `size` bytes beside it, with the part
/// list, signed with `key` when given.
pub fn split(
    bundle: &Path,
    size: u64,
    key: Option<&SigningKey>,
) -> Result<SplitReport, SplitError> {
    if size == 0 {
        return Err(SplitError::Refused("a part size must be above 0".into()));
    }
    let name = bundle
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| SplitError::Refused(format!("{}: not a file", bundle.display())))?;
    // The bundle is an input: one that is missing or unreadable is refused
    // (exit 3, as every command says it), not an I/O failure of the split.
    let src = Source::file(bundle)
        .map_err(|e| SplitError::Refused(format!("{}: {e}", bundle.display())))?;
    let mut head = [0u8; 100];
    if src.read_exact_at(&mut head, 0).is_err()
        || !head.starts_with(super::MANIFEST_PATH.as_bytes())
    {
        return Err(SplitError::Refused(format!(
            "{}: not a bale bundle (its first entry is not {})",
            bundle.display(),
            super::MANIFEST_PATH
        )));
    }
    let count = src.len().div_ceil(size).max(1) as usize;
    if count > MAX_PARTS {
        return Err(SplitError::Refused(format!(
            "{count} parts of {size} bytes: at most {MAX_PARTS}; give a larger --size"
        )));
    }
    let mut whole = Sha256::new();
    let mut parts = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    for i in 0..count {
        let start = i as u64 * size;
        let len = size.min(src.len() - start);
        let part_name = format!("{name}.{:03}", i + 1);
        let path = bundle.with_file_name(&part_name);
        let mut h = Sha256::new();
        write_atomic(&path, |f| {
            let mut pos = 0u64;
            while pos < len {
                let n = (len - pos).min(buf.len() as u64) as usize;
                src.read_exact_at(&mut buf[..n], start + pos)?;
                h.update(&buf[..n]);
                whole.update(&buf[..n]);
                f.write_all(&buf[..n])?;
                pos += n as u64;
            }
            Ok(())
        })?;
        parts.push(PartEntry {
            name: part_name,
            size: len,
            sha256: Digest::from_sha256(h),
        });
    }
    let list = PartList {
        bundle: name.clone(),
        size: src.len(),
        sha256: Digest::from_sha256(whole),
        parts,
    };
    let text = list.render();
    let list_path = bundle.with_file_name(format!("{name}.parts"));
    write_atomic(&list_path, |f| f.write_all(text.as_bytes()))?;
    let signature = match key {
        None => None,
        Some(k) => {
            let sig = k.sign(
                text.as_bytes(),
                &list.trusted_comment(&Digest::of(text.as_bytes())),
            );
            let p = bundle.with_file_name(format!("{name}.parts.minisig"));
            write_atomic(&p, |f| f.write_all(sig.as_bytes()))?;
            Some(p)
        }
    };
    Ok(SplitReport {
        list: list_path,
        signature,
        parts: list,
    })
}

/// The part list beside `path` when `path` is a first part (`NAME.001`
/// with `NAME.parts` next to it).
pub fn list_for(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let base = name.strip_suffix(".001")?;
    let list = path.with_file_name(format!("{base}.parts"));
    list.is_file().then_some(list)
}

/// A problem with one part, named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartProblem {
    /// The part (or the list).
    pub file: String,
    /// What is wrong.
    pub message: String,
}

/// Each part's path (beside the list) and size.
fn part_paths(list_path: &Path, list: &PartList) -> Vec<(PathBuf, u64)> {
    list.parts
        .iter()
        .map(|p| (list_path.with_file_name(&p.name), p.size))
        .collect()
}

fn read_list(list_path: &Path) -> Result<(String, PartList), PartProblem> {
    let shown = list_path.display().to_string();
    let problem = |message: String| PartProblem {
        file: shown.clone(),
        message,
    };
    let f = std::fs::File::open(list_path).map_err(|e| problem(e.to_string()))?;
    let mut text = String::new();
    f.take(MAX_LIST + 1)
        .read_to_string(&mut text)
        .map_err(|e| problem(e.to_string()))?;
    if text.len() as u64 > MAX_LIST {
        return Err(problem(format!("over {MAX_LIST} bytes: not a part list")));
    }
    let list = PartList::parse(&text).map_err(problem)?;
    Ok((text, list))
}

/// Opens the parts that the list at `list_path` names (see [`list_for`]),
/// in place. Each is checked first, and named when it is missing, of
/// another size, or corrupt: the list's signature with `key` (required
/// unless `allow_unsigned`), then every part's size and digest.
pub fn open_checked(
    list_path: &Path,
    key: Option<&VerifyingKey>,
    allow_unsigned: bool,
) -> Result<Source, Vec<PartProblem>> {
    let (text, list) = read_list(list_path).map_err(|p| vec![p])?;
    let sig_path = list_path.with_file_name(format!(
        "{}.minisig",
        list_path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let sig_problem = |message: String| PartProblem {
        file: sig_path.display().to_string(),
        message,
    };
    match (key, std::fs::read_to_string(&sig_path)) {
        (Some(k), Ok(sig)) => {
            let comment = k
                .verify(text.as_bytes(), &sig)
                .map_err(|m| vec![sig_problem(m)])?;
            if comment != list.trusted_comment(&Digest::of(text.as_bytes())) {
                return Err(vec![sig_problem(format!(
                    "the signed trusted comment `{}` does not name this part list",
                    crate::quote::quote(&comment)
                ))]);
            }
        }
        (Some(_), Err(e)) => {
            return Err(vec![sig_problem(format!(
                "the part list is not signed ({e}): split with --sign-key"
            ))]);
        }
        (None, _) if allow_unsigned => {}
        (None, _) => {
            return Err(vec![sig_problem(
                "no public key given to check it: pass --public-key".into(),
            )]);
        }
    }
    let paths = part_paths(list_path, &list);
    // Every missing or resized part at once, before any byte is read.
    let mut problems: Vec<PartProblem> = Vec::new();
    for (p, want) in &paths {
        match std::fs::metadata(p) {
            Err(e) => problems.push(PartProblem {
                file: p.display().to_string(),
                message: format!("missing: {e}"),
            }),
            Ok(m) if m.len() != *want => problems.push(PartProblem {
                file: p.display().to_string(),
                message: format!("{} bytes, the signed part list says {want}", m.len()),
            }),
            Ok(_) => {}
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let src = Source::parts(&paths).map_err(|(p, m)| {
        vec![PartProblem {
            file: p.display().to_string(),
            message: m,
        }]
    })?;
    let mut buf = vec![0u8; 1 << 20];
    for (part, entry) in src.part_list().iter().zip(&list.parts) {
        let mut h = Sha256::new();
        let mut pos = 0u64;
        let mut failed = None;
        while pos < part.len {
            let n = (part.len - pos).min(buf.len() as u64) as usize;
            if let Err(e) = src.read_exact_at(&mut buf[..n], part.start + pos) {
                failed = Some(e.to_string());
                break;
            }
            h.update(&buf[..n]);
            pos += n as u64;
        }
        let got = Digest::from_sha256(h);
        if let Some(m) = failed {
            problems.push(PartProblem {
                file: part.path.display().to_string(),
                message: format!("cannot read: {m}"),
            });
        } else if got != entry.sha256 {
            problems.push(PartProblem {
                file: part.path.display().to_string(),
                message: format!(
                    "corrupt: it hashes to {got}, the signed part list says {}",
                    entry.sha256
                ),
            });
        }
    }
    if problems.is_empty() {
        Ok(src)
    } else {
        Err(problems)
    }
}

/// Opens the bundle at `path` (a whole file, or a first part) without
/// hashing the parts: for readers that check every entry they read
/// anyway, after [`open_checked`] has passed.
pub fn open(path: &Path) -> std::io::Result<Source> {
    let Some(list_path) = list_for(path) else {
        return Source::file(path);
    };
    let (_, list) = read_list(&list_path).map_err(|p| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {}", p.file, p.message),
        )
    })?;
    Source::parts(&part_paths(&list_path, &list)).map_err(|(p, m)| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {m}", p.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_list_round_trips_and_refuses_names_outside_its_directory() {
        let list = PartList {
            bundle: "b.bale".into(),
            size: 3,
            sha256: Digest::of(b"abc"),
            parts: vec![
                PartEntry {
                    name: "b.bale.001".into(),
                    size: 2,
                    sha256: Digest::of(b"ab"),
                },
                PartEntry {
                    name: "b.bale.002".into(),
                    size: 1,
                    sha256: Digest::of(b"c"),
                },
            ],
        };
        assert_eq!(PartList::parse(&list.render()), Ok(list.clone()));
        let evil = list.render().replace("b.bale.002", "../etc/x");
        assert!(PartList::parse(&evil).is_err());
        let short = list.render().replace("# size 3", "# size 4");
        assert!(PartList::parse(&short).is_err());
    }
}
