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
            let who = describe_holder(pid, comm.as_deref());
            if line.contains(&*f.to_string_lossy()) {
                format!("{line}; held by {who}")
            } else {
                format!("{line}; {} is held by {who}", f.display())
            }
        }
        None => line.to_string(),
    })
}

/// The process holding an fcntl write-conflicting lock on `file`, with its
/// command name (an `F_GETLK` test: nothing is taken). The pid is 0 or
/// less for an open file description lock (`F_OFD_SETLK`): the kernel
/// does not say whose it is, and the file is locked all the same.
pub fn lock_holder(file: &Path) -> Option<(i32, Option<String>)> {
    holder(file)
}

/// `process 123 (dnf)`, or what can be said of an open file description
/// lock's holder.
pub fn describe_holder(pid: i32, comm: Option<&str>) -> String {
    match (pid > 0, comm) {
        (true, Some(c)) => format!("process {pid} ({c})"),
        (true, None) => format!("process {pid}"),
        (false, _) => "a process the kernel does not name (an open file description lock)".into(),
    }
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
    if r != 0 || fl.l_type as i32 == libc::F_UNLCK {
        return None;
    }
    let comm = (fl.l_pid > 0)
        .then(|| std::fs::read_to_string(format!("/proc/{}/comm", fl.l_pid)).ok())
        .flatten()
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

    /// An open file description lock (`F_OFD_SETLK`, which a tool may take
    /// instead of a process-owned one): `F_GETLK` reports it with pid -1.
    /// It is a held lock all the same, its holder said to be unnamed; a
    /// free file has none.
    #[test]
    fn an_open_file_description_lock_is_held_by_an_unnamed_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".rpm.lock");
        let f = std::fs::File::create(&path).unwrap();
        assert_eq!(lock_holder(&path), None, "free");
        // SAFETY: fcntl(F_OFD_SETLK) on an open descriptor with a zeroed,
        // filled-in flock (l_pid must be 0 for OFD locks).
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as _;
        fl.l_whence = libc::SEEK_SET as _;
        let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
        let (pid, comm) = lock_holder(&path).expect("an OFD lock is a held lock");
        assert!(pid <= 0, "{pid}");
        assert_eq!(comm, None);
        assert!(describe_holder(pid, None).contains("does not name"));
        drop(f);
        assert_eq!(lock_holder(&path), None, "released with its descriptor");
        assert_eq!(describe_holder(42, Some("dnf")), "process 42 (dnf)");
    }
}
