//! The BorgStack benchmark: bale against skopeo, tar, sha256sum and
//! docker save/load, on a corpus shaped like the root bundle.toml.
//!
//! `scripts/bench [--scale N]... [--runs N] [--write-doc PATH]`
//! `scripts/bench --scale N --hold`: set up scale N (registry, dockerd,
//! corpus, lock, fetch, build), write `env.sh` beside the bundle and wait
//! until the file `hold` there is removed, for measuring by hand; SIGINT,
//! SIGTERM or SIGHUP while it holds ends it, its daemons and directories
//! removed.
//!
//! It measures and reports; it asserts nothing about speed.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use common::daemons::Dockerd;
use common::{LayerSpec, Registry};
use sha2::{Digest as _, Sha256};

const BALE: &str = env!("CARGO_BIN_EXE_bale");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

struct Args {
    scales: Vec<u32>,
    runs: usize,
    write_doc: Option<PathBuf>,
    hold: bool,
}

fn args() -> Args {
    let mut a = Args {
        scales: Vec::new(),
        runs: 3,
        write_doc: None,
        hold: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--scale" => a
                .scales
                .extend(it.next().and_then(|v| v.parse::<u32>().ok())),
            "--runs" => a.runs = it.next().and_then(|v| v.parse().ok()).unwrap_or(3).max(1),
            "--write-doc" => a.write_doc = it.next().map(PathBuf::from),
            "--hold" => a.hold = true,
            _ => {} // cargo bench passes --bench
        }
    }
    if a.scales.is_empty() {
        a.scales = vec![1, 2];
    }
    a
}

// ---------------------------------------------------------------- corpus

/// Files of the machine, for layers with realistic compressibility.
struct Pool {
    files: Vec<(PathBuf, u64)>,
    next: usize,
}

impl Pool {
    fn of(roots: &[&str]) -> Pool {
        let mut files = Vec::new();
        for r in roots {
            for e in walkdir::WalkDir::new(r)
                .follow_links(false)
                .sort_by_file_name()
                .into_iter()
                .flatten()
            {
                if e.file_type().is_file()
                    && let Ok(m) = e.metadata()
                    && m.len() <= 32 << 20
                    && std::fs::File::open(e.path()).is_ok()
                {
                    files.push((e.path().to_owned(), m.len()));
                }
            }
        }
        Pool { files, next: 0 }
    }

    /// The next files adding up to at least `bytes`.
    fn take(&mut self, bytes: u64) -> Vec<(PathBuf, u64)> {
        let mut out = Vec::new();
        let mut n = 0;
        while n < bytes && self.next < self.files.len() {
            let f = self.files[self.next].clone();
            n += f.1;
            out.push(f);
            self.next += 1;
        }
        out
    }
}

struct Tee<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hex(h: Sha256) -> String {
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A gzip (or raw-zstd) layer of `files`, at their paths.
fn layer(files: &[(PathBuf, u64)], zstd: bool) -> LayerSpec {
    let tee = Tee {
        inner: Vec::new(),
        hash: Sha256::new(),
    };
    let mut b = tar::Builder::new(tee);
    for (p, _) in files {
        let Ok(f) = std::fs::File::open(p) else {
            continue;
        };
        let Ok(m) = f.metadata() else { continue };
        let mut h = tar::Header::new_gnu();
        h.set_size(m.len());
        h.set_mode(0o644);
        h.set_mtime(0);
        let name = p.strip_prefix("/").unwrap_or(p);
        let _ = b.append_data(&mut h, name, f);
    }
    let tee = b.into_inner().unwrap_or_else(|e| panic!("{e}"));
    let diff_id = format!("sha256:{}", hex(tee.hash));
    if zstd {
        LayerSpec {
            blob: common::zstd_raw(&tee.inner),
            media_type: common::OCI_LAYER_ZSTD.into(),
            diff_id,
        }
    } else {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&tee.inner).unwrap_or_else(|e| panic!("{e}"));
        LayerSpec {
            blob: e.finish().unwrap_or_else(|e| panic!("{e}")),
            media_type: common::OCI_LAYER_GZIP.into(),
            diff_id,
        }
    }
}

/// The bytes of tar a layer unpacks to: what the runtime writes and hashes
/// when it loads it (gzip's trailer gives it modulo 2^32, ample for these
/// layers; a zstd layer is decompressed to count).
fn tar_bytes(l: &LayerSpec) -> u64 {
    if l.blob.starts_with(&[0x1f, 0x8b]) && l.blob.len() >= 4 {
        let t = &l.blob[l.blob.len() - 4..];
        u64::from(u32::from_le_bytes([t[0], t[1], t[2], t[3]]))
    } else {
        zstd::stream::decode_all(&l.blob[..]).map_or(0, |v| v.len() as u64)
    }
}

fn clone_layer(l: &LayerSpec) -> LayerSpec {
    LayerSpec {
        blob: l.blob.clone(),
        media_type: l.media_type.clone(),
        diff_id: l.diff_id.clone(),
    }
}

struct Corpus {
    /// (repository, tag)
    images: Vec<(String, String)>,
    compressed: u64,
    unique_compressed: u64,
    /// The tar the unique layers unpack to.
    unique_tar: u64,
    /// For the upgrade scenario: a repository and the tag of its next
    /// release, whose top layer alone differs; and that layer's size, as
    /// a blob and as the tar it unpacks to.
    next: (String, String, u64, u64),
}

