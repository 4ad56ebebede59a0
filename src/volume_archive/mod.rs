//! A directory tree as one zstd-compressed tar stream, and back: what a
//! snapshot keeps of a volume. Owner, mode, times (to the nanosecond),
//! extended attributes, symlinks, hard links, FIFOs, device nodes and
//! sparse files come back as they were.
//!
//! The format is plain tar (GNU headers, PAX records for what those lack:
//! `mtime`/`atime` with nanoseconds, `SCHILY.xattr.*` as GNU tar writes
//! them, and `BALE.sparse` for a file with holes), so `tar --zstd -x`
//! reads it too. Reading never trusts the stream: every path is relative
//! and made of plain names, every entry is created inside a fresh
//! directory under a parent this extraction made itself, nothing is
//! opened through a link, and nothing is created twice.

mod read;
#[cfg(test)]
mod tests;
mod write;

pub use read::extract;
pub use write::write;

use std::io;
use std::path::PathBuf;

/// What an archive holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// Entries of every kind (the root directory included).
    pub entries: u64,
    /// Regular files (hard links counted once).
    pub files: u64,
    /// Bytes of regular files' content.
    pub bytes: u64,
}

/// Errors writing or reading an archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A file or directory operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The stream is not an archive bale would write, or breaks its rules.
    #[error("archive entry {entry}: {message}")]
    Invalid {
        /// The entry's path (escaped), or its number.
        entry: String,
        /// What is wrong.
        message: String,
    },
}

fn io_at(path: &std::path::Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_owned(),
        source,
    }
}

/// PAX key of the sparse mark.
const SPARSE: &str = "BALE.sparse";
/// PAX key prefix of an extended attribute (GNU tar's and star's).
const XATTR: &str = "SCHILY.xattr.";
/// Block size holes are looked for in when a sparse file is written back.
const HOLE_BLOCK: usize = 64 * 1024;
