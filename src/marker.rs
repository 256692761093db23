//! The unhealthy marker (`mark-unhealthy` in the configuration directory):
//! left by a run that saw the agent unhealthy for the first time, so the
//! next run knows the agent was unhealthy before too.
//!
//! "Unhealthy on two consecutive runs" must mean two observations some time
//! apart (`unhealthy-interval`, default 5 minutes), not two runs a second
//! apart (a manual run right after the timer's, or a re-check started at
//! once): the agent rewrites its schedule about every 40 minutes and may
//! just have restarted. So the marker records when it was first written (the
//! Unix time as its content; a marker from an earlier version, empty, counts
//! from its modification time), a younger marker does not count yet and is
//! left as it is (its time is never pushed forward), and a marker dated in
//! the future (a clock step) is written anew.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

/// The default of `unhealthy-interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

/// What the marker says at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// No marker.
    Absent,
    /// Written at `since` (Unix seconds).
    Since(i64),
}

impl Marker {
    /// Read the marker. An unreadable or odd marker counts from its
    /// modification time; one that is not a regular file is absent (it is
    /// replaced when the run writes the marker).
    pub fn read(path: &Path) -> Marker {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_file() => m,
            _ => return Marker::Absent,
        };
        let from_text = crate::fsread::read_text(path, 64)
            .ok()
            .flatten()
            .and_then(|t| t.trim().parse::<i64>().ok());
        Marker::Since(from_text.unwrap_or(meta.mtime()))
    }

    /// Whether this marker is an earlier observation of an unhealthy agent
    /// that counts now: present and at least `interval` old.
    pub fn counts(self, now: i64, interval: Duration) -> bool {
        match self {
            Marker::Absent => false,
            Marker::Since(t) => t <= now && now - t >= interval.as_secs() as i64,
        }
    }

    pub fn is_present(self) -> bool {
        self != Marker::Absent
    }
}

/// Leave the marker as the decision says: remove it, or make sure it is
/// there, keeping the time of the first observation unless it lies in the
/// future.
pub fn set(path: &Path, present: bool, now: i64) -> std::io::Result<()> {
    if !present {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    match Marker::read(path) {
        Marker::Since(t) if t <= now => Ok(()),
        _ => backends::write_atomic(path, format!("{now}\n").as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_MIN: Duration = Duration::from_secs(300);

    #[test]
    fn a_marker_counts_only_once_old_enough_and_keeps_its_first_time() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("mark-unhealthy");
        assert_eq!(Marker::read(&p), Marker::Absent);
        assert!(!Marker::read(&p).counts(1000, FIVE_MIN));
        set(&p, true, 1000).unwrap();
        assert_eq!(Marker::read(&p), Marker::Since(1000));
        // a second run one second later: not yet, and the time stays
        assert!(!Marker::read(&p).counts(1001, FIVE_MIN));
        set(&p, true, 1001).unwrap();
        assert_eq!(Marker::read(&p), Marker::Since(1000));
        assert!(!Marker::read(&p).counts(1299, FIVE_MIN));
        assert!(Marker::read(&p).counts(1300, FIVE_MIN));
        // an interval of 0 is v1's rule: any earlier run counts
        assert!(Marker::read(&p).counts(1000, Duration::ZERO));
        set(&p, false, 1400).unwrap();
        assert_eq!(Marker::read(&p), Marker::Absent);
        set(&p, false, 1400).unwrap();
    }

    #[test]
    fn a_future_marker_does_not_count_and_is_rewritten() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("mark-unhealthy");
        std::fs::write(&p, "5000\n").unwrap();
        assert!(!Marker::read(&p).counts(1000, FIVE_MIN));
        set(&p, true, 1000).unwrap();
        assert_eq!(Marker::read(&p), Marker::Since(1000));
    }

    #[test]
    fn an_empty_marker_from_an_earlier_version_counts_from_its_mtime() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("mark-unhealthy");
        std::fs::write(&p, "").unwrap();
        let mtime = std::fs::metadata(&p).unwrap().mtime();
        assert_eq!(Marker::read(&p), Marker::Since(mtime));
        // a FIFO at the marker path is no marker and does not hang
        let f = d.path().join("fifo");
        nix::unistd::mkfifo(&f, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(Marker::read(&f), Marker::Absent);
    }
}
