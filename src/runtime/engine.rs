//! `docker load` and image queries without the docker CLI: one
//! `POST /images/load` to dockerd's Engine API on its Unix socket, the
//! archive as a chunked body, and `GET`s for what the images hold.
//!
//! The CLI only copies its stdin to that socket, but with gzip layers sent
//! inflated (2.6× the bytes) it spent a tenth of an install's CPU doing so,
//! on a machine whose cores the install keeps busy. The request is one
//! POST and the answer a status line and a few JSON messages, so it is
//! written here rather than through an HTTP client crate: hyper (which
//! `serve` uses) would want the body from an async stream fed by the
//! synchronous tar writer through a channel, and ureq has no Unix sockets.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::{RuntimeError, tail};

/// Most of dockerd's answer to a load kept: `quiet=1` answers it in a
/// line or two.
const MAX_ANSWER: u64 = 1 << 20;

/// Most of dockerd's answer to a query kept: the list of every image on a
/// host with thousands of them is a few megabytes, and a query over it
/// fails the install instead of reading on.
const MAX_QUERY_ANSWER: u64 = 64 << 20;

/// How long an answer sent while the body was still going is waited for
/// (dockerd refusing the request before reading it all).
const EARLY_ANSWER: Duration = Duration::from_secs(5);

/// What the error messages call the request.
const REQUEST: &str = "POST /images/load (Docker Engine API)";

/// Connects to the Engine API at `socket`; `None` when it cannot be
/// reached, so that the caller uses the CLI (which will say why).
pub(crate) fn connect(socket: &Path) -> Option<UnixStream> {
    UnixStream::connect(socket).ok()
}

/// How long a query's answer is waited for: dockerd answers an image or
/// container inspect in milliseconds, even while it loads.
const QUERY_ANSWER: Duration = Duration::from_secs(120);

/// Asks the Engine API at `socket` for `GET path` (path and query, each
/// byte outside a reference's alphabet percent-encoded): its status and
/// body. `None` when the socket cannot be reached; the caller then asks
/// through the CLI, which says why.
///
/// A query through the CLI starts a Go program each time, 30 to 60 ms of
/// CPU: an install asks about every image twice, on cores that verifying
/// and the loads keep busy.
pub(crate) fn get(socket: &Path, path: &str) -> Option<Result<(u16, Vec<u8>), RuntimeError>> {
    let mut stream = connect(socket)?;
    let request = || format!("GET {path} (Docker Engine API)");
    let asked = (|| {
        stream.set_read_timeout(Some(QUERY_ANSWER))?;
        stream.set_write_timeout(Some(QUERY_ANSWER))?;
        let head = format!(
            "GET {} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n",
            encode_path(path)
        );
        stream.write_all(head.as_bytes())?;
        read_answer(&mut stream, false, MAX_QUERY_ANSWER)
    })();
    Some(
        asked
            .map(|a| (a.status, a.body))
            .map_err(|e| RuntimeError::Failed {
                command: request(),
                stderr: e.to_string(),
            }),
    )
}

/// `path` with every byte outside `A-Za-z0-9 . _ - / : @ ? = & ,`
/// percent-encoded: an image reference goes into the path as it is (the
/// Engine API's routes take slashes in a name), anything else cannot
/// break the request line.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"._-/:@?=&,".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Loads the archive `write` streams in through `stream`, and reads
/// dockerd's answer: an error it reports, before or after the body, fails
/// the load with its message.
pub(crate) fn load(
    mut stream: UnixStream,
    write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
) -> Result<(), RuntimeError> {
    let failed = |stderr: String| RuntimeError::Failed {
        command: REQUEST.into(),
        stderr,
    };
    let head = "POST /images/load?quiet=1 HTTP/1.1\r\nHost: docker\r\n\
        Content-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\
        Connection: close\r\n\r\n";
    let mut chunked = Chunked {
        inner: &mut stream,
        broken: false,
    };
    let sent = send(&mut chunked, head.as_bytes(), write);
    let broken = chunked.broken;
    if let Err(e) = sent {
        if !broken {
            // The archive itself failed (a blob that changed, a layer to
            // send again): the body stops short and dockerd drops it.
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return Err(failed(format!("stream interrupted: {e}")));
        }
        // dockerd stopped reading: it may have said why.
        let _ = stream.set_read_timeout(Some(EARLY_ANSWER));
        return Err(
            match read_answer(&mut stream, true, MAX_ANSWER).map(|a| a.error()) {
                Ok(Some(said)) => failed(said),
                _ => failed(format!("stream interrupted: {e}")),
            },
        );
    }
    let answer = read_answer(&mut stream, false, MAX_ANSWER)
        .map_err(|e| failed(format!("reading the answer: {e}")))?;
    match answer.error() {
        Some(said) => Err(failed(said)),
        None => Ok(()),
    }
}

