//! dnf5's versionlock file (`/etc/dnf/versionlock.toml`), read strictly in
//! the form dnf5 writes it, and shown to the hold logic as the lines of
//! dnf 4's lock list:
//!
//! ```text
//! version = "1.0"
//!
//! [[packages]]
//! name = "teleport-ent"
//! comment = "Added by 'versionlock add' command on ..."
//!
//! [[packages.conditions]]
//! key = "evr"
//! comparator = "="
//! value = "15.4.3-1"
//! ```
//!
//! dnf5 admits a version of a named package when one entry's conditions
//! all hold (measured: two exact entries admit both versions; `versionlock
//! exclude` writes an entry `evr != V`, which admits every other version).
//! An entry with exactly one condition `evr = [E:]V-R` is shown as dnf 4's
//! exact lock `NAME-E:V-R.*` (the epoch 0 when dnf5 leaves it out); any
//! other entry of a name as `NAME-* (<its conditions>)`, a lock that admits
//! more than one version. `dnf5 versionlock delete` takes names only (it
//! deletes every entry of the package, an operator's too; given a version,
//! it deletes nothing and exits 0): the updater removes its own entries
//! itself, each `[[packages]]` block whole, every other line kept.

use super::hold::Evr;
use super::locklist::ListLine;
use crate::{Error, Result};

/// Where dnf5 keeps its versionlock (not configurable).
pub const FILE: &str = "/etc/dnf/versionlock.toml";

/// One `[[packages]]` block: its lines (0-based, end exclusive) and what
/// the hold logic sees.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    start: usize,
    end: usize,
    name: String,
    /// (key, comparator, value) of each `[[packages.conditions]]`.
    conditions: Vec<(String, String, String)>,
}

impl Block {
    fn text(&self) -> String {
        match self.conditions.as_slice() {
            [(k, c, v)] if k == "evr" && c == "=" => {
                if v.contains(':') {
                    format!("{}-{v}.*", self.name)
                } else {
                    format!("{}-0:{v}.*", self.name)
                }
            }
            conds => {
                let c: Vec<String> = conds
                    .iter()
                    .map(|(k, c, v)| format!("{k} {c} {v}"))
                    .collect();
                format!("{}-* ({})", self.name, c.join(", "))
            }
        }
    }
}

/// A TOML basic string (`"..."` with `\"` and `\\` escapes), strictly.
fn string_value(v: &str) -> Option<String> {
    let inner = v.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                _ => return None,
            },
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

enum Section {
    Top,
    Package,
    Condition,
}

/// The `[[packages]]` blocks of `text`; an error naming the line for
/// anything dnf5 does not write.
fn blocks(text: &str) -> std::result::Result<Vec<Block>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<Block> = Vec::new();
    let mut section = Section::Top;
    for (i, raw) in lines.iter().enumerate() {
        let l = raw.trim();
        let bad = |why: &str| format!("line {}: {why}: {l:?}", i + 1);
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        match l {
            "[[packages]]" => {
                if let Some(b) = out.last_mut() {
                    b.end = i;
                }
                out.push(Block {
                    start: i,
                    end: lines.len(),
                    name: String::new(),
                    conditions: Vec::new(),
                });
                section = Section::Package;
                continue;
            }
            "[[packages.conditions]]" => {
                let b = out
                    .last_mut()
                    .ok_or_else(|| bad("a condition outside a package"))?;
                b.conditions.push(Default::default());
                section = Section::Condition;
                continue;
            }
            _ => {}
        }
        let (k, v) = l.split_once('=').ok_or_else(|| bad("not `key = value`"))?;
        let (k, v) = (k.trim(), v.trim());
        match (&section, k) {
            (Section::Top, "version") => {
                if string_value(v).as_deref() != Some("1.0") {
                    return Err(bad("a version other than \"1.0\""));
                }
            }
            (Section::Top, "packages") if v == "[]" => {}
            (Section::Package, "name" | "comment") => {
                let s = string_value(v).ok_or_else(|| bad("not a plain string"))?;
                if k == "name" {
                    out.last_mut().expect("in a package").name = s;
                }
            }
            (Section::Condition, "key" | "comparator" | "value") => {
                let s = string_value(v).ok_or_else(|| bad("not a plain string"))?;
                let b = out.last_mut().expect("in a package");
                let c = b.conditions.last_mut().expect("in a condition");
                match k {
                    "key" => c.0 = s,
                    "comparator" => c.1 = s,
                    _ => c.2 = s,
                }
            }
            _ => return Err(bad("a key dnf5 does not write there")),
        }
    }
    for b in &out {
        if b.name.is_empty()
            || b.conditions
                .iter()
                .any(|c| c.0.is_empty() || c.1.is_empty())
        {
            return Err(format!(
                "line {}: a package entry without a name, or a condition without key or comparator",
                b.start + 1
            ));
        }
    }
    Ok(out)
}

