//! An operator's excludes, judged as dnf judges them.
//!
//! dnf's `exclude=` (`excludepkgs=`), in a repository's section or in
//! `[main]`, and the versionlock plugin's `!` entries are patterns matched
//! against a package's name and its NEVRA forms (`name`, `name.arch`,
//! `name-version`, `name-version-release[.arch]`,
//! `name-epoch:version-release[.arch]`). A pattern that matches the bare
//! name (or `name.arch`) keeps every version out: the package is held. A
//! pattern that matches only some versions is the operator saying "never
//! these": the updater's own install, which lifts the hold
//! (`--disableexcludes`, `--disableplugin=versionlock`), must not install
//! one of them, and refuses naming the line instead.

use std::path::PathBuf;

use crate::rpmdb::{glob_match, split_list, IniSection, EXCLUDE_KEYS};

/// Architectures a NEVRA may end with, for matching `name.arch` forms.
const ARCHES: &[&str] = &["x86_64", "aarch64", "noarch", "i686", "ppc64le", "s390x"];

/// One exclude pattern and where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExcludeLine {
    pub file: PathBuf,
    pub line: usize,
    /// The section (`main` or a repo id), or `versionlock` for the plugin's
    /// list.
    pub section: String,
    pub pattern: String,
}

/// Every exclude pattern of the sections named `ids` in `sections`.
pub fn exclude_lines(sections: &[IniSection], ids: &[&str]) -> Vec<ExcludeLine> {
    let mut out = Vec::new();
    for s in sections.iter().filter(|s| ids.contains(&s.id.as_str())) {
        for e in s
            .entries
            .iter()
            .filter(|e| EXCLUDE_KEYS.contains(&e.key.as_str()))
        {
            for p in split_list(&e.value) {
                out.push(ExcludeLine {
                    file: s.file.clone(),
                    line: e.line,
                    section: s.id.clone(),
                    pattern: p,
                });
            }
        }
    }
    out
}

/// Whether `pattern` keeps every version of `pkg` out (a hold).
pub fn holds(pattern: &str, pkg: &str) -> bool {
    glob_match(pattern, pkg)
        || ARCHES
            .iter()
            .any(|a| glob_match(pattern, &format!("{pkg}.{a}")))
}

/// The NEVRA forms of `pkg` at `version` (`V` or `V-R`; `releases`: the
/// releases to try when `version` has none, e.g. the installed one's).
pub fn forms(pkg: &str, version: &str, releases: &[&str]) -> Vec<String> {
    let (epoch, vr) = match version.split_once(':') {
        Some((e, rest)) => (e.to_string(), rest),
        None => ("0".to_string(), version),
    };
    let pairs: Vec<(String, String)> = match vr.rsplit_once('-') {
        Some((v, r)) => vec![(v.to_string(), r.to_string())],
        None => releases
            .iter()
            .map(|r| (vr.to_string(), r.to_string()))
            .collect(),
    };
    let mut out = vec![format!("{pkg}-{}", pairs.first().map_or(vr, |p| &p.0))];
    for (v, r) in &pairs {
        out.push(format!("{pkg}-{v}-{r}"));
        out.push(format!("{pkg}-{epoch}:{v}-{r}"));
        for a in ARCHES {
            out.push(format!("{pkg}-{v}-{r}.{a}"));
            out.push(format!("{pkg}-{epoch}:{v}-{r}.{a}"));
        }
    }
    out
}

/// The lines among `lines` that forbid `pkg` at `version` without holding
/// it (see the module): the updater must not install that version.
pub fn forbidding<'a>(
    lines: &'a [ExcludeLine],
    pkg: &str,
    version: &str,
    releases: &[&str],
) -> Vec<&'a ExcludeLine> {
    let forms = forms(pkg, version, releases);
    lines
        .iter()
        .filter(|l| !holds(&l.pattern, pkg))
        .filter(|l| forms.iter().any(|f| glob_match(&l.pattern, f)))
        .collect()
}

/// The versionlock list's `!` entries as exclude lines (`file`: the list).
pub fn versionlock_excludes(
    list: &[crate::dnf::locklist::ListLine],
    file: PathBuf,
) -> Vec<ExcludeLine> {
    list.iter()
        .filter_map(|l| l.text.strip_prefix('!').map(|p| (l.line, p)))
        .map(|(line, p)| ExcludeLine {
            file: file.clone(),
            line,
            section: "versionlock".into(),
            pattern: p.trim().to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(p: &str) -> ExcludeLine {
        ExcludeLine {
            file: PathBuf::from("/etc/dnf/dnf.conf"),
            line: 3,
            section: "main".into(),
            pattern: p.into(),
        }
    }

    #[test]
    fn bare_names_and_name_globs_hold() {
        for p in [
            "teleport-ent",
            "teleport*",
            "teleport-ent.x86_64",
            "teleport-en?",
        ] {
            assert!(holds(p, "teleport-ent"), "{p}");
        }
        for p in ["teleport-ent-16*", "teleport-ent-0:15.4.3-1.*", "other"] {
            assert!(!holds(p, "teleport-ent"), "{p}");
        }
    }

    #[test]
    fn versioned_patterns_forbid_their_versions_only() {
        let lines = vec![
            line("teleport-ent-16*"),
            line("teleport-ent-0:15.4.3-1.*"),
            line("teleport-ent"),
            line("other-16*"),
        ];
        let f = |v: &str| {
            forbidding(&lines, "teleport-ent", v, &["1"])
                .iter()
                .map(|l| l.pattern.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(f("16.0.0"), vec!["teleport-ent-16*"]);
        assert_eq!(f("15.4.3"), vec!["teleport-ent-0:15.4.3-1.*"]);
        assert_eq!(f("15.4.3-2"), Vec::<String>::new());
        assert!(f("15.4.2").is_empty());
    }

    #[test]
    fn versionlock_bang_entries_are_excludes() {
        let l = versionlock_excludes(
            &crate::dnf::locklist::entries("teleport-ent-0:15.4.2-1.*\n!teleport-ent-16*\n"),
            PathBuf::from("/etc/dnf/plugins/versionlock.list"),
        );
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].pattern, "teleport-ent-16*");
        assert_eq!(l[0].line, 2);
    }
}
