//! A stand-in version server over TLS, and a throwaway CA for it (the
//! real openssl), for tests/tls.rs and tests/egress_proxy.rs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVER: &str = r#"
import http.server, ssl, sys
cert, key, port_file, redirect_to = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.endswith("/version"):
            if redirect_to != "-":
                self.send_response(302); self.send_header("Location", redirect_to + self.path); self.end_headers(); return
            body = b"v15.4.3\n"
        elif self.path.endswith("/critical"):
            body = b"no\n"
        else:
            self.send_response(404); self.end_headers(); return
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
open(port_file, "w").write(str(srv.server_address[1]))
srv.serve_forever()
"#;

/// A TLS version server (Python's http.server behind ssl), stopped on drop.
pub struct Tls {
    child: Child,
    pub port: u16,
}

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn openssl(args: &[&str], dir: &Path) {
    let ok = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "openssl {args:?}");
}

/// A throwaway CA and a server certificate it signed for `san` (e.g.
/// "IP:127.0.0.1"). Returns (ca.pem, server cert, server key).
pub fn cert(dir: &Path, san: &str) -> (PathBuf, PathBuf, PathBuf) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
        dir,
    );
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=version-server",
            "-keyout",
            "key.pem",
            "-out",
            "srv.csr",
        ],
        dir,
    );
    std::fs::write(
        dir.join("ext.cnf"),
        format!("basicConstraints=CA:FALSE\nsubjectAltName={san}\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "cert.pem",
        ],
        dir,
    );
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

/// Serve `/version` (v15.4.3) and `/critical` (no) over TLS with cert `c`,
/// key `k`; `redirect_to` (or "-") answers `/version` with a redirect there.
pub fn serve(dir: &Path, c: &Path, k: &Path, redirect_to: &str) -> Tls {
    let port_file = dir.join(format!("port-{}", redirect_to.len()));
    let child = Command::new("python3")
        .args(["-c", SERVER])
        .arg(c)
        .arg(k)
        .arg(&port_file)
        .arg(redirect_to)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Owned by a Tls from here on, so that a failed start still kills it.
    let mut srv = Tls { child, port: 0 };
    let t = Instant::now();
    loop {
        if let Some(port) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|p| p.trim().parse().ok())
        {
            srv.port = port;
            return srv;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the TLS server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
