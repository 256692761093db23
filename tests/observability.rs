//! What an operator reads: `status --json` (a stable schema) and the
//! Prometheus textfile, on every backend, after real runs.

use std::collections::BTreeSet;

use testkit::each_backend;
use testkit::world::apt::AptWorld;
use testkit::world::{self, Kind, World};

/// The top-level keys of `status --json` schema 1. Adding a key is
/// allowed (update this list and docs/operators/commands.md); removing or renaming one is a
/// new schema.
const STATUS_KEYS: &[&str] = &[
    "schema",
    "updater_version",
    "config_dir",
    "endpoint",
    "installer",
    "package",
    "installed",
    "target",
    "critical",
    "cluster_version",
    "cluster_guard",
    "schedule",
    "window_current",
    "window_next",
    "unhealthy",
    "unhealthy_marker",
    "health",
    "managed_by_v2",
    "source",
    "channel_move_unfinished",
    "unfinished_plan",
    "held",
    "trust",
    "lock_holder",
    "lock",
    "last_run",
    "last_success",
    "last_update",
    "last_check",
    "updates_total",
    "rollbacks_total",
    "uncured_total",
    "failures",
    "fleet_lock",
    "fleet_rollout",
    "update_group",
    "rollout_halts_total",
    "lower_target",
    "disagreements_total",
    "last_disagreement",
    "mirror_wait",
    "mirror_waits_total",
    "problems",
];

fn status_schema(kind: Kind) {
    let w = World::new(kind, "15.4.2", "15.4.3");
    w.schedule_outside_window();
    w.run(&["run"]).expect(0);
    let s = w.status_json();
    let keys: BTreeSet<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        STATUS_KEYS.iter().copied().collect(),
        "{kind:?}: {s:#}"
    );
    assert_eq!(s["schema"], 1);
    assert_eq!(s["package"], "teleport-ent");
    assert_eq!(s["target"], "15.4.3");
    assert_eq!(s["critical"], false);
    assert!(s["window_current"].is_null());
    let next = &s["window_next"];
    assert!(next["start"].as_i64().unwrap() > world::now());
    assert!(next["start_utc"].as_str().unwrap().ends_with('Z'));
    assert!(next["start_local"].is_string(), "{next}");
    assert_eq!(s["health"]["marker"], false);
    assert!(s["health"]["schedule"].is_null());
    assert!(s["source"].as_str().unwrap().contains("127.0.0.1"), "{s:#}");
    assert_eq!(s["trust"]["result"], "ok", "{s:#}");
    assert!(!s["trust"]["checked"].as_array().unwrap().is_empty());
    assert_eq!(s["last_run"]["decision"], "wait");
    assert_eq!(s["last_run"]["in_window"], false);
    assert_eq!(s["updates_total"], 0);
    assert_eq!(s["failures"], serde_json::json!({}));
    let human = w.run(&["status"]);
    for needle in ["trust:       ok", "next window:", "(local ", "totals:"] {
        assert!(
            human.stdout().contains(needle),
            "{needle}\n{}",
            human.stdout()
        );
    }
}

fn status_shows_a_refused_audit_and_counts_failures(kind: Kind) {
    let w = World::new(kind, "15.4.2", "15.4.3");
    w.schedule_in_window();
    // A pinned fingerprint the keyring does not hold.
    w.config("trusted-keys", &"A".repeat(40));
    w.run(&["run"]).expect(3);
    let s = w.status_json();
    assert_eq!(s["trust"]["result"], "refused", "{s:#}");
    assert!(
        s["trust"]["refused"]
            .as_str()
            .unwrap()
            .contains("none of the fingerprints"),
        "{s:#}"
    );
    assert_eq!(s["failures"]["refused"], 1);
    assert_eq!(s["last_run"]["result"], "refused");
    assert_eq!(s["installed"], s["last_run"]["installed_before"]);
}

