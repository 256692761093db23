//! The decision table and its invariants.
use super::*;
use crate::decision::resume::{Resume, Unfinished};
use crate::target::TargetVersion;

pub(super) const NOW: i64 = 1_800_000_000;

#[derive(Clone, Copy, Debug)]
pub(super) enum T {
    None,
    Same,
    Newer,
    Older,
}
#[derive(Clone, Copy, Debug)]
pub(super) enum S {
    Nop,
    Missing,
    Empty,
    Garbage,
    InWindow,
    /// Inside a window with 2 minutes left (less than the margin).
    Closing,
    Future,
    Past,
}

pub(super) fn observed(
    mode: Mode,
    t: T,
    critical: bool,
    s: S,
    svc_bad: bool,
    marker: bool,
) -> Observed {
    let target = |v: &str| Target::Version(TargetVersion::parse(v).unwrap());
    Observed {
        mode,
        now: NOW,
        target: match t {
            T::None => Target::NoTarget,
            T::Same => target("15.4.3"),
            T::Newer => target("16.0.0"),
            T::Older => target("15.4.2"),
        },
        critical,
        schedule: match s {
            S::Nop => Schedule::StandDown,
            S::Missing => Schedule::Missing,
            S::Empty => Schedule::Empty,
            S::Garbage => Schedule::parse("hello world\n"),
            S::InWindow => Schedule::parse(&format!("{} {}\n", NOW - 60, NOW + 3540)),
            S::Closing => Schedule::parse(&format!(
                "{} {}\n{} {}\n",
                NOW - 3480,
                NOW + 120,
                NOW + 86400,
                NOW + 90000
            )),
            S::Future => Schedule::parse(&format!("{} {}\n", NOW + 3600, NOW + 7200)),
            S::Past => Schedule::parse(&format!("{} {}\n", NOW - 7200, NOW - 3600)),
        },
        service_unhealthy: svc_bad.then(|| "teleport.service is failed".to_string()),
        marker_present: marker,
        installed: PkgVersion::parse("15.4.3").unwrap(),
        failed_target: None,
        v2: None,
        package: PackageState::default(),
        window_margin: 300,
        installer_nop: false,
        agent: AgentBefore::Running,
        restart_mode: crate::config::RestartMode::Reload,
        fleet_lock: false,
        slot_record: crate::fleetlock::SlotRecord::Clear,
        jitter: None,
        guard: None,
        unfinished: None,
    }
}

/// A target that was rolled back here waits, whatever the window or
/// health say, unless critical or forced.
#[test]
fn a_target_that_failed_here_is_not_retried_unless_critical_or_forced() {
    for s in [S::InWindow, S::Future, S::Past, S::Missing] {
        for svc in [false, true] {
            for marker in [false, true] {
                for (mode, crit, want_update) in [
                    (Mode::Run, false, false),
                    (Mode::Run, true, true),
                    (Mode::Force, false, true),
                ] {
                    let mut o = observed(mode, T::Newer, crit, s, svc, marker);
                    o.failed_target = Some("16.0.0".into());
                    let out = decide(&o);
                    assert_eq!(
                        out.decision.is_update(),
                        want_update,
                        "{:?}",
                        (s, svc, marker, mode, crit)
                    );
                    if !want_update {
                        assert_eq!(
                            out.decision,
                            Decision::Wait {
                                reason: WaitReason::FailedBefore
                            }
                        );
                        assert!(!out.marker_after);
                    }
                }
            }
        }
    }
}

/// The margin is at most a quarter of the window; 0 turns it off; a
/// window closing in exactly the margin waits.
#[test]
fn the_window_margin_scales_down_for_short_windows() {
    let w = |start: i64, stop: i64| Window { start, stop };
    assert_eq!(effective_margin(&w(0, 3600), 300), 300);
    assert_eq!(effective_margin(&w(0, 600), 300), 150);
    assert_eq!(effective_margin(&w(0, 3600), 0), 0);
    assert_eq!(effective_margin(&w(10, 10), 300), 0);
    let mut o = observed(Mode::Run, T::Newer, false, S::InWindow, false, false);
    for (start, stop, margin, want) in [
        // a 10-minute window, 3 minutes left: a quarter is 150 s
        (NOW - 420, NOW + 180, 300, "update:window"),
        (NOW - 450, NOW + 150, 300, "wait:window-closing"),
        (NOW - 3480, NOW + 120, 0, "update:window"),
        (NOW - 3300, NOW + 300, 300, "wait:window-closing"),
        (NOW - 3299, NOW + 301, 300, "update:window"),
    ] {
        o.schedule = Schedule::parse(&format!("{start} {stop}\n"));
        o.window_margin = margin;
        assert_eq!(word(&decide(&o)), want, "{start} {stop} margin {margin}");
    }
    o.schedule = Schedule::parse(&format!(
        "{} {}\n{} {}\n",
        NOW - 3480,
        NOW + 120,
        NOW + 3600,
        NOW + 7200
    ));
    let d = decide(&o).decision.to_string();
    assert!(
        d.contains("window-margin (300 s)") && d.contains("next window starts"),
        "{d}"
    );
}

