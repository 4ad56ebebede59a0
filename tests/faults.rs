//! Faults a real registry will not produce, from a hostile server of our own.

mod common;

use bale::error::exit;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::hostile::{Hostile, Reply, Req};
use common::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    None,
    CorruptLayer,
    ShortLayer,
    LongLayer,
    TooManyRequestsOnce,
    UnavailableTwice,
    CutOnce,
    CutAlways,
    RangeIgnored,
    Forbidden,
    EndlessManifest,
    MediaTypeLie,
    WrongDigestHeader,
    RedirectToOtherHost,
}

struct Image {
    manifest: Vec<u8>,
    config: Vec<u8>,
    layer: Vec<u8>,
}

impl Image {
    fn new() -> Image {
        let layer = gzip_layer(&[("data", &noise(42, 300_000))]);
        let (config, manifest) =
            image_docs("linux", "amd64", None, std::slice::from_ref(&layer), false);
        Image {
            manifest,
            config,
            layer: layer.blob,
        }
    }
}

fn ranged(req: &Req, body: &[u8], content_type: &str) -> Reply {
    let start = req
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok());
    match start {
        Some(s) if s < body.len() => Reply::Full {
            status: 206,
            headers: vec![
                ("Content-Type".into(), content_type.into()),
                (
                    "Content-Range".into(),
                    format!("bytes {s}-{}/{}", body.len() - 1, body.len()),
                ),
            ],
            body: body[s..].to_vec(),
        },
        _ => Reply::ok(content_type, body.to_vec()),
    }
}

/// Serves `image` as `repo:1`, with `fault` applied; `other` is where a
/// redirect points. Requires a bearer token, as Docker Hub does.
fn serve(fault: Fault, image: Arc<Image>, other: Option<String>) -> Hostile {
    let layer_hits = Arc::new(AtomicUsize::new(0));
    let manifest_hits = Arc::new(AtomicUsize::new(0));
    let token_host = Arc::new(std::sync::Mutex::new(String::new()));
    let th = token_host.clone();
    let server = Hostile::start(move |req| {
        let realm = format!(
            "http://{}/token",
            th.lock().map(|h| h.clone()).unwrap_or_default()
        );
        if req.path.starts_with("/token") {
            return Reply::ok("application/json", b"{\"token\":\"tok-123\"}".to_vec());
        }
        if req.header("authorization") != Some("Bearer tok-123") {
            return Reply::Full {
                status: 401,
                headers: vec![(
                    "WWW-Authenticate".into(),
                    format!(
                        "Bearer realm=\"{realm}\",service=\"hostile\",scope=\"repository:test/img:pull\""
                    ),
                )],
                body: vec![],
            };
        }
        let manifest_digest = sha(&image.manifest);
        let config_path = format!("/v2/test/img/blobs/{}", sha(&image.config));
        let layer_path = format!("/v2/test/img/blobs/{}", sha(&image.layer));
        if req.path == "/v2/test/img/manifests/1"
            || req.path == format!("/v2/test/img/manifests/{manifest_digest}")
        {
            let n = manifest_hits.fetch_add(1, Ordering::SeqCst);
            return match fault {
                Fault::EndlessManifest => Reply::Endless {
                    status: 200,
                    headers: vec![("Content-Type".into(), OCI_MANIFEST.into())],
                },
                Fault::MediaTypeLie => Reply::ok(OCI_INDEX, image.manifest.clone()),
                Fault::WrongDigestHeader => Reply::Full {
                    status: 200,
                    headers: vec![
                        ("Content-Type".into(), OCI_MANIFEST.into()),
                        ("Docker-Content-Digest".into(), sha(b"other")),
                    ],
                    body: image.manifest.clone(),
                },
                Fault::TooManyRequestsOnce if n == 0 => Reply::Full {
                    status: 429,
                    headers: vec![("Retry-After".into(), "1".into())],
                    body: vec![],
                },
                _ => Reply::ok(OCI_MANIFEST, image.manifest.clone()),
            };
        }
        if req.path == config_path {
            return Reply::ok("application/octet-stream", image.config.clone());
        }
        if req.path == layer_path {
            let n = layer_hits.fetch_add(1, Ordering::SeqCst);
            let body = &image.layer;
            let half = body.len() / 2;
            return match fault {
                Fault::CorruptLayer => {
                    let mut b = body.clone();
                    b[half] ^= 0x01;
                    Reply::ok("application/octet-stream", b)
                }
                Fault::ShortLayer => Reply::ok("application/octet-stream", body[..half].to_vec()),
                Fault::LongLayer => {
                    let mut b = body.clone();
                    b.extend_from_slice(b"trailing garbage");
                    Reply::ok("application/octet-stream", b)
                }
                Fault::TooManyRequestsOnce if n == 0 => Reply::Full {
                    status: 429,
                    headers: vec![("Retry-After".into(), "1".into())],
                    body: vec![],
                },
                Fault::UnavailableTwice if n < 2 => Reply::status(503),
                Fault::CutOnce if n == 0 => Reply::Cut {
                    status: 200,
                    headers: vec![],
                    body: body.clone(),
                    after: half,
                },
                Fault::CutAlways => Reply::Cut {
                    status: 200,
                    headers: vec![],
                    body: body.clone(),
                    after: 1000,
                },
                Fault::RangeIgnored if n == 0 => Reply::Cut {
                    status: 200,
                    headers: vec![],
                    body: body.clone(),
                    after: half,
                },
                Fault::RangeIgnored => Reply::ok("application/octet-stream", body.clone()),
                Fault::Forbidden => Reply::status(403),
                Fault::RedirectToOtherHost => Reply::Full {
                    status: 307,
                    headers: vec![(
                        "Location".into(),
                        format!(
                            "http://{}/storage/layer?sig=abc",
                            other.clone().unwrap_or_default()
                        ),
                    )],
                    body: vec![],
                },
                _ => ranged(req, body, "application/octet-stream"),
            };
        }
        if req.path == "/v2/" {
            return Reply::ok("application/json", b"{}".to_vec());
        }
        Reply::status(404)
    });
    if let Ok(mut h) = token_host.lock() {
        *h = server.host();
    }
    server
}