/// Sends the request's head, the body `write` gives (in chunks of a
/// megabyte: dockerd's reader wakes once per chunk) and its last chunk.
fn send(
    chunked: &mut Chunked<'_>,
    head: &[u8],
    write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    if let Err(e) = chunked.inner.write_all(head) {
        chunked.broken = true;
        return Err(e);
    }
    {
        let mut body = io::BufWriter::with_capacity(1 << 20, &mut *chunked);
        write(&mut body)?;
        body.flush()?;
    }
    chunked.finish()
}

/// A writer that sends each write as one HTTP/1.1 chunk, and remembers
/// whether the socket failed (as against the data it was given).
struct Chunked<'a> {
    inner: &'a mut UnixStream,
    broken: bool,
}

impl Chunked<'_> {
    /// The last, empty chunk.
    fn finish(&mut self) -> io::Result<()> {
        let r = self.inner.write_all(b"0\r\n\r\n");
        self.broken |= r.is_err();
        r
    }
}

impl Write for Chunked<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let size = format!("{:x}\r\n", buf.len());
        let r = self
            .inner
            .write_all(size.as_bytes())
            .and_then(|()| self.inner.write_all(buf))
            .and_then(|()| self.inner.write_all(b"\r\n"));
        self.broken |= r.is_err();
        r.map(|()| buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// dockerd's answer: its status code and its body (de-chunked).
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Answer {
    /// What dockerd reported as the error, if it did: a status other than
    /// 200 (its body `{"message": …}`), or a JSON message of the stream
    /// carrying `error` or `errorDetail`.
    fn error(&self) -> Option<String> {
        let messages: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(&self.body)
            .into_iter::<serde_json::Value>()
            .map_while(Result::ok)
            .collect();
        let said = |v: &serde_json::Value| {
            v["errorDetail"]["message"]
                .as_str()
                .or_else(|| v["error"].as_str())
                .or_else(|| v["message"].as_str())
                .map(str::to_owned)
        };
        if self.status != 200 {
            let text = messages
                .iter()
                .find_map(said)
                .unwrap_or_else(|| tail(&self.body));
            return Some(format!("dockerd answered {}: {text}", self.status));
        }
        messages
            .iter()
            .find(|v| v.get("error").is_some() || v.get("errorDetail").is_some())
            .map(|v| said(v).unwrap_or_else(|| v.to_string()))
    }
}

/// Reads the whole answer (the connection closes after it), at most
/// `max` bytes of it. An answer sent `early`, before the body was
/// all read, may end in a reset instead of the end of the stream (Linux
/// resets a Unix socket closed with data still unread in it): what
/// arrived before the reset is the answer.
fn read_answer(stream: &mut UnixStream, early: bool, max: u64) -> io::Result<Answer> {
    let mut raw = Vec::new();
    let read = match stream.take(max + 1).read_to_end(&mut raw) {
        Err(e) if early && !raw.is_empty() && e.kind() == io::ErrorKind::ConnectionReset => {
            raw.len()
        }
        r => r?,
    };
    if read as u64 > max {
        return Err(io::Error::other(format!(
            "dockerd's answer is over {max} bytes"
        )));
    }
    parse_answer(&raw)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("dockerd's answer: {what}"),
    )
}

/// Splits an HTTP/1.1 answer into its status and body.
fn parse_answer(raw: &[u8]) -> io::Result<Answer> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("headers not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1."))
        .and_then(|l| l.get(2..5))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| bad("no status line"))?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(Answer { status, body })
}

