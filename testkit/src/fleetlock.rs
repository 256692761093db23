//! A FleetLock server on 127.0.0.1 that answers as airlock does (the lock
//! server Zincati speaks to, github.com/coreos/airlock, `internal/server`
//! and `internal/lock`) and keeps its state where airlock keeps it: in a
//! real etcd ([`crate::etcd::Etcd`], started with the server, killed with
//! it).
//!
//! As airlock:
//! - `/v1/pre-reboot` takes a slot, `/v1/steady-state` gives it back (any
//!   method; any other path is Go's `404 page not found`). The header
//!   `fleet-lock-protocol: true` and the body
//!   `{"client_params":{"id":"...","group":"..."}}` are required (unknown
//!   fields ignored, as Go's decoder does).
//! - One etcd key per group, `com.coreos.airlock/groups/<group, query
//!   escaped>/v1/semaphore`, holding `{"total_slots":N,"holders":[...]}`
//!   (holders sorted). Every request first creates it if missing
//!   (a transaction: version = 0, then put), then reads it and writes it
//!   back only if its version is still the one read (compare-and-swap): two
//!   hosts writing at once make one of them fail with a conflict. A
//!   release writes even when the id held nothing.
//! - Answers: 200 with an empty body; errors through Go's `http.Error`
//!   (`text/plain; charset=utf-8`, the JSON `{"kind","value"}` and a
//!   newline): 400 `invalid_client_identity` (header, body, empty group or
//!   id), 400 `unknown_group` (a group not configured), 500
//!   `failed_sem_init` (etcd not answering), 500 `failed_lock` (all slots
//!   taken: `all N semaphore slots currently locked`; a write conflict:
//!   `conflict on semaphore detected, aborting`).
//!
//! What differs from airlock: the text of a malformed body's JSON error
//! (serde's words, not Go's; the status and kind are airlock's); the etcd
//! client is its v3 JSON gateway, not gRPC.
//!
//! Test record and knobs: every slot change with its etcd revision (so
//! [`FleetLock::events`] is in etcd's order) and the holders afterwards;
//! every request with its status and error kind. [`Mode`] makes the server
//! answer as airlock does with its etcd down, or drop every connection
//! unanswered; [`FleetLock::inject_conflicts`] makes the next writes meet
//! a real concurrent write in etcd.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::etcd::{self, Etcd};

/// airlock's etcd key for a group's semaphore (`internal/lock/lock.go`).
pub fn key(group: &str) -> String {
    format!(
        "com.coreos.airlock/groups/{}/v1/semaphore",
        query_escape(group)
    )
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// As airlock.
    Serve,
    /// As airlock when its etcd does not answer: 500 `failed_sem_init`.
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

/// One change of a semaphore, as written to etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at: Instant,
    pub op: Op,
    pub id: String,
    pub group: String,
    /// Holders of `group` right after the change.
    pub holders: usize,
    /// etcd's revision of the write.
    pub revision: i64,
}

/// One request as received (valid or not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub path: String,
    pub protocol_header: bool,
    pub body: String,
    pub status: u16,
    /// The error's kind (empty when 200).
    pub kind: String,
}

/// The semaphore airlock stores (`internal/lock/semaphore.go`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Semaphore {
    pub total_slots: u64,
    pub holders: Vec<String>,
}

impl Semaphore {
    /// As Go's `json.Marshal` writes it: fields in declaration order.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"total_slots\":{},\"holders\":{}}}",
            self.total_slots,
            go_json(&serde_json::to_string(&self.holders).unwrap())
        )
    }

    pub fn parse(bytes: &[u8]) -> Result<Semaphore, String> {
        let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let total_slots = v["total_slots"].as_u64().unwrap_or(0);
        let holders = match &v["holders"] {
            serde_json::Value::Array(a) => a
                .iter()
                .map(|h| {
                    h.as_str()
                        .map(str::to_string)
                        .ok_or("a holder is not a string")
                })
                .collect::<Result<_, _>>()?,
            _ => vec![],
        };
        Ok(Semaphore {
            total_slots,
            holders,
        })
    }
}

