//! The small state file (`/var/lib/teleport-upgrade/state.json`): what the
//! last run observed, decided and achieved. Written atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use backends::System;

pub const STATE_FILE: &str = "/var/lib/teleport-upgrade/state.json";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LastRun {
    /// Unix seconds.
    pub time: i64,
    /// run, force or dry-run.
    pub command: String,
    pub package: Option<String>,
    pub installer: Option<String>,
    pub installed_before: Option<String>,
    pub installed_after: Option<String>,
    pub target: Option<String>,
    pub critical: Option<bool>,
    pub schedule: Option<String>,
    /// Whether the run was inside a maintenance window.
    pub in_window: Option<bool>,
    pub unhealthy: Option<String>,
    /// stand-down, no-target, up-to-date, update, wait (absent when the run
    /// failed before deciding).
    pub decision: Option<String>,
    pub detail: Option<String>,
    /// ok, no-target, config-error, refused, update-failed, locked.
    pub result: String,
    pub exit_code: u8,
    /// Why the updated agent was judged unhealthy (then rolled back).
    pub failed_health: Option<String>,
    pub error: Option<String>,
    /// What the run repaired (hold put back, interrupted transaction
    /// finished, executables reinstalled), one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repairs: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct State {
    pub schema: u32,
    pub last_run: Option<LastRun>,
    /// Unix seconds of the last run that ended with exit 0.
    pub last_success: Option<i64>,
    /// Unix seconds of the last successful update.
    pub last_update: Option<i64>,
    pub updates_total: u64,
    /// Updates rolled back because the agent did not become healthy.
    pub rollbacks_total: u64,
    /// Runs that did not end with exit 0, by result word.
    pub failures: std::collections::BTreeMap<String, u64>,
    /// The target that failed its health check here and was rolled back;
    /// not retried until the target changes or the update is critical.
    pub failed_target: Option<FailedTarget>,
    /// Repairs made (see [`LastRun::repairs`]).
    pub repairs_total: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct FailedTarget {
    pub version: String,
    /// Unix seconds.
    pub time: i64,
    pub why: String,
}

pub fn path(system: &System) -> PathBuf {
    system.path(STATE_FILE)
}

pub fn load(path: &Path) -> State {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
            tracing::warn!(file = %path.display(), "ignoring an unreadable state file: {e}");
            State::default()
        }),
        Err(_) => State::default(),
    }
}

pub use backends::write_atomic;

pub fn save(path: &Path, state: &State) -> std::io::Result<()> {
    let mut s = state.clone();
    s.schema = 1;
    let mut bytes = serde_json::to_vec_pretty(&s).expect("state serializes");
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/state.json");
        let s = State {
            last_run: Some(LastRun {
                time: 5,
                result: "ok".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        save(&p, &s).unwrap();
        let back = load(&p);
        assert_eq!(back.last_run, s.last_run);
        assert_eq!(back.schema, 1);
        std::fs::write(&p, "{not json").unwrap();
        assert_eq!(load(&p), State::default());
        // no temporary files left behind
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }
}
