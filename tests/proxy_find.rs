//! The proxy's `/webapi/find` (RFD 184) as the source of the target,
//! through the binary on apt, dnf and zypper: its agent version wins over
//! `/version` and its update-now signal updates outside the window; an
//! older proxy falls back to `/version`; a static server is never asked.

use testkit::each_backend;
use testkit::http::Route;
use testkit::world::{Kind, World};

fn find(agent_version: &str, now: bool) -> Route {
    Route::ok(format!(
        r#"{{"server_version":"16.0.0","auto_update":{{"tools_version":"16.0.0","tools_auto_update":false,"agent_version":"{agent_version}","agent_auto_update":{now},"agent_update_jitter_seconds":60}}}}"#
    ))
}

/// The proxy's agent version wins over `/version`, and its update-now
/// signal updates outside the window.
fn find_drives_the_decision(kind: Kind) {
    let w = World::new(kind, "15.4.2", "15.4.2");
    w.schedule_outside_window();
    w.set_vs_route("/webapi/find", find("15.4.3", false));
    w.run(&["run"])
        .expect(0)
        .logs_contain("/webapi/find")
        .logs_contain("outside the maintenance window");
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.2"),
        "waits for a window"
    );
    w.set_vs_route("/webapi/find", find("15.4.3", true));
    w.run(&["run"]).expect(0).logs_contain("critical");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"), "updated now");
    assert!(w.vs_hits("/webapi/find") >= 2);
}
each_backend!(find_drives_the_decision);

/// A proxy without the fields (older, or 404) leaves `/version` in charge;
/// a hostile agent_version is refused.
#[test]
fn find_falls_back_and_refuses_hostile_versions() {
    let w = World::new(Kind::Apt, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.set_vs_route("/webapi/find", Route::ok(r#"{"server_version":"15.4.3"}"#));
    w.run(&["run"])
        .expect(0)
        .logs_contain("asked the version server");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    w.set_target("15.4.2");
    w.set_vs_route("/webapi/find", find("15.4.2 --force-yes", true));
    w.run(&["run"]).expect(3).logs_contain("agent_version");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    // No route at all (404): /version decides.
    let w = World::new(Kind::Apt, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    assert_eq!(w.vs_hits("/webapi/find"), 1);
}

/// A static, self-hosted version server (not a proxy's channel path) is
/// never asked for /webapi/find.
#[test]
fn a_static_version_server_is_not_asked_for_find() {
    let w = World::new(Kind::Apt, "15.4.2", "15.4.3");
    w.use_static_version_server("15.4.3");
    w.set_vs_route("/webapi/find", find("16.0.0", true));
    w.schedule_in_window();
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    assert_eq!(w.vs_hits("/webapi/find"), 0);
}