/// Whether the entry's conditions all admit `evr` (`None` when one is a
/// condition the updater does not judge: an order comparison, an `arch`).
fn admits(b: &Block, evr: &Evr) -> Option<bool> {
    let mut all = true;
    for (k, c, v) in &b.conditions {
        if k != "evr" || !(c == "=" || c == "!=") {
            return None;
        }
        let v = if v.contains(':') {
            v.clone()
        } else {
            format!("0:{v}")
        };
        let same = if v.contains('-') {
            v == format!("{}:{}-{}", evr.epoch, evr.version, evr.release)
        } else {
            v == format!("{}:{}", evr.epoch, evr.version)
        };
        all &= same == (c == "=");
    }
    Some(all)
}

/// The operator's entries of `pkg` (those not shown as one of `own`)
/// when none of them admits any of `candidates` (dnf5 would then not
/// install it: the updater does not either), as messages naming the
/// file and line; an error for an entry it cannot judge.
pub fn operator_against(
    text: &str,
    file: &str,
    own: &[String],
    pkg: &str,
    candidates: &[Evr],
) -> Result<Vec<String>> {
    let parse = |detail| Error::Parse {
        what: format!("dnf5's versionlock file {file}"),
        detail,
    };
    let theirs: Vec<Block> = blocks(text)
        .map_err(parse)?
        .into_iter()
        .filter(|b| b.name == pkg && !own.contains(&b.text()))
        .collect();
    let mut admitted = theirs.is_empty();
    for b in &theirs {
        for evr in candidates {
            match admits(b, evr) {
                Some(yes) => admitted |= yes,
                None => {
                    return Err(Error::Untrusted {
                        reason: format!(
                            "the versionlock entry {} ({file}:{}) has a condition the updater does not judge (it judges evr = and !=): whether it lets {pkg} move is unknown; change the entry, or remove it",
                            b.text(),
                            b.start + 1
                        ),
                    })
                }
            }
        }
    }
    if admitted {
        return Ok(Vec::new());
    }
    Ok(theirs
        .iter()
        .map(|b| {
            format!(
                "the versionlock entry {} ({file}:{}) admits no such version",
                b.text(),
                b.start + 1
            )
        })
        .collect())
}

/// The entries of the versionlock file's `text` as lock-list lines (the
/// line of each `[[packages]]`); `file` names it in an error.
pub fn entries(text: &str, file: &str) -> Result<Vec<ListLine>> {
    let b = blocks(text).map_err(|detail| Error::Parse {
        what: format!("dnf5's versionlock file {file}"),
        detail,
    })?;
    Ok(b.iter()
        .map(|b| ListLine {
            line: b.start + 1,
            text: b.text(),
        })
        .collect())
}

