//! The `bale` command: parses arguments, calls the library, prints.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use clap::{Args, Parser, Subcommand};

use bale::error::exit;
use bale::fetch::{Event, Reporter, Silent};
use bale::lock::{Change, Update};
use bale::ops::{Context, NetOptions};
use bale::sign::{self, SigningKey, VerifyingKey};
use bale::store::{self, Store};
use bale::verify::{self as verifier, VerifyOptions};

/// Turn a declared Docker Compose stack into one signed, reproducible offline bundle.
#[derive(Parser)]
#[command(name = "bale", version, about)]
struct Cli {
    /// The bundle description.
    #[arg(
        short = 'f',
        long = "file",
        global = true,
        default_value = "bundle.toml",
        value_name = "PATH"
    )]
    file: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Net {
    /// bale settings file (registry mirrors, insecure registries); read after config/bale.toml.
    #[arg(long, env = "BALE_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// Try MIRROR before REGISTRY (e.g. docker.io=mirror.internal:5000); repeatable.
    #[arg(long = "mirror", value_name = "REGISTRY=MIRROR")]
    mirrors: Vec<String>,
    /// Allow plain HTTP to HOST (loopback hosts always are); repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    insecure: Vec<String>,
}

impl Net {
    fn options(&self) -> NetOptions {
        NetOptions {
            config: self.config.clone(),
            mirrors: self.mirrors.clone(),
            insecure: self.insecure.clone(),
        }
    }
}

/// The lock and store flags of the commands that fill the store.
#[derive(Args, Clone)]
struct Blobs {
    /// Fail (exit 4) instead of updating bundle.lock when it disagrees with bundle.toml.
    #[arg(long)]
    locked: bool,
    /// Store directory.
    #[arg(long, env = "BALE_STORE", value_name = "DIR")]
    store: Option<PathBuf>,
    /// Downloads at once, for blobs the store lacks.
    #[arg(short, long, default_value_t = 4, value_name = "N")]
    jobs: usize,
}

