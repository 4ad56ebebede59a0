//! The commands that read a bundle file: verify and inspect.

use std::io::Write;
use std::path::Path;

use bale::sign::VerifyingKey;
use bale::verify::{self as verifier, VerifyOptions};

use super::output::{self, human};

/// `bale verify`.
pub fn verify(
    bundle: &Path,
    public_key: Option<&Path>,
    allow_unsigned: bool,
    json: bool,
) -> Result<(), bale::Error> {
    let key = public_key.map(VerifyingKey::from_file).transpose()?;
    let report = verifier::verify(
        bundle,
        &VerifyOptions {
            key: key.as_ref(),
            allow_unsigned,
            threads: 0,
        },
    )?;
    if json {
        output::result(
            serde_json::to_value(&report).unwrap_or_default(),
            report.ok(),
        );
    } else {
        for p in &report.problems {
            eprintln!("FAIL {}: {}", p.entry, p.message);
        }
        if report.signature == "unchecked" {
            eprintln!(
                "note: the bundle is signed, but no --public-key was given: its signature was not checked"
            );
        }
        eprintln!(
            "{} {} {}: signature {}{}, {} entries ({}) checked, {} problem(s)",
            bundle.display(),
            report.name.as_deref().unwrap_or("?"),
            report.version.as_deref().unwrap_or("?"),
            report.signature,
            report
                .key_id
                .as_ref()
                .map(|k| format!(" (key {k})"))
                .unwrap_or_default(),
            report.entries_checked,
            human(report.bytes_checked),
            report.problems.len()
        );
    }
    if report.ok() {
        Ok(())
    } else {
        Err(bale::Error::NotIntact(report.problems.len()))
    }
}

/// `bale inspect`.
pub fn inspect(bundle: &Path, json: bool) -> Result<(), bale::Error> {
    let i = verifier::inspect(bundle)?;
    if json {
        output::result(serde_json::to_value(&i).unwrap_or_default(), true);
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
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
    let _ = writeln!(
        out,
        "\n{:<20} {:<50} {:<14} {:<20} {:>10}",
        "SERVICE", "IMAGE", "PLATFORM", "MANIFEST", "SIZE"
    );
    for r in &i.images {
        let _ = writeln!(
            out,
            "{:<20} {:<50} {:<14} {:<20} {:>10}",
            r.service,
            r.name,
            r.platform,
            format!("{}…", &r.manifest.to_string()[..19]),
            human(r.size)
        );
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
    Ok(())
}
