//! What a run decides and does, through the real binary: the window, a
//! critical update, a downgrade (fleet rollback), a target the repository
//! lacks, a refusal, `dry-run` and `force`. The first table runs on every
//! backend (apt with apt-get/dpkg, dnf and zypper with rpm), each in its own
//! alternate root with a signed repository and a version server on
//! loopback (`<scenario>::apt`, `::dnf`, `::zypper`); the apt rows after it
//! add the schedule's edge cases (missing, stale, `nop`, `none`), the
//! unhealthy marker, and the hold against a routine `apt-get upgrade`.

use testkit::each_backend;
use testkit::world::apt::AptWorld;
use testkit::world::{self, Kind, World, CHANNEL, PKG};

#[track_caller]
fn assert_installed(w: &World, kind: Kind, want: &str, why: &str) {
    assert_eq!(w.installed().as_deref(), Some(want), "{kind:?}: {why}");
}

// (1) In the window, 15.4.2 -> 15.4.3.
each_backend!(in_window_update, |k: Kind| {
    let w = World::new(k, "15.4.2", "v15.4.3\n");
    assert_installed(&w, k, "15.4.2", "before");
    w.schedule_in_window();
    w.run(&["run"])
        .expect(0)
        .logs_contain("inside the maintenance window");
    assert_installed(&w, k, "15.4.3", "updated in the window");
});

// (2) Outside the window: nothing changes.
each_backend!(outside_window_waits, |k: Kind| {
    let w = World::new(k, "15.4.2", "15.4.3");
    w.schedule_outside_window();
    w.run(&["run"])
        .expect(0)
        .logs_contain("outside the maintenance window");
    assert_installed(&w, k, "15.4.2", "waiting must not update");
});

// (3) Critical: updated even outside the window.
each_backend!(critical_outside_window_updates, |k: Kind| {
    let w = World::new(k, "15.4.2", "15.4.3");
    w.schedule_outside_window();
    w.set_critical("yes\n");
    assert_installed(&w, k, "15.4.2", "before");
    w.run(&["run"]).expect(0).logs_contain("critical");
    assert_installed(&w, k, "15.4.3", "a critical update ignores the window");
});

// (4) Downgrade (fleet rollback) in the window: installed on the second
// check that sees it (unhealthy-interval after the first), once.
each_backend!(downgrade_in_window, |k: Kind| {
    let w = World::new(k, "15.4.3", "15.4.2");
    assert_installed(&w, k, "15.4.3", "before");
    w.schedule_in_window();
    w.sight_lower_target();
    assert_installed(&w, k, "15.4.3", "a lower target seen once waits");
    w.run(&["run"]).expect(0);
    assert_installed(&w, k, "15.4.2", "rolled back");
    w.run(&["run"])
        .expect(0)
        .logs_contain("the installed version is the target");
    assert_eq!(w.state()["lower_target"], serde_json::Value::Null, "{k:?}");
});

// (5) Target missing from the repository, with `mirror-wait` 0 (no wait
// for a lagging mirror): exit 4, unchanged.
each_backend!(missing_target_fails_cleanly, |k: Kind| {
    let w = World::new(k, "15.4.2", "15.4.3");
    w.set_target("15.9.9");
    w.config("mirror-wait", "0");
    w.schedule_in_window();
    let r = w.run(&["run"]);
    eprintln!("{k:?} missing target:\n{}", r.stderr());
    r.expect(4)
        .logs_contain("15.9.9")
        .logs_contain("is not offered")
        .logs_contain("waiting for the mirror");
    assert_installed(&w, k, "15.4.2", "a failed update leaves the agent");
    assert_eq!(
        w.state()["last_run"]["result"],
        "waiting-for-mirror",
        "{k:?}"
    );
});

