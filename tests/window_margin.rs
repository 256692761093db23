//! A routine update is not started in the last minutes of a window
//! (`window-margin`, default 300 s, at most a quarter of the window): its
//! download, install and restart would land after the window closed. The
//! fleet simulation (tools/fleetsim, FLEET.md) found those late restarts.

use testkit::world::apt::AptWorld;
use testkit::world::now;

/// A window that opened 58 minutes ago and closes in 2 minutes, and one
/// tomorrow.
fn closing_schedule() -> String {
    let n = now();
    format!("{} {}\n{} {}\n", n - 3480, n + 120, n + 86400, n + 90000)
}

#[test]
fn no_routine_update_in_the_last_minutes_of_a_window() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.config("schedule", &closing_schedule());
    w.run(&["run"])
        .expect(0)
        .logs_contain("in less than window-margin (300 s)")
        .logs_contain("next window starts");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    // dry-run says the same.
    let dry = w.run(&["dry-run"]);
    dry.expect(0);
    assert!(dry.stdout().contains("window-margin"), "{}", dry.stdout());
    // 0 turns it off: the update runs.
    w.config("window-margin", "0");
    w.run(&["run"])
        .expect(0)
        .logs_contain("inside the maintenance window");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

#[test]
fn a_critical_update_ignores_the_margin() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.config("schedule", &closing_schedule());
    w.set_critical("yes\n");
    w.run(&["run"]).expect(0).logs_contain("critical");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

#[test]
fn window_margin_is_parsed_strictly() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.config("schedule", &closing_schedule());
    for bad in ["5min", "-1", "3601", "1e3"] {
        w.config("window-margin", bad);
        w.run(&["run"]).expect(2).logs_contain("window-margin");
        assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    }
    w.config("window-margin", "60");
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}
