//! Execute a plan through the backend, with its journal: written before the
//! first change, each step marked done as it completes; on failure the
//! undos run in reverse (see [`super::plan::Plan::undo_for_failure`]). A
//! stop signal is honoured at step boundaries (see [`super::signals`]), and
//! a fail point sits at each of them (see [`super::failpoint`]).

use std::path::PathBuf;

use backends::{Backend, PkgName, PkgVersion, Source};

use crate::error::AppError;
use crate::health::{self, AgentBefore};
use crate::run::Env;
use crate::verify::{Check, Verdict};

use super::failpoint;
use super::journal::{self, Journal, Phase};
use super::plan::{Goal, Step, Undo};
use super::signals;

/// The prefix of an undo's error that is a stop signal, not a failure.
const INTERRUPTED: &str = "interrupted by ";

/// Everything the steps act on.
pub struct Ctx<'a> {
    pub env: &'a Env<'a>,
    pub backend: &'a dyn Backend,
    pub pkg: PkgName,
    pub source: Source,
    pub before: AgentBefore,
    pub check: Option<Check>,
    pub journal_path: PathBuf,
    /// The channel move this run made (its restore and keep need no
    /// re-reading of the file, which the hold may have edited since).
    pub moved: Option<backends::ChannelMove>,
    /// What the plan is for (set by [`Ctx::execute`]): a hold a repair
    /// makes is counted as one; a rollback restarts with `start`.
    pub goal: Goal,
}

/// What an executed plan achieved.
#[derive(Debug, Default)]
pub struct Done {
    /// The agent's version afterwards, when a step changed or checked it.
    pub installed_after: Option<String>,
    /// Why the new version was judged unhealthy (it was rolled back).
    pub failed_health: Option<String>,
    /// Repairs made, one line each.
    pub repaired: Vec<String>,
    /// The health check could not be made: the update is not verified.
    pub unverified: bool,
    /// The restart (and the health check after it) could not be made:
    /// systemd does not answer. The plan stays in the journal: the next
    /// run finishes it.
    pub deferred: bool,
    /// The update was counted by the run that started it (it installed,
    /// then deferred the restart): finishing it is not another one.
    pub counted_before: bool,
    /// This run was stopped after the update's install and counts it.
    pub counted_now: bool,
    /// The unfinished plan an earlier run left was abandoned: what, and why.
    pub abandoned: Option<String>,
    /// The FleetLock slot this host keeps (its update was rolled back).
    pub slot_kept: Option<crate::fleetlock::Kept>,
    /// The FleetLock slot was given back.
    pub slot_released: bool,
    /// A slot was asked for (the server may hold one for this host).
    pub slot_asked: bool,
    /// The lock server answered a release of this group and id: it holds
    /// no slot for them.
    pub clear: Option<crate::fleetlock::SlotId>,
    /// An update made while the agent was unhealthy did not cure it (it was
    /// rolled back).
    pub uncured: bool,
    /// A completed update under a slot, for the fleet's record
    /// (`fleet-report`): ok (verified healthy) or a failure of the release
    /// (rolled back on a host healthy before it).
    pub report: Option<Completed>,
    /// The fleet's record as this run saw it (read, then written).
    pub rollout: Option<crate::state::Rollout>,
    /// This run's update was halted on the failure rate.
    pub halted: bool,
    /// Writes to the fleet's record by result word.
    pub report_writes: std::collections::BTreeMap<String, u64>,
    /// Requests to the lock server, by operation and result word.
    pub lock_requests: crate::state::LockRequests,
    /// The lower target to record (`Some(None)`: none; `None`: the run
    /// decided nothing, the record is kept).
    pub lower_target: Option<Option<crate::decision::LowerSeen>>,
    /// The version server's answers disagreed (counted).
    pub disagreement: Option<String>,
}

/// One completed update of `to` in `group`, for the fleet's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub group: String,
    pub to: String,
    pub ok: bool,
}

