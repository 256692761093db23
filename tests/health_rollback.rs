//! Health verification and automatic rollback, through the binary on apt,
//! dnf and zypper: a new version that never becomes ready is rolled back
//! and not retried (unless critical); a rollback that cannot be done is
//! loud and leaves the host whole; no health signal is said, not hidden.
//!
//! The agent's readiness endpoint is a stand-in on the version server's
//! host: `/readyz` answers 503 while the installed package ships
//! `world::BROKEN_MARKER` (only the BROKEN version does), 200 otherwise.
//! So readiness follows what the real package manager installed.

use testkit::each_backend;
use testkit::world::{self, Kind, World};

/// Readiness that follows the installed package (see
/// [`World::broken_gate`]), a 3 s health timeout.
fn with_readyz(w: &World) {
    w.set_readiness(w.broken_gate(), "3");
}

/// A new version that never becomes ready is rolled back; the failed
/// version is not retried on the next run (even in a window), only when
/// critical; a new target goes ahead and clears the record.
fn unhealthy_update_is_rolled_back_and_not_retried(kind: Kind) {
    let w = World::new(kind, "15.4.3", world::BROKEN);
    w.schedule_in_window();
    with_readyz(&w);
    let r = w.run(&["run"]);
    eprintln!("{kind:?}:\n{}", r.stderr());
    r.expect(6)
        .logs_contain("did not become healthy")
        .logs_contain("rolling back to 15.4.3")
        .logs_contain("HTTP 503");
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.3"),
        "{kind:?}: rolled back"
    );
    let st = w.state();
    assert_eq!(st["failed_target"]["version"], world::BROKEN);
    assert_eq!(st["rollbacks_total"], 1);
    assert_eq!(st["last_run"]["result"], "rolled-back");

    // Next run, still in the window: not retried.
    w.run(&["run"])
        .expect(0)
        .logs_contain("failed its health check on this host");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));

    // A new target goes ahead, is healthy, and clears the record.
    w.set_target("16.0.0");
    w.run(&["run"])
        .expect(0)
        .logs_contain("the agent is healthy");
    assert_eq!(w.installed().as_deref(), Some("16.0.0"));
    assert!(w.state()["failed_target"].is_null());
}
each_backend!(unhealthy_update_is_rolled_back_and_not_retried);

/// A critical update retries a version that failed before.
#[test]
fn critical_retries_a_failed_version() {
    let w = World::new(Kind::Apt, "15.4.3", world::BROKEN);
    w.schedule_in_window();
    with_readyz(&w);
    w.run(&["run"]).expect(6);
    w.set_critical("yes");
    w.run(&["run"]).expect(6).logs_contain("rolling back");
    assert_eq!(w.state()["rollbacks_total"], 2);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

/// When the previous version is gone from the repository, the rollback
/// fails: exit 7, said loudly, and the host keeps the new version
/// installed (never half-removed).
fn rollback_failure_is_loud_and_leaves_the_host_whole(kind: Kind) {
    let w = World::new(kind, world::UNPUBLISHED, world::BROKEN);
    w.schedule_in_window();
    with_readyz(&w);
    let r = w.run(&["run"]);
    eprintln!("{kind:?}:\n{}", r.stderr());
    r.expect(7)
        .logs_contain("ROLLBACK FAILED")
        .logs_contain("15.4.1");
    assert_eq!(
        w.installed().as_deref(),
        Some(world::BROKEN),
        "{kind:?}: the new version stays installed"
    );
    let s: serde_json::Value =
        serde_json::from_str(&w.run(&["status", "--json"]).stdout()).unwrap();
    assert_eq!(s["last_run"]["result"], "rollback-failed");
    assert!(s["last_run"]["error"]
        .as_str()
        .unwrap()
        .contains("ROLLBACK FAILED"));
    assert!(w.run(&["status"]).stdout().contains("ROLLBACK FAILED"));
}
each_backend!(rollback_failure_is_loud_and_leaves_the_host_whole);

/// With no health signal at all (no systemd, no diagnostic address), the
/// update stands and the log says it could not be verified; with
/// health-timeout 0 nothing is waited for.
#[test]
fn no_health_signal_is_said_not_hidden() {
    let w = World::new(Kind::Apt, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.run(&["run"])
        .expect(0)
        .logs_contain("cannot verify the agent's health here");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    let w = World::new(Kind::Apt, "15.4.2", world::BROKEN);
    w.schedule_in_window();
    with_readyz(&w);
    w.config("health-timeout", "0");
    w.run(&["run"]).expect(0);
    assert_eq!(
        w.installed().as_deref(),
        Some(world::BROKEN),
        "not verified, not rolled back"
    );
}

/// The diagnostic address is read from the agent's own configuration.
#[test]
fn diag_addr_comes_from_teleport_yaml() {
    let w = World::new(Kind::Apt, "15.4.3", world::BROKEN);
    w.schedule_in_window();
    with_readyz(&w);
    let port = w.vs_port();
    let World::Apt(a) = &w else { unreachable!() };
    a.remove_config("diag-addr");
    w.write(
        "/etc/teleport.yaml",
        format!("teleport:\n  nodename: test\n  diag_addr: \"127.0.0.1:{port}\"\n"),
    );
    w.run(&["run"]).expect(6);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}
