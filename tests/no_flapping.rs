//! No flapping: behind a load balancer, during a rolling proxy upgrade,
//! successive checks reach proxies of different versions, and the
//! `default` channel serves each proxy's own version. Since a lower target
//! is installed too (that is how a fleet rolls back), an updater that
//! installs every answer flips the agent between the versions, one restart
//! each. Here a lower target is installed only when two checks at least
//! `unhealthy-interval` apart see it (or it is critical); answers that
//! disagree are logged, counted and shown in `status`; a steady fleet
//! rollback still happens, once.
//!
//! Through the real binary on a real apt/dpkg root with a signed
//! repository and a version server on loopback; the time between checks
//! is made by moving the state file's record of the first sighting into
//! the past (as `backdate_marker` does for the unhealthy marker).

use testkit::world::apt::AptWorld;
use testkit::world::backdate_lower_target;

#[test]
fn proxies_that_disagree_do_not_flip_the_agent() {
    let w = AptWorld::new("15.4.3", "15.4.3");
    w.config("metrics-dir", "/var/lib/metrics");
    std::fs::create_dir_all(w.root.file("/var/lib/metrics")).unwrap();
    w.schedule_in_window();
    w.run(&["run"])
        .expect(0)
        .logs_contain("the installed version is the target");
    // Checks 30 minutes apart, inside a window, reach a 15.4.2 proxy and a
    // 15.4.3 proxy in turn.
    for round in 1..=3 {
        w.set_target("15.4.2");
        w.run(&["run"])
            .expect(0)
            .logs_contain("below the installed version");
        assert_eq!(
            w.installed().as_deref(),
            Some("15.4.3"),
            "round {round}: a lower answer seen once does not move the agent"
        );
        assert_eq!(w.state()["lower_target"]["version"], "15.4.2");
        backdate_lower_target(w.root.path(), 1800);
        w.set_target("15.4.3");
        w.run(&["run"])
            .expect(0)
            .logs_contain("the version server's answers disagree: 15.4.2");
        assert_eq!(w.installed().as_deref(), Some("15.4.3"), "round {round}");
        assert_eq!(w.state()["lower_target"], serde_json::Value::Null);
    }
    let st = w.state();
    assert_eq!(st["updates_total"], 0, "no flip: {st:#}");
    assert_eq!(st["disagreements_total"], 3, "{st:#}");
    let human = w.run(&["status"]);
    human.expect(0);
    assert!(
        human.stdout().contains(
            "the version server's answers disagree: 15.4.2 (below the installed version)"
        ) && human.stdout().contains("3 in all"),
        "{}",
        human.stdout()
    );
    let s = w.status_json();
    assert_eq!(s["disagreements_total"], 3, "{s:#}");
    let prom =
        std::fs::read_to_string(w.root.file("/var/lib/metrics/teleport_upgrade.prom")).unwrap();
    assert!(
        prom.contains("teleport_upgrade_version_disagreements_total 3\n"),
        "{prom}"
    );
}

#[test]
fn a_steady_fleet_rollback_happens_once() {
    let w = AptWorld::new("15.4.3", "15.4.2");
    w.schedule_in_window();
    // The first check: wait, and say when it is installed.
    w.run(&["run"])
        .expect(0)
        .logs_contain("below the installed version");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    let human = w.run(&["status"]);
    assert!(
        human
            .stdout()
            .contains("lower:       15.4.2 (below the installed version)"),
        "{}",
        human.stdout()
    );
    // A second check at once is not a confirmation (unhealthy-interval).
    w.run(&["run"])
        .expect(0)
        .logs_contain("below the installed version");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    // unhealthy-interval (5 minutes) later, the same answer: installed.
    backdate_lower_target(w.root.path(), 300);
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert!(w.held());
    // Once: the next runs are up to date and nothing is recorded.
    for _ in 0..2 {
        w.run(&["run"])
            .expect(0)
            .logs_contain("the installed version is the target");
    }
    let st = w.state();
    assert_eq!(st["updates_total"], 1, "{st:#}");
    assert_eq!(st["lower_target"], serde_json::Value::Null, "{st:#}");
    assert_eq!(st["disagreements_total"], 0, "{st:#}");
}

#[test]
fn a_critical_lower_target_is_installed_at_once() {
    let w = AptWorld::new("15.4.3", "15.4.2");
    w.schedule_outside_window();
    w.set_critical("yes\n");
    w.run(&["run"]).expect(0).logs_contain("critical");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
}
