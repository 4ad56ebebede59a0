//! The distribution API's read side, as a pure function from a request to
//! a reply: which route, which status, which headers, which bytes. The
//! HTTP layer (`mod.rs`) only carries the reply out, so every answer here
//! is testable without a socket.

use crate::digest::Digest;

use crate::catalog::Catalog;

/// The body of a reply.
#[derive(Debug, PartialEq, Eq)]
pub enum Body {
    /// Nothing (HEAD, 416).
    Empty,
    /// Small bytes already in memory (manifests, JSON).
    Bytes(bytes::Bytes),
    /// `len` bytes of a blob from `start`, read from the bundle file and
    /// checked against the blob's verified content before any is sent (a
    /// range as much as the whole blob).
    Blob {
        /// First byte, relative to the blob.
        start: u64,
        /// How many bytes.
        len: u64,
        /// The blob's digest, as verified.
        digest: Digest,
    },
}

/// A reply: status, headers and body.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Headers (Content-Length is among them wherever a body is sent).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Body,
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Base,
    Catalog,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    Upload,
    Unknown,
}

fn route(path: &str) -> Route<'_> {
    let Some(rest) = path.strip_prefix("/v2") else {
        return Route::Unknown;
    };
    if rest.is_empty() || rest == "/" {
        return Route::Base;
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return Route::Unknown;
    };
    if rest == "_catalog" {
        return Route::Catalog;
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Route::Tags(name);
    }
    if rest.contains("/blobs/uploads") {
        return Route::Upload;
    }
    if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        return Route::Manifest(name, reference);
    }
    if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
        return Route::Blob(name, digest);
    }
    Route::Unknown
}

fn error(status: u16, code: &str, message: &str) -> Reply {
    let body = serde_json::json!({
        "errors": [{ "code": code, "message": message, "detail": null }]
    })
    .to_string();
    Reply {
        status,
        headers: vec![
            ("Content-Type", "application/json".into()),
            ("Content-Length", body.len().to_string()),
        ],
        body: Body::Bytes(body.into()),
    }
}

fn json(value: serde_json::Value, link: Option<String>) -> Reply {
    let body = value.to_string();
    let mut headers = vec![
        ("Content-Type", "application/json".into()),
        ("Content-Length", body.len().to_string()),
    ];
    if let Some(l) = link {
        headers.push(("Link", l));
    }
    Reply {
        status: 200,
        headers,
        body: Body::Bytes(body.into()),
    }
}

/// `n` and `last` of a listing's query string.
fn paging(query: Option<&str>) -> (Option<usize>, Option<String>) {
    let mut n = None;
    let mut last = None;
    for pair in query.unwrap_or_default().split('&') {
        match pair.split_once('=') {
            Some(("n", v)) => n = v.parse().ok(),
            Some(("last", v)) => last = Some(v.to_owned()),
            _ => {}
        }
    }
    (n, last)
}

/// One page of `items` (sorted) after `last`, at most `n`, and the next
/// page's link when more follow.
fn page<'a>(
    items: impl Iterator<Item = &'a String>,
    query: Option<&str>,
    base: &str,
) -> (Vec<&'a String>, Option<String>) {
    let (n, last) = paging(query);
    let mut after: Vec<&String> = items
        .filter(|i| last.as_ref().is_none_or(|l| i.as_str() > l.as_str()))
        .collect();
    let mut link = None;
    if let Some(n) = n
        && after.len() > n
    {
        after.truncate(n);
        if let Some(l) = after.last() {
            link = Some(format!("<{base}?n={n}&last={l}>; rel=\"next\""));
        }
    }
    (after, link)
}

