//! `bale push` into a real docker-registry: htpasswd auth behind TLS with a
//! CA the test makes, a second push of the same bundle, and a connection
//! cut in the middle of a blob.

mod common;

use bale::error::exit;

use std::process::Command;

use common::bundles::{MultiBundle, locked_manifest, multi_bundle};
use common::hostile::CutProxy;
use common::*;

/// `skopeo inspect --raw` of `reference` on the TLS registry with `creds`.
fn raw_over_tls(b: &MultiBundle, reference: &str, creds: &str) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--creds", creds, "--cert-dir"])
        .arg(b.p.path().join("certs"))
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap_or_else(|e| panic!("skopeo: {e}"));
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn login(b: &MultiBundle, host: &str, user: &str, password: &str) {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    b.p.write(
        "docker-config/config.json",
        &format!("{{\"auths\":{{\"{host}\":{{\"auth\":\"{auth}\"}}}}}}"),
    );
}

fn json_lines(run: &Run) -> Vec<serde_json::Value> {
    run.stdout()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn push_to_an_htpasswd_registry_behind_tls_keeps_every_digest_and_a_second_push_uploads_nothing() {
    let b = multi_bundle(300_000, &["linux/amd64"]);
    let dir = b.p.path();
    loopback_cert(dir);
    std::fs::create_dir_all(dir.join("certs")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(dir.join("ca.crt"), dir.join("certs/ca.crt")).unwrap_or_else(|e| panic!("{e}"));
    let site = Registry::start_tls(Some(("ops", "s3cret-pass")), dir);
    let to = format!("{}/site", site.host);
    let push = |extra: &[&str]| {
        let mut args = vec![
            "push",
            "served.bale",
            "--public-key",
            "keys/k.pub",
            "--to",
            &to,
            "--json",
        ];
        args.extend_from_slice(extra);
        b.p.bale(&args)
    };
    // No credentials: refused, saying how to log in.
    push(&["--ca-cert", "ca.crt"])
        .fails(exit::REGISTRY)
        .says("unauthorized")
        .says("docker login");
    login(&b, &site.host, "ops", "s3cret-pass");
    // Without the site's CA the registry's certificate is not trusted.
    push(&[]).fails(exit::REGISTRY);
    let first = push(&["--ca-cert", "ca.crt"]);
    first.ok();
    let lines = json_lines(&first);
    let summary = lines.last().cloned().unwrap_or_default();
    assert_eq!(summary["event"], "summary", "{}", first.describe());
    assert!(
        summary["blobs_uploaded"].as_u64().unwrap_or(0) >= 5,
        "{summary}"
    );
    // web and worker share busybox's layer: the second one is mounted.
    assert_eq!(summary["blobs_mounted"], 1, "{summary}");
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "blob" && l["how"] == "mounted")
    );
    let creds = "ops:s3cret-pass";
    for (service, repo) in [
        ("web", "site/bale-demo/web:1.0"),
        ("worker", "site/bale-demo/worker:1.0"),
        ("app", "site/multi/app:2.0"),
    ] {
        let raw = raw_over_tls(&b, &format!("{}/{repo}", site.host), creds);
        assert_eq!(sha(&raw), locked_manifest(&b.p, service), "{repo}");
    }
    // The list names arm64, which the bundle did not lock: it cannot be
    // pushed as it is, and the tag names the locked platform.
    let app = summary["images"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == "multi/app"))
        .cloned()
        .unwrap_or_default();
    assert!(
        app["index"]
            .as_str()
            .is_some_and(|n| n.starts_with("not pushed")),
        "{app}"
    );
    assert_eq!(app["digest"], b.amd64.manifest.as_str());

    // Again: every blob and manifest is found in place.
    let again = push(&["--ca-cert", "ca.crt"]);
    again.ok();
    let lines = json_lines(&again);
    let summary = lines.last().cloned().unwrap_or_default();
    assert_eq!(summary["blobs_uploaded"], 0, "{summary}");
    assert_eq!(summary["bytes_uploaded"], 0, "{summary}");
    assert!(
        lines
            .iter()
            .filter(|l| l["event"] == "manifest")
            .all(|l| l["present"] == true),
        "{}",
        again.stdout()
    );
}