/// Why a step failed.
pub(super) enum StepError {
    /// The update (or repair) failed.
    App(AppError),
    /// The new version did not become healthy (or did not restart).
    Unhealthy(String),
    /// A stop signal arrived during the health wait: nothing is undone,
    /// the step stays to do.
    Interrupted(&'static str),
    /// The step cannot be made now and is not a failure (the agent's state
    /// is unknown: systemd does not answer): it and the rest of the plan
    /// stay in the journal for the next run.
    Deferred(String),
    /// The step was definitely declined and changed nothing (the lock
    /// server answered "no slot"): nothing is undone, the plan is closed.
    Declined(AppError),
}

/// The FleetLock client for `group` as `id`, from the current
/// configuration; `None` when `fleet-lock` is no longer set.
pub(super) fn fleet_client(
    env: &Env,
    group: &str,
    id: &str,
) -> Result<Option<crate::fleetlock::client::Client>, AppError> {
    let config = crate::config::Config::load(&env.config_dir)?;
    let Some(mut s) = crate::fleetlock::settings(&config)? else {
        return Ok(None);
    };
    s.group = group.into();
    crate::fleetlock::client::Client::new(&s, id)
        .map(Some)
        .map_err(AppError::NoSlot)
}

/// A lock request, made again while its failure is transient
/// ([`crate::fleetlock::retry`]); a stop signal ends the pauses.
pub(super) fn lock_call(
    env: &Env,
    what: &'static str,
    done: &mut Done,
    mut op: impl FnMut() -> Result<(), crate::fleetlock::client::Error>,
) -> Result<(), crate::fleetlock::client::Error> {
    use crate::fleetlock::retry::{RELEASE_ATTEMPTS, TAKE_ATTEMPTS};
    let attempts = if what == "take" {
        TAKE_ATTEMPTS
    } else {
        RELEASE_ATTEMPTS
    };
    let counted = || {
        let r = op();
        let word = r.as_ref().err().map_or("ok", |e| e.word());
        *done
            .lock_requests
            .entry(what.to_string())
            .or_default()
            .entry(word.to_string())
            .or_default() += 1;
        r
    };
    crate::fleetlock::retry::retrying(attempts, counted, super::jitter::random, |d| {
        super::jitter::wait(env.clock, d).is_ok()
    })
    .map_err(|(e, n)| {
        if n > 1 {
            tracing::warn!("the lock server did not do it in {n} requests");
        }
        e
    })
}

impl Ctx<'_> {
    fn save(&self, j: &Journal) -> Result<(), AppError> {
        journal::save(&self.journal_path, j).map_err(|e| {
            AppError::UpdateFailed(format!(
                "cannot write the plan journal {}: {e}",
                self.journal_path.display()
            ))
        })
    }

    fn close(&self) {
        if let Err(e) = journal::remove(&self.journal_path) {
            tracing::warn!(file = %self.journal_path.display(), "cannot remove the plan journal: {e}");
        }
    }

    pub(super) fn backend_err(e: backends::Error) -> StepError {
        StepError::App(AppError::from_backend(e))
    }

    pub(super) fn installed_version(&self) -> Result<Option<PkgVersion>, StepError> {
        Ok(self
            .backend
            .installed(&self.pkg)
            .map_err(Self::backend_err)?
            .map(|i| i.version))
    }

    /// A lock request, made again while its failure is transient
    /// ([`crate::fleetlock::retry`]); a stop signal ends the pauses.
    pub(super) fn lock_call(
        &self,
        what: &'static str,
        done: &mut Done,
        op: impl FnMut() -> Result<(), crate::fleetlock::client::Error>,
    ) -> Result<(), crate::fleetlock::client::Error> {
        lock_call(self.env, what, done, op)
    }

    /// Give the FleetLock slot back. When the lock server cannot be told,
    /// the slot is recorded as kept in the state file (`status` shows it)
    /// and the next healthy run at the target gives it back: a run never
    /// fails, nor blocks the next ones, on it.
    pub(super) fn give_back(&self, group: &str, id: &str, when: &str, done: &mut Done) {
        let r = fleet_client(self.env, group, id)
            .map_err(|e| e.to_string())
            .and_then(|c| match c {
                None => Err("fleet-lock is no longer set".to_string()),
                Some(c) => self
                    .lock_call("release", done, || c.release())
                    .map_err(|e| e.to_string()),
            });
        match r {
            Ok(()) => {
                tracing::info!(group = %group, id = %id, "gave the FleetLock slot back");
                done.slot_released = true;
                done.clear = Some(crate::fleetlock::SlotId {
                    group: group.into(),
                    id: id.into(),
                });
            }
            Err(e) => {
                tracing::warn!(group = %group, id = %id, "cannot give the FleetLock slot back {when}: {e}; recorded as kept, the next healthy run at the target gives it back");
                done.slot_kept = Some(crate::fleetlock::Kept {
                    group: group.into(),
                    id: id.into(),
                    since: self.env.clock.now(),
                    why: format!("giving it back {when} failed: {e}"),
                });
            }
        }
    }

