//! The sliced verification and the at-once check of a changed file (see
//! the parent module's documentation).

use std::io::Read;
use std::time::Duration;

use backends::integrity::{FileFault, FileProblem, Md5, Md5State};
use backends::sha256::{Sha256, Sha256State};
use backends::System;

use super::{FileStat, Record, Slice};

/// The least a run hashes when it hashes at all (12 MiB: about 25 ms of
/// CPU for MD5 here, 7 ms for SHA-256 with SHA-NI, about 35 ms without:
/// inside a no-op's 50 ms budget): the bytes owed
/// accumulate over the runs in between, which hash nothing and write
/// nothing ([`slice_budget`]).
pub const SLICE_BATCH: u64 = 12 << 20;

/// Reads are of this size; a slice stops at a multiple of it.
const CHUNK: usize = 64 << 10;

/// How many bytes this run hashes: what the pace owes, the `remaining`
/// bytes spread over the `until_deadline` seconds left before
/// `verify-interval` has passed, for the `since_last` seconds since the
/// previous slice; nothing while that is less than `batch` (or than what
/// remains, when less), so that most runs hash nothing and the others a
/// batch; everything when the deadline has passed.
///
/// Every byte is still hashed within `verify-interval` when the runs are
/// regular: what is owed lags the pace by less than a batch, and the last
/// batch (`remaining` ≤ `batch`) is owed once the time since the previous
/// slice reaches the time left, which a run meets before the deadline
/// whenever the runs are closer together than half of what is left.
pub fn slice_budget(remaining: u64, since_last: i64, until_deadline: i64, batch: u64) -> u64 {
    if until_deadline <= 0 {
        return remaining;
    }
    let paced = (remaining as u128 * since_last.max(0) as u128).div_ceil(until_deadline as u128);
    let paced = paced.min(u64::MAX as u128) as u64;
    if paced < batch.min(remaining) {
        0
    } else {
        paced
    }
}

/// What hashing (part of) a file found.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Not at its end yet (the slice's budget is spent).
    Partial,
    /// At its end, the digest as recorded.
    Match,
    Fault(FileFault),
}

/// The hash a file's recorded digest is in, resumed from a slice.
enum Hasher {
    Md5(Md5),
    Sha256(Sha256),
}

