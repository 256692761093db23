//! Fail points for tests, in the spirit of Zincati's: at every step
//! boundary the executor calls [`hit`] with `before-<step>` or
//! `after-<step>` (also `before-undo`, `after-undo`, `during-verify`).
//! `TELEPORT_UPGRADE_FAILPOINT=<point>[:kill|:fail|:fill=<file>|:pause=<ms>]`
//! makes the run kill itself with `SIGKILL` there (the default), fail the
//! step, fill the file system of `<file>` (writing zeros to it until the
//! kernel says it is full, at most 256 MiB) and go on: a disk that fills up
//! at that very moment; or pause `<ms>` milliseconds and go on (another
//! process takes a lock at that very moment).
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
    if let Some(file) = action.strip_prefix("fill=") {
        use std::io::Write;
        tracing::warn!("fail point {point}: filling the file system of {file}");
        let mut f = std::fs::File::create(file).map_err(|e| format!("fail point {point}: {e}"))?;
        // Whole chunks, then smaller ones: to the last byte that fits.
        let (mut left, chunk) = (256usize << 20, vec![0u8; 64 * 1024]);
        for size in [64 * 1024, 4096, 512, 1] {
            while left >= size && f.write_all(&chunk[..size]).is_ok() {
                left -= size;
            }
        }
        let _ = f.sync_all();
        return Ok(());
    }
    if let Some(ms) = action.strip_prefix("pause=") {
        let ms: u64 = ms
            .parse()
            .map_err(|_| format!("fail point {point}: pause={ms}"))?;
        tracing::warn!("fail point {point}: pausing {ms} ms");
        std::thread::sleep(std::time::Duration::from_millis(ms));
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