fn word(o: &Outcome) -> String {
    match &o.decision {
        Decision::Update { reason } => format!(
            "update:{}",
            match reason {
                UpdateReason::Forced => "forced",
                UpdateReason::Critical => "critical",
                UpdateReason::InWindow { .. } => "window",
                UpdateReason::Unhealthy { .. } => "unhealthy",
                UpdateReason::RollBack { .. } => "roll-back",
                UpdateReason::Finish => "finish",
            }
        ),
        Decision::Wait { reason } => format!(
            "wait:{}",
            match reason {
                WaitReason::OutsideWindow { .. } => "outside",
                WaitReason::FirstUnhealthy { .. } => "first-unhealthy",
                WaitReason::FailedBefore => "failed-before",
                WaitReason::WindowClosing { .. } => "window-closing",
            }
        ),
        d => d.word().to_string(),
    }
}

/// One row: mode, target, critical, schedule, service unhealthy,
/// marker present => decision, marker after.
type Row = (Mode, T, bool, S, bool, bool, &'static str, bool);

/// The decision table's rows.
const ROWS: &[Row] = {
    use Mode::*;
    use S::*;
    &[
        // stand down beats everything, even critical and force
        (Run, T::Newer, true, Nop, true, true, "stand-down", false),
        (
            Force,
            T::Newer,
            false,
            Nop,
            false,
            false,
            "stand-down",
            false,
        ),
        // no target
        (
            Run,
            T::None,
            true,
            InWindow,
            false,
            false,
            "no-target",
            false,
        ),
        (
            Force,
            T::None,
            false,
            Missing,
            true,
            true,
            "no-target",
            false,
        ),
        // already there; consumes the marker
        (
            Run,
            T::Same,
            true,
            InWindow,
            false,
            false,
            "up-to-date",
            false,
        ),
        (
            Run,
            T::Same,
            false,
            Missing,
            true,
            true,
            "up-to-date",
            false,
        ),
        (
            Force,
            T::Same,
            false,
            Future,
            false,
            false,
            "up-to-date",
            false,
        ),
        // force ignores window and health
        (
            Force,
            T::Newer,
            false,
            Future,
            false,
            false,
            "update:forced",
            false,
        ),
        (
            Force,
            T::Older,
            false,
            Missing,
            false,
            false,
            "update:forced",
            false,
        ),
        // critical updates outside the window
        (
            Run,
            T::Newer,
            true,
            Future,
            false,
            false,
            "update:critical",
            false,
        ),
        (
            Run,
            T::Older,
            true,
            Missing,
            false,
            false,
            "update:critical",
            false,
        ),
        // strictly inside a window; a downgrade too (fleet rollback)
        (
            Run,
            T::Newer,
            false,
            InWindow,
            false,
            false,
            "update:window",
            false,
        ),
        (
            Run,
            T::Older,
            false,
            InWindow,
            false,
            true,
            "update:window",
            false,
        ),
        (
            Run,
            T::Newer,
            false,
            InWindow,
            true,
            false,
            "update:window",
            false,
        ),
        // the window closes in less than the margin: wait, unless
        // critical, forced or unhealthy (they ignore windows)
        (
            Run,
            T::Newer,
            false,
            Closing,
            false,
            false,
            "wait:window-closing",
            false,
        ),
        (
            Run,
            T::Older,
            false,
            Closing,
            false,
            true,
            "wait:window-closing",
            false,
        ),
        (
            Run,
            T::Newer,
            true,
            Closing,
            false,
            false,
            "update:critical",
            false,
        ),
        (
            Force,
            T::Newer,
            false,
            Closing,
            false,
            false,
            "update:forced",
            false,
        ),
        (
            Run,
            T::Newer,
            false,
            Closing,
            true,
            false,
            "wait:first-unhealthy",
            true,
        ),
        (
            Run,
            T::Newer,
            false,
            Closing,
            true,
            true,
            "update:unhealthy",
            false,
        ),
        (
            Run,
            T::Same,
            false,
            Closing,
            false,
            false,
            "up-to-date",
            false,
        ),
        // outside the window, healthy: wait
        (
            Run,
            T::Newer,
            false,
            Future,
            false,
            false,
            "wait:outside",
            false,
        ),
        (
            Run,
            T::Older,
            false,
            Future,
            false,
            true,
            "wait:outside",
            false,
        ),
        // unhealthy schedule: first run marks, second updates
        (
            Run,
            T::Newer,
            false,
            Missing,
            false,
            false,
            "wait:first-unhealthy",
            true,
        ),
        (
            Run,
            T::Newer,
            false,
            Missing,
            false,
            true,
            "update:unhealthy",
            false,
        ),
        (
            Run,
            T::Newer,
            false,
            Empty,
            false,
            false,
            "wait:first-unhealthy",
            true,
        ),
        (
            Run,
            T::Newer,
            false,
            Empty,
            false,
            true,
            "update:unhealthy",
            false,
        ),
        (
            Run,
            T::Newer,
            false,
            Garbage,
            false,
            false,
            "wait:first-unhealthy",
            true,
        ),
        (
            Run,
            T::Newer,
            false,
            Garbage,
            false,
            true,
            "update:unhealthy",
            false,
        ),
        (
            Run,
            T::Newer,
            false,
            Past,
            false,
            false,
            "wait:first-unhealthy",
            true,
        ),
        (
            Run,
            T::Newer,
            false,
            Past,
            false,
            true,
            "update:unhealthy",
            false,
        ),
        // unhealthy service with a good schedule: same debounce
        (
            Run,
            T::Newer,
            false,
            Future,
            true,
            false,
            "wait:first-unhealthy",
            true,
        ),
        (
            Run,
            T::Newer,
            false,
            Future,
            true,
            true,
            "update:unhealthy",
            false,
        ),
    ]
};

/// The decision table.
#[test]
fn table() {
    let rows = ROWS;
    for (i, &(mode, t, crit, s, svc, marker, want, marker_after)) in rows.iter().enumerate() {
        let out = decide(&observed(mode, t, crit, s, svc, marker));
        assert_eq!(
            word(&out),
            want,
            "row {i}: {:?}",
            (mode, t, crit, s, svc, marker)
        );
        assert_eq!(out.marker_after, marker_after, "row {i} marker");
    }
}

/// Invariants over every combination of inputs.
#[test]
fn invariants_over_all_combinations() {
    let ts = [T::None, T::Same, T::Newer, T::Older];
    let ss = [
        S::Nop,
        S::Missing,
        S::Empty,
        S::Garbage,
        S::InWindow,
        S::Future,
        S::Past,
    ];
    let mut n = 0;
    for mode in [Mode::Run, Mode::Force] {
        for t in ts {
            for crit in [false, true] {
                for s in ss {
                    for svc in [false, true] {
                        for marker in [false, true] {
                            n += 1;
                            let o = observed(mode, t, crit, s, svc, marker);
                            let out = decide(&o);
                            let upd = out.decision.is_update();
                            if matches!(s, S::Nop) {
                                assert_eq!(
                                    out.decision,
                                    Decision::StandDown {
                                        by: StandDownBy::Schedule
                                    }
                                );
                            }
                            if matches!(t, T::None | T::Same) {
                                assert!(!upd);
                            }
                            if upd && mode == Mode::Run && !crit {
                                assert!(
                                    matches!(s, S::InWindow) || marker,
                                    "a routine update outside a window needs two unhealthy runs"
                                );
                            }
                            if matches!(t, T::Newer | T::Older)
                                && !matches!(s, S::Nop)
                                && (crit || mode == Mode::Force || matches!(s, S::InWindow))
                            {
                                assert!(upd, "{:?}", (mode, t, crit, s, svc, marker));
                            }
                            if out.marker_after {
                                assert!(!marker && !upd);
                            }
                            let _ = out.decision.to_string();
                        }
                    }
                }
            }
        }
    }
    assert_eq!(n, 448);
}

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
        (false, TargetChanged, "abandon", "update:window", true),
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

/// Two overlapping windows, one closing in 100 s and one in an hour: the
/// run is inside one long window (their union), so it updates; it used to
/// wait for "no later window" and slip a day.
#[test]
fn overlapping_windows_are_merged() {
    let mut o = observed(Mode::Run, T::Newer, false, S::InWindow, false, false);
    o.schedule = Schedule::parse(&format!(
        "{} {}\n{} {}\n",
        NOW - 3000,
        NOW + 100,
        NOW - 60,
        NOW + 3600
    ));
    assert_eq!(word(&decide(&o)), "update:window");
}
