//! apt's verification settings: what the updater forces on the command line
//! of every `apt-get`/`apt-cache` it runs (enforcement), and how it reads
//! the configuration apt really uses (audit), with apt's own rules.
//!
//! Enforcement (found in apt.conf(5), apt-secure(8), sources.list(5),
//! `/usr/share/doc/apt/examples/configure-index` and the strings of
//! libapt-pkg 2.6):
//!
//! * `-o` with the strict value of every boolean that can let an unverified
//!   repository or package through: [`ENFORCED`]. `APT::Get::Force-Yes`
//!   is among them: with `-y`, apt's authentication prompt accepts
//!   unauthenticated packages when it is true. `Acquire::Check-Valid-Until`
//!   and `Acquire::Check-Date` are replay protection (a mirror serving
//!   yesterday's signed metadata forever); they are forced on too, since
//!   apt's default is on and only a weakened host differs.
//! * `-c <private file>` with `#clear` of the lists and trees a host could
//!   use to weaken the check without a boolean ([`CLEARED`]):
//!   `Acquire::gpgv::Options` (extra gpgv arguments, e.g. `--keyring` of
//!   another key, `--ignore-time-conflict`), `Acquire::ForceHash` (a weak
//!   hash), `Acquire::Min-ValidTime` (stretches `Valid-Until`),
//!   `APT::Hashes` (marking MD5/SHA1 trusted), `APT::Key` (apt-key's gpgv
//!   command), `Dir::Bin::Methods` (a replacement `gpgv` method), the last
//!   set back to the system's own method directory with `-o`.
//!   `Dir::Bin::apt-key` is set to the system's `apt-key` when there is one.
//! * The single-source list is written by the updater with only the source
//!   options that cannot switch verification off ([`SAFE_SOURCE_OPTIONS`]):
//!   never `trusted`, `allow-insecure`, `allow-weak`,
//!   `allow-downgrade-to-insecure`, `check-valid-until`, `check-date`,
//!   `valid-until-min`/`-max`, `date-max-future`.
//! * `APT::Authentication::TrustCDROM` is forced off (it trusts `cdrom:`
//!   sources without signatures).
//!
//! Audit: `apt-config dump` under the same environment as the refresh
//! (the updater's `APT_CONFIG` under `--root`), so apt itself resolves
//! block syntax, `#include`, `#clear` and spellings; values are judged with
//! apt's `StringToBool` ([`apt_bool`]). The file and line are then looked
//! up in the files apt reads, following `#include`.

use std::path::{Path, PathBuf};

/// Booleans forced on the command line of every apt call: (name, value).
pub const ENFORCED: &[(&str, &str)] = &[
    ("Acquire::AllowInsecureRepositories", "false"),
    ("Acquire::AllowDowngradeToInsecureRepositories", "false"),
    ("Acquire::AllowWeakRepositories", "false"),
    ("Acquire::AllowUnsizedPackages", "false"),
    ("APT::Get::AllowUnauthenticated", "false"),
    ("APT::Get::Force-Yes", "false"),
    ("APT::Authentication::TrustCDROM", "false"),
    ("Acquire::Check-Valid-Until", "true"),
    ("Acquire::Check-Date", "true"),
];

/// Trees cleared (`#clear`) by the updater's `-c` file before its `-o`s.
pub const CLEARED: &[&str] = &[
    "Acquire::gpgv::Options",
    "Acquire::ForceHash",
    "Acquire::Min-ValidTime",
    "APT::Hashes",
    "APT::Key",
    "Dir::Bin::Methods",
];

/// The system's apt method directory (Debian and Ubuntu).
pub const METHODS_DIR: &str = "/usr/lib/apt/methods";
/// The system's apt-key (apt < 2.9 verifies through it).
pub const APT_KEY: &str = "/usr/bin/apt-key";

/// Settings that switch verification off when true: the audit refuses
/// them (the enforcement also neutralises them).
pub const REFUSED_WHEN_TRUE: &[&str] = &[
    "Acquire::AllowInsecureRepositories",
    "Acquire::AllowDowngradeToInsecureRepositories",
    "Acquire::AllowWeakRepositories",
    "APT::Get::AllowUnauthenticated",
    "APT::Get::Force-Yes",
];

/// Settings the audit warns about (neutralised on the command line, and
/// not a switch that lets an unsigned package in by itself).
pub const WARNED_WHEN_TRUE: &[&str] = &["APT::Authentication::TrustCDROM"];
pub const WARNED_WHEN_FALSE: &[&str] = &["Acquire::Check-Valid-Until", "Acquire::Check-Date"];