/// Fills `reg` with the root bundle's repositories, BorgStack-shaped.
fn generate(reg: &Registry, scale: u32) -> Corpus {
    let spec = bale::spec::BundleSpec::load(&Path::new(ROOT).join("bundle.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut repos: Vec<(String, String)> = spec
        .images
        .iter()
        .map(|i| {
            (
                i.source.reference().path.clone(),
                i.source.reference().tag.clone(),
            )
        })
        .collect();
    repos.sort();
    repos.dedup();

    let mut libs = Pool::of(&["/usr/lib/x86_64-linux-gnu"]);
    let mut python = Pool::of(&["/usr/lib/python3", "/usr/lib/python3.11"]);
    let mut rest = Pool::of(&[
        "/usr/share/doc",
        "/usr/share/locale",
        "/usr/lib/gcc",
        "/usr/lib/jvm",
        "/root/.rustup/toolchains",
    ]);
    rest.files.extend(libs.files.iter().cloned());
    eprintln!(
        "bench: building layers from {} files of this machine",
        rest.files.len() + python.files.len()
    );
    let base1 = layer(&libs.take(150 << 20), false);
    rest.next = 0;
    // The remainder pool must not repeat base1's files.
    let used: std::collections::BTreeSet<PathBuf> = libs.files[..libs.next]
        .iter()
        .map(|f| f.0.clone())
        .collect();
    rest.files.retain(|f| !used.contains(&f.0));
    let base2 = layer(&python.take(110 << 20), false);
    let unique = 135u64 << 20;
    let mut next_image = (String::new(), String::new(), 0u64, 0u64);
    let mut total = base1.blob.len() as u64 + base2.blob.len() as u64;
    let mut uniq_total = total;
    let mut uniq_tar = tar_bytes(&base1) + tar_bytes(&base2);
    let platform = |os: &str, arch: &str, v: Option<&str>| match v {
        Some(v) => format!("{{\"os\":\"{os}\",\"architecture\":\"{arch}\",\"variant\":\"{v}\"}}"),
        None => format!("{{\"os\":\"{os}\",\"architecture\":\"{arch}\"}}"),
    };
    for (i, (repo, tag)) in repos.iter().enumerate() {
        let mut layers = Vec::new();
        if !repo.contains("seaweedfs") {
            layers.push(clone_layer(&base1));
        }
        if i % 2 == 0 {
            layers.push(clone_layer(&base2));
        }
        if repo.ends_with("/redis") {
            for _ in 0..30 {
                layers.push(layer(&rest.take(200 << 10), false));
            }
            layers.push(layer(&rest.take(unique * scale as u64 / 2), false));
        } else if repo.contains("seaweedfs") {
            layers.push(layer(&rest.take(unique * scale as u64), false));
            layers.push(layer(&rest.take(20 << 20), true));
        } else {
            layers.push(layer(&rest.take(unique * scale as u64), false));
        }
        for l in &layers {
            if l.diff_id != base1.diff_id && l.diff_id != base2.diff_id {
                uniq_total += l.blob.len() as u64;
                uniq_tar += tar_bytes(l);
            }
            total += l.blob.len() as u64;
        }
        let docker = repo.ends_with("/mongo");
        if repo.contains("pgvector") || docker {
            let amd = reg.push_image(repo, None, "linux", "amd64", None, &layers, docker);
            let arm_layer = layer(&rest.take(1 << 20), false);
            let arm = reg.push_image(
                repo,
                None,
                "linux",
                "arm64",
                Some("v8"),
                &[arm_layer],
                docker,
            );
            let mut entries = vec![
                (amd.clone(), platform("linux", "amd64", None), None),
                (arm.clone(), platform("linux", "arm64", Some("v8")), None),
            ];
            if !docker {
                for target in [&amd, &arm] {
                    let att_layer = LayerSpec {
                        blob: format!("{{\"_type\":\"https://in-toto.io/Statement/v0.1\",\"subject\":\"{}\"}}", target.manifest).into_bytes(),
                        media_type: "application/vnd.in-toto+json".into(),
                        diff_id: String::new(),
                    };
                    let att =
                        reg.push_image(repo, None, "unknown", "unknown", None, &[att_layer], false);
                    let ann = format!(
                        "{{\"vnd.docker.reference.digest\":\"{}\",\"vnd.docker.reference.type\":\"attestation-manifest\"}}",
                        target.manifest
                    );
                    entries.push((att, platform("unknown", "unknown", None), Some(ann)));
                }
            }
            reg.push_index(repo, tag, &entries, docker);
        } else {
            reg.push_image(repo, Some(tag), "linux", "amd64", None, &layers, false);
            // The upgrade scenario: n8n's next release, a new top layer on
            // the same base.
            if repo.ends_with("/n8n") {
                let mut next = layers.iter().map(clone_layer).collect::<Vec<_>>();
                next.pop();
                let top = layer(&rest.take(unique * scale as u64), false);
                let top_size = top.blob.len() as u64;
                let top_tar = tar_bytes(&top);
                next.push(top);
                let next_tag = format!("{tag}-next");
                reg.push_image(repo, Some(&next_tag), "linux", "amd64", None, &next, false);
                next_image = (repo.clone(), next_tag, top_size, top_tar);
            }
        }
        eprintln!("bench: pushed {repo}:{tag} ({} layers)", layers.len());
    }
    Corpus {
        images: repos,
        compressed: total,
        unique_compressed: uniq_total,
        unique_tar: uniq_tar,
        next: next_image,
    }
}

// ---------------------------------------------------------------- timing

#[derive(Clone, Copy, Debug)]
struct Sample {
    wall: f64,
    rss_kb: u64,
    /// CPU seconds (user + system) of the command, or of the daemon
    /// measured beside it (see the callers).
    cpu: f64,
    /// CPU seconds of the command itself and the programs it starts.
    own_cpu: f64,
    /// CPU seconds the whole machine was busy during the run, kernel
    /// threads (writeback, reclaim) included; NaN where not measured.
    machine: f64,
    /// Core-seconds of the run in which a core had nothing to run while
    /// some task waited on the disk (iowait: a daemon's fsync, reads); NaN
    /// where not measured.
    iowait: f64,
    /// The wall time of the fastest and of the slowest of the runs a
    /// median was taken of (`wall` itself for a single run).
    fastest: f64,
    slowest: f64,
}

impl Sample {
    /// One run: the machine's figures not measured, its own wall time its
    /// fastest and slowest.
    fn one(wall: f64, rss_kb: u64, cpu: f64, own_cpu: f64) -> Sample {
        Sample {
            wall,
            rss_kb,
            cpu,
            own_cpu,
            machine: f64::NAN,
            iowait: f64::NAN,
            fastest: wall,
            slowest: wall,
        }
    }
}

/// Runs `script` with `sh -c` under GNU time; panics with its output on failure.
fn timed(script: &str, cwd: &Path, env: &[(&str, String)]) -> Sample {
    let out_file = cwd.join(".time");
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%e %M %U %S", "-o"])
        .arg(&out_file)
        .args(["sh", "-c", script])
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "`{script}` failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = std::fs::read_to_string(&out_file).unwrap_or_default();
    let last = t.lines().last().unwrap_or_default();
    let mut it = last.split_whitespace();
    let wall = it.next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
    let rss_kb = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let cpu = it.filter_map(|v| v.parse::<f64>().ok()).sum();
    Sample::one(wall, rss_kb, cpu, cpu)
}

fn sh(script: &str, cwd: &Path, env: &[(&str, String)]) -> String {
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "`{script}` failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs bale directly, timing it and polling its own peak RSS (VmHWM), so
/// that programs it starts (the docker CLI) do not count.
fn timed_bale(args: &[&str], cwd: &Path, env: &[(&str, String)]) -> Sample {
    let children_before = children_cpu();
    let start = std::time::Instant::now();
    let mut child = Command::new(BALE)
        .args(args)
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    // The wall time is taken when a blocking wait returns, not at the next
    // poll: polling every 5 ms added 2.5 ms on average to each run, over
    // 1 % of a verify. The peak RSS is polled meanwhile on a thread.
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut hwm = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                hwm = hwm.max(peak_rss_kb(pid));
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            hwm
        })
    };
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    let wall = start.elapsed().as_secs_f64();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let hwm = poller.join().unwrap_or(0);
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read as _;
            let _ = e.read_to_string(&mut err);
        }
        panic!("bale {} failed:\n{err}", args.join(" "));
    }
    // bale is the only child the bench waits for meanwhile; its own
    // waited-for children (the docker CLI) count in its figures.
    Sample::one(wall, hwm, f64::NAN, children_cpu() - children_before)
}

/// Process `pid`'s peak RSS so far (VmHWM), in kB; 0 once it is gone.
fn peak_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds of the bench's children that have been waited for
/// (cutime, cstime of /proc/self/stat).
fn children_cpu() -> f64 {
    stat_seconds("/proc/self/stat", 13, 2)
}

/// CPU seconds a process and its waited-for children have spent
/// (utime, stime, cutime, cstime of /proc/PID/stat).
fn cpu_of(pid: u32) -> f64 {
    stat_seconds(&format!("/proc/{pid}/stat"), 11, 4)
}

