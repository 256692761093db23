//! The Done-when facts of issue 24 on a reduced fleet, through the real
//! decision.
use super::*;

fn small(f: &dyn Fn(&mut Params)) -> Report {
    let mut p = base(2_000);
    p.days = 5;
    p.seed = 7;
    f(&mut p);
    sim::simulate(&p)
}

/// A good release reaches every host it can (100 % of the healthy ones),
/// and every chronically unhealthy host tries it without halting the
/// rollout; a 100 % bad release stops at the slot count; a 5 % bad one
/// stops at the rate (2 % once 20 completed) long before the slot count
/// would stop it.
#[test]
fn done_when_facts() {
    let good = small(&|p| {
        p.slots = Some(100);
        p.halt = Some(HALT);
    });
    assert_eq!(good.at_target, good.reachable, "{good:?}");
    assert_eq!(good.chronic_tried, good.chronic, "{good:?}");
    assert_eq!(good.halted_runs, 0);
    assert_eq!(good.slots_kept, 0, "no slot stuck: {good:?}");
    let bad = small(&|p| {
        p.fail_rate = 1.0;
        p.slots = Some(20);
    });
    assert_eq!(bad.broken, 20, "{bad:?}");
    assert_eq!(bad.slots_kept, 20);
    let partly = small(&|p| {
        p.fail_rate = 0.05;
        p.slots = Some(100);
    });
    let halted = small(&|p| {
        p.fail_rate = 0.05;
        p.slots = Some(100);
        p.halt = Some(HALT);
    });
    assert!(halted.halted_runs > 0, "{halted:?}");
    assert!(
        halted.broken * 2 < partly.broken,
        "halted {} vs {}",
        halted.broken,
        partly.broken
    );
    assert!(halted.at_target < halted.reachable / 2, "{halted:?}");
    // Same seed, same result.
    let again = small(&|p| {
        p.slots = Some(100);
        p.halt = Some(HALT);
    });
    assert_eq!((again.runs, again.converge), (good.runs, good.converge));
}

/// Without the conditions the bounds fail: cloned ids pass under one
/// slot, lost state frees kept slots.
#[test]
fn the_bounds_need_their_conditions() {
    let clones = small(&|p| {
        p.fail_rate = 1.0;
        p.slots = Some(20);
        p.clones = 0.2;
    });
    assert!(clones.broken > 20, "{clones:?}");
    let lost = small(&|p| {
        p.fail_rate = 1.0;
        p.slots = Some(20);
        p.state_loss = Some((3 * DAY, 0.5));
    });
    assert!(lost.broken > 20, "{lost:?}");
}
