//! dpkg's package database read in process: `<admindir>/status`, the
//! documented deb822 format (dpkg(1), deb-control(5)), one paragraph per
//! package with `Package`, `Status: <want> <flag> <status>`, `Version` and
//! `Architecture`.
//!
//! Saves the `dpkg-query` processes a no-op run would otherwise fork (each a
//! few milliseconds, growing with the size of the database). It is used only
//! when the database is at rest: when dpkg's journal (`<admindir>/updates/`)
//! holds entries not yet folded into `status` (a dpkg killed mid-run, or
//! running now), `status` alone is not the truth, and the caller asks
//! `dpkg-query`, which applies the journal.

use std::path::Path;

/// One package as `status` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `install`, `hold`, `deinstall`, `purge`, `unknown`.
    pub want: String,
    /// `ok` or `reinstreq`.
    pub flag: String,
    /// `installed`, `half-configured`, `unpacked`, `half-installed`,
    /// `triggers-awaited`, `triggers-pending`, `config-files`,
    /// `not-installed`.
    pub status: String,
    pub version: Option<String>,
    pub architecture: Option<String>,
}

impl Entry {
    /// The two first letters of `dpkg-query`'s `${db:Status-Abbrev}`.
    pub fn abbrev(&self) -> String {
        let w = match self.want.as_str() {
            "install" => 'i',
            "hold" => 'h',
            "deinstall" => 'r',
            "purge" => 'p',
            _ => 'u',
        };
        let s = match self.status.as_str() {
            "installed" => 'i',
            "half-configured" => 'F',
            "unpacked" => 'U',
            "half-installed" => 'H',
            "triggers-awaited" => 'W',
            "triggers-pending" => 't',
            "config-files" => 'c',
            _ => 'n',
        };
        format!("{w}{s}")
    }
}

/// Whether dpkg's journal holds entries not yet folded into `status`.
pub fn journal_pending(admindir: &Path) -> bool {
    match std::fs::read_dir(admindir.join("updates")) {
        Ok(rd) => rd.flatten().any(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            // journal entries are numbered; `tmp.i` is a partial write
            !n.is_empty() && (n.bytes().all(|b| b.is_ascii_digit()) || n.starts_with("tmp"))
        }),
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// The entries of `pkg` (one per architecture) in the text of a `status`
/// file. Strict where it matters: a paragraph of `pkg` without a
/// well-formed `Status` is an error, not a guess.
pub fn find(text: &str, pkg: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        // cheap filter before looking at fields: most paragraphs are others'
        let mut name = None;
        let mut status = None;
        let mut version = None;
        let mut arch = None;
        for line in para.lines() {
            if line.starts_with(' ') || line.starts_with('\t') {
                continue; // continuation of a multi-line field
            }
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k {
                "Package" => name = Some(v),
                "Status" => status = Some(v),
                "Version" => version = Some(v),
                "Architecture" => arch = Some(v),
                _ => {}
            }
        }
        if name != Some(pkg) {
            continue;
        }
        let st = status.ok_or_else(|| format!("the paragraph of {pkg} has no Status field"))?;
        let words: Vec<&str> = st.split_whitespace().collect();
        let [want, flag, status] = words.as_slice() else {
            return Err(format!("the Status of {pkg} is not three words: {st:?}"));
        };
        out.push(Entry {
            want: want.to_string(),
            flag: flag.to_string(),
            status: status.to_string(),
            version: version.map(str::to_string),
            architecture: arch.map(str::to_string),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: adduser\nStatus: install ok installed\nPriority: important\nVersion: 3.134\nDescription: add and remove users\n multi-line\n Package: teleport-ent\n\nPackage: teleport-ent\nStatus: hold ok half-configured\nArchitecture: amd64\nVersion: 15.4.3\nDescription: Teleport\n\nPackage: teleport\nStatus: deinstall ok config-files\nVersion: 14.0.0\n";

    #[test]
    fn finds_the_package_and_its_state() {
        let e = find(STATUS, "teleport-ent").unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].abbrev(), "hF");
        assert_eq!(e[0].version.as_deref(), Some("15.4.3"));
        assert_eq!(find(STATUS, "teleport").unwrap()[0].abbrev(), "rc");
        assert_eq!(find(STATUS, "adduser").unwrap()[0].abbrev(), "ii");
        assert!(find(STATUS, "nothing").unwrap().is_empty());
        // a continuation line that looks like a field is not one
        assert_eq!(find(STATUS, "teleport-ent").unwrap().len(), 1);
    }

    #[test]
    fn a_broken_status_is_an_error() {
        assert!(find("Package: x\nVersion: 1\n", "x").is_err());
        assert!(find("Package: x\nStatus: install ok\n", "x").is_err());
    }
}