/// The byte range a `Range` header asks for within `size`: `Ok(None)` for
/// the whole blob (no header, or one this server ignores: several ranges or
/// not `bytes=`), `Err(())` when unsatisfiable.
fn range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(s), Ok(e)) if s <= e => (s, e.min(size.saturating_sub(1))),
        // An end before the start is unsatisfiable (RFC 9110 calls it
        // invalid; docker-registry answers 416, and so does bale).
        (Ok(_), Ok(_)) => return Err(()),
        (Ok(s), Err(_)) if b.is_empty() => (s, size.saturating_sub(1)),
        (Err(_), Ok(n)) if a.is_empty() => {
            if n == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        _ => return Ok(None),
    };
    if size == 0 || start >= size {
        return Err(());
    }
    Ok(Some((start, end)))
}

fn common(digest: &Digest, content_type: &str, len: u64) -> Vec<(&'static str, String)> {
    vec![
        ("Content-Type", content_type.to_owned()),
        ("Content-Length", len.to_string()),
        ("Docker-Content-Digest", digest.to_string()),
        ("ETag", format!("\"{digest}\"")),
    ]
}

/// Answers one request. `head` answers with the headers a GET would have
/// and no body.
pub fn answer(
    catalog: &Catalog,
    method: &str,
    path: &str,
    query: Option<&str>,
    range_header: Option<&str>,
) -> Reply {
    let head = method == "HEAD";
    if method != "GET" && !head {
        return error(
            405,
            "UNSUPPORTED",
            "this registry is read-only: it serves a signed bundle",
        );
    }
    let mut reply = match route(path) {
        Route::Base => json(serde_json::json!({}), None),
        Route::Catalog => {
            let (names, link) = page(catalog.repositories.keys(), query, "/v2/_catalog");
            json(serde_json::json!({ "repositories": names }), link)
        }
        Route::Tags(name) => match catalog.repositories.get(name) {
            None => error(404, "NAME_UNKNOWN", &format!("no repository {name}")),
            Some(r) => {
                let base = format!("/v2/{name}/tags/list");
                let (tags, link) = page(r.tags.keys(), query, &base);
                json(serde_json::json!({ "name": name, "tags": tags }), link)
            }
        },
        Route::Manifest(name, reference) => manifest(catalog, name, reference),
        Route::Blob(name, digest) => blob(catalog, name, digest, range_header),
        Route::Upload => error(
            405,
            "UNSUPPORTED",
            "this registry is read-only: it serves a signed bundle",
        ),
        // The distribution spec's error table has no NOT_FOUND.
        Route::Unknown => error(404, "UNSUPPORTED", "no such route in the distribution API"),
    };
    if head {
        reply.body = Body::Empty;
    }
    reply
}

fn manifest(catalog: &Catalog, name: &str, reference: &str) -> Reply {
    let Some(repo) = catalog.repositories.get(name) else {
        return error(404, "NAME_UNKNOWN", &format!("no repository {name}"));
    };
    let digest = if reference.contains(':') {
        match reference.parse::<Digest>() {
            Ok(d) if repo.manifests.contains(&d) => d,
            Ok(d) => {
                return error(
                    404,
                    "MANIFEST_UNKNOWN",
                    &format!("{name} has no manifest {d}"),
                );
            }
            Err(_) => {
                return error(
                    400,
                    "DIGEST_INVALID",
                    &format!("not a digest: {}", crate::quote::quote(reference)),
                );
            }
        }
    } else {
        match repo.tags.get(reference) {
            Some(d) => d.clone(),
            None => {
                return error(
                    404,
                    "MANIFEST_UNKNOWN",
                    &format!("{name} has no tag {}", crate::quote::quote(reference)),
                );
            }
        }
    };
    let Some(m) = catalog.manifests.get(&digest) else {
        return error(404, "MANIFEST_UNKNOWN", &format!("no manifest {digest}"));
    };
    Reply {
        status: 200,
        headers: common(&digest, &m.media_type, m.bytes.len() as u64),
        body: Body::Bytes(m.bytes.clone()),
    }
}

