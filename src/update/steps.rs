//! What each step of a plan does (see [`super::plan::Step`]); the order,
//! the journal and the undos are [`super::execute`]'s.

use backends::PkgVersion;

use crate::error::AppError;
use crate::health;
use crate::verify::Verdict;

use super::execute::{fleet_client, restart, restart_as, Ctx, Done, StepError};
use super::failpoint;
use super::plan::{Goal, Step};

impl Ctx<'_> {
    pub(super) fn step(&mut self, step: &Step, done: &mut Done) -> Result<(), StepError> {
        let b = self.backend;
        match step {
            Step::Jitter { max_seconds } => {
                let wait = super::jitter::delay(*max_seconds, super::jitter::random());
                tracing::info!(
                    "waiting {} s before updating: the proxy asks for a random delay up to {max_seconds} s (agent_update_jitter_seconds; at most {} s here)",
                    wait.as_secs(),
                    super::jitter::MAX_JITTER.as_secs()
                );
                super::jitter::wait(self.env.clock, wait).map_err(StepError::Interrupted)?;
            }
            Step::FinishTransaction => self.finish_transaction(done)?,
            Step::Refresh => b.refresh(&self.source).map_err(Self::backend_err)?,
            Step::CheckSpace { to } => self.check_space(to)?,
            Step::KeepPrevious { version } => {
                super::kept::keep(b, &self.source, &self.pkg, &Self::version(version)?)
            }
            Step::DropPrevious => super::kept::drop_kept(b.system()),
            Step::Install { to, channel_to, .. } => self.install(to, *channel_to, done)?,
            Step::Reinstall { version } => self.reinstall(version, done)?,
            Step::Hold => self.hold(done)?,
            Step::CheckInstall => self.check_install()?,
            Step::DropOldHolds => b
                .drop_old_holds(&self.source, &self.pkg)
                .map_err(Self::backend_err)?,
            Step::Restart => {
                defer_if_unknown(self.before)?;
                let r = if matches!(self.goal, Goal::Rollback { .. }) {
                    // The broken version may have left the unit failed or
                    // at its start limit: `try-restart` would leave it down.
                    restart_as(self.env, health::Restart::Start)
                } else {
                    restart(self.env, self.before)
                };
                r.map_err(|e| self.restart_failed("restart", e))?;
            }
            Step::Reload => {
                defer_if_unknown(self.before)?;
                let before = health::reload_agent(&self.env.system, &self.env.runner)
                    .map_err(|e| self.restart_failed("reload", e))?;
                if let (Some(check), Some(b)) = (self.check.as_mut(), before) {
                    check.reloaded = Some(b);
                }
            }
            Step::Verify => self.verify(done)?,
            Step::TakeSlot { group, id } => {
                match fleet_client(self.env, group, id).map_err(StepError::App)? {
                    None => {
                        tracing::warn!(group = %group, "fleet-lock is no longer set: going on without a FleetLock slot")
                    }
                    Some(c) => {
                        done.slot_asked = true;
                        self.lock_call("take", done, || c.take()).map_err(|e| {
                            let no_slot = AppError::NoSlot(format!(
                                "group {group}: {e}; nothing was changed, the next run tries again"
                            ));
                            // The server answered: no slot was granted, and
                            // there is nothing to give back. No answer (or
                            // a failure that may have come after its
                            // write): the undo gives it back.
                            if e.definite() {
                                StepError::Declined(no_slot)
                            } else {
                                StepError::App(no_slot)
                            }
                        })?;
                        tracing::info!(group = %group, id = %id, "took a FleetLock slot");
                    }
                }
            }
            Step::ReleaseSlot { group, id } => {
                if let super::plan::Goal::Update { to, .. } = &self.goal {
                    done.report = Some(super::execute::Completed {
                        group: group.clone(),
                        to: to.clone(),
                        ok: true,
                    });
                }
                self.give_back(group, id, "after the healthy update", done);
            }
            Step::KeepChannel => self.keep_channel()?,
        }
        Ok(())
    }

    /// A failed restart or reload: the new version is unhealthy when its
    /// health is checked (it is rolled back), else the update failed.
    fn restart_failed(&self, what: &str, e: String) -> StepError {
        if self.check.is_some() {
            StepError::Unhealthy(format!("the {what} failed: {e}"))
        } else {
            StepError::App(AppError::UpdateFailed(format!(
                "changed the package, but the {what} failed: {e}"
            )))
        }
    }

    fn install(
        &mut self,
        to: &str,
        channel_to: Option<u64>,
        done: &mut Done,
    ) -> Result<(), StepError> {
        let b = self.backend;
        // The package's files are about to change: the record of the last
        // verification no longer describes them (the next no-op verifies
        // in full, then records).
        crate::integrity_cache::forget(b.system());
        let version = Self::version(to)?;
        let now = self.installed_version()?;
        if now.as_ref().is_some_and(|v| v.same_upstream(&version)) {
            tracing::info!(package = %self.pkg, "{} is already installed", version);
        } else {
            match (
                b.install_exact(&self.source, &self.pkg, &version),
                channel_to,
            ) {
                (Ok(()), _) => {}
                (Err(backends::Error::VersionNotFound { detail, .. }), Some(m)) => {
                    tracing::info!("{version} is not offered by the configured channel ({detail}); moving the channel to stable/v{m}");
                    self.moved = b.move_channel(&self.source, m).map_err(Self::backend_err)?;
                    failpoint::hit("after-channel-move")
                        .map_err(|e| StepError::App(AppError::UpdateFailed(e)))?;
                    self.source = b.reload_source(&self.source).map_err(Self::backend_err)?;
                    b.refresh(&self.source).map_err(Self::backend_err)?;
                    b.install_exact(&self.source, &self.pkg, &version)
                        .map_err(Self::backend_err)?;
                }
                (Err(e), _) => return self.script_failed(e, &version, done),
            }
        }
        match self.installed_version()? {
            Some(v) if v.same_upstream(&version) => {
                done.installed_after = Some(v.to_string());
                Ok(())
            }
            other => Err(Self::backend_err(backends::Error::VerifyFailed {
                package: self.pkg.to_string(),
                found: other.map(|v| v.to_string()).unwrap_or("nothing".into()),
                wanted: version.to_string(),
            })),
        }
    }

    /// The space gate before the download ([`super::space`]): refused
    /// when the package does not fit; not checked (said so) when the
    /// package manager does not report its sizes.
    fn check_space(&self, to: &str) -> Result<(), StepError> {
        let b = self.backend;
        let version = Self::version(to)?;
        let sizes = match b.package_sizes(&self.source, &self.pkg, &version) {
            Ok(Some(s)) => s,
            Ok(None) => {
                tracing::info!(package = %self.pkg, "the package manager does not report the size of {version} (or does not offer it yet): free space not checked");
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(package = %self.pkg, "cannot read the size of {version} from the repository's metadata: {e}; free space not checked");
                return Ok(());
            }
        };
        let places =
            super::space::places(b, &self.pkg, sizes, self.kept_needs_room()).map_err(|e| {
                StepError::App(AppError::UpdateFailed(format!(
                    "cannot read the free space: {e}"
                )))
            })?;
        match super::space::judge(&places) {
            Ok(line) => {
                tracing::info!(package = %self.pkg, "{version} fits: {line}");
                Ok(())
            }
            Err(short) => Err(StepError::App(AppError::NoSpace(format!(
                "{} {version} (download {} bytes, installed {} bytes, from the repository's metadata) does not fit: {short}",
                self.pkg, sizes.download, sizes.installed
            )))),
        }
    }

    /// Where the package of the version this update replaces will be kept,
    /// when keeping it takes new space: not kept yet, and not in the
    /// package manager's cache on the same filesystem (apt's archives: a
    /// hard link).
    fn kept_needs_room(&self) -> Option<std::path::PathBuf> {
        let Goal::Update { from, .. } = &self.goal else {
            return None;
        };
        let from = PkgVersion::parse(from).ok()?;
        let system = self.backend.system();
        let dir = super::kept::dir(system);
        let linked = self
            .backend
            .local_copy(&self.pkg, &from)
            .is_some_and(|copy| super::space::same_filesystem(&copy, &dir));
        let kept = super::kept::kept_already(system, &self.pkg, &from).is_some();
        (!kept && !linked).then_some(dir)
    }

    fn reinstall(&mut self, version: &str, done: &mut Done) -> Result<(), StepError> {
        let b = self.backend;
        let v = Self::version(version)?;
        b.reinstall(&self.source, &self.pkg, &v)
            .map_err(Self::backend_err)?;
        crate::integrity_cache::forget(b.system());
        let left = b.verify_files(&self.pkg).map_err(Self::backend_err)?;
        if !left.is_empty() {
            return Err(StepError::App(AppError::UpdateFailed(format!(
                "reinstalled {} {v}, but its executables still do not verify: {}",
                self.pkg,
                left.iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))));
        }
        let links: Vec<String> = crate::layout::check(b, &self.pkg)
            .map_err(Self::backend_err)?
            .iter()
            .filter(|f| f.reinstall_fixes())
            .map(|f| f.to_string())
            .collect();
        if !links.is_empty() {
            return Err(StepError::App(AppError::UpdateFailed(format!(
                "reinstalled {} {v}, but its links are still wrong: {}",
                self.pkg,
                links.join(", ")
            ))));
        }
        crate::integrity_cache::record_verified(
            b.system(),
            b,
            &self.pkg,
            &v.to_string(),
            self.env.clock.now(),
        );
        let msg = format!("reinstalled {v}, and its executables verify");
        tracing::info!(package = %self.pkg, "repaired: {msg}");
        done.repaired.push(msg);
        done.installed_after = Some(v.to_string());
        Ok(())
    }

    fn hold(&mut self, done: &mut Done) -> Result<(), StepError> {
        let b = self.backend;
        if b.is_held(&self.source, &self.pkg)
            .map_err(Self::backend_err)?
        {
            return Ok(());
        }
        b.hold(&self.source, &self.pkg).map_err(Self::backend_err)?;
        tracing::info!(package = %self.pkg, "held the agent package");
        if self.goal == Goal::Repair {
            tracing::warn!(package = %self.pkg, "repaired: the agent package was not held; held it");
            done.repaired
                .push("held the agent package (it was not held)".into());
        }
        Ok(())
    }

    fn verify(&mut self, done: &mut Done) -> Result<(), StepError> {
        let Some(check) = &self.check else {
            return Ok(());
        };
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
        Ok(())
    }

    fn keep_channel(&mut self) -> Result<(), StepError> {
        if let Some(m) = self.moved.take() {
            m.remove_backup().map_err(Self::backend_err)?;
            tracing::info!(file = %m.file.display(), "kept the channel move ({})", m.describe());
            return Ok(());
        }
        // The move was made by an earlier run of this update: the backup on
        // disk is its record, and is dropped (the hold may have edited the
        // file since).
        match self
            .backend
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
        Ok(())
    }

    pub(super) fn version(v: &str) -> Result<PkgVersion, StepError> {
        PkgVersion::parse(v).map_err(|e| {
            StepError::App(AppError::UpdateFailed(format!(
                "the plan names an invalid version {v:?}: {e}"
            )))
        })
    }
}

/// The restart of an agent whose state is unknown waits for the next run.
fn defer_if_unknown(before: health::AgentBefore) -> Result<(), StepError> {
    if before == health::AgentBefore::Unknown {
        return Err(StepError::Deferred(format!(
            "systemd does not answer about {}: its restart and health check wait for the next run",
            health::AGENT_UNIT
        )));
    }
    Ok(())
}
