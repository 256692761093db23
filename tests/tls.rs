//! The version server over TLS: verified against the system roots or the
//! configured `ca-file`; a self-signed server without it, a name mismatch and
//! a redirect from https to http are refused (exit 3), and nothing changes; a
//! certificate not valid yet is named a clock problem (exit 1).
//! The TLS server is a stand-in (Python's http.server behind ssl), as a
//! self-hosted static version server would be.

use testkit::world::apt::AptWorld;
use testkit::world::CHANNEL;

use std::path::{Path, PathBuf};
use testkit::tls::{cert, openssl, serve};

fn tls_world(w: &AptWorld, port: u16) {
    w.remove_config("insecure");
    w.config("endpoint", &format!("127.0.0.1:{port}{CHANNEL}"));
    w.schedule_in_window();
}

#[test]
fn a_self_signed_server_is_refused_unless_its_ca_is_configured() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    let d = w.dir.path().join("tls");
    std::fs::create_dir_all(&d).unwrap();
    let (ca, c, k) = cert(&d, "IP:127.0.0.1");
    let srv = serve(&d, &c, &k, "-");
    tls_world(&w, srv.port);
    let r = w.run(&["run"]);
    r.expect(3).logs_contain("certificate");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    // A CA file without any certificate is a configuration error naming
    // it (it used to be accepted silently, and the server then refused).
    std::fs::write(
        w.root.file("/etc/teleport-upgrade.d/ca.pem"),
        "# my CA goes here\n",
    )
    .unwrap();
    w.config("ca-file", "/etc/teleport-upgrade.d/ca.pem");
    w.run(&["run"])
        .expect(2)
        .logs_contain("ca.pem")
        .logs_contain("holds no PEM certificate");
    // With the CA configured (inside the root, as any path), it is trusted.
    std::fs::copy(&ca, w.root.file("/etc/teleport-upgrade.d/ca.pem")).unwrap();
    w.run(&["run"]).expect(0).logs_contain("target=15.4.3");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    let d = w.dir.path().join("tls");
    std::fs::create_dir_all(&d).unwrap();
    let (ca, c, k) = cert(&d, "DNS:proxy.example.com");
    let srv = serve(&d, &c, &k, "-");
    tls_world(&w, srv.port);
    std::fs::copy(&ca, w.root.file("/etc/teleport-upgrade.d/ca.pem")).unwrap();
    w.config("ca-file", "/etc/teleport-upgrade.d/ca.pem");
    w.run(&["run"]).expect(3).logs_contain("certificate");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
}

#[test]
fn a_redirect_from_https_to_http_is_refused() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    let d = w.dir.path().join("tls");
    std::fs::create_dir_all(&d).unwrap();
    let (ca, c, k) = cert(&d, "IP:127.0.0.1");
    // The plain-http version server (w.vs) answers 15.4.3 too: following
    // the redirect would work, so only the policy can refuse it.
    let srv = serve(&d, &c, &k, &w.vs.url());
    tls_world(&w, srv.port);
    std::fs::copy(&ca, w.root.file("/etc/teleport-upgrade.d/ca.pem")).unwrap();
    w.config("ca-file", "/etc/teleport-upgrade.d/ca.pem");
    w.run(&["run"]).expect(3).logs_contain("non-https");
    assert_eq!(w.version_hits(), 0, "the http server was never asked");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
}

/// A certificate the CA signed for a time that has not come yet (what a
/// host whose clock is behind sees, issue 23 item 8): (ca.pem, cert, key).
fn cert_not_yet_valid(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, _, key) = cert(dir, "IP:127.0.0.1");
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("serial"), "1000\n").unwrap();
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n\
         policy = p\ndefault_md = sha256\n[p]\ncommonName = supplied\n",
    )
    .unwrap();
    openssl(
        &[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-cert",
            "ca.pem",
            "-keyfile",
            "ca.key",
            "-in",
            "srv.csr",
            "-out",
            "future.pem",
            "-notext",
            "-extfile",
            "ext.cnf",
            "-startdate",
            "20991201000000Z",
            "-enddate",
            "20991231000000Z",
        ],
        dir,
    );
    (ca, dir.join("future.pem"), key)
}

/// A server certificate that is not valid yet by this host's clock is
/// said to be a clock problem, naming the clock, and is "could not learn
/// the target" (exit 1, retried by the next run), not a refusal of the
/// server: nothing changes.
#[test]
fn a_certificate_not_yet_valid_names_the_clock() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    let d = w.dir.path().join("tls");
    std::fs::create_dir_all(&d).unwrap();
    let (ca, c, k) = cert_not_yet_valid(&d);
    let srv = serve(&d, &c, &k, "-");
    tls_world(&w, srv.port);
    std::fs::copy(&ca, w.root.file("/etc/teleport-upgrade.d/ca.pem")).unwrap();
    w.config("ca-file", "/etc/teleport-upgrade.d/ca.pem");
    let r = w.run(&["run"]);
    eprintln!("{}", r.stderr());
    r.expect(1)
        .logs_contain("not valid yet")
        .logs_contain("this host's clock");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(w.state()["last_run"]["result"], "no-target");
}
