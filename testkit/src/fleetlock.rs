//! A FleetLock stand-in on 127.0.0.1 (the protocol Zincati speaks to
//! airlock): `POST /v1/pre-reboot` takes a slot of the group's counting
//! semaphore, `POST /v1/steady-state` gives it back. Both need the header
//! `fleet-lock-protocol: true` and the body
//! `{"client_params":{"id":"...","group":"..."}}`.
//!
//! Semantics, as the protocol describes them: a group has at most
//! [`FleetLock::set_slots`] holders; locks are owned and recursive (a
//! holder that asks again gets 200 and still holds one slot; releasing a
//! slot that is not held is a 200 no-op). Failures answer a non-200 status
//! with `{"kind": ..., "value": ...}`.
//!
//! Every take and release is recorded with its instant and the number of
//! holders afterwards, so a test can check that at no instant more than N
//! hosts held a slot. [`Mode`] makes the server answer 500 or drop every
//! connection unanswered (unreachable).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The protocol.
    Serve,
    /// 500 with an error body to every request.
    Error500,
    /// Close every connection without answering.
    Unreachable,
}

/// What happened to a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Take,
    Release,
}

/// One recorded change of the semaphore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at: Instant,
    pub op: Op,
    pub id: String,
    pub group: String,
    /// Holders of `group` right after the change.
    pub holders: usize,
}

/// One request as received (valid or not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub path: String,
    pub protocol_header: bool,
    pub body: String,
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    slots: usize,
    mode: Option<Mode>,
    holders: BTreeMap<String, BTreeSet<String>>,
    events: Vec<Event>,
    requests: Vec<Request>,
    refused: usize,
}

