//! A client for the OCI distribution protocol, pull side only.
//!
//! Written on `ureq` rather than on `oci-client` because bale needs control
//! that crate does not expose: a hard cap on manifest bodies, resumable blob
//! reads with `Range`, retries that honour `Retry-After`, redirects that never
//! carry `Authorization` to another host, and mirrors tried before the
//! registry itself. See docs/design.md.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use ureq::http::{Response, StatusCode};

use crate::config::{Settings, is_loopback};
use crate::manifest::{ACCEPTED, MAX_MANIFEST_BYTES};
use crate::reference::DOCKER_HUB;

use super::error::RegistryError;
use super::http::{excerpt, header, host_of, parse_challenge, retry_after, unresolvable};

/// How long a connection may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a registry may stay silent: before its answer starts, and
/// between two reads or writes of a body.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// After this long, a request that keeps failing is not tried again: a
/// registry that never answers fails the command in about a minute.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// How requests are retried.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts after the first, for 429, 5xx and connection failures.
    pub retries: u32,
    /// First backoff delay; doubled after each attempt.
    pub base_delay: Duration,
    /// Longest wait, whether from backoff or from `Retry-After`.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, attempt: u32) -> Duration {
        self.base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_delay)
    }
}

/// One host that serves a registry's content: a mirror, or the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// `host[:port]` requests go to.
    pub host: String,
}

impl Endpoint {
    /// `scheme://host`.
    pub fn base(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }
}

/// A manifest as served, bytes untouched.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// The body, exactly as served.
    pub bytes: Vec<u8>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The `Docker-Content-Digest` header, if any.
    pub digest_header: Option<String>,
    /// The host that served it.
    pub endpoint: String,
}

/// An open blob body.
pub struct BlobBody {
    /// The body.
    pub reader: Box<dyn Read + Send>,
    /// Offset of the first byte of `reader`: the offset asked for when the
    /// server honoured `Range`, 0 when it sent the whole blob.
    pub start: u64,
    /// `Content-Length`, if sent.
    pub content_length: Option<u64>,
}

/// What a request sends: nothing, bytes, or a reader opened anew for each
/// attempt (a retry sends the same bytes again).
pub(crate) enum Payload<'a> {
    /// No body.
    Empty,
    /// These bytes.
    Bytes(&'a [u8]),
    /// `len` bytes from a reader that `open` makes.
    Reader {
        /// Opens the body at its first byte.
        open: &'a dyn Fn() -> std::io::Result<Box<dyn Read + 'a>>,
        /// Its length.
        len: u64,
    },
}

#[derive(Clone)]
enum Credential {
    Basic(String, String),
}

/// The client. Cheap to share between threads.
pub struct RegistryClient {
    agent: ureq::Agent,
    settings: Settings,
    retry: RetryPolicy,
    // (endpoint host, repository) → Authorization header value.
    auth: Mutex<HashMap<(String, String), String>>,
    // With a site CA given, registries are reached over HTTPS even where
    // plain HTTP would be allowed (loopback, insecure hosts).
    https_only: bool,
}

impl RegistryClient {
    /// A client with these settings and retry policy.
    pub fn new(settings: Settings, retry: RetryPolicy) -> Self {
        Self::build(settings, retry, None)
    }

