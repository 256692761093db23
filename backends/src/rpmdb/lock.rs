//! rpm's transaction lock (`.rpm.lock` beside the database), taken by
//! whichever rpm, dnf or zypper commits first: a tool that finds it taken
//! says "can't create transaction lock on <file>" and gives up. That is
//! another process's lock, to wait for (up to `lock-timeout`) like the
//! tool's own, and its holder is named when the kernel says who it is.

use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::types::System;

/// What rpm prints when another process holds its transaction lock.
pub const TRANSACTION_LOCK: &str = "can't create transaction lock";

/// The line of `text` saying the transaction lock is taken, with the
/// holder named when it can be (`None` when `text` does not say so).
pub fn transaction_lock_taken(text: &str, system: &System) -> Option<String> {
    let line = text.lines().find(|l| l.contains(TRANSACTION_LOCK))?.trim();
    // "... transaction lock on /x/.rpm.lock (Resource temporarily unavailable)"
    let named = line
        .split(" on ")
        .nth(1)
        .and_then(|r| r.split(" (").next())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let candidates: Vec<PathBuf> = named
        .into_iter()
        .chain(
            ["/var/lib/rpm", "/usr/lib/sysimage/rpm", "/root/.rpmdb"]
                .iter()
                .map(|d| system.path(d).join(".rpm.lock")),
        )
        .collect();
    let holder = candidates.iter().find_map(|f| holder(f).map(|h| (f, h)));
    Some(match holder {
        Some((f, (pid, comm))) => {
            let comm = comm.map(|c| format!(" ({c})")).unwrap_or_default();
            if line.contains(&*f.to_string_lossy()) {
                format!("{line}; held by process {pid}{comm}")
            } else {
                format!("{line}; {} is held by process {pid}{comm}", f.display())
            }
        }
        None => line.to_string(),
    })
}

/// The process holding an fcntl write-conflicting lock on `file`, with its
/// command name (an `F_GETLK` test: nothing is taken).
pub fn lock_holder(file: &Path) -> Option<(i32, Option<String>)> {
    holder(file)
}

fn holder(file: &Path) -> Option<(i32, Option<String>)> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(file)
        .ok()?;
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return None;
    }
    // SAFETY: a plain fcntl(F_GETLK) on an open descriptor, into a zeroed
    // flock the call fills in.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut fl) };
    if r != 0 || fl.l_type as i32 == libc::F_UNLCK || fl.l_pid <= 0 {
        return None;
    }
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", fl.l_pid))
        .ok()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    Some((fl.l_pid, comm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_recognised_and_nothing_else() {
        let sys = System::host();
        let text = "Running transaction\nerror: can't create transaction lock on /nonexistent/x/.rpm.lock (Resource temporarily unavailable)\nError: Could not run transaction.\n";
        let got = transaction_lock_taken(text, &sys).unwrap();
        assert!(
            got.starts_with("error: can't create transaction lock on /nonexistent/x/.rpm.lock"),
            "{got}"
        );
        assert_eq!(
            transaction_lock_taken("Error: Transaction test error", &sys),
            None
        );
    }
}
