//! The errors of install and the day-two commands, one enum folded into
//! `bale::Error` (exit codes in `crate::error`).

use std::io;
use std::path::{Path, PathBuf};

use super::preflight;
use crate::runtime::RuntimeError;
use crate::verify::OpenError;

/// Errors of install and audit.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The bundle could not be opened, or an entry read, as verified.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A file or directory operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The target holds something bale will not touch.
    #[error("{}: {message}", path.display())]
    Unsafe {
        /// The path.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Refused by policy: another bundle, or a downgrade.
    #[error("refused: {0}")]
    Refused(String),
    /// The bundle's content is unusable (verified, but not as bale builds them).
    #[error("bundle: {0}")]
    Bundle(String),
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// An image is not what was locked after loading.
    #[error("image {name} (service `{service}`): {message}")]
    Image {
        /// Service.
        service: String,
        /// Image name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// Services did not become healthy in time.
    #[error("services not healthy after {seconds} s: {}{}", services.join(", "), log.as_ref().map(|(s, l)| format!("\nthe last log lines of `{s}`:\n{l}")).unwrap_or_default())]
    Unhealthy {
        /// Seconds waited.
        seconds: u64,
        /// `service (state/health)` for each.
        services: Vec<String>,
        /// The first failing service and its last log lines, `.env`
        /// values redacted.
        log: Option<(String, String)>,
    },
    /// A kept release's files are not as its record says.
    #[error("release {release} is not as it was installed; nothing was changed:\n{}", files.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Drifted {
        /// The release.
        release: String,
        /// Each file that differs.
        files: Vec<String>,
    },
    /// Site values missing or invalid; nothing was changed.
    #[error("site values missing or invalid; nothing was changed:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Values(Vec<String>),
    /// A template of the bundle failed to render with the site's values.
    #[error("template {file}:{line}:{column}: {message}")]
    Template {
        /// The file.
        file: String,
        /// Line.
        line: usize,
        /// Column.
        column: usize,
        /// Why.
        message: String,
    },
    /// A setup job exited non-zero.
    #[error(
        "job `{job}` failed (exit {code}); its last log lines:\n{log}\nFix the cause, then run the same `bale install … --up` again: it runs the job again"
    )]
    JobFailed {
        /// The job's service.
        job: String,
        /// Its exit code.
        code: i64,
        /// Its last log lines, `.env` values redacted.
        log: String,
    },
    /// The host does not have what the bundle's `[preflight]` requires.
    #[error("preflight failed; nothing was changed:\n{}\nOverride a check with --skip-preflight NAME (recorded in the install report).", .0.iter().map(|c| format!("  - {}: {}", c.name, c.message)).collect::<Vec<_>>().join("\n"))]
    Preflight(Vec<preflight::Check>),
    /// Nothing installed in the target.
    #[error("{}: no bale installation here (no `current`)", .0.display())]
    NotInstalled(PathBuf),
    /// A snapshot's archive is not what its manifest says; nothing was
    /// restored.
    #[error("snapshot {snapshot}: archive {archive} is altered: {message}; nothing was restored")]
    Altered {
        /// The snapshot.
        snapshot: String,
        /// The archive, relative to the snapshot.
        archive: String,
        /// What differs.
        message: String,
    },
    /// An upgrade failed and was undone: the previous release runs again
    /// on the data it had.
    #[error(
        "{failure}\nThe upgrade to {to} failed and was rolled back: the site runs {from} again, on the data of snapshot {snapshot}."
    )]
    RolledBack {
        /// Why the upgrade failed.
        failure: Box<InstallError>,
        /// The version that failed.
        to: String,
        /// The version running again.
        from: String,
        /// The snapshot restored.
        snapshot: String,
    },
    /// An upgrade failed and undoing it failed too.
    #[error(
        "{failure}\nRolling back failed too: {rollback}\nRun `bale rollback --target DIR` to finish it."
    )]
    RollbackFailed {
        /// Why the upgrade failed.
        failure: Box<InstallError>,
        /// Why the rollback failed.
        rollback: Box<InstallError>,
    },
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> InstallError + '_ {
    move |source| InstallError::Io {
        path: path.to_owned(),
        source,
    }
}
