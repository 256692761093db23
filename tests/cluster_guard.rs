//! The cluster-compatibility guard through the binary: a target above the
//! cluster's version (the proxy's `server_version`, from `/webapi/find` or
//! `/webapi/ping` on a loopback stand-in) is refused on apt, dnf and
//! zypper; a cluster whose version cannot be learned lets the run proceed
//! unless `cluster-guard` is `required`.

use testkit::each_backend;
use testkit::http::Route;
use testkit::world::{Kind, World};

fn server_version(v: &str) -> Route {
    Route::ok(format!(
        r#"{{"server_version":"{v}","proxy":{{"ssh":{{}}}},"auth":{{}}}}"#
    ))
}

/// `/version` advertises 15.4.3 while the proxy runs 15.4.2: refused
/// (exit 3, both versions and the rule named), nothing changed. Control:
/// the same run against a 15.4.3 cluster updates, so the refusal is the
/// guard's alone.
fn target_above_the_cluster_is_refused(kind: Kind) {
    let w = World::new(kind, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.set_vs_route("/webapi/find", server_version("15.4.2"));
    let db = w.package_db();
    w.run(&["run"])
        .expect(3)
        .logs_contain("15.4.3 is newer than the cluster's version 15.4.2")
        .logs_contain("never run a newer version");
    assert_eq!(w.package_db(), db, "{kind:?}: nothing changed");
    let s = w.status_json();
    assert_eq!(s["cluster_version"], "15.4.2");
    assert!(
        s["cluster_guard"]
            .as_str()
            .unwrap()
            .contains("newer than the cluster"),
        "{s:#}"
    );
    assert_eq!(s["last_run"]["result"], "refused");
    // dry-run shows the same verdict and refuses the same way.
    let r = w.run(&["dry-run"]);
    r.expect(3);
    assert!(r.stdout().contains("cluster:   15.4.2"), "{}", r.stdout());
    // Control: the cluster at the target.
    w.set_vs_route("/webapi/find", server_version("15.4.3"));
    w.run(&["run"])
        .expect(0)
        .logs_contain("compatible with the cluster's version 15.4.3");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    assert_eq!(w.status_json()["cluster_version"], "15.4.3");
}
each_backend!(target_above_the_cluster_is_refused);

/// More than one major below the cluster is refused too (a static server
/// left behind after the cluster moved two majors).
#[test]
fn target_too_far_below_the_cluster_is_refused() {
    let w = World::new(Kind::Apt, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.set_vs_route("/webapi/find", server_version("17.0.0"));
    w.run(&["run"])
        .expect(3)
        .logs_contain("more than one major version below the cluster's version 17.0.0");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    w.set_vs_route("/webapi/find", server_version("16.1.0"));
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

/// An older proxy without `server_version` in `/webapi/find`: the version
/// comes from `/webapi/ping`.
#[test]
fn ping_gives_the_cluster_version() {
    let w = World::new(Kind::Apt, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.set_vs_route("/webapi/ping", server_version("15.4.2"));
    w.run(&["run"])
        .expect(3)
        .logs_contain("newer than the cluster's version 15.4.2");
    assert_eq!(w.vs_hits("/webapi/ping"), 1);
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    w.set_vs_route("/webapi/ping", server_version("16.0.0"));
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

/// A static version server: the proxy is found in the agent's
/// teleport.yaml (`proxy_server`); without it the guard cannot apply, the
/// run proceeds and says why, unless `cluster-guard` is `required`.
#[test]
fn static_server_uses_teleport_yaml_or_says_why() {
    let w = World::new(Kind::Apt, "15.4.2", "15.4.3");
    w.use_static_version_server("15.4.3");
    w.schedule_in_window();
    w.set_vs_route("/webapi/find", server_version("15.4.2"));
    // required, and nothing names the proxy: refused.
    w.config("cluster-guard", "required");
    w.run(&["run"])
        .expect(3)
        .logs_contain("static version server")
        .logs_contain("cluster-guard is required");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    // teleport.yaml names the proxy: its find says 15.4.2: refused.
    let yaml = w.file("/etc/teleport.yaml");
    std::fs::write(
        &yaml,
        format!(
            "version: v3\nteleport:\n  proxy_server: 127.0.0.1:{}\n",
            w.vs_port()
        ),
    )
    .unwrap();
    w.run(&["run"])
        .expect(3)
        .logs_contain("newer than the cluster's version 15.4.2");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    // best-effort, teleport.yaml gone: proceeds, saying why.
    std::fs::remove_file(&yaml).unwrap();
    w.config("cluster-guard", "best-effort");
    w.run(&["run"])
        .expect(0)
        .logs_contain("could not apply")
        .logs_contain("static version server");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    assert_eq!(w.status_json()["cluster_version"], serde_json::Value::Null);
}

/// The proxy does not answer at all: best-effort proceeds, required
/// refuses; a bad setting is a config error.
#[test]
fn unreachable_proxy() {
    let w = World::new(Kind::Apt, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.config("cluster-guard", "required");
    w.run(&["run"])
        .expect(3)
        .logs_contain("webapi/ping")
        .logs_contain("cluster-guard is required");
    w.config("cluster-guard", "always");
    w.run(&["run"]).expect(2).logs_contain("cluster-guard");
    w.config("cluster-guard", "best-effort");
    w.run(&["run"]).expect(0).logs_contain("could not apply");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

fn find_with_jitter(now: bool, jitter: u64) -> Route {
    Route::ok(format!(
        r#"{{"server_version":"15.4.3","auto_update":{{"agent_version":"15.4.3","agent_auto_update":{now},"agent_update_jitter_seconds":{jitter}}}}}"#
    ))
}

/// `agent_update_jitter_seconds` makes a window update wait a random delay
/// up to it (1 s here, so the test barely waits); a critical update does
/// not wait.
#[test]
fn find_jitter_delays_a_window_update_only() {
    let w = World::new(Kind::Apt, "15.4.2", "15.4.2");
    w.schedule_in_window();
    w.set_vs_route("/webapi/find", find_with_jitter(false, 1));
    w.run(&["run"])
        .expect(0)
        .logs_contain("random delay up to 1 s (agent_update_jitter_seconds");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    let w = World::new(Kind::Apt, "15.4.2", "15.4.2");
    w.schedule_outside_window();
    w.set_vs_route("/webapi/find", find_with_jitter(true, 1));
    let r = w.run(&["run"]);
    r.expect(0);
    assert!(!r.stderr().contains("random delay"), "{}", r.stderr());
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}
