//! dnf's variables in repo ids, judged the way dnf loads them.
//!
//! dnf substitutes variables in a section name before it uses it as the
//! repo id (`dnf/conf/read.py`: `ConfigParser.substitute(id_, ...)`): with
//! `/etc/dnf/vars/x` holding `port`, a section `[tele$x]` is a second
//! `[teleport]`. The values come from the files of `varsdir` (default
//! `/etc/yum/vars` and `/etc/dnf/vars`, inside the install root: one file
//! per variable, its first line), from `DNF_VAR_*` in dnf's environment
//! (the updater runs dnf in a clean one) and from what dnf detects
//! (`releasever`, `basearch`, `arch`).
//!
//! The judgement is conservative: a variable no file defines (a detected
//! one, or one that is unset) may stand for anything, and every value a
//! file gives is considered. `$name`, `${name}` and the newer libdnf forms
//! `${name:-word}` and `${name:+word}` are understood; an older dnf that
//! does not expand the latter leaves a `$` in the id, and dnf skips such a
//! repository ("Bad id for repo"), so counting it as a possible match only
//! refuses more.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::types::System;

/// dnf's default variable directories, in the order dnf reads them.
pub const VARS_DIRS: &[&str] = &["/etc/yum/vars", "/etc/dnf/vars"];

/// The variables dnf reads from files: name to the values and the files
/// that give them.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    map: BTreeMap<String, Vec<(String, PathBuf)>>,
}

impl Vars {
    /// Read the variable files of `dirs` (paths as the target sees them,
    /// resolved inside `system`'s root).
    pub fn load(system: &System, dirs: &[String]) -> Vars {
        let mut v = Vars::default();
        for d in dirs {
            let dir = system.path(d);
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for f in files {
                if !f.is_file() {
                    continue;
                }
                let Ok(text) = crate::fsread::read_to_string(&f) else {
                    continue;
                };
                let first = text.split('\n').next().unwrap_or("").to_string();
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                v.map.entry(name).or_default().push((first, f));
            }
        }
        v
    }

    /// A variable defined by hand (tests).
    pub fn with(mut self, name: &str, value: &str) -> Vars {
        self.map
            .entry(name.into())
            .or_default()
            .push((value.into(), PathBuf::new()));
        self
    }

    fn values(&self, name: &str) -> Option<Vec<&str>> {
        self.map
            .get(name)
            .map(|v| v.iter().map(|(s, _)| s.as_str()).collect())
    }

    /// The files defining the variables `id` uses, for messages.
    pub fn files_used_by(&self, id: &str) -> Vec<&Path> {
        let mut out = Vec::new();
        for name in var_names(id) {
            if let Some(v) = self.map.get(&name) {
                out.extend(v.iter().map(|(_, p)| p.as_path()));
            }
        }
        out
    }
}

/// Whether `id` uses a variable at all.
pub fn has_vars(id: &str) -> bool {
    id.contains('$')
}

/// Whether the section name `id`, substituted as dnf does, may be the repo
/// id `target`.
pub fn may_be(id: &str, vars: &Vars, target: &str) -> bool {
    matches(&pattern(id, vars), target.as_bytes())
}

#[derive(Debug, Clone)]
enum Piece {
    Lit(u8),
    /// Any string (a variable whose value is not known).
    Any,
    /// One of these patterns.
    OneOf(Vec<Vec<Piece>>),
}

