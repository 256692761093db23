//! An unrelated package left half-configured by an earlier failed upgrade
//! (its postinst fails, so `dpkg --configure -a` cannot fix it, and runs
//! its script again each time): the updater names it in a
//! clear refusal, never configures or removes it, and leaves the agent
//! installed and held.

use testkit::deb::{build_deb, DebSpec};
use testkit::world::apt::AptWorld;

const OTHER: &str = "other-tool";

/// A root at 15.4.2 (target 15.4.3) with `other-tool` half-configured.
fn world_with_a_broken_neighbour() -> AptWorld {
    let w = AptWorld::new("15.4.2", "15.4.3");
    testkit::aptroot::give_root_programs(w.root.path(), &[("/bin/dash", "bin/sh")]);
    let mut spec = DebSpec::agent(OTHER, "1.0");
    spec.files = vec![("/usr/share/doc/other-tool/x".into(), b"x\n".to_vec(), 0o644)];
    spec.postinst = Some("#!/bin/sh\necho configuring >> /postinst-runs\nexit 1\n".into());
    let deb = build_deb(&spec, &w.dir.path().join("other"));
    let out = w.root.dpkg(&["-i", deb.to_str().unwrap()]);
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(w.root.status_abbrev(OTHER).as_deref(), Some("iF "));
    w
}

fn postinst_runs(w: &AptWorld) -> usize {
    std::fs::read_to_string(w.root.file("/postinst-runs"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[test]
fn an_unrelated_broken_package_is_named_and_left_alone() {
    let w = world_with_a_broken_neighbour();
    assert_eq!(postinst_runs(&w), 1);
    // held, as every earlier run of the updater left it
    w.root.set_hold(testkit::world::PKG, true);
    w.schedule_in_window();
    let r = w.run(&["run"]);
    let err = r.stderr();
    assert_ne!(r.code(), 0, "{err}");
    assert!(err.contains(OTHER), "the broken package is named: {err}");
    assert_eq!(
        postinst_runs(&w),
        1,
        "its failing script was not run: {err}"
    );
    assert_eq!(w.root.status_abbrev(OTHER).as_deref(), Some("iF "), "{err}");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"), "{err}");
    assert!(w.held(), "{err}");
}

/// What the updater ran before, the plain `dpkg --configure -a`, runs the
/// broken package's failing script again (and fails).
#[test]
fn plain_dpkg_configure_runs_the_broken_packages_script_again() {
    let w = world_with_a_broken_neighbour();
    let out = w.root.dpkg(&["--configure", "-a"]);
    assert!(!out.status.success());
    assert_eq!(postinst_runs(&w), 2, "dpkg --configure -a runs it again");
}
