//! Cheap change detection for the integrity check of the agent's
//! executables.
//!
//! A full verification (`dpkg --verify`, `rpm -V`) hashes every file of the
//! package: 200-500 MB for a real agent, hundreds of milliseconds of CPU and
//! I/O on every no-op run. After every verified state (a full verification
//! that found nothing, a repair verified afterwards, an update verified
//! healthy) the updater records, per executable, what the filesystem says of
//! it: device, inode, size, mode, modification and status-change times (with
//! nanoseconds). A later run compares a `stat` of each file with that record
//! and verifies in full only when something differs, when no record exists
//! (or it is of another package or version), or when the last full
//! verification is older than `verify-interval` (default 24 h).
//!
//! What `stat` sees: a file deleted, replaced (new inode), truncated or
//! extended (size), rewritten in place (mtime, and ctime: the kernel sets
//! ctime on every write and every metadata change, and no system call can
//! set it back, so `touch -r` to restore the mtime still moves ctime),
//! chmod/chown (mode, ctime). What it cannot see: content changed below the
//! filesystem (a write to the block device, a disk or memory error flipping
//! bits, a filesystem restored from a snapshot with the same inode numbers,
//! a clock set back before the write). Those are what the periodic full
//! verification is for: silent corruption is still found within
//! `verify-interval`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use backends::System;

/// Where the record lives (as the target system sees it).
pub const FILE: &str = "/var/lib/teleport-upgrade/integrity.json";

/// The default of `verify-interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// What the filesystem said about one executable after it verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    /// As the target system sees it.
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub ctime: i64,
    pub ctime_nsec: i64,
}

impl FileStat {
    fn of(system: &System, path: &Path) -> std::io::Result<FileStat> {
        let m = std::fs::symlink_metadata(system.path(path))?;
        Ok(FileStat {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
            ctime: m.ctime(),
            ctime_nsec: m.ctime_nsec(),
        })
    }

    /// The first field that differs, for the log.
    fn differs(&self, now: &FileStat) -> Option<&'static str> {
        if (self.dev, self.ino) != (now.dev, now.ino) {
            Some("replaced (another inode)")
        } else if self.size != now.size {
            Some("size")
        } else if (self.mode, self.uid, self.gid) != (now.mode, now.uid, now.gid) {
            Some("mode or owner")
        } else if (self.mtime, self.mtime_nsec) != (now.mtime, now.mtime_nsec) {
            Some("modification time")
        } else if (self.ctime, self.ctime_nsec) != (now.ctime, now.ctime_nsec) {
            Some("status change time")
        } else {
            None
        }
    }
}

/// The record of the last full verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub package: String,
    pub version: String,
    /// Unix seconds of the full verification.
    pub verified_at: i64,
    pub files: Vec<FileStat>,
}

/// Whether a full verification is needed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing changed since the full verification at this time.
    Unchanged { verified_at: i64 },
    /// Verify in full, because of this.
    Verify(String),
}

pub fn path(system: &System) -> PathBuf {
    system.path(FILE)
}

/// Compare the record with the files now.
pub fn check(
    system: &System,
    package: &str,
    version: &str,
    now: i64,
    interval: Duration,
) -> Verdict {
    if interval.is_zero() {
        return Verdict::Verify("verify-interval is 0: every run verifies in full".into());
    }
    let text = match crate::fsread::read_bounded(&path(system), crate::fsread::STATE_CAP) {
        Ok(Some(t)) => t,
        Ok(None) => return Verdict::Verify("no record of an earlier verification".into()),
        Err(e) => return Verdict::Verify(format!("the record of the last verification: {e}")),
    };
    let rec: Record = match serde_json::from_slice(&text) {
        Ok(r) => r,
        Err(e) => {
            return Verdict::Verify(format!(
                "the record of the last verification does not parse: {e}"
            ))
        }
    };
    if rec.package != package || rec.version != version {
        return Verdict::Verify(format!(
            "the record is of {} {}, not {package} {version}",
            rec.package, rec.version
        ));
    }
    if rec.files.is_empty() {
        return Verdict::Verify("the record lists no executable".into());
    }
    let age = now - rec.verified_at;
    if age < 0 || age >= interval.as_secs() as i64 {
        return Verdict::Verify(format!(
            "the last full verification is {}h old (verify-interval {}h)",
            age / 3600,
            interval.as_secs() / 3600
        ));
    }
    for f in &rec.files {
        match FileStat::of(system, &f.path) {
            Ok(st) => {
                if let Some(what) = f.differs(&st) {
                    return Verdict::Verify(format!("{} changed: {what}", f.path.display()));
                }
            }
            Err(e) => return Verdict::Verify(format!("{}: {e}", f.path.display())),
        }
    }
    Verdict::Unchanged {
        verified_at: rec.verified_at,
    }
}

