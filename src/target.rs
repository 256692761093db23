//! What the version server says, parsed strictly at the boundary.

use std::fmt;

use backends::PkgVersion;

/// A Teleport release version as the version server advertises it:
/// `15.4.3` or `v15.4.3`, optionally with a pre-release (`16.0.0-beta.1`).
/// Build metadata, leading zeros, spaces and anything else are refused.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetVersion(semver::Version);

impl TargetVersion {
    pub fn parse(s: &str) -> Result<Self, String> {
        let v = s.strip_prefix('v').unwrap_or(s);
        if v.is_empty() || v.len() > 64 {
            return Err(format!("{s:?} is not a version"));
        }
        if !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            return Err(format!("{s:?} is not a version (unexpected characters)"));
        }
        let parsed =
            semver::Version::parse(v).map_err(|e| format!("{s:?} is not a version: {e}"))?;
        if !parsed.build.is_empty() {
            return Err(format!("{s:?}: build metadata is not accepted"));
        }
        Ok(TargetVersion(parsed))
    }

    pub fn major(&self) -> u64 {
        self.0.major
    }

    pub fn semver(&self) -> &semver::Version {
        &self.0
    }

    /// The version as package managers spell it: `15.4.3`, with a
    /// pre-release after `~` so that it sorts before the release
    /// (`16.0.0~beta.1`).
    pub fn package_version(&self) -> PkgVersion {
        let v = &self.0;
        let s = if v.pre.is_empty() {
            format!("{}.{}.{}", v.major, v.minor, v.patch)
        } else {
            format!(
                "{}.{}.{}~{}",
                v.major,
                v.minor,
                v.patch,
                v.pre.as_str().replace('-', ".")
            )
        };
        PkgVersion::parse(&s).expect("a semver version is always a valid package version")
    }
}

impl fmt::Display for TargetVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The answer of `/version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The literal `none`: the cluster advertises no target.
    NoTarget,
    Version(TargetVersion),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::NoTarget => f.write_str("none"),
            Target::Version(v) => write!(f, "{v}"),
        }
    }
}

/// Show a hostile body safely in a log line: at most 60 characters,
/// control characters escaped.
pub fn excerpt(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let mut out: String = s.chars().take(60).flat_map(|c| c.escape_debug()).collect();
    if s.chars().count() > 60 {
        out.push_str(&format!("... ({} bytes)", body.len()));
    }
    format!("\"{out}\"")
}

/// Parse the body of `/version`: a version with an optional `v` and an
/// optional single trailing newline (`\n` or `\r\n`), or `none`.
pub fn parse_version_body(body: &[u8]) -> Result<Target, String> {
    let text = std::str::from_utf8(body)
        .map_err(|_| format!("the body is not text: {}", excerpt(body)))?;
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    if text == "none" {
        return Ok(Target::NoTarget);
    }
    TargetVersion::parse(text)
        .map(Target::Version)
        .map_err(|_| {
            format!(
                "expected a version like v15.4.3 or \"none\", got {}",
                excerpt(body)
            )
        })
}

/// Parse the body of `/critical`: yes/no/true/false, case-insensitive,
/// surrounding whitespace ignored.
pub fn parse_critical_body(body: &[u8]) -> Result<bool, String> {
    let text = String::from_utf8_lossy(body);
    match text.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("expected yes or no, got {}", excerpt(body))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Target {
        parse_version_body(s.as_bytes()).unwrap()
    }

    #[test]
    fn good_version_bodies() {
        let want = Target::Version(TargetVersion::parse("15.4.3").unwrap());
        assert_eq!(v("v15.4.3"), want);
        assert_eq!(v("15.4.3"), want);
        assert_eq!(v("v15.4.3\n"), want);
        assert_eq!(v("v15.4.3\r\n"), want);
        assert_eq!(v("none"), Target::NoTarget);
        assert_eq!(v("none\n"), Target::NoTarget);
        assert_eq!(v("v16.0.0-beta.1").to_string(), "16.0.0-beta.1");
    }

    #[test]
    fn hostile_version_bodies() {
        let big = vec![b'1'; 1 << 20];
        let cases: Vec<&[u8]> = vec![
            b"",
            b"\n",
            b"latest",
            b"15.4.3; rm -rf /",
            b"--help",
            b"-15.4.3",
            b"<html><body>502 Bad Gateway</body></html>",
            b"v15.4",
            b"15.4.3.1",
            b"015.4.3",
            b"15.4.3+build.5",
            b" 15.4.3",
            b"15.4.3\n\n",
            b"15.4.3 ",
            b"v15.4.3\nv16.0.0",
            b"15.4.3\x00",
            b"\xff\xfe",
            b"None",
            b"vv15.4.3",
            b"15.4.3-",
            b"15.4.3-beta..1",
            b"15.4.3-$(id)",
            &big,
        ];
        for c in cases {
            assert!(parse_version_body(c).is_err(), "accepted {:?}", excerpt(c));
        }
    }

    #[test]
    fn errors_quote_what_came_back_safely() {
        let e = parse_version_body(b"15.4.3; rm -rf /\n\x1b[31m").unwrap_err();
        assert!(e.contains("rm -rf"), "{e}");
        assert!(
            !e.contains('\x1b'),
            "control characters must be escaped: {e}"
        );
        let e = parse_version_body(&vec![b'a'; 5000]).unwrap_err();
        assert!(e.len() < 200, "{e}");
    }

    #[test]
    fn critical_bodies() {
        for (b, want) in [
            ("yes", true),
            ("YES\n", true),
            ("True", true),
            ("no", false),
            (" false \n", false),
        ] {
            assert_eq!(parse_critical_body(b.as_bytes()), Ok(want), "{b}");
        }
        for b in ["", "maybe", "1", "y", "<html>"] {
            assert!(parse_critical_body(b.as_bytes()).is_err(), "{b}");
        }
    }

    #[test]
    fn package_versions() {
        let t = |s| {
            TargetVersion::parse(s)
                .unwrap()
                .package_version()
                .to_string()
        };
        assert_eq!(t("15.4.3"), "15.4.3");
        assert_eq!(t("v16.0.0-beta.1"), "16.0.0~beta.1");
        assert_eq!(t("16.0.0-rc-2"), "16.0.0~rc.2");
    }

    proptest! {
        #[test]
        fn any_semver_round_trips(a in 0u64..1000, b in 0u64..1000, c in 0u64..1000, nl in any::<bool>(), pre in any::<bool>()) {
            let s = format!("v{a}.{b}.{c}{}", if nl { "\n" } else { "" });
            prop_assert_eq!(parse_version_body(s.as_bytes()), Ok(Target::Version(TargetVersion::parse(&format!("{a}.{b}.{c}")).unwrap())));
            if pre {
                let pre_body = format!("{}.{}.{}-rc.1", a, b, c);
                prop_assert!(parse_version_body(pre_body.as_bytes()).is_ok());
            }
        }

        #[test]
        fn accepted_versions_are_safe_on_a_command_line(s in ".{0,40}") {
            if let Ok(Target::Version(v)) = parse_version_body(s.as_bytes()) {
                let pv = v.package_version();
                prop_assert!(pv.as_str().chars().next().unwrap().is_ascii_digit());
                prop_assert!(pv.as_str().chars().all(|c| c.is_ascii_alphanumeric() || ".~".contains(c)));
            }
        }
    }
}
