//! Fail points for tests, in the spirit of Zincati's: at every step
//! boundary the executor calls [`hit`] with `before-<step>` or
//! `after-<step>` (also `before-undo`, `after-undo`, `during-verify`).
//! `TELEPORT_UPGRADE_FAILPOINT=<point>[:kill|:fail]` makes the run kill
//! itself with `SIGKILL` there (the default) or fail the step.
//!
//! Honoured only in debug builds (`cfg(debug_assertions)`, what `cargo
//! test` builds): a release build, what the packages ship, compiles [`hit`]
//! to nothing and never reads the variable.

/// The variable naming the fail point.
pub const VAR: &str = "TELEPORT_UPGRADE_FAILPOINT";

/// `Err` when the fail point `point` is set to fail; does not return when
/// it is set to kill.
#[cfg(debug_assertions)]
pub fn hit(point: &str) -> Result<(), String> {
    let Ok(v) = std::env::var(VAR) else {
        return Ok(());
    };
    let (name, action) = v.split_once(':').unwrap_or((v.as_str(), "kill"));
    if name != point {
        return Ok(());
    }
    match action {
        "fail" => Err(format!("fail point {point}")),
        _ => {
            tracing::warn!("fail point {point}: killing this run");
            let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::SIGKILL);
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn hit(_point: &str) -> Result<(), String> {
    Ok(())
}