/// `text` without the `[[packages]]` blocks shown as one of `drop`
/// (every other line kept as it is).
pub fn without(text: &str, drop: &[String], file: &str) -> Result<String> {
    let b = blocks(text).map_err(|detail| Error::Parse {
        what: format!("dnf5's versionlock file {file}"),
        detail,
    })?;
    let gone: Vec<&Block> = b.iter().filter(|b| drop.contains(&b.text())).collect();
    Ok(text
        .split_inclusive('\n')
        .enumerate()
        .filter(|(i, _)| !gone.iter().any(|b| (b.start..b.end).contains(i)))
        .map(|(_, l)| l)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As dnf5 5.4.6 wrote it (measured: `versionlock add teleport-ent`,
    /// `add teleport-ent-15.4.3`, `exclude teleport-ent-15.4.2`).
    const WRITTEN: &str = r#"version = "1.0"

[[packages]]
name = "teleport-ent"
comment = "Added by 'versionlock add' command on 2026-12-07 04:56:33"

[[packages.conditions]]
key = "evr"
comparator = "="
value = "15.4.2-1"

[[packages]]
name = "teleport-ent"
comment = "Added by 'versionlock add' command on 2026-12-07 04:56:34"

[[packages.conditions]]
key = "evr"
comparator = "="
value = "1:15.4.3-1"

[[packages]]
name = "teleport-ent"
comment = "Added by 'versionlock exclude' command on 2026-12-07 04:59:01"

[[packages.conditions]]
key = "evr"
comparator = "!="
value = "15.4.2-1"
"#;

    #[test]
    fn entries_read_as_dnf4_lines() {
        let e = entries(WRITTEN, "f").unwrap();
        let t: Vec<(usize, &str)> = e.iter().map(|l| (l.line, l.text.as_str())).collect();
        assert_eq!(
            t,
            [
                (3, "teleport-ent-0:15.4.2-1.*"),
                (12, "teleport-ent-1:15.4.3-1.*"),
                (21, "teleport-ent-* (evr != 15.4.2-1)"),
            ]
        );
        assert_eq!(
            entries("packages = []\nversion = \"1.0\"\n", "f").unwrap(),
            []
        );
        assert_eq!(entries("", "f").unwrap(), []);
    }

    #[test]
    fn own_blocks_go_whole_and_nothing_else() {
        let out = without(WRITTEN, &["teleport-ent-1:15.4.3-1.*".into()], "f").unwrap();
        assert!(!out.contains("15.4.3-1"), "{out}");
        assert!(out.contains("04:56:33") && out.contains("!="), "{out}");
        let e = entries(&out, "f").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(without(WRITTEN, &[], "f").unwrap(), WRITTEN);
        let last = without(WRITTEN, &["teleport-ent-* (evr != 15.4.2-1)".into()], "f").unwrap();
        assert!(last.ends_with("value = \"1:15.4.3-1\"\n\n"), "{last}");
    }

    fn evr(s: &str) -> Evr {
        Evr::parse(s).unwrap()
    }

    #[test]
    fn the_operators_entries_forbid_what_none_admits() {
        let own = vec!["teleport-ent-1:15.4.3-1.*".to_string()];
        let f = |v: &str| operator_against(WRITTEN, "f", &own, "teleport-ent", &[evr(v)]).unwrap();
        // 15.4.2-1: the exact entry admits it (the != entry does not).
        assert_eq!(f("15.4.2-1"), Vec::<String>::new());
        // Anything else: the != entry admits it.
        assert_eq!(f("16.0.0-1"), Vec::<String>::new());
        let only_exclude = without(WRITTEN, &["teleport-ent-0:15.4.2-1.*".into()], "f").unwrap();
        let g = |v: &str| {
            operator_against(&only_exclude, "f", &own, "teleport-ent", &[evr(v)]).unwrap()
        };
        assert_eq!(g("16.0.0-1"), Vec::<String>::new());
        let m = g("15.4.2-1");
        assert_eq!(m.len(), 1);
        assert!(
            m[0].contains("evr != 15.4.2-1") && m[0].contains("f:12"),
            "{m:?}"
        );
        // The updater's own entry (and other packages) do not count.
        assert_eq!(
            operator_against(WRITTEN, "f", &own, "other", &[evr("1-1")]).unwrap(),
            Vec::<String>::new()
        );
        let ranged = WRITTEN.replace("\"!=\"", "\">=\"");
        let e =
            operator_against(&ranged, "f", &own, "teleport-ent", &[evr("16.0.0-1")]).unwrap_err();
        assert!(e.to_string().contains("does not judge"), "{e}");
    }

    #[test]
    fn anything_else_is_refused_naming_the_line() {
        for (bad, line) in [
            ("version = \"2.0\"\n", 1),
            ("[[packages]]\nname = 'x'\n", 2),
            ("[packages]\n", 1),
            ("[[packages]]\nname = \"x\"\narch = \"x86_64\"\n", 3),
            ("[[packages.conditions]]\n", 1),
            ("[[packages]]\ncomment = \"no name\"\n", 1),
        ] {
            let e = entries(bad, "/etc/dnf/versionlock.toml")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("line {line}")) && e.contains("versionlock.toml"),
                "{bad:?}: {e}"
            );
        }
    }
}