/// The data of a chunked body; one cut short gives what arrived.
fn dechunk(mut rest: &[u8]) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return Ok(body);
        };
        let size = std::str::from_utf8(&rest[..eol])
            .ok()
            .map(|s| s.split(';').next().unwrap_or_default().trim())
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or_else(|| bad("bad chunk size"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        let take = size.min(rest.len());
        body.extend_from_slice(&rest[..take]);
        rest = rest.get(take + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A fake dockerd for the faults a real one does not make on demand:
    /// it reads the request as `serve` says, then answers `answer`.
    fn fake(
        serve: impl FnOnce(&mut UnixStream) -> Vec<u8> + Send + 'static,
        answer: impl AsRef<[u8]> + Send + 'static,
    ) -> (tempfile::TempDir, std::thread::JoinHandle<Vec<u8>>) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("d.sock");
        let listener = UnixListener::bind(&path).unwrap_or_else(|e| panic!("{e}"));
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap_or_else(|e| panic!("{e}"));
            let got = serve(&mut s);
            let _ = s.write_all(answer.as_ref());
            got
        });
        (dir, server)
    }

    /// Reads a whole chunked request; its body.
    fn whole_body(s: &mut UnixStream) -> Vec<u8> {
        let mut raw = Vec::new();
        let mut buf = [0u8; 65536];
        while !raw.ends_with(b"0\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_default();
        dechunk(&raw[end + 4..]).unwrap_or_default()
    }

    fn run(dir: &tempfile::TempDir, data: &[u8], fail_after: bool) -> Result<(), RuntimeError> {
        let stream = connect(&dir.path().join("d.sock")).unwrap_or_else(|| panic!("no socket"));
        load(stream, &mut |w| {
            w.write_all(data)?;
            if fail_after {
                return Err(io::Error::other("blob changed"));
            }
            Ok(())
        })
    }

    #[test]
    fn the_archive_arrives_whole_and_a_quiet_answer_is_success() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (dir, server) = fake(
            whole_body,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
             2e\r\n{\"stream\":\"Loaded image: localhost/t/app:1\\n\"}\r\n0\r\n\r\n",
        );
        run(&dir, &data, false).unwrap_or_else(|e| panic!("{e}"));
        assert!(server.join().unwrap_or_default() == data);
    }

    #[test]
    fn an_error_in_the_answer_stream_fails_the_load_with_dockerds_words() {
        let (dir, server) = fake(
            whole_body,
            "HTTP/1.1 200 OK\r\n\r\n{\"errorDetail\":{\"message\":\"no space left on device\"},\"error\":\"no space left on device\"}\n",
        );
        let err = run(&dir, b"tar bytes", false).err().map(|e| e.to_string());
        let _ = server.join();
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("no space left on device")),
            "{err:?}"
        );
    }

    #[test]
    fn a_refusal_before_the_body_is_read_is_reported_not_a_broken_pipe() {
        // dockerd answers at once and closes: the body's writes fail.
        let (dir, server) = fake(
            |_| Vec::new(),
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n\r\n{\"message\":\"the daemon is shutting down\"}\n",
        );
        let data = vec![7u8; 32 << 20];
        let err = run(&dir, &data, false).err().map(|e| e.to_string());
        let _ = server.join();
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("500") && e.contains("the daemon is shutting down")),
            "{err:?}"
        );
    }

    /// Reads a request's head (up to its blank line).
    fn request_head(s: &mut UnixStream) -> Vec<u8> {
        let mut raw = Vec::new();
        let mut byte = [0u8; 1];
        while !raw.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte) {
                Ok(1) => raw.push(byte[0]),
                _ => break,
            }
        }
        raw
    }

    #[test]
    fn a_query_sends_one_get_and_returns_status_and_dechunked_body() {
        let (dir, server) = fake(
            request_head,
            "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n\
             1e\r\n{\"message\":\"No such image: x\"}\r\n0\r\n\r\n",
        );
        let got = get(
            &dir.path().join("d.sock"),
            "/images/docker.io/x:1 \r\nEvil: 1/json",
        );
        let head = String::from_utf8(server.join().unwrap_or_default()).unwrap_or_default();
        let (status, body) = got
            .unwrap_or_else(|| panic!("no socket"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, 404);
        assert_eq!(body, b"{\"message\":\"No such image: x\"}");
        // A hostile name cannot add a header: its space and line break
        // are encoded into the path.
        assert!(
            head.starts_with("GET /images/docker.io/x:1%20%0D%0AEvil:%201/json HTTP/1.1\r\n"),
            "{head:?}"
        );
    }

    #[test]
    fn a_host_with_thousands_of_images_is_listed_past_the_load_answers_bound() {
        // Real entries carry tags, sizes and labels too: a few thousand
        // images list past 1 MiB.
        let entry = format!("{{\"Id\":\"sha256:{}\",\"Labels\":null}}", "a".repeat(64));
        let list = format!("[{}]", vec![entry; 3000 * 8].join(","));
        assert!(list.len() as u64 > MAX_ANSWER);
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{list}",
            list.len()
        );
        let (dir, server) = fake(request_head, answer);
        let got = get(&dir.path().join("d.sock"), "/images/json?all=1");
        let _ = server.join();
        let (status, body) = got
            .unwrap_or_else(|| panic!("no socket"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, 200);
        assert_eq!(body, list.as_bytes());
    }

    #[test]
    fn a_query_to_no_socket_is_none_so_the_cli_is_asked() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert!(get(&dir.path().join("absent.sock"), "/_ping").is_none());
    }

    #[test]
    fn an_archive_that_fails_midway_never_ends_its_body() {
        let (dir, server) = fake(
            |s| {
                let mut raw = Vec::new();
                let _ = s.read_to_end(&mut raw);
                raw
            },
            "",
        );
        let err = run(&dir, b"first bytes", true).err().map(|e| e.to_string());
        let raw = server.join().unwrap_or_default();
        assert!(
            err.as_deref().is_some_and(|e| e.contains("blob changed")),
            "{err:?}"
        );
        // dockerd saw the connection close without the last chunk: it
        // loads nothing from a body cut short.
        assert!(!raw.ends_with(b"0\r\n\r\n"), "the body was ended");
    }
}
