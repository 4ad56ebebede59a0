//! Every command and flag, defined once: `--help`, the shell completions
//! and the man page are all generated from these definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Turn a declared Docker Compose stack into one signed, reproducible offline bundle.
#[derive(Parser)]
#[command(name = "bale", version, about)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// `-f/--file`, for the commands that read bundle.toml.
#[derive(Args, Clone)]
pub struct SpecFile {
    /// The bundle description; bundle.lock is read and written beside it.
    #[arg(
        short = 'f',
        long = "file",
        default_value = "bundle.toml",
        value_name = "PATH"
    )]
    pub file: PathBuf,
}

/// How registries are reached: settings, plain-HTTP hosts.
#[derive(Args, Clone)]
pub struct Hosts {
    /// bale settings file (registry mirrors, insecure registries); read after config/bale.toml.
    #[arg(long, env = "BALE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Allow plain HTTP to HOST (loopback hosts always are); repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure: Vec<String>,
}

/// Where registries are read from: [`Hosts`] and mirrors.
#[derive(Args, Clone)]
pub struct Net {
    #[command(flatten)]
    pub hosts: Hosts,
    /// Try MIRROR before REGISTRY (e.g. docker.io=mirror.internal:5000); repeatable.
    #[arg(long = "mirror", value_name = "REGISTRY=MIRROR")]
    pub mirrors: Vec<String>,
}

/// The lock and store flags of the commands that fill the store.
#[derive(Args, Clone)]
pub struct Blobs {
    /// Fail (exit 4) instead of updating bundle.lock when it disagrees with bundle.toml.
    #[arg(long)]
    pub locked: bool,
    /// Store directory.
    #[arg(long, env = "BALE_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Downloads at once, for blobs the store lacks.
    #[arg(short, long, default_value_t = 4, value_name = "N")]
    pub jobs: usize,
}

/// `--json`, for every command that has a result to report.
#[derive(Args, Clone, Copy)]
pub struct Json {
    /// Print the result as JSON on stdout (fetch, push and serve: a line per event, then a summary); the last object always has `ok` (and `error` on failure).
    #[arg(long)]
    pub json: bool,
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// Resolve every image's tag to digests and write bundle.lock.
    Lock {
        #[command(flatten)]
        spec: SpecFile,
        /// Re-resolve these services (all when none is named), ignoring their pins.
        #[arg(long, value_name = "SERVICE", num_args = 0..)]
        update: Option<Vec<String>>,
        /// Change nothing: fail (exit 4) if bundle.lock is missing or disagrees with bundle.toml.
        #[arg(long, conflicts_with = "update")]
        check: bool,
        #[command(flatten)]
        net: Net,
    },
    /// Report each service whose tag now points elsewhere than bundle.lock says (exit 4 if any).
    Outdated {
        #[command(flatten)]
        spec: SpecFile,
        #[command(flatten)]
        json: Json,
        #[command(flatten)]
        net: Net,
    },
    /// Download every locked blob into the store, verified.
    Fetch {
        #[command(flatten)]
        spec: SpecFile,
        #[command(flatten)]
        blobs: Blobs,
        #[command(flatten)]
        json: Json,
        #[command(flatten)]
        net: Net,
    },
    /// Write the bundle: one deterministic tar with images, overlays and a signed manifest.
    Build(BuildArgs),
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
        /// minisign public key file the bundle must be signed with.
        #[arg(long, value_name = "PATH", required_unless_present = "allow_unsigned")]
        public_key: Option<PathBuf>,
        /// Check digests only: accept a bundle without signature, and without --public-key leave a signature unchecked.
        #[arg(long)]
        allow_unsigned: bool,
        /// For a delta: the base bundle, verified too, that provides what the delta does not carry.
        #[arg(long, value_name = "OLD.bale")]
        base: Option<PathBuf>,
        #[command(flatten)]
        json: Json,
    },
    /// Verify a bundle, load its images, lay out its files and secrets, and optionally start it.
    Install(InstallArgs),
    /// Check that the images, services and files on this host are exactly what was signed.
    Audit(AuditArgs),
    /// Check an audit receipt's signature and show what it says, offline.
    VerifyReceipt {
        /// The receipt (a DSSE envelope written by `bale audit --receipt`).
        file: PathBuf,
        /// The minisign public key of the site key that signed it.
        #[arg(long, value_name = "PATH")]
        public_key: PathBuf,
        #[command(flatten)]
        json: Json,
    },
    /// Go back to a release kept in the install directory, without its bundle: files and images checked first.
    Rollback(RollbackArgs),
    /// Snapshot the installed stack's data: every named volume and [data] path, one zstd archive each, under DIR/.bale/snapshots.
    Snapshot(SnapshotArgs),
    /// Put a snapshot's data back byte for byte, with the release it was taken of, and start it.
    Restore(RestoreArgs),
    /// Stop and remove the stack and its images; keep volumes, .env and snapshots unless --purge.
    Uninstall(UninstallArgs),
    /// Remove older releases, the images only they use, and older snapshots; say how many bytes were freed.
    Prune(PruneArgs),
    /// Show an install directory: the current release and since when, the releases kept, each service's state and health.
    Status(StatusArgs),
    /// Cut a bundle into parts for removable media (BUNDLE.001, …) with a signed part list; `cat` rejoins them.
    Split(SplitArgs),
    /// Verify a bundle, then push every image, all its platforms, byte for byte into an existing registry.
    Push(PushArgs),
    /// Verify a bundle, then serve its images read-only over the OCI distribution API until SIGTERM or SIGINT.
    Serve(ServeArgs),
    /// Show a bundle's images, overlays and sizes.
    Inspect {
        /// The bundle file.
        bundle: PathBuf,
        #[command(flatten)]
        json: Json,
    },
    /// Match the OS packages inside the images against an OSV database carried in, with VEX applied; offline.
    Scan(ScanArgs),
    /// Print the bundle's SPDX 2.3 SBOM (JSON), as built and signed into it.
    Sbom {
        /// The bundle file.
        bundle: PathBuf,
        /// minisign public key file the bundle must be signed with.
        #[arg(long, value_name = "PATH", required_unless_present = "allow_unsigned")]
        public_key: Option<PathBuf>,
        /// Print it without checking the signature (a warning on stderr says so).
        #[arg(long)]
        allow_unsigned: bool,
        /// The document's format: SPDX 2.3 as signed into the bundle, or CycloneDX 1.5 made from it.
        #[arg(long, value_enum, default_value = "spdx")]
        format: bale::ops::sbom::Format,
    },
    /// Print a shell completion script (source it, or install it where your shell looks).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout: `bale man > bale.1`.
    Man {
        /// The command whose page to print (`bale man lock` is bale-lock(1)); without one, bale(1).
        command: Option<String>,
        /// Write bale.1 and a page per command into this directory instead.
        #[arg(long, value_name = "DIR", conflicts_with = "command")]
        dir: Option<PathBuf>,
    },
}