fn project_for(server: &Hostile) -> Project {
    Project::new(&format!(
        "[bundle]\nname = \"t\"\nversion = \"1.0.0\"\n[images]\napp = \"{}/test/img:1\"\n",
        server.host()
    ))
}

fn layer_requests(server: &Hostile, image: &Image) -> Vec<Req> {
    let path = format!("/v2/test/img/blobs/{}", sha(&image.layer));
    // Only authorised ones: the first, anonymous request of a run is answered 401.
    server
        .requests()
        .into_iter()
        .filter(|r| r.path == path && r.header("authorization").is_some())
        .collect()
}

#[track_caller]
fn assert_stored(p: &Project, image: &Image) {
    let blobs = p.store_blobs();
    for d in [sha(&image.manifest), sha(&image.config), sha(&image.layer)] {
        assert!(
            blobs.contains(&(d.clone(), true)),
            "{d} not stored: {blobs:?}"
        );
    }
}

#[track_caller]
fn assert_not_stored(p: &Project, image: &Image) {
    let layer = sha(&image.layer);
    assert!(
        !p.store_blobs().iter().any(|(d, _)| *d == layer),
        "corrupt layer was stored"
    );
}

#[test]
fn bearer_token_flow_then_clean_fetch() {
    let image = Arc::new(Image::new());
    let server = serve(Fault::None, image.clone(), None);
    let p = project_for(&server);
    p.bale(&["lock"]).ok();
    p.bale(&["fetch"]).ok();
    assert_stored(&p, &image);
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.path.starts_with("/token?")
                && r.path.contains("scope=repository%3Atest%2Fimg%3Apull"))
    );
}

#[test]
fn one_corrupted_byte_stores_nothing_and_names_image_and_digest() {
    let image = Arc::new(Image::new());
    let server = serve(Fault::CorruptLayer, image.clone(), None);
    let p = project_for(&server);
    p.bale(&["lock"]).ok();
    let run = p.bale(&["fetch"]);
    run.fails(exit::INTEGRITY);
    let err = run.stderr();
    assert!(err.contains(&sha(&image.layer)), "{}", run.describe());
    assert!(
        err.contains(&format!("{}/test/img:1", server.host())),
        "{}",
        run.describe()
    );
    assert!(err.contains("digest mismatch"), "{}", run.describe());
    assert_not_stored(&p, &image);
    let partials: Vec<_> = std::fs::read_dir(p.store.join("tmp"))
        .map(|r| r.flatten().collect())
        .unwrap_or_default();
    assert!(partials.is_empty(), "corrupt partial kept");
}

