//! What a run (and `status`) observes of the agent package besides its
//! version: held?, an interrupted transaction?, executables intact?; and
//! whether the package manager is busy (an orphaned transaction still
//! running), which a run waits out and never "repairs".

use std::path::PathBuf;
use std::time::{Duration, Instant};

use backends::{Backend, BackendKind, PkgName, Source, System};

use crate::decision::PackageState;
use crate::error::AppError;

/// How to check the installed package's executables (see
/// `integrity_cache`): a full verification only when a `stat` of them
/// differs from the last full verification's record, or it is too old.
pub struct Integrity {
    /// The installed version.
    pub version: String,
    pub now: i64,
    /// `verify-interval`.
    pub interval: Duration,
    /// Record a clean full verification (not in a dry run).
    pub record_clean: bool,
}

/// The package's state, each part best-effort (a part that cannot be read
/// is logged and left unknown: it blocks nothing).
pub fn package_state(
    b: &dyn Backend,
    pkg: &PkgName,
    source: Option<&Source>,
    integrity: Integrity,
) -> PackageState {
    let unlocated;
    let source = match source {
        None if !b.hold_needs_source() => {
            unlocated = Source::unlocated();
            Some(&unlocated)
        }
        s => s,
    };
    let held = source.and_then(|s| match b.is_held(s, pkg) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(package = %pkg, "cannot tell whether the agent package is held: {e}");
            None
        }
    });
    let interrupted = b.unfinished_transaction(pkg).unwrap_or_else(|e| {
        tracing::warn!(package = %pkg, "cannot tell whether a package transaction was interrupted: {e}");
        None
    });
    let damaged = match crate::integrity_cache::verify(
        b.system(),
        b,
        pkg,
        &integrity.version,
        integrity.now,
        integrity.interval,
        integrity.record_clean,
    ) {
        Ok(p) if p.is_empty() => None,
        Ok(p) => Some(
            p.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        Err(e) => {
            tracing::warn!(package = %pkg, "cannot verify the agent's executables: {e}");
            None
        }
    };
    let damaged = with_layout(b, pkg, &integrity.version, damaged);
    tracing::info!(
        package = %pkg,
        held = held.map(|h| if h { "yes" } else { "no" }).unwrap_or("unknown"),
        transaction = interrupted.as_deref().unwrap_or("complete"),
        executables = damaged.as_deref().unwrap_or("intact"),
        "checked the agent package"
    );
    PackageState {
        held,
        interrupted,
        damaged,
    }
}

/// The executables' problems with those of the package's links and the
/// unit's binary ([`crate::layout`]) added: a missing or wrong link is
/// repaired by the reinstall; what a reinstall cannot fix (a file in the
/// way, a unit that runs another binary) is said, not repaired at every run.
fn with_layout(
    b: &dyn Backend,
    pkg: &PkgName,
    version: &str,
    damaged: Option<String>,
) -> Option<String> {
    let (fix, other): (Vec<_>, Vec<_>) = crate::layout::observe(b, pkg, version)
        .into_iter()
        .partition(|f| f.reinstall_fixes());
    for f in &other {
        tracing::warn!(package = %pkg, "the agent's binaries are not intact: {f}; a reinstall cannot fix it: fix it by hand");
    }
    let fix: Vec<String> = fix.iter().map(|f| f.to_string()).collect();
    match (damaged, fix.is_empty()) {
        (d, true) => d,
        (None, false) => Some(fix.join(", ")),
        (Some(d), false) => Some(format!("{d}, {}", fix.join(", "))),
    }
}

/// The lock files of `kind`'s package database, as host paths. apt's
/// also: the lists lock (`apt-get update` takes it; apt-daily holds it for
/// minutes) and the archives lock (the download), which apt's
/// `DPkg::Lock::Timeout` does not wait for: apt fails at once on them.
fn lock_files(system: &System, kind: BackendKind) -> Vec<PathBuf> {
    match kind {
        BackendKind::Apt => [
            "/var/lib/dpkg/lock-frontend",
            "/var/lib/dpkg/lock",
            "/var/lib/apt/lists/lock",
            "/var/cache/apt/archives/lock",
        ]
        .iter()
        .map(|p| system.path(p))
        .collect(),
        _ => ["/var/lib/rpm", "/usr/lib/sysimage/rpm", "/root/.rpmdb"]
            .iter()
            .map(|d| system.path(d).join(".rpm.lock"))
            .collect(),
    }
}

/// The process holding a lock of the package database, if any, with its
/// command name (an fcntl lock test: nothing is taken).
pub fn busy(system: &System, kind: BackendKind) -> Option<String> {
    lock_files(system, kind).into_iter().find_map(|f| {
        let (pid, comm) = backends::rpmdb::lock_holder(&f)?;
        Some(format!(
            "{} is locked by {}",
            system.display_path(&f),
            backends::rpmdb::describe_holder(pid, comm.as_deref())
        ))
    })
}

/// Wait until the package database is not locked, up to `wait`; `Locked`
/// (exit 5) after that. A transaction in progress is never repaired.
pub fn wait_until_idle(system: &System, kind: BackendKind, wait: Duration) -> Result<(), AppError> {
    let start = Instant::now();
    let mut said = false;
    while let Some(who) = busy(system, kind) {
        if start.elapsed() >= wait {
            return Err(AppError::Locked(format!(
                "the package manager is busy ({who}) after waiting {} s (lock-timeout): an earlier transaction is still running; the next run checks again",
                wait.as_secs()
            )));
        }
        if !said {
            tracing::info!(
                "the package manager is busy ({who}); waiting up to {} s",
                wait.as_secs()
            );
            said = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}
