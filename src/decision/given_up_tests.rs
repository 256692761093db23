//! A failed maintainer script of a target given up on is not run again.
use super::tests::{observed, S, T};
use super::*;

/// Half-configured at a target recorded as failed (its rollback failed):
/// the run holds, and does not finish the transaction (that would run the
/// failed script again); at any other version it is finished as before.
#[test]
fn an_unfinished_failed_target_is_held_not_configured_again() {
    let mut o = observed(Mode::Run, T::Same, false, S::Future, false, false);
    o.package = PackageState {
        held: Some(false),
        interrupted: Some("teleport-ent is half-configured in dpkg's status (iF)".into()),
        damaged: None,
    };
    let before = decide(&o);
    assert!(before.repairs.interrupted.is_some(), "{:?}", before.repairs);
    o.failed_target = Some("15.4.3".into());
    let given_up = decide(&o);
    assert_eq!(given_up.repairs.interrupted, None);
    assert!(given_up.repairs.unheld, "still held");
    o.failed_target = Some("16.0.0".into());
    assert!(decide(&o).repairs.interrupted.is_some());
}
