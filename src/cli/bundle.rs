//! The commands that read a bundle file: verify, inspect and serve.

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
    base: Option<&Path>,
    json: bool,
) -> Result<(), bale::Error> {
    let key = public_key.map(VerifyingKey::from_file).transpose()?;
    let report = verifier::verify(
        bundle,
        &VerifyOptions {
            key: key.as_ref(),
            allow_unsigned,
            threads: 0,
            base,
        },
    )?;
    if json {
        output::result(
            serde_json::to_value(&report).unwrap_or_default(),
            report.ok(),
        );
    } else {
        for p in &report.problems {
            errln!("FAIL {}: {}", p.entry, p.message);
        }
        if let Some(b) = &report.base {
            errln!(
                "delta of {} {} (manifest {}): {} entries come from the base{}",
                b.name,
                b.version,
                b.manifest,
                report.from_base.len(),
                if report.base_checked {
                    ", checked in it"
                } else {
                    " (not checked: give it with --base OLD.bale); it must provide:"
                }
            );
            if !report.base_checked {
                for p in report.from_base.iter().take(20) {
                    errln!("  {p}");
                }
                if report.from_base.len() > 20 {
                    errln!(
                        "  … and {} more (--json lists them all)",
                        report.from_base.len() - 20
                    );
                }
            }
        }
        for i in report.images.iter().filter(|i| i.cosign.is_some()) {
            errln!(
                "upstream cosign signature of {} ({}): {}",
                i.service,
                i.name,
                i.cosign.unwrap_or_default()
            );
        }
        if report.signature == "unchecked" {
            errln!(
                "note: the bundle is signed, but no --public-key was given: its signature was not checked"
            );
        }
        errln!(
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
    let mut out = super::output::Terminal::stdout();
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
    Ok(())
}

/// `bale sbom`: the bundle's SPDX document, as signed, on stdout.
pub fn sbom(
    bundle: &Path,
    public_key: Option<&Path>,
    allow_unsigned: bool,
) -> Result<(), bale::Error> {
    let key = public_key.map(VerifyingKey::from_file).transpose()?;
    let (bytes, signature) = verifier::sbom(bundle, key.as_ref(), allow_unsigned)?;
    if signature != "verified" {
        errln!(
            "warning: the SBOM matches the bundle's manifest, but the manifest's signature is {signature}: nothing says who made it"
        );
    }
    super::output::emit(
        super::output::Stream::Out,
        &String::from_utf8_lossy(&bytes),
        true,
    );
    Ok(())
}

/// `bale serve`: the library verifies and serves; this prints its events,
/// as text on stderr or JSON lines on stdout.
pub fn serve(a: super::args::ServeArgs) -> Result<(), bale::Error> {
    use bale::serve::{self as server, ServeEvent, ServeOptions};
    let key = VerifyingKey::from_file(&a.public_key)?;
    let json = a.json;
    let events: server::Events = std::sync::Arc::new(move |e: ServeEvent| match e {
        ServeEvent::Listening {
            addr,
            tls,
            repositories,
            tags,
            name,
            version,
        } => {
            let url = format!("{}://{addr}", if tls { "https" } else { "http" });
            if json {
                jsonln!(
                    "{}",
                    serde_json::json!({"event": "listening", "url": url, "addr": addr.to_string(),
                        "bundle": name, "version": version, "repositories": repositories, "tags": tags})
                );
            } else {
                errln!(
                    "serving {name} {version} (verified): {repositories} repositories, {tags} tags at {url}"
                );
            }
        }
        ServeEvent::Request(r) => {
            if json {
                let mut v = serde_json::to_value(&r).unwrap_or_default();
                v["event"] = "request".into();
                jsonln!("{v}");
            } else {
                errln!(
                    "{} {} {} {} {} {}ms",
                    r.remote,
                    r.method,
                    r.path,
                    r.status,
                    r.bytes,
                    r.millis
                );
            }
        }
        ServeEvent::Changed { digest } => {
            if json {
                jsonln!(
                    "{}",
                    serde_json::json!({"event": "changed", "digest": digest.to_string()})
                );
            } else {
                errln!(
                    "error: {digest} no longer matches the verified bundle: the file changed; transfer cut short"
                );
            }
        }
        ServeEvent::Stopping => {
            if !json {
                errln!("stopping: finishing transfers under way");
            }
        }
    });
    let opts = ServeOptions {
        listen: a.listen,
        tls: a.tls_cert.zip(a.tls_key),
        max_connections: a.max_connections,
    };
    let summary = server::serve(&a.bundle, &key, &opts, events)?;
    if json {
        let mut v = serde_json::to_value(&summary).unwrap_or_default();
        v["event"] = "summary".into();
        output::result_line(v, true);
    } else {
        errln!(
            "stopped: {} requests, {} sent",
            summary.requests,
            human(summary.bytes)
        );
    }
    Ok(())
}

/// `bale push`: progress on a terminal (or JSON lines with `--json`), then
/// the summary.
pub fn push(a: super::args::PushArgs) -> Result<(), bale::Error> {
    use bale::push::{self, PushEvent, PushOptions};
    use std::io::IsTerminal as _;
    let key = VerifyingKey::from_file(&a.public_key)?;
    let mut settings = bale::config::Settings::load(Path::new("."), a.hosts.config.as_deref())?;
    for h in &a.hosts.insecure {
        settings.add_insecure(h);
    }
    let json = a.json.json;
    let bar = (!json && std::io::stderr().is_terminal()).then(|| {
        indicatif::ProgressBar::new(0).with_style(
            indicatif::ProgressStyle::with_template(
                "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        )
    });
    let events = |e: PushEvent| {
        if json {
            let v = match &e {
                PushEvent::Progress { .. } => return,
                PushEvent::Resumed {
                    digest,
                    offset,
                    reason,
                } => serde_json::json!({
                    "event": "resumed", "digest": digest.to_string(), "offset": offset, "reason": reason}),
                PushEvent::Blob {
                    repository,
                    digest,
                    size,
                    how,
                } => serde_json::json!({
                    "event": "blob", "repository": repository, "digest": digest.to_string(), "size": size, "how": how}),
                PushEvent::Manifest {
                    reference,
                    digest,
                    present,
                } => serde_json::json!({
                    "event": "manifest", "reference": reference, "digest": digest.to_string(), "present": present}),
            };
            jsonln!("{v}");
            return;
        }
        match e {
            PushEvent::Progress { digest, sent, size } => {
                if let Some(b) = &bar {
                    b.set_message(digest.hex().chars().take(12).collect::<String>());
                    b.set_length(size);
                    b.set_position(sent);
                }
            }
            PushEvent::Resumed {
                digest,
                offset,
                reason,
            } => {
                let line = format!("warning: {digest}: {reason}; going on from byte {offset}");
                match &bar {
                    Some(b) => b.println(line),
                    None => errln!("{line}"),
                }
            }
            PushEvent::Blob {
                repository,
                digest,
                size,
                how,
            } => {
                let line =
                    format!("{how:?} {repository}@{digest} ({})", human(size)).to_lowercase();
                match &bar {
                    Some(b) => b.println(line),
                    None => errln!("{line}"),
                }
            }
            PushEvent::Manifest {
                reference, present, ..
            } => {
                let line = format!("{} {reference}", if present { "present" } else { "pushed" });
                match &bar {
                    Some(b) => b.println(line),
                    None => errln!("{line}"),
                }
            }
        }
    };
    let opts = PushOptions {
        to: a.to.clone(),
        chunk: a.chunk_size,
    };
    let report = push::push_file(
        &a.bundle,
        &key,
        settings,
        a.ca_cert.as_deref(),
        &opts,
        &events,
    )?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if json {
        let mut v = serde_json::to_value(&report).unwrap_or_default();
        v["event"] = "summary".into();
        output::result_line(v, true);
    } else {
        for i in &report.images {
            errln!("{} -> {} ({})", i.name, i.target, i.digest);
            if let Some(note) = &i.index {
                errln!("  index {note}");
            }
        }
        errln!(
            "pushed to {}: {} blobs uploaded ({}), {} mounted, {} already there; {} chunk(s) resumed",
            report.to,
            report.blobs_uploaded,
            human(report.bytes_uploaded),
            report.blobs_mounted,
            report.blobs_present,
            report.resumes
        );
    }
    Ok(())
}
