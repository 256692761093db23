//! One run at a time: an exclusive `flock` on a lock file. The kernel
//! drops it when the process dies, so a killed run cannot leave it stuck.
//!
//! The lock lives in a root-only runtime directory, `/run/teleport-upgrade`
//! (0700; created by systemd with `RuntimeDirectory=` for the timer's runs,
//! and by the program itself, with the same mode, for cron and manual runs).
//! Earlier versions used `/run/lock/teleport-upgrade.lock`: `/run/lock` is
//! world-writable, so a local user could plant a symlink there (root would
//! then truncate a file of the user's choosing) or hold `flock` on the file
//! and stop every update. Now:
//! - the directory is checked with `lstat`: a directory owned by us, not a
//!   symlink, with no group or other access (a looser mode that we own is
//!   tightened; one owned by somebody else is refused);
//! - the file is opened with `O_NOFOLLOW | O_CLOEXEC`, created 0600, and
//!   must be a regular file owned by us; the holder's pid is written through
//!   that descriptor only after the lock is taken, so no link is ever
//!   truncated or written through.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};

use backends::System;

use crate::error::AppError;

/// The runtime directory (as the target system sees it).
pub const LOCK_DIR: &str = "/run/teleport-upgrade";
/// The lock file inside it.
pub const LOCK_FILE: &str = "/run/teleport-upgrade/lock";

pub fn path(system: &System) -> PathBuf {
    system.path(LOCK_FILE)
}

/// Held for the life of the run.
pub struct RunLock {
    _lock: Flock<File>,
}

fn usage(msg: String) -> AppError {
    AppError::Usage(msg)
}

/// Make sure the directory holding the lock is ours and private.
fn secure_dir(dir: &Path) -> Result<(), AppError> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| usage(format!("cannot create {}: {e}", parent.display())))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(usage(format!("cannot create {}: {e}", dir.display()))),
    }
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| usage(format!("cannot inspect {}: {e}", dir.display())))?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.file_type().is_dir() {
        return Err(usage(format!(
            "{} must be a directory owned by uid {me}, but it is {}; remove it",
            dir.display(),
            if meta.file_type().is_symlink() {
                "a symbolic link"
            } else {
                "not a directory"
            }
        )));
    }
    if meta.uid() != me {
        return Err(usage(format!(
            "{} belongs to uid {}, not {me}: someone else created it; remove it so the lock is private",
            dir.display(),
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| usage(format!("cannot make {} private: {e}", dir.display())))?;
    }
    Ok(())
}

fn open(path: &Path) -> Result<File, AppError> {
    if let Some(dir) = path.parent() {
        secure_dir(dir)?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc_eloop()) {
                usage(format!(
                    "the lock file {} is a symbolic link; remove it",
                    path.display()
                ))
            } else {
                usage(format!("cannot open the lock file {}: {e}", path.display()))
            }
        })?;
    let meta = file
        .metadata()
        .map_err(|e| usage(format!("cannot inspect {}: {e}", path.display())))?;
    if !meta.file_type().is_file() || meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(usage(format!(
            "the lock file {} is not a regular file of ours; remove it",
            path.display()
        )));
    }
    Ok(file)
}

/// The width the pid is written in (the kernel's largest pid has 7 digits).
const PID_WIDTH: usize = 10;

fn libc_eloop() -> i32 {
    Errno::ELOOP as i32
}

/// Take the lock without waiting; report the holder if another run has it.
pub fn acquire(path: &Path) -> Result<RunLock, AppError> {
    let file = open(path)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            // The pid in a fixed width, written over the old one: no
            // truncation to zero, which on ext4 frees the block and makes
            // the close flush it (the costliest system call of a no-op).
            let line = format!("{:<PID_WIDTH$}\n", std::process::id());
            let _ = lock.write_all_at(line.as_bytes(), 0);
            if lock.metadata().map(|m| m.len()).ok() != Some(line.len() as u64) {
                let _ = lock.set_len(line.len() as u64);
            }
            Ok(RunLock { _lock: lock })
        }
        Err((_, Errno::EWOULDBLOCK)) => Err(AppError::Locked(format!(
            "another teleport-upgrade run{} holds {}; this run exits without doing anything",
            match state(path) {
                LockState::Held(Some(p)) => format!(" (pid {p})"),
                _ => String::new(),
            },
            path.display()
        ))),
        Err((_, e)) => Err(usage(format!("cannot lock {}: {e}", path.display()))),
    }
}

/// Whether a run holds the lock, as far as this process can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    /// No run holds it (or the file does not exist).
    Free,
    /// A run holds it: its pid when known.
    Held(Option<u32>),
    /// It cannot be told (for example `status` run by a user who cannot
    /// read the root-only directory): why.
    Unknown(String),
}

