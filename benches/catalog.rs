//! The catalog benchmark: what reading the OS packages inside the images
//! costs a build. Images whose first layer holds this machine's own dpkg
//! status (real packages) and whose other layers hold this machine's files
//! (libraries, documentation: realistic compressibility), pushed to a
//! loopback docker-registry and fetched; then, from the warm store:
//!
//! - `bale build` with no catalog cached (every layer read once),
//! - `bale build` again (the per-layer catalog cached in the store),
//! - `tar -cf` of the same blobs (what packing alone costs),
//! - every layer decompressed and listed by `gzip -dc | tar -t` (what
//!   reading each layer once costs another tool).
//!
//! `scripts/bench --catalog [--mib N] [--runs N] [--write-doc PATH]`
//!
//! It measures and reports; it asserts nothing about speed.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use common::{LayerSpec, Project, Registry, sha};

struct Args {
    mib: u64,
    runs: usize,
    write_doc: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        mib: 1024,
        runs: 3,
        write_doc: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--mib" => {
                a.mib = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1024)
                    .max(64)
            }
            "--runs" => a.runs = it.next().and_then(|v| v.parse().ok()).unwrap_or(3).max(1),
            "--write-doc" => a.write_doc = it.next().map(PathBuf::from),
            _ => {}
        }
    }
    a
}

/// Regular files under `roots`, up to `budget` bytes, sorted.
fn files(roots: &[&str], budget: u64) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut n = 0;
    for r in roots {
        for e in walkdir::WalkDir::new(r)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .flatten()
        {
            if n >= budget {
                return out;
            }
            if e.file_type().is_file()
                && let Ok(m) = e.metadata()
                && m.len() <= 32 << 20
                && std::fs::File::open(e.path()).is_ok()
            {
                n += m.len();
                out.push(e.path().to_owned());
            }
        }
    }
    out
}

/// A gzip layer of `entries` (path in the image, bytes).
fn gzip_layer(entries: &[(String, Vec<u8>)]) -> LayerSpec {
    let mut b = tar::Builder::new(Vec::new());
    for (p, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        let _ = b.append_data(&mut h, p, data.as_slice());
    }
    let t = b.into_inner().unwrap_or_else(|e| panic!("{e}"));
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&t).unwrap_or_else(|e| panic!("{e}"));
    LayerSpec {
        diff_id: sha(&t),
        blob: e.finish().unwrap_or_else(|e| panic!("{e}")),
        media_type: common::OCI_LAYER_GZIP.into(),
    }
}

