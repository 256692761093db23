//! The decision's FleetLock fields.
use super::tests::{observed, S, T};
use super::*;
use crate::decision::resume::Unfinished;

/// The FleetLock protocol's start-up release: due only with fleet-lock
/// set, no record of the slot, and no slot taken by this run or held by an
/// unfinished plan (a take is recursive; the plan's slot is the plan's).
#[test]
fn start_up_release_table() {
    use crate::fleetlock::SlotRecord::{self, *};
    #[derive(Clone, Copy, Debug)]
    enum Run {
        UpToDate,
        RoutineUpdate,
        Critical,
        UnfinishedWithSlot,
        Nop,
    }
    use Run::*;
    // (fleet-lock, record, run) -> release at start?
    let rows: &[(bool, SlotRecord, Run, bool)] = &[
        (true, Unknown, UpToDate, true),
        (true, Unknown, Critical, true),
        (true, Unknown, RoutineUpdate, false),
        (true, Unknown, UnfinishedWithSlot, false),
        (true, Unknown, Nop, false),
        (true, Clear, UpToDate, false),
        (true, Kept, UpToDate, false),
        (true, Clear, Critical, false),
        (false, Unknown, UpToDate, false),
        (false, Unknown, Critical, false),
    ];
    for &(fleet_lock, record, run, want) in rows {
        let mut o = match run {
            UpToDate | Nop => observed(Mode::Run, T::Same, false, S::InWindow, false, false),
            RoutineUpdate => observed(Mode::Run, T::Newer, false, S::InWindow, false, false),
            Critical => observed(Mode::Run, T::Newer, true, S::Future, false, false),
            UnfinishedWithSlot => {
                let mut o = observed(Mode::Run, T::Newer, false, S::InWindow, false, false);
                o.unfinished = Some(Unfinished::Update {
                    from: PkgVersion::parse("15.4.3").unwrap(),
                    to: "16.0.0".into(),
                    counted: false,
                    slot: true,
                    done: vec!["take-slot".into()],
                });
                o
            }
        };
        o.fleet_lock = fleet_lock;
        o.slot_record = record;
        o.installer_nop = matches!(run, Nop);
        let out = decide(&o);
        assert_eq!(
            out.release_at_start, want,
            "{fleet_lock} {record:?} {run:?}: {out:?}"
        );
    }
}

/// A rollback keeps the slot only when the host was healthy before the
/// update: an update made because the agent was unhealthy (or while its
/// service was seen failing) gives it back on a rollback.
#[test]
fn release_on_rollback_table() {
    // (window?, marker, service failing) -> (slot, release on rollback)
    let rows: &[(S, bool, bool, bool, bool)] = &[
        (S::InWindow, false, false, true, false),
        (S::InWindow, false, true, true, true),
        (S::Missing, true, false, true, true),
        (S::Future, true, true, true, true),
    ];
    for &(s, marker, svc, slot, release) in rows {
        let mut o = observed(Mode::Run, T::Newer, false, s, svc, marker);
        o.fleet_lock = true;
        let out = decide(&o);
        let u = out
            .update
            .unwrap_or_else(|| panic!("{s:?} {marker} {svc}: {:?}", out.decision));
        assert_eq!(
            (u.slot, u.release_slot_on_rollback),
            (slot, release),
            "{s:?} {marker} {svc}"
        );
    }
}

/// The failure-rate halt: a fresh slot take for a target whose record
/// exceeds the rule is halted; an update holding its slot already, one
/// that takes none (critical, forced, no fleet-lock), a record under the
/// minimum sample, and an unreachable record are not.
#[test]
fn failure_rate_halt_table() {
    use crate::fleetlock::report::{Counts, HaltRule, Seen};
    let rule = HaltRule {
        rate: 20,
        min_sample: 20,
    };
    let read = |ok, failed| {
        Some(Seen::Read {
            counts: Counts { ok, failed },
            rule,
        })
    };
    #[derive(Debug, Clone, Copy)]
    enum Run {
        Routine,
        Unhealthy,
        Critical,
        Forced,
        SlotHeld,
        NoFleetLock,
    }
    use Run::*;
    let rows: Vec<(Run, Option<Seen>, bool)> = vec![
        (Routine, read(19, 1), true),
        (Unhealthy, read(19, 1), true),
        (Routine, read(18, 1), false),
        (Routine, read(49, 1), false),
        (Routine, read(0, 0), false),
        (Routine, None, false),
        (Routine, Some(Seen::Unreachable("down".into())), false),
        (Critical, read(0, 50), false),
        (Forced, read(0, 50), false),
        (SlotHeld, read(0, 50), false),
        (NoFleetLock, read(0, 50), false),
    ];
    for (run, report, want) in rows {
        let mut o = match run {
            Routine | SlotHeld | NoFleetLock => {
                observed(Mode::Run, T::Newer, false, S::InWindow, false, false)
            }
            Unhealthy => observed(Mode::Run, T::Newer, false, S::Future, true, true),
            Critical => observed(Mode::Run, T::Newer, true, S::Future, false, false),
            Forced => observed(Mode::Force, T::Newer, false, S::Future, false, false),
        };
        if let SlotHeld = run {
            o.unfinished = Some(Unfinished::Update {
                from: PkgVersion::parse("15.4.3").unwrap(),
                to: "16.0.0".into(),
                counted: false,
                slot: true,
                done: vec!["take-slot".into()],
            });
        }
        o.fleet_lock = !matches!(run, NoFleetLock);
        o.fleet_report = report.clone();
        let out = decide(&o);
        assert_eq!(out.halted.is_some(), want, "{run:?} {report:?}: {out:?}");
        assert!(
            out.update.is_some(),
            "{run:?}: the decision is still the update"
        );
        assert_eq!(out.blocked(), want, "{run:?}");
        if want {
            assert!(
                out.halted.unwrap().to_string().contains("1 of 20"),
                "{:?}",
                out.halted
            );
        }
    }
}
