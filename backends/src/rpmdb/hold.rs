//! The `exclude=` hold: package globs, and adding or removing a package
//! in a section's exclude list, every other line left as it is.

use std::path::Path;

use super::{parse_ini, split_list, IniEntry, IniSection};

/// A `*`/`?` glob as dnf and zypper use in package patterns.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// Keys dnf reads as the package exclude list of a repository.
pub const EXCLUDE_KEYS: &[&str] = &["exclude", "excludepkgs"];

/// Whether section `id` of `text` excludes `pkg` (exactly or by glob).
pub fn excludes(sections: &[IniSection], id: &str, pkg: &str) -> bool {
    sections
        .iter()
        .filter(|s| s.id == id)
        .flat_map(|s| EXCLUDE_KEYS.iter().flat_map(move |k| s.list(k)))
        .any(|p| glob_match(&p, pkg))
}

/// Add (`add`) or remove `pkg` in the `exclude=` of section `id` of `text`,
/// leaving every other line as it is. Returns `None` when nothing changes
/// (already excluded / not excluded), or when the section does not exist.
pub fn edit_exclude(text: &str, id: &str, pkg: &str, add: bool) -> Option<String> {
    let secs = parse_ini(Path::new(""), text);
    let sec = secs.iter().find(|s| s.id == id)?;
    let excl: Vec<&IniEntry> = sec
        .entries
        .iter()
        .filter(|e| EXCLUDE_KEYS.contains(&e.key.as_str()))
        .collect();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let nl = if text.contains("\r\n") { "\r\n" } else { "\n" };
    // (first line, last line) 1-based -> replacement (None: delete)
    let mut replace: Vec<(usize, usize, Option<String>)> = Vec::new();
    if add {
        if excl
            .iter()
            .any(|e| split_list(&e.value).iter().any(|p| p == pkg))
        {
            return None;
        }
        if let Some(e) = excl.first() {
            let sep = if e.value.contains(',') { ", " } else { " " };
            let items = split_list(&e.value);
            let joined = if items.is_empty() {
                pkg.to_string()
            } else {
                format!("{}{sep}{pkg}", items.join(sep))
            };
            let key = lines[e.line - 1]
                .split('=')
                .next()
                .unwrap_or(&e.key)
                .trim_end();
            replace.push((e.line, e.end_line, Some(format!("{key}={joined}{nl}"))));
        } else {
            // After the section's last setting.
            let after = sec.entries.last().map(|e| e.end_line).unwrap_or(sec.line);
            let mut out = String::new();
            for (i, l) in lines.iter().enumerate() {
                out.push_str(l);
                if i + 1 == after {
                    if !l.ends_with('\n') {
                        out.push_str(nl);
                    }
                    out.push_str(&format!("exclude={pkg}{nl}"));
                }
            }
            return Some(out);
        }
    } else {
        for e in &excl {
            let items = split_list(&e.value);
            if !items.iter().any(|p| p == pkg) {
                continue;
            }
            let kept: Vec<String> = items.into_iter().filter(|p| p != pkg).collect();
            if kept.is_empty() {
                replace.push((e.line, e.end_line, None));
            } else {
                let sep = if e.value.contains(',') { ", " } else { " " };
                let key = lines[e.line - 1]
                    .split('=')
                    .next()
                    .unwrap_or(&e.key)
                    .trim_end();
                replace.push((
                    e.line,
                    e.end_line,
                    Some(format!("{key}={}{nl}", kept.join(sep))),
                ));
            }
        }
        if replace.is_empty() {
            return None;
        }
    }
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let n = i + 1;
        if let Some((_, end, rep)) = replace.iter().find(|(s, _, _)| *s == n) {
            if let Some(r) = rep {
                out.push_str(r);
            }
            i = *end;
            continue;
        }
        out.push_str(lines[i]);
        i += 1;
    }
    Some(out)
}
