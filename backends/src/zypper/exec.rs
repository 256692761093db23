//! Running zypper: exit codes and messages classified.

use super::*;

impl Zypper {
    /// Map a finished zypper run to success or the right error.
    pub(super) fn check(
        &self,
        cl: &CommandLine,
        fin: &Finished,
        pkg: Option<(&PkgName, &str, &Source)>,
    ) -> Result<()> {
        match fin.code {
            Some(0) | Some(100) | Some(101) => return Ok(()),
            Some(102) => {
                tracing::warn!(command = %cl, "zypper: a reboot is needed to finish this update (exit 102)");
                return Ok(());
            }
            Some(103) => {
                tracing::warn!(command = %cl, "zypper: zypper itself was updated and must be run again (exit 103)");
                return Ok(());
            }
            _ => {}
        }
        // A solver problem that names a lock is neither of the two below.
        let lock_problem = |text: &str| text.contains("remove lock to allow");
        let untrusted = |fin: &Finished, text: &str| {
            rpmdb::trust_failure_line(text).map(|line| {
                format!(
                    "zypper reported a signature, key or checksum failure ({}): {line}",
                    fin.status_text()
                )
            })
        };
        // zypp's lock (after ZYPP_LOCK_TIMEOUT), or rpm's transaction lock
        // taken by another rpm, dnf or zypper after the busy check.
        let locked = |fin: &Finished, text: &str| {
            if let Some(d) = rpmdb::transaction_lock_taken(text, &self.system) {
                return Some(d);
            }
            (fin.code == Some(7) && !lock_problem(text))
                .then(|| rpmdb::line_with(text, &["is locked"], fin.tail(2)))
        };
        let not_offered = |fin: &Finished, text: &str| {
            (fin.code == Some(104) && !lock_problem(text))
                .then(|| rpmdb::line_with(text, &["No provider", "not found"], fin.tail(2)))
        };
        let signs = crate::classify::Signs {
            untrusted: &untrusted,
            locked: &locked,
            not_offered: &not_offered,
        };
        let otherwise = |text: &str| {
            let failed = |what: &str| Error::CommandFailed {
                command: cl.to_string(),
                status: format!("{}: {what}", fin.status_text()),
                tail: fin.tail(6),
            };
            if lock_problem(text) {
                return failed("a lock keeps the package from changing (see `zypper locks`; a pattern lock on the package is not ours to remove)");
            }
            match fin.code {
                Some(104) => failed("capability not found"),
                Some(106) => failed("some repositories were skipped because of an error"),
                Some(107) => {
                    failed("the package was installed but one of its rpm scripts (%post) failed")
                }
                Some(8) => failed("the installation failed (commit error)"),
                Some(6) => failed("no repositories are defined"),
                Some(4) => failed("zypper reported an error"),
                _ => failed("zypper failed"),
            }
        };
        Err(crate::classify::classify(&signs, cl, fin, pkg, &otherwise))
    }

    pub(super) fn run_checked(
        &self,
        cl: &CommandLine,
        pkg: Option<(&PkgName, &str, &Source)>,
    ) -> Result<Finished> {
        tracing::info!(command = %cl, "running");
        self.prepare_conf()?;
        // zypper waits for zypp's own lock (ZYPP_LOCK_TIMEOUT); rpm's
        // transaction lock, taken by another tool, is waited for here.
        let started = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(250);
        loop {
            let fin = self.runner.run(cl)?;
            match self.check(cl, &fin, pkg) {
                Ok(()) => return Ok(fin),
                Err(err @ Error::Locked { .. }) => {
                    let left = self.opts.lock_wait.saturating_sub(started.elapsed());
                    if left.is_zero() || fin.code == Some(7) {
                        return Err(err);
                    }
                    tracing::info!(
                        "zypper is locked by another process ({err}); waiting up to {} s",
                        left.as_secs()
                    );
                    std::thread::sleep(pause.min(left));
                    pause = (pause * 2).min(std::time::Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The value of `attr="..."` in one XML tag (zypper's `--xmlout`).
pub(super) fn xml_attr(tag: &str, attr: &str) -> Option<String> {
    let needle = format!(" {attr}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(
        tag[start..end]
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}
