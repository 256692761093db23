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
use super::plan::{Step, Undo};
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
    /// The plan is a repair (set by [`Ctx::execute`]): a hold it makes is
    /// counted as one.
    pub repairing: bool,
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
    /// A resumed plan finished an update (counted as one).
    pub resumed_update: bool,
    /// The FleetLock slot this host keeps (its update was rolled back).
    pub slot_kept: Option<crate::fleetlock::Kept>,
    /// The FleetLock slot was given back.
    pub slot_released: bool,
}

/// Why a step failed.
enum StepError {
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
}

/// The restart of an agent whose state is unknown waits for the next run.
fn defer_if_unknown(before: AgentBefore) -> Result<(), StepError> {
    if before == AgentBefore::Unknown {
        return Err(StepError::Deferred(format!(
            "systemd does not answer about {}: its restart and health check wait for the next run",
            health::AGENT_UNIT
        )));
    }
    Ok(())
}

/// The FleetLock client for `group` as `id`, from the current
/// configuration; `None` when `fleet-lock` is no longer set.
fn fleet_client(
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

    fn version(v: &str) -> Result<PkgVersion, StepError> {
        PkgVersion::parse(v).map_err(|e| {
            StepError::App(AppError::UpdateFailed(format!(
                "the plan names an invalid version {v:?}: {e}"
            )))
        })
    }

    fn backend_err(e: backends::Error) -> StepError {
        StepError::App(AppError::from_backend(e))
    }

    fn installed_version(&self) -> Result<Option<PkgVersion>, StepError> {
        Ok(self
            .backend
            .installed(&self.pkg)
            .map_err(Self::backend_err)?
            .map(|i| i.version))
    }

    fn step(&mut self, step: &Step, done: &mut Done) -> Result<(), StepError> {
        let b = self.backend;
        match step {
            Step::FinishTransaction => {
                if let Some(what) = b.recover_package(&self.pkg).map_err(Self::backend_err)? {
                    let msg = format!("finished an interrupted package transaction ({what})");
                    tracing::warn!(package = %self.pkg, "repaired: {msg}");
                    done.repaired.push(msg);
                }
            }
            Step::Refresh => b.refresh(&self.source).map_err(Self::backend_err)?,
            Step::Install { to, channel_to, .. } => {
                // The package's files are about to change: the record of
                // the last verification no longer describes them (the next
                // no-op verifies in full, then records).
                crate::integrity_cache::forget(b.system());
                let version = Self::version(to)?;
                let now = self.installed_version()?;
                if now.as_ref().is_some_and(|v| v.same_upstream(&version)) {
                    tracing::info!(package = %self.pkg, "{} is already installed", version);
                } else {
                    match b.install_exact(&self.source, &self.pkg, &version) {
                        Ok(()) => {}
                        Err(backends::Error::VersionNotFound { detail, .. })
                            if channel_to.is_some() =>
                        {
                            let m = channel_to.unwrap();
                            tracing::info!("{version} is not offered by the configured channel ({detail}); moving the channel to stable/v{m}");
                            self.moved =
                                b.move_channel(&self.source, m).map_err(Self::backend_err)?;
                            failpoint::hit("after-channel-move")
                                .map_err(|e| StepError::App(AppError::UpdateFailed(e)))?;
                            self.source =
                                b.reload_source(&self.source).map_err(Self::backend_err)?;
                            b.refresh(&self.source).map_err(Self::backend_err)?;
                            b.install_exact(&self.source, &self.pkg, &version)
                                .map_err(Self::backend_err)?;
                        }
                        Err(e) => return Err(Self::backend_err(e)),
                    }
                }
                let after = self.installed_version()?;
                match after {
                    Some(v) if v.same_upstream(&version) => {
                        done.installed_after = Some(v.to_string())
                    }
                    other => {
                        return Err(Self::backend_err(backends::Error::VerifyFailed {
                            package: self.pkg.to_string(),
                            found: other.map(|v| v.to_string()).unwrap_or("nothing".into()),
                            wanted: version.to_string(),
                        }))
                    }
                }
            }
            Step::Reinstall { version } => {
                let v = Self::version(version)?;
                b.reinstall(&self.source, &self.pkg, &v)
                    .map_err(Self::backend_err)?;
                crate::integrity_cache::forget(b.system());
                let left = b.verify_files(&self.pkg).map_err(Self::backend_err)?;
                if left.is_empty() {
                    crate::integrity_cache::record_verified(
                        b.system(),
                        b,
                        &self.pkg,
                        &v.to_string(),
                        self.env.clock.now(),
                    );
                } else {
                    return Err(StepError::App(AppError::UpdateFailed(format!(
                        "reinstalled {} {v}, but its executables still do not verify: {}",
                        self.pkg,
                        left.iter()
                            .map(|p| p.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))));
                }
                let msg = format!("reinstalled {v}, and its executables verify");
                tracing::info!(package = %self.pkg, "repaired: {msg}");
                done.repaired.push(msg);
                done.installed_after = Some(v.to_string());
            }
            Step::Hold => {
                if !b
                    .is_held(&self.source, &self.pkg)
                    .map_err(Self::backend_err)?
                {
                    b.hold(&self.source, &self.pkg).map_err(Self::backend_err)?;
                    tracing::info!(package = %self.pkg, "held the agent package");
                    if self.repairing {
                        tracing::warn!(package = %self.pkg, "repaired: the agent package was not held; held it");
                        done.repaired
                            .push("held the agent package (it was not held)".into());
                    }
                }
            }
            Step::Restart => {
                defer_if_unknown(self.before)?;
                restart(self.env, self.before).map_err(|e| {
                    if self.check.is_some() {
                        StepError::Unhealthy(format!("the restart failed: {e}"))
                    } else {
                        StepError::App(AppError::UpdateFailed(format!(
                            "changed the package, but the restart failed: {e}"
                        )))
                    }
                })?;
            }
            Step::Reload => {
                defer_if_unknown(self.before)?;
                let before =
                    health::reload_agent(&self.env.system, &self.env.runner).map_err(|e| {
                        if self.check.is_some() {
                            StepError::Unhealthy(format!("the reload failed: {e}"))
                        } else {
                            StepError::App(AppError::UpdateFailed(format!(
                                "changed the package, but the reload failed: {e}"
                            )))
                        }
                    })?;
                if let (Some(check), Some(b)) = (self.check.as_mut(), before) {
                    check.reloaded = Some(b);
                }
            }
            Step::Verify => {
                if let Some(check) = &self.check {
                    tracing::info!("waiting for the agent to be healthy: {}", check.describe());
                    match check.wait(&self.env.runner) {
                        Verdict::Healthy(how) => tracing::info!("the agent is healthy: {how}"),
                        Verdict::Unverifiable => {
                            tracing::warn!("cannot verify the agent's health here: systemd is not running and no diagnostic address is known (set diag-addr, or diag_addr in /etc/teleport.yaml)");
                            done.unverified = true;
                        }
                        Verdict::Unhealthy(why) => return Err(StepError::Unhealthy(why)),
                        Verdict::Interrupted(sig) => return Err(StepError::Interrupted(sig)),
                    }
                }
            }
            Step::TakeSlot { group, id } => {
                match fleet_client(self.env, group, id).map_err(StepError::App)? {
                    None => {
                        tracing::warn!(group = %group, "fleet-lock is no longer set: going on without a FleetLock slot")
                    }
                    Some(c) => {
                        c.take().map_err(|e| {
                            StepError::App(AppError::NoSlot(format!(
                                "group {group}: {e}; nothing was changed, the next run tries again"
                            )))
                        })?;
                        tracing::info!(group = %group, id = %id, "took a FleetLock slot");
                    }
                }
            }
            Step::ReleaseSlot { group, id } => {
                self.give_back(group, id, "after the healthy update", done);
            }
            Step::KeepChannel => {
                if let Some(m) = self.moved.take() {
                    m.remove_backup().map_err(Self::backend_err)?;
                    tracing::info!(file = %m.file.display(), "kept the channel move ({})", m.describe());
                    return Ok(());
                }
                // Resumed: the backup on disk is this plan's move, which is
                // kept (the hold may have edited the file since).
                match b
                    .interrupted_channel_move(&self.source)
                    .map_err(Self::backend_err)?
                {
                    Some(backends::channel::Interrupted::Undo(m)) => {
                        m.remove_backup().map_err(Self::backend_err)?;
                        tracing::info!(file = %m.file.display(), "kept the channel move ({})", m.describe());
                    }
                    Some(backends::channel::Interrupted::Edited { file, backup }) => {
                        std::fs::remove_file(&backup).map_err(|e| {
                            StepError::App(AppError::UpdateFailed(format!(
                                "cannot remove {}: {e}",
                                backup.display()
                            )))
                        })?;
                        tracing::info!(file = %file.display(), "kept the channel move (removed {})", backup.display());
                    }
                    None => {}
                }
            }
        }
        Ok(())
    }

    /// Give the FleetLock slot back. When the lock server cannot be told,
    /// the slot is recorded as kept in the state file (`status` shows it)
    /// and the next healthy run at the target gives it back: a run never
    /// fails, nor blocks the next ones, on it.
    fn give_back(&self, group: &str, id: &str, when: &str, done: &mut Done) {
        let r = fleet_client(self.env, group, id)
            .map_err(|e| e.to_string())
            .and_then(|c| match c {
                None => Err("fleet-lock is no longer set".to_string()),
                Some(c) => c.release().map_err(|e| e.to_string()),
            });
        match r {
            Ok(()) => {
                tracing::info!(group = %group, id = %id, "gave the FleetLock slot back");
                done.slot_released = true;
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
                let back = b
                    .update_to(&self.source, &self.pkg, &v)
                    .map_err(|e| format!("reinstalling {v} failed: {e}"))?;
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
                self.give_back(group, id, "after taking it failed (it may hold one)", done);
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
    pub fn execute(&mut self, mut j: Journal, done: &mut Done) -> Result<(), AppError> {
        self.repairing = j.plan.goal == super::plan::Goal::Repair;
        if j.phase == Phase::Undoing {
            return self.undo_all(j, done);
        }
        self.save(&j)?;
        while let Some(step) = j.next_step().cloned() {
            let i = j.done;
            let in_bookkeeping =
                step == Step::Hold && i > 0 && j.plan.steps[i - 1].is_package_operation();
            if let (Some(sig), false) = (signals::received(), in_bookkeeping) {
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
                    self.save(&j)?;
                    failpoint::hit(&format!("after-{}", step.name()))
                        .map_err(AppError::UpdateFailed)?;
                }
                Err(StepError::Interrupted(sig)) => {
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
                    j.counted = matches!(j.plan.goal, super::plan::Goal::Update { .. });
                    self.save(&j)?;
                    return Ok(());
                }
                Err(e) => {
                    let why = match &e {
                        StepError::App(a) => a.to_string(),
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
        Ok(())
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
            super::plan::Goal::Update { from, to } => {
                (self.pkg.to_string(), to.clone(), from.clone())
            }
            super::plan::Goal::Repair => (self.pkg.to_string(), String::new(), String::new()),
        };
        if rolls_back {
            tracing::error!(package = %pkg, failed = %new, back_to = %prev, "{pkg} {new} did not become healthy ({why}); rolling back to {prev}");
            done.failed_health = Some(why.clone());
            // A rolled-back host keeps its FleetLock slot: once every slot
            // is kept, the broken release stops spreading.
            if let Some(Step::TakeSlot { group, id }) = j
                .plan
                .steps
                .iter()
                .take(failed)
                .find(|s| matches!(s, Step::TakeSlot { .. }))
            {
                tracing::warn!(group = %group, id = %id, "keeping the FleetLock slot: {new} was rolled back here, so the rollout halts once every slot is kept (free the slot on the lock server once the release is fixed)");
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

fn restart_as(env: &Env, how: health::Restart) -> Result<(), String> {
    match health::restart_agent(&env.system, &env.runner, how) {
        Ok(true) => {
            tracing::info!("restarted {}", health::AGENT_UNIT);
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => Err(e),
    }
}
