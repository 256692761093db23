//! A decision turned into ordered steps, each with its undo. `dry-run`
//! prints this plan; `run` executes this same plan (see
//! [`super::execute`]), so what a dry run shows cannot drift from what runs.
//!
//! The rules, tested as a table below:
//! - an update is: finish an interrupted transaction, refresh, install
//!   (moving the channel when the configured one does not offer the
//!   target), hold, restart, verify, keep the channel move;
//! - a repair (the agent is where it should be, but not held, half
//!   installed, or its executables damaged) is the subset that fixes it;
//! - a step that fails is undone by its own partial undo, then the undos of
//!   the done steps in reverse; only a failed restart or health check puts
//!   the previous version back (the rollback), then restarts and checks it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::decision::Outcome;
pub use crate::decision::Repairs;
use crate::run::Trusted;

/// One step of a plan. Every step is idempotent: a run that resumes a plan
/// executes a step again when its "done" mark was not written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// Wait a random delay up to `max_seconds` (the proxy's
    /// `agent_update_jitter_seconds`, capped): spreads a fleet's routine
    /// updates over the start of the window.
    Jitter { max_seconds: u64 },
    /// Finish an interrupted package transaction (`dpkg --configure -a`).
    FinishTransaction,
    /// Refresh the metadata of the agent's repository only.
    Refresh,
    /// Check, before the download, that `to` fits in the free space where
    /// its download and its files go (sizes from the repository's
    /// metadata, see [`super::space`]); refuse the install when it does
    /// not. Changes nothing.
    CheckSpace { to: String },
    /// Keep the package file of `version` (the installed one) in the state
    /// directory, for a rollback without the network (see
    /// [`super::kept`]). Best effort: never fails the plan.
    KeepPrevious { version: String },
    /// Drop the kept package file: the new version is verified.
    DropPrevious,
    /// Install exactly `to` (the agent is at `from`). When the configured
    /// channel does not offer it and `channel_to` is set, move the
    /// repository definition to `stable/v<channel_to>` first (the backup
    /// beside it is the move's own record) and try again.
    Install {
        from: String,
        to: String,
        channel_to: Option<u64>,
    },
    /// Reinstall the installed `version` (its executables are damaged).
    Reinstall { version: String },
    /// Hold (apt), versionlock/exclude (dnf), lock (zypper) the agent.
    /// A hold that names one version (dnf's versionlock) adds the new
    /// version's lock here and keeps the old one: the old goes in
    /// [`Step::DropOldHolds`], so a run killed between the two finishes
    /// the swap when it resumes (and a no-op run that finds both judges
    /// the agent not held, and converges).
    Hold,
    /// Check that the package is fully installed (no maintainer script
    /// failed) and that the binaries the host runs are its own: its
    /// `/usr/local/bin` links and the unit's `ExecStart` (see
    /// [`crate::layout`]). A failure is a failed update: rolled back.
    CheckInstall,
    /// Delete the updater's own holds of other versions than the installed
    /// one (dnf's versionlock lines it wrote; nothing else): the second
    /// half of a hold swap. Planned only where the hold names a version.
    DropOldHolds,
    /// Restart the agent as it was before (`try-restart`, or `start` when
    /// it had failed).
    Restart,
    /// Reload the running agent (`systemctl reload`: Teleport's graceful
    /// restart, open sessions kept; `try-restart` when the unit cannot
    /// reload or the reload fails). Replaces `Restart` in a routine update
    /// under `restart-mode` = `reload`.
    Reload,
    /// Wait for the agent to become healthy.
    Verify,
    /// Keep a channel move the install needed (drop its backup).
    KeepChannel,
    /// Take a FleetLock slot of `group` as `id` (before the first change
    /// of a non-critical update; see [`crate::fleetlock`]).
    TakeSlot { group: String, id: String },
    /// Give the FleetLock slot back: the new version verified healthy.
    ReleaseSlot { group: String, id: String },
}

/// What undoes a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "undo", rename_all = "kebab-case")]
pub enum Undo {
    /// Put the repository definition back from the channel move's backup.
    RestoreChannel,
    /// Install `version` (the one before) again, and hold it.
    InstallPrevious { version: String },
    /// Start the agent again after the rollback.
    RestartAgent,
    /// Check that the version before is healthy.
    VerifyRollback,
    /// Give the FleetLock slot back (only when nothing was changed yet: a
    /// rolled-back host keeps its slot).
    ReleaseSlot { group: String, id: String },
}

