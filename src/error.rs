//! Errors of a run and the exit codes they map to.

use std::path::PathBuf;

/// Documented exit codes: their words, meanings and remedies are the rows
/// of [`crate::exit_table::EXITS`], from which `--help`, the man page and
/// the docs are generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Nothing had to be done, policy said wait, or the update succeeded.
    Ok = 0,
    /// The target version could not be learned from the version server.
    NoTarget = 1,
    /// Usage or configuration error.
    Usage = 2,
    /// Refused: invalid input from the version server, or a trust failure
    /// (signature, key, configuration that weakens verification).
    Refused = 3,
    /// The update was attempted and failed.
    UpdateFailed = 4,
    /// Another run holds the lock.
    Locked = 5,
    /// The update was installed, the agent did not become healthy, and the
    /// previous version was put back (healthy again).
    RolledBack = 6,
    /// The update left the agent unhealthy and putting the previous version
    /// back failed too: the host needs an operator.
    RollbackFailed = 7,
    /// Stopped by SIGTERM, SIGINT or SIGHUP: the package operation in
    /// progress finished with its bookkeeping, the rest of the plan is in
    /// the journal, and the next run finishes it.
    Interrupted = 8,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("configuration {file}: {message}")]
    Config { file: PathBuf, message: String },

    #[error("{0}")]
    Usage(String),

    #[error("could not learn the target version from {endpoint}: {detail}")]
    Target { endpoint: String, detail: String },

    #[error("refused: {0}")]
    Refused(String),

    #[error("update failed: {0}")]
    UpdateFailed(String),

    #[error("{0}")]
    Locked(String),

    #[error("rolled back: {0}")]
    RolledBack(String),

    #[error("ROLLBACK FAILED: {0}")]
    RollbackFailed(String),

    #[error("interrupted: {0}")]
    Interrupted(String),

    /// No FleetLock slot: the lock server is unreachable, failing, or
    /// every slot is taken. Nothing was changed; the next run tries again
    /// (the "could not learn" class, exit 1).
    #[error("no FleetLock slot: {0}")]
    NoSlot(String),

    /// The rollout of the target is halted on its failure rate
    /// (`fleet-halt-rate`): no slot is taken, nothing was changed (exit 1,
    /// result word rollout-halted).
    #[error("rollout halted: {0}")]
    Halted(String),

    /// The repository does not offer the target (yet): a mirror lagging
    /// behind the version server, most often. Nothing was installed; the
    /// next run checks again (result word `waiting-for-mirror`: exit 0 for
    /// `mirror-wait`, then 4; see [`crate::decision::mirror_wait`]).
    #[error("waiting for the mirror: {0}; nothing was changed, the next run checks again")]
    NotOffered(String),

    /// The package does not fit in the free space where it goes (its
    /// download and installed sizes from the repository's metadata, with a
    /// margin). Refused before the download: nothing was changed (exit 4,
    /// result word `no-space`).
    #[error("not enough free space: {0}; nothing was downloaded or changed")]
    NoSpace(String),
}

impl AppError {
    pub fn exit(&self) -> Exit {
        match self {
            AppError::Config { .. } | AppError::Usage(_) => Exit::Usage,
            AppError::Target { .. } | AppError::NoSlot(_) | AppError::Halted(_) => Exit::NoTarget,
            AppError::Refused(_) => Exit::Refused,
            AppError::UpdateFailed(_) | AppError::NotOffered(_) | AppError::NoSpace(_) => {
                Exit::UpdateFailed
            }
            AppError::Locked(_) => Exit::Locked,
            AppError::RolledBack(_) => Exit::RolledBack,
            AppError::RollbackFailed(_) => Exit::RollbackFailed,
            AppError::Interrupted(_) => Exit::Interrupted,
        }
    }

    /// A backend failure during an update: trust failures are refusals,
    /// everything else is a failed update.
    pub fn from_backend(e: backends::Error) -> AppError {
        let e = match clock_hint(&e.to_string()) {
            Some(hint) => return AppError::from_backend_plain(e).with_detail(&hint),
            None => e,
        };
        AppError::from_backend_plain(e)
    }

    fn from_backend_plain(e: backends::Error) -> AppError {
        match e {
            backends::Error::Untrusted { reason } => AppError::Refused(reason),
            backends::Error::Unsupported { reason } => AppError::Refused(reason),
            backends::Error::ToolMissing { .. } => AppError::Usage(e.to_string()),
            backends::Error::Locked { .. } => AppError::Locked(e.to_string()),
            backends::Error::VersionNotFound { .. } => AppError::NotOffered(e.to_string()),
            other => AppError::UpdateFailed(other.to_string()),
        }
    }

    /// The same error with `more` added to its message.
    fn with_detail(self, more: &str) -> AppError {
        match self {
            AppError::Refused(m) => AppError::Refused(format!("{m}; {more}")),
            AppError::UpdateFailed(m) => AppError::UpdateFailed(format!("{m}; {more}")),
            AppError::Usage(m) => AppError::Usage(format!("{m}; {more}")),
            AppError::Locked(m) => AppError::Locked(format!("{m}; {more}")),
            AppError::NotOffered(m) => AppError::NotOffered(format!("{m}; {more}")),
            other => other,
        }
    }

    /// A short word for the state file and metrics.
    pub fn word(&self) -> &'static str {
        match self.exit() {
            Exit::Ok => "ok",
            Exit::NoTarget => "no-target",
            Exit::Usage => "config-error",
            Exit::Refused => "refused",
            Exit::UpdateFailed => "update-failed",
            Exit::Locked => "locked",
            Exit::RolledBack => "rolled-back",
            Exit::RollbackFailed => "rollback-failed",
            Exit::Interrupted => "interrupted",
        }
    }
}

/// What a package manager's "not valid yet" (a Release file dated after
/// this host's clock, a certificate not yet valid) says of the clock: the
/// sentence that names it, or `None`.
pub fn clock_hint(text: &str) -> Option<String> {
    let t = text.to_ascii_lowercase();
    (t.contains("not valid yet") || t.contains("not yet valid")).then(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        format!(
            "\"not valid yet\" means this host's clock is behind (it reads {}): check the clock (timedatectl status, NTP); the next run tries again",
            crate::schedule::rfc3339(now)
        )
    })
}
