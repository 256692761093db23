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
            super::plan::Goal::Rollback { to, failed, .. } => {
                format!("rollback of {} to {to} (after {failed})", self.package)
            }
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

/// The journal left by an earlier run, if any. A journal that cannot be
/// used (not a regular file, too large, does not parse, steps it does not
/// have) is set aside (`plan.json.corrupt-<unix time>`) and reported: the
/// run then converges from what it observes.
pub fn load(path: &Path) -> Result<Option<Journal>, String> {
    load_as(path, true)
}

/// [`load`] for `status`, which changes nothing: a journal that cannot be
/// used is reported and left where it is.
pub fn peek(path: &Path) -> Result<Option<Journal>, String> {
    load_as(path, false)
}

/// Why `j` cannot be followed: a step index past its steps, a schema this
/// version does not know.
fn inconsistent(j: &Journal) -> Option<String> {
    let n = j.plan.steps.len();
    if j.schema != 1 {
        return Some(format!("it has schema {}, not 1", j.schema));
    }
    if j.done > n {
        return Some(format!("it says {} steps are done, of {n}", j.done));
    }
    match (j.phase, j.failed) {
        (_, Some(i)) if i >= n => Some(format!("its failed step {i} is past its {n} steps")),
        (Phase::Undoing, None) => Some("it is undoing, but names no failed step".into()),
        _ => None,
    }
}

fn load_as(path: &Path, keep_aside: bool) -> Result<Option<Journal>, String> {
    let bad = match crate::fsread::read_bounded(path, crate::fsread::STATE_CAP) {
        Ok(None) => return Ok(None),
        Err(e) => e.to_string(),
        Ok(Some(bytes)) => match serde_json::from_slice::<Journal>(&bytes) {
            Ok(j) => match inconsistent(&j) {
                None => return Ok(Some(j)),
                Some(why) => why,
            },
            Err(e) => format!("it does not parse ({e})"),
        },
    };
    if !keep_aside {
        return Err(format!(
            "{}: {bad}; the next run sets it aside and converges from what it observes",
            path.display()
        ));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let aside = path.with_file_name(format!("plan.json.corrupt-{now}"));
    match std::fs::rename(path, &aside) {
        Ok(()) => Err(format!(
            "{}: {bad}; set aside as {}",
            path.display(),
            aside.display()
        )),
        Err(e) => Err(format!(
            "{}: {bad}; it cannot be set aside ({e}), and is ignored",
            path.display()
        )),
    }
}

impl Journal {
    /// The plan as the decision sees it.
    pub fn unfinished(&self) -> crate::decision::Unfinished {
        use super::plan::Goal;
        use crate::decision::Unfinished as U;
        let other = |what: &str| U::Other {
            what: format!("{what} ({})", self.plan.steps.len()),
        };
        let version = |v: &str| backends::PkgVersion::parse(v).ok();
        match (&self.plan.goal, self.phase) {
            (Goal::Update { from, to }, Phase::Forward) => match version(from) {
                Some(from) => U::Update {
                    from,
                    to: to.clone(),
                    counted: self.counted,
                    slot: self.slot_taken().is_some(),
                    done: self.plan.steps[..self.done.min(self.plan.steps.len())]
                        .iter()
                        .map(|s| s.name().to_string())
                        .collect(),
                },
                None => other("an update from an invalid version"),
            },
            (Goal::Update { from, to }, Phase::Undoing)
                if self.failed.is_some_and(|i| self.plan.failure_rolls_back(i)) =>
            {
                match version(from) {
                    Some(from) => U::RollingBack {
                        from,
                        to: to.clone(),
                        why: self
                            .why
                            .clone()
                            .unwrap_or_else(|| "no reason recorded".into()),
                    },
                    None => other("a rollback to an invalid version"),
                }
            }
            (Goal::Rollback { to, failed, .. }, _) => match version(to) {
                Some(from) => U::RollingBack {
                    from,
                    to: failed.clone(),
                    why: self
                        .why
                        .clone()
                        .unwrap_or_else(|| "its rollback was interrupted".into()),
                },
                None => other("a rollback to an invalid version"),
            },
            (Goal::Update { .. }, Phase::Undoing) => U::Other {
                what: format!(
                    "an update that failed ({}) and was being undone",
                    self.why.as_deref().unwrap_or("no reason recorded")
                ),
            },
            (Goal::Repair, _) => U::Other {
                what: "a repair".into(),
            },
        }
    }

    /// The FleetLock slot the plan took (its take-slot step is done), if
    /// any: given back when the plan is abandoned.
    pub fn slot_taken(&self) -> Option<(String, String)> {
        self.plan.steps[..self.done.min(self.plan.steps.len())]
            .iter()
            .find_map(|s| match s {
                Step::TakeSlot { group, id } => Some((group.clone(), id.clone())),
                _ => None,
            })
    }
}

/// Write the journal atomically (fsynced, as [`crate::state::write_atomic`]).
pub fn save(path: &Path, j: &Journal) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(j).expect("the journal serializes");
    bytes.push(b'\n');
    if durable(j) {
        crate::state::write_atomic(path, &bytes)
    } else {
        crate::state::write_unsynced(path, &bytes)
    }
}