/// Who holds the lock. The pid comes from the kernel's own table of locks
/// (`/proc/locks`, matched by device and inode), so a pid written into the
/// file by somebody else cannot mislead; the file's content is used only
/// when the kernel's table does not name a process we can see.
pub fn state(path: &Path) -> LockState {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).bits())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return LockState::Free,
        Err(e) => return LockState::Unknown(format!("cannot open {}: {e}", path.display())),
    };
    let meta = match file.metadata() {
        Ok(m) if m.file_type().is_file() => m,
        Ok(_) => return LockState::Unknown(format!("{} is not a regular file", path.display())),
        Err(e) => return LockState::Unknown(format!("cannot inspect {}: {e}", path.display())),
    };
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_) => LockState::Free,
        Err((mut f, Errno::EWOULDBLOCK)) => {
            let from_kernel = std::fs::read_to_string("/proc/locks")
                .ok()
                .and_then(|t| holder_in_proc_locks(&t, meta.dev(), meta.ino()));
            let from_file = || {
                let mut s = String::new();
                f.read_to_string(&mut s).ok()?;
                s.trim().parse().ok()
            };
            LockState::Held(from_kernel.or_else(from_file))
        }
        Err((_, e)) => LockState::Unknown(format!("cannot test the lock {}: {e}", path.display())),
    }
}

/// The pid of a run holding the lock, if one does and it is known.
pub fn holder(path: &Path) -> Option<u32> {
    match state(path) {
        LockState::Held(p) => p,
        _ => None,
    }
}

/// Find the `FLOCK ... WRITE` holder of the file `(dev, ino)` in the text of
/// `/proc/locks` (`1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF`, the
/// device as hexadecimal `major:minor`). A pid of 0 (a process outside our
/// pid namespace) is no answer.
pub fn holder_in_proc_locks(text: &str, dev: u64, ino: u64) -> Option<u32> {
    let want_major = nix::sys::stat::major(dev);
    let want_minor = nix::sys::stat::minor(dev);
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // Blocked waiters are listed as "1: -> FLOCK ...": skip them.
        if f.len() < 6 || f[1] != "FLOCK" || f[3] != "WRITE" {
            return None;
        }
        let pid: u32 = f[4].parse().ok()?;
        let mut id = f[5].split(':');
        let major = u64::from_str_radix(id.next()?, 16).ok()?;
        let minor = u64::from_str_radix(id.next()?, 16).ok()?;
        let inode: u64 = id.next()?.parse().ok()?;
        (major == want_major && minor == want_minor && inode == ino && pid != 0).then_some(pid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_is_refused_and_names_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run/teleport-upgrade/lock");
        let first = acquire(&p).unwrap();
        assert_eq!(holder(&p), Some(std::process::id()));
        let err = acquire(&p).err().expect("second acquire must fail");
        assert!(matches!(err, AppError::Locked(_)));
        assert!(err.to_string().contains(&std::process::id().to_string()));
        drop(first);
        assert_eq!(state(&p), LockState::Free);
        assert!(acquire(&p).is_ok());
        let mode = std::fs::metadata(p.parent().unwrap()).unwrap().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn the_holder_comes_from_the_kernel_not_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("lockdir/lock");
        let _held = acquire(&p).unwrap();
        // a lying pid in the file does not mislead: the kernel's table wins
        std::fs::write(&p, "4242\n").unwrap();
        assert_eq!(state(&p), LockState::Held(Some(std::process::id())));
    }

    #[test]
    fn proc_locks_lines() {
        let dev = nix::sys::stat::makedev(0xfd, 0x01);
        let text = "1: POSIX  ADVISORY  WRITE 99 fd:01:77 0 EOF\n\
                    2: FLOCK  ADVISORY  WRITE 1234 fd:01:77 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 555 fd:01:77 0 EOF\n";
        assert_eq!(holder_in_proc_locks(text, dev, 77), Some(1234));
        assert_eq!(holder_in_proc_locks(text, dev, 78), None);
        assert_eq!(
            holder_in_proc_locks("3: FLOCK  ADVISORY  WRITE 0 fd:01:77 0 EOF\n", dev, 77),
            None
        );
    }

    #[test]
    fn a_symlink_at_the_lock_path_is_refused_and_its_target_untouched() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let dir = d.path().join("rt");
        std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("lock")).unwrap();
        let err = acquire(&dir.join("lock")).err().unwrap();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[test]
    fn a_symlinked_or_loose_directory_is_handled() {
        let d = tempfile::tempdir().unwrap();
        let elsewhere = d.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, d.path().join("rt")).unwrap();
        let err = acquire(&d.path().join("rt/lock")).err().unwrap();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(!elsewhere.join("lock").exists());
        // a directory of ours with a loose mode is tightened
        let loose = d.path().join("loose");
        std::fs::DirBuilder::new()
            .mode(0o777)
            .create(&loose)
            .unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let _l = acquire(&loose.join("lock")).unwrap();
        assert_eq!(std::fs::metadata(&loose).unwrap().mode() & 0o7777, 0o700);
    }
}