impl Hasher {
    /// The hash of `f`'s recorded digest at `cur` (its state, or the
    /// start when the state is not of that hash).
    fn resume(f: &FileStat, cur: &Slice) -> Option<(Hasher, String)> {
        if let Some(d) = &f.md5 {
            let st = match <[u32; 4]>::try_from(cur.words.as_slice()) {
                Ok(words) if cur.offset > 0 => Md5State {
                    words,
                    len: cur.offset,
                },
                _ => Md5State::default(),
            };
            return Some((Hasher::Md5(Md5::resume(st)), d.clone()));
        }
        let d = f.sha256.as_ref()?;
        let st = match <[u32; 8]>::try_from(cur.words.as_slice()) {
            Ok(words) if cur.offset > 0 => Sha256State {
                words,
                len: cur.offset,
            },
            _ => Sha256State::default(),
        };
        Some((Hasher::Sha256(Sha256::resume(st)), d.clone()))
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    fn hex(self) -> String {
        match self {
            Hasher::Md5(h) => h.hex(),
            Hasher::Sha256(h) => h.hex(),
        }
    }

    /// (bytes hashed, state words) between whole blocks.
    fn state(&self) -> Option<(u64, Vec<u32>)> {
        match self {
            Hasher::Md5(h) => h.state().map(|s| (s.len, s.words.to_vec())),
            Hasher::Sha256(h) => h.state().map(|s| (s.len, s.words.to_vec())),
        }
    }
}

/// Hash `f` from `cur`'s offset and state, up to `budget` bytes (whole
/// chunks), leaving `cur` where it stopped. Returns the bytes hashed.
fn hash_part(system: &System, f: &FileStat, cur: &mut Slice, budget: u64) -> (u64, Step) {
    use std::io::Seek;
    let Some((mut h, recorded)) = Hasher::resume(f, cur) else {
        // no digest to compare with: the caller's record is not sliceable
        return (0, Step::Fault(FileFault::UNREADABLE));
    };
    let Ok(mut file) = std::fs::File::open(system.path(&f.path)) else {
        return (0, Step::Fault(FileFault::Missing));
    };
    if file.seek(std::io::SeekFrom::Start(cur.offset)).is_err() {
        return (0, Step::Fault(FileFault::UNREADABLE));
    }
    let mut buf = vec![0u8; CHUNK];
    let mut hashed = 0u64;
    while hashed < budget {
        let n = match read_full(&mut file, &mut buf) {
            Ok(n) => n,
            Err(_) => return (hashed, Step::Fault(FileFault::UNREADABLE)),
        };
        h.update(&buf[..n]);
        hashed += n as u64;
        if n < CHUNK {
            let same = recorded == h.hex();
            return (
                hashed,
                if same {
                    Step::Match
                } else {
                    Step::Fault(FileFault::CONTENT)
                },
            );
        }
    }
    let (len, words) = h.state().expect("whole chunks");
    cur.offset = len;
    cur.words = words;
    (hashed, Step::Partial)
}

fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Advance the sliced verification by this run's budget; the problem of a
/// file whose digest, once complete, differs from the record. The record's
/// `slice` (and `verified_at` when a cycle completes) are updated.
pub fn advance(
    system: &System,
    rec: &mut Record,
    now: i64,
    interval: Duration,
    batch: u64,
) -> Vec<FileProblem> {
    let size = |i: usize| rec.files[i].size;
    let total: u64 = (0..rec.files.len()).map(size).sum();
    let done: u64 = (0..rec.slice.file.min(rec.files.len()))
        .map(size)
        .sum::<u64>()
        + rec.slice.offset;
    let remaining = total.saturating_sub(done);
    let until = rec.verified_at + interval.as_secs() as i64 - now;
    // The pace of the runs: since the previous slice, or since the cycle
    // began for its first one.
    let since = match rec.slice.last_run {
        0 => now - rec.verified_at,
        t => now - t,
    };
    let mut budget = slice_budget(remaining, since, until, batch);
    if budget == 0 {
        // Not owed a batch yet: nothing hashed, the record unchanged.
        return Vec::new();
    }
    if until <= 0 {
        tracing::debug!(
            "the last full verification is {}h old (verify-interval {}h): hashing the {} bytes left of the cycle now",
            (now - rec.verified_at) / 3600,
            interval.as_secs() / 3600,
            remaining
        );
    }
    rec.slice.last_run = now;
    while budget > 0 && rec.slice.file < rec.files.len() {
        let f = &rec.files[rec.slice.file];
        let (hashed, step) = hash_part(system, f, &mut rec.slice, budget);
        budget = budget.saturating_sub(hashed);
        match step {
            Step::Partial => break,
            Step::Fault(what) => {
                return vec![FileProblem {
                    path: f.path.clone(),
                    what,
                }]
            }
            Step::Match => {
                rec.slice = Slice {
                    file: rec.slice.file + 1,
                    last_run: now,
                    ..Slice::default()
                };
            }
        }
    }
    if rec.slice.file >= rec.files.len() {
        // every file hashed since `verified_at`: a new cycle
        rec.verified_at = now;
        rec.slice = Slice {
            last_run: now,
            ..Slice::default()
        };
    }
    Vec::new()
}

/// One run's slice, logged.
pub(super) fn slice_run(
    system: &System,
    rec: &mut Record,
    now: i64,
    interval: Duration,
    batch: u64,
) -> Vec<FileProblem> {
    let before = (rec.slice.file, rec.slice.offset);
    let problems = advance(system, rec, now, interval, batch);
    tracing::debug!(
        verified = %crate::schedule::rfc3339(rec.verified_at),
        from = ?before,
        to = ?(rec.slice.file, rec.slice.offset),
        "the executables are unchanged since their last full verification; hashed the next slice"
    );
    problems
}

/// Check the files whose `stat` differs from the record, each in full, at
/// once; a file whose digest is still the recorded one is recorded as it
/// now is.
pub(super) fn check_at_once(
    system: &System,
    rec: &mut Record,
    changed: &[(usize, String)],
) -> Vec<FileProblem> {
    let mut problems = Vec::new();
    for (i, why) in changed {
        let f = &rec.files[*i];
        tracing::debug!("verifying {} at once: {why}", f.path.display());
        match hash_part(system, f, &mut Slice::default(), u64::MAX).1 {
            Step::Match => match FileStat::of(system, &f.path) {
                Ok(mut st) => {
                    st.md5 = f.md5.clone();
                    st.sha256 = f.sha256.clone();
                    rec.files[*i] = st;
                }
                Err(_) => problems.push(FileProblem {
                    path: f.path.clone(),
                    what: FileFault::Missing,
                }),
            },
            Step::Fault(what) => problems.push(FileProblem {
                path: f.path.clone(),
                what,
            }),
            Step::Partial => unreachable!("no budget limit"),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::super::tests::{digests, sha256_digests};
    use super::super::*;
    use super::*;
    use std::os::unix::fs::FileExt;

    const DAY: Duration = DEFAULT_INTERVAL;
    const K: u64 = 1024;

    /// Two executables of 200 KiB and 100 KiB, recorded with their digests
    /// (dpkg's MD5s) at time 100.
    fn sliced_world() -> (tempfile::TempDir, System, Vec<PathBuf>) {
        sliced_world_in(false)
    }

    /// The same with rpm's SHA-256s when `sha`.
    fn sliced_world_in(sha: bool) -> (tempfile::TempDir, System, Vec<PathBuf>) {
        let d = tempfile::tempdir().unwrap();
        let sys = System::rooted(d.path()).unwrap();
        std::fs::create_dir_all(d.path().join("usr/bin")).unwrap();
        let bytes = |n: u64, seed: u8| -> Vec<u8> { (0..n).map(|i| (i as u8) ^ seed).collect() };
        std::fs::write(d.path().join("usr/bin/teleport"), bytes(200 * K, 3)).unwrap();
        std::fs::write(d.path().join("usr/bin/tsh"), bytes(100 * K, 5)).unwrap();
        let files = vec![
            PathBuf::from("/usr/bin/teleport"),
            PathBuf::from("/usr/bin/tsh"),
        ];
        record(
            &sys,
            "teleport-ent",
            "15.4.3",
            &files,
            &if sha {
                sha256_digests(&sys, &files)
            } else {
                digests(&sys, &files)
            },
            100,
        )
        .unwrap();
        (d, sys, files)
    }

    fn unchanged(sys: &System, now: i64) -> Record {
        match check(sys, "teleport-ent", "15.4.3", now, DAY) {
            Verdict::Unchanged(r) => r,
            v => panic!("{v:?}"),
        }
    }

    /// Damage below the filesystem: other bytes, and the record forged to
    /// the file's new `stat`, as a disk fault would leave it.
    fn corrupt_unseen(sys: &System, rec: &mut Record, i: usize, at: u64) {
        let p = sys.path(&rec.files[i].path);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .write_all_at(b"####", at)
            .unwrap();
        let (md5, sha256) = (rec.files[i].md5.clone(), rec.files[i].sha256.clone());
        rec.files[i] = FileStat::of(sys, &rec.files[i].path).unwrap();
        rec.files[i].md5 = md5;
        rec.files[i].sha256 = sha256;
    }

    #[test]
    fn the_cursor_advances_by_the_budget_and_wraps() {
        for sha in [false, true] {
            the_cursor_advances_in(sha);
        }
    }

    fn the_cursor_advances_in(sha: bool) {
        let (_d, sys, _) = sliced_world_in(sha);
        let mut rec = unchanged(&sys, 200);
        assert!(rec.sliceable());
        let mut at = Vec::new();
        // a batch of 1 byte: every run hashes what it owes, whole chunks
        for run in 1..=6 {
            let p = advance(&sys, &mut rec, 100 + run * 1800, DAY, 1);
            assert!(p.is_empty(), "{p:?}");
            at.push((rec.slice.file, rec.slice.offset / K, rec.verified_at));
        }
        assert_eq!(
            at,
            [
                (0, 64, 100),
                (0, 128, 100),
                (0, 192, 100),
                (1, 0, 100), // the 8 KiB left of teleport: what was owed
                (1, 64, 100),
                (0, 0, 100 + 6 * 1800), // tsh done: a new cycle
            ]
        );
        assert_eq!(rec.slice.last_run, 100 + 6 * 1800);
        // the state survives the record
        save(&sys, &rec);
        assert_eq!(unchanged(&sys, 100 + 6 * 1800 + 1).slice, rec.slice);
    }

    #[test]
    fn corruption_is_found_within_the_interval_however_sparse_the_runs() {
        for (gap, sha) in [1800, 30_000, 80_000]
            .into_iter()
            .flat_map(|g| [(g, false), (g, true)])
        {
            let (_d, sys, _) = sliced_world_in(sha);
            let mut rec = unchanged(&sys, 200);
            corrupt_unseen(&sys, &mut rec, 1, 90 * K);
            save(&sys, &rec);
            let mut now = 100;
            let found = loop {
                now += gap;
                assert!(
                    now < 100 + 2 * DAY.as_secs() as i64,
                    "gap {gap}: never found"
                );
                let mut rec = unchanged(&sys, now);
                let p = advance(&sys, &mut rec, now, DAY, 64 * K);
                save(&sys, &rec);
                if !p.is_empty() {
                    break p;
                }
            };
            assert!(
                now <= 100 + DAY.as_secs() as i64,
                "gap {gap}: found at {now}"
            );
            assert_eq!(found[0].path, PathBuf::from("/usr/bin/tsh"));
            assert!(found[0].what.content_changed());
        }
    }

    #[test]
    fn a_stat_change_is_checked_at_once_and_a_device_number_alone_is_not_one() {
        let (_d, sys, _) = sliced_world();
        // another st_dev only (an overlay or bind mount): unchanged
        let mut rec = unchanged(&sys, 200);
        rec.files[0].dev ^= 0xffff;
        rec.files[1].dev = 12345;
        save(&sys, &rec);
        assert!(matches!(
            check(&sys, "teleport-ent", "15.4.3", 300, DAY),
            Verdict::Unchanged(_)
        ));
        // a file rewritten (same size): that file, at once, whatever the cursor
        let p = sys.path("/usr/bin/tsh");
        std::thread::sleep(Duration::from_millis(20));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .write_all_at(b"#", 10)
            .unwrap();
        let Verdict::Changed(mut rec, changed) = check(&sys, "teleport-ent", "15.4.3", 300, DAY)
        else {
            panic!("not seen")
        };
        assert_eq!(changed.iter().map(|c| c.0).collect::<Vec<_>>(), [1]);
        let problems = check_at_once(&sys, &mut rec, &changed);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, PathBuf::from("/usr/bin/tsh"));
    }

    #[test]
    fn a_touched_file_with_its_bytes_intact_is_recorded_anew() {
        let (_d, sys, _) = sliced_world();
        let p = sys.path("/usr/bin/teleport");
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        let Verdict::Changed(mut rec, changed) = check(&sys, "teleport-ent", "15.4.3", 300, DAY)
        else {
            panic!("not seen")
        };
        assert!(check_at_once(&sys, &mut rec, &changed).is_empty());
        save(&sys, &rec);
        assert!(matches!(
            check(&sys, "teleport-ent", "15.4.3", 300, DAY),
            Verdict::Unchanged(_)
        ));
    }

    #[test]
    fn budgets() {
        const M: u64 = 1 << 20;
        const B: u64 = SLICE_BATCH;
        // 200 MB at the start of a day's cycle, a run 30 min after the
        // last slice: 4 MiB owed, less than a batch: nothing
        assert_eq!(slice_budget(192 * M, 1800, 86_400, B), 0);
        // three runs later: a batch and more
        assert_eq!(slice_budget(192 * M, 5400, 86_400, B), 12 * M);
        assert_eq!(slice_budget(192 * M, 7200, 86_400, B), 16 * M);
        // sparse runs: paced to finish before the deadline
        assert_eq!(slice_budget(200 * M, 36_000, 72_000, B), 100 * M);
        // the deadline passed: everything left
        assert_eq!(slice_budget(200 * M, 1800, 0, B), 200 * M);
        // back to back: nothing
        assert_eq!(slice_budget(200 * M, 0, 86_000, B), 0);
        // less than a batch left: owed in full once the time since the
        // last slice reaches the time left
        assert_eq!(slice_budget(5 * M, 1800, 3600, B), 0);
        assert_eq!(slice_budget(5 * M, 1800, 1800, B), 5 * M);
    }

    #[test]
    fn the_runs_between_batches_hash_and_write_nothing() {
        // 300 KiB, batches of 64 KiB, runs every 30 min: about 6 KiB owed
        // per run, so a batch every tenth run or so; every byte hashed
        // within the day all the same.
        let (_d, sys, _) = sliced_world();
        let mut rec = unchanged(&sys, 200);
        let (mut hashing, mut idle) = (0, 0);
        let mut now = 100;
        let cycle_done = loop {
            now += 1800;
            let before = rec.clone();
            assert!(advance(&sys, &mut rec, now, DAY, 64 * K).is_empty());
            if rec == before {
                idle += 1;
            } else {
                hashing += 1;
            }
            if rec.verified_at != 100 {
                break now;
            }
            assert!(now < 100 + 2 * DAY.as_secs() as i64, "never done");
        };
        assert!(cycle_done <= 100 + DAY.as_secs() as i64, "{cycle_done}");
        assert!(idle > 4 * hashing, "{idle} idle runs, {hashing} hashing");
        assert!(hashing >= 3, "{hashing}");
    }
}
