//! A stand-in egress proxy on 127.0.0.1: HTTP requests in absolute form
//! (`GET http://host:port/path`) are forwarded, `CONNECT host:port` is
//! tunnelled; every request line is recorded, so a test sees what went
//! through it. Names can be mapped to a loopback port (a name no resolver
//! knows is reachable only through this proxy).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Proxy {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    map: Arc<Mutex<HashMap<String, u16>>>,
}

impl Proxy {
    pub fn start() -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let map = Arc::new(Mutex::new(HashMap::new()));
        let (s, m) = (Arc::clone(&seen), Arc::clone(&map));
        std::thread::Builder::new()
            .name(format!("proxy-{}", addr.port()))
            .spawn(move || {
                for c in listener.incoming().flatten() {
                    let (s, m) = (Arc::clone(&s), Arc::clone(&m));
                    std::thread::spawn(move || {
                        let _ = serve(c, &s, &m);
                    });
                }
            })
            .unwrap();
        Proxy { addr, seen, map }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// Requests to `name` (any port) go to 127.0.0.1:`port`.
    pub fn map(&self, name: &str, port: u16) {
        self.map.lock().unwrap().insert(name.to_string(), port);
    }

    /// The request lines seen (`GET http://…`, `CONNECT host:port`).
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn upstream(authority: &str, map: &Mutex<HashMap<String, u16>>) -> std::io::Result<TcpStream> {
    let (host, port) = authority.rsplit_once(':').unwrap_or((authority, "80"));
    let to = match map.lock().unwrap().get(host) {
        Some(p) => format!("127.0.0.1:{p}"),
        None => format!("{host}:{port}"),
    };
    let s = TcpStream::connect(to)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    Ok(s)
}

fn serve(
    c: TcpStream,
    seen: &Mutex<Vec<String>>,
    map: &Mutex<HashMap<String, u16>>,
) -> std::io::Result<()> {
    c.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut r = BufReader::new(c.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let line = line.trim_end().to_string();
    seen.lock().unwrap().push(line.clone());
    let mut head = Vec::new();
    let mut body_len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            body_len = v.trim().parse().unwrap_or(0);
        }
        if !lower.starts_with("connection:") && !lower.starts_with("proxy-connection:") {
            head.push(h);
        }
    }
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut c = c;
    if method == "CONNECT" {
        let up = match upstream(target, map) {
            Ok(u) => u,
            Err(_) => return c.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"),
        };
        c.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
        return pipe(r, c, up);
    }
    let Some(rest) = target.strip_prefix("http://") else {
        return c.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut up = match upstream(authority, map) {
        Ok(u) => u,
        Err(_) => return c.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"),
    };
    let mut req = format!("{method} /{path} HTTP/1.1\r\n");
    for h in head {
        req.push_str(&h);
    }
    req.push_str("Connection: close\r\n\r\n");
    up.write_all(req.as_bytes())?;
    let mut body = vec![0; body_len];
    r.read_exact(&mut body)?;
    up.write_all(&body)?;
    // One request per connection: the answer, then close.
    let mut buf = Vec::new();
    let _ = up.read_to_end(&mut buf);
    c.write_all(&buf)?;
    c.shutdown(std::net::Shutdown::Both)
}

fn pipe(mut from_client: BufReader<TcpStream>, c: TcpStream, up: TcpStream) -> std::io::Result<()> {
    let mut up_r = up.try_clone()?;
    let mut c_w = c.try_clone()?;
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut up_r, &mut c_w);
        let _ = c_w.shutdown(std::net::Shutdown::Write);
    });
    let mut up_w = up;
    let _ = std::io::copy(&mut from_client, &mut up_w);
    let _ = up_w.shutdown(std::net::Shutdown::Write);
    let _ = back.join();
    Ok(())
}