/// The sum, in seconds, of `take` clock-tick fields of a /proc stat file
/// from the `skip`-th after the command name (which is in parentheses).
fn stat_seconds(path: &str, skip: usize, take: usize) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let ticks: f64 = rest
        .split_whitespace()
        .skip(skip)
        .take(take)
        .filter_map(|v| v.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

/// `run`, with the CPU `pid` spent during it in place of the run's own.
fn with_cpu_of(pid: u32, run: impl FnOnce() -> Sample) -> Sample {
    let before = cpu_of(pid);
    let (busy, iowait) = machine_busy();
    let mut s = run();
    s.cpu = cpu_of(pid) - before;
    let (busy_after, iowait_after) = machine_busy();
    s.machine = busy_after - busy;
    s.iowait = iowait_after - iowait;
    s
}

/// CPU seconds the machine has been busy, all cores and all processes
/// (the first line of /proc/stat less idle and iowait), and its iowait
/// seconds.
fn machine_busy() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    if ticks.len() < 8 {
        return (f64::NAN, f64::NAN);
    }
    // user nice system idle iowait irq softirq steal
    (
        (ticks.iter().sum::<f64>() - ticks[3] - ticks[4]) / 100.0,
        ticks[4] / 100.0,
    )
}

/// Reads every file at or under `paths` once, so that a step's first run
/// finds its input in the page cache as its later runs do. This machine
/// runs DAMON with a pageout scheme (memory not touched for a minute goes
/// to the disk, up to 128 MiB a second): an input left alone while other
/// steps ran could be partly on the disk when a step's first run read it.
/// Bounded: one 1 MiB buffer, each file read to its end once.
fn warm(paths: &[&Path]) {
    use std::io::Read as _;
    fn walk(p: &Path, buf: &mut [u8]) {
        let Ok(meta) = std::fs::symlink_metadata(p) else {
            return;
        };
        if meta.is_dir() {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                walk(&e.path(), buf);
            }
        } else if meta.is_file() {
            let Ok(mut f) = std::fs::File::open(p) else {
                return;
            };
            while matches!(f.read(buf), Ok(n) if n > 0) {}
        }
    }
    let mut buf = vec![0u8; 1 << 20];
    for p in paths {
        walk(p, &mut buf);
    }
}

/// How the bench's own reader gets at the bytes it hashes.
#[derive(Clone, Copy, PartialEq)]
enum Reader {
    /// In place, through the mappings `bale verify` hashes from
    /// (`bale::bundle::mapped`), one stream per core.
    Mapped,
    /// 1 MiB positioned reads into a buffer, each byte copied out of the
    /// page cache first (what `bale verify` did before part 15's nineteenth
    /// session's change, and what every `read`-based tool does).
    Copied,
}

