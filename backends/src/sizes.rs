//! What one package version needs on disk, as the repository's metadata
//! says it (read through the package manager, never guessed): its download
//! size and its installed size, in bytes. Parsed strictly: a field that is
//! missing, repeated or not a plain number is no answer.

/// The sizes of one package version, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackageSizes {
    /// The package file's size (what the download writes to the cache).
    pub download: u64,
    /// The size of its files once installed.
    pub installed: u64,
}

/// A plain decimal number of at most 19 digits.
fn number(v: &str) -> Option<u64> {
    let v = v.trim();
    (!v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()))
        .then(|| v.parse().ok())
        .flatten()
}

/// `apt-cache show --no-all-versions pkg=version`: one record, `Size:` in
/// bytes and `Installed-Size:` in KiB (Debian policy 5.6.20). `None` when
/// there is not exactly one record with exactly one of each.
pub fn parse_apt_show(out: &str) -> Option<PackageSizes> {
    let records: Vec<&str> = out.split("\n\n").filter(|r| !r.trim().is_empty()).collect();
    let [record] = records.as_slice() else {
        return None;
    };
    let field = |name: &str| -> Option<u64> {
        let mut found = record
            .lines()
            .filter_map(|l| l.strip_prefix(name)?.strip_prefix(':'));
        let v = found.next()?;
        found.next().is_none().then(|| number(v)).flatten()
    };
    Some(PackageSizes {
        download: field("Size")?,
        installed: field("Installed-Size")?.checked_mul(1024)?,
    })
}

/// `dnf repoquery --qf '%{downloadsize} %{installsize}'`: one line of two
/// numbers (bytes) per matching package; `None` unless every such line
/// agrees (one package, or the same sizes in several repositories).
pub fn parse_repoquery(out: &str) -> Option<PackageSizes> {
    let mut found: Option<PackageSizes> = None;
    for l in out.lines() {
        let mut w = l.split_whitespace();
        let (Some(d), Some(i), None) = (w.next(), w.next(), w.next()) else {
            continue;
        };
        let (Some(download), Some(installed)) = (number(d), number(i)) else {
            continue;
        };
        let s = PackageSizes {
            download,
            installed,
        };
        match found {
            Some(f) if f != s => return None,
            _ => found = Some(s),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_records_are_read_strictly() {
        let r = "Package: teleport-ent\nVersion: 15.4.3\nInstalled-Size: 3076\nSize: 3150120\nDescription: x\n";
        assert_eq!(
            parse_apt_show(r),
            Some(PackageSizes {
                download: 3150120,
                installed: 3076 * 1024
            })
        );
        assert_eq!(parse_apt_show(&format!("{r}\n{r}")), None, "two records");
        assert_eq!(
            parse_apt_show("Package: x\nSize: 1\n"),
            None,
            "no installed size"
        );
        assert_eq!(
            parse_apt_show("Size: 1\nSize: 2\nInstalled-Size: 1\n"),
            None
        );
        assert_eq!(parse_apt_show("Size: -1\nInstalled-Size: 1\n"), None);
        assert_eq!(parse_apt_show("Size: 1e9\nInstalled-Size: 1\n"), None);
        assert_eq!(parse_apt_show(""), None);
    }

    #[test]
    fn repoquery_lines_are_read_strictly() {
        assert_eq!(
            parse_repoquery("3150120 3149824\n"),
            Some(PackageSizes {
                download: 3150120,
                installed: 3149824
            })
        );
        assert_eq!(parse_repoquery("1 2\n1 2\n").map(|s| s.download), Some(1));
        assert_eq!(parse_repoquery("1 2\n3 4\n"), None, "disagreeing");
        assert_eq!(parse_repoquery("Last metadata expiration check\n"), None);
        assert_eq!(parse_repoquery("1 2 3\n"), None);
    }
}
