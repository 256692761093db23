//! The digest the package database records for each file of a package:
//! what the sliced verification compares the bytes it hashes with (see
//! `src/integrity_cache.rs`). dpkg keeps MD5s in `info/<pkg>.md5sums`
//! (read in process); rpm keeps `FILEDIGESTS` in the algorithm of the
//! package's `FILEDIGESTALGO` (asked once, when a verified state is
//! recorded, not on every run).

use std::collections::HashMap;
use std::path::PathBuf;

use crate::cmd::Runner;
use crate::{PkgName, Result, System};

/// A file's recorded digest, as lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileDigest {
    Md5(String),
    Sha256(String),
}

/// rpm's query for the digests of `pkg`'s files: the algorithm, then one
/// `path<TAB>digest` line per file.
pub const RPM_QUERYFORMAT: &str = "%{FILEDIGESTALGO}\\n[%{FILENAMES}\\t%{FILEDIGESTS}\\n]";

/// Parse [`RPM_QUERYFORMAT`]'s output. rpm's algorithm numbers (RFC 4880's
/// hash ids): 1 MD5, 8 SHA-256; `(none)` is a package from before the tag,
/// whose digests are MD5. Other algorithms (SHA-1, SHA-384, SHA-512) give
/// no digest: those files are verified in full, periodically, as before.
/// Directories, symlinks and ghosts have an empty digest and are left out.
pub fn parse_rpm(out: &str) -> HashMap<PathBuf, FileDigest> {
    let mut algo = None;
    let mut map = HashMap::new();
    for line in out.lines() {
        match line.split_once('\t') {
            None => {
                algo = match line.trim() {
                    "1" | "(none)" => Some((32, false)),
                    "8" => Some((64, true)),
                    _ => None,
                }
            }
            Some((path, digest)) => {
                let Some((len, sha)) = algo else { continue };
                let d = digest.trim().to_ascii_lowercase();
                if d.len() != len || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
                    continue;
                }
                let d = if sha {
                    FileDigest::Sha256(d)
                } else {
                    FileDigest::Md5(d)
                };
                map.insert(PathBuf::from(path), d);
            }
        }
    }
    map
}

/// The recorded digests of the installed `pkg`'s files (`rpm -q`).
pub fn rpm(
    system: &System,
    runner: &Runner,
    pkg: &PkgName,
) -> Result<HashMap<PathBuf, FileDigest>> {
    let cl = crate::rpmdb::rpm(system, runner).args(["-q", "--qf", RPM_QUERYFORMAT, pkg.as_str()]);
    let fin = runner.run_ok(&cl)?;
    Ok(parse_rpm(&fin.stdout))
}

/// dpkg's MD5s of `pkg`'s files, read in process.
pub fn dpkg(system: &System, pkg: &PkgName) -> HashMap<PathBuf, FileDigest> {
    crate::dpkg_status::md5sums(&system.path("/var/lib/dpkg"), pkg.as_str())
        .into_iter()
        .map(|(p, d)| (p, FileDigest::Md5(d)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpm_digests_by_algorithm() {
        let sha = "a".repeat(64);
        let md5 = "B".repeat(32);
        let out = format!(
            "8\n/usr/bin/teleport\t{sha}\n/usr/bin\t\n/usr/bin/link\t\n/usr/bin/short\tabc\n"
        );
        let m = parse_rpm(&out);
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[&PathBuf::from("/usr/bin/teleport")],
            FileDigest::Sha256(sha.clone())
        );
        let m = parse_rpm(&format!("(none)\n/usr/bin/tctl\t{md5}\n"));
        assert_eq!(
            m[&PathBuf::from("/usr/bin/tctl")],
            FileDigest::Md5("b".repeat(32))
        );
        // SHA-512 (10): not checked in slices.
        assert!(parse_rpm(&format!("10\n/usr/bin/x\t{}\n", "c".repeat(128))).is_empty());
        // A 64-hex digest under MD5's number is not taken.
        assert!(parse_rpm(&format!("1\n/usr/bin/x\t{sha}\n")).is_empty());
    }
}