/// Which container runtime, and how to reach it.
#[derive(Args, Clone)]
pub struct RuntimeArgs {
    /// Container runtime [default: the one the installed release recorded, else docker].
    #[arg(long, value_parser = ["docker", "podman", "containerd", "swarm", "none"])]
    pub runtime: Option<String>,
    /// Registry every swarm node pulls from, where the bundle was pushed or is served (with --runtime swarm).
    #[arg(long, value_name = "HOST[/PREFIX]")]
    pub registry: Option<String>,
    /// PEM CA certificate(s) bale trusts for --registry (a site's own CA).
    #[arg(long, value_name = "PATH", requires = "registry")]
    pub registry_ca: Option<PathBuf>,
    /// containerd socket (with --runtime containerd).
    #[arg(long, value_name = "PATH")]
    pub containerd_address: Option<PathBuf>,
    /// containerd namespace (k8s.io for k3s and Kubernetes) [default: default].
    #[arg(long, value_name = "NAME")]
    pub namespace: Option<String>,
}

/// The arguments of `bale install`.
#[derive(Args)]
pub struct InstallArgs {
    /// The bundle file.
    pub bundle: PathBuf,
    /// minisign public key the bundle must be signed with.
    #[arg(long, value_name = "PATH")]
    pub public_key: PathBuf,
    /// Install directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub target: PathBuf,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Start the stack with compose and wait for every healthcheck.
    #[arg(long)]
    pub up: bool,
    /// Seconds --up waits for healthchecks.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub timeout: u64,
    /// Allow an older version, or the same version with other content (rollback).
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Set site value NAME (a list comma-separated); repeatable; wins over --values.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// TOML file of site values: NAME = "value" or NAME = ["a", "b"].
    #[arg(long = "values", value_name = "FILE")]
    pub values: Option<PathBuf>,
    /// Override one preflight check (recorded in the report); repeatable.
    #[arg(long = "skip-preflight", value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(bale::install::preflight::CHECKS))]
    pub skip_preflight: Vec<String>,
    /// Verify, check values and preflight, and print the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// For a delta: the base bundle, for what the runtime and the installed base lack.
    #[arg(long, value_name = "OLD.bale")]
    pub base: Option<PathBuf>,
    /// Upgrade with --up without snapshotting the data first (and so without rolling back on its own).
    #[arg(long)]
    pub no_snapshot: bool,
    /// Leave a failed upgrade as it failed, for debugging; `bale rollback` undoes it later.
    #[arg(long)]
    pub no_rollback: bool,
    #[command(flatten)]
    pub json: Json,
}