/// Record the executables as they are now, after a verification that found
/// nothing wrong.
pub fn record(
    system: &System,
    package: &str,
    version: &str,
    executables: &[PathBuf],
    now: i64,
) -> std::io::Result<()> {
    let files = executables
        .iter()
        .map(|p| FileStat::of(system, p))
        .collect::<std::io::Result<Vec<_>>>()?;
    let rec = Record {
        package: package.into(),
        version: version.into(),
        verified_at: now,
        files,
    };
    let mut bytes = serde_json::to_vec(&rec).expect("record serializes");
    bytes.push(b'\n');
    backends::write_atomic(&path(system), &bytes)
}

/// Drop the record (the package changed, or a verification failed).
pub fn forget(system: &System) {
    match std::fs::remove_file(path(system)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(file = %path(system).display(), "cannot remove the integrity record: {e}")
        }
        _ => {}
    }
}

/// The integrity check of the installed agent's executables, cheap when
/// nothing changed: a full verification (`dpkg --verify` / `rpm -V`, which
/// hashes every file) only when [`check`] says so. A clean full
/// verification is recorded when `record_clean` (not in a dry run); a
/// failing one drops the record.
pub fn verify(
    system: &System,
    backend: &dyn backends::Backend,
    pkg: &backends::PkgName,
    version: &str,
    now: i64,
    interval: Duration,
    record_clean: bool,
) -> backends::Result<Vec<backends::integrity::FileProblem>> {
    if record_clean && backend.kind() == backends::BackendKind::Apt {
        // What this run read of dpkg's database (held?, interrupted?, the
        // version), for the next run to skip reading it (not in a dry run).
        backends::dpkg_status::persist(system, now);
    }
    match check(system, pkg.as_str(), version, now, interval) {
        Verdict::Unchanged { verified_at } => {
            tracing::debug!(
                package = %pkg,
                verified = %crate::schedule::rfc3339(verified_at),
                "the executables are unchanged since their last full verification"
            );
            return Ok(Vec::new());
        }
        Verdict::Verify(why) => {
            tracing::debug!(package = %pkg, "verifying the executables in full: {why}")
        }
    }
    let problems = backend.verify_files(pkg)?;
    if problems.is_empty() {
        if record_clean {
            record_verified(system, backend, pkg, version, now);
        }
    } else {
        forget(system);
    }
    Ok(problems)
}

