//! `.repo`, `dnf.conf`, `yum.conf` and `zypp.conf` INI files, parsed with
//! file and line positions (for trust findings), and the `.repo` files of
//! a directory.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// One `key=value` setting, possibly continued on following indented lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniEntry {
    /// Lowercased key.
    pub key: String,
    /// The value, continuation lines joined with `\n`.
    pub value: String,
    /// 1-based first and last line.
    pub line: usize,
    pub end_line: usize,
}

/// One `[section]` of an INI file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniSection {
    /// The file (host path).
    pub file: PathBuf,
    /// The section name: a repo id (zypper: alias), or `main`.
    pub id: String,
    /// 1-based line of the `[id]` header.
    pub line: usize,
    pub entries: Vec<IniEntry>,
}

impl IniSection {
    /// The last setting of `key` (later ones win, as in dnf and libzypp).
    pub fn get(&self, key: &str) -> Option<&IniEntry> {
        self.entries.iter().rev().find(|e| e.key == key)
    }

    pub fn value(&self, key: &str) -> Option<&str> {
        self.get(key).map(|e| e.value.as_str())
    }

    /// A boolean setting as dnf reads it, and its line; `None` when unset
    /// or not a boolean dnf accepts (dnf then keeps the inherited value).
    pub fn bool(&self, key: &str) -> Option<(bool, usize)> {
        self.bool_as(key, parse_bool)
    }

    /// A boolean setting read with `parse` (dnf's or libzypp's spellings).
    /// The last setting of `key` that `parse` understands wins.
    pub fn bool_as(&self, key: &str, parse: fn(&str) -> Option<bool>) -> Option<(bool, usize)> {
        let e = self.get(key)?;
        parse(&e.value).map(|b| (b, e.line))
    }

    /// A list setting (space, comma or newline separated), all occurrences.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e.key == key)
            .flat_map(|e| split_list(&e.value))
            .collect()
    }

    /// `baseurl` entries, else `mirrorlist` / `metalink`.
    pub fn urls(&self) -> Vec<String> {
        let mut v = self.list("baseurl");
        if v.is_empty() {
            v = self.list("mirrorlist");
        }
        if v.is_empty() {
            v = self.list("metalink");
        }
        v
    }

    pub fn gpgkeys(&self) -> Vec<String> {
        self.list("gpgkey")
    }

    /// `enabled` (default on).
    pub fn enabled(&self) -> bool {
        self.bool("enabled").map(|(b, _)| b).unwrap_or(true)
    }

    /// The `name=` of the repository, else its id.
    pub fn name(&self) -> &str {
        self.value("name")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(&self.id)
    }
}

/// dnf's booleans (libdnf `OptionBool`, case-insensitive): `1/yes/true/on`
/// and `0/no/false/off`. Anything else is not a boolean to dnf.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// libzypp's booleans (`str::strToTrue` / `str::strToFalse`,
/// case-insensitive): `1/yes/true/on/always/+` and `0/no/false/off/never/-`.
/// Anything else leaves the setting at its inherited value.
pub fn parse_bool_zypp(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" | "always" | "+" => Some(true),
        "0" | "no" | "false" | "off" | "never" | "-" => Some(false),
        _ => None,
    }
}

/// Split a list value on whitespace and commas.
pub fn split_list(v: &str) -> Vec<String> {
    v.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parse INI text. Comments start with `#` or `;`; a line starting with
/// whitespace continues the previous value; settings before any section
/// are dropped.
pub fn parse_ini(file: &Path, text: &str) -> Vec<IniSection> {
    let mut out: Vec<IniSection> = Vec::new();
    let mut last_was_entry = false;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            // A blank or comment line ends a continuation.
            last_was_entry = false;
            continue;
        }
        if trimmed.starts_with('[') {
            if let Some(end) = trimmed.find(']') {
                out.push(IniSection {
                    file: file.to_path_buf(),
                    id: trimmed[1..end].trim().to_string(),
                    line: n,
                    entries: Vec::new(),
                });
                last_was_entry = false;
                continue;
            }
        }
        let Some(sec) = out.last_mut() else { continue };
        let continued = raw.starts_with([' ', '\t']);
        if continued && last_was_entry {
            if let Some(e) = sec.entries.last_mut() {
                e.value.push('\n');
                e.value.push_str(trimmed);
                e.end_line = n;
            }
            continue;
        }
        if let Some((k, v)) = trimmed.split_once('=') {
            sec.entries.push(IniEntry {
                key: k.trim().to_ascii_lowercase(),
                value: v.trim().to_string(),
                line: n,
                end_line: n,
            });
            last_was_entry = true;
        } else {
            last_was_entry = false;
        }
    }
    out
}

/// Parse one file; a missing file gives no sections.
pub fn read_ini(file: &Path) -> Result<Vec<IniSection>> {
    match crate::fsread::read_to_string(file) {
        Ok(t) => Ok(parse_ini(file, &t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(format!("reading {}", file.display()), e)),
    }
}

/// The `*.repo` files of `dir`, sorted.
pub fn repo_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "repo") && p.is_file())
        .collect();
    v.sort();
    v
}

/// Every repository section of every `.repo` file in `dirs` (the `main`
/// section excluded).
pub fn repo_sections(dirs: &[PathBuf]) -> Vec<IniSection> {
    let mut out = Vec::new();
    for d in dirs {
        for f in repo_files(d) {
            match read_ini(&f) {
                Ok(secs) => out.extend(secs.into_iter().filter(|s| s.id != "main")),
                Err(e) => tracing::warn!(file = %f.display(), "cannot read repository file: {e}"),
            }
        }
    }
    out
}
