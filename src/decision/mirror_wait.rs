//! A target the repository does not offer yet (a mirror lagging behind
//! the version server): how long a host waits for it before a run fails.
//! Pure: the record step ([`crate::update::record`]) gives it the state
//! file's wait and the clock's time.

use crate::error::Exit;
use crate::state::MirrorWait;

/// The wait after this run found `target` not offered at `now`, and the
/// run's exit: 0 while the wait is shorter than `limit` seconds (the
/// mirror catches up within minutes or hours: not an alarm), 4 once it is
/// not (a mirror that never gets it, or a repository misconfigured: an
/// operator must look). A wait for another target starts again.
pub fn judge(
    before: Option<&MirrorWait>,
    target: &str,
    now: i64,
    limit: u64,
) -> (MirrorWait, Exit) {
    let since = match before {
        Some(w) if w.target == target && w.since <= now => w.since,
        _ => now,
    };
    let waited = u64::try_from(now - since).unwrap_or(0);
    let exit = if limit > 0 && waited < limit {
        Exit::Ok
    } else {
        Exit::UpdateFailed
    };
    (
        MirrorWait {
            target: target.to_string(),
            since,
        },
        exit,
    )
}

/// Whether the wait is over: the run found the target offered, installed,
/// or the target changed.
pub fn keep(before: &MirrorWait, target: Option<&str>, installed: Option<&str>) -> bool {
    // An installed version may carry the repository's revision (15.4.3-1).
    let upstream = installed.map(|v| v.split_once('-').map_or(v, |(u, _)| u));
    target == Some(before.target.as_str()) && upstream != target
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(target: &str, since: i64) -> MirrorWait {
        MirrorWait {
            target: target.into(),
            since,
        }
    }

    /// The wait before, the target, now, the limit; the wait's start and
    /// the exit.
    type Row = (Option<MirrorWait>, &'static str, i64, u64, i64, Exit);

    #[test]
    fn table() {
        const DAY: u64 = 86_400;
        let rows: &[Row] = &[
            // First sighting: waits.
            (None, "15.4.3", 1_000, DAY, 1_000, Exit::Ok),
            // The same target an hour later: still waiting, since kept.
            (
                Some(w("15.4.3", 1_000)),
                "15.4.3",
                4_600,
                DAY,
                1_000,
                Exit::Ok,
            ),
            // A day later: fails.
            (
                Some(w("15.4.3", 1_000)),
                "15.4.3",
                1_000 + 86_400,
                DAY,
                1_000,
                Exit::UpdateFailed,
            ),
            // Another target: the wait starts again.
            (
                Some(w("15.4.3", 1_000)),
                "15.4.4",
                1_000 + 86_400,
                DAY,
                87_400,
                Exit::Ok,
            ),
            // 0: fails at once (the behaviour before mirror-wait).
            (None, "15.4.3", 1_000, 0, 1_000, Exit::UpdateFailed),
            // A clock set back: the wait starts again, not negative.
            (
                Some(w("15.4.3", 9_000)),
                "15.4.3",
                5_000,
                DAY,
                5_000,
                Exit::Ok,
            ),
        ];
        for (before, target, now, limit, since, exit) in rows {
            let (got, e) = judge(before.as_ref(), target, *now, *limit);
            assert_eq!(
                (got.since, e),
                (*since, *exit),
                "{before:?} {target} {now} {limit}"
            );
            assert_eq!(got.target, *target);
        }
    }

    #[test]
    fn kept_until_offered_installed_or_changed() {
        let b = w("15.4.3", 1);
        assert!(keep(&b, Some("15.4.3"), Some("15.4.2")));
        assert!(!keep(&b, Some("15.4.3"), Some("15.4.3")));
        assert!(!keep(&b, Some("15.4.3"), Some("15.4.3-1")));
        assert!(!keep(&b, Some("15.4.4"), Some("15.4.2")));
        assert!(!keep(&b, None, Some("15.4.2")));
    }
}