/// Record what the filesystem says of the executables of `pkg` after they
/// verified (a full verification, or a repair verified afterwards).
pub fn record_verified(
    system: &System,
    backend: &dyn backends::Backend,
    pkg: &backends::PkgName,
    version: &str,
    now: i64,
) {
    let files = match backend.executables(pkg) {
        Ok(f) => f,
        Err(e) => {
            tracing::debug!("cannot list the executables to record them: {e}");
            return;
        }
    };
    if let Err(e) = record(system, pkg.as_str(), version, &files, now) {
        tracing::warn!(file = %path(system).display(), "cannot record the verified executables: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn world() -> (tempfile::TempDir, System, Vec<PathBuf>) {
        let d = tempfile::tempdir().unwrap();
        let system = System::rooted(d.path()).unwrap();
        std::fs::create_dir_all(d.path().join("usr/bin")).unwrap();
        std::fs::write(d.path().join("usr/bin/teleport"), vec![7u8; 4096]).unwrap();
        std::fs::write(d.path().join("usr/bin/tsh"), vec![8u8; 1024]).unwrap();
        let files = vec![
            PathBuf::from("/usr/bin/teleport"),
            PathBuf::from("/usr/bin/tsh"),
        ];
        (d, system, files)
    }

    const DAY: Duration = DEFAULT_INTERVAL;

    #[test]
    fn unchanged_files_need_no_full_verification_until_the_interval() {
        let (_d, sys, files) = world();
        assert!(
            matches!(check(&sys, "teleport-ent", "15.4.3", 100, DAY), Verdict::Verify(w) if w.contains("no record"))
        );
        record(&sys, "teleport-ent", "15.4.3", &files, 100).unwrap();
        assert_eq!(
            check(&sys, "teleport-ent", "15.4.3", 200, DAY),
            Verdict::Unchanged { verified_at: 100 }
        );
        assert!(
            matches!(check(&sys, "teleport-ent", "15.4.3", 100 + 86400, DAY), Verdict::Verify(w) if w.contains("24h"))
        );
        assert!(
            matches!(
                check(&sys, "teleport-ent", "15.4.3", 50, DAY),
                Verdict::Verify(_)
            ),
            "a clock set back"
        );
        assert!(
            matches!(check(&sys, "teleport-ent", "15.4.4", 200, DAY), Verdict::Verify(w) if w.contains("not teleport-ent 15.4.4"))
        );
        assert!(matches!(
            check(&sys, "teleport-ent", "15.4.3", 200, Duration::ZERO),
            Verdict::Verify(_)
        ));
    }

    #[test]
    fn every_kind_of_damage_is_seen() {
        type Damage = fn(&Path);
        let cases: Vec<(&str, Damage)> = vec![
            ("truncated", |p| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(p)
                    .unwrap()
                    .set_len(10)
                    .unwrap()
            }),
            ("deleted", |p| std::fs::remove_file(p).unwrap()),
            ("replaced", |p| {
                let tmp = p.with_extension("new");
                std::fs::write(&tmp, vec![7u8; 4096]).unwrap();
                std::fs::rename(&tmp, p).unwrap();
            }),
            ("same size and mtime, other bytes", |p| {
                let m = std::fs::metadata(p).unwrap();
                let mtime = m.modified().unwrap();
                let mut f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
                f.write_all(&[9u8; 16]).unwrap();
                drop(f);
                std::fs::File::options()
                    .write(true)
                    .open(p)
                    .unwrap()
                    .set_modified(mtime)
                    .unwrap();
                assert_eq!(std::fs::metadata(p).unwrap().modified().unwrap(), mtime);
                assert_eq!(std::fs::metadata(p).unwrap().len(), 4096);
            }),
            ("chmod", |p| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap()
            }),
        ];
        for (name, damage) in cases {
            let (d, sys, files) = world();
            record(&sys, "teleport-ent", "15.4.3", &files, 100).unwrap();
            // ctime has nanosecond resolution here, but make sure a change in
            // the same tick is not what the test relies on
            std::thread::sleep(Duration::from_millis(20));
            damage(&d.path().join("usr/bin/teleport"));
            let v = check(&sys, "teleport-ent", "15.4.3", 200, DAY);
            assert!(
                matches!(&v, Verdict::Verify(w) if w.contains("/usr/bin/teleport")),
                "{name}: {v:?}"
            );
        }
    }

    #[test]
    fn a_damaged_record_means_a_full_verification() {
        let (_d, sys, files) = world();
        record(&sys, "teleport-ent", "15.4.3", &files, 100).unwrap();
        std::fs::write(path(&sys), "{").unwrap();
        assert!(
            matches!(check(&sys, "teleport-ent", "15.4.3", 200, DAY), Verdict::Verify(w) if w.contains("does not parse"))
        );
        forget(&sys);
        assert!(!path(&sys).exists());
        assert!(record(
            &sys,
            "teleport-ent",
            "15.4.3",
            &[PathBuf::from("/usr/bin/gone")],
            1
        )
        .is_err());
    }
}
