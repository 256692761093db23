//! Repository channel moves, through the binary on apt, dnf and zypper: a
//! new major moves the repository definition to its channel (and restores
//! it byte for byte when that fails); a move interrupted half-way is undone
//! by the next run that updates.

use testkit::each_backend;
use testkit::world::{self, Kind, World};

/// Target 16.0.0 with the repository on `stable/v15`: dry-run shows the
/// edit; run moves the channel, installs, and keeps the move (no backup
/// left). A target whose channel does not exist fails and the definition
/// is restored byte for byte.
fn channel_moves_with_the_major(kind: Kind) {
    let w = World::new(kind, "15.4.3", "16.0.0");
    w.point_at_channel_site(world::channel_site());
    w.schedule_in_window();
    let before = w.repo_definition();
    let dry = w.run(&["dry-run"]);
    dry.expect(0);
    assert!(
        dry.stdout().contains("stable/v15 -> stable/v16"),
        "{kind:?}\n{}",
        dry.stdout()
    );
    assert_eq!(w.repo_definition(), before, "dry-run changes nothing");

    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("16.0.0"), "{kind:?}");
    let after = w.repo_definition();
    assert!(
        after.contains("stable/v16") && !after.contains("stable/v15"),
        "{after}"
    );
    let backups: Vec<_> = std::fs::read_dir(w.file(match kind {
        Kind::Apt => "/etc/apt/sources.list.d",
        Kind::Dnf => "/etc/yum.repos.d",
        Kind::Zypper => "/etc/zypp/repos.d",
    }))
    .unwrap()
    .filter_map(|e| e.ok())
    .filter(|e| {
        e.file_name()
            .to_string_lossy()
            .ends_with(".teleport-upgrade.bak")
    })
    .collect();
    assert!(backups.is_empty(), "{kind:?}: backup kept after success");

    // v17 is not published: the move is undone.
    w.set_target("17.0.1");
    w.run(&["run"]).expect(4).logs_contain("restored");
    assert_eq!(
        w.repo_definition(),
        after,
        "{kind:?}: restored byte for byte"
    );
    assert_eq!(w.installed().as_deref(), Some("16.0.0"));
}
each_backend!(channel_moves_with_the_major);

/// A run killed in the middle of a channel move left the definition on
/// `stable/v16` and its backup beside it. The next run that updates
/// restores the operator's file first (and says so), then moves only as
/// its own target needs: here 15.4.2 is on `stable/v15`, so the file ends
/// byte for byte as the operator wrote it, and no backup is left. A
/// definition edited since the interrupted move is not touched, and its
/// backup is kept.
fn an_interrupted_channel_move_is_undone(kind: Kind) {
    let w = World::new(kind, "15.4.3", "15.4.2");
    w.point_at_channel_site(world::channel_site());
    w.schedule_in_window();
    let operator = w.repo_definition();
    // The lower target is installed on the second check that sees it (the
    // first one holds the agent: dnf's hold is an `exclude=` line).
    w.sight_lower_target();
    let backup = w.interrupt_channel_move(world::channel_site(), 16);
    assert!(w.repo_definition().contains("stable/v16"));

    let st = w.run(&["status", "--json"]);
    st.expect(0);
    let st: serde_json::Value = serde_json::from_str(&st.stdout()).unwrap();
    let unfinished = st["channel_move_unfinished"].as_str().unwrap_or_default();
    assert!(
        unfinished.contains("stable/v15 -> stable/v16")
            && unfinished.contains(".teleport-upgrade.bak"),
        "{kind:?}: status says {unfinished:?}"
    );
    let dry = w.run(&["dry-run"]);
    dry.expect(0);
    assert!(
        dry.stdout().contains("left a channel move unfinished"),
        "{kind:?}\n{}",
        dry.stdout()
    );
    assert!(backup.exists(), "dry-run changes nothing");

    w.run(&["run"])
        .expect(0)
        .logs_contain("an earlier run stopped in the middle of a channel move");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"), "{kind:?}");
    // (dnf's hold is an `exclude=` line in the same file.)
    let unheld = |t: String| {
        t.lines()
            .filter(|l| !l.starts_with("exclude="))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };
    assert_eq!(
        unheld(w.repo_definition()),
        operator,
        "{kind:?}: the operator's file"
    );
    assert!(!backup.exists(), "{kind:?}: the backup is gone");
    let st = w.run(&["status", "--json"]);
    let st: serde_json::Value = serde_json::from_str(&st.stdout()).unwrap();
    assert!(st["channel_move_unfinished"].is_null(), "{kind:?}");

    // Edited after the interrupted move: neither file is touched by the
    // recovery (the update itself needs no move: 15.4.3 is on stable/v15).
    let backup = w.interrupt_channel_move(world::channel_site(), 16);
    let edited = format!(
        "{}# edited by hand\n",
        w.repo_definition().replace("stable/v16", "stable/v15")
    );
    std::fs::write(w.repo_definition_path(), &edited).unwrap();
    let kept = std::fs::read_to_string(&backup).unwrap();
    w.set_target("15.4.3");
    w.run(&["run"])
        .expect(0)
        .logs_contain("was edited since: both are left as they are");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"), "{kind:?}");
    assert_eq!(unheld(w.repo_definition()), unheld(edited));
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), kept);
}
each_backend!(an_interrupted_channel_move_is_undone);
