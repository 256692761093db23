//! The decision of a run that finds a plan an earlier run left unfinished:
//! the resume table and the gates over every input combination.
use super::*;

/// An unfinished update 15.4.3 -> 16.0.0 (the test grid's installed
/// version and its newer target).
fn unfinished_update() -> Unfinished {
    Unfinished::Update {
        from: PkgVersion::parse("15.4.3").unwrap(),
        to: "16.0.0".into(),
        counted: false,
        slot: false,
        done: vec!["finish-transaction".into(), "refresh".into()],
    }
}

/// The resume table: what a run does about an earlier run's unfinished
/// plan, for each change made since (the host converges either way; an
/// install happens only when a fresh run would make it now).
#[test]
fn resume_table() {
    #[derive(Clone, Copy, Debug)]
    enum Change {
        Nothing,
        WindowClosed,
        TargetWithdrawn,
        TargetChanged,
        /// Changed to a lower target a check saw 10 minutes ago.
        TargetChangedSeen,
        InstallerNop,
        ScheduleNop,
        GuardRefuses,
    }
    use Change::*;
    // (installed already?, change) -> (resume, decision, the update runs?)
    let rows: &[(bool, Change, &str, &str, bool)] = &[
        (false, Nothing, "continue", "update:window", true),
        (false, WindowClosed, "abandon", "wait:outside", false),
        (false, TargetWithdrawn, "abandon", "up-to-date", false),
        // changed to a lower target: a fresh run installs it only once a
        // second check confirms it (no flapping)
        (
            false,
            TargetChanged,
            "abandon",
            "wait:lower-unconfirmed",
            false,
        ),
        (false, TargetChangedSeen, "abandon", "update:window", true),
        (false, InstallerNop, "abandon", "update:window", false),
        (false, ScheduleNop, "abandon", "stand-down", false),
        (false, GuardRefuses, "continue", "update:window", false),
        (true, Nothing, "finish", "update:finish", true),
        (true, WindowClosed, "finish", "update:finish", true),
        (true, TargetWithdrawn, "finish", "update:finish", true),
        (true, InstallerNop, "abandon", "up-to-date", false),
        (true, ScheduleNop, "abandon", "stand-down", false),
        (true, GuardRefuses, "finish", "update:finish", true),
    ];
    for &(installed, change, resume, decision, runs) in rows {
        let mut o = observed(Mode::Run, T::Newer, false, S::InWindow, false, false);
        o.unfinished = Some(unfinished_update());
        if installed {
            o.installed = PkgVersion::parse("16.0.0").unwrap();
        }
        match change {
            Nothing => {}
            WindowClosed => {
                o.schedule = Schedule::parse(&format!("{} {}\n", NOW + 3600, NOW + 7200))
            }
            TargetWithdrawn => o.target = Target::Version(TargetVersion::parse("15.4.3").unwrap()),
            TargetChanged => o.target = Target::Version(TargetVersion::parse("15.4.2").unwrap()),
            TargetChangedSeen => {
                o.target = Target::Version(TargetVersion::parse("15.4.2").unwrap());
                o.lower_seen = Some(LowerSeen {
                    version: "15.4.2".into(),
                    since: NOW - 600,
                });
            }
            InstallerNop => o.installer_nop = true,
            ScheduleNop => o.schedule = Schedule::StandDown,
            GuardRefuses => o.guard = Some("target above the cluster".into()),
        }
        if installed && matches!(change, InstallerNop) {
            // installed 16.0.0 == target: nothing to decide but the hold.
        }
        let out = decide(&o);
        let row = format!("{installed} {change:?}");
        assert_eq!(out.resume.word(), resume, "{row}: {}", out.resume);
        assert_eq!(word(&out), decision, "{row}");
        let update_runs = out.update.is_some() && out.refused.is_none() && !out.hands_off;
        assert_eq!(update_runs, runs, "{row}: {out:?}");
    }
    // A rollback that was interrupted is made again, unless the operator
    // stands the updater down.
    let mut o = observed(Mode::Run, T::Newer, false, S::Future, false, false);
    o.installed = PkgVersion::parse("16.0.0").unwrap();
    o.unfinished = Some(Unfinished::RollingBack {
        from: PkgVersion::parse("15.4.3").unwrap(),
        to: "16.0.0".into(),
        why: "readyz 503".into(),
    });
    let out = decide(&o);
    assert_eq!(out.resume, Resume::RollBack);
    let u = out.update.clone().unwrap();
    assert_eq!((u.from.as_str(), u.to.as_str()), ("16.0.0", "15.4.3"));
    assert_eq!(u.rollback_of.as_deref(), Some("16.0.0"));
    o.installer_nop = true;
    assert_eq!(decide(&o).resume.word(), "abandon");
    // Anything else is converged and closed.
    let mut o = observed(Mode::Run, T::Same, false, S::InWindow, false, false);
    o.unfinished = Some(Unfinished::Other {
        what: "a repair".into(),
    });
    o.package.held = Some(false);
    let out = decide(&o);
    assert_eq!(out.resume.word(), "abandon");
    assert!(out.repairs.unheld, "the hold is converged");
}

