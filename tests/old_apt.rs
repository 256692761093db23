//! An apt older than 2.1.16 (Ubuntu 20.04 ships 2.0) has no
//! `apt-get update --error-on=any`, and exits 0 when a signature fails over
//! lists fetched earlier. The updater then omits the option and judges the
//! refresh by apt's warnings. Driven here with the real apt, told by a
//! debug-only switch that it is 2.0.9: without `--error-on=any` the real apt
//! behaves as 2.0 does, which the first assertion proves.

use testkit::world::apt::AptWorld;
use testkit::world::Run;

const OLD: (&str, &str) = ("TELEPORT_UPGRADE_TEST_APT_VERSION", "2.0.9");

fn run_old(w: &AptWorld, args: &[&str]) -> Run {
    Run(w.cmd(args).env(OLD.0, OLD.1).output().unwrap())
}

#[test]
fn without_error_on_an_update_still_works_and_a_key_gone_wrong_is_refused() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    // The refresh does not pass the option an old apt would reject.
    let dry = run_old(&w, &["dry-run"]);
    dry.expect(0);
    assert!(
        dry.stdout().contains(" update") && !dry.stdout().contains("--error-on"),
        "{}",
        dry.stdout()
    );
    run_old(&w, &["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    // A lower target, seen by a first check (it is installed on the second).
    w.set_target("15.4.2");
    run_old(&w, &["run"])
        .expect(0)
        .logs_contain("below the installed version");
    testkit::world::backdate_lower_target(w.root.path(), 600);
    // Today the repository is signed by another key.
    let other = testkit::gpg::Key::generate(&w.dir.path().join("other"), "Mallory <m@example.com>");
    w.repo.sign_with(Some(&other));
    // The weakening is real: apt-get update without --error-on exits 0
    // with only warnings, over the lists it fetched before.
    let plain = w
        .root
        .apt_get_with_sources(&w.host_sources_line(), &["update"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&plain.stdout),
        String::from_utf8_lossy(&plain.stderr)
    );
    assert!(plain.status.success(), "plain apt-get update: {text}");
    assert!(text.contains("W:"), "plain apt-get update warns: {text}");
    let r = run_old(&w, &["run"]);
    r.expect(3).logs_contain("has no --error-on=any");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    // Control: a current apt refuses it through --error-on=any.
    w.run(&["run"]).expect(3);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}
