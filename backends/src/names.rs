//! Names read from files are values, never options or patterns.
//!
//! A dnf repo id or a zypper alias is taken from a `.repo` file and put on
//! a command line (`--enablerepo=<id>`, `--setopt=<id>.gpgcheck=1`,
//! `--repo=<alias>`). A name that holds a glob character would be read as
//! a pattern (`--enablerepo=teleport*` also enables `[teleport-old]`); one
//! that starts with `-` would be read as an option (`zypper refresh -B`);
//! whitespace, `=` or `$` would split or change the option it is part of.
//! Such a name is refused, naming its file and line, before any command
//! runs; the commands also pass every name in `--opt=value` form.

use crate::rpmdb::IniSection;
use crate::types::System;
use crate::{Error, Result};

/// What is wrong with `name` as a value on a command line, if anything.
/// `numeric_is_index`: the tool reads an all-digit name as a position in
/// its list (zypper's `--repo 2` is the second repository).
pub fn problem(name: &str, numeric_is_index: bool) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".into());
    }
    if name.starts_with('-') {
        return Some("starts with `-`, so a tool would read it as an option".into());
    }
    if let Some(c) = name.chars().find(|c| "*?[]".contains(*c)) {
        return Some(format!(
            "contains `{c}`, so a tool would read it as a pattern matching other names"
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!(
            "contains the character {c:?}, which splits or ends a command-line value"
        ));
    }
    if name.contains('=') {
        return Some("contains `=`, which changes the option it is part of".into());
    }
    if name.contains('$') {
        return Some(
            "contains `$`: the package manager expands variables in it, so the name it uses is not the name written"
                .into(),
        );
    }
    if let Some(c) = name.chars().find(|c| "/\\'\",;!^&|<>`{}".contains(*c)) {
        return Some(format!("contains `{c}`"));
    }
    if numeric_is_index && name.bytes().all(|b| b.is_ascii_digit()) {
        return Some("is a number, which the tool reads as a position in its list".into());
    }
    None
}

/// Refuse the repository `sec` when its id (zypper: alias) is not a plain
/// value, naming the file and line. `tool` says who would misread it.
pub fn check_repo_id(system: &System, sec: &IniSection, tool: &str) -> Result<()> {
    let numeric = tool == "zypper";
    match problem(&sec.id, numeric) {
        None => Ok(()),
        Some(why) => Err(Error::Untrusted {
            reason: format!(
                "the repository name [{}] ({}:{}) {why}; {tool} would not use it as written: rename the section with letters, digits and - _ . : only",
                sec.id,
                system.display_path(&sec.file),
                sec.line
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass() {
        for n in ["teleport", "teleport-ent", "SUSE:SLE-15_x86.64", "repo1"] {
            assert_eq!(problem(n, true), None, "{n}");
        }
        assert_eq!(problem("2", false), None);
    }

    #[test]
    fn options_patterns_and_variables_are_refused() {
        for n in [
            "",
            "-B",
            "--repo",
            "teleport*",
            "tele?ort",
            "tele[p]ort",
            "tele port",
            "tele\tport",
            "a=b",
            "tele$x",
            "tele${x}",
            "a/b",
            "a,b",
        ] {
            assert!(problem(n, false).is_some(), "{n:?} passed");
        }
        assert!(problem("2", true).is_some());
    }
}