/// Go's `encoding/json` escapes `<`, `>` and `&` (HTML safety).
fn go_json(s: &str) -> String {
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

#[derive(Default)]
struct Record {
    mode: Option<Mode>,
    /// Configured groups and their slots (airlock's `[lock]` section).
    groups: BTreeMap<String, u64>,
    events: Vec<Event>,
    requests: Vec<Request>,
    refused: usize,
    conflicts: usize,
    /// The next writes of this kind that meet a concurrent write.
    inject_conflicts: (Option<Op>, usize),
}

pub struct FleetLock {
    port: u16,
    etcd: Etcd,
    record: Arc<Mutex<Record>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl FleetLock {
    /// A server with one group, `default`, of `slots` slots (airlock's
    /// default configuration with `default_slots`), over a fresh etcd.
    pub fn start(slots: usize) -> FleetLock {
        Self::start_groups(&[("default", slots)])
    }

    /// A server with these groups (airlock's `[[lock.groups]]`).
    pub fn start_groups(groups: &[(&str, usize)]) -> FleetLock {
        let etcd = Etcd::start();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let record = Arc::new(Mutex::new(Record {
            mode: Some(Mode::Serve),
            groups: groups
                .iter()
                .map(|(g, s)| (g.to_string(), *s as u64))
                .collect(),
            ..Default::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (r2, s2, etcd_port) = (record.clone(), stop.clone(), etcd.port());
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let r3 = r2.clone();
                std::thread::spawn(move || serve(conn, &r3, etcd_port));
            }
        });
        FleetLock {
            port,
            etcd,
            record,
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

    /// The etcd that holds the state.
    pub fn etcd(&self) -> &Etcd {
        &self.etcd
    }

    /// Every group's slots, in the configuration and in etcd (what an
    /// operator does: airlock keeps the count it finds in etcd).
    pub fn set_slots(&self, slots: usize) {
        let groups: Vec<String> = {
            let mut r = self.record.lock().unwrap();
            r.groups.values_mut().for_each(|s| *s = slots as u64);
            r.groups.keys().cloned().collect()
        };
        for g in groups {
            self.rewrite(&g, |s| s.total_slots = slots as u64);
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.record.lock().unwrap().mode = Some(mode);
    }

    /// The next `n` writes of `op` (takes or releases) meet a write another
    /// client made to the key in between (a real etcd write): airlock's
    /// 500 `failed_lock` "conflict on semaphore detected, aborting".
    pub fn inject_conflicts(&self, op: Op, n: usize) {
        self.record.lock().unwrap().inject_conflicts = (Some(op), n);
    }

    /// Make `id` a holder of `group` in etcd, as if it had taken a slot
    /// (before its host lost its record of it).
    pub fn hold(&self, group: &str, id: &str) {
        let rev = self.rewrite(group, |s| {
            if let Err(at) = s.holders.binary_search(&id.to_string()) {
                s.holders.insert(at, id.to_string());
            }
        });
        assert!(rev > 0, "no semaphore for {group} yet");
    }

    /// Create the semaphore of every group, as airlock's first request does.
    pub fn init(&self) {
        let groups = self.record.lock().unwrap().groups.clone();
        for (g, slots) in groups {
            let empty = Semaphore {
                total_slots: slots,
                holders: vec![],
            };
            self.etcd
                .put_if_version(key(&g).as_bytes(), 0, empty.to_json().as_bytes())
                .expect("etcd txn");
        }
    }

    /// The semaphore of `group` in etcd (`None`: no request created it).
    pub fn semaphore(&self, group: &str) -> Option<Semaphore> {
        let kv = self
            .etcd
            .range(key(group).as_bytes())
            .expect("etcd range")?;
        Some(Semaphore::parse(&kv.value).expect("airlock's semaphore JSON"))
    }

    /// Who holds a slot of `group` now (from etcd).
    pub fn holders(&self, group: &str) -> Vec<String> {
        self.semaphore(group).map(|s| s.holders).unwrap_or_default()
    }

    /// Every take and release, in etcd's order.
    pub fn events(&self) -> Vec<Event> {
        let mut ev = self.record.lock().unwrap().events.clone();
        ev.sort_by_key(|e| e.revision);
        ev
    }

    /// Every request, in order of answer.
    pub fn requests(&self) -> Vec<Request> {
        self.record.lock().unwrap().requests.clone()
    }

    /// How many slot requests were refused because the group was full.
    pub fn refused(&self) -> usize {
        self.record.lock().unwrap().refused
    }

    /// How many requests failed on a write conflict.
    pub fn conflicts(&self) -> usize {
        self.record.lock().unwrap().conflicts
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

    /// What an operator does after fixing a release: empty the holders of
    /// `group` in etcd.
    pub fn release_all(&self, group: &str) {
        let mut gone = vec![];
        let rev = self.rewrite(group, |s| gone = std::mem::take(&mut s.holders));
        let mut r = self.record.lock().unwrap();
        let n = gone.len();
        for (i, id) in gone.into_iter().enumerate() {
            r.events.push(Event {
                at: Instant::now(),
                op: Op::Release,
                id,
                group: group.into(),
                holders: n - i - 1,
                revision: rev,
            });
        }
    }

    /// Change the semaphore of `group` in etcd (compare-and-swap, again on
    /// a conflict); the write's revision (0: no semaphore).
    fn rewrite(&self, group: &str, f: impl FnMut(&mut Semaphore)) -> i64 {
        let mut f = f;
        loop {
            let k = key(group);
            let Some(kv) = self.etcd.range(k.as_bytes()).expect("etcd range") else {
                return 0;
            };
            let mut s = Semaphore::parse(&kv.value).expect("airlock's semaphore JSON");
            f(&mut s);
            let w = self
                .etcd
                .put_if_version(k.as_bytes(), kv.version, s.to_json().as_bytes());
            if let Some(rev) = w.expect("etcd txn") {
                return rev;
            }
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

/// A request's method, path, first `fleet-lock-protocol` value and body.
struct Http {
    path: String,
    header: Option<String>,
    body: String,
}

fn read_request(conn: &mut TcpStream) -> Option<Http> {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1).unwrap_or("").to_string();
    let mut len = 0usize;
    let mut header = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                len = v.parse().unwrap_or(0);
            }
            if k == "fleet-lock-protocol" && header.is_none() {
                header = Some(v.to_string());
            }
        }
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len.min(64 * 1024) {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(len);
    Some(Http {
        path,
        header,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn serve(mut conn: TcpStream, record: &Mutex<Record>, etcd_port: u16) {
    let Some(req) = read_request(&mut conn) else {
        return;
    };
    let mode = record.lock().unwrap().mode;
    if mode == Some(Mode::Unreachable) {
        let _ = conn.shutdown(Shutdown::Both);
        return;
    }
    let (status, kind, value) = match req.path.as_str() {
        "/v1/pre-reboot" | "/v1/steady-state" => match handle(record, etcd_port, mode, &req) {
            Ok(()) => (200, String::new(), String::new()),
            Err((s, k, v)) => (s, k.to_string(), v),
        },
        _ => (404, "not_found".into(), String::new()),
    };
    record.lock().unwrap().requests.push(Request {
        path: req.path.clone(),
        protocol_header: req.header.as_deref() == Some("true"),
        body: req.body.clone(),
        status,
        kind: kind.clone(),
    });
    let resp = match status {
        200 => "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
        _ => {
            let (reason, text) = match status {
                400 => ("Bad Request", error_json(&kind, &value)),
                404 => ("Not Found", "404 page not found".to_string()),
                _ => ("Internal Server Error", error_json(&kind, &value)),
            };
            // Go's http.Error: text/plain, nosniff, the text and a newline.
            format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}\n",
                text.len() + 1
            )
        }
    };
    let _ = conn.write_all(resp.as_bytes());
    let _ = conn.shutdown(Shutdown::Both);
}

/// airlock's `HTTPError.ToJSON()`.
fn error_json(kind: &str, value: &str) -> String {
    go_json(&format!(
        "{{\"kind\":{},\"value\":{}}}",
        serde_json::Value::from(kind),
        serde_json::Value::from(value)
    ))
}

type Refusal = (u16, &'static str, String);

/// The JSON type name Go's decoder gives in its errors.
fn go_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        _ => "object",
    }
}

/// airlock's `validateIdentity`: the header, then the body decoded as Go
/// decodes it into `HTTPParams` (the first JSON value; unknown fields
/// ignored; field names matched case-insensitively), then group and id
/// non-empty.
fn identity(req: &Http) -> Result<(String, String), String> {
    if req.header.as_deref() != Some("true") {
        return Err("wrong 'fleet-lock-protocol' header".into());
    }
    let v = match serde_json::Deserializer::from_str(&req.body)
        .into_iter::<serde_json::Value>()
        .next()
    {
        None => return Err("EOF".into()),
        Some(Err(e)) => return Err(e.to_string()),
        Some(Ok(v)) => v,
    };
    let field = |o: &serde_json::Map<String, serde_json::Value>, name: &str| {
        o.get(name)
            .or_else(|| {
                o.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    };
    let params = match &v {
        serde_json::Value::Null => serde_json::Map::new(),
        serde_json::Value::Object(o) => match field(o, "client_params") {
            serde_json::Value::Null => serde_json::Map::new(),
            serde_json::Value::Object(p) => p,
            other => return Err(format!("json: cannot unmarshal {} into Go struct field HTTPParams.client_params of type server.Params", go_kind(&other))),
        },
        other => return Err(format!("json: cannot unmarshal {} into Go value of type server.HTTPParams", go_kind(other))),
    };
    let text = |name: &str| {
        match field(&params, name) {
        serde_json::Value::Null => Ok(String::new()),
        serde_json::Value::String(s) => Ok(s),
        other => Err(format!(
            "json: cannot unmarshal {} into Go struct field Params.client_params.{name} of type string",
            go_kind(&other)
        )),
    }
    };
    let (group, id) = (text("group")?, text("id")?);
    if group.is_empty() {
        return Err("empty client group".into());
    }
    if id.is_empty() {
        return Err("empty client ID".into());
    }
    Ok((group, id))
}

/// One pre-reboot or steady-state request, as airlock's handlers and lock
/// manager make it.
fn handle(
    record: &Mutex<Record>,
    port: u16,
    mode: Option<Mode>,
    req: &Http,
) -> Result<(), Refusal> {
    let take = req.path == "/v1/pre-reboot";
    let (group, id) = identity(req).map_err(|e| {
        (
            400,
            "invalid_client_identity",
            format!("failed to validate client identity: {e}"),
        )
    })?;
    let slots = record.lock().unwrap().groups.get(&group).copied();
    let Some(slots) = slots else {
        return Err((
            400,
            "unknown_group",
            format!("unknown group {}", serde_json::Value::from(group.as_str())),
        ));
    };
    let sem_init = |e: String| {
        (
            500,
            "failed_sem_init",
            format!("failed to initialize semaphore manager: {e}"),
        )
    };
    if mode == Some(Mode::Error500) {
        return Err(sem_init("context deadline exceeded".into()));
    }
    let k = key(&group);
    // ensureInit: create the semaphore if the key does not exist.
    let empty = Semaphore {
        total_slots: slots,
        holders: vec![],
    };
    etcd::put_if_version(port, k.as_bytes(), 0, empty.to_json().as_bytes()).map_err(sem_init)?;
    let failed = |e: String| (500, "failed_lock", e);
    let kv = etcd::range(port, k.as_bytes())
        .map_err(failed)?
        .ok_or_else(|| failed("unexpected number of results: 0".into()))?;
    let mut sem = Semaphore::parse(&kv.value).map_err(failed)?;
    let held = sem.holders.binary_search(&id);
    let changed = match (take, held) {
        (true, Ok(_)) => return Ok(()),
        (true, Err(at)) => {
            if sem.holders.len() as u64 >= sem.total_slots {
                record.lock().unwrap().refused += 1;
                return Err(failed(format!(
                    "all {} semaphore slots currently locked",
                    sem.total_slots
                )));
            }
            sem.holders.insert(at, id.clone());
            true
        }
        (false, Ok(at)) => {
            sem.holders.remove(at);
            true
        }
        // UnlockIfHeld writes the semaphore back even when unchanged.
        (false, Err(_)) => false,
    };
    let inject = {
        let mut r = record.lock().unwrap();
        let op = if take { Op::Take } else { Op::Release };
        let i = r.inject_conflicts.0 == Some(op) && r.inject_conflicts.1 > 0;
        if i {
            r.inject_conflicts.1 -= 1;
        }
        i
    };
    if inject {
        // Another writer between this read and this write.
        etcd::put_if_version(port, k.as_bytes(), kv.version, &kv.value).map_err(failed)?;
    }
    let written = etcd::put_if_version(port, k.as_bytes(), kv.version, sem.to_json().as_bytes())
        .map_err(failed)?;
    let Some(revision) = written else {
        record.lock().unwrap().conflicts += 1;
        return Err(failed("conflict on semaphore detected, aborting".into()));
    };
    if changed {
        record.lock().unwrap().events.push(Event {
            at: Instant::now(),
            op: if take { Op::Take } else { Op::Release },
            id,
            group,
            holders: sem.holders.len(),
            revision,
        });
    }
    Ok(())
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
        let body = s
            .split_once("\r\n\r\n")
            .map(|x| x.1.to_string())
            .unwrap_or_default();
        (status, body)
    }

    fn body(id: &str) -> String {
        format!(r#"{{"client_params":{{"id":"{id}","group":"default"}}}}"#)
    }

    /// airlock's answers, word for word (`internal/server`, `herrors`).
    #[test]
    fn airlock_semantics_over_etcd() {
        let s = FleetLock::start_groups(&[("default", 2), ("workers", 1)]);
        let p = s.port();
        assert_eq!(
            post(p, "/v1/pre-reboot", false, &body("a")),
            (400, "{\"kind\":\"invalid_client_identity\",\"value\":\"failed to validate client identity: wrong 'fleet-lock-protocol' header\"}\n".into())
        );
        assert_eq!(
            post(p, "/v1/pre-reboot", true, r#"{"client_params":{"id":"a"}}"#),
            (400, "{\"kind\":\"invalid_client_identity\",\"value\":\"failed to validate client identity: empty client group\"}\n".into())
        );
        assert_eq!(
            post(p, "/v1/pre-reboot", true, r#"{"client_params":{"group":"default","id":""}}"#).1,
            "{\"kind\":\"invalid_client_identity\",\"value\":\"failed to validate client identity: empty client ID\"}\n"
        );
        assert_eq!(
            post(
                p,
                "/v1/pre-reboot",
                true,
                r#"{"client_params":{"id":"a","group":"nope"}}"#
            ),
            (
                400,
                "{\"kind\":\"unknown_group\",\"value\":\"unknown group \\\"nope\\\"\"}\n".into()
            )
        );
        assert_eq!(
            post(p, "/v1/other", true, &body("a")),
            (404, "404 page not found\n".into())
        );
        assert_eq!(s.semaphore("default"), None, "nothing written yet");
        // Unknown fields (node_uuid) are ignored, as Go's decoder does.
        let with_extra = r#"{"client_params":{"id":"a","group":"default","node_uuid":"x"}}"#;
        assert_eq!(
            post(p, "/v1/pre-reboot", true, with_extra),
            (200, String::new())
        );
        assert_eq!(
            post(p, "/v1/pre-reboot", true, &body("a")).0,
            200,
            "recursive"
        );
        assert_eq!(post(p, "/v1/pre-reboot", true, &body("b")).0, 200);
        assert_eq!(
            post(p, "/v1/pre-reboot", true, &body("c")),
            (
                500,
                "{\"kind\":\"failed_lock\",\"value\":\"all 2 semaphore slots currently locked\"}\n"
                    .into()
            )
        );
        // airlock's key and value, in etcd.
        let kv = s
            .etcd()
            .range(b"com.coreos.airlock/groups/default/v1/semaphore")
            .unwrap()
            .unwrap();
        assert_eq!(
            String::from_utf8(kv.value).unwrap(),
            r#"{"total_slots":2,"holders":["a","b"]}"#
        );
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
        // A write between the read and the compare-and-swap: a conflict.
        s.inject_conflicts(Op::Release, 1);
        assert_eq!(
            post(p, "/v1/steady-state", true, &body("c")),
            (500, "{\"kind\":\"failed_lock\",\"value\":\"conflict on semaphore detected, aborting\"}\n".into())
        );
        assert_eq!(s.conflicts(), 1);
        assert_eq!(s.holders("default"), vec!["b", "c"], "nothing changed");
        s.set_mode(Mode::Error500);
        let (st, text) = post(p, "/v1/pre-reboot", true, &body("d"));
        assert_eq!(
            (st, text.contains("failed_sem_init")),
            (500, true),
            "{text}"
        );
        s.set_mode(Mode::Unreachable);
        assert_eq!(post(p, "/v1/pre-reboot", true, &body("d")).0, 0);
        s.set_mode(Mode::Serve);
        s.release_all("default");
        assert!(s.holders("default").is_empty());
        assert_eq!(
            key("a b/c"),
            "com.coreos.airlock/groups/a+b%2Fc/v1/semaphore"
        );
    }
}
