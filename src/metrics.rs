//! Metrics in the Prometheus text format, for node_exporter's textfile
//! collector: one file (`teleport_upgrade.prom`) written atomically after
//! every run, so the collector never reads half a file.
//!
//! The directory is the `metrics-dir` setting; by default Debian's
//! node_exporter textfile directory when it exists, else no file. `none`
//! turns the file off.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::state::State;

pub const FILE_NAME: &str = "teleport_upgrade.prom";

/// Debian's and Ubuntu's `prometheus-node-exporter` textfile directory.
pub const DEFAULT_DIR: &str = "/var/lib/prometheus/node-exporter";

/// Every result a run can end with, so each series exists from the start
/// (a counter that appears only after its first failure breaks `rate()`).
/// The result words, from the record's own type.
pub fn results() -> impl Iterator<Item = &'static str> {
    crate::state::RunResult::ALL.iter().map(|r| r.as_str())
}

/// Escape a label value: backslash, double quote and newline.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The whole file for `state` (pure: tested by parsing it back).
pub fn render(state: &State) -> String {
    let mut o = String::new();
    let last = state.last_run.as_ref();

    family(
        &mut o,
        "teleport_upgrade_last_run_timestamp_seconds",
        "gauge",
        "Unix time the last run started.",
    );
    let _ = writeln!(
        o,
        "teleport_upgrade_last_run_timestamp_seconds {}",
        last.map_or(0, |l| l.time)
    );
    family(
        &mut o,
        "teleport_upgrade_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the last run that ended with exit code 0.",
    );
    let _ = writeln!(
        o,
        "teleport_upgrade_last_success_timestamp_seconds {}",
        state.last_success.unwrap_or(0)
    );
    family(
        &mut o,
        "teleport_upgrade_last_check_timestamp_seconds",
        "gauge",
        "Unix time of the last run the version server answered.",
    );
    let _ = writeln!(
        o,
        "teleport_upgrade_last_check_timestamp_seconds {}",
        state.last_check.unwrap_or(0)
    );

    family(
        &mut o,
        "teleport_upgrade_last_run_result",
        "gauge",
        "1 for the result the last run ended with, 0 for the others.",
    );
    let result = last.map(|l| l.result.as_str());
    for r in results() {
        let _ = writeln!(
            o,
            "teleport_upgrade_last_run_result{{result=\"{r}\"}} {}",
            u8::from(result == Some(r))
        );
    }
    family(
        &mut o,
        "teleport_upgrade_last_run_exit_code",
        "gauge",
        "Exit code of the last run (see teleport-upgrade --help).",
    );
    let _ = writeln!(
        o,
        "teleport_upgrade_last_run_exit_code {}",
        last.map_or(0, |l| l.exit_code)
    );

    if let Some(l) = last {
        let package = l.package.as_deref().unwrap_or("");
        if let Some(v) = l.installed_after.as_ref().or(l.installed_before.as_ref()) {
            family(
                &mut o,
                "teleport_upgrade_installed_version_info",
                "gauge",
                "The agent package and version installed after the last run.",
            );
            let _ = writeln!(
                o,
                "teleport_upgrade_installed_version_info{{package=\"{}\",version=\"{}\"}} 1",
                label(package),
                label(v)
            );
        }
        if let Some(t) = &l.target {
            family(
                &mut o,
                "teleport_upgrade_target_version_info",
                "gauge",
                "The target version the version server advertised at the last run.",
            );
            let _ = writeln!(
                o,
                "teleport_upgrade_target_version_info{{version=\"{}\",critical=\"{}\"}} 1",
                label(t),
                l.critical.unwrap_or(false)
            );
        }
    }

    family(
        &mut o,
        "teleport_upgrade_in_window",
        "gauge",
        "1 when the last run was inside a maintenance window.",
    );
    let _ = writeln!(
        o,
        "teleport_upgrade_in_window {}",
        u8::from(last.and_then(|l| l.in_window).unwrap_or(false))
    );
    counters(&mut o, state);
    lock_requests(&mut o, state);
    rollout(&mut o, state);
    o
}