/// Whether this record of `j` must reach the disk before the run goes on
/// (fsync of the file and its directory): around a step that changes the
/// agent's package or its hold (the last step done, or the next), and
/// while undoing. The records between (after a refresh, a space check, a
/// health check) are renamed into place without waiting for the disk: a
/// kill keeps them (the page cache), and a power loss at worst leaves the
/// record before, whose next steps are done again (each is idempotent).
pub fn durable(j: &Journal) -> bool {
    let changes = |s: &Step| {
        matches!(
            s,
            Step::Install { .. } | Step::Reinstall { .. } | Step::Hold | Step::DropOldHolds
        )
    };
    j.phase != Phase::Forward
        || j.done == 0
        || j.plan.steps.get(j.done).is_some_and(changes)
        || j.plan.steps.get(j.done - 1).is_some_and(changes)
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

    /// Which records of an update wait for the disk: the plan itself,
    /// those next to the install and the hold, every undoing one.
    #[test]
    fn durable_records_are_those_around_package_changes() {
        let plan = Plan::update(
            "15.4.2",
            "15.4.3",
            Facts {
                restart: true,
                verify: true,
                channel_to: None,
                swaps_holds: false,
            },
            &crate::run::Trusted::for_tests(),
        );
        let names: Vec<&str> = plan.steps.iter().map(|s| s.name()).collect();
        let mut j = Journal::new(5, "run", "teleport-ent", Before::NoSystemd, plan);
        let mut synced = Vec::new();
        for done in 0..=j.plan.steps.len() {
            j.done = done;
            if durable(&j) {
                synced.push(if done == 0 { "start" } else { names[done - 1] });
            }
        }
        assert_eq!(
            (names.join(" "), synced.join(" ")),
            (
                "finish-transaction refresh check-space keep-previous install hold check-install restart verify drop-previous".to_string(),
                "start keep-previous install hold".to_string()
            )
        );
        j.phase = Phase::Undoing;
        assert!(durable(&j));
    }

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
                swaps_holds: false,
            },
            &crate::run::Trusted::for_tests(),
        );
        let mut j = Journal::new(5, "run", "teleport-ent", Before::NoSystemd, plan);
        j.done = 4;
        save(&p, &j).unwrap();
        assert_eq!(load(&p), Ok(Some(j.clone())));
        assert_eq!(j.next_step().map(|s| s.name()), Some("install"));
        std::fs::write(&p, "{torn").unwrap();
        assert!(peek(&p).unwrap_err().contains("does not parse"));
        assert!(p.exists(), "status changes nothing");
        let e = load(&p).unwrap_err();
        assert!(e.contains("set aside"), "{e}");
        assert!(!p.exists());
        remove(&p).unwrap();
    }
}
