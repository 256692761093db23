//! The cluster's update groups (RFD 184), through the binary on apt, dnf
//! and zypper: `update-group` (or a disabled v2 `update.yaml`'s group) is
//! sent as `/webapi/find?group=`, and the group's `agent_auto_update`
//! decides instead of the local windows; a proxy without groups (404, or
//! no `auto_update`) leaves today's behaviour; a bad name is refused.

use testkit::each_backend;
use testkit::http::Route;
use testkit::world::{Kind, World, CHANNEL};

const V2: &str = "/opt/teleport/default/update.yaml";

/// A proxy's `/webapi/find` answer for a group (no jitter: tests wait for
/// nothing).
fn find(agent_version: &str, now: bool) -> Route {
    Route::ok(format!(
        r#"{{"server_version":"16.0.0","auto_update":{{"tools_version":"16.0.0","tools_auto_update":false,"agent_version":"{agent_version}","agent_auto_update":{now},"agent_update_jitter_seconds":0}}}}"#
    ))
}

/// The raw targets (path and query) of the requests for `/webapi/find`.
fn find_targets(w: &World) -> Vec<String> {
    w.vs()
        .requests()
        .into_iter()
        .filter(|r| r.path == "/webapi/find")
        .map(|r| r.target)
        .collect()
}

fn status(w: &World) -> serde_json::Value {
    serde_json::from_str(&w.run(&["status", "--json"]).stdout()).unwrap()
}

/// Without a group no query is sent; with one, `?group=<name>` is, and the
/// group's answer decides: inside a local window the host waits while the
/// cluster's rollout has not reached its group, and outside any window it
/// updates once it has. `status` shows the group and what the cluster said.
fn the_group_is_sent_and_obeyed(kind: Kind) {
    let w = World::new(kind, "15.4.2", "15.4.3");
    w.schedule_outside_window();
    w.set_vs_route("/webapi/find", find("15.4.3", false));
    w.run(&["run"]).expect(0);
    assert_eq!(find_targets(&w), ["/webapi/find"], "no group, no query");
    assert!(status(&w)["update_group"].is_null());

    w.config("update-group", "staging");
    w.schedule_in_window();
    let r = w.run(&["run"]);
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.2"),
        "the window does not decide"
    );
    assert_eq!(
        find_targets(&w).last().map(String::as_str),
        Some("/webapi/find?group=staging")
    );
    r.expect(0)
        .logs_contain("has not reached update group staging");
    let s = status(&w);
    assert_eq!(s["update_group"]["group"], "staging");
    assert_eq!(s["update_group"]["answered"], true);
    assert_eq!(s["update_group"]["update_now"], false);

    w.schedule_outside_window();
    w.set_vs_route("/webapi/find", find("15.4.3", true));
    w.run(&["run"])
        .expect(0)
        .logs_contain("has reached update group staging");
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.3"),
        "updated with its group"
    );
    let s = status(&w);
    assert_eq!(s["update_group"]["version"], "15.4.3");
    assert_eq!(s["update_group"]["update_now"], true);
    assert!(s["update_group"]["asked"].as_i64().unwrap() > 0);
    let human = w.run(&["status"]).stdout();
    assert!(
        human.contains(
            "group:       staging (from update-group): the cluster said 15.4.3, update now: yes"
        ),
        "{human}"
    );
}
each_backend!(the_group_is_sent_and_obeyed);

/// A proxy that does not know groups: 404 on `/webapi/find`, or an answer
/// without `auto_update`. `/version` and the windows decide as without a
/// group, and `status` says the group got no answer.
fn a_proxy_without_groups_keeps_todays_behaviour(kind: Kind) {
    let w = World::new(kind, "15.4.2", "15.4.3");
    w.config("update-group", "prod");
    w.schedule_outside_window();
    w.run(&["run"])
        .expect(0)
        .logs_contain("outside the maintenance window");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(find_targets(&w), ["/webapi/find?group=prod"]);
    assert_eq!(status(&w)["update_group"]["answered"], false);
    w.set_vs_route("/webapi/find", Route::ok(r#"{"server_version":"15.4.3"}"#));
    w.schedule_in_window();
    w.run(&["run"])
        .expect(0)
        .logs_contain("asked the version server");
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.3"),
        "/version in a window"
    );
    let s = status(&w);
    assert_eq!(s["update_group"]["group"], "prod");
    assert_eq!(s["update_group"]["answered"], false);
    assert!(s["update_group"]["version"].is_null());
}
each_backend!(a_proxy_without_groups_keeps_todays_behaviour);

/// An invalid group name is refused with exit 2 naming its file, before
/// the version server is asked and with nothing changed; the same for a
/// disabled v2 `update.yaml`'s group, which the setting overrides.
fn an_invalid_group_is_refused(kind: Kind) {
    let w = World::new(kind, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.set_vs_route("/webapi/find", find("15.4.3", true));
    w.config("update-group", "prod&group=dev");
    w.run(&["run"]).expect(2).logs_contain("update-group");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(w.vs_hits(&format!("{CHANNEL}/version")), 0);
    assert!(find_targets(&w).is_empty());

    std::fs::remove_file(w.root_path().join("etc/teleport-upgrade.d/update-group")).unwrap();
    w.write(
        V2,
        "version: v1\nkind: update_config\nspec:\n  group: \"dev east\"\n  enabled: false\n",
    );
    w.run(&["run"])
        .expect(2)
        .logs_contain(V2)
        .logs_contain("spec.group");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert!(find_targets(&w).is_empty());
    // The setting wins over update.yaml's group.
    w.config("update-group", "canary");
    w.run(&["run"]).expect(0);
    assert_eq!(find_targets(&w), ["/webapi/find?group=canary"]);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}
each_backend!(an_invalid_group_is_refused);

/// A disabled v2 `update.yaml`'s group is used when `update-group` is
/// unset (the host left v2 for this updater and keeps its group).
#[test]
fn a_disabled_v2_configs_group_is_used() {
    let w = World::new(Kind::Apt, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.write(V2, "version: v1\nkind: update_config\nspec:\n  proxy: p.example.com:443\n  group: dev\n  enabled: false\n");
    w.set_vs_route("/webapi/find", find("15.4.3", false));
    let r = w.run(&["run"]);
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.2"),
        "the group is not due"
    );
    assert_eq!(find_targets(&w), ["/webapi/find?group=dev"]);
    r.expect(0).logs_contain("update group dev");
    assert_eq!(status(&w)["update_group"]["from"], "update.yaml");
}