// (5b) A target below anything published (`0.0.1`), the cluster's version
// unknown (a static version server): refused (exit 3) before any package
// operation, `force` too; the agent and its hold unchanged. (Before: the
// install was tried and failed, exit 4 "waiting for the mirror".)
each_backend!(nonsense_low_target_is_refused, |k: Kind| {
    let w = World::new(k, "15.4.2", "15.4.3");
    w.set_target("0.0.1");
    w.schedule_in_window();
    for cmd in ["run", "force"] {
        let r = w.run(&[cmd]);
        eprintln!("{k:?} {cmd} target 0.0.1:\n{}", r.stderr());
        r.expect(3)
            .logs_contain("target 0.0.1 is more than one major version below the installed agent");
        let ran = r
            .stderr()
            .lines()
            .any(|l| l.contains("running") && (l.contains(" install") || l.contains("update")));
        assert!(!ran, "{k:?} {cmd}: a package operation ran\n{}", r.stderr());
        assert_installed(&w, k, "15.4.2", "a refused target leaves the agent");
        assert_eq!(w.state()["last_run"]["result"], "refused", "{k:?} {cmd}");
    }
});

// (6) Metadata signed by an unknown key: exit 3, unchanged.
each_backend!(unknown_key_is_refused, |k: Kind| {
    let w = World::new(k, "15.4.2", "15.4.3");
    w.resign_with_unknown_key();
    w.schedule_in_window();
    let r = w.run(&["run"]);
    eprintln!("{k:?} unknown key:\n{}", r.stderr());
    let why = match k {
        Kind::Apt => "NO_PUBKEY",
        Kind::Dnf => "repomd.xml GPG signature verification error",
        Kind::Zypper => "Signature verification failed for repomd.xml",
    };
    r.expect(3).logs_contain("refused").logs_contain(why);
    assert_installed(&w, k, "15.4.2", "a trust refusal leaves the agent");
});

// (7) dry-run: the decision and the exact commands, nothing changed.
each_backend!(dry_run_changes_nothing, |k: Kind| {
    let w = World::new(k, "15.4.2", "15.4.3");
    w.schedule_in_window();
    let r = w.run(&["dry-run"]);
    r.expect(0);
    let out = r.stdout();
    assert!(
        out.contains("decision:  update: inside the maintenance window"),
        "{k:?}\n{out}"
    );
    let (program, install) = match k {
        Kind::Apt => ("apt-get", "teleport-ent=15.4.3"),
        Kind::Dnf => ("dnf", "install teleport-ent-15.4.3"),
        Kind::Zypper => ("zypper", "teleport-ent=15.4.3"),
    };
    assert!(
        out.contains(program) && out.contains(install),
        "{k:?}: lacks {program} / {install}\n{out}"
    );
    assert_installed(&w, k, "15.4.2", "dry-run must not install");
    assert!(!w.state_exists(), "{k:?}: dry-run writes no state");
    // Control: the same world, run for real, does update (so the dry-run
    // assertions above concern a world where an update was due).
    w.run(&["run"]).expect(0);
    assert_installed(&w, k, "15.4.3", "control run");
});

// ---- apt: the schedule, the marker, the hold, dry-run and force ----

#[test]
fn in_window_update_installs_holds_and_records() {
    let w = AptWorld::new("15.4.2", "v15.4.3\n");
    w.schedule_in_window();
    let r = w.run(&["run"]);
    r.expect(0).logs_contain("inside the maintenance window");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    assert!(w.held(), "the agent must be held after an update");
    let st = w.state();
    assert_eq!(st["last_run"]["decision"], "update");
    assert_eq!(st["last_run"]["installed_before"], "15.4.2");
    assert_eq!(st["last_run"]["installed_after"], "15.4.3");
    assert_eq!(st["updates_total"], 1);
}

#[test]
fn outside_the_window_nothing_changes() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_outside_window();
    w.run(&["run"])
        .expect(0)
        .logs_contain("outside the maintenance window");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert!(w.held(), "converged: every run holds the agent");
    assert_eq!(
        w.repo_server.requests().len(),
        0,
        "no repository traffic when waiting"
    );
    assert_eq!(w.state()["last_run"]["decision"], "wait");
}

