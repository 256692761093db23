//! Part of `tests/refusal_matrix.rs` (see there).

use super::*;

/// A writable directory first on the caller's PATH, holding a fake
/// apt-get (and dpkg, dpkg-query, apt-config): never used.
#[test]
pub(crate) fn a_hostile_path_is_not_used() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    let evil = w.dir.path().join("evil-bin");
    std::fs::create_dir_all(&evil).unwrap();
    let marker = w.dir.path().join("hijacked");
    for tool in [
        "apt-get",
        "apt-cache",
        "apt-config",
        "dpkg",
        "dpkg-query",
        "systemctl",
    ] {
        let p = evil.join(tool);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\necho \"$0 $*\" >> {}\nexit 0\n",
                marker.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let path = format!(
        "{}:{}",
        evil.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The fake is real: a shell with this PATH runs it.
    let out = std::process::Command::new("sh")
        .args(["-c", "apt-get --version"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        marker.exists(),
        "the fake apt-get was not run by a plain shell"
    );
    std::fs::remove_file(&marker).unwrap();

    let mut c = w.cmd(&["run"]);
    c.env("PATH", &path).env("LD_LIBRARY_PATH", &evil);
    let r = world::Run(c.output().unwrap());
    eprintln!("{}", r.stderr());
    r.expect(0).logs_contain("LD_LIBRARY_PATH");
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.3"),
        "the real apt-get installed the update"
    );
    assert!(w.held());
    assert!(
        !marker.exists(),
        "a program from the caller's PATH was run: {}",
        std::fs::read_to_string(&marker).unwrap_or_default()
    );
}

/// A listener that counts the connections it is asked for.
pub(crate) struct Counting {
    port: u16,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Counting {
    pub(crate) fn start() -> Counting {
        let l = std::net::TcpListener::bind(("0.0.0.0", 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = count.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if let Ok(mut s) = s {
                    use std::io::Write;
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\n15.4.3",
                    );
                }
            }
        });
        Counting { port, count }
    }
    pub(crate) fn asked(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// This host's address on a non-loopback interface (no packet is sent).
pub(crate) fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// With `insecure` (plain http to loopback), a redirect from the version
/// server to another host is refused, and that host is never asked.
#[test]
pub(crate) fn a_redirect_off_loopback_is_refused_and_the_other_host_never_asked() {
    let Some(ip) = non_loopback_ip() else {
        eprintln!("no non-loopback interface on this machine: nothing to redirect to");
        return;
    };
    let other = Counting::start();
    let url = format!("http://{ip}:{}/version", other.port);
    // The other host is reachable, and the redirect is really served.
    drop(std::net::TcpStream::connect((ip, other.port)).unwrap());
    let w = World::new(Kind::Apt, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.set_vs_route(
        &format!("{}/version", world::CHANNEL),
        testkit::http::Route::redirect(&url),
    );
    let answer = {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", w.vs_port())).unwrap();
        write!(
            c,
            "GET {}/version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            world::CHANNEL
        )
        .unwrap();
        let mut text = String::new();
        c.read_to_string(&mut text).unwrap();
        text
    };
    assert!(
        answer.starts_with("HTTP/1.1 30") && answer.contains(&format!("\r\nLocation: {url}\r\n")),
        "the version server redirects:\n{answer}"
    );
    let before = other.asked();
    let r = w.run(&["run"]);
    eprintln!("{}", r.stderr());
    r.expect(3)
        .logs_contain("refusing a redirect from the loopback version server to another host");
    assert_eq!(other.asked(), before, "the other host was asked");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
}

// ---- credentials in repository URLs never appear in any output ----

pub(crate) const TOKEN: &str = "s3cr3tT0KEN";

pub(crate) fn with_credentials(w: &World, token: &str) {
    match w {
        World::Apt(a) => {
            let url = a
                .repo_server
                .url()
                .replace("http://", &format!("http://teleport:{token}@"));
            a.root.write(
                "/etc/apt/sources.list.d/teleport.list",
                format!("deb [signed-by={KEYRING}] {url}/ bookworm stable/v15\n").as_bytes(),
            );
        }
        World::Rpm(r) => {
            let url = r
                .repo_url("good")
                .replace("http://", &format!("http://teleport:{token}@"));
            r.root.write(
                r.pm.repo_file(),
                testkit::rpm::RpmRepo::repo_file("teleport", &url, &world::rpm::settings()),
            );
        }
    }
}

pub(crate) fn credentials_never_printed(kind: Kind) {
    check_credentials(kind, TOKEN);
}

each_backend!(credentials_never_printed);

/// A password with raw characters that end a URL's authority elsewhere
/// (`;`, `,`, `'`, `>`), which apt accepts as written (zypper refuses them
/// raw, "Invalid password component", and dnf splits a baseurl on `,`:
/// there they are written URL-encoded, which the first row covers).
#[test]
pub(crate) fn apt_credentials_with_special_characters_never_printed() {
    check_credentials(Kind::Apt, "S3c;r,e'T>k");
}

pub(crate) fn check_credentials(kind: Kind, token: &str) {
    let w = World::new(kind, "15.4.2", "15.4.3");
    w.schedule_in_window();
    with_credentials(&w, token);
    let mut seen = String::new();
    let mut show = |label: &str, r: &world::Run| {
        seen.push_str(&format!("--- {label}\n{}{}", r.stdout(), r.stderr()));
    };
    let dry = w.run(&["dry-run"]);
    dry.expect(0);
    show("dry-run", &dry);
    let st = w.run(&["status"]);
    show("status", &st);
    let run = w.run(&["run", "-v"]);
    run.expect(0);
    show("run", &run);
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.3"),
        "{kind:?}: the credentials work"
    );
    let json = w.run(&["status", "--json"]);
    show("status --json", &json);
    // A failing run: a version the repository does not have.
    w.set_target("15.4.9");
    w.config("schedule", &world::schedule_in_window());
    let fail = w.run(&["force", "-v"]);
    assert_ne!(fail.code(), 0, "{kind:?}: the failing run");
    show("failing run", &fail);
    seen.push_str(&std::fs::read_to_string(w.state_file()).unwrap());
    assert!(
        !seen.contains(token),
        "{kind:?}: the token was printed:\n{seen}"
    );
    assert!(
        seen.contains("***@"),
        "{kind:?}: the source is shown, masked:\n{seen}"
    );
}

/// With `http_proxy`/`https_proxy` set (kept for the package managers),
/// the version server on loopback is still asked directly: the proxy is
/// never asked, and the decision is taken.
#[test]
pub(crate) fn the_loopback_version_server_never_goes_through_a_proxy() {
    let proxy = Counting::start();
    let w = World::new(Kind::Apt, "15.4.2", "15.4.3");
    w.schedule_in_window();
    let World::Apt(a) = &w else { unreachable!() };
    let p = format!("http://127.0.0.1:{}", proxy.port);
    let mut c = a.cmd(&["dry-run"]);
    for k in [
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ] {
        c.env(k, &p);
    }
    c.env_remove("no_proxy").env_remove("NO_PROXY");
    let r = world::Run(c.output().unwrap());
    r.expect(0);
    assert!(r.stdout().contains("target:    15.4.3"), "{}", r.stdout());
    assert_eq!(proxy.asked(), 0, "the proxy was asked");
}
