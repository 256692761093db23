//! The decision of one run: a pure function of what was observed.

use std::fmt;

use backends::PkgVersion;
use serde::Serialize;

use crate::schedule::{rfc3339, Schedule, Window};
use crate::target::Target;

/// How the run was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The timer's run: policy decides.
    Run,
    /// An operator's `force`: window and health are ignored (stand-down,
    /// validation and trust are not).
    Force,
}

/// Everything the decision depends on.
#[derive(Debug, Clone)]
pub struct Observed {
    pub mode: Mode,
    /// Unix seconds, from the injected clock.
    pub now: i64,
    pub target: Target,
    pub critical: bool,
    pub schedule: Schedule,
    /// Why the agent's service looks unhealthy, when systemd says so.
    pub service_unhealthy: Option<String>,
    /// Whether the previous run left the `mark-unhealthy` marker.
    pub marker_present: bool,
    /// The installed agent version.
    pub installed: PkgVersion,
    /// The target that failed its health check on this host and was
    /// rolled back (recorded in the state file).
    pub failed_target: Option<String>,
    /// Managed Updates v2's configuration file, when v2 manages the agent.
    pub v2: Option<String>,
    /// The agent package as the package manager has it.
    pub package: PackageState,
    /// Seconds: a routine update is not started when less than this is
    /// left of the current window (at most a quarter of the window), so
    /// that its restart does not land after the window closed.
    pub window_margin: i64,
}

/// The margin that applies to `window`: `margin`, at most a quarter of
/// the window (a short window still gets its updates).
pub fn effective_margin(window: &Window, margin: i64) -> i64 {
    margin.clamp(0, ((window.stop - window.start) / 4).max(0))
}

/// The agent package's state besides its version: what a run converges
/// whether or not an update is due.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageState {
    /// Whether it is held (`None`: could not be read).
    pub held: Option<bool>,
    /// An interrupted package transaction (dpkg half-configured or its
    /// journal unfinished; two versions of it in the rpm database).
    pub interrupted: Option<String>,
    /// Its executables do not verify: what is wrong.
    pub damaged: Option<String>,
}

/// The repairs a run makes where no update is due.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Repairs {
    /// Finish the interrupted transaction (what was found).
    pub interrupted: Option<String>,
    /// Hold the package.
    pub unheld: bool,
    /// Reinstall the installed version: what is damaged.
    pub damaged: Option<String>,
}

impl Repairs {
    pub fn is_empty(&self) -> bool {
        self.interrupted.is_none() && !self.unheld && self.damaged.is_none()
    }

    /// One line per repair, for the log and the record.
    pub fn describe(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(w) = &self.interrupted {
            v.push(format!("finish the interrupted package transaction ({w})"));
        }
        if let Some(d) = &self.damaged {
            v.push(format!("reinstall the installed version: {d}"));
        }
        if self.unheld {
            v.push("hold the agent package (it is not held)".into());
        }
        v
    }
}

/// Who told the run to stand down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", rename_all = "kebab-case")]
pub enum StandDownBy {
    /// The schedule file says `nop`.
    Schedule,
    /// Managed Updates v2 (`teleport-update`) manages the agent: its
    /// configuration file.
    V2 { file: String },
}

/// The stand-down, from what is known before anything else is looked at
/// (the schedule and v2's configuration).
pub fn stand_down(schedule: &Schedule, v2: Option<&str>) -> Option<Decision> {
    if *schedule == Schedule::StandDown {
        return Some(Decision::StandDown {
            by: StandDownBy::Schedule,
        });
    }
    v2.map(|f| Decision::StandDown {
        by: StandDownBy::V2 { file: f.into() },
    })
}

/// Why an update happens now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum UpdateReason {
    Forced,
    Critical,
    InWindow {
        window: Window,
    },
    /// Unhealthy on this run and on the previous one.
    Unhealthy {
        why: String,
    },
}

/// Why the run waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum WaitReason {
    OutsideWindow {
        next: Option<Window>,
    },
    /// First run to see the agent unhealthy: mark and wait one more run,
    /// in case the agent has just restarted.
    FirstUnhealthy {
        why: String,
    },
    /// The target failed its health check here and was rolled back: not
    /// retried until the target changes or the update is critical.
    FailedBefore,
    /// Inside a window, but too little of it is left for the update's
    /// restart to land inside it (`window-margin`).
    WindowClosing {
        window: Window,
        margin: i64,
        next: Option<Window>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Decision {
    /// The schedule says `nop`, or v2 manages the agent: another updater
    /// manages this host.
    StandDown {
        by: StandDownBy,
    },
    /// The version server advertises no target.
    NoTarget,
    /// The installed version is the target.
    UpToDate,
    Update {
        reason: UpdateReason,
    },
    Wait {
        reason: WaitReason,
    },
}

/// The decision and the marker the run must leave behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Decision,
    /// Whether `mark-unhealthy` must exist after this run (it is consumed
    /// on every run and written only by a first unhealthy sighting).
    pub marker_after: bool,
    /// What the run repairs besides (only when no update is due: an update
    /// installs, finishes and holds anyway).
    pub repairs: Repairs,
}