    fn undo(&mut self, u: &Undo, done: &mut Done) -> Result<(), String> {
        let b = self.backend;
        match u {
            Undo::RestoreChannel if self.moved.is_some() => {
                let m = self.moved.take().unwrap();
                m.restore()
                    .and_then(|()| m.remove_backup())
                    .map_err(|e| e.to_string())?;
                tracing::warn!("restored {} to {}", m.file.display(), m.from);
                self.source = b.reload_source(&self.source).map_err(|e| e.to_string())?;
            }
            Undo::RestoreChannel => match b
                .interrupted_channel_move(&self.source)
                .map_err(|e| e.to_string())?
            {
                Some(backends::channel::Interrupted::Undo(m)) => {
                    m.restore()
                        .and_then(|()| m.remove_backup())
                        .map_err(|e| e.to_string())?;
                    tracing::warn!("restored {} to {}", m.file.display(), m.from);
                    self.source = b.reload_source(&self.source).map_err(|e| e.to_string())?;
                }
                Some(backends::channel::Interrupted::Edited { file, backup }) => {
                    tracing::warn!(
                        "{} was edited since the channel move: left as it is, with {}",
                        file.display(),
                        backup.display()
                    );
                }
                None => {}
            },
            Undo::InstallPrevious { version } => {
                let v = PkgVersion::parse(version).map_err(|e| e.to_string())?;
                let back = self.put_back(&v)?;
                done.installed_after = Some(back.version.to_string());
            }
            Undo::RestartAgent => {
                // The agent ran before the update: start it again even when
                // the broken version left the unit failed or stuck at its
                // start limit (`try-restart` would leave it down).
                restart_as(self.env, health::Restart::Start)
                    .map_err(|e| format!("restarting the agent failed: {e}"))?;
                // The rollback restarted hard: no reload to hand over.
                if let Some(check) = self.check.as_mut() {
                    check.reloaded = None;
                }
            }
            Undo::ReleaseSlot { group, id } => {
                self.give_back(group, id, "after the update failed", done);
            }
            Undo::VerifyRollback => {
                if let Some(check) = &self.check {
                    match check.wait(&self.env.runner) {
                        Verdict::Unhealthy(again) => {
                            return Err(format!("it is not healthy either ({again})"))
                        }
                        Verdict::Interrupted(sig) => return Err(format!("{INTERRUPTED}{sig}")),
                        Verdict::Healthy(_) | Verdict::Unverifiable => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Execute `j`'s plan from its first step not done. The journal is
    /// written before the first step and after each one.
    pub fn execute(&mut self, j: Journal, done: &mut Done) -> Result<(), AppError> {
        self.goal = j.plan.goal.clone();
        if j.phase == Phase::Undoing {
            return self.undo_all(j, done);
        }
        self.save(&j)?;
        let r = self.forward(j, done);
        if let (Goal::Rollback { to, failed, .. }, Err(e)) = (&self.goal, &r) {
            if !matches!(e, AppError::Interrupted(_) | AppError::RolledBack(_)) {
                let msg = format!(
                    "{} {failed} did not become healthy; putting {to} back failed: {e}",
                    self.pkg
                );
                tracing::error!("ROLLBACK FAILED: {msg}");
                return Err(AppError::RollbackFailed(msg));
            }
        }
        r
    }

    /// Execute the steps of `j` not done yet, in order.
    fn forward(&mut self, mut j: Journal, done: &mut Done) -> Result<(), AppError> {
        while let Some(step) = j.next_step().cloned() {
            let i = j.done;
            let in_bookkeeping = matches!(step, Step::Hold | Step::DropOldHolds)
                && i > 0
                && j.plan.steps[i - 1].is_package_operation();
            if let (Some(sig), false) = (signals::received(), in_bookkeeping) {
                self.count_if_installed(&mut j, done);
                return Err(AppError::Interrupted(format!(
                    "{sig} received: stopped before {} ({}); the next run finishes the plan",
                    step.name(),
                    j.describe(&self.env.system)
                )));
            }
            let r = failpoint::hit(&format!("before-{}", step.name()))
                .map_err(|e| StepError::App(AppError::UpdateFailed(e)))
                .and_then(|()| {
                    tracing::debug!(step = step.name(), "{step}");
                    self.step(&step, done)
                });
            match r {
                Ok(()) => {
                    j.done += 1;
                    self.save_or_hold(&j, step.is_package_operation())?;
                    failpoint::hit(&format!("after-{}", step.name()))
                        .map_err(AppError::UpdateFailed)?;
                }
                Err(StepError::Declined(a)) => {
                    self.close();
                    return Err(a);
                }
                Err(StepError::Interrupted(sig)) => {
                    self.count_if_installed(&mut j, done);
                    return Err(AppError::Interrupted(format!(
                        "{sig} received during {}: stopped; the next run does it again ({})",
                        step.name(),
                        j.describe(&self.env.system)
                    )));
                }
                Err(StepError::Deferred(why)) => {
                    // The journal stays as it is: this step is still to do.
                    tracing::warn!(
                        "{why}; left in {}: {}",
                        self.journal_path.display(),
                        j.plan.steps[i..]
                            .iter()
                            .map(|s| s.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    done.deferred = true;
                    done.unverified = true;
                    // This run ends well and counts the update.
                    j.counted = matches!(j.plan.goal, Goal::Update { .. });
                    self.save(&j)?;
                    return Ok(());
                }
                Err(e) => {
                    let why = match &e {
                        StepError::App(a) | StepError::Declined(a) => a.to_string(),
                        StepError::Unhealthy(w) => w.clone(),
                        StepError::Interrupted(s) => s.to_string(),
                        StepError::Deferred(w) => w.clone(),
                    };
                    j.phase = Phase::Undoing;
                    j.failed = Some(i);
                    j.why = Some(why);
                    self.save(&j)?;
                    let undone = self.undo_all(j, done);
                    return match (e, undone) {
                        (StepError::App(a), Ok(_)) => Err(a),
                        (_, Err(u)) => Err(u),
                        (_, Ok(())) => Err(AppError::RollbackFailed(
                            "the rollback ended without a verdict".into(),
                        )),
                    };
                }
            }
        }
        self.close();
        if let Some(sig) = signals::received() {
            return Err(AppError::Interrupted(format!(
                "{sig} received: the plan was finished first ({} steps)",
                j.plan.steps.len()
            )));
        }
        if let Goal::Rollback { to, failed, .. } = &j.plan.goal {
            return Err(AppError::RolledBack(format!(
                "{} {failed} did not become healthy ({}); {to} is back; {failed} is not retried until the target changes or the update is critical",
                self.pkg,
                done.failed_health
                    .as_deref()
                    .unwrap_or("an earlier run found it so")
            )));
        }
        Ok(())
    }

    /// A run stopped by a signal after the update's install counts the
    /// update (the run that finishes the plan does not count it again).
    fn count_if_installed(&self, j: &mut Journal, done: &mut Done) {
        if matches!(j.plan.goal, Goal::Update { .. })
            && done.installed_after.is_some()
            && !j.counted
        {
            j.counted = true;
            done.counted_now = true;
            let _ = self.save(j);
        }
    }

    /// Save the journal; when that fails after a package operation (a full
    /// disk, a read-only file system), the agent is held first, whatever
    /// version is installed, then the failure is reported: the hold never
    /// depends on the bookkeeping.
    fn save_or_hold(&mut self, j: &Journal, after_package_op: bool) -> Result<(), AppError> {
        let Err(e) = self.save(j) else {
            return Ok(());
        };
        if after_package_op {
            let held = self.backend.is_held(&self.source, &self.pkg).and_then(|h| {
                if h {
                    Ok(())
                } else {
                    self.backend.hold(&self.source, &self.pkg)
                }
            });
            match held {
                Ok(()) => {
                    tracing::warn!(package = %self.pkg, "the plan journal cannot be written: the agent package is held at the installed version first")
                }
                Err(h) => {
                    tracing::error!(package = %self.pkg, "the plan journal cannot be written, and the agent package cannot be held: {h}")
                }
            }
        }
        Err(e)
    }

    /// Apply the undos of `j`'s failed step; the journal is closed
    /// afterwards (the undos are idempotent: a run killed meanwhile
    /// applies them again).
    fn undo_all(&mut self, j: Journal, done: &mut Done) -> Result<(), AppError> {
        let failed = j
            .failed
            .unwrap_or(j.done.min(j.plan.steps.len().saturating_sub(1)));
        let why = j.why.clone().unwrap_or_else(|| "no reason recorded".into());
        let undos = j.plan.undo_for_failure(failed);
        let rolls_back = j.plan.failure_rolls_back(failed);
        let (pkg, new, prev) = match &j.plan.goal {
            Goal::Update { from, to } => (self.pkg.to_string(), to.clone(), from.clone()),
            Goal::Repair | Goal::Rollback { .. } => {
                (self.pkg.to_string(), String::new(), String::new())
            }
        };
        if rolls_back {
            tracing::error!(package = %pkg, failed = %new, back_to = %prev, "{pkg} {new} did not become healthy ({why}); rolling back to {prev}");
            done.failed_health = Some(why.clone());
            // A rolled-back host keeps its FleetLock slot: once every slot
            // is kept, the broken release stops spreading.
            // (Taken by this plan, or by an earlier run of the update
            // this plan finishes: then only its release is planned.)
            let slot = j
                .plan
                .steps
                .iter()
                .find(|s| matches!(s, Step::TakeSlot { .. } | Step::ReleaseSlot { .. }));
            if j.plan.release_slot_on_rollback {
                // The host was unhealthy before: its failure says nothing
                // of the release (the undo gives the slot back).
                tracing::warn!("{pkg} {new} did not cure the agent, which was unhealthy before the update: counted as such; the FleetLock slot is given back (the host is sick, not necessarily the release)");
                done.uncured = true;
            } else if let Some(Step::TakeSlot { group, id } | Step::ReleaseSlot { group, id }) =
                slot
            {
                tracing::warn!(group = %group, id = %id, "keeping the FleetLock slot: {new} was rolled back here, so the rollout halts once every slot is kept (free the slot on the lock server once the release is fixed)");
                done.report = Some(Completed {
                    group: group.clone(),
                    to: new.clone(),
                    ok: false,
                });
                done.slot_kept = Some(crate::fleetlock::Kept {
                    group: group.clone(),
                    id: id.clone(),
                    since: self.env.clock.now(),
                    why: format!("{pkg} {new} was rolled back: {why}"),
                });
            }
        }
        for u in &undos {
            failpoint::hit("before-undo").map_err(AppError::UpdateFailed)?;
            if let Err(e) = self.undo(u, done) {
                if let Some(sig) = e.strip_prefix(INTERRUPTED) {
                    // The journal stays: the next run undoes again.
                    return Err(AppError::Interrupted(format!(
                        "{sig} received while undoing ({u}): stopped; the next run finishes the undo"
                    )));
                }
                self.close();
                if rolls_back && j.plan.release_slot_on_rollback && *u == Undo::VerifyRollback {
                    // Unhealthy before the update and after the rollback
                    // alike: the host is sick, the release is not to blame;
                    // its slot is given back all the same.
                    self.release_after_sick_rollback(&undos, done);
                }
                if rolls_back {
                    let msg = format!("{pkg} {new} did not become healthy ({why}); {u}: {e}");
                    tracing::error!("ROLLBACK FAILED: {msg}");
                    return Err(AppError::RollbackFailed(msg));
                }
                tracing::error!("after the failure, undoing ({u}) failed too: {e}");
                return Ok(());
            }
            tracing::info!("undone: {u}");
        }
        self.close();
        if rolls_back {
            return Err(AppError::RolledBack(format!(
                "{pkg} {new} did not become healthy ({why}); {prev} is back and healthy; {new} is not retried until the target changes or the update is critical"
            )));
        }
        Ok(())
    }
}

impl Ctx<'_> {
    /// The slot-release undos of `undos`, after a rollback whose check
    /// found the old version unhealthy too, on a host unhealthy before.
    fn release_after_sick_rollback(&mut self, undos: &[Undo], done: &mut Done) {
        for u in undos {
            if let Undo::ReleaseSlot { group, id } = u {
                self.give_back(
                    group,
                    id,
                    "after the rollback of a host unhealthy before and after",
                    done,
                );
            }
        }
    }
}

/// Restart the agent after a change to its package, as its state before
/// the change asks: a running agent is restarted, a failed one started, a
/// stopped one left stopped.
pub fn restart(env: &Env, before: AgentBefore) -> Result<(), String> {
    let Some(how) = before.restart() else {
        if before == AgentBefore::Stopped {
            tracing::info!(
                "not restarting {}: it was not running before the update",
                health::AGENT_UNIT
            );
        }
        return Ok(());
    };
    restart_as(env, how)
}

pub(super) fn restart_as(env: &Env, how: health::Restart) -> Result<(), String> {
    match health::restart_agent(&env.system, &env.runner, how) {
        Ok(true) => {
            tracing::info!("restarted {}", health::AGENT_UNIT);
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => Err(e),
    }
}
