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
//!
//! **Verification in slices** (where the package database records a digest
//! per file: dpkg's MD5 in `info/<pkg>.md5sums`, read in process; rpm's
//! `FILEDIGESTS`, MD5 or SHA-256, asked once with `rpm -q` when a verified
//! state is recorded, not on every run): instead of hashing the whole package once
//! per `verify-interval` in one run (536 ms of CPU for a 200 MB agent),
//! the runs hash the next slice of the executables, round-robin, in
//! process, and compare each file's digest with dpkg's when its last slice
//! is done. The slices are paced ([`slice_budget`]): the bytes left in the
//! cycle times the time since the previous slice, over the time left
//! before `verify-interval` has passed since the last cycle finished; a run
//! hashes once that reaches a batch ([`SLICE_BATCH`], 12 MiB), and the runs
//! in between hash and write nothing; a run that finds that deadline passed
//! hashes everything left. So every executable is re-hashed within
//! `verify-interval` when the timer runs regularly (at the latest by the
//! first run after it when the machine was off or runs were missed), and
//! with the timer's 30 minutes and a day's interval every third run or so
//! hashes a batch (about 25 ms of CPU) for a 200 MB agent, the others
//! nothing: the daily full verification's
//! cost spread instead of paid in one run. The hash state between runs is saved in the record (MD5's
//! state after a whole number of blocks). A `stat` difference of a file is
//! still checked at once, that whole file. A package whose digests are in
//! another algorithm (SHA-1, SHA-512) is verified in full periodically, as
//! before (`rpm -V`). SHA-256 costs about 1.4 times MD5 here, so a batch
//! stays inside a no-op's 50 ms.
//!
//! **The device number is not compared.** An overlay or bind mount of
//! `/usr`, a snapshot remount, or switching between the host and `--root`
//! changes `st_dev` of every file without touching them; comparing it
//! triggered a full verification for nothing. Without it, what `stat` can
//! miss in addition: another filesystem mounted over the agent's files
//! whose file has the same inode number, size, mode, owner and the same
//! modification *and* status-change times to the nanosecond. In practice
//! only a block-level copy of the same filesystem gives that (a snapshot or
//! image mounted in its place), i.e. the same file as it was at copy time;
//! a copy changed afterwards has a new ctime. That is the class of event
//! the periodic (sliced) verification exists for, and it still finds it
//! within `verify-interval`, so it is acceptable.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use backends::digests::FileDigest;
use backends::integrity::FileProblem;
use backends::System;

mod slices;
pub use slices::{advance, slice_budget, SLICE_BATCH};
use slices::{check_at_once, slice_run};

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
    /// The digest the package database records for it (dpkg's MD5), when
    /// known: what the sliced verification compares with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// Or rpm's SHA-256 of it (`FILEDIGESTS`, algorithm 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
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
            md5: None,
            sha256: None,
        })
    }

    /// The first field that differs, for the log. The device number is
    /// not compared (see the module documentation).
    fn differs(&self, now: &FileStat) -> Option<&'static str> {
        if self.ino != now.ino {
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
    /// Where the sliced verification is in its cycle.
    #[serde(default)]
    pub slice: Slice,
}

/// The cursor of the sliced verification: the file being hashed, how far,
/// and the hash's state there (MD5's 4 words or SHA-256's 8; empty at the
/// start of a file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slice {
    /// Index in `files`.
    pub file: usize,
    /// Bytes of it hashed (a multiple of 64 unless at its end).
    pub offset: u64,
    #[serde(default)]
    pub words: Vec<u32>,
    /// Unix seconds of the last run that hashed a slice (0: none yet).
    pub last_run: i64,
}

impl Record {
    /// Whether every file has a digest to compare with.
    pub fn sliceable(&self) -> bool {
        !self.files.is_empty()
            && self
                .files
                .iter()
                .all(|f| f.md5.is_some() || f.sha256.is_some())
    }
}

