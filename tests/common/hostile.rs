//! A small, deliberately misbehaving HTTP/1.1 server on loopback, for the
//! faults a real registry will not produce. Every loop in it is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A request as received.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub at: Instant,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What to answer.
pub enum Reply {
    /// A complete response.
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Announces `body.len()` bytes, sends `after`, then closes the connection.
    Cut {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        after: usize,
    },
    /// Chunked body that never ends (bounded at 64 MiB so the test stays finite).
    Endless {
        status: u16,
        headers: Vec<(String, String)>,
    },
}

impl Reply {
    pub fn ok(content_type: &str, body: Vec<u8>) -> Reply {
        Reply::Full {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }
    pub fn status(status: u16) -> Reply {
        Reply::Full {
            status,
            headers: vec![],
            body: vec![],
        }
    }
}

type Handler = dyn Fn(&Req) -> Reply + Send + Sync;

pub struct Hostile {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Req>>>,
    stop: Arc<AtomicBool>,
}

impl Hostile {
    /// Listens on `ip` (a loopback address) at a random port.
    pub fn start_on(ip: &str, handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Hostile {
        let listener =
            TcpListener::bind(format!("{ip}:0")).unwrap_or_else(|e| panic!("bind {ip}: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        {
            let requests = requests.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                // Bounded: the server lives at most 5 minutes.
                let deadline = Instant::now() + Duration::from_secs(300);
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let requests = requests.clone();
                            let handler = handler.clone();
                            std::thread::spawn(move || serve(stream, &*handler, &requests));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        Hostile {
            addr,
            requests,
            stop,
        }
    }

    pub fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Hostile {
        Self::start_on("127.0.0.1", handler)
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn requests(&self) -> Vec<Req> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn serve(stream: TcpStream, handler: &Handler, requests: &Mutex<Vec<Req>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut out = stream;
    // Keep-alive, bounded to 1000 requests per connection.
    for _ in 0..1000 {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        let mut content_length = 0usize;
        for _ in 0..100 {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    content_length = v.trim().parse().unwrap_or(0);
                }
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        let mut body = vec![0u8; content_length.min(1 << 20)];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let req = Req {
            method,
            path,
            headers,
            at: Instant::now(),
        };
        if let Ok(mut r) = requests.lock() {
            r.push(req.clone());
        }
        let reply = handler(&req);
        let head = |status: u16, headers: &[(String, String)], extra: &str| {
            let mut s = format!("HTTP/1.1 {status} {}\r\n", reason(status));
            for (k, v) in headers {
                s.push_str(&format!("{k}: {v}\r\n"));
            }
            s.push_str(extra);
            s.push_str("\r\n");
            s
        };
        match reply {
            Reply::Full {
                status,
                headers,
                body,
            } => {
                let h = head(
                    status,
                    &headers,
                    &format!("Content-Length: {}\r\n", body.len()),
                );
                let send_body = if req.method == "HEAD" {
                    &[][..]
                } else {
                    &body[..]
                };
                if out
                    .write_all(h.as_bytes())
                    .and_then(|_| out.write_all(send_body))
                    .is_err()
                {
                    return;
                }
            }
            Reply::Cut {
                status,
                headers,
                body,
                after,
            } => {
                let h = head(
                    status,
                    &headers,
                    &format!("Content-Length: {}\r\nConnection: close\r\n", body.len()),
                );
                let _ = out.write_all(h.as_bytes());
                let _ = out.write_all(&body[..after.min(body.len())]);
                let _ = out.flush();
                let _ = out.shutdown(std::net::Shutdown::Both);
                return;
            }
            Reply::Endless { status, headers } => {
                let h = head(status, &headers, "Transfer-Encoding: chunked\r\n");
                if out.write_all(h.as_bytes()).is_err() {
                    return;
                }
                let chunk = vec![b' '; 64 * 1024];
                for _ in 0..1024 {
                    let mut c = format!("{:x}\r\n", chunk.len()).into_bytes();
                    c.extend_from_slice(&chunk);
                    c.extend_from_slice(b"\r\n");
                    if out.write_all(&c).is_err() {
                        return;
                    }
                }
                let _ = out.write_all(b"0\r\n\r\n");
                return;
            }
        }
    }
}

/// A TCP proxy in front of a real server that cuts one connection (both
/// directions) once its clients have sent `cut_after` bytes in all, on
/// whichever connection crosses that mark: a link that drops in the middle
/// of an upload, however the client spreads its requests over connections.
/// Everything after passes whole.
/// Bounded: at most 1000 connections, each copy loop ends with its socket.
pub struct CutProxy {
    pub addr: SocketAddr,
    cuts: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl CutProxy {
    pub fn start(upstream: &str, cut_after: u64) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("{e}"));
        let cuts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let total = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, st, up) = (cuts.clone(), stop.clone(), upstream.to_owned());
        std::thread::spawn(move || {
            let mut served = 0;
            while !st.load(Ordering::SeqCst) && served < 1000 {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                served += 1;
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect(&up) else {
                    continue;
                };
                let (cuts, total) = (c.clone(), total.clone());
                std::thread::spawn(move || relay(client, server, cut_after, cuts, total));
            }
        });
        CutProxy { addr, cuts, stop }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// How many connections were cut (at most one).
    pub fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

fn relay(
    client: TcpStream,
    server: TcpStream,
    cut_after: u64,
    cuts: Arc<std::sync::atomic::AtomicUsize>,
    total: Arc<std::sync::atomic::AtomicU64>,
) {
    let (Ok(mut c_read), Ok(mut s_write)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let (mut s_read, mut c_write) = (server, client);
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut s_read, &mut c_write);
        let _ = c_write.shutdown(std::net::Shutdown::Both);
    });
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match c_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let before = total.fetch_add(n as u64, Ordering::SeqCst);
        if before < cut_after
            && before + n as u64 > cut_after
            && cuts
                .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            let keep = (cut_after - before) as usize;
            let _ = s_write.write_all(&buf[..keep]);
            let _ = s_write.shutdown(std::net::Shutdown::Both);
            let _ = c_read.shutdown(std::net::Shutdown::Both);
            break;
        }
        if s_write.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = s_write.shutdown(std::net::Shutdown::Both);
    let _ = back.join();
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
