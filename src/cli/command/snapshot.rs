//! `bale snapshot`.

use bale::ops::snapshot::SnapshotRequest;

use super::Run;
use crate::cli::args::SnapshotArgs;
use crate::cli::output::Output;
use crate::cli::resolve;

/// `bale snapshot`, resolved.
pub struct Snapshot {
    /// Where.
    pub request: SnapshotRequest,
}

impl Snapshot {
    /// From `bale snapshot`'s flags.
    pub fn new(a: SnapshotArgs) -> Snapshot {
        Snapshot {
            request: SnapshotRequest {
                target: a.target,
                runtime: resolve::runtime(a.runtime),
            },
        }
    }
}

impl Run for Snapshot {
    fn run(&self, out: &Output) -> Result<(), bale::Error> {
        let s = bale::ops::snapshot::run(&self.request)?;
        if out.is_json() {
            out.result(&s, true);
            return Ok(());
        }
        let m = &s.manifest;
        errln!(
            "snapshot {} of {} {} ({}): {} archives, {} in {}",
            m.id,
            m.name,
            m.version,
            m.consistency,
            m.archives.len(),
            bytes(s.bytes),
            s.dir.display()
        );
        for a in &m.archives {
            errln!(
                "  {:<7} {:<30} {} files, {} -> {}",
                if a.kind == bale::install::DataKind::Volume {
                    "volume"
                } else {
                    "path"
                },
                a.name,
                a.contents.files,
                bytes(a.contents.bytes),
                bytes(a.size)
            );
        }
        Ok(())
    }
}

/// Bytes as people read them.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
