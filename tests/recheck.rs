//! Recovery in minutes: a run that sees the agent unhealthy for the first
//! time arranges the second look `recheck-delay` later (a transient systemd
//! timer). Without systemd (here: `--root`) the command is planned and
//! logged, not run; the container matrix runs it under systemd.

use testkit::world::apt::AptWorld;

#[test]
fn a_first_unhealthy_sighting_plans_a_recheck() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.config("schedule", ""); // unhealthy: no window ahead
    w.run(&["run"])
        .expect(0)
        .logs_contain("marked, and the next run updates")
        .logs_contain("not arranging a re-check in 300 s")
        .logs_contain("systemd-run --on-active=300s --unit=teleport-upgrade-recheck");
    assert!(w.marker());
    // A run at once (before unhealthy-interval) is no second sighting, and
    // arranges no second re-check.
    let r = w.run(&["run"]);
    r.expect(0).logs_contain("younger than unhealthy-interval");
    assert!(!r.stderr().contains("re-check"), "{}", r.stderr());
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    // The re-check, 300 s after the first sighting (the marker as it would
    // be then), updates and arranges nothing.
    w.backdate_marker(300);
    let r = w.run(&["run"]);
    r.expect(0)
        .logs_contain("unhealthy on two consecutive runs");
    assert!(!r.stderr().contains("re-check"), "{}", r.stderr());
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

#[test]
fn recheck_delay_is_configurable_and_zero_turns_it_off() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.config("schedule", "");
    w.config("recheck-delay", "90");
    w.run(&["run"]).expect(0).logs_contain("--on-active=90s");
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.config("schedule", "");
    w.config("recheck-delay", "0");
    let r = w.run(&["run"]);
    r.expect(0);
    assert!(!r.stderr().contains("re-check"), "{}", r.stderr());
    for bad in ["10", "5min", "-1", "4000"] {
        w.config("recheck-delay", bad);
        w.run(&["run"]).expect(2).logs_contain("recheck-delay");
    }
}
