//! The release engineer's commands: lock, outdated, fetch, build, keygen.

use std::io::IsTerminal;
use std::path::PathBuf;

use bale::lock::{Change, Update};
use bale::ops::{Context, OutdatedStatus};
use bale::sign::{self, SigningKey};
use bale::store::{self, Store};

use super::args::{Blobs, BuildArgs, Net, SpecFile};
use super::output::{self, human};

fn context(spec: &SpecFile, net: &Net) -> Result<Context, bale::Error> {
    Context::load(
        &spec.file,
        &bale::ops::NetOptions {
            config: net.hosts.config.clone(),
            mirrors: net.mirrors.clone(),
            insecure: net.hosts.insecure.clone(),
        },
    )
}

fn open_store(dir: Option<PathBuf>) -> Result<(PathBuf, Store), bale::Error> {
    let root = dir.unwrap_or_else(store::default_root);
    let s = Store::open(&root)?;
    Ok((root, s))
}

/// `bale lock`.
pub fn lock(
    spec: &SpecFile,
    update: Option<Vec<String>>,
    check: bool,
    net: &Net,
) -> Result<(), bale::Error> {
    let ctx = context(spec, net)?;
    if check {
        ctx.locked()?;
        errln!(
            "{} agrees with {}",
            ctx.lock_path().display(),
            spec.file.display()
        );
        return Ok(());
    }
    let update = match update {
        None => Update::Missing,
        Some(v) if v.is_empty() => Update::All,
        Some(v) => Update::Services(v),
    };
    let outcome = ctx.lock(&update, &output::resolving)?;
    for c in &outcome.changes {
        match c {
            Change::Kept(s) => errln!("kept     {s}"),
            Change::Unchanged(s) => errln!("checked  {s} (unchanged)"),
            Change::Updated(s, old, new) => match old {
                Some(o) => errln!("updated  {s}: {o} -> {new}"),
                None => errln!("locked   {s}: {new}"),
            },
        }
    }
    if outcome.written {
        errln!("wrote {}", outcome.path.display());
    } else {
        errln!("{} unchanged", outcome.path.display());
    }
    Ok(())
}

/// `bale outdated`.
pub fn outdated(spec: &SpecFile, json: bool, net: &Net) -> Result<(), bale::Error> {
    let ctx = context(spec, net)?;
    let lock = ctx.locked()?;
    let report = ctx.outdated(&lock, &output::resolving);
    let (moved, failed) = (report.moved(), report.failed());
    if json {
        output::result(
            serde_json::to_value(&report).unwrap_or_default(),
            moved == 0 && failed == 0,
        );
    } else {
        for s in &report.services {
            let now = s
                .current
                .as_ref()
                .map_or_else(|| "-".to_owned(), ToString::to_string);
            match s.status {
                OutdatedStatus::Current => {
                    errln!("current  {} {} ({})", s.service, s.image, s.locked)
                }
                OutdatedStatus::Moved => errln!(
                    "MOVED    {} {}: locked {}, the tag now points to {now}",
                    s.service,
                    s.image,
                    s.locked
                ),
                OutdatedStatus::Pinned => {
                    errln!(
                        "pinned   {} {} (bundle.toml pins {})",
                        s.service,
                        s.image,
                        s.locked
                    )
                }
                OutdatedStatus::Failed => errln!(
                    "FAILED   {} {}: {}",
                    s.service,
                    s.image,
                    s.error.as_deref().unwrap_or("unknown error")
                ),
            }
        }
        if moved > 0 {
            errln!("{moved} tag(s) moved: `bale lock --update SERVICE…` takes the new content");
        }
    }
    if failed > 0 {
        Err(bale::Error::OutdatedUnknown(failed))
    } else if moved > 0 {
        Err(bale::Error::Outdated(moved))
    } else {
        Ok(())
    }
}

/// `bale fetch`.
pub fn fetch(spec: &SpecFile, blobs: Blobs, json: bool, net: &Net) -> Result<(), bale::Error> {
    let ctx = context(spec, net)?;
    let lock = ctx.lock_if_needed(blobs.locked)?;
    let (root, store) = open_store(blobs.store)?;
    let r = output::reporter(json, false);
    let summary = ctx.fetch(&lock, &store, blobs.jobs, r.as_ref());
    r.finish();
    let summary = summary?;
    if json {
        let mut v = serde_json::to_value(&summary).unwrap_or_default();
        v["event"] = "summary".into();
        v["store"] = root.display().to_string().into();
        output::result_line(v, true);
    } else {
        errln!(
            "fetch: {} blobs ({}) in {}: {} downloaded ({} transferred), {} already present",
            summary.blobs,
            human(summary.bytes),
            root.display(),
            summary.downloaded,
            human(summary.transferred),
            summary.present
        );
    }
    Ok(())
}

