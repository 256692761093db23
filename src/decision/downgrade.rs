//! No flapping: a target below the installed version (a fleet rollback,
//! or one proxy of a rolling upgrade answering with its older version) is
//! installed only once it has been seen on two checks at least
//! `unhealthy-interval` apart, or when it is critical (or forced). The
//! first sighting is recorded in the state file ([`LowerSeen`]); an answer
//! that contradicts it is a disagreement of the version server's answers,
//! logged, counted and shown in `status`.

use backends::PkgVersion;
use serde::{Deserialize, Serialize};

use crate::target::{Target, TargetVersion};

/// A target below the installed version, as a check first saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LowerSeen {
    /// The advertised version (`15.4.2`).
    pub version: String,
    /// Unix seconds of the first check that advertised it.
    pub since: i64,
}

/// Whether `target` is below the installed version. An installed version
/// that is not a Teleport release (`15.4.3`, `15.4.3-1`, `16.0.0~beta.1`)
/// is never judged: the target is applied as any other.
pub fn is_lower(target: &TargetVersion, installed: &PkgVersion) -> bool {
    let up = installed.upstream().replacen('~', "-", 1);
    TargetVersion::parse(&up).is_ok_and(|i| *target < i)
}

/// What a check leaves recorded: the lower target and its first sighting
/// (kept while the same one is advertised), or nothing once the target is
/// not below the installed version.
pub fn seen_after(
    target: &Target,
    installed: &PkgVersion,
    before: Option<&LowerSeen>,
    now: i64,
) -> Option<LowerSeen> {
    let Target::Version(t) = target else {
        return None;
    };
    if !is_lower(t, installed) {
        return None;
    }
    let word = t.to_string();
    match before {
        Some(b) if b.version == word => Some(b.clone()),
        _ => Some(LowerSeen {
            version: word,
            since: now,
        }),
    }
}

/// When a lower target `target` is confirmed: `None` when it is (seen at
/// least `interval` seconds before `now`), else the time from which a
/// check confirms it.
pub fn unconfirmed(target: &str, seen: Option<&LowerSeen>, now: i64, interval: i64) -> Option<i64> {
    match seen {
        Some(s) if s.version == target && now - s.since >= interval => None,
        Some(s) if s.version == target => Some(s.since + interval),
        _ => Some(now + interval),
    }
}

/// The version server's answers disagree: a lower target seen before is
/// contradicted by this answer (a different version, or none).
pub fn disagreement(target: &Target, seen: Option<&LowerSeen>) -> Option<String> {
    let s = seen?;
    let now = target.to_string();
    (now != s.version).then(|| {
        format!(
            "the version server's answers disagree: {} (below the installed version) since {}, now {now}",
            s.version,
            crate::schedule::rfc3339(s.since)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tv(s: &str) -> TargetVersion {
        TargetVersion::parse(s).unwrap()
    }
    fn pv(s: &str) -> PkgVersion {
        PkgVersion::parse(s).unwrap()
    }

    #[test]
    fn lower_is_judged_on_the_upstream_release() {
        assert!(is_lower(&tv("15.4.2"), &pv("15.4.3")));
        assert!(is_lower(&tv("15.4.2"), &pv("15.4.3-1")));
        assert!(is_lower(&tv("15.4.2"), &pv("1:15.4.3-1")));
        assert!(is_lower(&tv("16.0.0-beta.1"), &pv("16.0.0")));
        assert!(is_lower(&tv("15.9.9"), &pv("16.0.0~beta.1")));
        assert!(!is_lower(&tv("15.4.3"), &pv("15.4.3-1")));
        assert!(!is_lower(&tv("16.0.0"), &pv("16.0.0~beta.1")));
        assert!(!is_lower(&tv("15.4.4"), &pv("15.4.3")));
        // not a release: not judged
        assert!(!is_lower(&tv("1.0.0"), &pv("2025.1")));
    }

    #[test]
    fn the_first_sighting_is_kept_while_the_same_target_is_advertised() {
        let t = |v: &str| Target::Version(tv(v));
        let first = seen_after(&t("15.4.2"), &pv("15.4.3"), None, 100).unwrap();
        assert_eq!(first.since, 100);
        let again = seen_after(&t("15.4.2"), &pv("15.4.3"), Some(&first), 500);
        assert_eq!(again.as_ref(), Some(&first));
        let other = seen_after(&t("15.4.1"), &pv("15.4.3"), Some(&first), 500).unwrap();
        assert_eq!((other.version.as_str(), other.since), ("15.4.1", 500));
        assert_eq!(
            seen_after(&t("15.4.3"), &pv("15.4.3"), Some(&first), 500),
            None
        );
        assert_eq!(
            seen_after(&Target::NoTarget, &pv("15.4.3"), Some(&first), 500),
            None
        );
        assert_eq!(unconfirmed("15.4.2", Some(&first), 399, 300), Some(400));
        assert_eq!(unconfirmed("15.4.2", Some(&first), 400, 300), None);
        assert_eq!(unconfirmed("15.4.1", Some(&first), 400, 300), Some(700));
        assert_eq!(unconfirmed("15.4.2", None, 400, 0), Some(400));
        assert!(disagreement(&t("15.4.3"), Some(&first)).is_some());
        assert!(disagreement(&t("15.4.2"), Some(&first)).is_none());
        assert!(disagreement(&t("15.4.3"), None).is_none());
    }
}
