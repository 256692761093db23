//! A real etcd (Debian's `etcd-server`) on loopback for the tests: one
//! member, a temporary data directory, free ports, killed when dropped
//! (also when a test panics: `Drop` runs while unwinding) and when the
//! test process dies (`PR_SET_PDEATHSIG`).
//!
//! Spoken to through etcd's v3 JSON gateway (`POST /v3/kv/range`,
//! `/v3/kv/txn`, `/v3/kv/put`; keys and values base64, 64-bit integers as
//! JSON strings), as `curl` would: no etcd client library.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

pub const ETCD: &str = "/usr/bin/etcd";

/// A running etcd.
pub struct Etcd {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
    log: PathBuf,
}

/// One key's value and version (`version` counts the key's writes since
/// its creation: what airlock compares).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub value: Vec<u8>,
    pub version: i64,
    pub mod_revision: i64,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

impl Etcd {
    /// Start one etcd and wait until it answers (panics, with its log,
    /// when it cannot start).
    pub fn start() -> Etcd {
        assert!(
            Path::new(ETCD).exists(),
            "{ETCD} is missing: apt-get install etcd-server (scripts/deps)"
        );
        let mut last = String::new();
        // A port found free can be taken before etcd binds it: try again.
        for _ in 0..5 {
            match Self::try_start() {
                Ok(e) => return e,
                Err(e) => last = e,
            }
        }
        panic!("etcd did not start: {last}");
    }

    fn try_start() -> Result<Etcd, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (port, peer) = (free_port(), free_port());
        let log = dir.path().join("etcd.log");
        let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let client = format!("http://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut cmd = Command::new(ETCD);
        cmd.args(["--name", "t", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("t={peer_url}")])
            .args(["--log-level", "warn", "--logger", "zap"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(|e| e.to_string())?)
            .stderr(out);
        // SAFETY: prctl is async-signal-safe; nothing else runs here.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| format!("{ETCD}: {e}"))?;
        let mut e = Etcd {
            child,
            port,
            _dir: dir,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = e.child.try_wait() {
                return Err(format!("etcd exited ({st}):\n{}", e.log_text()));
            }
            if e.range(b"-ready-").is_ok() {
                return Ok(e);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("etcd did not answer in 30 s:\n{}", e.log_text()))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its client URL (`http://127.0.0.1:<port>`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What etcd logged.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `POST /v3/<path>` with a JSON body; the answer's JSON (an HTTP
    /// error is an `Err` with its body).
    pub fn call(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value, String> {
        call(self.port, path, body)
    }

    /// The key's value and version, `None` when it does not exist.
    pub fn range(&self, key: &[u8]) -> Result<Option<Kv>, String> {
        range(self.port, key)
    }

    /// Put `value` at `key` unconditionally; the new revision.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<i64, String> {
        let r = self.call(
            "kv/put",
            &serde_json::json!({"key": B64.encode(key), "value": B64.encode(value)}),
        )?;
        Ok(int(&r["header"]["revision"]))
    }

    /// Put `value` at `key` if the key's version is `version` (0: it does
    /// not exist): `Ok(Some(revision))` when written, `Ok(None)` when the
    /// comparison failed.
    pub fn put_if_version(
        &self,
        key: &[u8],
        version: i64,
        value: &[u8],
    ) -> Result<Option<i64>, String> {
        put_if_version(self.port, key, version, value)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JSON integer etcd writes as a string (absent: 0).
fn int(v: &serde_json::Value) -> i64 {
    match v {
        serde_json::Value::String(s) => s.parse().unwrap_or(0),
        serde_json::Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

pub(crate) fn range(port: u16, key: &[u8]) -> Result<Option<Kv>, String> {
    let r = call(
        port,
        "kv/range",
        &serde_json::json!({"key": B64.encode(key)}),
    )?;
    let Some(kv) = r["kvs"].as_array().and_then(|a| a.first()) else {
        return Ok(None);
    };
    let value = B64
        .decode(kv["value"].as_str().unwrap_or(""))
        .map_err(|e| format!("etcd's value is not base64: {e}"))?;
    Ok(Some(Kv {
        value,
        version: int(&kv["version"]),
        mod_revision: int(&kv["mod_revision"]),
    }))
}

pub(crate) fn put_if_version(
    port: u16,
    key: &[u8],
    version: i64,
    value: &[u8],
) -> Result<Option<i64>, String> {
    let k = B64.encode(key);
    let r = call(
        port,
        "kv/txn",
        &serde_json::json!({
            "compare": [{"target": "VERSION", "result": "EQUAL", "key": k, "version": version.to_string()}],
            "success": [{"request_put": {"key": k, "value": B64.encode(value)}}],
        }),
    )?;
    Ok((r["succeeded"] == true).then(|| int(&r["header"]["revision"])))
}

/// One request to the gateway over a fresh connection (HTTP/1.0: the
/// answer ends where the connection does).
pub(crate) fn call(
    port: u16,
    path: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    let body = body.to_string();
    let mut c = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("etcd: {e}"))?;
    let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
    write!(
        c,
        "POST /v3/{path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| format!("etcd: {e}"))?;
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).map_err(|e| format!("etcd: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("etcd: no answer to {path}"))?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if status != 200 {
        return Err(format!("etcd: {path}: HTTP {status}: {body}"));
    }
    serde_json::from_str(body).map_err(|e| format!("etcd: {path}: {e}: {body}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_and_swap_on_a_real_etcd() {
        let e = Etcd::start();
        assert_eq!(e.range(b"k").unwrap(), None);
        assert!(e.put_if_version(b"k", 0, b"one").unwrap().is_some());
        assert_eq!(e.put_if_version(b"k", 0, b"two").unwrap(), None, "exists");
        let kv = e.range(b"k").unwrap().unwrap();
        assert_eq!((kv.value.as_slice(), kv.version), (&b"one"[..], 1));
        e.put(b"k", b"three").unwrap();
        assert_eq!(e.put_if_version(b"k", 1, b"four").unwrap(), None, "stale");
        assert!(e.put_if_version(b"k", 2, b"four").unwrap().is_some());
        assert_eq!(e.range(b"k").unwrap().unwrap().value, b"four");
        let pid = e.child.id();
        drop(e);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| s.contains(") Z "))
                    .unwrap_or(true),
            "etcd is gone once dropped"
        );
    }
}
