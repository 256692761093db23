//! One run at a time: an exclusive `flock` on a lock file. The kernel
//! drops it when the process dies, so a killed run cannot leave it stuck.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use backends::System;

use crate::error::AppError;

pub const LOCK_FILE: &str = "/run/lock/teleport-upgrade.lock";

pub fn path(system: &System) -> PathBuf {
    system.path(LOCK_FILE)
}

/// Held for the life of the run.
pub struct RunLock {
    _lock: Flock<File>,
}

fn open(path: &Path) -> Result<File, AppError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| AppError::Usage(format!("cannot create {}: {e}", dir.display())))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| AppError::Usage(format!("cannot open the lock file {}: {e}", path.display())))
}

/// Take the lock without waiting; report the holder if another run has it.
pub fn acquire(path: &Path) -> Result<RunLock, AppError> {
    let file = open(path)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            let _ = lock.set_len(0);
            let _ = lock.rewind();
            let _ = writeln!(*lock, "{}", std::process::id());
            Ok(RunLock { _lock: lock })
        }
        Err((_, Errno::EWOULDBLOCK)) => Err(AppError::Locked(format!(
            "another teleport-upgrade run{} holds {}; this run exits without doing anything",
            holder(path)
                .map(|p| format!(" (pid {p})"))
                .unwrap_or_default(),
            path.display()
        ))),
        Err((_, e)) => Err(AppError::Usage(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

/// The pid of the run holding the lock, if one does.
pub fn holder(path: &Path) -> Option<u32> {
    let file = File::open(path).ok()?;
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_) => None, // nobody holds it
        Err((mut f, _)) => {
            let mut s = String::new();
            f.read_to_string(&mut s).ok()?;
            s.trim().parse().ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_is_refused_and_names_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run/lock/x.lock");
        let first = acquire(&p).unwrap();
        assert_eq!(holder(&p), Some(std::process::id()));
        let err = acquire(&p).err().expect("second acquire must fail");
        assert!(matches!(err, AppError::Locked(_)));
        assert!(err.to_string().contains(&std::process::id().to_string()));
        drop(first);
        assert_eq!(holder(&p), None);
        assert!(acquire(&p).is_ok());
    }
}