    /// A client that trusts only the CA certificates in `ca_pem` (a site's
    /// own CA) and speaks HTTPS to every registry.
    pub fn with_ca(settings: Settings, retry: RetryPolicy, ca_pem: &[u8]) -> Result<Self, String> {
        let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(ca_pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                Ok(_) => None,
                Err(e) => Some(Err(e.to_string())),
            })
            .collect::<Result<_, _>>()?;
        if certs.is_empty() {
            return Err("no PEM certificate in the file".into());
        }
        let roots = ureq::tls::RootCerts::new_with_certs(&certs);
        Ok(Self::build(settings, retry, Some(roots)))
    }

    fn build(settings: Settings, retry: RetryPolicy, roots: Option<ureq::tls::RootCerts>) -> Self {
        let https_only = roots.is_some();
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(r) = roots {
            tls = tls.root_certs(r);
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(ANSWER_TIMEOUT))
            .timeout_per_read(Some(ANSWER_TIMEOUT))
            .timeout_per_write(Some(ANSWER_TIMEOUT))
            .user_agent(concat!("bale/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        RegistryClient {
            agent,
            settings,
            retry,
            auth: Mutex::new(HashMap::new()),
            https_only,
        }
    }

    /// The endpoint that pushes to `host` go to: no mirrors; HTTPS unless
    /// plain HTTP is allowed for it and no CA was given.
    pub fn push_endpoint(&self, host: &str) -> Endpoint {
        Endpoint {
            scheme: if self.settings.allows_http(host) && !self.https_only {
                "http"
            } else {
                "https"
            },
            host: host.to_owned(),
        }
    }

    /// The hosts tried for `domain`, mirrors first.
    pub fn endpoints(&self, domain: &str) -> Vec<Endpoint> {
        let reg = self.settings.registry(domain);
        let mut out: Vec<Endpoint> = reg
            .mirrors
            .iter()
            .map(|m| Endpoint {
                scheme: if self.settings.allows_http(m) || reg.insecure {
                    "http"
                } else {
                    "https"
                },
                host: m.clone(),
            })
            .collect();
        let host = if domain == DOCKER_HUB {
            "registry-1.docker.io".to_owned()
        } else {
            domain.to_owned()
        };
        if reg.upstream || out.is_empty() {
            out.push(Endpoint {
                scheme: if self.settings.allows_http(domain) {
                    "http"
                } else {
                    "https"
                },
                host,
            });
        }
        out
    }

    /// Fetches a manifest by tag or digest, trying mirrors first.
    pub fn manifest(
        &self,
        domain: &str,
        repository: &str,
        reference: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        self.on_endpoints(domain, |ep| {
            let url = format!("{}/v2/{repository}/manifests/{reference}", ep.base());
            let resp = self.get(ep, repository, &url, &[("accept", ACCEPTED.join(", "))])?;
            let content_type = header(&resp, "content-type");
            let digest_header = header(&resp, "docker-content-digest");
            if let Some(len) = header(&resp, "content-length").and_then(|l| l.parse::<u64>().ok())
                && len > MAX_MANIFEST_BYTES
            {
                return Err(RegistryError::TooLarge {
                    url,
                    limit: MAX_MANIFEST_BYTES,
                });
            }
            let mut bytes = Vec::new();
            resp.into_body()
                .into_with_config()
                .limit(u64::MAX)
                .reader()
                .take(MAX_MANIFEST_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| RegistryError::Transport {
                    url: url.clone(),
                    message: e.to_string(),
                })?;
            if bytes.len() as u64 > MAX_MANIFEST_BYTES {
                return Err(RegistryError::TooLarge {
                    url,
                    limit: MAX_MANIFEST_BYTES,
                });
            }
            Ok(FetchedManifest {
                bytes,
                content_type,
                digest_header,
                endpoint: ep.host.clone(),
            })
        })
    }

    /// Opens a blob, from byte `offset` on where the server honours `Range`.
    pub fn blob(
        &self,
        domain: &str,
        repository: &str,
        digest: &str,
        offset: u64,
    ) -> Result<BlobBody, RegistryError> {
        self.on_endpoints(domain, |ep| {
            let url = format!("{}/v2/{repository}/blobs/{digest}", ep.base());
            let mut headers = vec![];
            if offset > 0 {
                headers.push(("range", format!("bytes={offset}-")));
            }
            let resp = self.get(ep, repository, &url, &headers)?;
            let content_length =
                header(&resp, "content-length").and_then(|l| l.parse::<u64>().ok());
            let start = if resp.status() == StatusCode::PARTIAL_CONTENT {
                let range = header(&resp, "content-range").unwrap_or_default();
                let first = range
                    .strip_prefix("bytes ")
                    .and_then(|r| r.split('-').next())
                    .and_then(|n| n.parse::<u64>().ok());
                if first != Some(offset) {
                    return Err(RegistryError::Protocol {
                        url,
                        message: format!(
                            "asked for bytes from {offset}, got Content-Range `{range}`"
                        ),
                    });
                }
                offset
            } else {
                0
            };
            let reader = resp.into_body().into_with_config().limit(u64::MAX).reader();
            Ok(BlobBody {
                reader: Box::new(reader),
                start,
                content_length,
            })
        })
    }

    fn on_endpoints<T>(
        &self,
        domain: &str,
        mut f: impl FnMut(&Endpoint) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let endpoints = self.endpoints(domain);
        let mut failures = Vec::new();
        for ep in &endpoints {
            match f(ep) {
                Ok(v) => return Ok(v),
                Err(e) if e.try_next_endpoint() => failures.push((ep.host.clone(), e)),
                Err(e) => return Err(e),
            }
        }
        // One host: its own error. Several: every one, so that an operator
        // sees that the mirror was tried, and how it failed.
        if failures.len() > 1 {
            let not_found = failures
                .iter()
                .all(|(_, e)| matches!(e, RegistryError::NotFound { .. }));
            return Err(RegistryError::Endpoints {
                domain: domain.to_owned(),
                failures: failures
                    .into_iter()
                    .map(|(h, e)| format!("{h}: {e}"))
                    .collect(),
                not_found,
            });
        }
        Err(failures
            .pop()
            .map(|(_, e)| e)
            .unwrap_or_else(|| RegistryError::Protocol {
                url: domain.to_owned(),
                message: "no endpoint".into(),
            }))
    }

    fn credential(&self, host: &str) -> Option<Credential> {
        let server = match host {
            "docker.io" | "registry-1.docker.io" | "index.docker.io" => {
                "https://index.docker.io/v1/"
            }
            h => h,
        };
        match docker_credential::get_credential(server) {
            Ok(docker_credential::DockerCredential::UsernamePassword(u, p)) => {
                Some(Credential::Basic(u, p))
            }
            _ => None,
        }
    }

    /// GET with authentication, retries and redirects. Returns a 2xx response.
    fn get(
        &self,
        ep: &Endpoint,
        repository: &str,
        url: &str,
        headers: &[(&str, String)],
    ) -> Result<Response<ureq::Body>, RegistryError> {
        self.send(ep, repository, "GET", url, headers, &Payload::Empty, true)
    }

    /// Any request with authentication, redirects and, where `retry`,
    /// retries of 429, 5xx and transport failures. Returns a 2xx response.
    // Each argument is one part of an HTTP request; a struct for them would
    // only be unpacked again here.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send(
        &self,
        ep: &Endpoint,
        repository: &str,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        payload: &Payload<'_>,
        retry: bool,
    ) -> Result<Response<ureq::Body>, RegistryError> {
        let retries = if retry { self.retry.retries } else { 0 };
        let started = std::time::Instant::now();
        let key = (ep.host.clone(), repository.to_owned());
        let mut url = url.to_owned();
        // A URL the registry handed out (an upload's Location) may name
        // another origin: it gets no credentials, and never plain HTTP
        // where the registry speaks HTTPS.
        let target = url::Url::parse(&url).map_err(|e| RegistryError::Protocol {
            url: url.clone(),
            message: format!("not a URL: {e}"),
        })?;
        if ep.scheme == "https" && target.scheme() != "https" {
            return Err(RegistryError::Protocol {
                url,
                message: format!(
                    "refusing to follow {} from https to {}",
                    ep.host,
                    target.scheme()
                ),
            });
        }
        let mut attempt = 0u32;
        let mut authed = false;
        let mut redirects = 0u32;
        // Authorization goes only to the endpoint's own origin (scheme,
        // host and port), never to another one it names or redirects to.
        let origin = url::Url::parse(&ep.base()).ok();
        let same_origin = |u: &url::Url| {
            origin.as_ref().is_some_and(|o| {
                o.scheme() == u.scheme()
                    && o.host_str() == u.host_str()
                    && o.port_or_known_default() == u.port_or_known_default()
            })
        };
        let mut same_host = same_origin(&target);
        loop {
            let auth = if same_host {
                self.auth.lock().ok().and_then(|map| map.get(&key).cloned())
            } else {
                None
            };
            let result = self.run(method, &url, headers, auth.as_deref(), payload)?;
            let failure = match result {
                Err(e) if unresolvable(&e) => {
                    return Err(RegistryError::Unresolvable {
                        host: host_of(&url).unwrap_or_else(|| ep.host.clone()),
                    });
                }
                Err(e) => format!("{e}"),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match status {
                        200..=299 => return Ok(resp),
                        301 | 302 | 303 | 307 | 308 => {
                            redirects += 1;
                            let next = self.redirect(ep, &url, &resp, redirects)?;
                            same_host = same_host && same_origin(&next);
                            url = next.to_string();
                            continue;
                        }
                        401 if !authed && same_host => {
                            authed = true;
                            let challenge = header(&resp, "www-authenticate");
                            let value = self.authenticate(ep, repository, challenge.as_deref())?;
                            if let Ok(mut map) = self.auth.lock() {
                                map.insert(key.clone(), value);
                            }
                            continue;
                        }
                        401 | 403 => {
                            return Err(RegistryError::Unauthorized {
                                registry: ep.host.clone(),
                                message: format!("HTTP {status}: {}", excerpt(resp)),
                            });
                        }
                        404 => return Err(RegistryError::NotFound { url }),
                        429 | 500..=599 => {
                            let wait = retry_after(&resp)
                                .map(|d| d.min(self.retry.max_delay))
                                .unwrap_or_else(|| self.retry.backoff(attempt));
                            if attempt < retries && started.elapsed() < GIVE_UP_AFTER {
                                drop(resp);
                                std::thread::sleep(wait);
                                attempt += 1;
                                continue;
                            }
                            format!("HTTP {status}")
                        }
                        _ => {
                            return Err(RegistryError::Status {
                                url,
                                status,
                                body: excerpt(resp),
                            });
                        }
                    }
                }
            };
            if attempt >= retries || started.elapsed() >= GIVE_UP_AFTER {
                return Err(RegistryError::GaveUp {
                    url,
                    attempts: attempt + 1,
                    last: failure,
                });
            }
            std::thread::sleep(self.retry.backoff(attempt));
            attempt += 1;
        }
    }

    /// Builds and runs one request; `Err` only when it cannot be built or
    /// its payload cannot be read.
    fn run(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        auth: Option<&str>,
        payload: &Payload<'_>,
    ) -> Result<Result<Response<ureq::Body>, ureq::Error>, RegistryError> {
        let mut req = ureq::http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        match payload {
            // ureq frames a bodiless POST or PUT as chunked ("0\r\n\r\n");
            // the upload requests of the distribution spec are specified
            // with `Content-Length: 0`, and some registries and proxies
            // answer chunked requests with 411.
            Payload::Empty if matches!(method, "POST" | "PUT" | "PATCH") => req
                .header("content-length", 0)
                .body(&[][..])
                .map(|r| self.agent.run(r)),
            Payload::Empty => req.body(()).map(|r| self.agent.run(r)),
            Payload::Bytes(b) => req
                .header("content-length", b.len())
                .body(*b)
                .map(|r| self.agent.run(r)),
            Payload::Reader { open, len } => {
                let mut reader = open().map_err(|e| RegistryError::Transport {
                    url: url.to_owned(),
                    message: format!("cannot read what to send: {e}"),
                })?;
                req.header("content-length", *len)
                    .body(ureq::SendBody::from_reader(&mut reader))
                    .map(|r| self.agent.run(r))
            }
        }
        .map_err(|e| RegistryError::Protocol {
            url: url.to_owned(),
            message: format!("cannot build the request: {e}"),
        })
    }

    /// Where a redirect answer sends the request next: at most 5 in a row,
    /// to HTTP or HTTPS only, never down to plain HTTP from a registry
    /// that speaks HTTPS (unless loopback or allowed).
    fn redirect(
        &self,
        ep: &Endpoint,
        url: &str,
        resp: &Response<ureq::Body>,
        redirects: u32,
    ) -> Result<url::Url, RegistryError> {
        let status = resp.status().as_u16();
        let protocol = |message: String| RegistryError::Protocol {
            url: url.to_owned(),
            message,
        };
        let loc = header(resp, "location")
            .ok_or_else(|| protocol(format!("redirect {status} without Location")))?;
        let next = url::Url::parse(url)
            .and_then(|u| u.join(&loc))
            .map_err(|e| protocol(format!("bad redirect Location: {e}")))?;
        if redirects > 5 {
            return Err(protocol("more than 5 redirects".into()));
        }
        let next_host = host_of(next.as_str()).unwrap_or_default();
        if next.scheme() == "http"
            && !(is_loopback(&next_host)
                || self.settings.allows_http(&next_host)
                || ep.scheme == "http")
        {
            return Err(protocol(format!("refusing redirect to plain HTTP {next}")));
        }
        if next.scheme() != "http" && next.scheme() != "https" {
            return Err(protocol(format!("refusing redirect to {next}")));
        }
        Ok(next)
    }

    /// Answers a 401 challenge with an `Authorization` header value.
    fn authenticate(
        &self,
        ep: &Endpoint,
        repository: &str,
        challenge: Option<&str>,
    ) -> Result<String, RegistryError> {
        let unauthorized = |message: String| RegistryError::Unauthorized {
            registry: ep.host.clone(),
            message,
        };
        let challenge = challenge
            .and_then(parse_challenge)
            .ok_or_else(|| unauthorized("401 without a usable WWW-Authenticate header".into()))?;
        let cred = self.credential(&ep.host);
        match challenge.scheme.as_str() {
            "basic" => match cred {
                Some(Credential::Basic(u, p)) => Ok(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                )),
                None => Err(unauthorized(format!(
                    "credentials required: log in with `docker login {}` (bale reads the Docker config file and its credential helpers)",
                    ep.host
                ))),
            },
            "bearer" => {
                let realm = challenge
                    .params
                    .get("realm")
                    .ok_or_else(|| unauthorized("bearer challenge without realm".into()))?;
                let mut token_url = url::Url::parse(realm)
                    .map_err(|e| unauthorized(format!("bad token realm: {e}")))?;
                let realm_host = host_of(realm).unwrap_or_default();
                if token_url.scheme() != "https"
                    && !(is_loopback(&realm_host) || self.settings.allows_http(&realm_host))
                {
                    return Err(unauthorized(format!(
                        "refusing token realm over plain HTTP: {realm}"
                    )));
                }
                {
                    let mut q = token_url.query_pairs_mut();
                    if let Some(s) = challenge.params.get("service") {
                        q.append_pair("service", s);
                    }
                    let scope = challenge
                        .params
                        .get("scope")
                        .cloned()
                        .unwrap_or_else(|| format!("repository:{repository}:pull"));
                    q.append_pair("scope", &scope);
                }
                let mut req = self.agent.get(token_url.as_str());
                if let Some(Credential::Basic(u, p)) = &cred {
                    req = req.header(
                        "authorization",
                        format!(
                            "Basic {}",
                            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                        ),
                    );
                }
                let resp = req
                    .call()
                    .map_err(|e| unauthorized(format!("token request to {realm} failed: {e}")))?;
                if !resp.status().is_success() {
                    return Err(unauthorized(format!(
                        "token request to {realm}: HTTP {}",
                        resp.status().as_u16()
                    )));
                }
                #[derive(serde::Deserialize)]
                struct Token {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let mut body = Vec::new();
                resp.into_body()
                    .into_with_config()
                    .limit(u64::MAX)
                    .reader()
                    .take(1024 * 1024)
                    .read_to_end(&mut body)
                    .map_err(|e| unauthorized(format!("token response: {e}")))?;
                let t: Token = serde_json::from_slice(&body)
                    .map_err(|_| unauthorized("token response is not JSON".into()))?;
                let token = t
                    .token
                    .or(t.access_token)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| unauthorized("token response has no token".into()))?;
                Ok(format!("Bearer {token}"))
            }
            other => Err(unauthorized(format!("unsupported auth scheme `{other}`"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_location_that_downgrades_https_to_http_is_refused() {
        let client = RegistryClient::new(Settings::default(), RetryPolicy::default());
        let ep = Endpoint {
            scheme: "https",
            host: "127.0.0.1:9".into(),
        };
        // Nothing listens on port 9: the refusal comes before any request.
        let e = client
            .send(
                &ep,
                "r",
                "PATCH",
                "http://127.0.0.1:9/v2/r/blobs/uploads/u1",
                &[],
                &Payload::Empty,
                false,
            )
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("refusing to follow 127.0.0.1:9 from https to http"),
            "{e}"
        );
    }

    #[test]
    fn bearer_challenge_is_parsed() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/redis:pull""#,
        )
        .unwrap_or_else(|| panic!("no parse"));
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.docker.io/token");
        assert_eq!(c.params["scope"], "repository:library/redis:pull");
        let b = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap_or_else(|| panic!());
        assert_eq!(b.scheme, "basic");
    }

    #[test]
    fn hub_goes_to_its_api_host_and_loopback_to_http() {
        let c = RegistryClient::new(Settings::default(), RetryPolicy::default());
        assert_eq!(
            c.endpoints("docker.io"),
            vec![Endpoint {
                scheme: "https",
                host: "registry-1.docker.io".into()
            }]
        );
        assert_eq!(c.endpoints("127.0.0.1:5000")[0].scheme, "http");
        assert_eq!(c.endpoints("registry.example")[0].scheme, "https");
    }

    #[test]
    fn upstream_false_keeps_requests_on_mirrors() {
        let mut s = Settings::default();
        s.add_mirror("docker.io=127.0.0.1:5000").ok();
        let c = RegistryClient::new(s.clone(), RetryPolicy::default());
        assert_eq!(c.endpoints("docker.io").len(), 2);
        if let Some(r) = s.registries.get_mut("docker.io") {
            r.upstream = false;
        }
        let c = RegistryClient::new(s, RetryPolicy::default());
        let eps = c.endpoints("docker.io");
        assert_eq!(
            eps,
            vec![Endpoint {
                scheme: "http",
                host: "127.0.0.1:5000".into()
            }]
        );
    }
}