pub struct FleetLock {
    port: u16,
    inner: Arc<Mutex<Inner>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl FleetLock {
    /// A server with `slots` slots per group, serving the protocol.
    pub fn start(slots: usize) -> FleetLock {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let inner = Arc::new(Mutex::new(Inner {
            slots,
            mode: Some(Mode::Serve),
            ..Default::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (i2, s2) = (inner.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let i3 = i2.clone();
                std::thread::spawn(move || serve(conn, &i3));
            }
        });
        FleetLock {
            port,
            inner,
            stop,
            accept: Some(accept),
        }
    }

    /// The base URL (`http://127.0.0.1:<port>`), as the `fleet-lock` file
    /// takes it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn set_slots(&self, slots: usize) {
        self.inner.lock().unwrap().slots = slots;
    }

    pub fn set_mode(&self, mode: Mode) {
        self.inner.lock().unwrap().mode = Some(mode);
    }

    /// Who holds a slot of `group` now.
    pub fn holders(&self, group: &str) -> Vec<String> {
        self.inner
            .lock()
            .unwrap()
            .holders
            .get(group)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every take and release, in order.
    pub fn events(&self) -> Vec<Event> {
        self.inner.lock().unwrap().events.clone()
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// How many slot requests were refused because the group was full.
    pub fn refused(&self) -> usize {
        self.inner.lock().unwrap().refused
    }

    /// The most holders `group` ever had at once (from the record).
    pub fn max_holders(&self, group: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| e.group == group)
            .map(|e| e.holders)
            .max()
            .unwrap_or(0)
    }

    /// What an operator does after fixing a release: free every slot of
    /// `group` (airlock: delete the semaphore's holders in etcd).
    pub fn release_all(&self, group: &str) {
        let mut g = self.inner.lock().unwrap();
        let ids: Vec<String> = g
            .holders
            .get(group)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for id in ids {
            g.holders.get_mut(group).unwrap().remove(&id);
            let holders = g.holders[group].len();
            g.events.push(Event {
                at: Instant::now(),
                op: Op::Release,
                id,
                group: group.into(),
                holders,
            });
        }
    }
}

impl Drop for FleetLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn find(h: &[u8], needle: &[u8]) -> Option<usize> {
    h.windows(needle.len()).position(|w| w == needle)
}

fn serve(mut conn: TcpStream, inner: &Mutex<Inner>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 64 * 1024 {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or("");
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut len = 0usize;
    let mut protocol_header = false;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                len = v.parse().unwrap_or(0);
            }
            if k == "fleet-lock-protocol" && v == "true" {
                protocol_header = true;
            }
        }
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len.min(64 * 1024) {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    let (status, answer) = {
        let mut g = inner.lock().unwrap();
        if g.mode == Some(Mode::Unreachable) {
            drop(g);
            let _ = conn.shutdown(Shutdown::Both);
            return;
        }
        let (status, answer) = handle(&mut g, &method, &path, protocol_header, &body);
        g.requests.push(Request {
            path: path.clone(),
            protocol_header,
            body: body.clone(),
            status,
        });
        (status, answer)
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        409 => "Conflict",
        _ => "Internal Server Error",
    };
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
    let _ = conn.write_all(resp.as_bytes());
    let _ = conn.shutdown(Shutdown::Both);
}

fn error(status: u16, kind: &str, value: &str) -> (u16, String) {
    (
        status,
        serde_json::json!({"kind": kind, "value": value}).to_string(),
    )
}

fn handle(g: &mut Inner, method: &str, path: &str, header: bool, body: &str) -> (u16, String) {
    if g.mode == Some(Mode::Error500) {
        return error(
            500,
            "internal_error",
            "the lock server is failing (test knob)",
        );
    }
    let take = match (method, path) {
        ("POST", "/v1/pre-reboot") => true,
        ("POST", "/v1/steady-state") => false,
        _ => return error(404, "not_found", "no such operation"),
    };
    if !header {
        return error(
            400,
            "missing_header",
            "fleet-lock-protocol: true is required",
        );
    }
    let v: serde_json::Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => return error(400, "bad_body", &format!("not JSON: {e}")),
    };
    let field = |k: &str| {
        v.get("client_params")
            .and_then(|c| c.get(k))
            .and_then(|x| x.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (Some(id), Some(group)) = (field("id"), field("group")) else {
        return error(400, "bad_body", "client_params.id and .group are required");
    };
    let slots = g.slots;
    let set = g.holders.entry(group.clone()).or_default();
    if take {
        if set.contains(&id) {
            return (200, String::new());
        }
        if set.len() >= slots {
            g.refused += 1;
            return error(
                409,
                "failed_lock",
                &format!("all {slots} slots of group {group:?} are taken"),
            );
        }
        set.insert(id.clone());
        let holders = set.len();
        g.events.push(Event {
            at: Instant::now(),
            op: Op::Take,
            id,
            group,
            holders,
        });
    } else if set.remove(&id) {
        let holders = set.len();
        g.events.push(Event {
            at: Instant::now(),
            op: Op::Release,
            id,
            group,
            holders,
        });
    }
    (200, String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(port: u16, path: &str, header: bool, body: &str) -> (u16, String) {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let h = if header {
            "fleet-lock-protocol: true\r\n"
        } else {
            ""
        };
        write!(
            c,
            "POST {path} HTTP/1.1\r\nHost: x\r\n{h}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut s = String::new();
        let _ = c.read_to_string(&mut s);
        let status = s
            .split(' ')
            .nth(1)
            .and_then(|x| x.parse().ok())
            .unwrap_or(0);
        (status, s)
    }

    fn body(id: &str) -> String {
        format!(r#"{{"client_params":{{"id":"{id}","group":"default"}}}}"#)
    }

    #[test]
    fn semaphore_semantics() {
        let s = FleetLock::start(2);
        let p = s.port();
        assert_eq!(post(p, "/v1/pre-reboot", false, &body("a")).0, 400);
        assert_eq!(post(p, "/v1/pre-reboot", true, &body("a")).0, 200);
        assert_eq!(
            post(p, "/v1/pre-reboot", true, &body("a")).0,
            200,
            "recursive"
        );
        assert_eq!(post(p, "/v1/pre-reboot", true, &body("b")).0, 200);
        let (st, text) = post(p, "/v1/pre-reboot", true, &body("c"));
        assert_eq!(st, 409);
        assert!(text.contains("failed_lock"), "{text}");
        assert_eq!(s.holders("default"), vec!["a", "b"]);
        assert_eq!(
            post(p, "/v1/steady-state", true, &body("c")).0,
            200,
            "no-op"
        );
        assert_eq!(post(p, "/v1/steady-state", true, &body("a")).0, 200);
        assert_eq!(post(p, "/v1/pre-reboot", true, &body("c")).0, 200);
        assert_eq!(s.max_holders("default"), 2);
        assert_eq!(s.refused(), 1);
        s.set_mode(Mode::Error500);
        assert_eq!(post(p, "/v1/pre-reboot", true, &body("d")).0, 500);
        s.set_mode(Mode::Unreachable);
        assert_eq!(post(p, "/v1/pre-reboot", true, &body("d")).0, 0);
        s.release_all("default");
        assert!(s.holders("default").is_empty());
    }
}
