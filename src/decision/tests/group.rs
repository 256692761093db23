//! The cluster's update group (`/webapi/find?group=`): its
//! `agent_auto_update` replaces critical, the windows and the unhealthy
//! rule; force, stand-down, a target that failed here and the lower-target
//! confirmation stay as they are.
use super::*;

fn grouped(mode: Mode, t: T, update_now: bool, s: S, svc_bad: bool, marker: bool) -> Observed {
    Observed {
        group: Some("prod".into()),
        ..observed(mode, t, update_now, s, svc_bad, marker)
    }
}

#[test]
fn the_group_answer_decides() {
    use Mode::*;
    use S::*;
    let rows: &[(Mode, T, bool, S, bool, bool, &str)] = &[
        // the rollout reached the group: outside any local window
        (Run, T::Newer, true, Future, false, false, "update:group"),
        (Run, T::Newer, true, Missing, false, false, "update:group"),
        // not reached: a local window does not update, nor does an
        // unhealthy agent (the cluster orders the rollout)
        (Run, T::Newer, false, InWindow, false, false, "wait:group"),
        (Run, T::Newer, false, Future, true, true, "wait:group"),
        // unchanged: force, stand-down, up to date, lower unconfirmed
        (
            Force,
            T::Newer,
            false,
            Future,
            false,
            false,
            "update:forced",
        ),
        (Run, T::Newer, true, Nop, false, false, "stand-down"),
        (Run, T::Same, true, InWindow, false, false, "up-to-date"),
        (
            Run,
            T::Older,
            true,
            Future,
            false,
            false,
            "wait:lower-unconfirmed",
        ),
        (
            Run,
            T::OlderSeen,
            true,
            Future,
            false,
            false,
            "update:group",
        ),
    ];
    for &(mode, t, now, s, bad, marker, want) in rows {
        let o = grouped(mode, t, now, s, bad, marker);
        assert_eq!(word(&decide(&o)), want, "{mode:?} {t:?} now={now} {s:?}");
    }
    // Without a group, agent_auto_update is still critical.
    let o = observed(Mode::Run, T::Newer, true, S::Future, false, false);
    assert_eq!(word(&decide(&o)), "update:critical");
}

#[test]
fn a_target_that_failed_here_waits_even_when_the_group_is_due() {
    let o = Observed {
        failed_target: Some("16.0.0".into()),
        ..grouped(Mode::Run, T::Newer, true, S::Future, false, false)
    };
    assert_eq!(word(&decide(&o)), "wait:failed-before");
}

#[test]
fn a_group_update_is_routine_under_the_lock_and_jitter() {
    let o = Observed {
        fleet_lock: true,
        jitter: Some(60),
        ..grouped(Mode::Run, T::Newer, true, S::Future, false, false)
    };
    let out = decide(&o);
    let spec = out.update.expect("an update");
    assert!(spec.slot, "a group update takes a FleetLock slot");
    assert_eq!(spec.jitter, Some(60));
    let shown = out.decision.to_string();
    assert!(shown.contains("update group prod"), "{shown}");
    let o = grouped(Mode::Run, T::Newer, false, S::InWindow, false, false);
    let shown = decide(&o).decision.to_string();
    assert!(
        shown.contains("has not reached update group prod"),
        "{shown}"
    );
}
