//! Key pinning: the Teleport repository must be trusted through one of the
//! release keys the operator lists in `trusted-keys`, and through no other.
//!
//! Package managers check signatures against whatever keys the repository
//! definition points at. Pinning adds the check they cannot make: that
//! those keys are the Teleport release keys the operator expects, that they
//! have not been revoked, and that they have not expired (with a warning a
//! month ahead).
//!
//! Keys are read with gpgme (libgpgme over gpg, loaded at run time only
//! when pinning is configured: see [`gpgme`]) in a throw-away home
//! directory: nothing is imported anywhere. The verdict itself is the pure
//! function [`evaluate`], tested as a table.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::schedule::rfc3339;

pub mod gpgme;

/// How far ahead an expiring pinned key is reported.
pub const EXPIRY_WARNING_SECS: i64 = 30 * 24 * 3600;

/// An OpenPGP fingerprint: 40 (v4) or 64 (v5) upper-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Accepts hex digits with optional spaces between groups, as gpg
    /// prints them (`1234 5678 ...`); nothing else.
    pub fn parse(raw: &str) -> Result<Fingerprint, String> {
        let compact: String = raw.chars().filter(|c| *c != ' ').collect();
        if !(compact.len() == 40 || compact.len() == 64)
            || !compact.chars().all(|c| c.is_ascii_hexdigit())
        {
            return Err(format!(
                "{raw:?} is not an OpenPGP fingerprint (40 or 64 hex digits, as `gpg --show-keys --with-colons` prints in its fpr line)"
            ));
        }
        Ok(Fingerprint(compact.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `trusted-keys` file: one fingerprint per line; `#` comments and blank
/// lines ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pins {
    pub file: PathBuf,
    pub fingerprints: BTreeSet<Fingerprint>,
}

impl Pins {
    pub fn parse(file: &Path, text: &str) -> Result<Pins, String> {
        let mut fingerprints = BTreeSet::new();
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let f = Fingerprint::parse(l).map_err(|e| format!("line {}: {e}", i + 1))?;
            fingerprints.insert(f);
        }
        if fingerprints.is_empty() {
            return Err("lists no fingerprint; add the Teleport release key's fingerprint, or remove the file to turn pinning off".into());
        }
        Ok(Pins {
            file: file.to_path_buf(),
            fingerprints,
        })
    }

    fn contains(&self, f: &Fingerprint) -> bool {
        self.fingerprints.contains(f)
    }
}

/// What matters of one public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub fingerprint: Fingerprint,
    pub uid: String,
    pub revoked: bool,
    /// The last moment (Unix seconds) the key can make or back valid
    /// signatures: the primary key's expiry, or the latest expiry of its
    /// usable signing keys when that is earlier. `None`: never expires.
    pub usable_until: Option<i64>,
}

impl fmt::Display for KeyInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.uid.is_empty() {
            write!(f, "{}", self.fingerprint)
        } else {
            write!(f, "{} ({})", self.fingerprint, self.uid)
        }
    }
}

/// Where a set of keys was found and what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A keyring the repository definition restricts the repository to
    /// (apt `signed-by`, dnf/zypper `gpgkey=` file): it must hold only
    /// pinned keys.
    RepoKeyring(String),
    /// The rpm database: rpm trusts every key in it for every repository,
    /// so the distribution's own keys are expected there too.
    RpmDatabase,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::RepoKeyring(p) => write!(f, "keyring {p}"),
            Origin::RpmDatabase => f.write_str("the rpm database"),
        }
    }
}

/// The keys found in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySet {
    pub origin: Origin,
    pub keys: Vec<KeyInfo>,
}

/// A passed pin check: what was verified, and what the operator should know.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PinReport {
    pub checked: Vec<String>,
    pub warnings: Vec<String>,
    /// The earliest expiry among the pinned keys in use (Unix seconds).
    pub expires: Option<i64>,
}

/// A pinned key in use: refused when revoked or expired, a warning when it
/// expires soon; its expiry is reported.
fn judge_pinned_key(k: &KeyInfo, now: i64, refusals: &mut Vec<String>, report: &mut PinReport) {
    if k.revoked {
        refusals.push(format!(
            "the pinned key {k} is revoked; install the current Teleport release key and pin it"
        ));
        return;
    }
    match k.usable_until {
        Some(t) if t <= now => refusals.push(format!(
            "the pinned key {k} expired on {}; install the renewed Teleport release key",
            rfc3339(t)
        )),
        Some(t) => {
            if t - now < EXPIRY_WARNING_SECS {
                report.warnings.push(format!(
                    "the pinned key {k} expires on {} (in {} days); install the renewed Teleport release key before then",
                    rfc3339(t),
                    (t - now) / 86400
                ));
            }
            report.expires = Some(report.expires.map_or(t, |e| e.min(t)));
        }
        None => {}
    }
}

