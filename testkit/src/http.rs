//! A small static HTTP/1.1 server on 127.0.0.1 for apt, dnf and zypper, with
//! programmable routes (errors, delays, hangs, redirects) and request counts.
//!
//! One thread per connection. Dropping the [`Server`] stops accepting, shuts
//! every open socket down (which also ends `Route::Hang` connections and
//! idle keep-alive ones) and joins the threads, waiting at most ~2 s.
//!
//! HTTP details that matter to the package managers:
//! - apt pipelines requests on one connection: bytes read past one request
//!   are kept for the next, and answers go out in order.
//! - apt quotes `~`, `_`, `+`... in URLs (`teleport_16.0.0%7ebeta.1_amd64.deb`):
//!   paths are percent-decoded before lookup (`+` stays a plus).
//! - No `Last-Modified`/`ETag` is sent, so clients never get a 304 for a file
//!   that a test rewrote within the same second; for the same reason a
//!   `Range` that comes with `If-Range` is ignored (the validator cannot
//!   match, RFC 9110 §13.1.5) and the whole file is sent with 200. A plain
//!   single `Range` is answered with 206 (or 416 past the end, which apt uses
//!   to learn that its partial file is complete).
//! - `TCP_NODELAY` plus one buffered write per response: without them Nagle
//!   and delayed ACKs add ~40 ms per pipelined request.
//! - `..` segments are refused (400) and symlinks leading out of the root
//!   give 404.

use std::collections::HashMap;
use std::io::{self, BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What to answer for a path instead of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Answer `status` with `body` after waiting `delay`. The content type is
    /// `application/json` when the body starts with `{` or `[`, else
    /// `text/plain; charset=utf-8`.
    Body {
        status: u16,
        body: Vec<u8>,
        delay: Duration,
    },
    /// Read the request and never answer (until the server is dropped).
    Hang,
    /// Answer `status` (301, 302, 307, 308...) with `Location: location`.
    Redirect { status: u16, location: String },
    /// Decided at request time: `present` when the file `path` exists, else
    /// `absent` (e.g. a readiness endpoint whose answer follows a file an
    /// installed package ships).
    Gate {
        path: PathBuf,
        present: Box<Route>,
        absent: Box<Route>,
    },
}

impl Route {
    /// 200 with `text` and no delay.
    pub fn ok(text: impl Into<Vec<u8>>) -> Route {
        Route::status(200, text)
    }

    /// `code` with `text` and no delay.
    pub fn status(code: u16, text: impl Into<Vec<u8>>) -> Route {
        Route::Body {
            status: code,
            body: text.into(),
            delay: Duration::ZERO,
        }
    }

    /// A `Body` route answered after `delay`.
    pub fn delayed(code: u16, text: impl Into<Vec<u8>>, delay: Duration) -> Route {
        Route::Body {
            status: code,
            body: text.into(),
            delay,
        }
    }

    /// `present` while `path` exists, `absent` otherwise.
    pub fn gate(path: &Path, present: Route, absent: Route) -> Route {
        Route::Gate {
            path: path.to_path_buf(),
            present: Box::new(present),
            absent: Box::new(absent),
        }
    }

    /// 302 to `location`.
    pub fn redirect(location: &str) -> Route {
        Route::Redirect {
            status: 302,
            location: location.to_string(),
        }
    }
}

/// One request as the server parsed it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Percent-decoded path, without the query string.
    pub path: String,
    /// The raw target as sent (with query string, still encoded).
    pub target: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    root: PathBuf,
    routes: Mutex<HashMap<String, Route>>,
    hits: Mutex<HashMap<String, usize>>,
    requests: Mutex<Vec<Request>>,
    stopped: Mutex<bool>,
    stop_signal: Condvar,
    /// Open connections: a clone of the socket (to shut it down) and the
    /// thread serving it.
    conns: Mutex<Vec<(TcpStream, JoinHandle<()>)>>,
}

impl Shared {
    fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap()
    }

    /// Sleeps `d`, returning false at once if the server stops meanwhile.
    fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut stopped = self.stopped.lock().unwrap();
        while !*stopped {
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            stopped = self
                .stop_signal
                .wait_timeout(stopped, deadline - now)
                .unwrap()
                .0;
        }
        false
    }
}

