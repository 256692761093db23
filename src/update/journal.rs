//! The plan of the run in progress, on disk
//! (`/var/lib/teleport-upgrade/plan.json`): written atomically and fsynced
//! before the first change, each step marked done as it completes, removed
//! when the plan is finished or undone. A run that finds it finishes or
//! undoes that plan before anything else (see [`super::execute::resume`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use backends::System;

use super::plan::{Plan, Step};

pub const JOURNAL_FILE: &str = "/var/lib/teleport-upgrade/plan.json";

/// Where the plan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Steps are being executed in order.
    Forward,
    /// A step failed (see `failed`): its undos are being applied.
    Undoing,
}

/// The agent as systemd saw it before the plan started (how to restart it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Before {
    Running,
    Failed,
    Stopped,
    NoSystemd,
    Unknown,
}

impl From<crate::health::AgentBefore> for Before {
    fn from(b: crate::health::AgentBefore) -> Self {
        use crate::health::AgentBefore as A;
        match b {
            A::Running => Before::Running,
            A::Failed => Before::Failed,
            A::Stopped => Before::Stopped,
            A::NoSystemd => Before::NoSystemd,
            A::Unknown => Before::Unknown,
        }
    }
}

impl From<Before> for crate::health::AgentBefore {
    fn from(b: Before) -> Self {
        use crate::health::AgentBefore as A;
        match b {
            Before::Running => A::Running,
            Before::Failed => A::Failed,
            Before::Stopped => A::Stopped,
            Before::NoSystemd => A::NoSystemd,
            Before::Unknown => A::Unknown,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub schema: u32,
    /// Unix seconds when the plan was written.
    pub time: i64,
    /// run or force.
    pub command: String,
    pub package: String,
    pub agent_before: Before,
    pub plan: Plan,
    /// How many steps are done (they are done in order).
    pub done: usize,
    pub phase: Phase,
    /// The step that failed, and why.
    pub failed: Option<usize>,
    pub why: Option<String>,
    /// The run that wrote it counted the update already (it installed,
    /// then deferred the restart): finishing the plan is not another one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub counted: bool,
}

impl Journal {
    pub fn new(time: i64, command: &str, package: &str, before: Before, plan: Plan) -> Journal {
        Journal {
            schema: 1,
            time,
            command: command.into(),
            package: package.into(),
            agent_before: before,
            plan,
            done: 0,
            phase: Phase::Forward,
            failed: None,
            why: None,
            counted: false,
        }
    }

    /// The next step to execute, when going forward.
    pub fn next_step(&self) -> Option<&Step> {
        self.plan.steps.get(self.done)
    }

    /// One line for the log, `dry-run` and `status`.
    pub fn describe(&self, system: &System) -> String {
        let goal = match &self.plan.goal {
            super::plan::Goal::Update { from, to } => {
                format!("update of {} from {from} to {to}", self.package)
            }
            super::plan::Goal::Repair => format!("repair of {}", self.package),
        };
        let at = match (self.phase, self.next_step()) {
            (Phase::Undoing, _) => format!(
                "undoing it after {} failed ({})",
                self.failed
                    .and_then(|i| self.plan.steps.get(i))
                    .map(|s| s.name())
                    .unwrap_or("a step"),
                self.why.as_deref().unwrap_or("no reason recorded")
            ),
            (Phase::Forward, Some(s)) => format!(
                "{} of {} steps done, next: {}",
                self.done,
                self.plan.steps.len(),
                s.name()
            ),
            (Phase::Forward, None) => "all steps done, not yet closed".into(),
        };
        format!(
            "{goal} ({} by `{}` at {}; {})",
            system.display_path(&path(system)),
            self.command,
            crate::schedule::rfc3339(self.time),
            at
        )
    }
}

pub fn path(system: &System) -> PathBuf {
    // In the state directory (`TELEPORT_UPGRADE_STATE` moves it).
    let _ = JOURNAL_FILE;
    crate::state::dir(system).join("plan.json")
}

/// The journal left by an earlier run, if any. A journal that does not
/// parse is kept aside (`plan.json.corrupt`) and reported: the run then
/// converges from what it observes.
pub fn load(path: &Path) -> Result<Option<Journal>, String> {
    load_as(path, true)
}

/// [`load`] for `status`, which changes nothing: a journal that does not
/// parse is reported and left where it is.
pub fn peek(path: &Path) -> Result<Option<Journal>, String> {
    load_as(path, false)
}

fn load_as(path: &Path, keep_aside: bool) -> Result<Option<Journal>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    match serde_json::from_slice::<Journal>(&bytes) {
        Ok(j) if j.schema == 1 => Ok(Some(j)),
        Ok(j) => Err(format!(
            "{} has schema {}, not 1: left as it is",
            path.display(),
            j.schema
        )),
        Err(e) if !keep_aside => Err(format!(
            "{} does not parse ({e}); the next run keeps it aside and converges from what it observes",
            path.display()
        )),
        Err(e) => {
            let aside = path.with_extension("json.corrupt");
            let _ = std::fs::rename(path, &aside);
            Err(format!(
                "{} does not parse ({e}); kept aside as {}",
                path.display(),
                aside.display()
            ))
        }
    }
}

/// Write the journal atomically (fsynced, as [`crate::state::write_atomic`]).
pub fn save(path: &Path, j: &Journal) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(j).expect("the journal serializes");
    bytes.push(b'\n');
    crate::state::write_atomic(path, &bytes)
}

/// The plan is finished or undone.
pub fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => {
            if let Some(d) = path.parent().and_then(|d| std::fs::File::open(d).ok()) {
                let _ = d.sync_all();
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::plan::{Facts, Plan};
    use super::*;

    #[test]
    fn round_trip_and_corrupt() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("plan.json");
        assert_eq!(load(&p), Ok(None));
        let plan = Plan::update(
            "15.4.2",
            "15.4.3",
            Facts {
                restart: false,
                verify: true,
                channel_to: None,
            },
        );
        let mut j = Journal::new(5, "run", "teleport-ent", Before::NoSystemd, plan);
        j.done = 2;
        save(&p, &j).unwrap();
        assert_eq!(load(&p), Ok(Some(j.clone())));
        assert_eq!(j.next_step().map(|s| s.name()), Some("install"));
        std::fs::write(&p, "{torn").unwrap();
        assert!(peek(&p).unwrap_err().contains("does not parse"));
        assert!(p.exists(), "status changes nothing");
        let e = load(&p).unwrap_err();
        assert!(e.contains("kept aside"), "{e}");
        assert!(!p.exists() && d.path().join("plan.json.corrupt").exists());
        remove(&p).unwrap();
    }
}