fn timed(cmd: &mut Command) -> f64 {
    let _ = Command::new("sync").status();
    let t = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let a = args();
    let reg = Registry::start();
    let status = std::fs::read("/var/lib/dpkg/status")
        .unwrap_or_else(|e| panic!("/var/lib/dpkg/status: {e}"));
    let os_release = std::fs::read("/etc/os-release").unwrap_or_default();
    let images = 4u64;
    let pool = files(
        &[
            "/usr/lib/x86_64-linux-gnu",
            "/usr/share/doc",
            "/usr/lib/gcc",
            "/usr/share/locale",
        ],
        a.mib << 20,
    );
    eprintln!(
        "bench: {} files of this machine in {images} images",
        pool.len()
    );
    let per_image = pool.len().div_ceil(images as usize);
    let mut toml = String::from(
        "[bundle]\nname = \"catalog\"\nversion = \"1.0.0\"\nplatforms = [\"linux/amd64\"]\n[images]\n",
    );
    let mut layers_total = 0u64;
    for (n, chunk) in pool.chunks(per_image.max(1)).enumerate() {
        let base = gzip_layer(&[
            ("etc/os-release".into(), os_release.clone()),
            ("var/lib/dpkg/status".into(), status.clone()),
        ]);
        let mut layers = vec![base];
        for part in chunk.chunks(chunk.len().div_ceil(4).max(1)) {
            let entries: Vec<(String, Vec<u8>)> = part
                .iter()
                .filter_map(|p| {
                    Some((
                        p.strip_prefix("/").ok()?.display().to_string(),
                        std::fs::read(p).ok()?,
                    ))
                })
                .collect();
            layers.push(gzip_layer(&entries));
        }
        layers_total += layers.iter().map(|l| l.blob.len() as u64).sum::<u64>();
        let repo = format!("cat/img{n}");
        reg.push_image(&repo, Some("1.0"), "linux", "amd64", None, &layers, false);
        toml.push_str(&format!("img{n} = \"{}/{repo}:1.0\"\n", reg.host));
    }
    let p = Project::new(&toml);
    p.keygen();
    p.bale(&["lock"]).ok();
    p.bale(&["fetch", "--locked"]).ok();
    let bale = env!("CARGO_BIN_EXE_bale");
    let build = || {
        let mut c = Command::new(bale);
        c.args([
            "build",
            "--offline",
            "--sign-key",
            "keys/k.sec",
            "-o",
            "c.bale",
        ])
        .current_dir(p.path())
        .env("BALE_STORE", &p.store)
        .env("DOCKER_CONFIG", &p.docker_config);
        c
    };
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    let mut tar = Vec::new();
    let mut list = Vec::new();
    for _ in 0..a.runs {
        let _ = std::fs::remove_dir_all(p.store.join("catalogs"));
        let _ = std::fs::remove_file(p.path().join("c.bale"));
        cold.push(timed(&mut build()));
        let _ = std::fs::remove_file(p.path().join("c.bale"));
        warm.push(timed(&mut build()));
        let _ = std::fs::remove_file(p.path().join("blobs.tar"));
        tar.push(timed(
            Command::new("tar")
                .args(["-cf", "blobs.tar", "-C"])
                .arg(&p.store)
                .arg("blobs")
                .current_dir(p.path()),
        ));
        list.push(timed(Command::new("sh").arg("-c").arg(
            "for b in \"$STORE\"/blobs/sha256/*; do if [ \"$(head -c2 \"$b\" | od -An -tx1 | tr -d ' \\n')\" = 1f8b ]; then gzip -dc \"$b\" | tar -t > /dev/null; fi; done",
        ).env("STORE", &p.store)));
    }
    let (cold, warm, tar, list) = (median(cold), median(warm), median(tar), median(list));
    let bundle = std::fs::metadata(p.path().join("c.bale")).map_or(0, |m| m.len());
    let sbom = p.bale(&["sbom", "c.bale", "--public-key", "keys/k.pub"]);
    let doc: serde_json::Value = serde_json::from_slice(&sbom.out.stdout).unwrap_or_default();
    let packages = doc["packages"].as_array().map_or(0, |ps| {
        ps.iter()
            .filter(|p| {
                p["SPDXID"]
                    .as_str()
                    .is_some_and(|s| s.contains("-Package-"))
            })
            .count()
    });
    let mut s = String::new();
    s.push_str(&format!(
        "\n## Cataloging packages at build ({} images, {:.0} MB of gzip layers, {packages} OS packages in the SBOM, bundle {:.0} MB)\n\n",
        images,
        layers_total as f64 / 1e6,
        bundle as f64 / 1e6
    ));
    s.push_str("| step | bale | peer | ratio |\n|---|---|---|---|\n");
    s.push_str(&format!("| build, no catalog cached (every layer read once) | {cold:.2} s | `tar -cf` of the blobs {tar:.2} s | {:.2}× |\n", cold / tar));
    s.push_str(&format!("| build, catalog cached in the store | {warm:.2} s | `tar -cf` of the blobs {tar:.2} s | {:.2}× |\n", warm / tar));
    s.push_str(&format!(
        "| cataloging alone (cold − cached build) | {:.2} s | every layer `gzip -dc \\| tar -t` {list:.2} s | {:.2}× |\n",
        cold - warm,
        (cold - warm) / list
    ));
    s.push_str(&format!(
        "\nMedian of {} runs; page cache warm; this machine's dpkg status in each image.\n",
        a.runs
    ));
    print!("{s}");
    if let Some(path) = a.write_doc {
        let mut doc = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(at) = doc.find("\n## Cataloging packages at build") {
            let end = doc[at + 1..]
                .find("\n## ")
                .map_or(doc.len(), |e| at + 1 + e);
            doc.replace_range(at..end, "");
        }
        doc.push_str(&s);
        std::fs::write(&path, doc).unwrap_or_else(|e| panic!("{e}"));
    }
}
