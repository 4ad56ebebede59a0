//! Reading a database: zip exports, directories of records, single files.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Database, MAX_RECORD_BYTES, MAX_RECORDS, OsvError, Record, Wanted, ecosystem_applies};
use crate::quote::quote;

/// Reads every database in `paths` (zip exports, directories of `.json`
/// records, or single records), keeping the records `wanted` names.
pub fn load(paths: &[PathBuf], wanted: &Wanted) -> Result<Database, OsvError> {
    let mut db = Database::default();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|source| OsvError::Io {
            path: p.clone(),
            source,
        })?;
        if meta.is_dir() {
            for entry in walkdir::WalkDir::new(p).sort_by_file_name() {
                let entry = entry.map_err(|e| OsvError::Io {
                    path: p.clone(),
                    source: e.into(),
                })?;
                let path = entry.path();
                if !entry.file_type().is_file() {
                    continue;
                }
                match path.extension().and_then(|e| e.to_str()) {
                    Some("json") => file(path, wanted, &mut db)?,
                    Some("zip") => zip(path, wanted, &mut db)?,
                    _ => {}
                }
            }
        } else if is_zip(p)? {
            zip(p, wanted, &mut db)?;
        } else {
            file(p, wanted, &mut db)?;
        }
        db.sources.push(p.clone());
    }
    Ok(db)
}

fn is_zip(p: &Path) -> Result<bool, OsvError> {
    let mut magic = [0u8; 4];
    let mut f = File::open(p).map_err(|source| OsvError::Io {
        path: p.to_owned(),
        source,
    })?;
    let n = f.read(&mut magic).map_err(|source| OsvError::Io {
        path: p.to_owned(),
        source,
    })?;
    Ok(n == 4 && magic == *b"PK\x03\x04")
}

fn file(path: &Path, wanted: &Wanted, db: &mut Database) -> Result<(), OsvError> {
    let bytes =
        crate::digest::read_regular(path, MAX_RECORD_BYTES + 1).map_err(|source| OsvError::Io {
            path: path.to_owned(),
            source,
        })?;
    take(&bytes, path, None, wanted, db)
}

fn zip(path: &Path, wanted: &Wanted, db: &mut Database) -> Result<(), OsvError> {
    let invalid = |reason: String| OsvError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let f = File::open(path).map_err(|source| OsvError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(f))
        .map_err(|e| invalid(format!("not a zip archive bale can read ({})", kind(&e))))?;
    if archive.len() as u64 > MAX_RECORDS {
        return Err(invalid(format!("more than {MAX_RECORDS} entries")));
    }
    let mut buf = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| invalid(format!("entry {}: {}", i + 1, kind(&e))))?;
        let name = match entry.name() {
            Ok(n) if entry.is_file() && n.ends_with(".json") => quote(&n),
            _ => continue,
        };
        buf.clear();
        (&mut entry)
            .take(MAX_RECORD_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(|e| invalid(format!("entry {name}: {}", e.kind())))?;
        drop(entry);
        take(&buf, path, Some(&name), wanted, db)?;
    }
    Ok(())
}

/// A zip error in words of its own, without the archive's bytes.
fn kind(e: &zip::result::ZipError) -> &'static str {
    match e {
        zip::result::ZipError::Io(_) => "read error",
        zip::result::ZipError::InvalidArchive(_) => "invalid archive",
        zip::result::ZipError::UnsupportedArchive(_) => "unsupported archive feature",
        zip::result::ZipError::FileNotFound => "entry not found",
        _ => "unreadable",
    }
}

/// Parses one record and keeps it when it may matter.
fn take(
    bytes: &[u8],
    path: &Path,
    entry: Option<&str>,
    wanted: &Wanted,
    db: &mut Database,
) -> Result<(), OsvError> {
    let whose = || match entry {
        Some(e) => format!("entry {e}"),
        None => "the record".to_owned(),
    };
    if bytes.len() as u64 > MAX_RECORD_BYTES {
        return Err(OsvError::Invalid {
            path: path.to_owned(),
            reason: format!("{} is larger than {MAX_RECORD_BYTES} bytes", whose()),
        });
    }
    db.read += 1;
    if db.read > MAX_RECORDS {
        return Err(OsvError::Invalid {
            path: path.to_owned(),
            reason: format!("more than {MAX_RECORDS} records"),
        });
    }
    let record: Record = serde_json::from_slice(bytes).map_err(|e| OsvError::Invalid {
        path: path.to_owned(),
        reason: format!(
            "{} is not an OSV record (line {}, column {}: {})",
            whose(),
            e.line(),
            e.column(),
            match e.classify() {
                serde_json::error::Category::Data => "a field has the wrong type or is missing",
                serde_json::error::Category::Eof => "it ends early",
                _ => "not JSON",
            }
        ),
    })?;
    if let Some(m) = &record.modified
        && db
            .newest_modified
            .as_ref()
            .is_none_or(|n| m.get(..19) > n.get(..19))
    {
        db.newest_modified = Some(crate::packages::field(m));
    }
    for a in &record.affected {
        if let Some(p) = &a.package {
            *db.ecosystems
                .entry(crate::packages::field(&p.ecosystem))
                .or_default() += 1;
        }
    }
    if record.withdrawn.is_some() {
        db.withdrawn += 1;
        return Ok(());
    }
    let matters = record.affected.iter().any(|a| {
        a.package.as_ref().is_some_and(|p| {
            wanted.names.contains(&p.name)
                && wanted
                    .ecosystems
                    .iter()
                    .any(|w| ecosystem_applies(&p.ecosystem, w))
        })
    });
    if matters {
        db.records.push(record);
    }
    Ok(())
}
