//! Server-supplied jitter: when the proxy's `/webapi/find` advertises
//! `agent_update_jitter_seconds`, a routine (window) update first waits a
//! random delay up to it, so a fleet whose window opens at once does not
//! restart in the same second. Capped at [`MAX_JITTER`], well inside the
//! unit's `TimeoutStartSec`; critical, unhealthy and forced updates do not
//! wait. The wait goes through the injected [`Clock`], and a stop signal
//! ends it.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use crate::health::Clock;

/// The longest jitter wait, whatever the proxy says.
pub const MAX_JITTER: Duration = Duration::from_secs(120);

/// `auto_update.agent_update_jitter_seconds` of a `/webapi/find` body.
pub fn jitter_seconds(find_body: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(find_body).ok()?;
    v.get("auto_update")?
        .get("agent_update_jitter_seconds")?
        .as_u64()
        .filter(|s| *s > 0)
}

/// The delay for `jitter` seconds and a random number: uniform in
/// `0..=min(jitter, MAX_JITTER)` whole seconds.
pub fn delay(jitter: u64, random: u64) -> Duration {
    let max = jitter.min(MAX_JITTER.as_secs());
    Duration::from_secs(random % (max + 1))
}

/// A random number (the standard library's per-process random hash keys).
pub fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish()
}

/// Wait `d` in steps of at most a second; `Err(signal)` when a stop
/// signal arrives meanwhile.
pub fn wait(clock: &dyn Clock, d: Duration) -> Result<(), &'static str> {
    let mut left = d;
    while !left.is_zero() {
        if let Some(sig) = super::signals::received() {
            return Err(sig);
        }
        let step = left.min(Duration::from_secs(1));
        clock.sleep(step);
        left -= step;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    struct Recording(RefCell<Vec<Duration>>);

    impl Clock for Recording {
        fn now(&self) -> i64 {
            0
        }
        fn sleep(&self, d: Duration) {
            self.0.borrow_mut().push(d);
        }
    }

    #[test]
    fn jitter_from_find() {
        assert_eq!(
            jitter_seconds(
                br#"{"auto_update":{"agent_version":"1.2.3","agent_update_jitter_seconds":60}}"#
            ),
            Some(60)
        );
        for none in [
            &br#"{"auto_update":{"agent_update_jitter_seconds":0}}"#[..],
            br#"{"auto_update":{"agent_update_jitter_seconds":-5}}"#,
            br#"{"auto_update":{"agent_update_jitter_seconds":"60"}}"#,
            br#"{"server_version":"1.2.3"}"#,
            b"<html>",
        ] {
            assert_eq!(jitter_seconds(none), None, "{none:?}");
        }
    }

    #[test]
    fn the_delay_is_bounded_and_waited_on_the_injected_clock() {
        for (jitter, random, want) in [
            (60, 0, 0),
            (60, 59, 59),
            (60, 60, 60),
            (60, 61, 0),
            (86_400, u64::MAX, u64::MAX % 121),
            (86_400, 120, 120),
        ] {
            assert_eq!(delay(jitter, random).as_secs(), want, "{jitter} {random}");
        }
        for r in 0..1000 {
            assert!(delay(u64::MAX, r * 7919) <= MAX_JITTER);
        }
        let c = Recording(RefCell::new(Vec::new()));
        wait(&c, Duration::from_millis(2500)).unwrap();
        assert_eq!(
            *c.0.borrow(),
            [
                Duration::from_secs(1),
                Duration::from_secs(1),
                Duration::from_millis(500)
            ]
        );
    }
}
