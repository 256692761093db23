//! One run at a time: a second run while the first holds the lock exits
//! "locked" (5) naming the holder, `status` shows it, and a killed run
//! leaves no lock behind. (Planted links and a user's `flock` at the lock
//! paths: `tests/hostile_files.rs`.)

use testkit::world::apt::AptWorld;

#[test]
fn a_second_concurrent_run_exits_and_a_killed_run_leaves_no_lock() {
    use std::time::{Duration, Instant};
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    w.set_version_route(testkit::http::Route::Hang);
    let mut first = w.spawn(&["run"]);
    // wait until the first run is talking to the version server (it holds the lock)
    let t = Instant::now();
    while w.version_hits() == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the first run never asked the version server"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = w.run(&["run"]);
    second
        .expect(5)
        .logs_contain(&format!("pid {}", first.id()));
    let status = w.run(&["status"]);
    assert!(
        status
            .stdout()
            .contains(&format!("held by pid {}", first.id())),
        "{}",
        status.stdout()
    );
    first.kill().unwrap();
    first.wait().unwrap();
    w.set_target("15.4.3");
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}