/// The arguments of `bale build`.
#[derive(Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub spec: SpecFile,
    #[command(flatten)]
    pub blobs: Blobs,
    /// Use no network: the store (and local OCI layouts) must hold every blob; implies --locked.
    #[arg(long)]
    pub offline: bool,
    /// Output file [default: NAME-VERSION.bale].
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Build a delta against this older bundle: carry only the blobs and files it lacks.
    #[arg(long, value_name = "OLD.bale")]
    pub base: Option<PathBuf>,
    #[command(flatten)]
    pub signing: Signing,
    #[command(flatten)]
    pub json: Json,
    #[command(flatten)]
    pub net: Net,
}

/// The key a command signs with, or none on purpose.
#[derive(Args, Clone)]
pub struct Signing {
    /// minisign secret key file to sign with (or the key itself in BALE_SIGN_KEY).
    #[arg(long, value_name = "PATH", conflicts_with = "unsigned")]
    pub sign_key: Option<PathBuf>,
    /// Write no signature (verify then needs --allow-unsigned).
    #[arg(long)]
    pub unsigned: bool,
}

/// `bale split`.
#[derive(Args, Clone)]
pub struct SplitArgs {
    /// The bundle file.
    pub bundle: PathBuf,
    /// Largest part (K, M, G suffixes) [default: 4095M, under FAT32's 4 GiB file limit].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub size: Option<u64>,
    #[command(flatten)]
    pub signing: Signing,
    #[command(flatten)]
    pub json: Json,
}

/// `bale serve`.
#[derive(Args, Clone)]
pub struct ServeArgs {
    /// The bundle file.
    pub bundle: PathBuf,
    /// minisign public key the bundle must be signed with.
    #[arg(long, value_name = "PATH")]
    pub public_key: PathBuf,
    /// Address and port to listen on (port 0: any free port, printed at start).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:5000")]
    pub listen: std::net::SocketAddr,
    /// PEM certificate chain, to serve HTTPS (with --tls-key).
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Connections served at once; more wait until one closes.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_connections: usize,
    #[command(flatten)]
    pub json: Json,
}

/// `bale push`.
#[derive(Args, Clone)]
pub struct PushArgs {
    /// The bundle file.
    pub bundle: PathBuf,
    /// minisign public key the bundle must be signed with.
    #[arg(long, value_name = "PATH")]
    pub public_key: PathBuf,
    /// Target registry, with an optional repository prefix (registry.site:5000/borgstack).
    #[arg(long, value_name = "REGISTRY[/PREFIX]")]
    pub to: String,
    /// PEM CA certificate(s) to trust for the registry (a site's own CA); HTTPS is then used even for loopback hosts.
    #[arg(long, value_name = "PATH")]
    pub ca_cert: Option<PathBuf>,
    /// Bytes per upload request (K, M, G suffixes); a failed chunk is resumed, not the whole blob.
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = parse_size)]
    pub chunk_size: u64,
    #[command(flatten)]
    pub hosts: Hosts,
    #[command(flatten)]
    pub json: Json,
}

/// A size with an optional K, M, G or T suffix (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("`{s}`: the suffix must be K, M, G or T")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 8M, 4G, 1048576)"))?;
    match n.checked_mul(mult) {
        Some(0) => Err("a size must be above 0".into()),
        Some(v) => Ok(v),
        None => Err(format!("`{s}` is too large")),
    }
}

/// The arguments of `bale rollback`.
#[derive(Args)]
pub struct RollbackArgs {
    /// Install directory.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub target: PathBuf,
    /// The release to go back to, by version or id [default: the one installed most recently before the current one].
    #[arg(long, value_name = "RELEASE")]
    pub to: Option<String>,
    /// Start it with compose and wait for every healthcheck.
    #[arg(long)]
    pub up: bool,
    /// Seconds --up waits for healthchecks.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub timeout: u64,
    /// Restore the snapshot taken before the upgrade away from that release too (and start it).
    #[arg(long)]
    pub with_data: bool,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub json: Json,
}

