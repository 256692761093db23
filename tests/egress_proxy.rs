//! Egress through an HTTP proxy (issue 23, item 3): the package manager's
//! downloads go through the proxy of the updater's environment (the real
//! apt-get, dnf and zypper, fetching from the signed loopback repository
//! through a stand-in proxy that records what it forwards); the version
//! server goes through it as Teleport's requests do, `NO_PROXY` with
//! `host:port` honoured; an endpoint that cannot be reached with no proxy
//! configured says so, naming the agent's.

use testkit::each_backend;
use testkit::proxy::Proxy;
use testkit::world::{Kind, World};

/// The real package manager downloads through the proxy given to the
/// updater (`http_proxy`, as `/etc/default/teleport-upgrade` sets it).
fn package_manager_downloads_through_the_proxy(kind: Kind) {
    let w = World::new(kind, "15.4.2", "15.4.3");
    w.schedule_in_window();
    let proxy = Proxy::start();
    let r = w
        .cmd(&["run"])
        .env("http_proxy", proxy.url())
        .env("https_proxy", proxy.url())
        .env_remove("no_proxy")
        .env_remove("NO_PROXY")
        .output()
        .unwrap();
    let r = testkit::world::Run(r);
    eprintln!("{kind:?}:\n{}", r.stderr());
    r.expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"), "{kind:?}");
    let seen = proxy.seen();
    eprintln!("{kind:?} proxy saw: {seen:#?}");
    assert!(
        seen.iter()
            .any(|l| l.starts_with("GET http://") && l.contains("15.4.3")),
        "{kind:?}: the package was fetched through the proxy: {seen:?}"
    );
    assert!(
        !seen.iter().any(|l| l.contains("/version")),
        "{kind:?}: the loopback version server is reached directly"
    );
}
each_backend!(package_manager_downloads_through_the_proxy);

/// The version server through the proxy (CONNECT), as Teleport reaches
/// it: `NO_PROXY` entries with a CIDR or another port leave it proxied, an
/// entry naming its `host:port` makes it direct (here: a name only the
/// proxy knows, so the direct attempt fails, and says `NO_PROXY`).
#[test]
fn version_server_through_the_proxy_and_no_proxy_host_port() {
    let w = testkit::world::apt::AptWorld::new("15.4.2", "15.4.3");
    let d = w.dir.path().join("tls");
    std::fs::create_dir_all(&d).unwrap();
    let (ca, c, k) = testkit::tls::cert(&d, "DNS:vs.proxied.test");
    let srv = testkit::tls::serve(&d, &c, &k, "-");
    let proxy = Proxy::start();
    proxy.map("vs.proxied.test", srv.port);
    w.remove_config("insecure");
    w.config(
        "endpoint",
        &format!("vs.proxied.test{}", testkit::world::CHANNEL),
    );
    std::fs::copy(&ca, w.root.file("/etc/teleport-upgrade.d/ca.pem")).unwrap();
    w.config("ca-file", "/etc/teleport-upgrade.d/ca.pem");
    w.schedule_in_window();
    let run = |no_proxy: &str| {
        let out = w
            .cmd(&["run"])
            .env("HTTPS_PROXY", proxy.url())
            .env("NO_PROXY", no_proxy)
            .env_remove("no_proxy")
            .env_remove("https_proxy")
            .output()
            .unwrap();
        testkit::world::Run(out)
    };
    // host:port naming it: direct, and the name resolves nowhere.
    let r = run("10.0.0.0/8, VS.proxied.test:443");
    eprintln!("no_proxy host:port:\n{}", r.stderr());
    r.expect(1).logs_contain("NO_PROXY");
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    // A CIDR, another port, a leading dot elsewhere: through the proxy.
    let r = run("10.0.0.0/8, vs.proxied.test:8443, .other.test, 127.0.0.1");
    eprintln!("proxied:\n{}", r.stderr());
    r.expect(0).logs_contain("target=15.4.3");
    assert!(
        proxy
            .seen()
            .iter()
            .any(|l| l == "CONNECT vs.proxied.test:443 HTTP/1.1"),
        "{:?}",
        proxy.seen()
    );
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

/// An endpoint that cannot be reached, no proxy configured for the updater
/// while the agent's `/etc/default/teleport` sets one: the error says so.
#[test]
fn unreachable_without_a_proxy_names_the_agents() {
    let w = testkit::world::apt::AptWorld::new("15.4.2", "15.4.3");
    w.remove_config("insecure");
    w.config(
        "endpoint",
        &format!("vs.proxied.test{}", testkit::world::CHANNEL),
    );
    w.schedule_in_window();
    let agent = w.root.file("/etc/default/teleport");
    std::fs::create_dir_all(agent.parent().unwrap()).unwrap();
    std::fs::write(&agent, "HTTPS_PROXY=http://egress.internal:3128\n").unwrap();
    let mut c = w.cmd(&["run"]);
    for k in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"] {
        c.env_remove(k);
    }
    let r = testkit::world::Run(c.output().unwrap());
    eprintln!("{}", r.stderr());
    r.expect(1).logs_contain(
        "no proxy is configured for the updater; the agent's is in /etc/default/teleport",
    );
    assert!(w.state()["failed_target"].is_null(), "no failed target");
}

/// The FleetLock server goes through the same proxy (`CONNECT`), unless
/// `NO_PROXY` names its `host:port`. (Nothing listens behind the
/// stand-in's tunnel: the run is stopped with SIGTERM once the proxy has
/// seen the request, or after 5 s, rather than waiting out the lock
/// client's retries; nothing is changed either way.)
#[test]
fn the_lock_server_goes_through_the_proxy() {
    let w = testkit::world::apt::AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    w.config("fleet-lock", "https://lock.proxied.test:8443");
    w.config("fleet-lock-id", "web-1.example.com");
    let proxy = Proxy::start();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    proxy.map("lock.proxied.test", closed);
    let run_until_seen = |no_proxy: &str, wait: u64| {
        let before = proxy.seen().len();
        let mut child = w
            .cmd(&["run"])
            .env("HTTPS_PROXY", proxy.url())
            .env("NO_PROXY", no_proxy)
            .env_remove("https_proxy")
            .env_remove("no_proxy")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let t = std::time::Instant::now();
        while proxy.seen().len() == before && t.elapsed().as_secs() < wait {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let _ = child.wait();
        proxy.seen()[before..].to_vec()
    };
    let seen = run_until_seen("lock.proxied.test:443, 10.0.0.0/8", 60);
    assert!(
        !seen.is_empty()
            && seen
                .iter()
                .all(|l| l == "CONNECT lock.proxied.test:8443 HTTP/1.1"),
        "{seen:?}"
    );
    let seen = run_until_seen("lock.proxied.test:8443", 5);
    assert!(seen.is_empty(), "NO_PROXY host:port: direct: {seen:?}");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
}