/// Decide. Order: stand down on `nop`; nothing on `none`; nothing when the
/// installed version is the target; update when forced, critical, strictly
/// inside a window, or unhealthy on two consecutive runs; otherwise wait.
/// A target below the installed version is an update too (fleet rollback).
///
/// Repairs: where no update is due (and the run does not stand down), an
/// interrupted transaction is finished and an unheld package held, outside
/// any window (they change no version); damaged executables are reinstalled
/// when the installed version is the target.
pub fn decide(o: &Observed) -> Outcome {
    let mut out = decide_version(o);
    let p = &o.package;
    out.repairs = match &out.decision {
        Decision::StandDown { .. } | Decision::Update { .. } => Repairs::default(),
        d => Repairs {
            interrupted: p.interrupted.clone(),
            unheld: p.held == Some(false),
            damaged: if *d == Decision::UpToDate {
                p.damaged.clone()
            } else {
                None
            },
        },
    };
    out
}

fn decide_version(o: &Observed) -> Outcome {
    let done = |decision| Outcome {
        decision,
        marker_after: false,
        repairs: Repairs::default(),
    };
    if let Some(d) = stand_down(&o.schedule, o.v2.as_deref()) {
        return done(d);
    }
    let target = match &o.target {
        Target::NoTarget => return done(Decision::NoTarget),
        Target::Version(v) => v,
    };
    if o.installed.same_upstream(&target.package_version()) {
        return done(Decision::UpToDate);
    }
    let update = |reason| done(Decision::Update { reason });
    if o.mode == Mode::Force {
        return update(UpdateReason::Forced);
    }
    if o.critical {
        return update(UpdateReason::Critical);
    }
    let failed_before = o
        .failed_target
        .as_deref()
        .is_some_and(|f| f == target.to_string());
    if failed_before {
        return done(Decision::Wait {
            reason: WaitReason::FailedBefore,
        });
    }
    let mut closing = None;
    if let Some(window) = o.schedule.current(o.now) {
        let margin = effective_margin(&window, o.window_margin);
        if window.stop - o.now > margin {
            return update(UpdateReason::InWindow { window });
        }
        closing = Some((window, margin));
    }
    let unhealthy = o
        .schedule
        .unhealthy_reason(o.now)
        .or_else(|| o.service_unhealthy.clone());
    match unhealthy {
        Some(why) if o.marker_present => update(UpdateReason::Unhealthy { why }),
        Some(why) => Outcome {
            decision: Decision::Wait {
                reason: WaitReason::FirstUnhealthy { why },
            },
            marker_after: true,
            repairs: Repairs::default(),
        },
        None => done(Decision::Wait {
            reason: match closing {
                Some((window, margin)) => WaitReason::WindowClosing {
                    window,
                    margin,
                    next: o.schedule.next(window.stop),
                },
                None => WaitReason::OutsideWindow {
                    next: o.schedule.next(o.now),
                },
            },
        }),
    }
}

impl Decision {
    pub fn is_update(&self) -> bool {
        matches!(self, Decision::Update { .. })
    }

    /// A short machine word: stand-down, no-target, up-to-date, update, wait.
    pub fn word(&self) -> &'static str {
        match self {
            Decision::StandDown { .. } => "stand-down",
            Decision::NoTarget => "no-target",
            Decision::UpToDate => "up-to-date",
            Decision::Update { .. } => "update",
            Decision::Wait { .. } => "wait",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::StandDown { by: StandDownBy::Schedule } => f.write_str("stand down: the schedule says nop (Managed Updates v2 manages this host)"),
            Decision::StandDown { by: StandDownBy::V2 { file } } => write!(f, "stand down: Managed Updates v2 (teleport-update) manages this host ({file} is present and enabled)"),
            Decision::NoTarget => f.write_str("nothing to do: the version server advertises no target (none)"),
            Decision::UpToDate => f.write_str("nothing to do: the installed version is the target"),
            Decision::Update { reason } => match reason {
                UpdateReason::Forced => f.write_str("update: forced by the operator"),
                UpdateReason::Critical => f.write_str("update: the version server marks it critical"),
                UpdateReason::InWindow { window } => write!(
                    f,
                    "update: inside the maintenance window {} .. {}",
                    rfc3339(window.start),
                    rfc3339(window.stop)
                ),
                UpdateReason::Unhealthy { why } => {
                    write!(f, "update: the agent looks unhealthy on two consecutive runs ({why})")
                }
            },
            Decision::Wait { reason } => match reason {
                WaitReason::OutsideWindow { next: Some(w) } => {
                    write!(f, "wait: outside the maintenance window; next window starts {}", rfc3339(w.start))
                }
                WaitReason::OutsideWindow { next: None } => {
                    f.write_str("wait: outside the maintenance window; no later window is scheduled")
                }
                WaitReason::FirstUnhealthy { why } => write!(
                    f,
                    "wait: the agent looks unhealthy ({why}); marked, and the next run updates if it still is"
                ),
                WaitReason::WindowClosing { window, margin, next } => write!(
                    f,
                    "wait: the maintenance window closes at {}, in less than window-margin ({margin} s): an update started now could restart the agent after it; {}",
                    rfc3339(window.stop),
                    match next {
                        Some(w) => format!("next window starts {}", rfc3339(w.start)),
                        None => "no later window is scheduled".into(),
                    }
                ),
                WaitReason::FailedBefore => f.write_str(
                    "wait: this target failed its health check on this host and was rolled back; it is retried only when the target changes, the update is critical, or with force"
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::TargetVersion;

    const NOW: i64 = 1_800_000_000;

    #[derive(Clone, Copy, Debug)]
    enum T {
        None,
        Same,
        Newer,
        Older,
    }
    #[derive(Clone, Copy, Debug)]
    enum S {
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

    fn observed(mode: Mode, t: T, critical: bool, s: S, svc_bad: bool, marker: bool) -> Observed {
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

    /// The decision table.
    #[test]
    fn table() {
        use Mode::*;
        use S::*;
        let rows: &[Row] = &[
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
        ];
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
}