fn metrics_after_runs(kind: Kind) {
    let w = World::new(kind, "15.4.2", "15.4.3");
    // metrics-dir is a path on the target system: inside the root.
    w.config("metrics-dir", "/var/lib/metrics");
    std::fs::create_dir_all(w.file("/var/lib/metrics")).unwrap();
    let file = w.file("/var/lib/metrics/teleport_upgrade.prom");

    w.schedule_in_window();
    w.run(&["run"]).expect(0);
    let m = parse(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(value(&m, "teleport_upgrade_updates_total", &[]), 1.0);
    assert_eq!(
        value(&m, "teleport_upgrade_last_run_result", &[("result", "ok")]),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "teleport_upgrade_last_run_result",
            &[("result", "refused")]
        ),
        0.0
    );
    assert_eq!(value(&m, "teleport_upgrade_in_window", &[]), 1.0);
    let installed = match kind {
        Kind::Apt => "15.4.3",
        _ => "15.4.3-1",
    };
    assert_eq!(
        value(
            &m,
            "teleport_upgrade_installed_version_info",
            &[("package", "teleport-ent"), ("version", installed)]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "teleport_upgrade_target_version_info",
            &[("version", "15.4.3"), ("critical", "false")]
        ),
        1.0
    );
    let t = value(&m, "teleport_upgrade_last_success_timestamp_seconds", &[]);
    assert!((t - world::now() as f64).abs() < 120.0, "{t}");

    // A refused run: counted by reason, the last success kept.
    w.set_target("15.4.2");
    w.sight_lower_target(); // a lower target is installed on its second check
    let m = parse(&std::fs::read_to_string(&file).unwrap());
    let t = value(&m, "teleport_upgrade_last_success_timestamp_seconds", &[]);
    w.resign_with_unknown_key();
    w.run(&["run"]).expect(3);
    let m = parse(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(
        value(
            &m,
            "teleport_upgrade_failures_total",
            &[("reason", "refused")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "teleport_upgrade_failures_total",
            &[("reason", "update-failed")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &m,
            "teleport_upgrade_last_run_result",
            &[("result", "refused")]
        ),
        1.0
    );
    assert_eq!(value(&m, "teleport_upgrade_last_run_exit_code", &[]), 3.0);
    assert_eq!(
        value(&m, "teleport_upgrade_last_success_timestamp_seconds", &[]),
        t
    );
    assert_eq!(value(&m, "teleport_upgrade_updates_total", &[]), 1.0);
}

fn parse(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("not Prometheus text format: {e}\n{text}"))
}

#[track_caller]
fn value(m: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&prometheus_parse::Sample> = m
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {:?}", m.samples);
    match found[0].value {
        prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name}: {other:?}"),
    }
}

each_backend!(status_schema);
each_backend!(status_shows_a_refused_audit_and_counts_failures);
each_backend!(metrics_after_runs);

/// Without `metrics-dir`, the file goes to node_exporter's textfile
/// directory when that exists, and nowhere when it does not; `none` turns
/// it off.
#[test]
fn metrics_default_directory_and_none() {
    let w = AptWorld::new("15.4.2", "15.4.2");
    w.schedule_outside_window();
    let default = w
        .root
        .file("/var/lib/prometheus/node-exporter/teleport_upgrade.prom");
    w.run(&["run"]).expect(0);
    assert!(!default.exists(), "no directory, no file");
    std::fs::create_dir_all(default.parent().unwrap()).unwrap();
    w.run(&["run"]).expect(0);
    let text = std::fs::read_to_string(&default).unwrap();
    parse(&text);
    std::fs::remove_file(&default).unwrap();
    w.config("metrics-dir", "none");
    w.run(&["run"]).expect(0);
    assert!(!default.exists(), "metrics-dir none");
    w.config("metrics-dir", "relative/dir");
    w.run(&["run"]).expect(2).logs_contain("metrics-dir");
}

// ---- status as text, and the CLI ----

#[test]
fn status_reports_versions_windows_and_the_last_run() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_outside_window();
    w.run(&["run"]).expect(0);
    let r = w.run(&["status", "--json"]);
    r.expect(0);
    let s: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(s["schema"], 1);
    assert_eq!(s["package"], "teleport-ent");
    assert_eq!(s["installer"], "apt");
    assert_eq!(s["installed"], "15.4.2");
    assert_eq!(s["target"], "15.4.3");
    assert_eq!(s["critical"], false);
    assert!(s["window_current"].is_null());
    assert!(s["window_next"]["start"].as_i64().unwrap() > world::now());
    assert_eq!(s["last_run"]["decision"], "wait");
    assert_eq!(s["lock_holder"], serde_json::Value::Null);
    let human = w.run(&["status"]);
    human.expect(0);
    for needle in [
        "installed:   15.4.2",
        "target:      15.4.3",
        "next window:",
        "last run:",
        "lock:        free",
    ] {
        assert!(
            human.stdout().contains(needle),
            "{needle}\n{}",
            human.stdout()
        );
    }
}

#[test]
fn help_documents_commands_and_exit_codes() {
    let out = std::process::Command::new(world::binary())
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "run",
        "dry-run",
        "force",
        "status",
        "version",
        "EXIT CODES",
        "5  another teleport-upgrade run holds the lock",
        "--root",
        "endpoint",
    ] {
        assert!(text.contains(needle), "{needle} missing from --help");
    }
    let v = std::process::Command::new(world::binary())
        .args(["version", "--raw"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).trim(),
        env!("CARGO_PKG_VERSION")
    );
    let bad = std::process::Command::new(world::binary())
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

/// The worlds (`testkit::world`) run the binary cargo built for these
/// tests: the path they find at run time is the one cargo names at build
/// time.
#[test]
fn the_worlds_run_the_binary_cargo_built() {
    assert_eq!(
        world::binary(),
        std::path::Path::new(env!("CARGO_BIN_EXE_teleport-upgrade"))
    );
}