/// The counters of the state file.
fn counters(o: &mut String, state: &State) {
    let last = state.last_run.as_ref();
    family(
        o,
        "teleport_upgrade_last_update_timestamp_seconds",
        "gauge",
        "Unix time of the last successful update of the agent.",
    );
    let _ = writeln!(
        o,
        "teleport_upgrade_last_update_timestamp_seconds {}",
        state.last_update.unwrap_or(0)
    );

    family(
        o,
        "teleport_upgrade_agent_unhealthy",
        "gauge",
        "1 when the last run saw the agent unhealthy.",
    );
    let _ = writeln!(
        o,
        "teleport_upgrade_agent_unhealthy {}",
        u8::from(last.is_some_and(|l| l.unhealthy.is_some()))
    );
    family(
        o,
        "teleport_upgrade_abandoned_plans_total",
        "counter",
        "Unfinished plans of earlier runs abandoned (a fresh run would not make them).",
    );
    let _ = writeln!(
        o,
        "teleport_upgrade_abandoned_plans_total {}",
        state.abandoned_total
    );
    family(
        o,
        "teleport_upgrade_trust_warnings",
        "gauge",
        "Findings of the last trust audit that the command line neutralises (see status).",
    );
    let _ = writeln!(
        o,
        "teleport_upgrade_trust_warnings {}",
        last.map(|l| l.trust_warnings.len()).unwrap_or(0)
    );
    family(
        o,
        "teleport_upgrade_version_disagreements_total",
        "counter",
        "Checks whose answer contradicted the lower target an earlier check saw (proxies of different versions).",
    );
    let _ = writeln!(
        o,
        "teleport_upgrade_version_disagreements_total {}",
        state.disagreements_total
    );
    family(
        o,
        "teleport_upgrade_updates_total",
        "counter",
        "Successful updates of the agent package.",
    );
    let _ = writeln!(o, "teleport_upgrade_updates_total {}", state.updates_total);
    family(
        o,
        "teleport_upgrade_rollbacks_total",
        "counter",
        "Updates rolled back because the agent did not become healthy.",
    );
    let _ = writeln!(
        o,
        "teleport_upgrade_rollbacks_total {}",
        state.rollbacks_total
    );
    family(
        o,
        "teleport_upgrade_uncured_total",
        "counter",
        "Rollbacks of updates made while the agent was unhealthy (the update did not cure it).",
    );
    let _ = writeln!(o, "teleport_upgrade_uncured_total {}", state.uncured_total);
    family(
        o,
        "teleport_upgrade_failures_total",
        "counter",
        "Runs that did not end with exit 0, by reason (a wait for a lagging mirror is one only once it is longer than mirror-wait; every wait: teleport_upgrade_mirror_waits_total).",
    );
    for r in results().filter(|r| *r != "ok") {
        let _ = writeln!(
            o,
            "teleport_upgrade_failures_total{{reason=\"{r}\"}} {}",
            state.failures.get(r).copied().unwrap_or(0)
        );
    }
    family(
        o,
        "teleport_upgrade_mirror_waits_total",
        "counter",
        "Runs that found the target not offered by the repository yet (a lagging mirror): nothing installed, checked again by the next run.",
    );
    let _ = writeln!(
        o,
        "teleport_upgrade_mirror_waits_total {}",
        state.mirror_waits_total
    );
}

/// The FleetLock requests, by operation and result (only those made).
fn lock_requests(o: &mut String, state: &State) {
    if state.fleet_lock_requests.is_empty() {
        return;
    }
    family(
        o,
        "teleport_upgrade_fleet_lock_requests_total",
        "counter",
        "Requests to the FleetLock server, by operation (take, release) and result (ok, full, conflict, unknown-group, invalid-identity, store-down, unreachable, other).",
    );
    for (op, by) in &state.fleet_lock_requests {
        for (word, n) in by {
            let _ = writeln!(
                o,
                "teleport_upgrade_fleet_lock_requests_total{{op=\"{}\",result=\"{}\"}} {n}",
                label(op),
                label(word)
            );
        }
    }
}

/// The failure-rate halt (`fleet-report`): only once a run read or wrote
/// the fleet's record.
fn rollout(o: &mut String, state: &State) {
    let Some(r) = &state.fleet_rollout else {
        return;
    };
    family(
        o,
        "teleport_upgrade_rollout_halted",
        "gauge",
        "1 when the last run found the rollout of its target halted on its failure rate (fleet-halt-rate).",
    );
    let _ = writeln!(o, "teleport_upgrade_rollout_halted {}", u8::from(r.halted));
    family(
        o,
        "teleport_upgrade_rollout_halts_total",
        "counter",
        "Runs that took no FleetLock slot because the rollout of their target was halted.",
    );
    let _ = writeln!(
        o,
        "teleport_upgrade_rollout_halts_total {}",
        state.rollout_halts_total
    );
    family(
        o,
        "teleport_upgrade_fleet_report_writes_total",
        "counter",
        "This host's completed updates added to the fleet's record, by result (ok, failed, error: not added).",
    );
    for (w, n) in &state.fleet_report_writes {
        let _ = writeln!(
            o,
            "teleport_upgrade_fleet_report_writes_total{{result=\"{}\"}} {n}",
            label(w)
        );
    }
}

/// Write the file atomically into `dir`.
pub fn write(dir: &Path, state: &State) -> std::io::Result<PathBuf> {
    let path = dir.join(FILE_NAME);
    backends::write_atomic(&path, render(state).as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::LastRun;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn every_result_has_a_series_before_it_happens() {
        let text = render(&State::default());
        for r in results() {
            assert!(
                text.contains(&format!(
                    "teleport_upgrade_last_run_result{{result=\"{r}\"}} 0"
                )),
                "{r}"
            );
        }
        assert!(!text.contains("_info{"), "no version info before a run");
    }

    #[test]
    fn the_last_result_is_the_one_set() {
        let st = State {
            last_run: Some(LastRun {
                time: 5,
                result: "refused".into(),
                exit_code: 3,
                ..Default::default()
            }),
            ..Default::default()
        };
        let text = render(&st);
        assert!(text.contains("teleport_upgrade_last_run_result{result=\"refused\"} 1"));
        assert!(text.contains("teleport_upgrade_last_run_result{result=\"ok\"} 0"));
        assert!(text.contains("teleport_upgrade_last_run_exit_code 3"));
    }

    #[test]
    fn lock_requests_by_operation_and_result() {
        let mut st = State::default();
        assert!(
            !render(&st).contains("fleet_lock_requests"),
            "none made: none shown"
        );
        st.fleet_lock_requests
            .entry("release".into())
            .or_default()
            .insert("conflict".into(), 2);
        st.fleet_lock_requests
            .entry("take".into())
            .or_default()
            .insert("full".into(), 5);
        let text = render(&st);
        assert!(text.contains(
            "teleport_upgrade_fleet_lock_requests_total{op=\"release\",result=\"conflict\"} 2"
        ));
        assert!(text
            .contains("teleport_upgrade_fleet_lock_requests_total{op=\"take\",result=\"full\"} 5"));
    }
}