fn blob(catalog: &Catalog, name: &str, digest: &str, range_header: Option<&str>) -> Reply {
    let Some(repo) = catalog.repositories.get(name) else {
        return error(404, "NAME_UNKNOWN", &format!("no repository {name}"));
    };
    let Ok(d) = digest.parse::<Digest>() else {
        return error(
            400,
            "DIGEST_INVALID",
            &format!("not a digest: {}", crate::quote::quote(digest)),
        );
    };
    // Clients fetch manifests through the blob route too (containerd does).
    if repo.manifests.contains(&d)
        && let Some(m) = catalog.manifests.get(&d)
    {
        let mut headers = common(&d, "application/octet-stream", m.bytes.len() as u64);
        headers.push(("Accept-Ranges", "bytes".into()));
        return Reply {
            status: 200,
            headers,
            body: Body::Bytes(m.bytes.clone()),
        };
    }
    let span = match catalog.blobs.get(&d) {
        Some(s) if repo.blobs.contains(&d) => *s,
        _ => return error(404, "BLOB_UNKNOWN", &format!("{name} has no blob {d}")),
    };
    match range(range_header, span.size) {
        Err(()) => Reply {
            status: 416,
            headers: vec![
                ("Content-Range", format!("bytes */{}", span.size)),
                ("Content-Length", "0".into()),
            ],
            body: Body::Empty,
        },
        Ok(None) => {
            let mut headers = common(&d, "application/octet-stream", span.size);
            headers.push(("Accept-Ranges", "bytes".into()));
            Reply {
                status: 200,
                headers,
                body: Body::Blob {
                    start: 0,
                    len: span.size,
                    digest: d,
                },
            }
        }
        Ok(Some((start, end))) => {
            let len = end - start + 1;
            let mut headers = common(&d, "application/octet-stream", len);
            headers.push(("Accept-Ranges", "bytes".into()));
            headers.push((
                "Content-Range",
                format!("bytes {start}-{end}/{}", span.size),
            ));
            Reply {
                status: 206,
                headers,
                body: Body::Blob {
                    start,
                    len,
                    digest: d,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Repository, Span, StoredManifest};

    fn catalog() -> (Catalog, Digest, Digest) {
        let mut c = Catalog::default();
        let m = br#"{"schemaVersion":2}"#;
        let md = Digest::of(m);
        let blob = Digest::of(b"layer");
        c.manifests.insert(
            md.clone(),
            StoredManifest {
                media_type: "application/vnd.docker.distribution.manifest.v2+json".into(),
                bytes: bytes::Bytes::from_static(m),
            },
        );
        c.blobs.insert(
            blob.clone(),
            Span {
                offset: 512,
                size: 100,
            },
        );
        let mut r = Repository::default();
        r.tags.insert("1.0".into(), md.clone());
        r.manifests.insert(md.clone());
        r.blobs.insert(blob.clone());
        c.repositories.insert("library/redis".into(), r);
        c.repositories
            .insert("stack/web".into(), Repository::default());
        (c, md, blob)
    }

    fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_manifest_by_tag_keeps_its_bytes_and_docker_media_type() {
        let (c, md, _) = catalog();
        let r = answer(&c, "GET", "/v2/library/redis/manifests/1.0", None, None);
        assert_eq!(r.status, 200);
        assert_eq!(
            header(&r, "Content-Type"),
            Some("application/vnd.docker.distribution.manifest.v2+json")
        );
        assert_eq!(
            header(&r, "Docker-Content-Digest"),
            Some(md.to_string().as_str())
        );
        assert_eq!(
            r.body,
            Body::Bytes(bytes::Bytes::from_static(br#"{"schemaVersion":2}"#))
        );
        let by_digest = answer(
            &c,
            "HEAD",
            &format!("/v2/library/redis/manifests/{md}"),
            None,
            None,
        );
        assert_eq!(by_digest.status, 200);
        assert_eq!(by_digest.body, Body::Empty);
        assert_eq!(header(&by_digest, "Content-Length"), Some("19"));
    }

    #[test]
    fn ranges_are_served_as_206_and_bad_ones_as_416() {
        let (c, _, blob) = catalog();
        let path = format!("/v2/library/redis/blobs/{blob}");
        let r = answer(&c, "GET", &path, None, Some("bytes=10-19"));
        assert_eq!(r.status, 206);
        assert_eq!(header(&r, "Content-Range"), Some("bytes 10-19/100"));
        assert!(matches!(
            r.body,
            Body::Blob {
                start: 10,
                len: 10,
                ..
            }
        ));
        let tail = answer(&c, "GET", &path, None, Some("bytes=-5"));
        assert_eq!(header(&tail, "Content-Range"), Some("bytes 95-99/100"));
        let open = answer(&c, "GET", &path, None, Some("bytes=90-"));
        assert!(matches!(
            open.body,
            Body::Blob {
                start: 90,
                len: 10,
                ..
            }
        ));
        assert_eq!(
            answer(&c, "GET", &path, None, Some("bytes=100-")).status,
            416
        );
        let backwards = answer(&c, "GET", &path, None, Some("bytes=50-0"));
        assert_eq!(backwards.status, 416);
        assert_eq!(header(&backwards, "Content-Range"), Some("bytes */100"));
        let whole = answer(&c, "GET", &path, None, None);
        assert_eq!(whole.status, 200);
        assert!(matches!(whole.body, Body::Blob { len: 100, .. }));
    }

    #[test]
    fn unknown_names_digests_and_writes_get_distribution_errors() {
        let (c, _, blob) = catalog();
        let r = answer(&c, "GET", "/v2/library/nginx/manifests/1.0", None, None);
        assert_eq!(r.status, 404);
        let Body::Bytes(b) = &r.body else {
            panic!("no body")
        };
        assert!(String::from_utf8_lossy(b).contains("NAME_UNKNOWN"));
        assert_eq!(
            answer(&c, "GET", "/v2/library/redis/manifests/2.0", None, None).status,
            404
        );
        // A blob of another repository is not served from this one.
        assert_eq!(
            answer(
                &c,
                "GET",
                &format!("/v2/stack/web/blobs/{blob}"),
                None,
                None
            )
            .status,
            404
        );
        assert_eq!(
            answer(&c, "GET", "/v2/library/redis/blobs/sha256:zz", None, None).status,
            400
        );
        assert_eq!(
            answer(&c, "PUT", "/v2/library/redis/manifests/1.0", None, None).status,
            405
        );
        assert_eq!(
            answer(&c, "POST", "/v2/library/redis/blobs/uploads/", None, None).status,
            405
        );
        assert_eq!(answer(&c, "GET", "/v1/", None, None).status, 404);
    }

    #[test]
    fn listings_page_with_n_and_last() {
        let (c, _, _) = catalog();
        let r = answer(&c, "GET", "/v2/_catalog", Some("n=1"), None);
        let Body::Bytes(b) = &r.body else {
            panic!("no body")
        };
        assert_eq!(&b[..], br#"{"repositories":["library/redis"]}"#);
        assert_eq!(
            header(&r, "Link"),
            Some("</v2/_catalog?n=1&last=library/redis>; rel=\"next\"")
        );
        let r = answer(
            &c,
            "GET",
            "/v2/_catalog",
            Some("n=1&last=library/redis"),
            None,
        );
        let Body::Bytes(b) = &r.body else {
            panic!("no body")
        };
        assert_eq!(&b[..], br#"{"repositories":["stack/web"]}"#);
        let r = answer(&c, "GET", "/v2/library/redis/tags/list", None, None);
        let Body::Bytes(b) = &r.body else {
            panic!("no body")
        };
        assert_eq!(&b[..], br#"{"name":"library/redis","tags":["1.0"]}"#);
    }
}
