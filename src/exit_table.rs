//! The one table of exit codes: number, word (state file and metrics),
//! meaning and what to do. `--help`, the man page and
//! docs/operators/exit-codes.md are generated from it
//! ([`crate::reference`]); the tests below keep it equal to [`Exit`], and
//! tests/exit_code_walk.rs produces every row through the binary.

use crate::error::Exit;

/// One exit code.
#[derive(Debug, Clone, Copy)]
pub struct ExitRow {
    pub exit: Exit,
    /// The word of `last_run.result` and of the metrics' `result` label.
    pub word: &'static str,
    /// What happened, one sentence.
    pub meaning: &'static str,
    /// What an operator does about it.
    pub todo: &'static str,
}

impl ExitRow {
    pub fn code(&self) -> u8 {
        self.exit as u8
    }
}

/// Every exit code, in numeric order (`EXITS[n].exit as u8 == n`).
pub const EXITS: &[ExitRow] = &[
    ExitRow {
        exit: Exit::Ok,
        word: "ok",
        meaning: "nothing to do, waiting for a window, stood down, or updated; or \
                  waiting for a lagging mirror (result word waiting-for-mirror: the \
                  repository does not offer the target yet, nothing was installed; for \
                  at most mirror-wait, a day by default)",
        todo: "nothing (for waiting-for-mirror, status shows since when)",
    },
    ExitRow {
        exit: Exit::NoTarget,
        word: "no-target",
        meaning: "could not learn the target version from the version server, or no \
                  FleetLock slot (lock server unreachable or failing, or every slot \
                  taken; recorded with the result word no-slot in status and the \
                  metrics), or the rollout of the target halted on its failure rate \
                  (fleet-halt-rate; result word rollout-halted); nothing was changed",
        todo: "check the endpoint setting and that the proxy answers \
               https://<endpoint>/version from this host (a certificate \
               \"not valid yet\" is this host's clock: the log names it); for FleetLock, see the \
               logged reason and docs/operators/fleet.md; the next timer run retries; \
               for rollout-halted, fix the release (a new target) or reset its record \
               (docs/operators/fleet.md)",
    },
    ExitRow {
        exit: Exit::Usage,
        word: "config-error",
        meaning: "usage or configuration error (the message names the file)",
        todo: "fix the named file in /etc/teleport-upgrade.d/ (see the \
               configuration reference), or install the missing tool",
    },
    ExitRow {
        exit: Exit::Refused,
        word: "refused",
        meaning: "refused: an invalid answer from the version server, a target the \
                  cluster-compatibility guard refuses (also, the cluster's version \
                  unknown, a target more than one major version below the installed \
                  agent, such as 0.0.1: nothing is changed), or a trust failure (unsigned \
                  or wrongly signed repository, tampered package, configuration \
                  that weakens verification)",
        todo: "read the logged reason: fix the repository's signing or the \
               weakening option it names (docs/operators/trust.md), or the target \
               published for the channel",
    },
    ExitRow {
        exit: Exit::UpdateFailed,
        word: "update-failed",
        meaning: "the update was attempted and failed; the agent is as the package \
                  manager left it (result word waiting-for-mirror when the repository \
                  has not offered the target for mirror-wait: nothing was installed; result word \
                  no-space when the package's download or installed size, from the \
                  repository's metadata, does not fit in the free space of the package \
                  cache or of the agent's filesystem: refused before the download, \
                  nothing was changed)",
        todo: "read the package manager's error in the log (journalctl -u \
               teleport-upgrade), fix it, then run teleport-upgrade run; for \
               waiting-for-mirror, check that the repository or mirror the log \
               names syncs the target; for no-space, free space where the log says (the next run checks again)",
    },
    ExitRow {
        exit: Exit::Locked,
        word: "locked",
        meaning: "another teleport-upgrade run holds the lock, or the package manager \
                  stays busy past lock-timeout",
        todo: "usually nothing: the next timer run retries; if it persists, find \
               the process named in the log",
    },
    ExitRow {
        exit: Exit::RolledBack,
        word: "rolled-back",
        meaning: "updated, but the agent did not become healthy: rolled back to the \
                  previous version (that target is not retried until it changes; a \
                  critical update tries it once more unless the failed attempt was \
                  critical)",
        todo: "find why the new version was unhealthy (journalctl -u teleport); \
               publish a fixed version, or run teleport-upgrade force to retry",
    },
    ExitRow {
        exit: Exit::RollbackFailed,
        word: "rollback-failed",
        meaning: "the agent did not become healthy and the rollback failed too",
        todo: "the host needs an operator: reinstall a working agent version by \
               hand, then run teleport-upgrade status",
    },
    ExitRow {
        exit: Exit::Interrupted,
        word: "interrupted",
        meaning: "stopped by SIGTERM, SIGINT or SIGHUP at a step boundary (a running \
                  package operation was let finish); the plan is in the journal",
        todo: "nothing: the next run finishes the plan if its install is done, continues it if a fresh run would make the same update, and abandons it otherwise (status and dry-run say which)",
    },
];

/// The position of `e` in [`EXITS`]. The match has no wildcard: a new
/// `Exit` variant does not compile until it has a row.
pub fn index(e: Exit) -> usize {
    match e {
        Exit::Ok => 0,
        Exit::NoTarget => 1,
        Exit::Usage => 2,
        Exit::Refused => 3,
        Exit::UpdateFailed => 4,
        Exit::Locked => 5,
        Exit::RolledBack => 6,
        Exit::RollbackFailed => 7,
        Exit::Interrupted => 8,
    }
}

/// The row of an exit code.
pub fn row(e: Exit) -> &'static ExitRow {
    &EXITS[index(e)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AppError;

    #[test]
    fn every_exit_has_its_row_in_order() {
        for (i, r) in EXITS.iter().enumerate() {
            assert_eq!(index(r.exit), i, "{:?}", r.exit);
            assert_eq!(r.code() as usize, i, "{:?} is not in numeric order", r.exit);
        }
        assert_eq!(EXITS.len(), index(Exit::Interrupted) + 1);
    }

    /// The words of the state file and metrics (AppError::word) are the
    /// table's.
    #[test]
    fn words_are_the_errors_words() {
        let s = || String::from("x");
        let errors = [
            AppError::Target {
                endpoint: s(),
                detail: s(),
            },
            AppError::Usage(s()),
            AppError::Refused(s()),
            AppError::UpdateFailed(s()),
            AppError::Locked(s()),
            AppError::RolledBack(s()),
            AppError::RollbackFailed(s()),
            AppError::Interrupted(s()),
            AppError::NoSlot(s()),
            AppError::Halted(s()),
            AppError::NotOffered(s()),
            AppError::NoSpace(s()),
        ];
        for e in &errors {
            assert_eq!(e.word(), row(e.exit()).word, "{e}");
        }
        // Every non-zero code is some error's.
        for r in &EXITS[1..] {
            assert!(errors.iter().any(|e| e.exit() == r.exit), "{:?}", r.exit);
        }
    }
}