impl Step {
    /// The step's name, also the name of its fail points
    /// (`before-<name>`, `after-<name>`).
    pub fn name(&self) -> &'static str {
        match self {
            Step::Jitter { .. } => "jitter",
            Step::FinishTransaction => "finish-transaction",
            Step::Refresh => "refresh",
            Step::CheckSpace { .. } => "check-space",
            Step::KeepPrevious { .. } => "keep-previous",
            Step::DropPrevious => "drop-previous",
            Step::Install { .. } => "install",
            Step::Reinstall { .. } => "reinstall",
            Step::Hold => "hold",
            Step::CheckInstall => "check-install",
            Step::DropOldHolds => "drop-old-holds",
            Step::Restart => "restart",
            Step::Reload => "reload",
            Step::Verify => "verify",
            Step::KeepChannel => "keep-channel",
            Step::TakeSlot { .. } => "take-slot",
            Step::ReleaseSlot { .. } => "release-slot",
        }
    }

    /// Whether the step runs the package manager (a signal received
    /// meanwhile lets it finish, see [`super::signals`]).
    pub fn is_package_operation(&self) -> bool {
        matches!(
            self,
            Step::FinishTransaction
                | Step::Refresh
                | Step::KeepPrevious { .. }
                | Step::Install { .. }
                | Step::Reinstall { .. }
                | Step::Hold
                | Step::DropOldHolds
        )
    }

    /// What undoes this step once it is done.
    pub fn undo(&self) -> Vec<Undo> {
        match self {
            Step::Install {
                from, channel_to, ..
            } => {
                let mut v = Vec::new();
                if channel_to.is_some() {
                    v.push(Undo::RestoreChannel);
                }
                v.push(Undo::InstallPrevious {
                    version: from.clone(),
                });
                v
            }
            Step::TakeSlot { group, id } => vec![Undo::ReleaseSlot {
                group: group.clone(),
                id: id.clone(),
            }],
            _ => Vec::new(),
        }
    }

    /// What undoes this step when it failed part-way: the package manager
    /// leaves a failed transaction as it was, so only a channel move the
    /// step made is put back.
    pub fn partial_undo(&self) -> Vec<Undo> {
        match self {
            Step::Install {
                channel_to: Some(_),
                ..
            } => vec![Undo::RestoreChannel],
            // The server may have granted the slot before the answer was
            // lost: giving it back is a no-op when it did not.
            Step::TakeSlot { .. } => self.undo(),
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Jitter { max_seconds } => {
                write!(f, "wait a random delay of up to {max_seconds} s (the proxy's jitter)")
            }
            Step::FinishTransaction => {
                f.write_str("finish an interrupted package transaction, if any")
            }
            Step::Refresh => f.write_str("refresh the agent's repository"),
            Step::CheckSpace { to } => write!(
                f,
                "check that {to} fits in the free space of the package cache and of the agent's filesystem"
            ),
            Step::Install {
                from,
                to,
                channel_to: None,
            } => write!(f, "install {to} (from {from})"),
            Step::Install {
                from,
                to,
                channel_to: Some(m),
            } => write!(
                f,
                "install {to} (from {from}); when the channel does not offer it, move it to stable/v{m} first"
            ),
            Step::Reinstall { version } => write!(f, "reinstall {version}"),
            Step::KeepPrevious { version } => write!(
                f,
                "keep the package file of {version} for a rollback without the network"
            ),
            Step::DropPrevious => f.write_str("drop the kept package file of the version before"),
            Step::Hold => f.write_str("hold the agent package"),
            Step::CheckInstall => f.write_str(
                "check that it is fully installed and that the binaries systemd runs are its own",
            ),
            Step::DropOldHolds => {
                f.write_str("delete the updater's own holds of other versions")
            }
            Step::Restart => f.write_str("restart the agent"),
            Step::Reload => f.write_str(
                "reload the agent (graceful restart: open sessions kept; try-restart if it cannot reload)",
            ),
            Step::Verify => f.write_str("wait for the agent to be healthy"),
            Step::KeepChannel => f.write_str("keep the channel move (drop its backup)"),
            Step::TakeSlot { group, id } => {
                write!(f, "take a FleetLock slot of group {group} (as {id})")
            }
            Step::ReleaseSlot { group, .. } => {
                write!(f, "give the FleetLock slot of group {group} back")
            }
        }
    }
}

impl fmt::Display for Undo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Undo::RestoreChannel => f.write_str("restore the repository definition"),
            Undo::InstallPrevious { version } => write!(f, "install {version} again and hold it"),
            Undo::RestartAgent => f.write_str("start the agent again"),
            Undo::VerifyRollback => f.write_str("check that it is healthy"),
            Undo::ReleaseSlot { group, .. } => {
                write!(f, "give the FleetLock slot of group {group} back")
            }
        }
    }
}

