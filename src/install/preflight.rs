//! Preflight: what the host must have (`[preflight]`), checked before
//! anything changes. Each check can be overridden by name with
//! `--skip-preflight`, and the install report records that it was.

use std::path::Path;

use serde::Serialize;

use super::{InstallError, InstallOptions, OpenBundle};
use crate::runtime::Runtime;
use crate::spec::{Preflight, lenient_version};

/// The names `--skip-preflight` takes.
pub const CHECKS: &[&str] = &[
    "memory",
    "disk",
    "ports",
    "compose_version",
    "runtime_version",
];

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// `memory`, `disk`, `ports`, `compose_version` or `runtime_version`.
    pub name: String,
    /// `ok`, `failed` or `skipped` (by `--skip-preflight`).
    pub status: &'static str,
    /// What was found against what is required.
    pub message: String,
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Total memory of this host, in bytes.
fn memory_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Free bytes (for an unprivileged writer) on the file system holding
/// `path`, or its nearest existing ancestor.
pub fn disk_free(path: &Path) -> Option<u64> {
    let abs = std::path::absolute(path).ok()?;
    let mut p = abs.as_path();
    while !p.exists() {
        p = p.parent()?;
    }
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe_zeroed_statvfs();
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid,
    // writable statvfs; statvfs only writes into it.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    // The field types are narrower on 32-bit targets.
    #[allow(clippy::unnecessary_cast)]
    let free = st.f_bavail as u64 * st.f_frsize as u64;
    (rc == 0).then_some(free)
}

fn unsafe_zeroed_statvfs() -> libc::statvfs {
    // SAFETY: statvfs is a plain C struct of integers, for which all-zero
    // bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

/// Runs every declared check. `running` says whether the stack is up
/// already (its own ports are then not "taken").
pub fn run(
    spec: &Preflight,
    target: &Path,
    runtime: &dyn Runtime,
    skip: &[String],
    running: bool,
) -> Vec<Check> {
    let mut out = Vec::new();
    let mut add = |name: &str, result: Result<String, String>| {
        let skipped = skip.iter().any(|s| s == name);
        let (ok, message) = match result {
            Ok(m) => (true, m),
            Err(m) => (false, m),
        };
        out.push(Check {
            name: name.to_owned(),
            status: match (skipped, ok) {
                (true, _) => "skipped",
                (false, true) => "ok",
                (false, false) => "failed",
            },
            message,
        });
    };
    if let Some(want) = spec.memory_gib {
        add(
            "memory",
            match memory_total() {
                Some(b) if b as f64 / GIB >= want * 0.95 => {
                    Ok(format!("{:.1} GiB, {want} GiB required", b as f64 / GIB))
                }
                Some(b) => Err(format!(
                    "{:.1} GiB of memory, {want} GiB required",
                    b as f64 / GIB
                )),
                None => Err("cannot read the memory size (/proc/meminfo)".into()),
            },
        );
    }
    if let Some(want) = spec.disk_gib {
        let mut places = vec![target.to_owned()];
        places.extend(runtime.data_root());
        let mut found = Vec::new();
        let mut short = Vec::new();
        for p in &places {
            match disk_free(p) {
                Some(b) if b as f64 / GIB >= want => {
                    found.push(format!("{:.1} GiB free in {}", b as f64 / GIB, p.display()))
                }
                Some(b) => short.push(format!("{:.1} GiB free in {}", b as f64 / GIB, p.display())),
                None => short.push(format!("cannot read free space in {}", p.display())),
            }
        }
        add(
            "disk",
            if short.is_empty() {
                Ok(format!("{}; {want} GiB required", found.join(", ")))
            } else {
                Err(format!("{}; {want} GiB required", short.join(", ")))
            },
        );
    }
    if !spec.ports.is_empty() {
        let taken: Vec<String> = spec
            .ports
            .iter()
            .filter(|p| std::net::TcpListener::bind(("0.0.0.0", **p)).is_err())
            .map(u16::to_string)
            .collect();
        add(
            "ports",
            if taken.is_empty() {
                Ok(format!("{} free", spec.ports.len()))
            } else if running {
                Ok(format!(
                    "{} in use, by the running stack itself",
                    taken.join(", ")
                ))
            } else {
                Err(format!("port(s) {} in use", taken.join(", ")))
            },
        );
    }
    // The versions are asked for only where the bundle wants one: the
    // compose tool's answer waits for its probe, which otherwise runs
    // beside the image loads.
    let mut version = |name: &str,
                       want: &Option<semver::Version>,
                       have: &dyn Fn() -> Option<String>,
                       what: &str| {
        if let Some(want) = want {
            add(
                name,
                match have().as_deref().and_then(lenient_version) {
                    Some(v) if &v >= want => Ok(format!("{what} {v}, {want} required")),
                    Some(v) => Err(format!("{what} {v}, {want} or newer required")),
                    None => Err(format!("cannot tell the {what} version")),
                },
            );
        }
    };
    version(
        "compose_version",
        &spec.compose_version,
        &|| runtime.compose_version(),
        "compose",
    );
    version(
        "runtime_version",
        &spec.runtime_version,
        &|| runtime.version(),
        runtime.name(),
    );
    out
}

/// Runs the bundle's preflight; fails, before anything changes, when a
/// check that was not skipped fails.
pub(super) fn check_host(
    bundle: &OpenBundle,
    opts: &InstallOptions<'_>,
) -> Result<Vec<Check>, InstallError> {
    for s in &opts.skip_preflight {
        if !CHECKS.contains(&s.as_str()) {
            return Err(InstallError::Values(vec![format!(
                "--skip-preflight {}: no such check (one of: {})",
                crate::quote::quote(s),
                CHECKS.join(", ")
            )]));
        }
    }
    let project = bundle.images.project.clone().unwrap_or_default();
    let running = opts.runtime.runs_compose()
        && opts
            .runtime
            .containers(&project)
            .is_ok_and(|c| c.iter().any(|c| c.state == "running"));
    let checks = run(
        &bundle.spec.preflight,
        &opts.target,
        opts.runtime,
        &opts.skip_preflight,
        running,
    );
    let failed: Vec<Check> = checks
        .iter()
        .filter(|c| c.status == "failed")
        .cloned()
        .collect();
    if failed.is_empty() {
        Ok(checks)
    } else {
        Err(InstallError::Preflight(failed))
    }
}
