//! The small state file (`/var/lib/teleport-upgrade/state.json`): what the
//! last run observed, decided and achieved. Written atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use backends::System;

pub const STATE_FILE: &str = "/var/lib/teleport-upgrade/state.json";

/// The state directory's default; v1's `TELEPORT_UPGRADE_STATE` moves it.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/teleport-upgrade";
pub const ENV_STATE: &str = "TELEPORT_UPGRADE_STATE";

/// The state directory (as a host path): `$TELEPORT_UPGRADE_STATE` when it
/// is an absolute path (as v1 reads it), else the default.
pub fn dir(system: &System) -> PathBuf {
    match std::env::var(ENV_STATE) {
        Ok(d) if d.starts_with('/') && !d.split('/').any(|s| s == "..") => system.path(d),
        _ => system.path(DEFAULT_STATE_DIR),
    }
}

/// The unhealthy marker of the shipped v1 updater (`<state dir>/state-unhealthy`):
/// on a host migrating from v1 it counts as this updater's marker.
pub fn v1_marker(system: &System) -> PathBuf {
    dir(system).join("state-unhealthy")
}

/// An enum of words, stored as the word (so the JSON schema keeps its
/// strings), with `Other` for a word this version does not know (a state
/// file written by another version is still read).
macro_rules! words {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $w:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($(#[$vm])* $v,)*
            /// A word this version does not know.
            Other(String),
        }

        impl $name {
            /// Every known value, in order.
            pub const ALL: &'static [$name] = &[$($name::$v,)*];

            /// The word.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$v => $w,)*
                    $name::Other(s) => s,
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $($w => $name::$v,)*
                    _ => $name::Other(s),
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name::from(s.to_string())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_string()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words! {
    /// How a run ended (the exit code's word; metrics label values).
    RunResult {
        Ok = "ok",
        NoTarget = "no-target",
        ConfigError = "config-error",
        Refused = "refused",
        UpdateFailed = "update-failed",
        RolledBack = "rolled-back",
        RollbackFailed = "rollback-failed",
        Locked = "locked",
        Interrupted = "interrupted",
    }
}

#[allow(clippy::derivable_impls)] // the enum is made by `words!`
impl Default for RunResult {
    fn default() -> Self {
        RunResult::Ok
    }
}

impl From<crate::error::Exit> for RunResult {
    fn from(e: crate::error::Exit) -> Self {
        use crate::error::Exit as E;
        match e {
            E::Ok => RunResult::Ok,
            E::NoTarget => RunResult::NoTarget,
            E::Usage => RunResult::ConfigError,
            E::Refused => RunResult::Refused,
            E::UpdateFailed => RunResult::UpdateFailed,
            E::Locked => RunResult::Locked,
            E::RolledBack => RunResult::RolledBack,
            E::RollbackFailed => RunResult::RollbackFailed,
            E::Interrupted => RunResult::Interrupted,
        }
    }
}

words! {
    /// What a run decided.
    Decided {
        StandDown = "stand-down",
        NoTarget = "no-target",
        UpToDate = "up-to-date",
        Update = "update",
        Wait = "wait",
        /// The installed version's executables were reinstalled.
        Repair = "repair",
        /// The run failed finishing a plan an earlier run left.
        Resume = "resume",
    }
}

impl From<&crate::decision::Decision> for Decided {
    fn from(d: &crate::decision::Decision) -> Self {
        Decided::from(d.word())
    }
}

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
    /// stand-down, no-target, up-to-date, update, wait, repair, resume
    /// (absent when the run failed before deciding).
    pub decision: Option<Decided>,
    pub detail: Option<String>,
    /// ok, no-target, config-error, refused, update-failed, locked,
    /// rolled-back, rollback-failed, interrupted.
    pub result: RunResult,
    pub exit_code: u8,
    /// Why the updated agent was judged unhealthy (then rolled back).
    pub failed_health: Option<String>,
    pub error: Option<String>,
    /// What the run repaired (hold put back, interrupted transaction
    /// finished, executables reinstalled), one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repairs: Vec<String>,
    /// The cluster's version (the proxy's `server_version`), when the
    /// cluster-compatibility guard learned it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_version: Option<String>,
    /// The guard's verdict on the target, as a sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_guard: Option<String>,
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
    dir(system).join("state.json")
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
    fn words_round_trip_and_unknown_words_are_kept() {
        for r in RunResult::ALL {
            let j = serde_json::to_string(r).unwrap();
            assert_eq!(j, format!("\"{}\"", r.as_str()));
            assert_eq!(&serde_json::from_str::<RunResult>(&j).unwrap(), r);
        }
        for e in [
            crate::error::Exit::Ok,
            crate::error::Exit::Usage,
            crate::error::Exit::Interrupted,
        ] {
            let w = RunResult::from(e);
            assert!(!matches!(w, RunResult::Other(_)), "{e:?}");
        }
        let odd: Decided = serde_json::from_str("\"later-word\"").unwrap();
        assert_eq!(odd, Decided::Other("later-word".into()));
        assert_eq!(serde_json::to_string(&odd).unwrap(), "\"later-word\"");
    }

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