#[test]
fn a_multi_platform_bundle_pushes_its_index_byte_for_byte() {
    let b = multi_bundle(1000, &["linux/amd64", "linux/arm64"]);
    let site = Registry::start();
    b.p.bale(&[
        "push",
        "served.bale",
        "--public-key",
        "keys/k.pub",
        "--to",
        &site.host,
    ])
    .ok()
    .says("index pushed");
    assert_eq!(
        sha(&skopeo_raw(&format!("{}/multi/app:2.0", site.host))),
        b.list
    );
    for m in [&b.amd64.manifest, &b.arm64.manifest] {
        assert_eq!(
            &sha(&skopeo_raw(&format!("{}/multi/app@{m}", site.host))),
            m
        );
    }
}

#[test]
fn a_connection_cut_in_the_middle_of_a_blob_is_resumed() {
    // A 3 MB layer in 256 KiB chunks; the link drops after 2 MB of the
    // push's traffic, most of which is that layer's chunks.
    let b = multi_bundle(3_000_000, &["linux/amd64"]);
    let site = Registry::start();
    let proxy = CutProxy::start(&site.host, 2_000_000);
    let run = b.p.bale(&[
        "push",
        "served.bale",
        "--public-key",
        "keys/k.pub",
        "--to",
        &proxy.host(),
        "--chunk-size",
        "256K",
        "--json",
    ]);
    run.ok();
    assert_eq!(proxy.cuts(), 1, "the proxy never cut a connection");
    let lines = json_lines(&run);
    let resumed: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["event"] == "resumed").collect();
    assert_eq!(resumed.len(), 1, "{}", run.stdout());
    // distribution 2.8 drops an upload whose chunk was cut (its size no
    // longer matches its state), so the blob starts again at 0; a registry
    // that keeps it answers its Range, and the push goes on from there.
    // Either way it goes on from a chunk boundary, never from a guess.
    let offset = resumed[0]["offset"].as_u64().unwrap_or(1);
    assert_eq!(offset % (256 * 1024), 0, "{}", run.stdout());
    let summary = lines.last().cloned().unwrap_or_default();
    assert_eq!(summary["resumes"], 1, "{summary}");
    // What arrived is exactly the locked image.
    assert_eq!(
        sha(&skopeo_raw(&format!("{}/multi/app:2.0", site.host))),
        b.amd64.manifest
    );
    let layer = &b.amd64.layers[1];
    let out = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{}/multi/app:2.0", site.host))
        .arg(format!("oci:{}:app", b.p.path().join("copied").display()))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copied = std::fs::read(
        b.p.path()
            .join("copied/blobs/sha256")
            .join(layer.trim_start_matches("sha256:")),
    )
    .unwrap_or_default();
    assert_eq!(&sha(&copied), layer);
}

#[test]
fn a_bundle_that_fails_verification_is_not_pushed() {
    let b = multi_bundle(1000, &["linux/amd64"]);
    let mut bytes = std::fs::read(b.p.path().join("served.bale")).unwrap_or_else(|e| panic!("{e}"));
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(b.p.path().join("tampered.bale"), bytes).unwrap_or_else(|e| panic!("{e}"));
    let site = Registry::start();
    b.p.bale(&[
        "push",
        "tampered.bale",
        "--public-key",
        "keys/k.pub",
        "--to",
        &site.host,
    ])
    .fails(exit::INTEGRITY);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let body = agent
        .get(&format!("http://{}/v2/_catalog", site.host))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default();
    assert!(body.contains("\"repositories\":[]"), "{body}");
    // A target that is not REGISTRY[/PREFIX] is refused before anything.
    b.p.bale(&[
        "push",
        "served.bale",
        "--public-key",
        "keys/k.pub",
        "--to",
        "reg/Bad Prefix",
    ])
    .fails(exit::INVALID_INPUT)
    .says("REGISTRY[/PREFIX]");
}

/// A registry that has no blob, starts every upload, and answers the rest
/// with `upload`; challenges for Basic credentials first.
fn lying_registry(
    upload: impl Fn(&common::hostile::Req) -> Option<common::hostile::Reply> + Send + Sync + 'static,
) -> common::hostile::Hostile {
    use common::hostile::{Hostile, Reply};
    Hostile::start(move |req| {
        if req.header("authorization").is_none() {
            return Reply::Full {
                status: 401,
                headers: vec![("WWW-Authenticate".into(), "Basic realm=\"r\"".into())],
                body: vec![],
            };
        }
        if let Some(r) = upload(req) {
            return r;
        }
        if req.path == "/v2/" {
            return Reply::ok("application/json", b"{}".to_vec());
        }
        Reply::status(404)
    })
}