/// The arguments of `bale snapshot`.
#[derive(Args)]
pub struct SnapshotArgs {
    /// Install directory.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub target: PathBuf,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub json: Json,
}

/// The arguments of `bale restore`.
#[derive(Args)]
pub struct RestoreArgs {
    /// The snapshot's id [default: the newest].
    pub snapshot: Option<String>,
    /// Install directory.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub target: PathBuf,
    /// Seconds to wait for healthchecks once started.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub timeout: u64,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub json: Json,
}

/// The arguments of `bale uninstall`.
#[derive(Args)]
pub struct UninstallArgs {
    /// Install directory.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub target: PathBuf,
    /// Keep the images in the runtime.
    #[arg(long)]
    pub keep_images: bool,
    /// Remove the site's data too: volumes, [data] paths, .env, values and snapshots.
    #[arg(long)]
    pub purge: bool,
    /// Do not ask before --purge (needed where stdin is no terminal).
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub json: Json,
}

/// The arguments of `bale prune`.
#[derive(Args)]
pub struct PruneArgs {
    /// Install directory.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub target: PathBuf,
    /// Releases to keep, the current one included.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep: u64,
    /// Snapshots to keep, newest first [default: as many as --keep].
    #[arg(long, value_name = "M")]
    pub keep_snapshots: Option<u64>,
    /// Say what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub json: Json,
}

/// The arguments of `bale audit`.
#[derive(Args)]
pub struct AuditArgs {
    /// The installed bundle, to audit against the signed original (needs --public-key).
    pub bundle: Option<PathBuf>,
    /// Install directory.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub target: PathBuf,
    /// minisign public key, to verify BUNDLE.
    #[arg(long, value_name = "PATH", requires = "bundle")]
    pub public_key: Option<PathBuf>,
    /// Also write the audit as a self-contained report an auditor can file: FILE.html or FILE.md.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Also scan the release's packages against this OSV database (as `bale scan --db`); repeat for several.
    #[arg(long, value_name = "PATH")]
    pub db: Vec<PathBuf>,
    /// An OpenVEX document for that scan, applied after the bundle's own.
    #[arg(long, value_name = "FILE", requires = "db")]
    pub vex: Vec<PathBuf>,
    /// Also write a signed receipt of the audit: an in-toto statement in a DSSE envelope.
    #[arg(long, value_name = "FILE")]
    pub receipt: Option<PathBuf>,
    /// The site's secret key (`bale keygen`) that signs the receipt; else the key in BALE_SIGN_KEY.
    #[arg(long, value_name = "PATH", requires = "receipt")]
    pub sign_key: Option<PathBuf>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub json: Json,
}

/// The arguments of `bale scan`.
#[derive(Args)]
pub struct ScanArgs {
    /// The bundle whose signed SBOM to scan (or --target).
    #[arg(required_unless_present = "target", conflicts_with = "target")]
    pub bundle: Option<PathBuf>,
    /// Scan the release installed in this directory instead (its SBOM as installed).
    #[arg(long, value_name = "DIR")]
    pub target: Option<PathBuf>,
    /// minisign public key the bundle must be signed with.
    #[arg(long, value_name = "PATH")]
    pub public_key: Option<PathBuf>,
    /// Scan a bundle without checking its signature (a warning says so).
    #[arg(long, conflicts_with = "public_key")]
    pub allow_unsigned: bool,
    /// OSV database: osv.dev's per-ecosystem export (Debian/all.zip, Alpine/all.zip), a directory of OSV JSON records, or one record; repeat for several.
    #[arg(long, value_name = "PATH", required = true)]
    pub db: Vec<PathBuf>,
    /// An OpenVEX document to apply after the bundle's own; repeat for several (the last statement that matches wins).
    #[arg(long, value_name = "FILE")]
    pub vex: Vec<PathBuf>,
    /// Also write the scan as a report an auditor can file: FILE.html or FILE.md.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Exit 10 when an open finding (one no VEX statement settles) is at this level or above; a finding without severity counts only for `low`.
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub fail_on: Option<bale::osv::Level>,
    #[command(flatten)]
    pub json: Json,
}

/// The arguments of `bale status`.
#[derive(Args)]
pub struct StatusArgs {
    /// Install directory.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub target: PathBuf,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub json: Json,
}