#[test]
fn long_body_is_refused() {
    let image = Arc::new(Image::new());
    let server = serve(Fault::LongLayer, image.clone(), None);
    let p = project_for(&server);
    p.bale(&["lock"]).ok();
    let run = p.bale(&["fetch"]);
    run.fails(exit::INTEGRITY);
    assert!(run.stderr().contains("more than"), "{}", run.describe());
    assert_not_stored(&p, &image);
}

#[test]
fn short_body_is_resumed_then_refused_when_it_never_completes() {
    let image = Arc::new(Image::new());
    let server = serve(Fault::ShortLayer, image.clone(), None);
    let p = project_for(&server);
    p.bale(&["lock"]).ok();
    let run = p.bale(&["fetch"]);
    assert_ne!(run.code(), 0, "{}", run.describe());
    assert!(run.stderr().contains("ended after"), "{}", run.describe());
    assert_not_stored(&p, &image);
    // Bounded: a handful of attempts, not a loop.
    assert!(layer_requests(&server, &image).len() <= 7);
}

#[test]
fn retry_after_is_honoured_on_429() {
    let image = Arc::new(Image::new());
    let server = serve(Fault::TooManyRequestsOnce, image.clone(), None);
    let p = project_for(&server);
    p.bale(&["lock"]).ok();
    p.bale(&["fetch"]).ok();
    assert_stored(&p, &image);
    let reqs = layer_requests(&server, &image);
    assert_eq!(reqs.len(), 2);
    assert!(
        reqs[1].at.duration_since(reqs[0].at) >= Duration::from_millis(950),
        "Retry-After: 1 not honoured"
    );
}

#[test]
fn service_unavailable_then_success() {
    let image = Arc::new(Image::new());
    let server = serve(Fault::UnavailableTwice, image.clone(), None);
    let p = project_for(&server);
    p.bale(&["lock"]).ok();
    p.bale(&["fetch"]).ok();
    assert_stored(&p, &image);
    assert_eq!(layer_requests(&server, &image).len(), 3);
}

#[test]
fn cut_connection_resumes_with_range() {
    let image = Arc::new(Image::new());
    let server = serve(Fault::CutOnce, image.clone(), None);
    let p = project_for(&server);
    p.bale(&["lock"]).ok();
    let run = p.bale(&["fetch", "--json"]);
    run.ok();
    assert_stored(&p, &image);
    let reqs = layer_requests(&server, &image);
    assert_eq!(reqs.len(), 2);
    let half = image.layer.len() / 2;
    assert_eq!(
        reqs[1].header("range"),
        Some(format!("bytes={half}-").as_str())
    );
    let total = (image.layer.len() + image.config.len() + image.manifest.len()) as u64;
    assert_eq!(
        run.summary()["transferred"],
        total,
        "resumed bytes counted once: {}",
        run.describe()
    );
}

#[test]
fn cut_connection_every_time_fails_bounded() {
    let image = Arc::new(Image::new());
    let server = serve(Fault::CutAlways, image.clone(), None);
    let p = project_for(&server);
    p.bale(&["lock"]).ok();
    let run = p.bale(&["fetch"]);
    run.fails(exit::REGISTRY);
    assert!(
        run.stderr().contains(&sha(&image.layer)),
        "{}",
        run.describe()
    );
    assert_not_stored(&p, &image);
    assert!(layer_requests(&server, &image).len() <= 7);
}

#[test]
fn range_ignored_restarts_cleanly() {
    let image = Arc::new(Image::new());
    let server = serve(Fault::RangeIgnored, image.clone(), None);
    let p = project_for(&server);
    p.bale(&["lock"]).ok();
    p.bale(&["fetch"]).ok();
    assert_stored(&p, &image);
    assert_eq!(layer_requests(&server, &image).len(), 2);
}