fn push_to(b: &MultiBundle, host: &str) -> Run {
    push_with(b, host, &[])
}

fn push_with(b: &MultiBundle, host: &str, extra: &[&str]) -> Run {
    let to = format!("{host}/lying");
    let mut args = vec![
        "push",
        "served.bale",
        "--public-key",
        "keys/k.pub",
        "--to",
        &to,
    ];
    args.extend_from_slice(extra);
    b.p.bale(&args)
}

/// A PATCH taken whole: 202 at `/v2/lying/uploads/u1`, confirming up to
/// the end of its Content-Range.
fn chunk_taken(req: &common::hostile::Req) -> common::hostile::Reply {
    let end = req
        .header("content-range")
        .and_then(|r| r.split_once('-'))
        .map(|(_, e)| e.to_owned())
        .unwrap_or_default();
    common::hostile::Reply::Full {
        status: 202,
        headers: vec![
            ("Location".into(), "/v2/lying/uploads/u1".into()),
            ("Range".into(), format!("0-{end}")),
        ],
        body: vec![],
    }
}

#[test]
fn credentials_never_follow_an_upload_location_to_another_origin() {
    use common::hostile::{Hostile, Reply};
    let b = multi_bundle(3000, &["linux/amd64"]);
    // Where the registry sends the upload: another origin, which records
    // what it is sent and takes nothing.
    let elsewhere = Hostile::start_on("127.0.0.2", |_| Reply::status(404));
    let other = elsewhere.host();
    let location = other.clone();
    let reg = lying_registry(move |req| {
        (req.method == "POST").then(|| Reply::Full {
            status: 202,
            headers: vec![(
                "Location".into(),
                format!("http://{location}/v2/lying/multi/app/blobs/uploads/u1"),
            )],
            body: vec![],
        })
    });
    login(&b, &reg.host(), "alice", "s3cret-pass");
    let r = push_to(&b, &reg.host());
    assert_ne!(r.code(), 0, "{}", r.describe());
    let seen = elsewhere.requests();
    assert!(!seen.is_empty(), "the upload never reached its Location");
    for req in &seen {
        assert_eq!(
            req.header("authorization"),
            None,
            "credentials sent to {other}: {} {}",
            req.method,
            req.path
        );
    }
    // The registry itself did get them.
    assert!(
        reg.requests()
            .iter()
            .any(|r| r.header("authorization").is_some())
    );
}

#[test]
fn an_upload_the_registry_never_takes_fails_after_a_few_tries_naming_the_blob() {
    use common::hostile::Reply;
    let b = multi_bundle(300_000, &["linux/amd64"]);
    let layer = b.amd64.layers[1].clone();
    let big = format!("/blobs/{layer}");
    let mount_big = format!("mount={layer}");
    let reg = lying_registry(move |req| match req.method.as_str() {
        // Every other blob is there already: only the large layer uploads.
        // A blob is asked for by a HEAD, or (up to 1 MiB) by the mount
        // that opens its upload.
        "HEAD" if !req.path.ends_with(&big) => Some(Reply::status(200)),
        "POST" if req.path.contains("mount=") && !req.path.contains(&mount_big) => {
            Some(Reply::status(201))
        }
        "PUT" if req.path.contains("/manifests/") => Some(Reply::status(201)),
        "POST" => Some(Reply::Full {
            status: 202,
            headers: vec![(
                "Location".into(),
                "/v2/lying/multi/app/blobs/uploads/u1".into(),
            )],
            body: vec![],
        }),
        "PATCH" => Some(Reply::Full {
            status: 202,
            headers: vec![
                (
                    "Location".into(),
                    "/v2/lying/multi/app/blobs/uploads/u1".into(),
                ),
                ("Range".into(), "0-1023".into()),
            ],
            body: vec![],
        }),
        _ => None,
    });
    login(&b, &reg.host(), "alice", "pw");
    // In chunks: a blob that fits in one goes up in a single PUT.
    let r = push_with(&b, &reg.host(), &["--chunk-size", "65536"]);
    r.fails(bale::error::exit::REGISTRY)
        .says("the registry confirmed only 1024 of the")
        .says(&format!("multi/app@{layer}"));
    // Counted once credentials were sent (the first is answered 401).
    let patches = reg
        .requests()
        .iter()
        .filter(|q| q.method == "PATCH" && q.header("authorization").is_some())
        .count();
    // Before: over 100,000 PATCH requests in 25 s.
    assert!(patches <= 5, "{patches} PATCH requests");
}

