//! Issue 6 behaviours through the binary on apt, dnf and zypper: coexisting
//! with Managed Updates v2, and the proxy's `/webapi/find` (RFD 184) as the
//! source of the target.

mod common;
#[macro_use]
#[path = "common/multi.rs"]
mod multi;
#[path = "common/rpmworld.rs"]
mod rpmworld;

use common::CHANNEL;
use multi::{Kind, World};
use testkit::http::Route;

const V2: &str = "/opt/teleport/default/update.yaml";

fn write(w: &World, abs: &str, text: &str) {
    let p = w.file(abs);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// v2's configuration for the agent makes every run stand down, even a
/// critical one, without asking the version server; `status` says why.
/// `enabled: false` gives the host back.
fn v2_presence_stands_down(kind: Kind) {
    let w = World::new(kind, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.set_critical("yes");
    write(
        &w,
        V2,
        "version: v1\nkind: update_config\nspec:\n  proxy: example.teleport.sh:443\n  enabled: true\n",
    );
    w.run(&["run"])
        .expect(0)
        .logs_contain("Managed Updates v2")
        .logs_contain(V2);
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(w.vs_hits(&format!("{CHANNEL}/version")), 0, "no request");
    let s: serde_json::Value =
        serde_json::from_str(&w.run(&["status", "--json"]).stdout()).unwrap();
    assert_eq!(s["managed_by_v2"], V2);
    assert_eq!(s["last_run"]["decision"], "stand-down");
    // Control: disabled v2 no longer holds the host.
    write(&w, V2, "spec:\n  enabled: false\n");
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}
each_backend!(v2_presence_stands_down);

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
    let World::Apt(a) = &w else { unreachable!() };
    a.vs.set_route("/static/version", Route::ok("15.4.3"));
    a.vs.set_route("/static/critical", Route::ok("no"));
    w.config("endpoint", &format!("127.0.0.1:{}/static", a.vs.port()));
    w.set_vs_route("/webapi/find", find("16.0.0", true));
    w.schedule_in_window();
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    assert_eq!(w.vs_hits("/webapi/find"), 0);
}

// ---- health verification and automatic rollback ----
//
// The agent's readiness endpoint is a stand-in on the version server's
// host: `/readyz` answers 503 while the installed package ships
// `common::BROKEN_MARKER` (only the BROKEN version does), 200 otherwise.
// So readiness follows what the real package manager installed.

fn with_readyz(w: &World) {
    let marker = w.file(common::BROKEN_MARKER);
    w.set_vs_route(
        "/readyz",
        Route::gate(&marker, Route::status(503, "not ready"), Route::ok("ok")),
    );
    w.config("diag-addr", &format!("127.0.0.1:{}", w.vs_port()));
    w.config("health-timeout", "3");
}

/// A new version that never becomes ready is rolled back; the failed
/// version is not retried on the next run (even in a window), only when
/// critical; a new target goes ahead and clears the record.
fn unhealthy_update_is_rolled_back_and_not_retried(kind: Kind) {
    let w = World::new(kind, "15.4.3", common::BROKEN);
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
    assert_eq!(st["failed_target"]["version"], common::BROKEN);
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
    let w = World::new(Kind::Apt, "15.4.3", common::BROKEN);
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
    let w = World::new(kind, common::UNPUBLISHED, common::BROKEN);
    w.schedule_in_window();
    with_readyz(&w);
    let r = w.run(&["run"]);
    eprintln!("{kind:?}:\n{}", r.stderr());
    r.expect(7)
        .logs_contain("ROLLBACK FAILED")
        .logs_contain("15.4.1");
    assert_eq!(
        w.installed().as_deref(),
        Some(common::BROKEN),
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
    let w = World::new(Kind::Apt, "15.4.2", common::BROKEN);
    w.schedule_in_window();
    with_readyz(&w);
    w.config("health-timeout", "0");
    w.run(&["run"]).expect(0);
    assert_eq!(
        w.installed().as_deref(),
        Some(common::BROKEN),
        "not verified, not rolled back"
    );
}

/// The diagnostic address is read from the agent's own configuration.
#[test]
fn diag_addr_comes_from_teleport_yaml() {
    let w = World::new(Kind::Apt, "15.4.3", common::BROKEN);
    w.schedule_in_window();
    with_readyz(&w);
    let port = w.vs_port();
    let World::Apt(a) = &w else { unreachable!() };
    a.remove_config("diag-addr");
    write(
        &w,
        "/etc/teleport.yaml",
        &format!("teleport:\n  nodename: test\n  diag_addr: \"127.0.0.1:{port}\"\n"),
    );
    w.run(&["run"]).expect(6);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

// ---- repository channel moves ----

fn site() -> &'static testkit::channels::ChannelSite {
    static S: std::sync::OnceLock<testkit::channels::ChannelSite> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("beyond-v1-site-{}", std::process::id()));
        testkit::channels::ChannelSite::build(&dir)
    })
}