/// Source options that switch verification off when true (sources.list(5)).
pub const WEAKENING_SOURCE_OPTIONS: &[&str] = &[
    "trusted",
    "allow-insecure",
    "allow-weak",
    "allow-downgrade-to-insecure",
];

/// Source options carried into the updater's own single-source list.
pub const SAFE_SOURCE_OPTIONS: &[&str] =
    &["signed-by", "arch", "lang", "target", "pdiffs", "by-hash"];

/// apt's `StringToBool` (apt-pkg/contrib/strutl.cc): the whole text read by
/// `strtol` base 0 as 0 or 1; else, case-insensitively, no / false /
/// without / off / disable, or yes / true / with / on / enable; else
/// `None` (apt then uses the default). An empty value is "unset" for
/// `FindB`, which never calls it: callers treat `""` as unset.
pub fn apt_bool(text: &str) -> Option<bool> {
    if let Some(n) = strtol_whole(text) {
        if n == 0 || n == 1 {
            return Some(n == 1);
        }
    }
    let t = text.to_ascii_lowercase();
    match t.as_str() {
        "no" | "false" | "without" | "off" | "disable" => Some(false),
        "yes" | "true" | "with" | "on" | "enable" => Some(true),
        _ => None,
    }
}

/// `strtol(text, &end, 0)` when `end` reaches the end of `text`.
fn strtol_whole(text: &str) -> Option<i128> {
    if text.is_empty() {
        // strtol parses nothing and leaves end at the start, which is the
        // end: 0.
        return Some(0);
    }
    let s = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if h.is_empty() {
            // "0x" alone: strtol reads the "0" and stops at "x".
            return None;
        }
        (16, h)
    } else if s.len() > 1 && s.starts_with('0') {
        (8, &s[1..])
    } else {
        (10, s)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let mut n: i128 = 0;
    for c in digits.chars() {
        n = n
            .saturating_mul(radix as i128)
            .saturating_add(c.to_digit(radix)? as i128);
    }
    Some(if neg { -n } else { n })
}

/// `apt-config dump` output as (key, value) pairs, in order; list items
/// (`Key:: "value"`) keep their trailing `::`.
pub fn parse_dump(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| {
            let (k, rest) = l.split_once(" \"")?;
            let v = rest.strip_suffix("\";")?;
            Some((k.to_string(), v.replace("\\\"", "\"")))
        })
        .collect()
}

/// The value apt's `Find(key)` gives (keys are case-insensitive).
pub fn lookup<'a>(dump: &'a [(String, String)], key: &str) -> Option<&'a str> {
    dump.iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// apt's `FindB(key, default)` over a dump.
pub fn find_b(dump: &[(String, String)], key: &str, default: bool) -> bool {
    match lookup(dump, key) {
        None | Some("") => default,
        Some(v) => apt_bool(v).unwrap_or(default),
    }
}

/// Whether `key` has list items (`key::`) or children in the dump.
pub fn children<'a>(dump: &'a [(String, String)], key: &str) -> Vec<&'a (String, String)> {
    let prefix = format!("{}::", key.to_ascii_lowercase());
    dump.iter()
        .filter(|(k, v)| k.to_ascii_lowercase().starts_with(&prefix) && !v.is_empty())
        .collect()
}

/// The files apt reads, in its order: `first` (an `APT_CONFIG` file),
/// the parts directory (names of letters, digits, `_-.`, without a
/// `.disabled`/`.bak`/`.dpkg-*`/`~` ending), then the main file; with
/// `#include`d files in place.
pub fn config_files(first: Option<&Path>, parts: &Path, main: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let push = |p: PathBuf, out: &mut Vec<PathBuf>| expand(&p, out, 0);
    if let Some(f) = first {
        push(f.to_path_buf(), &mut out);
    }
    for p in parts_files(parts) {
        push(p, &mut out);
    }
    push(main.to_path_buf(), &mut out);
    out
}

fn parts_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                && !n.ends_with(".disabled")
                && !n.ends_with(".bak")
                && !n.ends_with('~')
                && !n.contains(".dpkg-")
                && !n.contains(".ucf-")
                && p.is_file()
        })
        .collect();
    v.sort();
    v
}