#[test]
fn a_registry_that_never_answers_fails_the_push_within_two_minutes() {
    // Accepts connections and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let host = silent
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .to_string();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let held = held.clone();
        silent
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("{e}"));
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(200);
            while std::time::Instant::now() < deadline {
                match silent.accept() {
                    Ok((s, _)) => held.lock().map(|mut h| h.push(s)).unwrap_or(()),
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
                }
            }
        });
    }
    let b = multi_bundle(3000, &["linux/amd64"]);
    let started = std::time::Instant::now();
    let r = push_to(&b, &host);
    let took = started.elapsed();
    r.fails(bale::error::exit::REGISTRY);
    // Before: about twelve minutes (120 s a request, five retries).
    assert!(
        took < std::time::Duration::from_secs(120),
        "the push took {took:?} against a silent registry"
    );
}

/// ureq frames a bodiless POST or PUT as chunked; a registry (or a proxy
/// in front of one) that answers chunked requests with 411 would take no
/// upload at all. Such a registry, which otherwise takes every byte, gets
/// the whole push, and no request arrives chunked.
#[test]
fn a_registry_that_refuses_chunked_requests_still_takes_the_whole_push() {
    use common::hostile::Reply;
    let b = multi_bundle(300_000, &["linux/amd64"]);
    let reg = lying_registry(|req| {
        if req.header("transfer-encoding").is_some() {
            return Some(Reply::status(411));
        }
        let at =
            |path: &str| -> Vec<(String, String)> { vec![("Location".into(), path.to_owned())] };
        match req.method.as_str() {
            "POST" => Some(Reply::Full {
                status: 202,
                headers: at("/v2/lying/uploads/u1"),
                body: vec![],
            }),
            "PATCH" => Some(chunk_taken(req)),
            "PUT" if req.header("content-length").is_some() => Some(Reply::status(201)),
            _ => None,
        }
    });
    login(&b, &reg.host(), "alice", "pw");
    let r = push_to(&b, &reg.host());
    r.ok();
    let requests = reg.requests();
    let chunked: Vec<String> = requests
        .iter()
        .filter(|q| q.header("transfer-encoding").is_some())
        .map(|q| format!("{} {}", q.method, q.path))
        .collect();
    assert!(chunked.is_empty(), "sent chunked: {chunked:?}");
    // Every blob went up: a POST each, closed by a PUT with Content-Length.
    let posts = requests
        .iter()
        .filter(|q| q.method == "POST" && q.header("authorization").is_some())
        .count();
    let closing = requests
        .iter()
        .filter(|q| q.method == "PUT" && q.path.contains("/uploads/"))
        .count();
    assert!(posts >= 5, "{posts} uploads started");
    assert_eq!(closing, posts, "every upload closed once");
    // Every blob fits in one chunk (64 MiB): each went up in its one PUT.
    assert!(!requests.iter().any(|q| q.method == "PATCH"));
}

/// Opens every upload at `/v2/lying/uploads/u1`, takes every chunk whole
/// and every PUT (the upload's last request, or a manifest).
fn takes_every_upload(req: &common::hostile::Req) -> Option<common::hostile::Reply> {
    use common::hostile::Reply;
    match req.method.as_str() {
        "POST" => Some(Reply::Full {
            status: 202,
            headers: vec![("Location".into(), "/v2/lying/uploads/u1".into())],
            body: vec![],
        }),
        "PATCH" => Some(chunk_taken(req)),
        "PUT" => Some(Reply::status(201)),
        _ => None,
    }
}

