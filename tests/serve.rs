//! `bale serve`: a verified bundle as a read-only registry, read by real
//! clients (skopeo, docker, ctr, podman, curl) and copied into a real
//! docker-registry.

mod common;

use bale::error::exit;

use std::process::Command;

use common::bundles::{Served, locked_manifest, multi_bundle};
use common::daemons::{Containerd, Dockerd, Podman};
use common::*;

fn skopeo(args: &[&str]) -> std::process::Output {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("skopeo: {e}"));
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn get(url: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut r = req.call().unwrap_or_else(|e| panic!("{url}: {e}"));
    let h = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let body = r.body_mut().read_to_vec().unwrap_or_default();
    (r.status().as_u16(), h, body)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

#[test]
fn skopeo_inspects_and_copies_every_image_into_a_registry_with_digests_kept() {
    let f = multi_bundle(300_000, &["linux/amd64"]);
    let s = Served::start(&f.p, "served.bale", &[]);
    let at = |r: &str| format!("docker://{}/{r}", s.addr);
    // The tag serves the manifest list as pulled: same bytes, Docker type.
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &at("multi/app:2.0"),
    ])
    .stdout;
    assert_eq!(sha(&raw), f.list);
    let (status, h, _) = get(
        &format!("http://{}/v2/multi/app/manifests/2.0", s.addr),
        &[],
    );
    assert_eq!(status, 200);
    assert_eq!(
        header(&h, "content-type"),
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    assert_eq!(header(&h, "docker-content-digest"), f.list);
    // The platform the bundle did not lock is not there.
    let (status, _, body) = get(
        &format!(
            "http://{}/v2/multi/app/manifests/{}",
            s.addr, f.arm64.manifest
        ),
        &[],
    );
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("MANIFEST_UNKNOWN"));
    // Copied into a real registry, every image keeps its digest.
    let dest = Registry::start();
    for (src, service, to) in [
        ("bale-demo/web:1.0", "web", "copied/web:1.0"),
        ("bale-demo/worker:1.0", "worker", "copied/worker:1.0"),
        ("multi/app:2.0", "app", "copied/app:2.0"),
    ] {
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &at(src),
            &format!("docker://{}/{to}", dest.host),
        ]);
        let copied = skopeo_raw(&format!("{}/{to}", dest.host));
        assert_eq!(sha(&copied), locked_manifest(&f.p, service), "{src}");
    }
    assert_eq!(locked_manifest(&f.p, "app"), f.amd64.manifest);
    // _catalog and tags/list.
    let (_, _, body) = get(&format!("http://{}/v2/_catalog", s.addr), &[]);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    assert_eq!(
        v["repositories"],
        serde_json::json!(["bale-demo/web", "bale-demo/worker", "multi/app"])
    );
    let (_, _, body) = get(&format!("http://{}/v2/multi/app/tags/list", s.addr), &[]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default()["tags"],
        serde_json::json!(["2.0"])
    );
    let (lines, status) = s.stop();
    assert!(status.success(), "{status}");
    // Each request was logged as a JSON line, and a summary closed the log.
    assert!(lines.iter().any(|l| {
        l["event"] == "request"
            && l["status"] == 200
            && l["path"]
                .as_str()
                .is_some_and(|p| p.contains("/blobs/sha256:"))
    }));
    let last = lines.last().cloned().unwrap_or_default();
    assert_eq!(last["event"], "summary", "{lines:?}");
    assert_eq!(last["ok"], true);
}

