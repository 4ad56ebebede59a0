//! The `bale` command: parses arguments, calls the library, prints.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use clap::{Args, Parser, Subcommand};

use bale::error::exit;
use bale::fetch::{Event, Reporter};
use bale::lock::{Change, Update};
use bale::ops::{Context, NetOptions};
use bale::store::{self, Store};

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
        /// Fail (exit 4) instead of updating bundle.lock when it disagrees with bundle.toml.
        #[arg(long)]
        locked: bool,
        /// Store directory.
        #[arg(long, env = "BALE_STORE", value_name = "DIR")]
        store: Option<PathBuf>,
        /// Downloads at once.
        #[arg(short, long, default_value_t = 4, value_name = "N")]
        jobs: usize,
        /// Print events and the summary as JSON lines on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        net: Net,
    },
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
            locked,
            store,
            jobs,
            json,
            net,
        } => {
            let ctx = Context::load(&cli.file, &net.options())?;
            let lock = ctx.lock_if_needed(locked)?;
            let root = store.unwrap_or_else(store::default_root);
            let store = Store::open(&root)?;
            let summary = if json {
                ctx.fetch(&lock, &store, jobs, &JsonLines)?
            } else if std::io::stderr().is_terminal() {
                let bar = indicatif::ProgressBar::new(0).with_style(
                    indicatif::ProgressStyle::with_template(
                        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {wide_msg}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                let bars = Bars {
                    total: bar,
                    state: Mutex::new(()),
                };
                let s = ctx.fetch(&lock, &store, jobs, &bars)?;
                bars.total.finish_and_clear();
                s
            } else {
                ctx.fetch(&lock, &store, jobs, &Lines)?
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
