//! Errors that name a file, line and column: what every reader of a
//! hand-written file (bundle.toml, bundle.lock, settings) reports.

use std::ops::Range;
use std::path::{Path, PathBuf};

/// An error located in a file.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", file.display())]
pub struct LocatedError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl LocatedError {
    /// Locates byte `span` of `text` (the content of `file`).
    pub fn at(file: &Path, text: &str, span: Option<Range<usize>>, message: String) -> Self {
        let offset = span.map_or(0, |s| s.start.min(text.len()));
        let before = &text[..floor_char_boundary(text, offset)];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        LocatedError {
            file: file.to_owned(),
            line,
            column,
            message,
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
