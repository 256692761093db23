//! The install check ([`super::plan::Step::CheckInstall`]) and what it
//! needs from the install before it and the rollback after it.
//!
//! A package manager's "success" is not the host's: rpm reports a failed
//! %post as "non-critical" and exits 0 (dnf too), leaving Teleport 17.3.0
//! agents without their `/usr/local/bin` links; a unit whose `ExecStart`
//! names a path the new package no longer ships starts nothing. A dpkg
//! postinst that fails leaves the package half-configured, and `dpkg
//! --configure -a` (what converging would run) runs the same failing script
//! again at every run. So:
//!
//! - an install whose maintainer script failed, leaving the target
//!   unfinished, is not an error of the install step: the step is done,
//!   the hold is made, and the check fails it;
//! - the check ([`crate::layout::check`]) fails the update when the package
//!   is unfinished or the binaries the host runs are not the package's;
//!   the plan then rolls back (the version before, held), and the target
//!   is recorded as failed (not retried until it changes or is critical);
//! - the rollback over an unfinished package installs the version before
//!   over it, without `dpkg --configure -a` first (that would run the
//!   failed script again).

use backends::{Installed, PkgVersion};

use super::execute::{Ctx, Done, StepError};

impl Ctx<'_> {
    /// The install of `version` failed with `e`: when the package is at
    /// `version` nevertheless (a maintainer script failed after the files
    /// were in place: dpkg leaves it half-configured, zypper exits 107),
    /// the step is done and the install check judges (a rollback when the
    /// package is unfinished or its binaries are not in place); otherwise
    /// the install failed and nothing changed.
    pub(super) fn script_failed(
        &self,
        e: backends::Error,
        version: &PkgVersion,
        done: &mut Done,
    ) -> Result<(), StepError> {
        let b = self.backend;
        match self.installed_version()? {
            Some(v) if v.same_upstream(version) => {
                let what = b
                    .unfinished_transaction(&self.pkg)
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| format!("{} {v} is installed", self.pkg));
                tracing::error!(package = %self.pkg, "installing {version} failed after its files were in place (a maintainer script?): {e}; {what}: the install check judges it");
                done.installed_after = Some(v.to_string());
                Ok(())
            }
            _ => Err(Self::backend_err(e)),
        }
    }

    /// Finish an interrupted transaction. When it fails on the version this
    /// update installs (a run killed after its maintainer script failed),
    /// that is the update's failed script: judged by the install check
    /// (a rollback), not retried at every run.
    pub(super) fn finish_transaction(&mut self, done: &mut Done) -> Result<(), StepError> {
        match self.backend.recover_package(&self.pkg) {
            Ok(Some(what)) => {
                let msg = format!("finished an interrupted package transaction ({what})");
                tracing::warn!(package = %self.pkg, "repaired: {msg}");
                done.repaired.push(msg);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => match &self.goal {
                super::plan::Goal::Update { to, .. } => {
                    let to = Self::version(to)?;
                    self.script_failed(e, &to, done)
                }
                _ => Err(Self::backend_err(e)),
            },
        }
    }

    /// The install check: fails (a rollback) unless the package is fully
    /// installed and the binaries the host runs are its own.
    pub(super) fn check_install(&mut self) -> Result<(), StepError> {
        let faults = crate::layout::check(self.backend, &self.pkg).map_err(Self::backend_err)?;
        if faults.is_empty() {
            tracing::info!(package = %self.pkg, "fully installed; the binaries the host runs are the package's");
            return Ok(());
        }
        let list = faults
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        tracing::error!(package = %self.pkg, "the install is not usable: {list}");
        Err(StepError::Unhealthy(format!(
            "the install is not usable: {list}"
        )))
    }

    /// Put `v` back and hold it (the rollback's install). Over a package a
    /// failed maintainer script left unfinished, `v` is installed over it
    /// directly: finishing the transaction first would run the failed
    /// script again.
    pub(super) fn put_back(&self, v: &PkgVersion) -> Result<Installed, String> {
        let b = self.backend;
        if let Some(file) = super::kept::checked(b.system(), &self.pkg, v) {
            match self.install_kept(&file, v) {
                Ok(now) => {
                    super::kept::drop_kept(b.system());
                    return Ok(now);
                }
                Err(e) => {
                    tracing::warn!(package = %self.pkg, "installing the kept package of {v} failed: {e}; trying the repository")
                }
            }
        }
        let unfinished = b
            .unfinished_transaction(&self.pkg)
            .map_err(|e| e.to_string())?;
        let Some(what) = unfinished else {
            return b
                .update_to(&self.source, &self.pkg, v)
                .map_err(|e| format!("reinstalling {v} failed: {e}"));
        };
        tracing::warn!(package = %self.pkg, "{what}: installing {v} over it (not finishing its failed script)");
        let err = |e: backends::Error| format!("reinstalling {v} failed: {e}");
        b.refresh(&self.source).map_err(err)?;
        b.install_exact(&self.source, &self.pkg, v).map_err(err)?;
        self.hold_alone().map_err(err)?;
        let now = b
            .installed(&self.pkg)
            .map_err(err)?
            .filter(|i| i.version.same_upstream(v))
            .ok_or_else(|| format!("reinstalling {v} failed: {v} is not installed afterwards"))?;
        if let Some(left) = b.unfinished_transaction(&self.pkg).map_err(err)? {
            return Err(format!("reinstalling {v} left it unfinished: {left}"));
        }
        Ok(now)
    }

    /// Hold the installed version, and (dnf's versionlock) delete the
    /// updater's own locks of other versions, as `update_to` does: a
    /// rollback must not leave the failed version's lock beside it.
    fn hold_alone(&self) -> backends::Result<()> {
        let b = self.backend;
        b.hold(&self.source, &self.pkg)?;
        if b.swaps_holds() {
            b.drop_old_holds(&self.source, &self.pkg)?;
        }
        Ok(())
    }

    /// Install the kept file of `v` (checked against its digest) and hold.
    fn install_kept(&self, file: &std::path::Path, v: &PkgVersion) -> Result<Installed, String> {
        let b = self.backend;
        tracing::info!(package = %self.pkg, file = %file.display(), "rolling back to {v} from the kept package file (no network needed)");
        let err = |e: backends::Error| e.to_string();
        b.install_file(&self.pkg, file).map_err(err)?;
        self.hold_alone().map_err(err)?;
        let now = b
            .installed(&self.pkg)
            .map_err(err)?
            .filter(|i| i.version.same_upstream(v))
            .ok_or_else(|| format!("{v} is not installed afterwards"))?;
        if let Some(left) = b.unfinished_transaction(&self.pkg).map_err(err)? {
            return Err(format!("it is left unfinished: {left}"));
        }
        Ok(now)
    }
}
