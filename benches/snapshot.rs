//! The snapshot benchmark: `bale snapshot` and `bale restore` of a named
//! volume holding at least 1 GiB of this machine's files (libraries,
//! binaries, documentation: realistic compressibility and sizes), against
//! `tar -C VOLUME -c . | zstd -T0` and back, on a private dockerd.
//!
//! `scripts/bench --snapshot [--gib N] [--runs N] [--write-doc PATH]`
//!
//! It measures and reports; it asserts nothing about speed.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::Project;
use common::daemons::Dockerd;

const COMPOSE: &str = r#"services:
  app:
    image: localhost/bale-demo/worker:1.0
    command: ["/bin/sh", "-c", "/bin/busybox touch /tmp/ready; trap 'exit 0' TERM; /bin/busybox sleep 100000 & wait"]
    volumes: ["data:/data"]
    healthcheck:
      test: ["CMD", "/bin/busybox", "test", "-f", "/tmp/ready"]
      interval: 1s
      timeout: 2s
      retries: 30
volumes:
  data: {}
"#;

const BUNDLE: &str = r#"[bundle]
name = "bench"
version = "1.0.0"

[images]
app = "oci:images:localhost/bale-demo/worker:1.0"

[compose]
file = "compose.yml"
project = "benchstack"
"#;

struct Args {
    gib: u64,
    runs: usize,
    write_doc: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        gib: 1,
        runs: 3,
        write_doc: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--gib" => a.gib = it.next().and_then(|v| v.parse().ok()).unwrap_or(1).max(1),
            "--runs" => a.runs = it.next().and_then(|v| v.parse().ok()).unwrap_or(3).max(1),
            "--write-doc" => a.write_doc = it.next().map(PathBuf::from),
            _ => {}
        }
    }
    a
}

/// Copies the machine's files into `dest` until `bytes` are there, keeping
/// their relative paths; returns (files, bytes).
fn fill(dest: &Path, bytes: u64) -> (u64, u64) {
    let (mut files, mut total) = (0u64, 0u64);
    for root in ["/usr/lib", "/usr/share", "/usr/bin"] {
        for e in walkdir::WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .flatten()
        {
            if total >= bytes {
                return (files, total);
            }
            let Ok(m) = e.metadata() else { continue };
            if !m.is_file() || m.len() > 64 << 20 {
                continue;
            }
            let rel = e.path().strip_prefix("/").unwrap_or(e.path());
            let to = dest.join(rel);
            if let Some(p) = to.parent() {
                let _ = std::fs::create_dir_all(p);
            }
            if std::fs::copy(e.path(), &to).is_ok() {
                files += 1;
                total += m.len();
            }
        }
    }
    (files, total)
}

/// Wall seconds of `f`, after a `sync` so that no run pays for another's
/// dirty pages.
fn time(f: impl FnOnce()) -> f64 {
    let _ = Command::new("sync").status();
    let start = std::time::Instant::now();
    f();
    start.elapsed().as_secs_f64()
}

fn sh(script: &str) {
    let st = Command::new("sh")
        .args(["-c", script])
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(st.success(), "`{script}` failed");
}

