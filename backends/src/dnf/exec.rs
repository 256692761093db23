//! Running dnf: failures classified (trust, lock, version not offered),
//! the wait for another dnf's lock, and the gpg-agents dnf leaves behind.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::EXIT_LOCKED;
use crate::cmd::{CommandLine, Finished};
use crate::rpmdb;
use crate::types::{PkgName, Source};
use crate::Error;
use crate::Result;

impl super::Dnf {
    pub(super) fn classify(
        &self,
        cl: &CommandLine,
        fin: &Finished,
        pkg: Option<(&PkgName, &str, &Source)>,
    ) -> Error {
        let untrusted = |fin: &Finished, text: &str| {
            rpmdb::trust_failure_line(text).map(|line| {
                format!(
                    "{} reported a signature, key or checksum failure ({}): {line}",
                    self.program,
                    fin.status_text()
                )
            })
        };
        // dnf's own lock, or rpm's transaction lock taken by another rpm,
        // dnf or zypper after the busy check.
        let locked = |fin: &Finished, text: &str| {
            if let Some(d) = rpmdb::transaction_lock_taken(text, &self.system) {
                return Some(d);
            }
            (fin.code == Some(EXIT_LOCKED) || text.contains("already locked by"))
                .then(|| rpmdb::line_with(text, &["already locked by"], fin.tail(2)))
        };
        let not_offered = |fin: &Finished, text: &str| {
            const NOT_OFFERED: &[&str] = &[
                "Unable to find a match",
                "No match for argument",
                "No package",
            ];
            (text.contains(NOT_OFFERED[0])
                || text.contains(NOT_OFFERED[1])
                || (text.contains(NOT_OFFERED[2]) && text.contains("available")))
            .then(|| rpmdb::line_with(text, NOT_OFFERED, fin.tail(2)))
        };
        let signs = crate::classify::Signs {
            untrusted: &untrusted,
            locked: &locked,
            not_offered: &not_offered,
        };
        crate::classify::classify(&signs, cl, fin, pkg, &|_| {
            crate::classify::command_failed(cl, fin)
        })
    }

    /// Run `cl`, retrying while another dnf holds the lock, up to
    /// `lock_wait`; then classify a failure.
    pub(super) fn run_classified(
        &self,
        cl: &CommandLine,
        pkg: Option<(&PkgName, &str, &Source)>,
    ) -> Result<Finished> {
        tracing::info!(command = %cl, "running");
        let started = Instant::now();
        let mut pause = Duration::from_millis(250);
        loop {
            let fin = self.run_dnf(cl, self.opts.lock_wait.saturating_sub(started.elapsed()))?;
            if fin.success() {
                return Ok(fin);
            }
            let err = self.classify(cl, &fin, pkg);
            let left = self.opts.lock_wait.saturating_sub(started.elapsed());
            if matches!(err, Error::Locked { .. }) && !left.is_zero() {
                tracing::info!(
                    "{} is locked by another process ({err}); waiting up to {} s",
                    self.program,
                    left.as_secs()
                );
                std::thread::sleep(pause.min(left));
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
            return Err(err);
        }
    }

    /// Run `cl`; dnf5 first waits up to `wait` for dnf5's lock (dnf5 has
    /// no `exit_on_lock` and would wait without end).
    pub(super) fn run_dnf(&self, cl: &CommandLine, wait: Duration) -> Result<Finished> {
        if self.is_dnf5() {
            super::dnf5::wait_for_lock(&self.dnf5_lock(), wait)?;
        }
        self.runner.run(cl)
    }

    /// End the gpg-agents dnf started for `id`'s metadata checks (every
    /// repository's when `id` is empty).
    pub(super) fn end_gpg_agents(&self, id: &str) {
        if self.runner.find("gpgconf").is_none() {
            return;
        }
        let Ok(rd) = std::fs::read_dir(self.cachedir()) else {
            return;
        };
        let prefix = if id.is_empty() {
            String::new()
        } else {
            format!("{id}-")
        };
        for e in rd.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            let home = e.path().join("pubring");
            if name.starts_with(&prefix) && home.is_dir() {
                let cl = CommandLine::new("gpgconf")
                    .env("GNUPGHOME", home.display().to_string())
                    .args([
                        "--homedir".to_string(),
                        home.display().to_string(),
                        "--kill".into(),
                        "gpg-agent".into(),
                    ]);
                let _ = self.runner.run(&cl);
            }
        }
    }

    pub(super) fn shown(&self, p: &Path) -> PathBuf {
        PathBuf::from(self.system.display_path(p))
    }
}