impl Server {
    /// Serves the files below `root` on 127.0.0.1 with an ephemeral port.
    pub fn start(root: &Path) -> Server {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            routes: Mutex::new(HashMap::new()),
            hits: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
            stopped: Mutex::new(false),
            stop_signal: Condvar::new(),
            conns: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                // Thread names fit in Linux's 15-byte comm, so tests can find them in
                // /proc/self/task/*/comm.
                .name(format!("http-acc-{}", addr.port()))
                .spawn(move || accept_loop(listener, shared))
                .expect("spawn acceptor")
        };
        Server {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Overrides `path` (decoded, no query string, e.g. `/dists/x/InRelease`)
    /// for the following requests, including those of open connections.
    pub fn set_route(&self, path: &str, route: Route) {
        self.shared
            .routes
            .lock()
            .unwrap()
            .insert(path.to_string(), route);
    }

    /// Back to serving the file (or 404) for `path`.
    pub fn clear_route(&self, path: &str) {
        self.shared.routes.lock().unwrap().remove(path);
    }

    /// Requests received so far for `path` (any method, any answer).
    pub fn hits(&self, path: &str) -> usize {
        self.shared
            .hits
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Connections currently open (threads not finished yet).
    pub fn open_connections(&self) -> usize {
        self.shared
            .conns
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, h)| !h.is_finished())
            .count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        {
            *self.shared.stopped.lock().unwrap() = true;
            self.shared.stop_signal.notify_all();
        }
        // Wake the blocking accept() with a connection of our own.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        // The acceptor is gone: no connection can be added any more.
        let conns = std::mem::take(&mut *self.shared.conns.lock().unwrap());
        for (stream, _) in &conns {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut pending: Vec<JoinHandle<()>> = conns.into_iter().map(|(_, h)| h).collect();
        while !pending.is_empty() && Instant::now() < deadline {
            let (done, rest): (Vec<_>, Vec<_>) = pending.into_iter().partition(|h| h.is_finished());
            for h in done {
                let _ = h.join();
            }
            pending = rest;
            if !pending.is_empty() {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        if !pending.is_empty() {
            // Never reached in practice (every blocking call is on a socket
            // that was just shut down); detach rather than hang a test.
            eprintln!(
                "testkit http: {} connection thread(s) still running, detached",
                pending.len()
            );
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    for stream in listener.incoming() {
        if shared.is_stopped() {
            return;
        }
        let Ok(stream) = stream else {
            // e.g. EMFILE: do not spin.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn_shared = Arc::clone(&shared);
        let Ok(handle) = std::thread::Builder::new()
            .name(format!("http-conn-{port}"))
            .spawn(move || serve_connection(stream, conn_shared))
        else {
            continue;
        };
        let mut conns = shared.conns.lock().unwrap();
        // Forget connections that are over.
        let (done, open): (Vec<_>, Vec<_>) = std::mem::take(&mut *conns)
            .into_iter()
            .partition(|(_, h)| h.is_finished());
        for (_, h) in done {
            let _ = h.join();
        }
        *conns = open;
        conns.push((clone, handle));
    }
}

const MAX_HEAD: usize = 64 * 1024;

/// Serves requests on one connection until the client closes it, asks to
/// close it, or the server stops.
fn serve_connection(mut stream: TcpStream, shared: Arc<Shared>) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let head = match read_head(&mut stream, &mut buf) {
            Some(h) => h,
            None => return,
        };
        if shared.is_stopped() {
            return;
        }
        let req = match parse_head(&head) {
            Ok(r) => r,
            Err(status) => {
                let _ = respond(&mut stream, status, &[], b"bad request\n", false, false);
                return;
            }
        };
        let (req, version) = req;

        if !skip_body(&mut stream, &mut buf, &req) {
            return;
        }

        let connection = req.header("connection").unwrap_or("").to_ascii_lowercase();
        let keep_alive = if version == "HTTP/1.0" {
            connection.contains("keep-alive")
        } else {
            !connection.contains("close")
        };

        *shared
            .hits
            .lock()
            .unwrap()
            .entry(req.path.clone())
            .or_insert(0) += 1;
        shared.requests.lock().unwrap().push(req.clone());

        let Some(ok) = answer(&mut stream, &shared, &req, keep_alive) else {
            return;
        };
        if ok.is_err() || !keep_alive {
            let _ = stream.shutdown(Shutdown::Write);
            // Let the client read everything before the socket closes.
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = io::copy(&mut stream, &mut io::sink());
            return;
        }
    }
}

/// Skips a request body (none expected for GET/HEAD); chunked bodies are
/// not supported. False when the connection is to be dropped.
fn skip_body(stream: &mut TcpStream, buf: &mut Vec<u8>, req: &Request) -> bool {
    if req.header("transfer-encoding").is_some() {
        let _ = respond(
            stream,
            501,
            &[],
            b"chunked requests not supported\n",
            false,
            false,
        );
        return false;
    }
    if let Some(len) = req.header("content-length") {
        let Ok(mut len) = len.trim().parse::<usize>() else {
            let _ = respond(stream, 400, &[], b"bad content-length\n", false, false);
            return false;
        };
        let take = len.min(buf.len());
        buf.drain(..take);
        len -= take;
        if len > 0 && io::copy(&mut (&*stream).take(len as u64), &mut io::sink()).is_err() {
            return false;
        }
    }
    true
}

/// Answers one request (the route's answer, else the file). None when the
/// connection is to be dropped without an answer.
fn answer(
    stream: &mut TcpStream,
    shared: &Shared,
    req: &Request,
    keep_alive: bool,
) -> Option<io::Result<()>> {
    let head_only = req.method == "HEAD";
    let ok = if req.method != "GET" && req.method != "HEAD" {
        respond(
            stream,
            405,
            &[("Allow", "GET, HEAD".into())],
            b"method not allowed\n",
            head_only,
            keep_alive,
        )
    } else {
        let mut route = shared.routes.lock().unwrap().get(&req.path).cloned();
        while let Some(Route::Gate {
            path,
            present,
            absent,
        }) = route
        {
            route = Some(if path.exists() { *present } else { *absent });
        }
        match route {
            Some(Route::Hang) => {
                // Never answer: drain whatever comes until the client
                // gives up or the server shuts this socket down.
                let _ = io::copy(stream, &mut io::sink());
                return None;
            }
            Some(Route::Body {
                status,
                body,
                delay,
            }) => {
                if !delay.is_zero() && !shared.sleep(delay) {
                    return None;
                }
                let trimmed = body.iter().find(|b| !b.is_ascii_whitespace());
                let ctype = match trimmed {
                    Some(b'{') | Some(b'[') => "application/json",
                    _ => "text/plain; charset=utf-8",
                };
                respond(
                    stream,
                    status,
                    &[("Content-Type", ctype.into())],
                    &body,
                    head_only,
                    keep_alive,
                )
            }
            Some(Route::Redirect { status, location }) => respond(
                stream,
                status,
                &[("Location", location)],
                b"",
                head_only,
                keep_alive,
            ),
            Some(Route::Gate { .. }) => unreachable!("gates are resolved above"),
            None => serve_file(stream, &shared.root, req, head_only, keep_alive),
        }
    };
    Some(ok)
}

/// Reads up to the end of a request head (`\r\n\r\n`), keeping any bytes
/// after it in `buf` (pipelining). None on EOF, error or an oversized head.
fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = buf[..end].to_vec();
            buf.drain(..end + 4);
            return Some(head);
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses a request head into a [`Request`] and the HTTP version, or the
/// status code to refuse it with.
fn parse_head(head: &[u8]) -> Result<(Request, String), u16> {
    let text = std::str::from_utf8(head).map_err(|_| 400u16)?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().ok_or(400u16)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(505);
    }
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(400u16)?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    // Absolute-form targets (`http://host/path`) are legal too.
    let path_part = match target.strip_prefix("http://") {
        Some(rest) => rest.find('/').map(|i| &rest[i..]).unwrap_or("/"),
        None => target,
    };
    let raw_path = path_part.split(['?', '#']).next().unwrap_or("");
    let path = percent_decode(raw_path).ok_or(400u16)?;
    if !path.starts_with('/') || path.contains('\0') {
        return Err(400);
    }
    Ok((
        Request {
            method: method.to_string(),
            path,
            target: target.to_string(),
            headers,
        },
        version.to_string(),
    ))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}

fn write_head(
    w: &mut impl Write,
    status: u16,
    headers: &[(&str, String)],
    content_length: u64,
    keep_alive: bool,
) -> io::Result<()> {
    write!(w, "HTTP/1.1 {status} {}\r\n", reason(status))?;
    for (name, value) in headers {
        write!(w, "{name}: {value}\r\n")?;
    }
    write!(w, "Content-Length: {content_length}\r\n")?;
    write!(
        w,
        "Connection: {}\r\n\r\n",
        if keep_alive { "keep-alive" } else { "close" }
    )
}

fn respond(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
    head_only: bool,
    keep_alive: bool,
) -> io::Result<()> {
    let mut w = BufWriter::new(stream);
    write_head(&mut w, status, headers, body.len() as u64, keep_alive)?;
    if !head_only {
        w.write_all(body)?;
    }
    w.flush()
}

fn serve_file(
    stream: &mut TcpStream,
    root: &Path,
    req: &Request,
    head_only: bool,
    keep_alive: bool,
) -> io::Result<()> {
    let mut path = root.to_path_buf();
    for segment in req.path.split('/') {
        match segment {
            "" | "." => {}
            ".." => return respond(stream, 400, &[], b"no traversal\n", head_only, keep_alive),
            s => path.push(s),
        }
    }
    // Symlinks may not lead out of the root.
    let inside = match (path.canonicalize(), root.canonicalize()) {
        (Ok(p), Ok(r)) => p.starts_with(r),
        _ => false,
    };
    let file = if inside {
        std::fs::File::open(&path).ok()
    } else {
        None
    };
    let meta = file
        .as_ref()
        .and_then(|f| f.metadata().ok())
        .filter(|m| m.is_file());
    let (Some(mut file), Some(meta)) = (file, meta) else {
        return respond(stream, 404, &[], b"not found\n", head_only, keep_alive);
    };
    let len = meta.len();
    let mut headers = vec![
        ("Content-Type", "application/octet-stream".to_string()),
        ("Accept-Ranges", "bytes".to_string()),
    ];

    let range = match (req.header("range"), req.header("if-range")) {
        (Some(r), None) => parse_range(r, len),
        _ => RangeReq::None,
    };
    let (status, start, count) = match range {
        RangeReq::None => (200, 0, len),
        RangeReq::Unsatisfiable => {
            headers.push(("Content-Range", format!("bytes */{len}")));
            return respond(stream, 416, &headers, b"", head_only, keep_alive);
        }
        RangeReq::Bytes(a, b) => {
            headers.push(("Content-Range", format!("bytes {a}-{b}/{len}")));
            (206, a, b - a + 1)
        }
    };
    let mut w = BufWriter::with_capacity(64 * 1024, stream);
    write_head(&mut w, status, &headers, count, keep_alive)?;
    if !head_only {
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(start))?;
        let copied = io::copy(&mut (&mut file).take(count), &mut w)?;
        if copied != count {
            // The file shrank under us: the promised length cannot be kept.
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file changed"));
        }
    }
    w.flush()
}

enum RangeReq {
    None,
    Unsatisfiable,
    /// First and last byte, inclusive.
    Bytes(u64, u64),
}

/// A single `bytes=a-b`, `bytes=a-` or `bytes=-n` range. Anything else
/// (several ranges, other units, garbage) is ignored: a 200 with the whole
/// file is always a correct answer.
fn parse_range(value: &str, len: u64) -> RangeReq {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeReq::None;
    };
    if spec.contains(',') {
        return RangeReq::None;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeReq::None;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // Suffix: the last n bytes.
        let Ok(n) = b.parse::<u64>() else {
            return RangeReq::None;
        };
        if n == 0 || len == 0 {
            return RangeReq::Unsatisfiable;
        }
        return RangeReq::Bytes(len.saturating_sub(n), len - 1);
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeReq::None;
    };
    let end = if b.is_empty() {
        len.saturating_sub(1)
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e.min(len.saturating_sub(1)),
            _ => return RangeReq::None,
        }
    };
    if start >= len {
        return RangeReq::Unsatisfiable;
    }
    RangeReq::Bytes(start, end)
}