fn expand(p: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 10 || !p.is_file() {
        return;
    }
    out.push(p.to_path_buf());
    let Ok(text) = crate::fsread::read_to_string(p) else {
        return;
    };
    for line in text.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("#include") {
            let target = rest.trim().trim_end_matches(';').trim().trim_matches('"');
            let t = Path::new(target);
            if target.ends_with('/') || t.is_dir() {
                for f in parts_files(t) {
                    expand(&f, out, depth + 1);
                }
            } else {
                expand(t, out, depth + 1);
            }
        }
    }
}

/// The last (file, 1-based line) among `files` whose text names the last
/// component of `key` (case-insensitive, outside `//` comments): where apt
/// took the value from, as near as a reader can tell.
pub fn locate(files: &[PathBuf], key: &str) -> Option<(PathBuf, usize)> {
    let leaf = key.rsplit("::").next().unwrap_or(key).to_ascii_lowercase();
    let mut found = None;
    for f in files {
        let Ok(text) = crate::fsread::read_to_string(f) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            let l = line.split("//").next().unwrap_or("").to_ascii_lowercase();
            let l = l.trim_start();
            if l.starts_with('#') && !l.starts_with("#clear") {
                continue;
            }
            if l.contains(&leaf) {
                found = Some((f.clone(), i + 1));
            }
        }
    }
    found
}

/// The `-c` file: `#clear` of every tree in [`CLEARED`].
pub fn clear_file_text() -> String {
    let mut s = String::from(
        "// Written by teleport-upgrade: the host's configuration may not weaken signature checks.\n",
    );
    for k in CLEARED {
        s.push_str(&format!("#clear {k};\n"));
    }
    s
}

/// Messages by which apt says it let something unverified through (a
/// successful command must never print them).
pub const UNVERIFIED_OUTPUT: &[&str] = &[
    "cannot be authenticated",
    "Authentication warning overridden",
    "unauthenticated",
    "is not signed",
    "insecure",
    "AllowInsecureRepositories",
    "considered trusted",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_as_apt_reads_them() {
        for t in [
            "1", "yes", "YES", "true", "True", "with", "on", "ON", "enable", "0x1", "01", "+1",
            " 1",
        ] {
            assert_eq!(apt_bool(t), Some(true), "{t:?}");
        }
        for t in [
            "0", "no", "false", "without", "off", "Disable", "00", "-0", "0x0", "",
        ] {
            assert_eq!(apt_bool(t), Some(false), "{t:?}");
        }
        for t in ["2", "-1", "maybe", "1 ", "y", "t", "0x", "ja", "truee"] {
            assert_eq!(apt_bool(t), None, "{t:?}");
        }
    }

    #[test]
    fn dumps_are_read_case_insensitively() {
        let d = parse_dump(
            "Acquire \"\";\nAcquire::AllowInsecureRepositories \"on\";\nacquire::gpgv::Options \"\";\nacquire::gpgv::Options:: \"--keyring=/x\";\nAPT::Get::AllowUnauthenticated \"\";\n",
        );
        assert!(find_b(&d, "Acquire::AllowInsecureRepositories", false));
        assert!(!find_b(&d, "APT::Get::AllowUnauthenticated", false));
        assert!(find_b(&d, "Acquire::Check-Valid-Until", true));
        assert_eq!(children(&d, "Acquire::gpgv::Options").len(), 1);
    }

    #[test]
    fn includes_are_followed_and_the_last_mention_wins() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.conf");
        std::fs::write(
            &outside,
            "Acquire {\n  AllowInsecureRepositories \"enable\";\n};\n",
        )
        .unwrap();
        let parts = dir.path().join("apt.conf.d");
        std::fs::create_dir_all(&parts).unwrap();
        std::fs::write(
            parts.join("10a"),
            "// AllowInsecureRepositories in a comment\n",
        )
        .unwrap();
        std::fs::write(
            parts.join("20b"),
            format!("#include \"{}\";\n", outside.display()),
        )
        .unwrap();
        std::fs::write(
            parts.join("30c.disabled"),
            "Acquire::AllowInsecureRepositories \"1\";\n",
        )
        .unwrap();
        let files = config_files(None, &parts, &dir.path().join("apt.conf"));
        assert_eq!(
            files,
            vec![parts.join("10a"), parts.join("20b"), outside.clone()]
        );
        assert_eq!(
            locate(&files, "Acquire::AllowInsecureRepositories"),
            Some((outside, 2))
        );
    }
}
