//! A bundle's bytes for reading: one file, or the parts `bale split` wrote,
//! read in place by position (never rejoined on disk).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One file of a source: where its bytes lie in the whole.
#[derive(Debug)]
pub struct Part {
    /// Its path.
    pub path: PathBuf,
    file: File,
    /// Offset of its first byte in the bundle.
    pub start: u64,
    /// Its size.
    pub len: u64,
}

/// The bytes of a bundle. Cheap to clone; safe to read from many threads.
#[derive(Clone, Debug)]
pub struct Source {
    parts: Arc<Vec<Part>>,
    len: u64,
}

impl Source {
    /// One whole file.
    pub fn file(path: &Path) -> io::Result<Source> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Source {
            parts: Arc::new(vec![Part {
                path: path.to_owned(),
                file,
                start: 0,
                len,
            }]),
            len,
        })
    }

    /// The files `paths`, in order, as one sequence of bytes. Each must have
    /// the size given with it: a part that grew or shrank is refused here.
    pub fn parts(paths: &[(PathBuf, u64)]) -> Result<Source, (PathBuf, String)> {
        let mut parts = Vec::new();
        let mut start = 0u64;
        for (path, want) in paths {
            let file = File::open(path).map_err(|e| (path.clone(), format!("missing: {e}")))?;
            let len = file
                .metadata()
                .map_err(|e| (path.clone(), e.to_string()))?
                .len();
            if len != *want {
                return Err((
                    path.clone(),
                    format!("{len} bytes, the signed part list says {want}"),
                ));
            }
            parts.push(Part {
                path: path.clone(),
                file,
                start,
                len,
            });
            start += len;
        }
        Ok(Source {
            parts: Arc::new(parts),
            len: start,
        })
    }

    /// Total length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The parts (one for a whole file).
    pub fn part_list(&self) -> &[Part] {
        &self.parts
    }

    /// The file that holds all `size` bytes from `offset`, and where they
    /// start in it; `None` when they span parts or pass the end.
    pub fn file_holding(&self, offset: u64, size: u64) -> Option<(&File, u64)> {
        let end = offset.checked_add(size)?;
        self.parts
            .iter()
            .find(|p| offset >= p.start && end <= p.start + p.len)
            .map(|p| (&p.file, offset - p.start))
    }

    /// Reads into `buf` from `offset`; a read may stop short at the end of
    /// a part (call again), and returns 0 at the end of the whole.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        // Parts are few (a 15 GB bundle in 4 GiB parts has 4): a scan.
        let Some(p) = self
            .parts
            .iter()
            .find(|p| offset >= p.start && offset < p.start + p.len)
        else {
            return Ok(0);
        };
        let within = offset - p.start;
        let n = (buf.len() as u64).min(p.len - within) as usize;
        p.file.read_at(&mut buf[..n], within)
    }

    /// Fills `buf` from `offset`, across parts.
    pub fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the bundle ends early",
                    ));
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A [`Source`] as a file: `Read` and `Seek` from a position of its own.
pub struct SourceReader {
    src: Source,
    pos: u64,
}

impl Source {
    /// A reader from the first byte.
    pub fn reader(&self) -> SourceReader {
        SourceReader {
            src: self.clone(),
            pos: 0,
        }
    }
}

impl io::Read for SourceReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.src.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl io::Seek for SourceReader {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let next = match to {
            io::SeekFrom::Start(n) => Some(n),
            io::SeekFrom::End(d) => self.src.len.checked_add_signed(d),
            io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = next
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cross_part_boundaries_as_one_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let whole: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut paths = Vec::new();
        for (i, chunk) in whole.chunks(300).enumerate() {
            let p = dir.path().join(format!("b.{:03}", i + 1));
            std::fs::write(&p, chunk).unwrap_or_else(|e| panic!("{e}"));
            paths.push((p, chunk.len() as u64));
        }
        let s = Source::parts(&paths).unwrap_or_else(|(p, m)| panic!("{}: {m}", p.display()));
        assert_eq!(s.len(), 1000);
        let mut buf = vec![0u8; 450];
        s.read_exact_at(&mut buf, 250)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(buf, whole[250..700]);
        assert!(s.read_exact_at(&mut buf, 900).is_err());
        // A range inside one part is found in it; one across parts or
        // past the end is not.
        let at = |o, n| s.file_holding(o, n).map(|(_, at)| at);
        assert_eq!(at(310, 200), Some(10));
        assert_eq!(at(0, 300), Some(0));
        assert_eq!(at(250, 100), None);
        assert_eq!(at(950, 100), None);
        assert_eq!(at(u64::MAX, 2), None);
        // A part of another size is refused, naming it.
        paths[1].1 += 1;
        let err = Source::parts(&paths).err().map(|(p, _)| p);
        assert_eq!(err, Some(dir.path().join("b.002")));
    }
}