/// Over every input combination, with and without an unfinished plan, a
/// passed trust audit and `nop`: no plan that installs is built without a
/// passed trust audit, a non-`nop` installer and schedule, and a decision
/// to update (or to reinstall the damaged target).
#[test]
fn no_install_without_the_gates() {
    use crate::update::plan::{build, Facts};
    let trusted = crate::run::Trusted::for_tests();
    let facts = Facts {
        restart: true,
        verify: true,
        channel_to: None,
        swaps_holds: false,
    };
    let unfinished = [
        None,
        Some(unfinished_update()),
        Some(Unfinished::RollingBack {
            from: PkgVersion::parse("15.4.2").unwrap(),
            to: "15.4.3".into(),
            why: "x".into(),
        }),
        Some(Unfinished::Other {
            what: "a repair".into(),
        }),
    ];
    let (mut n, mut installs) = (0, 0);
    for mode in [Mode::Run, Mode::Force] {
        for t in [T::None, T::Same, T::Newer, T::Older] {
            for s in [S::Nop, S::Missing, S::InWindow, S::Future] {
                for svc in [false, true] {
                    for u in &unfinished {
                        for nop in [false, true] {
                            for guard in [None, Some("refused".to_string())] {
                                for damaged in [false, true] {
                                    let mut o = observed(mode, t, false, s, svc, true);
                                    o.unfinished = u.clone();
                                    o.installer_nop = nop;
                                    o.guard = guard.clone();
                                    o.package.damaged = damaged.then(|| "/usr/bin/teleport".into());
                                    o.package.held = Some(false);
                                    let out = decide(&o);
                                    for trust in [None, Some(&trusted)] {
                                        n += 1;
                                        let Some(p) = build(&out, "15.4.3", facts, None, trust)
                                        else {
                                            continue;
                                        };
                                        if !p.installs() {
                                            continue;
                                        }
                                        installs += 1;
                                        let why = format!(
                                            "{:?}",
                                            (mode, t, s, svc, u, nop, &guard, damaged)
                                        );
                                        assert!(trust.is_some(), "{why}: installs without trust");
                                        assert!(!nop, "{why}: installs under nop");
                                        assert!(
                                            !matches!(s, S::Nop),
                                            "{why}: installs under a nop schedule"
                                        );
                                        assert!(
                                            out.decision.is_update()
                                                || (out.decision == Decision::UpToDate && damaged),
                                            "{why}: installs without a decision to"
                                        );
                                        if out.decision.is_update() {
                                            assert!(
                                                out.refused.is_none(),
                                                "{why}: installs what the cluster guard refused"
                                            );
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert_eq!(n, 2 * 4 * 4 * 2 * 4 * 2 * 2 * 2 * 2);
    assert!(
        installs > 100,
        "the property is exercised ({installs} plans install)"
    );
}