#[test]
fn blobs_are_served_whole_and_by_range_to_many_clients_at_once() {
    let f = multi_bundle(300_000, &["linux/amd64"]);
    let s = Served::start(&f.p, "served.bale", &["--max-connections", "4"]);
    let layer = f.amd64.layers[1].clone();
    let url = format!("http://{}/v2/multi/app/blobs/{layer}", s.addr);
    let (status, h, whole) = get(&url, &[]);
    assert_eq!(status, 200);
    assert_eq!(sha(&whole), layer);
    assert_eq!(header(&h, "accept-ranges"), "bytes");
    let size = whole.len();
    // 16 clients, 6 ranges each: more clients than connections at once.
    let handles: Vec<_> = (0..16u64)
        .map(|i| {
            let url = url.clone();
            let whole = whole.clone();
            std::thread::spawn(move || {
                for j in 0..6u64 {
                    let start = ((i * 7919 + j * 104_729) as usize) % size;
                    let end = (start + 1 + ((i + j) as usize * 4099) % 65_536).min(size - 1);
                    let (status, h, body) =
                        get(&url, &[("Range", &format!("bytes={start}-{end}"))]);
                    assert_eq!(status, 206);
                    assert_eq!(
                        header(&h, "content-range"),
                        format!("bytes {start}-{end}/{size}")
                    );
                    assert_eq!(body, whole[start..=end], "range {start}-{end}");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap_or_else(|_| panic!("a client failed"));
    }
    let (status, h, _) = get(&url, &[("Range", &format!("bytes={size}-"))]);
    assert_eq!(status, 416);
    assert_eq!(header(&h, "content-range"), format!("bytes */{size}"));
    // Writes are refused with a distribution error.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let r = agent
        .post(&format!("http://{}/v2/multi/app/blobs/uploads/", s.addr))
        .send_empty()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 405);
    let (lines, status) = s.stop();
    assert!(status.success());
    let summary = lines.last().cloned().unwrap_or_default();
    assert!(
        summary["requests"].as_u64().unwrap_or(0) >= 16 * 6 + 3,
        "{summary}"
    );
}

#[test]
fn docker_pulls_by_digest_from_the_served_bundle_and_runs_it() {
    let f = multi_bundle(300_000, &["linux/amd64"]);
    let s = Served::start(&f.p, "served.bale", &[]);
    let d = Dockerd::start();
    let web = locked_manifest(&f.p, "web");
    let image = format!("127.0.0.1:{}/bale-demo/web@{web}", s.port());
    let out = d.docker(&["pull", &image]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/bin/busybox",
        &image,
        "echo",
        "served by bale",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "served by bale"
    );
    // The multi-platform tag resolves to the locked platform.
    let out = d.docker(&["pull", &format!("127.0.0.1:{}/multi/app:2.0", s.port())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = d.docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        &format!("127.0.0.1:{}/multi/app:2.0", s.port()),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), f.amd64.config);
}

#[test]
fn ctr_and_podman_pull_from_the_served_bundle() {
    let f = multi_bundle(300_000, &["linux/amd64"]);
    let s = Served::start(&f.p, "served.bale", &[]);
    let c = Containerd::start();
    let image = format!("127.0.0.1:{}/bale-demo/web:1.0", s.port());
    let out = c.ctr("bale", &["images", "pull", "--plain-http", &image]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = c.ctr("bale", &["images", "ls", "-q"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&image));
    let out = c.ctr("bale", &["content", "get", &locked_manifest(&f.p, "web")]);
    assert!(
        out.status.success(),
        "the locked manifest is not in containerd's store"
    );

    let pm = Podman::new();
    let image = format!("127.0.0.1:{}/bale-demo/worker:1.0", s.port());
    let out = pm.podman(&["pull", "--tls-verify=false", &image]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = pm.podman(&["image", "inspect", "--format", "{{.Digest}}", &image]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        locked_manifest(&f.p, "worker")
    );
}

#[test]
fn https_with_the_sites_certificate_is_trusted_by_skopeo() {
    let f = multi_bundle(300_000, &["linux/amd64"]);
    let dir = f.p.path();
    loopback_cert(dir);
    std::fs::create_dir_all(dir.join("certs")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(dir.join("ca.crt"), dir.join("certs/ca.crt")).unwrap_or_else(|e| panic!("{e}"));
    let s = Served::start(
        &f.p,
        "served.bale",
        &["--tls-cert", "tls.crt", "--tls-key", "tls.key"],
    );
    let certs = dir.join("certs");
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--cert-dir",
        &certs.display().to_string(),
        &format!("docker://{}/multi/app:2.0", s.addr),
    ])
    .stdout;
    assert_eq!(sha(&raw), f.list);
    // Without the site's CA the certificate is not trusted.
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            &format!("docker://{}/multi/app:2.0", s.addr),
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
}

#[test]
fn a_bundle_that_fails_verification_is_not_served() {
    let f = multi_bundle(300_000, &["linux/amd64"]);
    let bundle = f.p.path().join("served.bale");
    let mut bytes = std::fs::read(&bundle).unwrap_or_else(|e| panic!("{e}"));
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(f.p.path().join("tampered.bale"), bytes).unwrap_or_else(|e| panic!("{e}"));
    let port = free_port().to_string();
    let run = f.p.bale(&[
        "serve",
        "tampered.bale",
        "--public-key",
        "keys/k.pub",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    run.fails(exit::INTEGRITY).says("failed verification");
    assert!(std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err());
    // And a key that did not sign it.
    f.p.bale(&[
        "keygen",
        "--public-key",
        "other.pub",
        "--secret-key",
        "other.sec",
        "--no-password",
    ])
    .ok();
    f.p.bale(&[
        "serve",
        "served.bale",
        "--public-key",
        "other.pub",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ])
    .fails(exit::INTEGRITY);
}

/// Where `needle` starts in `hay`.
fn offset_of(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("blob not found in the bundle"))
}

/// Flips one byte of the bundle file at `at`, in place (same inode).
fn flip_byte(path: &std::path::Path, at: usize) {
    use std::os::unix::fs::FileExt as _;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut b = [0u8];
    f.read_exact_at(&mut b, at as u64)
        .unwrap_or_else(|e| panic!("{e}"));
    f.write_all_at(&[b[0] ^ 0xff], at as u64)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A GET whose body may be cut: status, and the bytes read before the cut.
/// A connection closed before the response's head is status 0 and no
/// bytes: serve cuts the connection when a chunk fails its seal, and
/// whether the head went out first depends on which of the two threads
/// is faster (the head goes with the first chunk).
fn get_cut(url: &str, range: &str) -> (u16, Vec<u8>) {
    use std::io::Read as _;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = match agent.get(url).header("Range", range).call() {
        Ok(r) => r,
        Err(ureq::Error::Io(_)) => return (0, Vec::new()),
        Err(e) => panic!("{url}: {e}"),
    };
    let mut body = Vec::new();
    let _ = r.body_mut().as_reader().read_to_end(&mut body);
    (r.status().as_u16(), body)
}

#[test]
fn a_blob_changed_after_serve_started_never_leaves_through_a_range_request() {
    let f = multi_bundle(600_000, &["linux/amd64"]);
    let s = Served::start(&f.p, "served.bale", &[]);
    let bundle = f.p.path().join("served.bale");
    let file = std::fs::read(&bundle).unwrap_or_else(|e| panic!("{e}"));
    let layer = f.amd64.layers[1].clone();
    let url = format!("http://{}/v2/multi/app/blobs/{layer}", s.addr);

    // Served once whole, then changed near its end: every range that
    // covers the change is cut before the changed chunk.
    let (status, _, whole) = get(&url, &[]);
    assert_eq!((status, sha(&whole)), (200, layer.clone()));
    let at = offset_of(&file, &whole[..4096]);
    flip_byte(&bundle, at + whole.len() - 10);
    for range in ["bytes=0-", "bytes=500000-", "-20"] {
        let (_, body) = get_cut(&url, range);
        let mut altered = whole.clone();
        let n = altered.len();
        altered[n - 10] ^= 0xff;
        assert!(
            !body.ends_with(&altered[n - 20..]),
            "{range}: the changed byte was sent"
        );
    }
    // Bytes before the changed chunk are the signed ones and still flow.
    let (status, body) = get_cut(&url, "bytes=0-999");
    assert_eq!((status, &body[..]), (206, &whole[..1000]));

    let (lines, _) = s.stop();
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "changed" && l["digest"] == layer.as_str()),
        "the refusal was not logged: {lines:?}"
    );
}

#[test]
fn a_range_of_a_blob_changed_before_its_first_request_is_refused() {
    let f = multi_bundle(300_000, &["linux/amd64"]);
    let bundle = f.p.path().join("served.bale");
    let s = Served::start(&f.p, "served.bale", &[]);
    let layer = f.amd64.layers[1].clone();
    let url = format!("http://{}/v2/multi/app/blobs/{layer}", s.addr);
    // Find the layer by its bytes as skopeo would fetch them from the
    // source registry, then change one byte of it in the bundle.
    let (_, _, want) = get(
        &format!("http://{}/v2/multi/app/blobs/{layer}", f.reg.host),
        &[],
    );
    let file = std::fs::read(&bundle).unwrap_or_else(|e| panic!("{e}"));
    let at = offset_of(&file, &want[..4096]);
    flip_byte(&bundle, at + 100);
    let (_, body) = get_cut(&url, "bytes=0-");
    assert!(
        body.is_empty(),
        "{} bytes of a changed blob were sent",
        body.len()
    );
    let (_, body) = get_cut(&url, "bytes=200000-200099");
    assert!(body.is_empty(), "a range of a changed blob was sent");
}

#[test]
fn slow_clients_holding_every_slot_do_not_keep_a_pull_waiting() {
    use std::io::Write as _;
    let f = multi_bundle(1000, &["linux/amd64"]);
    let s = Served::start(&f.p, "served.bale", &["--max-connections", "2"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Two clients take both slots and send their headers a byte a second.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let addr = s.addr.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(&addr).unwrap_or_else(|e| panic!("{e}"));
                for b in b"GET /v2/ HTTP/1.1\r\nHost: x\r\n".iter().cycle().take(30) {
                    if stop.load(std::sync::atomic::Ordering::Relaxed)
                        || c.write_all(&[*b]).is_err()
                    {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1000));
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let started = std::time::Instant::now();
    let (status, _, _) = get(&format!("http://{}/v2/", s.addr), &[]);
    let waited = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(status, 200);
    // Before: about 30 s behind the slow clients.
    assert!(
        waited < std::time::Duration::from_secs(10),
        "a pull waited {waited:?} behind slow clients"
    );
    for t in slow {
        let _ = t.join();
    }
}

#[test]
fn unknown_routes_and_backward_ranges_answer_as_the_distribution_spec_says() {
    let f = multi_bundle(1000, &["linux/amd64"]);
    let s = Served::start(&f.p, "served.bale", &[]);
    let (status, _, body) = get(&format!("http://{}/v2/multi/app/nothing/here", s.addr), &[]);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    assert_eq!(
        (status, &v["errors"][0]["code"]),
        (404, &"UNSUPPORTED".into())
    );
    let layer = f.amd64.layers[1].clone();
    let served = get(
        &format!("http://{}/v2/multi/app/blobs/{layer}", s.addr),
        &[("Range", "bytes=500-0")],
    );
    // docker-registry, holding the same blob, answers the same way.
    let theirs = get(
        &format!("http://{}/v2/multi/app/blobs/{layer}", f.reg.host),
        &[("Range", "bytes=500-0")],
    );
    assert_eq!((served.0, theirs.0), (416, 416));
}
