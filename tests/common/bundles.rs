//! One fixture builder for the bundles that `serve` and `push` carry out:
//! the demo's two OCI images (busybox, so they run) and a Docker schema 2
//! manifest list of two platforms from a loopback registry.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// A built and signed `served.bale` in its project, with what went in.
pub struct MultiBundle {
    pub p: Project,
    pub reg: Registry,
    /// Digest of the `multi/app:2.0` manifest list.
    pub list: String,
    pub amd64: Pushed,
    pub arm64: Pushed,
}

/// `app_layer` bytes of noise in the amd64 app layer (nearly that much
/// gzip); `platforms` as bundle.toml locks them.
pub fn multi_bundle(app_layer: usize, platforms: &[&str]) -> MultiBundle {
    let reg = Registry::start();
    let amd64 = reg.push_image(
        "multi/app",
        None,
        "linux",
        "amd64",
        None,
        &[
            gzip_layer(&[("etc/base", b"base")]),
            gzip_layer(&[("bin/app", &noise(7, app_layer))]),
        ],
        true,
    );
    let arm64 = reg.push_image(
        "multi/app",
        None,
        "linux",
        "arm64",
        None,
        &[gzip_layer(&[("bin/app", &noise(8, 1000))])],
        true,
    );
    let list = reg.push_index(
        "multi/app",
        "2.0",
        &[
            (
                amd64.clone(),
                r#"{"os":"linux","architecture":"amd64"}"#.into(),
                None,
            ),
            (
                arm64.clone(),
                r#"{"os":"linux","architecture":"arm64"}"#.into(),
                None,
            ),
        ],
        true,
    );
    let platforms: Vec<String> = platforms.iter().map(|p| format!("\"{p}\"")).collect();
    let p = Project::new(&format!(
        "[bundle]\nname = \"served\"\nversion = \"1.0.0\"\nplatforms = [{}]\n[images]\napp = \"{}/multi/app:2.0\"\n",
        platforms.join(", "),
        reg.host
    ));
    if platforms.len() == 1 {
        // The demo images are linux/amd64 only.
        p.write(
            "bundle.toml",
            &(p.read("bundle.toml")
                + "web = \"oci:images:localhost/bale-demo/web:1.0\"\nworker = \"oci:images:localhost/bale-demo/worker:1.0\"\n"),
        );
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/images"),
            &p.path().join("images"),
        );
    }
    p.keygen();
    p.bale(&["lock"]).ok();
    p.bale(&["build", "--sign-key", "keys/k.sec", "-o", "served.bale"])
        .ok();
    MultiBundle {
        p,
        reg,
        list,
        amd64,
        arm64,
    }
}

/// The locked digest of `service`'s first platform manifest.
pub fn locked_manifest(p: &Project, service: &str) -> String {
    let lock: toml::Value =
        toml::from_str(&p.read("bundle.lock")).unwrap_or_else(|e| panic!("{e}"));
    lock["image"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["service"].as_str() == Some(service)))
        .and_then(|i| i["platform"][0]["manifest"].as_str())
        .unwrap_or_else(|| panic!("no {service} in the lock"))
        .to_owned()
}

/// A running `bale serve --json`, stopped with SIGTERM when dropped.
pub struct Served {
    child: Option<Child>,
    pub addr: String,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Served {
    pub fn start(p: &Project, bundle: &str, extra: &[&str]) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bale"))
            .args(["serve", bundle, "--public-key", "keys/k.pub", "--json"])
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .current_dir(p.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("bale serve: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("bale serve printed nothing"));
        let v: serde_json::Value =
            serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first}"));
        assert_eq!(v["event"], "listening", "{first}");
        let addr = v["addr"].as_str().unwrap_or_default().to_owned();
        Served {
            child: Some(child),
            addr,
            lines,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// SIGTERM, then every line printed after `listening`, and the status.
    pub fn stop(mut self) -> (Vec<serde_json::Value>, std::process::ExitStatus) {
        let mut child = self.child.take().unwrap_or_else(|| panic!("stopped twice"));
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Ok(Some(s)) = child.try_wait() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "bale serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let lines = self
            .lines
            .try_iter()
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect();
        (lines, status)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Two releases of one bundle for upgrades: `app` on a 2 MB base layer
/// whose top layer changes from 1.0.0 to 1.1.0, the demo's `web` image
/// unchanged, and a page that changes. Built: `v1.bale`, `v2.bale` (full)
/// and `delta.bale` (1.1.0 against 1.0.0). Returns the base layer too.
pub fn upgrade_project() -> (Project, LayerSpec) {
    let p = Project::new("");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/images"),
        &p.path().join("images"),
    );
    let base = || gzip_layer(&[("usr/lib/base.bin", &noise(41, 2_000_000))]);
    for (dir, tag, top) in [("v1", "1", b"1\n"), ("v2", "2", b"2\n")] {
        write_oci_layout(
            &p.path().join(dir),
            &format!("localhost/t/app:{tag}"),
            &[base(), gzip_layer(&[("etc/release", top)])],
        );
    }
    p.keygen();
    for (version, layout, tag, out, extra) in [
        ("1.0.0", "v1", "1", "v1.bale", vec![]),
        ("1.1.0", "v2", "2", "v2.bale", vec![]),
        ("1.1.0", "v2", "2", "delta.bale", vec!["--base", "v1.bale"]),
    ] {
        p.write(
            "bundle.toml",
            &format!(
                "[bundle]\nname = \"upgrade\"\nversion = \"{version}\"\n[images]\napp = \"oci:{layout}:localhost/t/app:{tag}\"\nweb = \"oci:images:localhost/bale-demo/web:1.0\"\n\n[[overlays]]\nsource = \"site\"\ntarget = \"site\"\n"
            ),
        );
        p.write("site/index.html", &format!("release {version}\n"));
        p.write("site/logo.txt", "the same in every release\n");
        p.bale(&["lock"]).ok();
        let mut args = vec!["build", "--sign-key", "keys/k.sec", "-o", out];
        args.extend(extra);
        p.bale(&args).ok();
    }
    (p, base())
}

/// The largest entry `prefix…` of `bundle`: its offset and size.
fn largest_entry(bundle: &Path, prefix: &str) -> (u64, u64) {
    let f = bale::bundle::source::Source::file(bundle).unwrap_or_else(|e| panic!("{e}"));
    let (entries, _) = bale::verify::scan(&f, f.len());
    entries
        .iter()
        .filter(|e| e.path.as_deref().is_ok_and(|p| p.starts_with(prefix)) && e.size > 0)
        .max_by_key(|e| e.size)
        .map(|e| (e.offset, e.size))
        .unwrap_or_else(|| panic!("no entry {prefix}"))
}

/// Flips one byte in the middle of the bundle entry `prefix…` (largest first).
pub fn flip_in_entry(bundle: &Path, prefix: &str) {
    let (offset, size) = largest_entry(bundle, prefix);
    let mut data = std::fs::read(bundle).unwrap_or_else(|e| panic!("{e}"));
    data[(offset + size / 2) as usize] ^= 0xff;
    std::fs::write(bundle, data).unwrap_or_else(|e| panic!("{e}"));
}

/// Cuts the bundle file short in the middle of the entry `prefix…`
/// (largest first), in place.
pub fn shrink_in_entry(bundle: &Path, prefix: &str) {
    let (offset, size) = largest_entry(bundle, prefix);
    std::fs::OpenOptions::new()
        .write(true)
        .open(bundle)
        .and_then(|f| f.set_len(offset + size / 2))
        .unwrap_or_else(|e| panic!("{e}"));
}
