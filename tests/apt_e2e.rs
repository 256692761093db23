//! End to end on apt: the real binary, real apt-get/dpkg, a real signed
//! repository and a version server on loopback, in an alternate root.

mod common;
use common::*;

#[test]
fn in_window_update_installs_holds_and_records() {
    let w = World::new("15.4.2", "v15.4.3\n");
    w.schedule_in_window();
    let r = w.run(&["run"]);
    r.expect(0).logs_contain("inside the maintenance window");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    assert!(w.held(), "the agent must be held after an update");
    let st = w.state();
    assert_eq!(st["last_run"]["decision"], "update");
    assert_eq!(st["last_run"]["installed_before"], "15.4.2");
    assert_eq!(st["last_run"]["installed_after"], "15.4.3");
    assert_eq!(st["updates_total"], 1);
}