/// A blob of up to 1 MiB is asked for by the POST that opens its upload,
/// a mount from its own repository: no HEAD first, one request instead of
/// two (a registry spends about 1.4 ms of CPU on each). One the registry
/// answers 201 is counted as there, and none of its bytes go. A larger
/// blob is still asked for by a HEAD first: sent again, it would cost more
/// than the question.
#[test]
fn small_blobs_are_asked_for_by_the_post_that_opens_their_upload() {
    use common::hostile::Reply;
    let b = multi_bundle(1_500_000, &["linux/amd64"]);
    let big = b.amd64.layers[1].to_string();
    let base = b.amd64.layers[0].to_string();
    let there = format!("mount={base}&from=lying/multi/app");
    let reg = lying_registry(move |req| match req.method.as_str() {
        // The app's base layer is there already.
        "POST" if req.path.contains(&there) => Some(Reply::status(201)),
        _ => takes_every_upload(req),
    });
    login(&b, &reg.host(), "alice", "pw");
    // In chunks of 1 MiB, as much as the fake reads of a request.
    let r = push_with(&b, &reg.host(), &["--json", "--chunk-size", "1048576"]);
    r.ok();
    let requests: Vec<_> = reg
        .requests()
        .into_iter()
        .filter(|q| q.header("authorization").is_some())
        .collect();
    let heads: Vec<&str> = requests
        .iter()
        .filter(|q| q.method == "HEAD" && q.path.contains("/blobs/"))
        .map(|q| q.path.as_str())
        .collect();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(heads[0].ends_with(&big), "{heads:?}");
    let posts: Vec<&str> = requests
        .iter()
        .filter(|q| q.method == "POST")
        .map(|q| q.path.as_str())
        .collect();
    assert!(posts.len() >= 5, "{posts:?}");
    // The large layer, just missed by its HEAD, is not asked for again;
    // every other POST asks.
    let plain = posts.iter().filter(|p| p.ends_with("/uploads/")).count();
    assert_eq!(plain, 1, "{posts:?}");
    assert_eq!(
        posts
            .iter()
            .filter(|p| p.contains("?mount=sha256:"))
            .count(),
        posts.len() - 1,
        "{posts:?}"
    );
    let summary = r.summary();
    assert_eq!(summary["resumes"], 0, "{summary}");
    assert_eq!(summary["blobs_present"], 1, "{summary}");
    assert!(
        !requests
            .iter()
            .any(|q| q.path.contains(&format!("digest={base}"))),
        "the base layer was sent"
    );
    assert!(
        requests
            .iter()
            .any(|q| q.path.contains(&format!("digest={big}"))),
        "the large layer was not sent"
    );
}

/// The spec says a registry that cannot mount opens the upload anyway; one
/// that refuses the mount's query outright (400) gets a plain POST, and
/// takes the whole push.
#[test]
fn a_registry_that_refuses_mount_queries_still_takes_the_whole_push() {
    use common::hostile::Reply;
    let b = multi_bundle(300_000, &["linux/amd64"]);
    let reg = lying_registry(|req| match req.method.as_str() {
        "POST" if req.path.contains("mount=") => Some(Reply::status(400)),
        _ => takes_every_upload(req),
    });
    login(&b, &reg.host(), "alice", "pw");
    let r = push_with(&b, &reg.host(), &["--json"]);
    r.ok();
    let summary = r.summary();
    assert_eq!(summary["blobs_present"], 0, "{summary}");
    assert_eq!(summary["blobs_mounted"], 0, "{summary}");
    let uploaded = summary["blobs_uploaded"].as_u64().unwrap_or(0);
    let closed = reg
        .requests()
        .iter()
        .filter(|q| q.method == "PUT" && q.path.contains("/uploads/"))
        .count() as u64;
    assert!(uploaded >= 5, "{summary}");
    assert_eq!(closed, uploaded, "every upload closed once");
}

/// A blob that fits in one chunk goes up in a single PUT; when the
/// registry fails that PUT (503), the blob goes on in chunks from where
/// the registry says the upload stands, and the push completes.
#[test]
fn a_single_put_the_registry_fails_goes_on_in_chunks() {
    use common::hostile::Reply;
    use std::sync::atomic::{AtomicBool, Ordering};
    let b = multi_bundle(300_000, &["linux/amd64"]);
    let failed = AtomicBool::new(false);
    let at = || vec![("Location".to_owned(), "/v2/lying/uploads/u1".to_owned())];
    let reg = lying_registry(move |req| match req.method.as_str() {
        "POST" => Some(Reply::Full {
            status: 202,
            headers: at(),
            body: vec![],
        }),
        "PUT"
            if req.path.contains("/uploads/")
                && req.header("content-length") != Some("0")
                && !failed.swap(true, Ordering::SeqCst) =>
        {
            Some(Reply::status(503))
        }
        "PUT" => Some(Reply::status(201)),
        "GET" if req.path.contains("/uploads/") => {
            let mut headers = at();
            headers.push(("Range".into(), "0-0".into()));
            Some(Reply::Full {
                status: 204,
                headers,
                body: vec![],
            })
        }
        "PATCH" => Some(chunk_taken(req)),
        _ => None,
    });
    login(&b, &reg.host(), "alice", "pw");
    let r = push_with(&b, &reg.host(), &["--json"]);
    r.ok();
    let requests = reg.requests();
    let patches = requests.iter().filter(|q| q.method == "PATCH").count();
    assert_eq!(patches, 1, "the failed blob went on in one chunk");
    let summary = r.summary();
    assert_eq!(summary["resumes"], 1, "{summary}");
}