#[test]
fn critical_updates_outside_the_window() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_outside_window();
    w.set_critical("YES\n");
    w.run(&["run"]).expect(0).logs_contain("critical");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

#[test]
fn unreadable_critical_counts_as_not_critical() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_outside_window();
    w.vs.set_route(
        &format!("{CHANNEL}/critical"),
        testkit::http::Route::status(500, "oops"),
    );
    w.run(&["run"])
        .expect(0)
        .logs_contain("treating the update as not critical");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
}

#[test]
fn missing_schedule_marks_first_then_updates() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.run(&["run"])
        .expect(0)
        .logs_contain("marked, and the next run updates");
    assert!(w.marker(), "the first unhealthy run writes the marker");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    let first = w.marker_time();
    // A second run at once is not a second observation (unhealthy-interval,
    // 5 minutes by default): no update, and the marker keeps its first time.
    w.run(&["run"])
        .expect(0)
        .logs_contain("younger than unhealthy-interval");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(
        w.marker_time(),
        first,
        "the marker's time is never pushed forward"
    );
    // Ten minutes later (the marker written then), the next run updates.
    w.backdate_marker(600);
    w.run(&["run"])
        .expect(0)
        .logs_contain("unhealthy on two consecutive runs");
    assert!(!w.marker(), "the marker is consumed");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

#[test]
fn a_recovered_agent_clears_the_marker_without_updating() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.config("schedule", "");
    w.run(&["run"]).expect(0);
    assert!(w.marker());
    w.schedule_outside_window(); // the agent came back
    w.run(&["run"])
        .expect(0)
        .logs_contain("outside the maintenance window");
    assert!(!w.marker());
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
}

#[test]
fn stale_schedule_counts_as_unhealthy() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    let n = world::now();
    w.config(
        "schedule",
        &format!("# generated by teleport\n{} {}", n - 9000, n - 5400),
    );
    w.run(&["run"]).expect(0).logs_contain("in the past");
    assert!(w.marker());
}

#[test]
fn nop_stands_down_even_when_critical_and_forced() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.config("schedule", "nop");
    w.set_critical("yes");
    w.run(&["run"]).expect(0).logs_contain("stand down");
    w.run(&["force"]).expect(0).logs_contain("stand down");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(
        w.version_hits(),
        0,
        "standing down does not even ask the version server"
    );
}

#[test]
fn none_means_nothing_to_do() {
    let w = AptWorld::new("15.4.2", "none\n");
    w.schedule_in_window();
    w.run(&["run"])
        .expect(0)
        .logs_contain("advertises no target");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(w.state()["last_run"]["decision"], "no-target");
}

#[test]
fn same_version_touches_nothing() {
    let w = AptWorld::new("15.4.3", "v15.4.3");
    w.schedule_in_window();
    w.set_critical("yes");
    w.run(&["run"])
        .expect(0)
        .logs_contain("installed version is the target");
    assert_eq!(
        w.repo_server.requests().len(),
        0,
        "no refresh when already at target"
    );
    assert!(w.held(), "converged: every run holds the agent");
}

#[test]
fn downgrade_is_a_fleet_rollback() {
    let w = AptWorld::new("15.4.3", "15.4.2");
    w.schedule_in_window();
    w.sight_lower_target();
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert!(w.held());
}

#[test]
fn major_upgrade_within_the_channel() {
    let w = AptWorld::new("15.4.2", "16.0.0");
    w.schedule_in_window();
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("16.0.0"));
}

#[test]
fn target_missing_from_the_repository_fails_cleanly() {
    let w = AptWorld::new("15.4.2", "15.9.9");
    w.schedule_in_window();
    let r = w.run(&["run"]);
    // A lagging mirror is not a failed update (for `mirror-wait`).
    r.expect(0).logs_contain("15.9.9");
    assert!(r.stderr().contains("not offered"), "{}", r.stderr());
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(w.state()["last_run"]["result"], "waiting-for-mirror");
    assert_eq!(w.state()["mirror_waits_total"], 1);
    assert!(w.state()["failures"]["waiting-for-mirror"].is_null());
    // `force` is an operator asking now: exit 4 at once, a failure.
    w.run(&["force"]).expect(4).logs_contain("not offered");
    assert_eq!(w.state()["failures"]["waiting-for-mirror"], 1);
}