/// The fastest `path` can be hashed: its halves (one per core) read as
/// `how` says and hashed with SHA-256, nothing checked; the median of
/// `runs`, in bytes per second.
fn read_and_hash_floor(path: &Path, runs: usize, how: Reader) -> f64 {
    use std::os::unix::fs::FileExt as _;
    let Ok(file) = std::fs::File::open(path) else {
        return f64::NAN;
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let mut rates = Vec::new();
    for _ in 0..runs {
        let start = std::time::Instant::now();
        let ok = std::thread::scope(|s| {
            let parts: Vec<_> = (0..cores)
                .map(|i| {
                    let (a, b) = (len * i / cores, len * (i + 1) / cores);
                    let file = &file;
                    s.spawn(move || {
                        if how == Reader::Mapped {
                            return bale::bundle::mapped::sha256(file, a, b - a)
                                .map(|d| std::hint::black_box(d).to_string())
                                .is_ok();
                        }
                        let mut buf = vec![0u8; 1 << 20];
                        let mut h = Sha256::new();
                        let mut pos = a;
                        while pos < b {
                            let n = ((b - pos) as usize).min(buf.len());
                            if file.read_exact_at(&mut buf[..n], pos).is_err() {
                                return false;
                            }
                            h.update(&buf[..n]);
                            pos += n as u64;
                        }
                        std::hint::black_box(h.finalize());
                        true
                    })
                })
                .collect();
            parts.into_iter().all(|p| p.join().unwrap_or(false))
        });
        if !ok {
            return f64::NAN;
        }
        rates.push(len as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn measure_bale(
    runs: usize,
    setup: impl FnMut(),
    args: &[&str],
    cwd: &Path,
    env: &[(&str, String)],
) -> Sample {
    repeat(runs, setup, || timed_bale(args, cwd, env))
}

/// The median of `runs` runs of `run`, each after `setup` and a `sync`.
fn repeat(runs: usize, mut setup: impl FnMut(), mut run: impl FnMut() -> Sample) -> Sample {
    let mut v = Vec::new();
    for _ in 0..runs {
        setup();
        // Start each run with no dirty pages from the one before.
        let _ = Command::new("sync").status();
        v.push(run());
    }
    median(v)
}

/// The medians of `runs` runs of `a` and of `b`, in ABBA order: each run
/// starts after a `sync` of the one before.
fn alternate(
    runs: usize,
    mut a: impl FnMut() -> Sample,
    mut b: impl FnMut() -> Sample,
) -> (Sample, Sample) {
    let (mut va, mut vb) = (Vec::new(), Vec::new());
    for i in 0..runs {
        for first in [i % 2 == 0, i % 2 != 0] {
            let _ = Command::new("sync").status();
            if first {
                va.push(a());
            } else {
                vb.push(b());
            }
        }
    }
    (median(va), median(vb))
}

fn median(mut v: Vec<Sample>) -> Sample {
    v.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    let mid = v[v.len() / 2];
    let rss = v.iter().map(|s| s.rss_kb).max().unwrap_or(0);
    Sample {
        wall: mid.wall,
        rss_kb: rss,
        cpu: mid.cpu,
        own_cpu: mid.own_cpu,
        machine: mid.machine,
        iowait: mid.iowait,
        fastest: v.first().map_or(mid.wall, |s| s.wall),
        slowest: v.last().map_or(mid.wall, |s| s.wall),
    }
}

fn measure(
    runs: usize,
    setup: impl FnMut(),
    script: &str,
    cwd: &Path,
    env: &[(&str, String)],
) -> Sample {
    repeat(runs, setup, || timed(script, cwd, env))
}

// ---------------------------------------------------------------- run

struct Results {
    scale: u32,
    corpus: Corpus,
    bundle_bytes: u64,
    fetch: Sample,
    skopeo: Sample,
    build: Sample,
    tar: Sample,
    /// openssl's SHA-256 bytes per second on one core, the median of the
    /// measurements taken beside the `tar -cf` runs.
    pack_sha: f64,
    /// `tar -cf`, then its file fsynced.
    tar_synced: Sample,
    save: Sample,
    verify: Sample,
    /// openssl's SHA-256 bytes per second on one core, the median of the
    /// measurements taken before each verify run.
    verify_sha: f64,
    /// Bytes per second of [`read_and_hash_floor`] over the bundle, hashed
    /// in place, one stream per core.
    verify_floor: f64,
    /// The same, each byte copied out of the page cache first.
    copied_floor: f64,
    sha256sum: Sample,
    install: Sample,
    load: Sample,
    served_copy: Sample,
    served_rss_kb: u64,
    push: Sample,
    skopeo_push: Sample,
    /// Every blob, from memory, uploaded by a sender that checks nothing.
    plain_push: Sample,
    upgrade: Option<Upgrade>,
}

/// The upgrade scenario: one image of twelve changes its top layer.
struct Upgrade {
    top_layer: u64,
    /// The tar the changed layer unpacks to.
    top_tar: u64,
    full_bytes: u64,
    delta_bytes: u64,
    install: Sample,
}

/// A running `bale serve --json` of `bundle`, its address read from the
/// first line; its own peak RSS (VmHWM) read before it is stopped.
struct Serving {
    child: std::process::Child,
    addr: String,
}

impl Serving {
    fn start(proj: &Path, bundle: &str) -> Serving {
        use std::io::BufRead as _;
        let mut child = Command::new(BALE)
            .args([
                "serve",
                bundle,
                "--public-key",
                "k.pub",
                "--listen",
                "127.0.0.1:0",
                "--json",
            ])
            .current_dir(proj)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let mut r = std::io::BufReader::new(out);
            let _ = r.read_line(&mut line);
            // Drain the request log so that serve never blocks on stdout.
            std::thread::spawn(move || {
                let mut sink = String::new();
                while r.read_line(&mut sink).is_ok_and(|n| n > 0) {
                    sink.clear();
                }
            });
        }
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        let addr = v["addr"]
            .as_str()
            .unwrap_or_else(|| panic!("bale serve: {line}"))
            .to_owned();
        Serving { child, addr }
    }

    fn peak_rss_kb(&self) -> u64 {
        peak_rss_kb(self.child.id())
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// `skopeo copy` of every image from `host` into an OCI layout at `layout`.
fn copy_all(images: &[(String, String)], host: &str, layout: &Path) -> String {
    images
        .iter()
        .map(|(r, t)| {
            format!(
                "skopeo copy -q --src-tls-verify=false docker://{host}/{r}:{t} 'oci:{}:{r}:{t}'",
                layout.display()
            )
        })
        .collect::<Vec<_>>()
        .join(" && ")
}

/// The registry-side rows: skopeo reading from `bale serve` (against the
/// docker-registry the corpus is in), eight clients at once for serve's
/// memory, and `bale push` against skopeo copying each image into an
/// empty registry.
fn distribution_rows(
    runs: usize,
    corpus: &Corpus,
    reg: &Registry,
    proj: &Path,
    env: &[(&str, String)],
) -> (Sample, u64, Sample, Sample, Sample) {
    let serving = Serving::start(proj, "borgstack.bale");
    let layout = proj.join("served-layout");
    let served_copy = measure(
        runs,
        || {
            let _ = std::fs::remove_dir_all(&layout);
            warm(&[&proj.join("borgstack.bale")]);
        },
        &copy_all(&corpus.images, &serving.addr, &layout),
        proj,
        env,
    );
    let parallel: Vec<String> = (0..8)
        .map(|i| {
            format!(
                "( {} ) &",
                copy_all(
                    &corpus.images,
                    &serving.addr,
                    &proj.join(format!("par-{i}"))
                )
            )
        })
        .collect();
    sh(&format!("{} wait", parallel.join(" ")), proj, env);
    let served_rss_kb = serving.peak_rss_kb();
    drop(serving);
    for i in 0..8 {
        let _ = std::fs::remove_dir_all(proj.join(format!("par-{i}")));
    }
    let _ = std::fs::remove_dir_all(&layout);
    let mut push = Vec::new();
    let mut skopeo_push = Vec::new();
    let mut plain_push = Vec::new();
    let blobs = store_blobs(&proj.join("store"));
    for _ in 0..runs {
        let dest = Registry::start();
        warm(&[&proj.join("borgstack.bale")]);
        let _ = Command::new("sync").status();
        // The CPU recorded is the receiving registry's.
        push.push(with_cpu_of(dest.pid(), || {
            timed_bale(
                &[
                    "push",
                    "borgstack.bale",
                    "--public-key",
                    "k.pub",
                    "--to",
                    &dest.host,
                ],
                proj,
                env,
            )
        }));
        drop(dest);
        let dest = Registry::start();
        let _ = Command::new("sync").status();
        plain_push.push(with_cpu_of(dest.pid(), || plain_upload(&blobs, &dest.host)));
        drop(dest);
        let dest = Registry::start();
        warm(&[&reg.data_dir()]);
        let _ = Command::new("sync").status();
        let copies: Vec<String> = corpus
            .images
            .iter()
            .map(|(r, t)| {
                format!(
                    "skopeo copy -q --src-tls-verify=false --dest-tls-verify=false docker://{}/{r}:{t} docker://{}/{r}:{t}",
                    reg.host, dest.host
                )
            })
            .collect();
        skopeo_push.push(with_cpu_of(dest.pid(), || {
            timed(&copies.join(" && "), proj, env)
        }));
    }
    (
        served_copy,
        served_rss_kb,
        median(push),
        median(skopeo_push),
        median(plain_push),
    )
}

/// Every blob of the store, read into memory: (hex digest, bytes),
/// largest first.
fn store_blobs(store: &Path) -> Vec<(String, Vec<u8>)> {
    let dir = store.join("blobs/sha256");
    let mut blobs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            (name.len() == 64).then(|| {
                let bytes = std::fs::read(e.path())
                    .unwrap_or_else(|err| panic!("{}: {err}", e.path().display()));
                (name, bytes)
            })
        })
        .collect();
    blobs.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    blobs
}

/// The receiving registry's own pace: every blob, already in memory,
/// uploaded once (POST, then one PUT with the body), largest first, eight
/// at a time, into one repository; nothing verified, no mounts, no
/// manifests. The sender's CPU is little beyond the kernel's copy into
/// the socket, so what is timed is the registry taking the bytes.
fn plain_upload(blobs: &[(String, Vec<u8>)], host: &str) -> Sample {
    use std::sync::atomic::AtomicUsize;
    let next = AtomicUsize::new(0);
    let cpu_before = own_cpu();
    let t0 = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                while let Some((hex, bytes)) = blobs.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let started = agent
                        .post(&format!("http://{host}/v2/bench/plain/blobs/uploads/"))
                        .header("content-length", 0)
                        .send(&[][..])
                        .unwrap_or_else(|e| panic!("POST: {e}"));
                    let location = started
                        .headers()
                        .get("location")
                        .and_then(|l| l.to_str().ok())
                        .unwrap_or_else(|| {
                            panic!("POST answered {} without a location", started.status())
                        })
                        .to_owned();
                    let url = if location.starts_with("http") {
                        location
                    } else {
                        format!("http://{host}{location}")
                    };
                    let sep = if url.contains('?') { '&' } else { '?' };
                    let done = agent
                        .put(&format!("{url}{sep}digest=sha256:{hex}"))
                        .header("content-type", "application/octet-stream")
                        .send(&bytes[..])
                        .unwrap_or_else(|e| panic!("PUT: {e}"));
                    assert_eq!(done.status(), 201, "upload of {hex}");
                }
            });
        }
    });
    let wall = t0.elapsed().as_secs_f64();
    let cpu = own_cpu() - cpu_before;
    Sample::one(wall, 0, cpu, cpu)
}

/// CPU seconds (user + system) this process has spent so far.
fn own_cpu() -> f64 {
    stat_seconds("/proc/self/stat", 11, 2)
}

