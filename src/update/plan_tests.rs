//! Plan order and undo order, as tables and invariants.
use super::*;

fn t() -> Trusted {
    Trusted::for_tests()
}

fn names(p: &Plan) -> Vec<&'static str> {
    p.steps.iter().map(Step::name).collect()
}

/// A plan order written as one line of step names.
fn order(names: &'static str) -> Vec<&'static str> {
    names.split(' ').collect()
}

fn undo_names(v: &[Undo]) -> Vec<String> {
    v.iter()
        .map(|u| match u {
            Undo::RestoreChannel => "restore-channel".to_string(),
            Undo::InstallPrevious { version } => format!("install-previous {version}"),
            Undo::RestartAgent => "restart-agent".into(),
            Undo::VerifyRollback => "verify-rollback".into(),
            Undo::ReleaseSlot { .. } => "release-slot".into(),
        })
        .collect()
}

const ALL: Facts = Facts {
    restart: true,
    verify: true,
    channel_to: Some(16),
    swaps_holds: false,
};
const PLAIN: Facts = Facts {
    restart: false,
    verify: false,
    channel_to: None,
    swaps_holds: false,
};

/// Plan order and undo order for each kind of decision: (what, plan,
/// [(failing step, undos)]).
#[test]
fn plan_and_undo_order_table() {
    type Row = (
        &'static str,
        Plan,
        Vec<&'static str>,
        Vec<(&'static str, Vec<&'static str>)>,
    );
    let rows: Vec<Row> = vec![
        (
            "update, agent running, health checked, channel movable",
            Plan::update("15.4.2", "16.0.0", ALL, &t()),
            order(
                "finish-transaction refresh check-space keep-previous install hold check-install restart verify drop-previous keep-channel",
            ),
            vec![
                ("finish-transaction", vec![]),
                ("refresh", vec![]),
                ("check-space", vec![]),
                ("install", vec!["restore-channel"]),
                ("hold", vec!["restore-channel"]),
                (
                    "check-install",
                    vec![
                        "restore-channel",
                        "install-previous 15.4.2",
                        "restart-agent",
                        "verify-rollback",
                    ],
                ),
                (
                    "restart",
                    vec![
                        "restore-channel",
                        "install-previous 15.4.2",
                        "restart-agent",
                        "verify-rollback",
                    ],
                ),
                (
                    "verify",
                    vec![
                        "restore-channel",
                        "install-previous 15.4.2",
                        "restart-agent",
                        "verify-rollback",
                    ],
                ),
            ],
        ),
        (
            "routine update reloaded (restart-mode reload): rolled back with a hard restart",
            Plan::update(
                "15.4.2",
                "15.4.3",
                Facts {
                    channel_to: None,
                    ..ALL
                },
                &t(),
            )
            .reload_instead_of_restart(),
            order("finish-transaction refresh check-space keep-previous install hold check-install reload verify drop-previous"),
            vec![
                ("hold", vec![]),
                (
                    "reload",
                    vec![
                        "install-previous 15.4.2",
                        "restart-agent",
                        "verify-rollback",
                    ],
                ),
                (
                    "verify",
                    vec![
                        "install-previous 15.4.2",
                        "restart-agent",
                        "verify-rollback",
                    ],
                ),
            ],
        ),
        (
            "update, no systemd, no health signal, channel fixed",
            Plan::update("15.4.2", "15.4.3", PLAIN, &t()),
            order("finish-transaction refresh check-space keep-previous install hold check-install drop-previous"),
            vec![
                ("install", vec![]),
                ("hold", vec![]),
                ("check-install", vec!["install-previous 15.4.2"]),
            ],
        ),
        (
            "update without systemd, readiness checked",
            Plan::update(
                "15.4.2",
                "15.4.3",
                Facts {
                    verify: true,
                    ..PLAIN
                },
                &t(),
            ),
            order("finish-transaction refresh check-space keep-previous install hold check-install verify drop-previous"),
            vec![("verify", vec!["install-previous 15.4.2", "verify-rollback"])],
        ),
    ];
    for (what, plan, order, undos) in rows {
        assert_eq!(names(&plan), order, "{what}: plan order");
        for (failing, want) in undos {
            let i = plan.steps.iter().position(|s| s.name() == failing).unwrap();
            assert_eq!(
                undo_names(&plan.undo_for_failure(i)),
                want,
                "{what}: undo when {failing} fails"
            );
        }
    }
}

#[test]
fn repair_plans() {
    let r = |interrupted: bool, unheld: bool, damaged: bool| Repairs {
        interrupted: interrupted.then(|| "iF".to_string()),
        unheld,
        damaged: damaged.then(|| "/usr/bin/teleport".to_string()),
    };
    assert_eq!(
        Plan::repair("15.4.3", &r(false, false, false), ALL, Some(&t())),
        None
    );
    for (rep, facts, want) in [
        (r(false, true, false), ALL, vec!["hold"]),
        (
            r(true, false, false),
            ALL,
            vec!["finish-transaction", "hold"],
        ),
        (
            r(false, false, true),
            ALL,
            vec!["refresh", "reinstall", "hold", "restart"],
        ),
        (
            r(true, true, true),
            PLAIN,
            vec!["finish-transaction", "refresh", "reinstall", "hold"],
        ),
    ] {
        let p = Plan::repair("15.4.3", &rep, facts, Some(&t())).unwrap();
        assert_eq!(names(&p), want, "{rep:?}");
        // A repair never rolls anything back.
        for i in 0..p.steps.len() {
            assert!(p.undo_for_failure(i).is_empty(), "{rep:?} step {i}");
        }
    }
}

/// Invariants over every update plan: a rollback always comes after
/// the channel is restored, and ends with a restart and check when the
/// plan had them; nothing before the install is ever undone.
#[test]
fn undo_invariants() {
    for restart in [false, true] {
        for verify in [false, true] {
            for (channel_to, swaps_holds) in [(None, false), (Some(16), true)] {
                let f = Facts {
                    restart,
                    verify,
                    channel_to,
                    swaps_holds,
                };
                let p = Plan::update("15.4.2", "16.0.0", f, &t());
                let install = p.steps.iter().position(|s| s.name() == "install").unwrap();
                for i in 0..p.steps.len() {
                    let u = p.undo_for_failure(i);
                    if i < install {
                        assert!(u.is_empty(), "{f:?} {i}");
                    }
                    if let Some(k) = u
                        .iter()
                        .position(|u| matches!(u, Undo::InstallPrevious { .. }))
                    {
                        if let Some(c) = u.iter().position(|u| *u == Undo::RestoreChannel) {
                            assert!(c < k, "{f:?}: channel restored first");
                        }
                        assert_eq!(u.contains(&Undo::RestartAgent), restart, "{f:?}");
                        assert_eq!(u.contains(&Undo::VerifyRollback), verify, "{f:?}");
                    }
                }
                // The journal round-trips the plan.
                let j = serde_json::to_string(&p).unwrap();
                assert_eq!(serde_json::from_str::<Plan>(&j).unwrap(), p);
            }
        }
    }
}

/// Under a FleetLock slot: taken first, given back after the health
/// check; a failure before any change gives it back, any later failure
/// (a failed install, a rollback) keeps it.
#[test]
fn slot_steps_and_undos() {
    let p = Plan::update("15.4.2", "16.0.0", ALL, &t()).with_slot("default", "abc");
    assert_eq!(
        names(&p),
        vec![
            "take-slot",
            "finish-transaction",
            "refresh",
            "check-space",
            "keep-previous",
            "install",
            "hold",
            "check-install",
            "restart",
            "verify",
            "release-slot",
            "drop-previous",
            "keep-channel",
        ]
    );
    let at = |n: &str| p.steps.iter().position(|s| s.name() == n).unwrap();
    assert_eq!(
        undo_names(&p.undo_for_failure(at("take-slot"))),
        vec!["release-slot"]
    );
    assert_eq!(
        undo_names(&p.undo_for_failure(at("refresh"))),
        vec!["release-slot"]
    );
    assert_eq!(
        undo_names(&p.undo_for_failure(at("install"))),
        vec!["restore-channel"]
    );
    assert_eq!(
        undo_names(&p.undo_for_failure(at("verify"))),
        vec![
            "restore-channel",
            "install-previous 15.4.2",
            "restart-agent",
            "verify-rollback"
        ],
        "a rolled-back host keeps its slot"
    );
    assert!(
        !undo_names(&p.undo_for_failure(at("release-slot"))).contains(&"release-slot".to_string())
    );
    let plain = Plan::update("15.4.2", "15.4.3", PLAIN, &t()).with_slot("g", "i");
    assert_eq!(
        names(&plain),
        vec![
            "take-slot",
            "finish-transaction",
            "refresh",
            "check-space",
            "keep-previous",
            "install",
            "hold",
            "check-install",
            "drop-previous",
            "release-slot"
        ]
    );
    let j = serde_json::to_string(&p).unwrap();
    assert_eq!(serde_json::from_str::<Plan>(&j).unwrap(), p);
}

/// A plan that gives its slot back on a rollback (the host was unhealthy
/// before): the release comes last, after the rollback's check; before
/// anything changed, as always, the release is the only undo.
#[test]
fn slot_given_back_on_rollback_when_the_host_was_unhealthy() {
    let mut p = Plan::update("15.4.2", "15.4.3", ALL, &t()).with_slot("g", "i");
    let at = |n: &str| p.steps.iter().position(|s| s.name() == n).unwrap();
    let verify = at("verify");
    let take = at("take-slot");
    let kept = undo_names(&p.undo_for_failure(verify));
    assert!(!kept.contains(&"release-slot".to_string()), "{kept:?}");
    p.release_slot_on_rollback = true;
    let given = undo_names(&p.undo_for_failure(verify));
    assert_eq!(
        given.last().map(String::as_str),
        Some("release-slot"),
        "{given:?}"
    );
    assert_eq!(&given[..given.len() - 1], &kept[..]);
    assert_eq!(undo_names(&p.undo_for_failure(take)), vec!["release-slot"]);
}

/// A hold that names a version is swapped in two steps, the old one
/// dropped right after the new one is made (a kill between them resumes
/// at the drop); other holds have no such step.
#[test]
fn a_version_hold_is_swapped_in_two_steps() {
    let f = Facts {
        swaps_holds: true,
        ..PLAIN
    };
    let names = |p: &Plan| p.steps.iter().map(|s| s.name()).collect::<Vec<_>>();
    let p = Plan::update("15.4.2", "15.4.3", f, &t());
    let n = names(&p);
    let h = n.iter().position(|s| *s == "hold").unwrap();
    assert_eq!(n[h + 1], "drop-old-holds", "{n:?}");
    assert!(p.steps[h + 1].is_package_operation());
    assert!(!names(&Plan::update("15.4.2", "15.4.3", PLAIN, &t())).contains(&"drop-old-holds"));
    let r = Repairs {
        unheld: true,
        ..Repairs::default()
    };
    let p = Plan::repair("15.4.3", &r, f, None).unwrap();
    assert_eq!(names(&p), ["hold", "drop-old-holds"]);
}
