//! HTTP details of the distribution protocol that need no client: headers,
//! challenges, `Retry-After`, error bodies.

use std::collections::HashMap;
use std::io::Read;
use std::time::Duration;

use ureq::http::Response;

/// A `WWW-Authenticate` challenge: its scheme and parameters.
pub(super) struct Challenge {
    /// `bearer` or `basic`, lowercase.
    pub scheme: String,
    /// Parameters by lowercase name (`realm`, `service`, `scope`).
    pub params: HashMap<String, String>,
}

/// Parses a `WWW-Authenticate` header.
pub(super) fn parse_challenge(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (q[..end].to_owned(), &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        params.insert(key, value);
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

/// Header `name` of `resp`, if present and text.
pub(crate) fn header(resp: &Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `Retry-After` in seconds, where given.
pub(super) fn retry_after(resp: &Response<ureq::Body>) -> Option<Duration> {
    header(resp, "retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Whether `e` is a name that does not resolve (getaddrinfo's failure,
/// which ureq reports as an I/O error with its message).
pub(super) fn unresolvable(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::HostNotFound => true,
        ureq::Error::Io(io) => {
            let m = io.to_string();
            m.contains("failed to lookup address") || m.contains("Name or service not known")
        }
        _ => false,
    }
}

/// `host[:port]` of a URL.
pub(super) fn host_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let host = u.host_str()?.to_owned();
    Some(match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    })
}

/// The start of an error body, without control characters.
pub(super) fn excerpt(mut resp: Response<ureq::Body>) -> String {
    let mut buf = Vec::new();
    let _ = resp.body_mut().as_reader().take(300).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf)
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}
