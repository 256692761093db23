//! A lock request made again when its failure is transient (no answer, a
//! write conflict, the server's store down), a few times with a growing,
//! randomized pause: bounded, so that a run stays well inside the unit's
//! timeouts (at most [`RELEASE_ATTEMPTS`] requests of
//! [`super::client::REQUEST_TIMEOUT`] and [`MAX_PAUSES`] of pauses: about
//! two minutes, against the unit's 45). A definite answer (a full group, an
//! unknown group, a request the server cannot read) is final.
//!
//! A release is asked more often than a take: a take that fails costs
//! this host a timer period; a release that fails costs the fleet a slot
//! for that period (measured with `tests/fleet_lock_stress.rs`: 300
//! clients on one airlock, one run each: 4 requests left 3 slots held, 6
//! left none).

use std::time::Duration;

use super::client::Error;

/// Requests to take a slot, the first included.
pub const TAKE_ATTEMPTS: u32 = 3;

/// Requests to give a slot back, the first included.
pub const RELEASE_ATTEMPTS: u32 = 6;

/// The longest the pauses of one operation add up to.
pub const MAX_PAUSES: Duration = Duration::from_secs(62);

/// The pause before attempt `n` (2, 3, ...): 2^(n-2) seconds plus, at
/// random, up to as much again, so that hosts whose writes met do not meet
/// again.
pub fn pause(n: u32, random: u64) -> Duration {
    let base = 1000u64 << n.saturating_sub(2).min(8);
    Duration::from_millis(base + random % (base + 1))
}

/// `op` until it succeeds, fails for good, or `attempts` are made;
/// `wait` pauses (and says `false` when the run is asked to stop: no more
/// attempts). The last error and the number of attempts on failure.
pub fn retrying<T>(
    attempts: u32,
    mut op: impl FnMut() -> Result<T, Error>,
    mut random: impl FnMut() -> u64,
    mut wait: impl FnMut(Duration) -> bool,
) -> Result<T, (Error, u32)> {
    let mut n = 1;
    loop {
        match op() {
            Ok(t) => return Ok(t),
            Err(e) if !e.transient() || n >= attempts => return Err((e, n)),
            Err(e) => {
                n += 1;
                tracing::info!(
                    attempt = n,
                    "the lock server did not do it ({e}): asking again"
                );
                if !wait(pause(n, random())) {
                    return Err((e, n - 1));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_are_bounded() {
        let worst: Duration = (2..=RELEASE_ATTEMPTS).map(|n| pause(n, u64::MAX - 1)).sum();
        assert!(worst <= MAX_PAUSES, "{worst:?}");
        assert_eq!(pause(2, 0), Duration::from_secs(1));
        assert_eq!(pause(4, 0), Duration::from_secs(4));
    }

    #[test]
    fn transient_failures_are_retried_definite_ones_are_not() {
        let conflict = || Error::Conflict("conflict on semaphore detected, aborting".into());
        // Two conflicts, then done: three requests, two pauses.
        let (mut calls, mut pauses) = (0, vec![]);
        let r = retrying(
            TAKE_ATTEMPTS,
            || {
                calls += 1;
                if calls < 3 {
                    Err(conflict())
                } else {
                    Ok(())
                }
            },
            || 0,
            |d| {
                pauses.push(d);
                true
            },
        );
        assert_eq!((r, calls), (Ok(()), 3));
        assert_eq!(pauses, vec![Duration::from_secs(1), Duration::from_secs(2)]);
        // Never answered: every attempt, then the last error.
        let mut calls = 0;
        let r: Result<(), _> = retrying(
            RELEASE_ATTEMPTS,
            || {
                calls += 1;
                Err(Error::Unreachable("refused".into()))
            },
            || 0,
            |_| true,
        );
        assert_eq!(r.unwrap_err().1, RELEASE_ATTEMPTS);
        assert_eq!(calls, RELEASE_ATTEMPTS);
        // Definite answers: one request.
        for e in [
            Error::Full("all 3 semaphore slots currently locked".into()),
            Error::UnknownGroup("unknown group \"x\"".into()),
            Error::InvalidIdentity("empty client ID".into()),
        ] {
            let mut calls = 0;
            let r: Result<(), _> = retrying(
                RELEASE_ATTEMPTS,
                || {
                    calls += 1;
                    Err(e.clone())
                },
                || 0,
                |_| true,
            );
            assert_eq!((r.unwrap_err().1, calls), (1, 1), "{e}");
        }
        // A stop signal during a pause: no more requests.
        let mut calls = 0;
        let r: Result<(), _> = retrying(
            RELEASE_ATTEMPTS,
            || {
                calls += 1;
                Err(conflict())
            },
            || 0,
            |_| false,
        );
        assert_eq!((r.unwrap_err().1, calls), (1, 1));
    }
}
