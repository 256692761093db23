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
    /// 15.4.2, below the installed version, seen by no earlier check.
    Older,
    /// 15.4.2, first seen by a check 10 minutes ago (confirmed).
    OlderSeen,
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
            T::Older | T::OlderSeen => target("15.4.2"),
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
        failed_critical: false,
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
        lower_seen: matches!(t, T::OlderSeen).then(|| LowerSeen {
            version: "15.4.2".into(),
            since: NOW - 600,
        }),
        confirm_interval: 300,
        group: None,
        fleet_report: None,
    }
}

/// A target that was rolled back here waits, whatever the window or
/// health say, unless critical (once: not when the attempt that failed was
/// critical itself) or forced.
#[test]
fn a_target_that_failed_here_is_not_retried_unless_critical_or_forced() {
    for s in [S::InWindow, S::Future, S::Past, S::Missing] {
        for svc in [false, true] {
            for marker in [false, true] {
                for (mode, crit, failed_critical, want_update) in [
                    (Mode::Run, false, false, false),
                    (Mode::Run, true, false, true),
                    (Mode::Run, true, true, false),
                    (Mode::Run, false, true, false),
                    (Mode::Force, false, false, true),
                    (Mode::Force, true, true, true),
                ] {
                    let mut o = observed(mode, T::Newer, crit, s, svc, marker);
                    o.failed_target = Some("16.0.0".into());
                    o.failed_critical = failed_critical;
                    let out = decide(&o);
                    assert_eq!(
                        out.decision.is_update(),
                        want_update,
                        "{:?}",
                        (s, svc, marker, mode, crit, failed_critical)
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
                UpdateReason::ClusterGroup { .. } => "group",
                UpdateReason::Unhealthy { .. } => "unhealthy",
                UpdateReason::RollBack { .. } => "roll-back",
                UpdateReason::Finish => "finish",
            }
        ),
        Decision::Wait { reason } => format!(
            "wait:{}",
            match reason {
                WaitReason::OutsideWindow { .. } => "outside",
                WaitReason::ClusterGroup { .. } => "group",
                WaitReason::FirstUnhealthy { .. } => "first-unhealthy",
                WaitReason::FailedBefore => "failed-before",
                WaitReason::WindowClosing { .. } => "window-closing",
                WaitReason::LowerUnconfirmed { .. } => "lower-unconfirmed",
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
        // strictly inside a window; a downgrade too (fleet rollback), once
        // confirmed: seen on two checks unhealthy-interval apart
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
            T::OlderSeen,
            false,
            InWindow,
            false,
            true,
            "update:window",
            false,
        ),
        // no flapping: a lower target seen first waits for a second check
        (
            Run,
            T::Older,
            false,
            InWindow,
            false,
            false,
            "wait:lower-unconfirmed",
            false,
        ),
        // unhealthy twice, but the lower target is new: wait for its
        // second check, the marker kept for it
        (
            Run,
            T::Older,
            false,
            Missing,
            true,
            true,
            "wait:lower-unconfirmed",
            true,
        ),
        // a lower target seen first outside a window: recorded, waits
        (
            Run,
            T::Older,
            false,
            Future,
            false,
            false,
            "wait:outside",
            false,
        ),
        (
            Run,
            T::OlderSeen,
            false,
            Future,
            true,
            true,
            "update:unhealthy",
            false,
        ),
        (
            Force,
            T::Older,
            false,
            Future,
            false,
            false,
            "update:forced",
            false,
        ),
        (
            Run,
            T::Older,
            true,
            Future,
            false,
            false,
            "update:critical",
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
            T::OlderSeen,
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
            T::OlderSeen,
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
    let ts = [T::None, T::Same, T::Newer, T::Older, T::OlderSeen];
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
                            if matches!(t, T::Older) && mode == Mode::Run && !crit {
                                assert!(!upd, "a lower target seen once is not installed");
                            }
                            if matches!(t, T::Older | T::OlderSeen) {
                                assert!(out.lower_after.is_some(), "a lower target is recorded");
                            } else {
                                assert!(out.lower_after.is_none());
                            }
                            if matches!(t, T::Newer | T::OlderSeen)
                                && !matches!(s, S::Nop)
                                && (crit || mode == Mode::Force || matches!(s, S::InWindow))
                            {
                                assert!(upd, "{:?}", (mode, t, crit, s, svc, marker));
                            }
                            if out.marker_after {
                                assert!(!upd);
                                assert!(!marker || word(&out) == "wait:lower-unconfirmed");
                            }
                            let _ = out.decision.to_string();
                        }
                    }
                }
            }
        }
    }
    assert_eq!(n, 560);
}

/// No flapping: proxies that disagree (15.4.3 and 15.4.2 in turn, checks
/// 30 minutes apart, inside a window) never move the agent, and every
/// contradicted lower answer is a disagreement; a steady lower target (a
/// fleet rollback) is installed once, on the second check that sees it.
#[test]
fn answers_that_disagree_do_not_flip_the_agent() {
    let mut seen = None;
    let mut now = NOW;
    let mut disagreements = 0;
    let check = |t: T, seen: &mut Option<LowerSeen>, now: i64| {
        let mut o = observed(Mode::Run, t, false, S::InWindow, false, false);
        o.now = now;
        o.schedule = Schedule::parse(&format!("{} {}\n", now - 60, now + 3540));
        o.lower_seen = seen.clone();
        let out = decide(&o);
        *seen = out.lower_after.clone();
        out
    };
    for i in 0..8 {
        let t = if i % 2 == 0 { T::Older } else { T::Same };
        let out = check(t, &mut seen, now);
        assert!(!out.decision.is_update(), "check {i}: {}", out.decision);
        if out.disagreement.is_some() {
            disagreements += 1;
        }
        now += 1800;
    }
    assert_eq!(disagreements, 4, "every 15.4.3 after a 15.4.2 disagrees");
    // A steady fleet rollback: waits once, then is installed.
    let first = check(T::Older, &mut seen, now);
    assert_eq!(word(&first), "wait:lower-unconfirmed");
    assert!(first
        .decision
        .to_string()
        .contains("below the installed version"));
    let too_soon = check(T::Older, &mut seen, now + 299);
    assert_eq!(word(&too_soon), "wait:lower-unconfirmed");
    let second = check(T::Older, &mut seen, now + 300);
    assert_eq!(word(&second), "update:window");
    assert_eq!(second.update.unwrap().to, "15.4.2");
    assert!(second.disagreement.is_none());
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

mod group;
mod resume;
