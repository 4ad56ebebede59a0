//! `bale inspect`.

use std::io::Write;
use std::path::PathBuf;

use super::Run;
use crate::cli::output::{Output, Terminal, human};

/// `bale inspect`, resolved.
pub struct Inspect {
    /// The bundle.
    pub bundle: PathBuf,
}

impl Run for Inspect {
    fn run(&self, out: &Output) -> Result<(), bale::Error> {
        let i = bale::ops::inspect::run(&self.bundle)?;
        if out.is_json() {
            out.result(&i, true);
            return Ok(());
        }
        print(&i);
        Ok(())
    }
}

/// The inspection as a table on stdout.
fn print(i: &bale::verify::Inspection) {
    let mut out = Terminal::stdout();
    let _ = writeln!(
        out,
        "{} {}  manifest {}  {}",
        i.name,
        i.version,
        i.manifest_digest,
        if i.signed {
            "signed (not checked here: use bale verify)"
        } else {
            "UNSIGNED"
        }
    );
    if let Some(b) = &i.base {
        let _ = writeln!(
            out,
            "DELTA of {} {} (manifest {}): {} entries come from the base, which install needs (or the images in the runtime)",
            b.name,
            b.version,
            b.manifest,
            i.from_base.len()
        );
    }
    let _ = writeln!(
        out,
        "\n{:<20} {:<50} {:<14} {:<20}  {:>10}",
        "SERVICE", "IMAGE", "PLATFORM", "MANIFEST", "SIZE"
    );
    for r in &i.images {
        let _ = writeln!(
            out,
            "{:<20} {:<50} {:<14} {:<20}  {:>10}",
            r.service,
            r.name,
            r.platform,
            format!("{}…", &r.manifest.to_string()[..19]),
            human(r.size)
        );
        for a in &r.attestations {
            let _ = writeln!(
                out,
                "{:<20} attestation {} ({})",
                "",
                a.manifest,
                a.predicate_types.join(", ")
            );
        }
        if let Some(s) = &r.signature {
            let _ = writeln!(
                out,
                "{:<20} cosign signature {} (key {}; checked by bale verify)",
                "", s.manifest, s.key
            );
        }
    }
    if !i.files.is_empty() {
        let _ = writeln!(out, "\n{:<60} {:>10}", "FILE", "SIZE");
        for f in &i.files {
            let compose = if i.compose.as_deref() == Some(f.target.as_str()) {
                "  (compose)"
            } else {
                ""
            };
            let _ = writeln!(out, "{:<60} {:>10}{compose}", f.target, human(f.size));
        }
    }
    let _ = writeln!(
        out,
        "\ntotal {}; images {} as listed, {} unique ({} shared layer(s))",
        human(i.total_size),
        human(i.images_size),
        human(i.unique_size),
        i.shared_layers.len()
    );
    for (d, services) in &i.shared_layers {
        let _ = writeln!(out, "  {d} shared by {}", services.join(", "));
    }
}