/// The verdict: refuse (with every reason) or accept with a report.
pub fn evaluate(pins: &Pins, sets: &[KeySet], now: i64) -> Result<PinReport, String> {
    let pinfile = pins.file.display();
    let mut refusals = Vec::new();
    let mut report = PinReport::default();
    if sets.is_empty() {
        return Err(format!(
            "{pinfile} pins the Teleport release key, but the repository definition names no local keyring to check (add signed-by= or a file:// gpgkey=)"
        ));
    }
    // Pinned keys seen, merged across places: a revocation or an earlier
    // expiry in any copy counts.
    let mut pinned_in_use: Vec<KeyInfo> = Vec::new();
    for set in sets {
        if set.keys.is_empty() {
            if let Origin::RepoKeyring(_) = set.origin {
                refusals.push(format!("{} holds no OpenPGP public key", set.origin));
            }
            continue;
        }
        let (pinned, other): (Vec<&KeyInfo>, Vec<&KeyInfo>) =
            set.keys.iter().partition(|k| pins.contains(&k.fingerprint));
        match set.origin {
            // A keyring without any pinned key is reported once, below.
            Origin::RepoKeyring(_) if pinned.is_empty() => {}
            Origin::RepoKeyring(_) => {
                for k in &other {
                    refusals.push(format!(
                        "{} also trusts {k}, which {pinfile} does not pin; remove that key from the keyring (or pin it)",
                        set.origin
                    ));
                }
            }
            Origin::RpmDatabase => {
                if !other.is_empty() {
                    report.checked.push(format!(
                        "the rpm database also holds {} other key(s), which rpm trusts for every repository",
                        other.len()
                    ));
                }
            }
        }
        for k in pinned {
            match pinned_in_use
                .iter_mut()
                .find(|p| p.fingerprint == k.fingerprint)
            {
                Some(p) => {
                    p.revoked |= k.revoked;
                    p.usable_until = match (p.usable_until, k.usable_until) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                None => pinned_in_use.push(k.clone()),
            }
        }
    }
    let repo_sets: Vec<&KeySet> = sets
        .iter()
        .filter(|s| matches!(s.origin, Origin::RepoKeyring(_)))
        .collect();
    for s in &repo_sets {
        if !s.keys.is_empty() && !s.keys.iter().any(|k| pins.contains(&k.fingerprint)) {
            refusals.push(format!(
                "{} holds {} but none of the fingerprints {pinfile} pins",
                s.origin,
                s.keys
                    .iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    if pinned_in_use.is_empty() && refusals.is_empty() {
        refusals.push(format!(
            "none of the keys the repository is trusted through is pinned in {pinfile} (looked in {})",
            sets.iter()
                .map(|s| s.origin.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for k in &pinned_in_use {
        judge_pinned_key(k, now, &mut refusals, &mut report);
    }
    if !refusals.is_empty() {
        return Err(refusals.join("; "));
    }
    report.checked.insert(
        0,
        format!(
            "the repository is trusted through the pinned key(s) {} only ({pinfile})",
            pinned_in_use
                .iter()
                .map(|k| k.fingerprint.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    Ok(report)
}

/// Read every public key in `bytes` (armored or binary, one or many
/// blocks) with libgpgme (loaded at run time, see [`gpgme`]), in a
/// throw-away gpg home: nothing is imported anywhere else.
pub fn read_keys(bytes: &[u8]) -> Result<Vec<KeyInfo>, String> {
    let home = tempfile::Builder::new()
        .prefix("teleport-upgrade-gnupg")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary gpg home: {e}"))?;
    gpgme::read_keys(bytes, home.path())?
        .iter()
        .map(key_info)
        .collect()
}

fn key_info(k: &gpgme::RawKey) -> Result<KeyInfo, String> {
    let fpr = k
        .fingerprint
        .as_deref()
        .ok_or_else(|| "gpgme returned a key without a fingerprint".to_string())?;
    let fingerprint = Fingerprint::parse(fpr)?;
    let uid = k.uid.clone().unwrap_or_default();
    let primary_expiry = k.subkeys.first().and_then(|p| p.expires);
    // The latest expiry among the keys that can sign (None: one never
    // expires); revoked subkeys sign nothing.
    let mut signing: Option<Option<i64>> = None;
    for s in &k.subkeys {
        if s.revoked || !s.can_sign {
            continue;
        }
        let e = s.expires;
        signing = Some(match (signing, e) {
            (None, e) => e,
            (Some(None), _) | (Some(_), None) => None,
            (Some(Some(a)), Some(b)) => Some(a.max(b)),
        });
    }
    let usable_until = match (primary_expiry, signing) {
        // No usable signing key at all: nothing it vouches for can verify.
        (_, None) => Some(i64::MIN),
        (p, Some(s)) => match (p, s) {
            (None, s) => s,
            (p, None) => p,
            (Some(a), Some(b)) => Some(a.min(b)),
        },
    };
    Ok(KeyInfo {
        fingerprint,
        uid,
        revoked: k.revoked,
        usable_until,
    })
}

/// Gather the keys `source` is trusted through on the system `backend`
/// acts on, and judge them against `pins`.
pub fn check(
    backend: &dyn backends::Backend,
    source: &backends::Source,
    runner: &backends::Runner,
    pins: &Pins,
    now: i64,
) -> Result<PinReport, String> {
    let system = backend.system();
    let mut sets = Vec::new();
    for path in &source.keyrings {
        let shown = system.display_path(path);
        let bytes = crate::fsread::read_bounded(path, crate::fsread::STATE_CAP * 16)
            .map_err(|e| e.to_string())
            .and_then(|b| b.ok_or_else(|| "it does not exist".to_string()))
            .map_err(|e| {
                format!(
                    "cannot read {shown}, the keyring the Teleport repository is restricted to: {e}"
                )
            })?;
        let keys = read_keys(&bytes).map_err(|e| format!("{shown}: {e}"))?;
        sets.push(KeySet {
            origin: Origin::RepoKeyring(shown),
            keys,
        });
    }
    if matches!(
        backend.kind(),
        backends::BackendKind::Dnf | backends::BackendKind::Yum | backends::BackendKind::Zypper
    ) {
        let armored = backends::rpmdb::pubkeys(system, runner).map_err(|e| e.to_string())?;
        let keys = if armored.trim().is_empty() {
            Vec::new()
        } else {
            read_keys(armored.as_bytes()).map_err(|e| format!("the rpm database: {e}"))?
        };
        sets.push(KeySet {
            origin: Origin::RpmDatabase,
            keys,
        });
    }
    let mut report = evaluate(pins, &sets, now)?;
    if let Ok((soname, version)) = gpgme::loaded() {
        report
            .checked
            .push(format!("the keys read by gpgme {version} ({soname})"));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const B: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    const C: &str = "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC";
    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86400;

    fn pins(fprs: &[&str]) -> Pins {
        Pins {
            file: PathBuf::from("/etc/teleport-upgrade.d/trusted-keys"),
            fingerprints: fprs
                .iter()
                .map(|f| Fingerprint::parse(f).unwrap())
                .collect(),
        }
    }

    fn key(f: &str, until: Option<i64>, revoked: bool) -> KeyInfo {
        KeyInfo {
            fingerprint: Fingerprint::parse(f).unwrap(),
            uid: "Teleport".into(),
            revoked,
            usable_until: until,
        }
    }

    fn repo(keys: Vec<KeyInfo>) -> KeySet {
        KeySet {
            origin: Origin::RepoKeyring("/usr/share/keyrings/teleport.asc".into()),
            keys,
        }
    }

    fn rpmdb(keys: Vec<KeyInfo>) -> KeySet {
        KeySet {
            origin: Origin::RpmDatabase,
            keys,
        }
    }

    #[test]
    fn fingerprints_parse_strictly() {
        let spaced = "AAAA AAAA AAAA AAAA AAAA  AAAA AAAA AAAA AAAA AAAA";
        assert_eq!(Fingerprint::parse(spaced).unwrap().as_str(), A);
        assert_eq!(
            Fingerprint::parse(&A.to_lowercase()).unwrap().as_str(),
            A,
            "upper-cased"
        );
        for bad in [
            "",
            "0x1234",
            &A[..39],
            &format!("{A}A"),
            "G".repeat(40).as_str(),
            "AAAA-AAAA",
        ] {
            assert!(Fingerprint::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Fingerprint::parse(&"a".repeat(64)).is_ok(), "v5");
    }

    #[test]
    fn pins_file_parses_with_comments_and_names_the_bad_line() {
        let p = Pins::parse(
            Path::new("/x/trusted-keys"),
            &format!("# Teleport release key\n\n{A}\n  {B}  \n"),
        )
        .unwrap();
        assert_eq!(p.fingerprints.len(), 2);
        let e = Pins::parse(Path::new("/x"), &format!("{A}\nnot-a-key\n")).unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        assert!(Pins::parse(Path::new("/x"), "# nothing\n").is_err());
    }

    /// What a row of the verdict table expects.
    enum Want {
        Ok,
        Warn,
        Refuse(&'static str),
    }

    type VerdictRow = (&'static str, Vec<&'static str>, Vec<KeySet>, Want);

    /// The rows: pins, key sets, expected verdict (Ok with a warning or
    /// not, or Err containing a word).
    fn verdict_rows() -> Vec<VerdictRow> {
        use Want::*;
        let far = Some(NOW + 400 * DAY);
        vec![
            (
                "pinned key only",
                vec![A],
                vec![repo(vec![key(A, None, false)])],
                Ok,
            ),
            (
                "one of two pins",
                vec![A, B],
                vec![repo(vec![key(B, far, false)])],
                Ok,
            ),
            (
                "both pins in keyring",
                vec![A, B],
                vec![repo(vec![key(A, far, false), key(B, far, false)])],
                Ok,
            ),
            (
                "keyring lacks the pinned key",
                vec![A],
                vec![repo(vec![key(C, None, false)])],
                Refuse("none of the fingerprints"),
            ),
            (
                "keyring trusts an extra key",
                vec![A],
                vec![repo(vec![key(A, None, false), key(C, None, false)])],
                Refuse("also trusts CCCC"),
            ),
            (
                "empty keyring",
                vec![A],
                vec![repo(vec![])],
                Refuse("holds no OpenPGP"),
            ),
            (
                "no keyring at all",
                vec![A],
                vec![],
                Refuse("names no local keyring"),
            ),
            (
                "expired pinned key",
                vec![A],
                vec![repo(vec![key(A, Some(NOW - DAY), false)])],
                Refuse("expired on"),
            ),
            (
                "expires exactly now",
                vec![A],
                vec![repo(vec![key(A, Some(NOW), false)])],
                Refuse("expired on"),
            ),
            (
                "expires in 29 days",
                vec![A],
                vec![repo(vec![key(A, Some(NOW + 29 * DAY), false)])],
                Warn,
            ),
            (
                "expires in 31 days",
                vec![A],
                vec![repo(vec![key(A, Some(NOW + 31 * DAY), false)])],
                Ok,
            ),
            (
                "revoked pinned key",
                vec![A],
                vec![repo(vec![key(A, None, true)])],
                Refuse("revoked"),
            ),
            (
                "rpm database holds the pin and distribution keys",
                vec![A],
                vec![rpmdb(vec![key(C, None, false), key(A, far, false)])],
                Ok,
            ),
            (
                "rpm database without the pin",
                vec![A],
                vec![rpmdb(vec![key(C, None, false)])],
                Refuse("none of the keys"),
            ),
            (
                "gpgkey file pinned, rpm database not yet imported",
                vec![A],
                vec![repo(vec![key(A, None, false)]), rpmdb(vec![])],
                Ok,
            ),
            (
                "gpgkey file with a foreign key, pin in rpm database",
                vec![A],
                vec![
                    repo(vec![key(C, None, false)]),
                    rpmdb(vec![key(A, None, false)]),
                ],
                Refuse("none of the fingerprints"),
            ),
            (
                "revoked pin in rpm database",
                vec![A],
                vec![
                    repo(vec![key(A, None, false)]),
                    rpmdb(vec![key(A, None, true)]),
                ],
                Refuse("revoked"),
            ),
        ]
    }

    #[test]
    fn verdict_table() {
        use Want::*;
        let rows = verdict_rows();
        for (name, p, sets, want) in rows {
            let got = evaluate(&pins(&p), &sets, NOW);
            match (want, &got) {
                (Ok, Result::Ok(r)) => assert!(r.warnings.is_empty(), "{name}: {r:?}"),
                (Warn, Result::Ok(r)) => {
                    assert_eq!(r.warnings.len(), 1, "{name}: {r:?}");
                    assert!(r.warnings[0].contains("in 29 days"), "{name}: {r:?}");
                }
                (Refuse(word), Err(e)) => {
                    assert!(e.contains(word), "{name}: {e:?} lacks {word:?}");
                    assert!(
                        e.contains("trusted-keys") || e.contains("keyring") || e.contains("key"),
                        "{name}: {e}"
                    );
                }
                (_, got) => panic!("{name}: unexpected {got:?}"),
            }
        }
    }
}
