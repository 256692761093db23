//! The resume table: a run is killed at a step boundary of an update
//! (15.4.2 -> 15.4.3, inside the window), one thing changes before the next
//! run, and the next plain `run` converges the host and installs only what
//! a fresh run would install; `dry-run` says what it will do first.
//!
//! Through the real binary on real apt/dpkg, dnf/rpm and zypper/rpm with
//! signed repositories. The changes: nothing; the window closed; the
//! target withdrawn (back to 15.4.2) or changed (16.0.0); `installer` =
//! `nop`; the schedule says `nop`; the repository re-signed by a key the
//! root does not trust; a key pin that does not match. Before the fix, a
//! resumed plan went straight from the journal to the package manager:
//! the untrusted, withdrawn or forbidden 15.4.3 was installed anyway.

use std::process::Command;

use testkit::world::{self, Kind, World};

/// Where the update is killed: every boundary of its package steps, before
/// anything is installed (before and after the refresh) and once 15.4.3 is
/// installed (unheld, then held). The health check's boundaries are
/// `crash_recovery.rs`'s.
const BOUNDARIES: &[&str] = &[
    "before-refresh",
    "before-install",
    "after-install",
    "before-hold",
    "after-hold",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Nothing,
    WindowClosed,
    TargetWithdrawn,
    TargetChanged,
    InstallerNop,
    ScheduleNop,
    TrustBroken,
    KeyPinMismatch,
}
use Change::*;

const ALL: &[Change] = &[
    Nothing,
    WindowClosed,
    TargetWithdrawn,
    TargetChanged,
    InstallerNop,
    ScheduleNop,
    TrustBroken,
    KeyPinMismatch,
];

fn cmd(w: &World, args: &[&str], failpoint: &str) -> Command {
    let mut c = w.cmd(args);
    c.env("TELEPORT_UPGRADE_FAILPOINT", failpoint);
    c
}

fn journal_exists(w: &World) -> bool {
    w.file("/var/lib/teleport-upgrade/plan.json").exists()
}

/// The repository definition loses what restricts it to its key: apt's
/// `signed-by`, dnf's and zypper's `gpgcheck`.
fn weaken_trust(w: &World) {
    let def = w.repo_definition();
    let weak = match w.kind() {
        Kind::Apt => {
            let (a, b) = (def.find('[').unwrap(), def.find(']').unwrap());
            format!("{}{}", &def[..a], def[b + 1..].trim_start())
        }
        _ => def.replace("gpgcheck=1", "gpgcheck=0"),
    };
    assert_ne!(weak, def, "{:?}: weakened", w.kind());
    std::fs::write(w.repo_definition_path(), weak).unwrap();
}

fn apply(w: &World, c: Change) {
    match c {
        Nothing => {}
        WindowClosed => w.schedule_outside_window(),
        TargetWithdrawn => w.set_target("15.4.2"),
        TargetChanged => w.set_target("16.0.0"),
        InstallerNop => {
            // nop's read-only queries detect the package manager from the
            // root's os-release, as on a real host.
            let os = match w.kind() {
                Kind::Apt => "ID=debian\n",
                Kind::Dnf => "ID=fedora\n",
                Kind::Zypper => "ID=opensuse-leap\nID_LIKE=\"suse opensuse\"\n",
            };
            std::fs::create_dir_all(w.file("/etc")).unwrap();
            std::fs::write(w.file("/etc/os-release"), os).unwrap();
            w.config("installer", "nop");
        }
        ScheduleNop => w.config("schedule", "nop"),
        TrustBroken => weaken_trust(w),
        KeyPinMismatch => w.config("trusted-keys", &"A".repeat(40)),
    }
}

/// What the next run must do: (exit code, version afterwards, the
/// resume word dry-run shows). `installed`: 15.4.3 was installed before
/// the kill.
fn expected(installed: bool, c: Change) -> (i32, &'static str, &'static str) {
    let before = if installed { "15.4.3" } else { "15.4.2" };
    match (installed, c) {
        (false, Nothing) => (0, "15.4.3", "continue it"),
        (false, WindowClosed) => (0, "15.4.2", "abandon it"),
        (false, TargetWithdrawn) => (0, "15.4.2", "abandon it"),
        // A fresh run updates to the new target, inside the window.
        (false, TargetChanged) => (0, "16.0.0", "abandon it"),
        (_, InstallerNop) | (_, ScheduleNop) => (0, before, "abandon it"),
        // Refused by the trust audit: nothing more is installed, the plan
        // is abandoned once the host is converged (held).
        (_, TrustBroken) | (_, KeyPinMismatch) => (3, before, "abandon it"),
        // The install is done: its restart and check are finished.
        (true, _) => (0, "15.4.3", "finish it"),
    }
}

fn resume_table(kind: Kind, changes: &[Change]) {
    let mut rows = Vec::new();
    for point in BOUNDARIES {
        for &c in changes {
            let w = World::new(kind, "15.4.2", "15.4.3");
            w.schedule_in_window();
            let out = cmd(&w, &["run"], point).output().unwrap();
            assert_eq!(out.status.code(), None, "{kind:?} {point}: killed");
            assert!(journal_exists(&w), "{kind:?} {point}: the journal is left");
            let installed = w.installed().as_deref() == Some("15.4.3");
            apply(&w, c);
            let (code, version, says) = expected(installed, c);
            let row = format!("{kind:?} {point} {c:?}");
            if c != ScheduleNop {
                let dry = w.run(&["dry-run"]);
                assert!(
                    dry.stdout().contains(&format!("resume:    {says}")),
                    "{row}: dry-run says {says:?}:\n{}\n{}",
                    dry.stdout(),
                    dry.stderr()
                );
            }
            let r = w.run(&["run"]);
            assert_eq!(r.code(), code, "{row}\n{}", r.stderr());
            assert_eq!(
                w.installed().as_deref(),
                Some(version),
                "{row}\n{}",
                r.stderr()
            );
            assert!(
                !journal_exists(&w),
                "{row}: the journal is retired\n{}",
                r.stderr()
            );
            let st = w.state();
            let abandoned = st["abandoned_total"].as_u64().unwrap_or(0);
            assert_eq!(
                abandoned > 0,
                says == "abandon it" || code == 3,
                "{row}: {st:#}"
            );
            // Converged: held, unless the operator forbade every change.
            if !matches!(c, InstallerNop | ScheduleNop) {
                let s = w.status_json();
                assert_eq!(s["held"], true, "{row}: held\n{s:#}\n{}", r.stderr());
            }
            if says == "abandon it" && c != ScheduleNop {
                let s = w.status_json();
                assert!(
                    s["last_run"]["abandoned"]
                        .as_str()
                        .is_some_and(|a| !a.is_empty()),
                    "{row}: status says it was abandoned: {s:#}"
                );
            }
            rows.push(format!(
                "{kind:?} | {point} | {c:?} | exit {code}, {version}, {says}"
            ));
        }
    }
    for r in rows {
        eprintln!("RESUME {r}");
    }
}

#[test]
fn apt() {
    resume_table(Kind::Apt, ALL);
}

#[test]
fn dnf() {
    resume_table(Kind::Dnf, ALL);
}

#[test]
fn zypper() {
    resume_table(Kind::Zypper, ALL);
}

/// The binary under test.
#[allow(dead_code)]
fn binary() -> &'static std::path::Path {
    world::binary()
}