fn run_scale(scale: u32, runs: usize, docker: &Dockerd, work: &Path, hold: bool) -> Results {
    let reg = Registry::start();
    let corpus = generate(&reg, scale);
    let proj = work.join(format!("scale-{scale}"));
    let _ = std::fs::remove_dir_all(&proj);
    std::fs::create_dir_all(proj.join("config")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(
        Path::new(ROOT).join("bundle.toml"),
        proj.join("bundle.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    common::copy_dir(&Path::new(ROOT).join("overlays"), &proj.join("overlays"));
    std::fs::copy(
        Path::new(ROOT).join("site.example.toml"),
        proj.join("site.example.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        proj.join("config/bale.toml"),
        format!(
            "[registries.\"docker.io\"]\nmirrors = [\"{}\"]\nupstream = false\n",
            reg.host
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let store = proj.join("store");
    let env = vec![
        ("BALE_STORE", store.display().to_string()),
        ("DOCKER_HOST", docker.host.clone()),
    ];
    sh(
        &format!(
            "'{BALE}' lock && '{BALE}' keygen --public-key k.pub --secret-key k.sec --no-password"
        ),
        &proj,
        &env,
    );

    // pull
    let fetch = measure_bale(
        runs,
        || {
            let _ = std::fs::remove_dir_all(&store);
            warm(&[&reg.data_dir()]);
        },
        &["fetch", "--locked"],
        &proj,
        &env,
    );
    let layout = proj.join("skopeo-layout");
    let copies: Vec<String> = corpus
        .images
        .iter()
        .map(|(r, t)| {
            format!(
                "skopeo copy -q --src-tls-verify=false docker://{}/{r}:{t} 'oci:{}:{r}:{t}'",
                reg.host,
                layout.display()
            )
        })
        .collect();
    let skopeo = measure(
        runs,
        || {
            let _ = std::fs::remove_dir_all(&layout);
            warm(&[&reg.data_dir()]);
        },
        &copies.join(" && "),
        &proj,
        &env,
    );

    // pack, from the warm store, in turns with `tar -cf` of the same blobs
    // (bale, tar, tar, bale, ...): the page cache's writeback weighs on both
    // alike. Each run starts with its own output removed and synced away.
    let bundle = proj.join("borgstack.bale");
    let blobs_tar = proj.join("blobs.tar");
    let removed = |p: &Path| {
        let _ = std::fs::remove_file(p);
        let _ = Command::new("sync").status();
    };
    let mut pack_sha = Vec::new();
    let mut tar_synced = Vec::new();
    let (build, tar) = alternate(
        runs,
        || {
            removed(&bundle);
            warm(&[&store]);
            timed_bale(
                &[
                    "build",
                    "--offline",
                    "--sign-key",
                    "k.sec",
                    "-o",
                    "borgstack.bale",
                ],
                &proj,
                &env,
            )
        },
        || {
            removed(&blobs_tar);
            warm(&[&store]);
            let t = timed("tar -cf blobs.tar -C store blobs", &proj, &env);
            // A build makes its file durable before it names it; tar does
            // not. Timed apart, so that the goal's row stays tar's alone.
            let mut durable = t;
            let synced = timed("sync blobs.tar", &proj, &env);
            durable.wall += synced.wall;
            durable.cpu += synced.cpu;
            tar_synced.push(durable);
            // The floor's SHA-256 speed is taken in the same minutes as
            // tar's CPU, so that a slow stretch of the machine weighs on
            // both terms of the floor, not on tar's alone.
            pack_sha.push(openssl_per_core(1));
            t
        },
    );
    let tar_synced = median(tar_synced);
    pack_sha.sort_by(f64::total_cmp);
    let pack_sha = pack_sha
        .get(pack_sha.len() / 2)
        .copied()
        .unwrap_or(f64::NAN);
    if hold {
        hold_here(&proj, &reg, &corpus, &env);
    }
    let names: Vec<String> = {
        let lock: toml::Value =
            toml::from_str(&std::fs::read_to_string(proj.join("bundle.lock")).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"));
        let mut n: Vec<String> = lock["image"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["name"].as_str().map(str::to_owned))
            .collect();
        n.sort();
        n.dedup();
        n
    };
    let clean_docker = || {
        let _ = Command::new("sh").args(["-c", "ids=$(docker images -aq); [ -z \"$ids\" ] || docker rmi -f $ids >/dev/null; docker image prune -af >/dev/null"]).env("DOCKER_HOST", &docker.host).status();
    };
    clean_docker();
    // `docker load -i` of the bundle itself would do, but Docker 20.10 cannot
    // read the zstd layer; bale install decompresses it.
    sh(
        &format!(
            "'{BALE}' install borgstack.bale --public-key k.pub --target prep --runtime docker --values site.example.toml --skip-preflight disk --skip-preflight memory"
        ),
        &proj,
        &env,
    );
    let save = measure(
        runs,
        || {
            let _ = std::fs::remove_file(proj.join("save.tar"));
        },
        &format!("docker save -o save.tar {}", names.join(" ")),
        &proj,
        &env,
    );

    // verify
    // The limit (openssl's speed) and the bench's own readers are taken
    // before each run, in the same minutes as it: the machine's speed
    // drifts over a bench, and a limit measured at its start compared a
    // quiet machine with a busy one.
    let (mut verify_sha, mut mapped, mut copied) = (Vec::new(), Vec::new(), Vec::new());
    let verify = measure_bale(
        runs,
        || {
            verify_sha.push(openssl_per_core(1));
            warm(&[&bundle]);
            mapped.push(read_and_hash_floor(&bundle, 1, Reader::Mapped));
            copied.push(read_and_hash_floor(&bundle, 1, Reader::Copied));
        },
        &["verify", "borgstack.bale", "--public-key", "k.pub"],
        &proj,
        &env,
    );
    let mid = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let (verify_sha, verify_floor, copied_floor) = (mid(verify_sha), mid(mapped), mid(copied));
    let sha256sum = measure(
        runs,
        || warm(&[&store]),
        "find store/blobs -type f -print0 | xargs -0 sha256sum >/dev/null",
        &proj,
        &env,
    );

    // install
    let dpid = docker.pid();
    let install_args = [
        "install",
        "borgstack.bale",
        "--public-key",
        "k.pub",
        "--target",
        "target",
        "--runtime",
        "docker",
        "--values",
        "site.example.toml",
        "--skip-preflight",
        "disk",
        "--skip-preflight",
        "memory",
    ];
    // Removing the last run's images deletes 2 GB of files or more: synced
    // after the removal, so that no run commits the removal's journal (or
    // writes back what the run before left) inside its own time, as
    // `alternate`'s sync alone, taken before the removal, let it.
    let synced = || {
        let _ = Command::new("sync").status();
    };
    // The CPU recorded for both is dockerd's and its children's (unpigz,
    // the unpacking processes): the work the load costs the daemon.
    // Taken in turns (bale, peer, peer, bale, ...), so that a machine
    // getting busier or quieter over the minutes weighs on both alike.
    let (install, load) = alternate(
        runs,
        || {
            clean_docker();
            let _ = std::fs::remove_dir_all(proj.join("target"));
            warm(&[&bundle]);
            synced();
            with_cpu_of(dpid, || timed_bale(&install_args, &proj, &env))
        },
        || {
            clean_docker();
            warm(&[&proj.join("save.tar")]);
            synced();
            with_cpu_of(dpid, || {
                timed("docker load -q -i save.tar >/dev/null", &proj, &env)
            })
        },
    );
    clean_docker();

    let (served_copy, served_rss_kb, push, skopeo_push, plain_push) =
        distribution_rows(runs, &corpus, &reg, &proj, &env);
    let upgrade = (scale == 1).then(|| upgrade_rows(runs, &corpus, &proj, &env, &clean_docker));

    let bundle_bytes = std::fs::metadata(&bundle).map(|m| m.len()).unwrap_or(0);
    for f in ["save.tar", "blobs.tar"] {
        let _ = std::fs::remove_file(proj.join(f));
    }
    let _ = std::fs::remove_dir_all(&layout);
    Results {
        scale,
        corpus,
        bundle_bytes,
        fetch,
        skopeo,
        build,
        tar,
        pack_sha,
        tar_synced,
        save,
        verify,
        verify_sha,
        verify_floor,
        copied_floor,
        sha256sum,
        install,
        load,
        served_copy,
        served_rss_kb,
        push,
        skopeo_push,
        plain_push,
        upgrade,
    }
}

/// An ext4 with a journal, made in a sparse file and mounted through a
/// loop device, for dockerd's data. This machine's root is an ext4
/// without a journal, where the inode allocator looks up every free inode
/// it passes to skip the recently deleted ones (`recently_deleted`): after
/// a run's images were removed, dockerd's kernel time over the next load
/// went from about 20 to 44–50 CPU s at scale 2, in no run's control. A
/// journaled filesystem (as servers have) skips that check.
struct Journaled {
    dir: PathBuf,
}

impl Journaled {
    /// `None` where it cannot be made (no loop devices, no mkfs.ext4):
    /// dockerd then keeps its data in its own directory. The file is
    /// sparse; `noinit_itable` keeps the kernel from zeroing inode tables
    /// in the background while the bench measures.
    fn make(work: &Path) -> Option<Journaled> {
        let image = work.join("docker-data.img");
        let dir = work.join("docker-data");
        let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
        let made = std::fs::File::create(&image)
            .and_then(|f| f.set_len(64 << 30))
            .is_ok()
            && std::fs::create_dir_all(&dir).is_ok()
            && ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image))
            && ok(Command::new("mount")
                .args(["-o", "loop,noinit_itable"])
                .arg(&image)
                .arg(&dir));
        if made {
            Some(Journaled { dir })
        } else {
            eprintln!(
                "bench: no journaled filesystem for dockerd; its data stays in its own directory"
            );
            let _ = std::fs::remove_file(&image);
            None
        }
    }
}

impl Drop for Journaled {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Writes `env.sh` (the store, dockerd, both registries' hosts, the
/// images) in `proj` and waits until `proj/hold` is removed.
fn hold_here(proj: &Path, reg: &Registry, corpus: &Corpus, env: &[(&str, String)]) {
    let mut text = String::new();
    for (k, v) in env {
        text.push_str(&format!("export {k}='{v}'\n"));
    }
    text.push_str(&format!(
        "export BALE='{BALE}'\nexport REG='{}'\n",
        reg.host
    ));
    let images: Vec<String> = corpus
        .images
        .iter()
        .map(|(r, t)| format!("{r}:{t}"))
        .collect();
    text.push_str(&format!("export IMAGES='{}'\n", images.join(" ")));
    std::fs::write(proj.join("env.sh"), text).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(proj.join("hold"), "").unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "bench: holding; . {}/env.sh; rm {}/hold to go on",
        proj.display(),
        proj.display()
    );
    on_stop_signals(true);
    while proj.join("hold").exists() && !STOPPED.load(Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    on_stop_signals(false);
    // Unwinding drops the registries, dockerd, its loop-mounted disk and
    // the work directory, as a run that ends does; a held bench is the
    // one people stop by hand.
    assert!(
        !STOPPED.load(Ordering::SeqCst),
        "bench: stopped by a signal while holding; daemons and directories removed"
    );
}

/// Set by SIGINT, SIGTERM or SIGHUP while a bench holds.
static STOPPED: AtomicBool = AtomicBool::new(false);

extern "C" fn stop_signal(_: libc::c_int) {
    STOPPED.store(true, Ordering::SeqCst);
}

/// While `on`, SIGINT, SIGTERM and SIGHUP only set [`STOPPED`]; else they
/// act as by default again.
fn on_stop_signals(on: bool) {
    let handler = if on {
        stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t
    } else {
        libc::SIG_DFL
    };
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe {
            libc::signal(sig, handler);
        }
    }
}

/// Builds the next release (n8n's top layer changed) in full and as a
/// delta against the bundle, then times the upgrade by delta over an
/// installed first release.
fn upgrade_rows(
    runs: usize,
    corpus: &Corpus,
    proj: &Path,
    env: &[(&str, String)],
    clean_docker: &dyn Fn(),
) -> Upgrade {
    let (repo, next_tag, top_layer, top_tar) = &corpus.next;
    let name = repo.rsplit('/').next().unwrap_or_default();
    let next = proj.join("next");
    let _ = std::fs::remove_dir_all(&next);
    std::fs::create_dir_all(next.join("config")).unwrap_or_else(|e| panic!("{e}"));
    let toml = std::fs::read_to_string(proj.join("bundle.toml")).unwrap_or_default();
    let old_tag = next_tag.trim_end_matches("-next");
    let toml = toml
        .replace(
            &format!("{name}:{old_tag}\""),
            &format!("{name}:{next_tag}\""),
        )
        .replacen("version = \"1.0.0\"", "version = \"1.0.1\"", 1);
    std::fs::write(next.join("bundle.toml"), toml).unwrap_or_else(|e| panic!("{e}"));
    common::copy_dir(&proj.join("overlays"), &next.join("overlays"));
    // The compose file names the image too.
    let compose = next.join("overlays/docker-compose.yml");
    let text = std::fs::read_to_string(&compose).unwrap_or_default();
    std::fs::write(
        &compose,
        text.replace(
            &format!("{name}:{old_tag}\n"),
            &format!("{name}:{next_tag}\n"),
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for f in ["site.example.toml", "config/bale.toml", "k.pub", "k.sec"] {
        std::fs::copy(proj.join(f), next.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    sh(
        &format!(
            "'{BALE}' lock && '{BALE}' build --sign-key k.sec -o full.bale && '{BALE}' build --locked --offline --sign-key k.sec --base ../borgstack.bale -o delta.bale"
        ),
        &next,
        env,
    );
    let size = |f: &str| {
        std::fs::metadata(next.join(f))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let install_first = || {
        clean_docker();
        let _ = std::fs::remove_dir_all(proj.join("upgrade-target"));
        sh(
            &format!(
                "'{BALE}' install borgstack.bale --public-key k.pub --target upgrade-target --runtime docker --values site.example.toml --skip-preflight disk --skip-preflight memory"
            ),
            proj,
            env,
        );
    };
    let target = proj.join("upgrade-target").display().to_string();
    let install = measure_bale(
        runs,
        || {
            install_first();
            warm(&[&next.join("delta.bale")]);
        },
        &[
            "install",
            "delta.bale",
            "--public-key",
            "k.pub",
            "--target",
            &target,
            "--runtime",
            "docker",
            "--values",
            "site.example.toml",
            "--skip-preflight",
            "disk",
            "--skip-preflight",
            "memory",
        ],
        &next,
        env,
    );
    clean_docker();
    Upgrade {
        top_layer: *top_layer,
        top_tar: *top_tar,
        full_bytes: size("full.bale"),
        delta_bytes: size("delta.bale"),
        install,
    }
}

fn openssl_per_core(seconds: u32) -> f64 {
    // "sha256  ... 1691490.78k" for 1 MiB blocks: kB/s.
    let seconds = seconds.to_string();
    let out = Command::new("openssl")
        .args([
            "speed", "-evp", "sha256", "-seconds", &seconds, "-bytes", "1048576",
        ])
        .output();
    out.ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .last()
                .map(str::to_owned)
        })
        .and_then(|l| {
            l.split_whitespace()
                .last()
                .map(|v| v.trim_end_matches('k').to_owned())
        })
        .and_then(|v| v.parse::<f64>().ok())
        .map(|k| k * 1000.0)
        .unwrap_or(f64::NAN)
}

fn mb(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1e6)
}

/// The row "STEP, the whole machine": what the machine was busy with
/// during bale's step and its peer's (every process and the kernel's own
/// threads), the share left idle and how much of that the cores spent
/// with some task waiting on the disk (a daemon's fsync, for one), and
/// the least wall bale's step could take with all of that work spread
/// over the cores.
fn machine_row(
    step: &str,
    bale: &Sample,
    peer_name: &str,
    peer: &Sample,
    counted: &str,
    cores: f64,
) -> String {
    let floor = bale.machine / cores;
    let idle = |x: &Sample| {
        let idle = 100.0 * (1.0 - x.machine / cores / x.wall);
        let disk = 100.0 * x.iowait / cores / x.wall;
        format!(
            "{idle:.0}% idle: {:.0}% with nothing to run, {disk:.0}% waiting on the disk",
            idle - disk
        )
    };
    format!(
        "| {step}, the whole machine | busy {:.1} CPU s over {:.2} s on {cores} cores ({}) | {peer_name}: busy {:.1} CPU s over {:.2} s ({}) | least wall for bale's {step} here, {counted}: {:.2} s ({:.2}× {peer_name}) | (limit) | | |\n",
        bale.machine,
        bale.wall,
        idle(bale),
        peer.machine,
        peer.wall,
        idle(peer),
        floor,
        floor / peer.wall,
    )
}

/// A median's wall time, and the fastest and slowest of its runs where
/// they differ: whether a goal lies within the runs' spread shows.
fn spread(x: &Sample) -> String {
    if x.fastest < x.slowest {
        format!("{:.2} s ({:.2}–{:.2})", x.wall, x.fastest, x.slowest)
    } else {
        format!("{:.2} s", x.wall)
    }
}

fn report(results: &[Results], runs: usize, driver: &str) -> String {
    let mut s = String::new();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as f64;
    let rss = |x: &Sample| format!("{:.0} MB", x.rss_kb as f64 / 1024.0);
    for r in results {
        let v_tp = r.bundle_bytes as f64 / r.verify.wall;
        let s_tp = r.bundle_bytes as f64 / r.sha256sum.wall;
        s.push_str(&format!(
            "\n### Scale {} — {} repositories, {} of compressed layers as the images list them, {} unique; bundle {}\n\n",
            r.scale,
            r.corpus.images.len(),
            mb(r.corpus.compressed),
            mb(r.corpus.unique_compressed),
            mb(r.bundle_bytes)
        ));
        s.push_str("| step | bale | peer | ratio | target | met | bale peak RSS |\n|---|---|---|---|---|---|---|\n");
        let row = |step: &str, b: &Sample, peer_name: &str, p: &Sample, target: &str, ok: bool| {
            format!(
                "| {step} | {} | {peer_name} {} | {:.2}× | {target} | {} | {} |\n",
                spread(b),
                spread(p),
                b.wall / p.wall,
                if ok { "yes" } else { "**no**" },
                rss(b)
            )
        };
        s.push_str(&row(
            "pull",
            &r.fetch,
            "skopeo copy",
            &r.skopeo,
            "≤ 0.5×",
            r.fetch.wall <= 0.5 * r.skopeo.wall,
        ));
        s.push_str(&row(
            "pack",
            &r.build,
            "tar -cf",
            &r.tar,
            "≤ 1.3×",
            r.build.wall <= 1.3 * r.tar.wall,
        ));
        // A checked build hashes every byte twice (each blob against its
        // digest, the whole file for its SHA-256) and copies it as tar does.
        let pack_floor = (2.0 * r.bundle_bytes as f64 / r.pack_sha + r.tar.cpu) / cores;
        s.push_str(&format!(
            "| pack, at the limit | {:.2} s | least a checked build takes here: two SHA-256 passes at openssl's speed in the same minutes ({:.0} MB/s per core) plus tar's own CPU ({:.2} s), on {cores} cores: {:.2} s ({:.2}× tar -cf) | {:.2}× | (limit) | | |\n",
            r.build.wall,
            r.pack_sha / 1e6,
            r.tar.cpu,
            pack_floor,
            pack_floor / r.tar.wall,
            r.build.wall / pack_floor,
        ));
        s.push_str(&row(
            "pack",
            &r.build,
            "tar -cf, then its file synced to the disk (`sync blobs.tar`), as a build does before it names the bundle",
            &r.tar_synced,
            "(reference)",
            true,
        ));
        s.push_str(&row(
            "pack",
            &r.build,
            "docker save",
            &r.save,
            "(reference)",
            true,
        ));
        s.push_str(&format!(
            "| verify | {:.2} s ({:.0} MB/s) | sha256sum {:.2} s ({:.0} MB/s) | {:.1}× throughput | ≥ 3× | {} | {} |\n",
            r.verify.wall,
            v_tp / 1e6,
            r.sha256sum.wall,
            s_tp / 1e6,
            v_tp / s_tp,
            if v_tp >= 3.0 * s_tp { "yes" } else { "**no**" },
            rss(&r.verify)
        ));
        s.push_str(&format!(
            "| verify | {:.0} MB/s | {cores} × openssl per-core limit, taken before each run, {:.0} MB/s | {:.0}% | ≥ 85% | {} | |\n",
            v_tp / 1e6,
            cores * r.verify_sha / 1e6,
            100.0 * v_tp / (cores * r.verify_sha),
            if v_tp >= 0.85 * cores * r.verify_sha { "yes" } else { "**no**" }
        ));
        s.push_str(&format!(
            "| verify, a reader of one stream per core | {:.0} MB/s | the bench's own reader: the bundle's halves hashed with SHA-256 in place (bale's mappings), one stream per core, as bale did before it hashed two entries at a time per core, nothing checked: {:.0} MB/s ({:.0}% of the openssl limit) | {:.2}× | (reference) | | |\n",
            v_tp / 1e6,
            r.verify_floor / 1e6,
            100.0 * r.verify_floor / (cores * r.verify_sha),
            v_tp / r.verify_floor,
        ));
        s.push_str(&format!(
            "| verify, a reader that copies | {:.0} MB/s | the same halves read in 1 MiB positioned reads and hashed, each byte copied out of the page cache first (as bale did before, and `read`-based tools do): {:.0} MB/s ({:.0}% of the openssl limit) | {:.2}× | (reference) | | |\n",
            v_tp / 1e6,
            r.copied_floor / 1e6,
            100.0 * r.copied_floor / (cores * r.verify_sha),
            v_tp / r.copied_floor,
        ));
        s.push_str(&row(
            "install",
            &r.install,
            "docker load",
            &r.load,
            "≤ 0.8×",
            r.install.wall <= 0.8 * r.load.wall,
        ));
        let install_floor = (r.install.cpu + r.install.own_cpu) / cores;
        s.push_str(&format!(
            "| install, at the limit | dockerd and its children: {:.1} CPU s; bale and the programs it starts: {:.1} CPU s | docker load: {:.1} CPU s (dockerd) | least wall for bale's install here, both counted: {:.2} s on {cores} cores ({:.2}× docker load; dockerd's alone {:.2}×) | (limit) | | |\n",
            r.install.cpu,
            r.install.own_cpu,
            r.load.cpu,
            install_floor,
            install_floor / r.load.wall,
            r.install.cpu / cores / r.load.wall,
        ));
        // Beside the processes' own CPU, the kernel's threads work for the
        // writes both make (writeback, extent conversion, reclaim): what
        // the whole machine spent, and what was left idle.
        s.push_str(&machine_row(
            "install",
            &r.install,
            "docker load",
            &r.load,
            "all the machine's work counted",
            cores,
        ));
        s.push_str(&format!(
            "| serve (skopeo copy of every image) | {:.2} s | from docker-registry {:.2} s | {:.2}× | ≤ 1× (throughput at least docker-registry's) | {} | {:.0} MB under 8 parallel clients |\n",
            r.served_copy.wall,
            r.skopeo.wall,
            r.served_copy.wall / r.skopeo.wall,
            if r.served_copy.wall <= r.skopeo.wall { "yes" } else { "**no**" },
            r.served_rss_kb as f64 / 1024.0
        ));
        if let Some(u) = &r.upgrade {
            // What a load costs the runtime goes with the tar it unpacks
            // (part 15's twelfth session), not with the compressed blob:
            // the changed layer's share is taken of the tar the full
            // install unpacks, its compressed share given beside it.
            let share = u.top_tar as f64 / r.corpus.unique_tar as f64;
            s.push_str(&format!(
                "| upgrade: delta of 1 changed top layer | {} | full bundle {} | {:.3}× | changed layer ({}) + < 1 MiB | {} | |\n",
                mb(u.delta_bytes),
                mb(u.full_bytes),
                u.delta_bytes as f64 / u.full_bytes as f64,
                mb(u.top_layer),
                if u.delta_bytes < u.top_layer + (1 << 20) { "yes" } else { "**no**" }
            ));
            s.push_str(&format!(
                "| upgrade: install of the delta | {:.2} s | full install {:.2} s | {:.2}× | in proportion to the layer's share of the tar the runtime unpacks ({} of {}: {:.2}×; of the compressed bytes {:.2}×; met within 2×) | {} | {} |\n",
                u.install.wall,
                r.install.wall,
                u.install.wall / r.install.wall,
                mb(u.top_tar),
                mb(r.corpus.unique_tar),
                share,
                u.top_layer as f64 / r.bundle_bytes as f64,
                if u.install.wall <= 2.0 * share * r.install.wall { "yes" } else { "**no**" },
                rss(&u.install)
            ));
        }
        s.push_str(&row(
            "push (into an empty registry)",
            &r.push,
            "skopeo copy of each image",
            &r.skopeo_push,
            "≤ 0.5×",
            r.push.wall <= 0.5 * r.skopeo_push.wall,
        ));
        s.push_str(&format!(
            "| push, at the limit | receiving registry: {:.1} CPU s | with skopeo: {:.1} CPU s | least wall here: the registry's CPU on {cores} cores, {:.2} s ({:.2}× skopeo) | (limit) | | |\n",
            r.push.cpu,
            r.skopeo_push.cpu,
            r.push.cpu / cores,
            r.push.cpu / cores / r.skopeo_push.wall,
        ));
        // What the registry takes the bytes in when the sender costs next
        // to nothing, and that plus the verification bale must finish
        // before its first byte leaves (the verify row, the same bundle).
        s.push_str(&format!(
            "| push, against a sender that checks nothing | {:.2} s | every blob of the store held in memory and uploaded once (POST, then one PUT), largest first, eight at a time, into one repository, nothing verified, no mounts or manifests: {:.2} s ({:.2}× skopeo; the registry {:.1} CPU s, the sender {:.1}); with bale's verification before the first byte (the verify row, {:.2} s) added: {:.2} s ({:.2}× skopeo) | {:.2}× | (limit) | | |\n",
            r.push.wall,
            r.plain_push.wall,
            r.plain_push.wall / r.skopeo_push.wall,
            r.plain_push.cpu,
            r.plain_push.own_cpu,
            r.verify.wall,
            r.plain_push.wall + r.verify.wall,
            (r.plain_push.wall + r.verify.wall) / r.skopeo_push.wall,
            r.push.wall / (r.plain_push.wall + r.verify.wall),
        ));
        // bale verifies the bundle and hashes every byte again as it sends
        // it; the registry receives, writes and hashes it: all of it on
        // the same cores.
        s.push_str(&machine_row(
            "push",
            &r.push,
            "skopeo",
            &r.skopeo_push,
            "bale, the registry and the kernel counted",
            cores,
        ));
    }
    if results.len() >= 2 {
        let (a, b) = (&results[0], &results[results.len() - 1]);
        s.push_str(&format!("\n### Growth from scale {} to {}\n\n| bale command | wall | peak RSS |\n|---|---|---|\n", a.scale, b.scale));
        for (name, x, y) in [
            ("fetch", &a.fetch, &b.fetch),
            ("build", &a.build, &b.build),
            ("verify", &a.verify, &b.verify),
            ("install", &a.install, &b.install),
        ] {
            s.push_str(&format!(
                "| {name} | {:.2} s → {:.2} s ({:.2}×) | {} → {} |\n",
                x.wall,
                y.wall,
                y.wall / x.wall,
                rss(x),
                rss(y)
            ));
        }
        let max_rss = results
            .iter()
            .flat_map(|r| [r.fetch, r.build, r.verify, r.install])
            .map(|x| x.rss_kb)
            .max()
            .unwrap_or(0);
        s.push_str(&format!(
            "\nPeak RSS of any bale command: {:.0} MB (target < 100 MB).\n",
            max_rss as f64 / 1024.0
        ));
    }
    s.push_str(&format!(
        "\nMedian wall time of {runs} runs each (the pull, pack, install and push rows give the fastest and the slowest run in parentheses); bale's peak RSS is its own (VmHWM, the largest of the runs), without the programs it starts (the docker CLI); page cache warm (each input read once before each run); docker storage driver {driver}; loopback registry (docker-registry 2.8).\n"
    ));
    s
}

fn machine() -> String {
    let cmd = |c: &str| {
        Command::new("sh")
            .args(["-c", c])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    format!(
        "- CPU: {} ({} cores{})\n- Memory: {}\n- Kernel: {}\n- Tools: {}; {}; {}; {}; {}\n",
        cmd("lscpu | sed -n 's/^Model name: *//p'"),
        cmd("nproc"),
        if cmd("grep -o -m1 sha_ni /proc/cpuinfo").is_empty() {
            ""
        } else {
            ", SHA-NI"
        },
        cmd("free -h | awk '/Mem:/ {print $2}'"),
        cmd("uname -r"),
        cmd("skopeo --version"),
        cmd("docker --version"),
        cmd("openssl version"),
        cmd("tar --version | head -1"),
        cmd("sha256sum --version | head -1"),
    )
}

fn main() {
    let a = args();
    for t in [
        "docker-registry",
        "skopeo",
        "dockerd",
        "docker",
        "openssl",
        "/usr/bin/time",
    ] {
        assert!(
            common::have(t),
            "{t} is missing: run scripts/bench, which installs it"
        );
    }
    let work = tempfile::Builder::new()
        .prefix("bale-bench-")
        .tempdir_in("/var/tmp")
        .unwrap_or_else(|e| panic!("{e}"));
    // Declared before dockerd, so dropped after it.
    let journaled = Journaled::make(work.path());
    let root = journaled.as_ref().map(|j| j.dir.as_path());
    let (docker, mut driver) = {
        let d = std::panic::catch_unwind(|| Dockerd::start_on("overlay2", root));
        match d {
            Ok(d) => (d, "overlay2".to_owned()),
            Err(_) => (Dockerd::start_on("vfs", root), "vfs".to_owned()),
        }
    };
    if journaled.is_some() {
        driver.push_str(" on an ext4 with a journal of its own (a loop device)");
    }
    let mut results = Vec::new();
    for scale in &a.scales {
        eprintln!("bench: scale {scale}");
        results.push(run_scale(*scale, a.runs, &docker, work.path(), a.hold));
    }
    let table = report(&results, a.runs, &driver);
    let mach = machine();
    println!("{table}\n{mach}");
    if let Some(p) = a.write_doc {
        let mut doc = std::fs::read_to_string(&p).unwrap_or_default();
        let start = "<!-- results:start -->";
        let end = "<!-- results:end -->";
        let block = format!("{start}\n{table}\nMachine:\n\n{mach}{end}");
        match (doc.find(start), doc.find(end)) {
            (Some(i), Some(j)) if i < j => doc.replace_range(i..j + end.len(), &block),
            _ => doc.push_str(&format!("\n{block}\n")),
        }
        std::fs::write(&p, doc).unwrap_or_else(|e| panic!("{e}"));
    }
}