fn dir_bytes(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len())
        .sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let a = args();
    for t in ["dockerd", "docker", "tar", "zstd"] {
        assert!(
            common::have(t),
            "{t} is missing: run scripts/bench, which installs it"
        );
    }
    let docker = Dockerd::start();
    let p = Project::new(BUNDLE);
    common::copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/images"),
        &p.path().join("images"),
    );
    p.write("compose.yml", COMPOSE);
    p.keygen();
    let env = [("DOCKER_HOST", docker.host.as_str())];
    p.bale_env(&["build", "--sign-key", "keys/k.sec", "-o", "b.bale"], &env)
        .ok();
    let install = [
        "install",
        "b.bale",
        "--public-key",
        "keys/k.pub",
        "--target",
        "t",
        "--up",
    ];
    p.bale_env(&install, &env).ok();
    let out = docker.docker(&[
        "volume",
        "inspect",
        "--format",
        "{{.Mountpoint}}",
        "benchstack_data",
    ]);
    let vol = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    eprintln!(
        "bench: filling the volume with {} GiB of this machine's files",
        a.gib
    );
    let (files, bytes) = fill(&vol, a.gib << 30);
    let peer = p.path().join("peer");
    std::fs::create_dir_all(&peer).unwrap_or_else(|e| panic!("{e}"));
    let snaps = p.path().join("t/.bale/snapshots");

    // Per run: (wall, phase, stopped) for bale; wall for the peer.
    let (mut snap, mut tar_c, mut restore, mut tar_x) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut archive_bytes = 0;
    let json = |r: &common::Run| -> serde_json::Value {
        serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}\n{}", r.describe()))
    };
    for run in 0..a.runs {
        eprintln!("bench: run {}", run + 1);
        let _ = std::fs::remove_dir_all(&snaps);
        let mut v = serde_json::Value::Null;
        let wall = time(|| {
            let r = p.bale_env(&["snapshot", "--target", "t", "--json"], &env);
            r.ok();
            v = json(&r);
        });
        snap.push((
            wall,
            v["copy_seconds"].as_f64().unwrap_or(f64::NAN),
            v["stopped_seconds"].as_f64().unwrap_or(f64::NAN),
        ));
        archive_bytes = dir_bytes(&snaps);
        tar_c.push(time(|| {
            sh(&format!(
                "tar -C '{}' -cf - . | zstd -T0 -q -f -o '{}/v.tar.zst' && sync '{}/v.tar.zst'",
                vol.display(),
                peer.display(),
                peer.display()
            ))
        }));
        let mut v = serde_json::Value::Null;
        let wall = time(|| {
            let r = p.bale_env(&["restore", "--target", "t", "--json"], &env);
            r.ok();
            v = json(&r);
        });
        restore.push((
            wall,
            v["extract_seconds"].as_f64().unwrap_or(f64::NAN),
            v["stopped_seconds"].as_f64().unwrap_or(f64::NAN),
        ));
        let into = peer.join("x");
        let _ = std::fs::remove_dir_all(&into);
        std::fs::create_dir_all(&into).unwrap_or_else(|e| panic!("{e}"));
        tar_x.push(time(|| {
            sh(&format!(
                "zstd -dc '{}/v.tar.zst' | tar -C '{}' -xpf - && sync -f '{}'",
                peer.display(),
                into.display(),
                into.display()
            ))
        }));
    }
    let gb = bytes as f64 / 1e9;
    let pick =
        |v: &[(f64, f64, f64)], i: usize| median(v.iter().map(|t| [t.0, t.1, t.2][i]).collect());
    let (s_wall, s_copy, s_down) = (pick(&snap, 0), pick(&snap, 1), pick(&snap, 2));
    let (r_wall, r_extract, r_down) = (pick(&restore, 0), pick(&restore, 1), pick(&restore, 2));
    let (tc, tx) = (median(tar_c), median(tar_x));
    let peer_bytes = std::fs::metadata(peer.join("v.tar.zst")).map_or(0, |m| m.len());
    let rate = |secs: f64| gb * 1000.0 / secs;
    let table = format!(
        "Volume: {files} files, {gb:.2} GB of this machine's files (/usr/lib, /usr/share, /usr/bin).\n\n\
         | step | bale | peer | bale / peer |\n|---|---|---|---|\n\
         | snapshot: the copy (walk, tar, zstd, SHA-256, fsync) | {s_copy:.2} s ({:.0} MB/s), archive {:.0} MB | `tar -c \\| zstd -T0` and `sync`: {tc:.2} s ({:.0} MB/s), archive {:.0} MB | {:.2}× |\n\
         | restore: the extraction (SHA-256 while read, counts, owners, modes, times, `syncfs`) | {r_extract:.2} s ({:.0} MB/s) | `zstd -dc \\| tar -x` and `sync -f`: {tx:.2} s ({:.0} MB/s) | {:.2}× |\n\
         | `bale snapshot`, whole command | {s_wall:.2} s; the stack stopped {s_down:.2} s | | |\n\
         | `bale restore`, whole command | {r_wall:.2} s; the stack stopped {r_down:.2} s | | |\n\n\
         Median of {} runs. The whole commands add what the pipelines do not do: stopping the service and starting it until its healthcheck passes (snapshot); checking the release, exchanging the directories, removing the old data (while the service starts) and starting the service until healthy (restore). A restore extracts while the stack still runs, so the stack is stopped only for the exchange.\n",
        rate(s_copy),
        archive_bytes as f64 / 1e6,
        rate(tc),
        peer_bytes as f64 / 1e6,
        s_copy / tc,
        rate(r_extract),
        rate(tx),
        r_extract / tx,
        a.runs,
    );
    println!("{table}");
    let _ = docker.docker(&["rm", "-f", "benchstack_app_1"]);
    if let Some(path) = a.write_doc {
        let mut doc = std::fs::read_to_string(&path).unwrap_or_default();
        let (start, end) = ("<!-- snapshot:start -->", "<!-- snapshot:end -->");
        let block = format!("{start}\n{table}{end}");
        match (doc.find(start), doc.find(end)) {
            (Some(i), Some(j)) if i < j => doc.replace_range(i..j + end.len(), &block),
            _ => doc.push_str(&format!("\n## Snapshot and restore\n\n{block}\n")),
        }
        std::fs::write(&path, doc).unwrap_or_else(|e| panic!("{e}"));
    }
}