/// What the plan builder needs besides the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// The agent is restarted after a change to its package.
    pub restart: bool,
    /// The new version's health is checked (and rolled back on failure).
    pub verify: bool,
    /// The channel can move to the target's major (`stable/vN` channels).
    pub channel_to: Option<u64>,
    /// The hold names a version (dnf's versionlock): moving it is a swap,
    /// [`Step::Hold`] then [`Step::DropOldHolds`].
    pub swaps_holds: bool,
}

/// What a plan is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Goal {
    Update {
        from: String,
        to: String,
    },
    Repair,
    /// Put `to` back after `failed` did not become healthy (an earlier
    /// run's rollback, made again): it has no rollback of its own.
    Rollback {
        from: String,
        to: String,
        failed: String,
    },
}

/// Ordered steps and what they are for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub goal: Goal,
    pub steps: Vec<Step>,
    /// A rollback gives the FleetLock slot back (the host was unhealthy
    /// before the update: see `UpdateSpec::release_slot_on_rollback`);
    /// otherwise a rolled-back host keeps it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub release_slot_on_rollback: bool,
}

impl Plan {
    /// The plan of an update from `from` to `to`: only with the proof
    /// that the trust audit of the source it installs from passed.
    pub fn update(from: &str, to: &str, f: Facts, _trusted: &Trusted) -> Plan {
        let mut steps = vec![
            Step::FinishTransaction,
            Step::Refresh,
            Step::CheckSpace { to: to.into() },
            Step::KeepPrevious {
                version: from.into(),
            },
            Step::Install {
                from: from.into(),
                to: to.into(),
                channel_to: f.channel_to,
            },
            Step::Hold,
        ];
        if f.swaps_holds {
            // right after the hold: the two halves of the swap together
            steps.push(Step::DropOldHolds);
        }
        steps.push(Step::CheckInstall);
        if f.restart {
            steps.push(Step::Restart);
        }
        if f.verify {
            steps.push(Step::Verify);
        }
        steps.push(Step::DropPrevious);
        if f.channel_to.is_some() {
            steps.push(Step::KeepChannel);
        }
        Plan {
            goal: Goal::Update {
                from: from.into(),
                to: to.into(),
            },
            steps,
            release_slot_on_rollback: false,
        }
    }

    /// The same plan after a jitter wait of up to `max_seconds`.
    pub fn after_jitter(mut self, max_seconds: u64) -> Plan {
        self.steps.insert(0, Step::Jitter { max_seconds });
        self
    }

