//! The shipped v1 updater's other settings: `repository` (the apt list name
//! or the yum/zypper repo id), `restart-mode`, `TELEPORT_UPGRADE_STATE`,
//! and its unhealthy marker `<state dir>/state-unhealthy`.

use testkit::each_backend;
use testkit::world::apt::AptWorld;
use testkit::world::{self, Kind, World};

/// A v1 configuration directory (`repository` = `teleport`, v1's default,
/// and `restart-mode` = `reload`) works unchanged; a repository name that
/// does not exist is a configuration error naming the file, and nothing
/// changes.
fn v1_directory_works_unchanged(kind: Kind) {
    let w = World::new(kind, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.config("restart-mode", "reload");
    w.config("repository", "elsewhere");
    let db = w.package_db();
    w.run(&["run"])
        .expect(2)
        .logs_contain("repository")
        .logs_contain("elsewhere");
    assert_eq!(w.package_db(), db);
    w.config("repository", "teleport");
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"), "{kind:?}");
    let s: serde_json::Value =
        serde_json::from_str(&w.run(&["status", "--json"]).stdout()).unwrap();
    let src = s["source"].as_str().unwrap();
    assert!(src.contains("teleport"), "{src}");
    w.config("restart-mode", "sometimes");
    w.run(&["run"]).expect(2).logs_contain("restart-mode");
}
each_backend!(v1_directory_works_unchanged);

/// `TELEPORT_UPGRADE_STATE` moves the state directory; v1's marker there
/// counts: an unhealthy agent with it present updates on this run (the
/// second sighting), and the marker is consumed. Control: without v1's
/// marker the same run only marks.
#[test]
fn v1_state_dir_and_marker() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.config("schedule", ""); // unhealthy: no window ahead
    let run = |args: &[&str]| {
        let out = w
            .cmd(args)
            .env("TELEPORT_UPGRADE_STATE", "/var/lib/v1-state")
            .output()
            .unwrap();
        world::Run(out)
    };
    // Control: a first sighting only marks.
    let fresh = AptWorld::new("15.4.2", "15.4.3");
    fresh.config("schedule", "");
    fresh.run(&["run"]).expect(0);
    assert_eq!(fresh.installed().as_deref(), Some("15.4.2"));
    // v1's marker in the moved state directory.
    let v1 = w.root.file("/var/lib/v1-state/state-unhealthy");
    std::fs::create_dir_all(v1.parent().unwrap()).unwrap();
    std::fs::write(&v1, "").unwrap();
    // written by v1's run ten minutes ago (v1's marker is empty: its time is
    // its modification time, and it counts once unhealthy-interval old)
    std::fs::File::options()
        .write(true)
        .open(&v1)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(600))
        .unwrap();
    run(&["run"])
        .expect(0)
        .logs_contain("unhealthy on two consecutive runs");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    assert!(!v1.exists(), "v1's marker is consumed");
    assert!(w.root.file("/var/lib/v1-state/state.json").exists());
    assert!(
        !w.root.file("/var/lib/teleport-upgrade/state.json").exists(),
        "the state went to TELEPORT_UPGRADE_STATE"
    );
    let s: serde_json::Value = serde_json::from_str(&run(&["status", "--json"]).stdout()).unwrap();
    assert_eq!(s["last_run"]["installed_after"], "15.4.3");
}