/// Target 16.0.0 with the repository on `stable/v15`: dry-run shows the
/// edit; run moves the channel, installs, and keeps the move (no backup
/// left). A target whose channel does not exist fails and the definition
/// is restored byte for byte.
fn channel_moves_with_the_major(kind: Kind) {
    let w = World::new(kind, "15.4.3", "16.0.0");
    w.point_at_channel_site(site());
    w.schedule_in_window();
    let before = w.repo_definition();
    let dry = w.run(&["dry-run"]);
    dry.expect(0);
    assert!(
        dry.stdout().contains("stable/v15 -> stable/v16"),
        "{kind:?}\n{}",
        dry.stdout()
    );
    assert_eq!(w.repo_definition(), before, "dry-run changes nothing");

    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("16.0.0"), "{kind:?}");
    let after = w.repo_definition();
    assert!(
        after.contains("stable/v16") && !after.contains("stable/v15"),
        "{after}"
    );
    let backups: Vec<_> = std::fs::read_dir(w.file(match kind {
        Kind::Apt => "/etc/apt/sources.list.d",
        Kind::Dnf => "/etc/yum.repos.d",
        Kind::Zypper => "/etc/zypp/repos.d",
    }))
    .unwrap()
    .filter_map(|e| e.ok())
    .filter(|e| {
        e.file_name()
            .to_string_lossy()
            .ends_with(".teleport-upgrade.bak")
    })
    .collect();
    assert!(backups.is_empty(), "{kind:?}: backup kept after success");

    // v17 is not published: the move is undone.
    w.set_target("17.0.1");
    w.run(&["run"]).expect(4).logs_contain("restored");
    assert_eq!(
        w.repo_definition(),
        after,
        "{kind:?}: restored byte for byte"
    );
    assert_eq!(w.installed().as_deref(), Some("16.0.0"));
}
each_backend!(channel_moves_with_the_major);

/// A run killed in the middle of a channel move left the definition on
/// `stable/v16` and its backup beside it. The next run that updates
/// restores the operator's file first (and says so), then moves only as
/// its own target needs: here 15.4.2 is on `stable/v15`, so the file ends
/// byte for byte as the operator wrote it, and no backup is left. A
/// definition edited since the interrupted move is not touched, and its
/// backup is kept.
fn an_interrupted_channel_move_is_undone(kind: Kind) {
    let w = World::new(kind, "15.4.3", "15.4.2");
    w.point_at_channel_site(site());
    w.schedule_in_window();
    let operator = w.repo_definition();
    let backup = w.interrupt_channel_move(site(), 16);
    assert!(w.repo_definition().contains("stable/v16"));

    let st = w.run(&["status", "--json"]);
    st.expect(0);
    let st: serde_json::Value = serde_json::from_str(&st.stdout()).unwrap();
    let unfinished = st["channel_move_unfinished"].as_str().unwrap_or_default();
    assert!(
        unfinished.contains("stable/v15 -> stable/v16")
            && unfinished.contains(".teleport-upgrade.bak"),
        "{kind:?}: status says {unfinished:?}"
    );
    let dry = w.run(&["dry-run"]);
    dry.expect(0);
    assert!(
        dry.stdout().contains("left a channel move unfinished"),
        "{kind:?}\n{}",
        dry.stdout()
    );
    assert!(backup.exists(), "dry-run changes nothing");

    w.run(&["run"])
        .expect(0)
        .logs_contain("an earlier run stopped in the middle of a channel move");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"), "{kind:?}");
    // (dnf's hold is an `exclude=` line in the same file.)
    let unheld = |t: String| {
        t.lines()
            .filter(|l| !l.starts_with("exclude="))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };
    assert_eq!(
        unheld(w.repo_definition()),
        operator,
        "{kind:?}: the operator's file"
    );
    assert!(!backup.exists(), "{kind:?}: the backup is gone");
    let st = w.run(&["status", "--json"]);
    let st: serde_json::Value = serde_json::from_str(&st.stdout()).unwrap();
    assert!(st["channel_move_unfinished"].is_null(), "{kind:?}");

    // Edited after the interrupted move: neither file is touched by the
    // recovery (the update itself needs no move: 15.4.3 is on stable/v15).
    let backup = w.interrupt_channel_move(site(), 16);
    let edited = format!(
        "{}# edited by hand\n",
        w.repo_definition().replace("stable/v16", "stable/v15")
    );
    std::fs::write(w.repo_definition_path(), &edited).unwrap();
    let kept = std::fs::read_to_string(&backup).unwrap();
    w.set_target("15.4.3");
    w.run(&["run"])
        .expect(0)
        .logs_contain("was edited since: both are left as they are");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"), "{kind:?}");
    assert_eq!(unheld(w.repo_definition()), unheld(edited));
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), kept);
}
each_backend!(an_interrupted_channel_move_is_undone);

// ---- integrity ----

/// The right version with a damaged binary is reinstalled (outside the
/// window too: the agent is broken), then verifies.
fn a_damaged_binary_is_repaired(kind: Kind) {
    let w = World::new(kind, "15.4.3", "15.4.3");
    w.schedule_outside_window();
    w.run(&["run"])
        .expect(0)
        .logs_contain("the installed version is the target");
    w.damage_agent_binary();
    let dry = w.run(&["dry-run"]);
    dry.expect(0);
    assert!(
        dry.stdout().contains("repair:") && dry.stdout().contains("/usr/bin/teleport"),
        "{}",
        dry.stdout()
    );
    let r = w.run(&["run"]);
    eprintln!("{kind:?}:\n{}", r.stderr());
    r.expect(0)
        .logs_contain("do not verify")
        .logs_contain("repaired");
    let text = std::fs::read_to_string(w.file("/usr/bin/teleport")).unwrap();
    assert!(text.contains("15.4.3"), "{text}");
    assert_eq!(w.state()["last_run"]["decision"], "repair");
    w.run(&["run"])
        .expect(0)
        .logs_contain("the installed version is the target");
    assert_eq!(w.state()["last_run"]["decision"], "up-to-date");
}
each_backend!(a_damaged_binary_is_repaired);