/// Whether a full verification is needed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing changed since the full verification (or the last completed
    /// cycle of slices).
    Unchanged(Record),
    /// These files (index in the record, why) differ from the record, which
    /// has their digests: check them at once.
    Changed(Record, Vec<(usize, String)>),
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
    // Sliced: the deadline is the slices' business (`advance`).
    if age < 0 || (age >= interval.as_secs() as i64 && !rec.sliceable()) {
        return Verdict::Verify(format!(
            "the last full verification is {}h old (verify-interval {}h)",
            age / 3600,
            interval.as_secs() / 3600
        ));
    }
    let mut changed = Vec::new();
    for (i, f) in rec.files.iter().enumerate() {
        let why = match FileStat::of(system, &f.path) {
            Ok(st) => match f.differs(&st) {
                Some(what) => format!("{} changed: {what}", f.path.display()),
                None => continue,
            },
            Err(e) => format!("{}: {e}", f.path.display()),
        };
        if !rec.sliceable() {
            return Verdict::Verify(why);
        }
        changed.push((i, why));
    }
    if changed.is_empty() {
        Verdict::Unchanged(rec)
    } else {
        Verdict::Changed(rec, changed)
    }
}

/// Record the executables as they are now, after a verification that found
/// nothing wrong.
pub fn record(
    system: &System,
    package: &str,
    version: &str,
    executables: &[PathBuf],
    digests: &HashMap<PathBuf, FileDigest>,
    now: i64,
) -> std::io::Result<()> {
    let files = executables
        .iter()
        .map(|p| {
            let mut st = FileStat::of(system, p)?;
            match digests.get(p) {
                Some(FileDigest::Md5(d)) => st.md5 = Some(d.clone()),
                Some(FileDigest::Sha256(d)) => st.sha256 = Some(d.clone()),
                None => {}
            }
            Ok(st)
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let rec = Record {
        package: package.into(),
        version: version.into(),
        verified_at: now,
        files,
        slice: Slice::default(),
    };
    let mut bytes = serde_json::to_vec(&rec).expect("record serializes");
    bytes.push(b'\n');
    backends::write_atomic(&path(system), &bytes)
}

/// Save the record as the sliced verification left it: a cache, written
/// without fsync (after a crash, at worst, the next run verifies in full).
fn save(system: &System, rec: &Record) {
    let mut bytes = serde_json::to_vec(rec).expect("record serializes");
    bytes.push(b'\n');
    if let Err(e) = backends::dpkg_status::write_unsynced(&path(system), &bytes) {
        tracing::warn!(file = %path(system).display(), "cannot record the verified executables: {e}");
    }
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
    if record_clean {
        // What this run read of the package database (held?, interrupted?,
        // the version), for the next run to skip reading it (not in a dry
        // run).
        match backend.kind() {
            backends::BackendKind::Apt => backends::dpkg_status::persist(system, now),
            backends::BackendKind::Zypper => {
                backends::rpmdb::known::persist(system, now);
                backends::zypper::held::persist(system, now);
            }
            _ => backends::rpmdb::known::persist(system, now),
        }
    }
    let why = match check(system, pkg.as_str(), version, now, interval) {
        Verdict::Unchanged(mut rec) if rec.sliceable() => {
            let before = rec.clone();
            let problems = slice_run(system, &mut rec, now, interval, SLICE_BATCH);
            if problems.is_empty() && rec == before {
                // No batch owed yet: nothing to write either.
                return Ok(problems);
            }
            return Ok(conclude(system, &rec, problems, record_clean));
        }
        Verdict::Unchanged(rec) => {
            tracing::debug!(
                package = %pkg,
                verified = %crate::schedule::rfc3339(rec.verified_at),
                "the executables are unchanged since their last full verification"
            );
            return Ok(Vec::new());
        }
        Verdict::Changed(mut rec, changed) => {
            let problems = check_at_once(system, &mut rec, &changed);
            return Ok(conclude(system, &rec, problems, record_clean));
        }
        Verdict::Verify(why) => why,
    };
    tracing::debug!(package = %pkg, "verifying the executables in full: {why}");
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

/// After a sliced or at-once check: problems drop the record; otherwise
/// it is saved as it now stands (not in a dry run).
fn conclude(
    system: &System,
    rec: &Record,
    problems: Vec<FileProblem>,
    record_clean: bool,
) -> Vec<FileProblem> {
    if !problems.is_empty() {
        forget(system);
    } else if record_clean {
        save(system, rec);
    }
    problems
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
    let digests = backend.file_digests(pkg).unwrap_or_else(|e| {
        tracing::debug!("cannot read the recorded digests (verified in full, periodically): {e}");
        HashMap::new()
    });
    if let Err(e) = record(system, pkg.as_str(), version, &files, &digests, now) {
        tracing::warn!(file = %path(system).display(), "cannot record the verified executables: {e}");
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::Write;

    pub(super) fn world() -> (tempfile::TempDir, System, Vec<PathBuf>) {
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

    /// dpkg's digests of the files, as `md5sums` would give them.
    pub(super) fn digests(sys: &System, files: &[PathBuf]) -> HashMap<PathBuf, FileDigest> {
        files
            .iter()
            .map(|p| {
                let mut h = backends::integrity::Md5::default();
                h.update(&std::fs::read(sys.path(p)).unwrap());
                (p.clone(), FileDigest::Md5(h.hex()))
            })
            .collect()
    }

    /// As rpm records them for a package built with SHA-256 file digests.
    pub(super) fn sha256_digests(sys: &System, files: &[PathBuf]) -> HashMap<PathBuf, FileDigest> {
        files
            .iter()
            .map(|p| {
                let mut h = backends::sha256::Sha256::default();
                h.update(&std::fs::read(sys.path(p)).unwrap());
                (p.clone(), FileDigest::Sha256(h.hex()))
            })
            .collect()
    }

    #[test]
    fn unchanged_files_need_no_full_verification_until_the_interval() {
        let (_d, sys, files) = world();
        assert!(
            matches!(check(&sys, "teleport-ent", "15.4.3", 100, DAY), Verdict::Verify(w) if w.contains("no record"))
        );
        record(&sys, "teleport-ent", "15.4.3", &files, &HashMap::new(), 100).unwrap();
        assert!(matches!(
            check(&sys, "teleport-ent", "15.4.3", 200, DAY),
            Verdict::Unchanged(rec) if rec.verified_at == 100
        ));
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
            ("replaced (same bytes)", |p| {
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
        for ((name, damage), sliced) in cases.iter().flat_map(|c| [(c, false), (c, true)]) {
            let (d, sys, files) = world();
            let digests = if sliced {
                digests(&sys, &files)
            } else {
                HashMap::new()
            };
            record(&sys, "teleport-ent", "15.4.3", &files, &digests, 100).unwrap();
            // ctime has nanosecond resolution here, but make sure a change in
            // the same tick is not what the test relies on
            std::thread::sleep(Duration::from_millis(20));
            damage(&d.path().join("usr/bin/teleport"));
            let v = check(&sys, "teleport-ent", "15.4.3", 200, DAY);
            if sliced {
                // checked at once, that file only, in full
                let Verdict::Changed(mut rec, changed) = v else {
                    panic!("{name}: {v:?}")
                };
                assert_eq!(changed.len(), 1, "{name}");
                assert!(changed[0].1.contains("/usr/bin/teleport"), "{name}");
                let p = check_at_once(&sys, &mut rec, &changed);
                let content_kept = ["chmod", "replaced (same bytes)"].contains(name);
                assert_eq!(p.is_empty(), content_kept, "{name}: {p:?}");
            } else {
                assert!(
                    matches!(&v, Verdict::Verify(w) if w.contains("/usr/bin/teleport")),
                    "{name}: {v:?}"
                );
            }
        }
    }

    #[test]
    fn a_damaged_record_means_a_full_verification() {
        let (_d, sys, files) = world();
        record(&sys, "teleport-ent", "15.4.3", &files, &HashMap::new(), 100).unwrap();
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
            &HashMap::new(),
            1
        )
        .is_err());
    }
}