#[test]
fn other_client_errors_fail_fast_naming_the_image() {
    let image = Arc::new(Image::new());
    let server = serve(Fault::Forbidden, image.clone(), None);
    let p = project_for(&server);
    p.bale(&["lock"]).ok();
    let run = p.bale(&["fetch"]);
    run.fails(exit::REGISTRY);
    assert!(
        run.stderr()
            .contains(&format!("{}/test/img:1", server.host())),
        "{}",
        run.describe()
    );
    assert_eq!(
        layer_requests(&server, &image).len(),
        1,
        "403 must not be retried"
    );
}

#[test]
fn a_refused_fetch_leaves_no_empty_partial_file_in_the_store() {
    let image = Arc::new(Image::new());
    let server = serve(Fault::Forbidden, image.clone(), None);
    let p = project_for(&server);
    p.bale(&["lock"]).ok();
    p.bale(&["fetch"]).fails(exit::REGISTRY);
    let leftovers: Vec<_> = std::fs::read_dir(p.store.join("tmp"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "a refused fetch left {leftovers:?} in the store's tmp"
    );
}

#[test]
fn endless_manifest_is_cut_off() {
    let image = Arc::new(Image::new());
    let server = serve(Fault::EndlessManifest, image.clone(), None);
    let p = project_for(&server);
    let run = p.bale(&["lock"]);
    run.fails(exit::REGISTRY);
    assert!(
        run.stderr().contains("larger than 4194304 bytes"),
        "{}",
        run.describe()
    );
    assert!(!p.path().join("bundle.lock").exists());
}

#[test]
fn manifest_served_as_another_media_type_is_rejected() {
    let image = Arc::new(Image::new());
    let server = serve(Fault::MediaTypeLie, image.clone(), None);
    let p = project_for(&server);
    let run = p.bale(&["lock"]);
    assert_ne!(run.code(), 0);
    assert!(
        run.stderr().contains("media type contradicts content"),
        "{}",
        run.describe()
    );
}

#[test]
fn wrong_docker_content_digest_is_rejected() {
    let image = Arc::new(Image::new());
    let server = serve(Fault::WrongDigestHeader, image.clone(), None);
    let p = project_for(&server);
    p.bale(&["lock"]).fails(exit::INTEGRITY);
}

#[test]
fn no_authorization_follows_a_redirect_to_another_host() {
    let image = Arc::new(Image::new());
    let layer = image.layer.clone();
    // The storage host: another loopback address, as a CDN would be another host.
    let storage = Hostile::start_on("127.0.0.2", move |_| {
        Reply::ok("application/octet-stream", layer.clone())
    });
    let server = serve(
        Fault::RedirectToOtherHost,
        image.clone(),
        Some(storage.host()),
    );
    let p = project_for(&server);
    p.bale(&["lock"]).ok();
    p.bale(&["fetch"]).ok();
    assert_stored(&p, &image);
    let at_storage = storage.requests();
    assert_eq!(at_storage.len(), 1);
    assert_eq!(
        at_storage[0].header("authorization"),
        None,
        "credentials leaked to {}",
        storage.host()
    );
    assert_eq!(layer_requests(&server, &image).len(), 1);
}

#[test]
fn outdated_reports_an_html_answer_as_a_failure_not_a_moved_tag() {
    let image = Arc::new(Image::new());
    let good = serve(Fault::None, image.clone(), None);
    let p = project_for(&good);
    p.bale(&["lock"]).ok();
    // The same registry name now answers manifests with a web page.
    let html = Hostile::start(|req| {
        if req.path == "/v2/" {
            return Reply::ok("application/json", b"{}".to_vec());
        }
        Reply::ok(
            "text/html",
            b"<html><body>Please log in</body></html>".to_vec(),
        )
    });
    for file in ["bundle.toml", "bundle.lock"] {
        let text = p.read(file).replace(&good.host(), &html.host());
        p.write(file, &text);
    }
    let r = p.bale(&["outdated", "--json"]);
    r.fails(bale::error::exit::REGISTRY);
    assert!(!r.stdout().contains("\"moved\""), "{}", r.describe());
    assert!(!r.stderr().contains("Please log in"), "{}", r.describe());
}