#[test]
fn the_hold_keeps_a_routine_upgrade_from_moving_the_agent() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    w.run(&["run"]).expect(0);
    assert!(w.held());
    let line = w.host_sources_line();
    let up = w.root.apt_get_with_sources(&line, &["update"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let out = w.root.apt_get_with_sources(&line, &["upgrade", "-y"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("kept back"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.3"),
        "16.0.0 is available but the hold must keep 15.4.3"
    );
    // Control: without the hold the same upgrade moves it, so the assertion above can fail.
    w.root.set_hold(PKG, false);
    let out = w.root.apt_get_with_sources(&line, &["upgrade", "-y"]);
    assert!(out.status.success());
    assert_eq!(w.installed().as_deref(), Some("16.0.0"));
}

#[test]
fn a_held_agent_is_still_updated_by_the_updater() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.root.set_hold(PKG, true);
    w.schedule_in_window();
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    assert!(w.held());
}

#[test]
fn dry_run_shows_the_decision_and_commands_and_changes_nothing() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    let r = w.run(&["dry-run"]);
    r.expect(0);
    let out = r.stdout();
    assert!(
        out.contains("decision:  update: inside the maintenance window"),
        "{out}"
    );
    assert!(out.contains("apt-get"), "{out}");
    assert!(out.contains("update --error-on=any"), "{out}");
    assert!(out.contains("install -y --no-install-recommends --allow-downgrades --allow-change-held-packages teleport-ent=15.4.3"), "{out}");
    assert!(out.contains("--set-selections"), "{out}");
    // Each command once, its enforcement options summarised ...
    assert!(out.contains("enforcement options"), "{out}");
    assert_eq!(out.matches("update --error-on=any").count(), 1, "{out}");
    // ... and in full with -v: the plan never weakens verification: every
    // apt call forces the strict value of each switch, and nothing else
    // names them.
    let r = w.run(&["-v", "dry-run"]);
    r.expect(0);
    let out = r.stdout();
    assert_eq!(out.matches("update --error-on=any").count(), 1, "{out}");
    for weak in [
        "allow-unauthenticated",
        "trusted=yes",
        "allow-insecure",
        "allow-weak",
        "--force-yes",
    ] {
        assert!(
            !out.to_lowercase().contains(&weak.to_lowercase()),
            "the plan contains {weak}: {out}"
        );
    }
    for line in out.lines().filter(|l| l.contains("apt-get")) {
        for (k, v) in backends::apt_trust::ENFORCED {
            assert!(
                line.contains(&format!(" -o {k}={v} ")),
                "{k} not forced: {line}"
            );
        }
        for key in [
            "AllowUnauthenticated",
            "AllowInsecureRepositories",
            "AllowDowngradeToInsecure",
            "AllowWeak",
            "Force-Yes",
        ] {
            for w in line.split_whitespace().filter(|w| w.contains(key)) {
                assert!(w.ends_with("=false"), "{w} in {line}");
            }
        }
    }
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert!(
        !w.root.file("/var/lib/teleport-upgrade/state.json").exists(),
        "dry-run writes no state"
    );
    assert_eq!(
        w.repo_server.requests().len(),
        0,
        "dry-run does not refresh"
    );
    // And it does not write the unhealthy marker either.
    w.remove_config("schedule");
    w.run(&["dry-run"]).expect(0);
    assert!(!w.marker());
}

#[test]
fn force_ignores_the_window_but_not_trust() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_outside_window();
    w.repo.sign_with(None);
    w.run(&["force"]).expect(3);
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    let k = &w.key;
    w.repo.sign_with(Some(k));
    w.run(&["force"]).expect(0).logs_contain("forced");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}