#[derive(Subcommand)]
enum Command {
    /// Resolve every image's tag to digests and write bundle.lock.
    Lock {
        /// Re-resolve these services (all when none is named), ignoring their pins.
        #[arg(long, value_name = "SERVICE", num_args = 0..)]
        update: Option<Vec<String>>,
        /// Change nothing: fail (exit 4) if bundle.lock is missing or disagrees with bundle.toml.
        #[arg(long, conflicts_with = "update")]
        check: bool,
        #[command(flatten)]
        net: Net,
    },
    /// Download every locked blob into the store, verified.
    Fetch {
        #[command(flatten)]
        blobs: Blobs,
        /// Print events and the summary as JSON lines on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        net: Net,
    },
    /// Write the bundle: one deterministic tar with images, overlays and a signed manifest.
    Build {
        #[command(flatten)]
        blobs: Blobs,
        /// Use no network: the store (and local OCI layouts) must hold every blob; implies --locked.
        #[arg(long)]
        offline: bool,
        /// Output file [default: NAME-VERSION.bale].
        #[arg(short, long, value_name = "PATH")]
        output: Option<PathBuf>,
        /// minisign secret key file to sign with.
        #[arg(long, value_name = "PATH", conflicts_with = "unsigned")]
        sign_key: Option<PathBuf>,
        /// Build without a signature (verify then needs --allow-unsigned).
        #[arg(long)]
        unsigned: bool,
        /// Print the result as JSON on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        net: Net,
    },
    /// Write a minisign-compatible key pair for signing bundles.
    Keygen {
        /// Where to write the public key.
        #[arg(long, value_name = "PATH")]
        public_key: PathBuf,
        /// Where to write the secret key (mode 0600).
        #[arg(long, value_name = "PATH")]
        secret_key: PathBuf,
        /// Leave the secret key unencrypted (for CI secrets).
        #[arg(long)]
        no_password: bool,
        /// Overwrite existing key files.
        #[arg(long)]
        force: bool,
    },
    /// Check a bundle's signature and every entry's digest; exit 6 if anything is wrong.
    Verify {
        /// The bundle file.
        bundle: PathBuf,
        /// minisign public key file.
        #[arg(long, value_name = "PATH")]
        public_key: Option<PathBuf>,
        /// Accept a bundle without signature (digests are still checked).
        #[arg(long)]
        allow_unsigned: bool,
        /// Print the auditor's report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Verify a bundle, load its images, lay out its files and secrets, and optionally start it.
    Install {
        /// The bundle file.
        bundle: PathBuf,
        /// minisign public key the bundle must be signed with.
        #[arg(long, value_name = "PATH")]
        public_key: PathBuf,
        /// Install directory.
        #[arg(long, value_name = "DIR")]
        target: PathBuf,
        #[command(flatten)]
        runtime: RuntimeArgs,
        /// Start the stack with compose and wait for every healthcheck.
        #[arg(long)]
        up: bool,
        /// Seconds --up waits for healthchecks.
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        timeout: u64,
        /// Allow an older version, or the same version with other content (rollback).
        #[arg(long)]
        allow_downgrade: bool,
        /// Print the result as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Check that the images, containers and files on this host are exactly what was signed.
    Audit {
        /// The installed bundle, to audit against the signed original (needs --public-key).
        bundle: Option<PathBuf>,
        /// Install directory.
        #[arg(long, value_name = "DIR", default_value = ".")]
        target: PathBuf,
        /// minisign public key, to verify BUNDLE.
        #[arg(long, value_name = "PATH")]
        public_key: Option<PathBuf>,
        #[command(flatten)]
        runtime: RuntimeArgs,
        /// Print the evidence as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show a bundle's images, overlays and sizes.
    Inspect {
        /// The bundle file.
        bundle: PathBuf,
        /// Print as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Clone)]
struct RuntimeArgs {
    /// Container runtime.
    #[arg(long, default_value = "docker", value_parser = ["docker", "podman", "containerd", "none"])]
    runtime: String,
    /// containerd socket (with --runtime containerd).
    #[arg(long, value_name = "PATH")]
    containerd_address: Option<PathBuf>,
    /// containerd namespace (k8s.io for k3s and Kubernetes).
    #[arg(long, default_value = "default", value_name = "NAME")]
    namespace: String,
}

impl RuntimeArgs {
    fn runtime(&self) -> Box<dyn bale::runtime::Runtime> {
        bale::runtime::by_name(
            &self.runtime,
            self.containerd_address.as_deref(),
            &self.namespace,
        )
        .unwrap_or_else(|| Box::new(bale::runtime::NoRuntime))
    }
}

/// The signing key from `--sign-key` or `BALE_SIGN_KEY`, its password from
/// `BALE_SIGN_KEY_PASSWORD` or, on a terminal, a prompt.
fn signing_key(path: Option<&PathBuf>, unsigned: bool) -> Result<Option<SigningKey>, bale::Error> {
    let (text, what) = match (
        path,
        std::env::var("BALE_SIGN_KEY")
            .ok()
            .filter(|k| !k.is_empty()),
    ) {
        (Some(p), _) => (
            std::fs::read_to_string(p).map_err(|source| sign::SignError::Io {
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

fn open_store(dir: Option<PathBuf>) -> Result<(PathBuf, Store), bale::Error> {
    let root = dir.unwrap_or_else(store::default_root);
    let s = Store::open(&root)?;
    Ok((root, s))
}

fn reporter(json: bool) -> Box<dyn Reporter> {
    if json {
        Box::new(Silent)
    } else if std::io::stderr().is_terminal() {
        Box::new(Bars {
            total: indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {wide_msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            ),
            state: Mutex::new(()),
        })
    } else {
        Box::new(Lines)
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Plain lines on stderr, one per finished blob.
struct Lines;

impl Reporter for Lines {
    fn event(&self, event: Event) {
        let mut err = std::io::stderr().lock();
        let _ = match event {
            Event::Planned {
                blobs,
                bytes,
                present,
                ..
            } => writeln!(
                err,
                "fetch: {blobs} blobs, {}; {present} already in the store",
                human(bytes)
            ),
            Event::Finished {
                digest,
                size,
                image,
                ..
            } => {
                writeln!(err, "fetched {digest} ({}) for {image}", human(size))
            }
            _ => Ok(()),
        };
    }
}

/// JSON lines on stdout.
struct JsonLines;

impl Reporter for JsonLines {
    fn event(&self, event: Event) {
        if matches!(event, Event::Progress { .. }) {
            return;
        }
        if let Ok(line) = serde_json::to_string(&event) {
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
    }
}

/// Progress bars on a terminal.
struct Bars {
    total: indicatif::ProgressBar,
    state: Mutex<()>,
}

impl Reporter for Bars {
    fn event(&self, event: Event) {
        let _guard = self.state.lock();
        match event {
            Event::Planned {
                bytes,
                present_bytes,
                ..
            } => {
                self.total.set_length(bytes);
                self.total.set_position(present_bytes);
            }
            Event::Progress { bytes, .. } => self.total.inc(bytes),
            Event::Finished { image, .. } => self.total.set_message(image),
            Event::Started { .. } => {}
        }
    }

    fn finish(&self) {
        self.total.finish_and_clear();
    }
}

fn run(cli: Cli) -> Result<(), bale::Error> {
    match cli.command {
        Command::Lock { update, check, net } => {
            let ctx = Context::load(&cli.file, &net.options())?;
            if check {
                ctx.locked()?;
                eprintln!(
                    "{} agrees with {}",
                    ctx.lock_path().display(),
                    cli.file.display()
                );
                return Ok(());
            }
            let update = match update {
                None => Update::Missing,
                Some(v) if v.is_empty() => Update::All,
                Some(v) => Update::Services(v),
            };
            let outcome = ctx.lock(&update)?;
            for c in &outcome.changes {
                match c {
                    Change::Kept(s) => eprintln!("kept     {s}"),
                    Change::Unchanged(s) => eprintln!("checked  {s} (unchanged)"),
                    Change::Updated(s, old, new) => match old {
                        Some(o) => eprintln!("updated  {s}: {o} -> {new}"),
                        None => eprintln!("locked   {s}: {new}"),
                    },
                }
            }
            if outcome.written {
                eprintln!("wrote {}", outcome.path.display());
            } else {
                eprintln!("{} unchanged", outcome.path.display());
            }
            Ok(())
        }
        Command::Fetch {
            blobs:
                Blobs {
                    locked,
                    store,
                    jobs,
                },
            json,
            net,
        } => {
            let ctx = Context::load(&cli.file, &net.options())?;
            let lock = ctx.lock_if_needed(locked)?;
            let (root, store) = open_store(store)?;
            let summary = if json {
                ctx.fetch(&lock, &store, jobs, &JsonLines)?
            } else {
                let r = reporter(false);
                let s = ctx.fetch(&lock, &store, jobs, r.as_ref())?;
                r.finish();
                s
            };
            if json {
                let mut v = serde_json::to_value(&summary).unwrap_or_default();
                v["event"] = "summary".into();
                v["store"] = root.display().to_string().into();
                println!("{v}");
            } else {
                eprintln!(
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
        Command::Build {
            blobs:
                Blobs {
                    locked,
                    store,
                    jobs,
                },
            offline,
            output,
            sign_key,
            unsigned,
            json,
            net,
        } => {
            let key = signing_key(sign_key.as_ref(), unsigned)?;
            let ctx = Context::load(&cli.file, &net.options())?;
            let (_, store) = open_store(store)?;
            let r = reporter(json);
            let report = ctx.build(
                locked,
                offline,
                &store,
                jobs,
                output.as_deref(),
                key.as_ref(),
                r.as_ref(),
            );
            r.finish();
            let report = report?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                eprintln!(
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
        Command::Keygen {
            public_key,
            secret_key,
            no_password,
            force,
        } => {
            let password = if no_password {
                None
            } else if let Ok(p) = std::env::var("BALE_SIGN_KEY_PASSWORD") {
                Some(p)
            } else if std::io::stdin().is_terminal() {
                let a = rpassword::prompt_password("Password for the new secret key: ")
                    .unwrap_or_default();
                let b = rpassword::prompt_password("Password (again): ").unwrap_or_default();
                if a != b {
                    return Err(sign::SignError::Keygen("passwords differ".into()).into());
                }
                Some(a)
            } else {
                return Err(sign::SignError::Keygen(
                    "no password: set BALE_SIGN_KEY_PASSWORD, run on a terminal, or pass --no-password".into(),
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
            sign::write_keys(&keys, &public_key, &secret_key, force)?;
            eprintln!(
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
        Command::Verify {
            bundle,
            public_key,
            allow_unsigned,
            json,
        } => {
            let key = match &public_key {
                Some(p) => Some(VerifyingKey::from_file(p)?),
                None if allow_unsigned => None,
                None => {
                    return Err(sign::SignError::BadKey {
                        what: "--public-key".into(),
                        kind: "public",
                        reason: "required (or --allow-unsigned to check digests only)".into(),
                    }
                    .into());
                }
            };
            let report = verifier::verify(
                &bundle,
                &VerifyOptions {
                    key: key.as_ref(),
                    allow_unsigned,
                    threads: 0,
                },
            )?;
            if json {
                let mut v = serde_json::to_value(&report).unwrap_or_default();
                v["ok"] = report.ok().into();
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                for p in &report.problems {
                    eprintln!("FAIL {}: {}", p.entry, p.message);
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
        Command::Install {
            bundle,
            public_key,
            target,
            runtime,
            up,
            timeout,
            allow_downgrade,
            json,
        } => {
            let key = VerifyingKey::from_file(&public_key)?;
            let rt = runtime.runtime();
            let report = bale::install::install(
                &bundle,
                &bale::install::InstallOptions {
                    key: &key,
                    target,
                    runtime: rt.as_ref(),
                    runtime_address: runtime.containerd_address.clone(),
                    runtime_namespace: (runtime.runtime == "containerd")
                        .then(|| runtime.namespace.clone()),
                    up,
                    allow_downgrade,
                    timeout: std::time::Duration::from_secs(timeout),
                },
            )?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
                return Ok(());
            }
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "{} {} {}{} ({})",
                report.name,
                report.version,
                match report.action {
                    bale::install::Action::Installed => "installed",
                    bale::install::Action::Upgraded => "upgraded",
                    bale::install::Action::Downgraded => "downgraded",
                    bale::install::Action::Unchanged => "already installed; nothing changed",
                    bale::install::Action::Repaired => "already installed; drifted files put back",
                },
                report
                    .previous
                    .as_ref()
                    .filter(|_| report.action != bale::install::Action::Unchanged)
                    .map(|p| format!(" from {p}"))
                    .unwrap_or_default(),
                report.release.display()
            );
            for f in &report.repaired {
                let _ = writeln!(err, "  restored {:<9} {}", f.was, f.target);
            }
            for i in &report.images {
                let _ = writeln!(
                    err,
                    "  image {:<8} {} {} ({})",
                    i.status, i.name, i.config, i.service
                );
            }
            if !report.secrets_added.is_empty() {
                let _ = writeln!(
                    err,
                    "  generated secrets in .env: {}",
                    report.secrets_added.join(", ")
                );
            }
            for c in &report.services {
                let _ = writeln!(err, "  service {:<20} {} {}", c.service, c.state, c.health);
            }
            Ok(())
        }
        Command::Audit {
            bundle,
            target,
            public_key,
            runtime,
            json,
        } => {
            let key = match (&bundle, &public_key) {
                (Some(_), Some(k)) => Some(VerifyingKey::from_file(k)?),
                (Some(_), None) => {
                    return Err(sign::SignError::BadKey {
                        what: "--public-key".into(),
                        kind: "public",
                        reason: "required to audit against a bundle".into(),
                    }
                    .into());
                }
                _ => None,
            };
            let rt = runtime.runtime();
            let against = bundle.as_deref().zip(key.as_ref());
            let report = bale::audit::audit(&target, rt.as_ref(), against)?;
            if json {
                let mut v = serde_json::to_value(&report).unwrap_or_default();
                v["ok"] = report.ok().into();
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                for f in &report.findings {
                    eprintln!("FINDING {} {}: {}", f.kind, f.subject, f.message);
                }
                eprintln!(
                    "{} {} (manifest {}) in {}: {} images, {} containers, {} files checked against the {}; {} finding(s)",
                    report.name,
                    report.version,
                    report.manifest_digest,
                    report.target.display(),
                    report.images.len(),
                    report.containers.len(),
                    report.files.len(),
                    report.reference,
                    report.findings.len()
                );
            }
            if report.ok() {
                Ok(())
            } else {
                Err(bale::Error::Findings(report.findings.len()))
            }
        }
        Command::Inspect { bundle, json } => {
            let i = verifier::inspect(&bundle)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&i).unwrap_or_default());
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
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE as u8 } else { 0 });
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