    /// Whether the plan installs anything (an install, a reinstall, or a
    /// rollback's install of the version before).
    pub fn installs(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s, Step::Install { .. } | Step::Reinstall { .. }))
    }

    /// The same plan with the restart made a graceful reload.
    pub fn reload_instead_of_restart(mut self) -> Plan {
        for s in &mut self.steps {
            if *s == Step::Restart {
                *s = Step::Reload;
            }
        }
        self
    }

    fn restarts(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s, Step::Restart | Step::Reload))
    }

    /// The plan of putting `to` back after `failed` failed its health
    /// check (the agent is at `from`): install, hold, restart, check; a
    /// failure is the rollback's failure, nothing is undone.
    pub fn rollback(from: &str, to: &str, failed: &str, f: Facts, trusted: &Trusted) -> Plan {
        let mut plan = Plan::update(
            from,
            to,
            Facts {
                channel_to: None,
                ..f
            },
            trusted,
        );
        // Its install is the version before's own; nothing to keep.
        plan.steps
            .retain(|s| !matches!(s, Step::KeepPrevious { .. } | Step::DropPrevious));
        plan.goal = Goal::Rollback {
            from: from.into(),
            to: to.into(),
            failed: failed.into(),
        };
        plan
    }

    /// The plan of the repairs at `installed`; `None` when nothing needs
    /// repair. A reinstall downloads: it is planned only with the proof
    /// that the trust audit passed.
    pub fn repair(
        installed: &str,
        r: &Repairs,
        f: Facts,
        trusted: Option<&Trusted>,
    ) -> Option<Plan> {
        let r = &Repairs {
            damaged: r.damaged.clone().filter(|_| trusted.is_some()),
            ..r.clone()
        };
        if r.is_empty() {
            return None;
        }
        let mut steps = Vec::new();
        if r.interrupted.is_some() {
            steps.push(Step::FinishTransaction);
        }
        if r.damaged.is_some() {
            steps.push(Step::Refresh);
            steps.push(Step::Reinstall {
                version: installed.into(),
            });
        }
        // Also after a reinstall or a finished transaction: both may leave
        // the package unheld.
        steps.push(Step::Hold);
        if f.swaps_holds {
            steps.push(Step::DropOldHolds);
        }
        if r.damaged.is_some() && f.restart {
            steps.push(Step::Restart);
        }
        Some(Plan {
            goal: Goal::Repair,
            steps,
            release_slot_on_rollback: false,
        })
    }

    /// The same plan under a FleetLock slot: take it before the first
    /// step, give it back right after the health check (after the last
    /// step when health is not checked).
    pub fn with_slot(mut self, group: &str, id: &str) -> Plan {
        let (group, id) = (group.to_string(), id.to_string());
        let at = match self.steps.iter().position(|s| *s == Step::Verify) {
            Some(v) => v + 1,
            None => self.steps.len(),
        };
        self.steps.insert(
            at,
            Step::ReleaseSlot {
                group: group.clone(),
                id: id.clone(),
            },
        );
        self.steps.insert(0, Step::TakeSlot { group, id });
        self
    }

    /// Whether a failure of step `i` is the new version failing its
    /// health check (a failed restart counts when health is checked), or
    /// its install check (a maintainer script failed, or the binaries the
    /// host runs are not the package's): then
    /// the previous version is put back, rather than the update failing.
    pub fn failure_rolls_back(&self, i: usize) -> bool {
        if !matches!(self.goal, Goal::Update { .. }) {
            return false;
        }
        let verified = self.steps.contains(&Step::Verify);
        match self.steps.get(i) {
            Some(Step::Verify | Step::CheckInstall) => true,
            Some(Step::Restart | Step::Reload) => verified,
            _ => false,
        }
    }

    /// The undos, in order, when step `failed` fails (the steps before it
    /// are done). Empty when nothing needs undoing.
    pub fn undo_for_failure(&self, failed: usize) -> Vec<Undo> {
        let step = &self.steps[failed];
        let mut v = step.partial_undo();
        let full = self.failure_rolls_back(failed);
        let mut release_last = None;
        // Nothing of the agent was changed (nor attempted) before the
        // failing step: only then is a FleetLock slot given back.
        let unchanged = !self.steps[..=failed]
            .iter()
            .any(|s| matches!(s, Step::Install { .. } | Step::Reinstall { .. }));
        for s in self.steps[..failed].iter().rev() {
            for u in s.undo() {
                // Before the health check, a failure keeps the version the
                // package manager installed (exit 4); a channel move is
                // always put back; a slot is kept once anything changed.
                let wanted = match u {
                    // Given back on a rollback too when the host was
                    // unhealthy before (after the rollback's check).
                    Undo::ReleaseSlot { .. }
                        if !unchanged && full && self.release_slot_on_rollback =>
                    {
                        release_last = Some(u.clone());
                        false
                    }
                    Undo::ReleaseSlot { .. } => unchanged,
                    Undo::RestoreChannel => true,
                    _ => full,
                };
                if wanted && !v.contains(&u) {
                    v.push(u);
                }
            }
        }
        if v.iter().any(|u| matches!(u, Undo::InstallPrevious { .. })) {
            // A rollback restarts hard, also after a reload.
            if self.restarts() {
                v.push(Undo::RestartAgent);
            }
            if self.steps.contains(&Step::Verify) {
                v.push(Undo::VerifyRollback);
            }
        }
        v.extend(release_last);
        v
    }
}

/// The plan of `o`, or `None` when nothing is to be done. The update runs
/// when the decision is one, no gate refused it and the trust audit passed
/// (`trusted`); otherwise the fallback repairs converge the host. A FleetLock
/// slot is taken as `slot` (group, id) when the decision says so.
pub fn build(
    o: &Outcome,
    installed: &str,
    f: Facts,
    slot: Option<(&str, &str)>,
    trusted: Option<&Trusted>,
) -> Option<Plan> {
    if o.hands_off {
        return None;
    }
    match (&o.update, o.blocked(), trusted) {
        (Some(u), false, Some(t)) => {
            let mut plan = match &u.rollback_of {
                Some(failed) => Plan::rollback(u.from.as_str(), &u.to, failed, f, t),
                None => Plan::update(u.from.as_str(), &u.to, f, t),
            };
            if u.reload.is_ok() {
                plan = plan.reload_instead_of_restart();
            }
            if let (true, Some((group, id))) = (u.slot, slot) {
                plan = plan.with_slot(group, id);
                plan.release_slot_on_rollback = u.release_slot_on_rollback;
                if u.slot_held {
                    plan.steps.retain(|s| !matches!(s, Step::TakeSlot { .. }));
                }
            }
            if let Some(j) = u.jitter {
                plan = plan.after_jitter(j);
            }
            plan.steps.retain(|s| !u.skip.contains(&s.name()));
            Some(plan)
        }
        (Some(_), _, _) => Plan::repair(installed, &o.fallback, f, None),
        (None, _, t) => Plan::repair(installed, &o.repairs, f, t),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