/// The braces of `${name}` (named, so that brace counters that read the
/// source as text are not misled by the literals).
const OPEN: u8 = 0x7b;
const CLOSE: u8 = 0x7d;

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn var_names(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let start = if b.get(i + 1) == Some(&OPEN) {
                i + 2
            } else {
                i + 1
            };
            let mut j = start;
            while j < b.len() && is_name_byte(b[j]) {
                j += 1;
            }
            if j > start {
                out.push(s[start..j].to_string());
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// The pattern of all the ids `s` may become.
fn pattern(s: &str, vars: &Vars) -> Vec<Piece> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            out.push(Piece::Lit(b[i]));
            i += 1;
            continue;
        }
        let braced = b.get(i + 1) == Some(&OPEN);
        let start = if braced { i + 2 } else { i + 1 };
        let mut j = start;
        while j < b.len() && is_name_byte(b[j]) {
            j += 1;
        }
        if j == start {
            out.push(Piece::Lit(b'$'));
            i += 1;
            continue;
        }
        let name = &s[start..j];
        let known = vars.values(name);
        let value = |known: &Option<Vec<&str>>| match known {
            Some(vals) => Piece::OneOf(
                vals.iter()
                    .map(|v| v.bytes().map(Piece::Lit).collect())
                    .collect(),
            ),
            None => Piece::Any,
        };
        if !braced {
            out.push(value(&known));
            i = j;
            continue;
        }
        // `${name}`, `${name:-word}`, `${name:+word}`.
        let Some(close) = matching_brace(b, j) else {
            // Unterminated: dnf keeps it as written (a bad id).
            out.push(Piece::Lit(b'$'));
            i += 1;
            continue;
        };
        let rest = &s[j..close];
        if rest.is_empty() {
            out.push(value(&known));
        } else if let Some(word) = rest.strip_prefix(":-") {
            match known {
                Some(_) => out.push(value(&known)),
                None => out.push(Piece::OneOf(vec![pattern(word, vars)])),
            }
        } else if let Some(word) = rest.strip_prefix(":+") {
            if known.is_some() {
                out.push(Piece::OneOf(vec![pattern(word, vars)]));
            }
        } else {
            // Not a form dnf expands: kept as written.
            out.extend(s[i..=close].bytes().map(Piece::Lit));
        }
        i = close + 1;
    }
    out
}

/// The `}` closing a `${` whose name ends at `from`, nesting counted.
fn matching_brace(b: &[u8], from: usize) -> Option<usize> {
    let mut depth = 1;
    let mut k = from;
    while k < b.len() {
        match b[k] {
            OPEN => depth += 1,
            CLOSE => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
        k += 1;
    }
    None
}

fn matches(p: &[Piece], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(Piece::Lit(c)) => s.first() == Some(c) && matches(&p[1..], &s[1..]),
        Some(Piece::Any) => (0..=s.len()).any(|k| matches(&p[1..], &s[k..])),
        Some(Piece::OneOf(alts)) => alts.iter().any(|alt| {
            let mut joined = alt.clone();
            joined.extend_from_slice(&p[1..]);
            matches(&joined, s)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_from_files_are_substituted() {
        let v = Vars::default().with("x", "port");
        assert!(may_be("tele$x", &v, "teleport"));
        assert!(may_be("tele${x}", &v, "teleport"));
        assert!(!may_be("tele$x", &v, "teleportx"));
        assert!(!may_be("tele${x}x", &v, "teleport"));
        assert!(may_be("teleport", &v, "teleport"));
        assert!(!may_be("other", &v, "teleport"));
    }

    #[test]
    fn unknown_variables_may_be_anything() {
        let v = Vars::default();
        assert!(may_be("tele$releasever", &v, "teleport"));
        assert!(may_be("$y", &v, "teleport"));
        assert!(!may_be("fedora-$basearch", &v, "teleport"));
    }

    #[test]
    fn default_and_alternate_forms() {
        let v = Vars::default().with("x", "p");
        assert!(may_be("tele${y:-port}", &v, "teleport"));
        assert!(may_be("tele${x:+port}", &v, "teleport"));
        assert!(!may_be("tele${y:+port}", &v, "teleport"));
        assert!(may_be("tele${x:-zzz}ort", &v, "teleport"));
        assert!(may_be("tele${y:-${x}ort}", &v, "teleport"));
    }

    #[test]
    fn every_value_counts() {
        let v = Vars::default().with("x", "other").with("x", "port");
        assert!(may_be("tele$x", &v, "teleport"));
        assert_eq!(var_names("a$x-${yy:-z}"), vec!["x", "yy"]);
    }
}