/// `bale build`.
pub fn build(a: BuildArgs) -> Result<(), bale::Error> {
    let key = signing_key(a.signing.sign_key.as_ref(), a.signing.unsigned)?;
    let ctx = context(&a.spec, &a.net)?;
    let default = PathBuf::from(format!("{}-{}.bale", ctx.spec.name, ctx.spec.version));
    let out = a.output.unwrap_or(default);
    // A place the bundle cannot go is said before anything is fetched.
    bale::bundle::check_output(&out)?;
    let (_, store) = open_store(a.blobs.store)?;
    let r = output::reporter(a.json.json, true);
    let report = ctx.build(
        a.blobs.locked,
        a.offline,
        &store,
        a.blobs.jobs,
        Some(&out),
        key.as_ref(),
        a.base.as_deref(),
        r.as_ref(),
    );
    r.finish();
    let report = report?;
    if a.json.json {
        output::result(serde_json::to_value(&report).unwrap_or_default(), true);
    } else {
        errln!(
            "wrote {} ({}, {} entries)\n  sha256   {}\n  manifest {}\n  {}",
            report.path.display(),
            human(report.size),
            report.entries,
            report.sha256,
            report.manifest,
            match &report.key_id {
                Some(k) => format!("signed with key {k}"),
                None => "UNSIGNED".to_owned(),
            }
        );
    }
    Ok(())
}

/// The signing key from `--sign-key` or `BALE_SIGN_KEY`, its password from
/// `BALE_SIGN_KEY_PASSWORD` or, on a terminal, a prompt.
pub(super) fn signing_key(
    path: Option<&PathBuf>,
    unsigned: bool,
) -> Result<Option<SigningKey>, bale::Error> {
    let (text, what) = match (
        path,
        std::env::var("BALE_SIGN_KEY")
            .ok()
            .filter(|k| !k.is_empty()),
    ) {
        (Some(p), _) => (
            std::fs::read_to_string(p).map_err(|source| sign::SignError::Read {
                path: p.clone(),
                source,
            })?,
            p.display().to_string(),
        ),
        (None, Some(k)) if !unsigned => (k, "BALE_SIGN_KEY".to_owned()),
        (None, _) if unsigned => return Ok(None),
        (None, _) => return Err(sign::SignError::NoKey.into()),
    };
    let mut password = std::env::var("BALE_SIGN_KEY_PASSWORD").ok();
    if password.is_none() && SigningKey::is_encrypted(&text) && std::io::stdin().is_terminal() {
        password = rpassword::prompt_password(format!("Password for {what}: ")).ok();
    }
    Ok(Some(SigningKey::from_box(
        &text,
        &what,
        password.as_deref(),
    )?))
}

/// `bale keygen`.
pub fn keygen(
    public_key: &std::path::Path,
    secret_key: &std::path::Path,
    no_password: bool,
    force: bool,
) -> Result<(), bale::Error> {
    let password = if no_password {
        None
    } else if let Ok(p) = std::env::var("BALE_SIGN_KEY_PASSWORD") {
        Some(p)
    } else if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("Password for the new secret key: ").unwrap_or_default();
        let b = rpassword::prompt_password("Password (again): ").unwrap_or_default();
        if a != b {
            return Err(sign::SignError::Keygen("passwords differ".into()).into());
        }
        Some(a)
    } else {
        return Err(sign::SignError::Keygen(
            "no password: set BALE_SIGN_KEY_PASSWORD, run on a terminal, or pass --no-password"
                .into(),
        )
        .into());
    };
    if password.as_deref() == Some("") {
        return Err(sign::SignError::Keygen(
            "empty password: pass --no-password for an unencrypted key".into(),
        )
        .into());
    }
    let keys = sign::generate(password.as_deref())?;
    sign::write_keys(&keys, public_key, secret_key, force)?;
    errln!(
        "key {}: public key {}, secret key {}{}",
        keys.key_id,
        public_key.display(),
        secret_key.display(),
        if password.is_some() {
            " (encrypted)"
        } else {
            " (NOT encrypted)"
        }
    );
    Ok(())
}

/// `bale split`.
pub fn split(a: super::args::SplitArgs) -> Result<(), bale::Error> {
    let key = signing_key(a.signing.sign_key.as_ref(), a.signing.unsigned)?;
    let size = a.size.unwrap_or(bale::bundle::split::DEFAULT_PART_SIZE);
    let report = bale::bundle::split::split(&a.bundle, size, key.as_ref())?;
    if a.json.json {
        output::result(serde_json::to_value(&report).unwrap_or_default(), true);
    } else {
        for p in &report.parts.parts {
            errln!("wrote {} ({}, {})", p.name, human(p.size), p.sha256);
        }
        errln!(
            "wrote {}{}: {} parts of {} ({}); `cat {}.??? > {}` rejoins them",
            report.list.display(),
            match &report.signature {
                Some(s) => format!(" and {}", s.display()),
                None => " (UNSIGNED)".to_owned(),
            },
            report.parts.parts.len(),
            report.parts.bundle,
            human(report.parts.size),
            report.parts.bundle,
            report.parts.bundle
        );
    }
    Ok(())
}
