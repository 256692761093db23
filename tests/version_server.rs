//! The version server through the real binary on apt: a hostile body is
//! refused before any command runs; an error, a hanging or a missing
//! server means no update; plain http needs `insecure`, which only a
//! loopback host may have. (TLS: `tests/tls.rs`.)

use testkit::world::apt::AptWorld;
use testkit::world::CHANNEL;

#[test]
fn hostile_version_bodies_are_refused_before_any_command() {
    let big = "9".repeat(1 << 20);
    let bodies: &[&str] = &[
        "latest",
        "15.4.3; rm -rf /",
        "--help",
        "<html><body>Bad Gateway</body></html>",
        "",
        "v15.4.3 --allow-unauthenticated",
        "15.4.3\n16.0.0",
        &big,
    ];
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    for body in bodies {
        w.set_target(body);
        let r = w.run(&["run"]);
        r.expect(3);
        assert!(
            r.stderr().contains(&format!("127.0.0.1:{}", w.vs.port())),
            "the error names the endpoint: {}",
            r.stderr()
        );
        assert_eq!(w.installed().as_deref(), Some("15.4.2"));
        assert_eq!(
            w.repo_server.requests().len(),
            0,
            "nothing reached apt for {:?}",
            &body[..body.len().min(30)]
        );
    }
}

#[test]
fn version_server_errors_mean_no_update() {
    use std::time::{Duration, Instant};
    use testkit::http::Route;
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    w.set_version_route(Route::status(500, "internal error"));
    w.run(&["run"]).expect(1).logs_contain("HTTP 500");
    w.set_version_route(Route::status(404, "not found"));
    w.run(&["run"]).expect(1).logs_contain("HTTP 404");
    // A server that accepts and never answers cannot hang a run.
    w.set_version_route(Route::Hang);
    let t = Instant::now();
    w.run(&["run"]).expect(1).logs_contain("timed out");
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(w.state()["last_run"]["result"], "no-target");
}

#[test]
fn version_server_down_means_no_update() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    // a port nothing listens on
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    w.config("endpoint", &format!("127.0.0.1:{port}{CHANNEL}"));
    w.run(&["run"]).expect(1).logs_contain("could not connect");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
}

#[test]
fn plain_http_needs_insecure() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    w.remove_config("insecure");
    // Without insecure the client speaks https to the plain-http server: it fails.
    w.run(&["run"]).expect(1);
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
}

#[test]
fn insecure_with_a_non_local_host_is_refused() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    w.config(
        "endpoint",
        "teleport.example.com/v1/webapi/automaticupgrades/channel/default",
    );
    w.run(&["run"])
        .expect(3)
        .logs_contain("insecure=yes is honoured only for localhost");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
}