/// The attack: the bundle file is changed after `bale push` verified it,
/// towards a registry that checks nothing it is sent (a proxy that
/// rewrites, a registry with a bug). Every blob is hashed again as it is
/// sent and the read that would complete it is held until it hashes to its
/// signed digest: the push fails with the integrity code, naming the blob,
/// no upload of the changed blob is ever closed (no request carrying its
/// digest arrives whole), and the upload is cancelled. Both ways a blob
/// goes up: one PUT (it fits in a chunk) and PATCHes then a PUT; and a
/// bundle cut short in the middle of that blob.
#[test]
fn a_bundle_changed_after_verification_never_completes_an_upload_to_a_registry_that_checks_nothing()
{
    use common::bundles::{flip_in_entry, shrink_in_entry};
    use common::hostile::{Hostile, Reply};
    for (chunk, shrink) in [(64 << 20, false), (64 << 10, false), (64 << 20, true)] {
        let b = multi_bundle(300_000, &["linux/amd64"]);
        let path = b.p.path().join("served.bale");
        let key = bale::sign::VerifyingKey::from_file(&b.p.path().join("keys/k.pub"))
            .unwrap_or_else(|e| panic!("{e}"));
        let bundle = bale::install::OpenBundle::open(&path, &key).unwrap_or_else(|e| panic!("{e}"));
        // The largest blob, before its byte is flipped.
        let f = bale::bundle::source::Source::file(&path).unwrap_or_else(|e| panic!("{e}"));
        let (entries, _) = bale::verify::scan(&f, f.len());
        let largest = entries
            .iter()
            .filter(|e| e.path.as_deref().is_ok_and(|p| p.starts_with("blobs/")))
            .max_by_key(|e| e.size)
            .unwrap_or_else(|| panic!("no blob"));
        let changed = largest
            .path
            .as_deref()
            .map(|p| p.trim_start_matches("blobs/sha256/").to_owned())
            .unwrap_or_default();
        if shrink {
            shrink_in_entry(&path, "blobs/");
        } else {
            flip_in_entry(&path, "blobs/");
        }
        // Takes every upload whole and every manifest, checking nothing.
        let reg = Hostile::start(move |req| match req.method.as_str() {
            "POST" => Reply::Full {
                status: 202,
                headers: vec![("Location".into(), "/v2/lying/app/blobs/uploads/u1".into())],
                body: vec![],
            },
            "PATCH" => chunk_taken(req),
            "PUT" | "DELETE" => Reply::status(201),
            _ => Reply::status(404),
        });
        let client = bale::push::client_with_ca(bale::config::Settings::default(), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let err = bale::push::push(
            &bundle,
            &client,
            &bale::push::PushOptions {
                to: format!("{}/lying", reg.host()),
                chunk,
            },
            &|_| {},
        )
        .err()
        .unwrap_or_else(|| panic!("chunk {chunk}: the changed blob was pushed"));
        let err = bale::Error::from(err);
        assert_eq!(err.exit_code(), exit::INTEGRITY, "{err}");
        let text = err.to_string();
        assert!(text.contains("changed after it was verified"), "{text}");
        // Cut short, what lies after the cut fails too; any may be named.
        if !shrink {
            assert!(text.contains(&changed), "names the blob: {text}");
        }
        let requests = reg.requests();
        let closing: Vec<String> = requests
            .iter()
            .filter(|q| q.method == "PUT" && q.path.contains(&changed))
            .map(|q| q.path.clone())
            .collect();
        assert!(closing.is_empty(), "chunk {chunk}: closed {closing:?}");
        // Cut short, the push may fail before any upload, on a manifest
        // or config past the cut.
        assert!(
            shrink
                || requests
                    .iter()
                    .any(|q| q.method == "DELETE" && q.path.contains("/uploads/")),
            "chunk {chunk}: the upload was not cancelled"
        );
        if chunk < 300_000 {
            assert!(
                requests.iter().any(|q| q.method == "PATCH"),
                "chunk {chunk}: went up in PATCHes"
            );
        }
    }
}
