//! The versionlock plugin's lock list, as the plugin reads it, and which
//! of its lines are the updater's own.
//!
//! The plugin (dnf-plugins-core) reads `locklist=` of `versionlock.conf`
//! in dnf's `pluginconfpath`; every line not starting with `#` and not
//! blank is an entry, `!` making it an exclude. For each lock entry it
//! takes the first NEVRA reading of the pattern that matches packages
//! (`NEVRA`, `NEVR`, `NEV`, `NA`, `NAME`): the versions of a locked name
//! that no lock entry admits are excluded. So a lock entry of the agent
//! that admits several versions (`teleport-ent-*`, or two exact locks)
//! lets dnf move it: the agent is held only when every lock entry of it
//! admits the installed version alone.
//!
//! The plugin's own `delete` matches entries by globbing their NEVRA forms
//! against the pattern and ignores a leading `!`: deleting the updater's
//! `teleport-ent-0:15.4.3-1.*` would delete an operator's
//! `!teleport-ent-0:15.4.3-1.*` too, and it drops every comment. The
//! updater therefore removes its own lines itself, by exact text, leaving
//! every other line (comments included) as it is. Which lines are its own
//! is recorded in [`crate::Options::hold_record`] (written before the
//! line is added); with no record yet, the plugin-written exact locks of
//! the package (`NAME-E:V-R.*`, what earlier updaters wrote) are taken as
//! its own.

use std::path::{Path, PathBuf};

use super::hold::{Evr, LockEntry};
use crate::excludes::{forms, holds};
use crate::rpmdb::{self, glob_match};
use crate::types::PkgName;
use crate::{Error, Result};

/// One entry of the lock list and its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListLine {
    pub line: usize,
    /// The entry, trimmed as the plugin trims it.
    pub text: String,
}

/// The entries of a lock list's text, as the plugin reads them.
pub fn entries(text: &str) -> Vec<ListLine> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty())
        .map(|(i, l)| ListLine {
            line: i + 1,
            text: l.trim().to_string(),
        })
        .collect()
}

/// Whether lock pattern `p` (no `!`) names `pkg` with some version: its
/// name reading is `pkg` (a bare name, `name.arch`, or `pkg-` then a
/// version or a glob).
pub fn concerns(p: &str, pkg: &str) -> bool {
    if holds(p, pkg) {
        return true;
    }
    p.strip_prefix(pkg)
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|r| r.chars().next())
        .is_some_and(|c| c.is_ascii_digit() || matches!(c, '*' | '?' | '['))
}

/// Whether lock pattern `p` admits `pkg` at `evr` (one of its NEVRA forms
/// matches, or it names the package without a version).
pub fn admits(p: &str, pkg: &str, evr: &Evr) -> bool {
    if holds(p, pkg) {
        return true;
    }
    let v = format!("{}:{}-{}", evr.epoch, evr.version, evr.release);
    forms(pkg, &v, &[])
        .iter()
        .chain(std::iter::once(&format!(
            "{pkg}-{}:{}",
            evr.epoch, evr.version
        )))
        .any(|f| glob_match(p, f))
}

/// Whether lock pattern `p` admits exactly `evr` and nothing else: an
/// exact entry (no glob in its version or release) of that version.
pub fn admits_only(p: &str, pkg: &str, evr: &Evr) -> bool {
    // `parse` takes no glob in the version or the release.
    LockEntry::parse(p).is_some_and(|e| !e.exclude && e.name == pkg && e.locks(evr))
}

/// Whether `line` has the form the plugin writes for `pkg`
/// (`NAME-E:V-R.*`).
pub fn plugin_form(line: &str, pkg: &str) -> bool {
    LockEntry::parse(line).is_some_and(|e| {
        !e.exclude && e.name == pkg && e.epoch.is_some() && e.arch.as_deref() == Some("*")
    })
}

/// The lock list with the lines whose text is in `drop` removed (every
/// other line, comments included, kept byte for byte).
pub fn without(text: &str, drop: &[String]) -> String {
    text.split_inclusive('\n')
        .filter(|l| !drop.iter().any(|d| l.trim() == d && !l.starts_with('#')))
        .collect()
}

impl super::Dnf {
    /// The lock list the plugin reads: `locklist=` of `versionlock.conf`
    /// in the first directory of dnf's `pluginconfpath` that has one (a
    /// path as the plugin opens it: on the host, also for a root).
    pub(super) fn locklist_file(&self) -> Option<PathBuf> {
        if self.is_dnf5() {
            return Some(self.system.path(super::dnf5lock::FILE));
        }
        let mut dirs = self.main_list("pluginconfpath");
        if dirs.is_empty() {
            dirs.push("/etc/dnf/plugins".into());
        }
        dirs.iter().find_map(|d| {
            let conf = Path::new(d).join("versionlock.conf");
            let secs = rpmdb::read_ini(&conf).ok()?;
            let main = secs.iter().rev().find(|s| s.id == "main")?;
            main.value("locklist")
                .map(str::trim)
                .filter(|v| v.starts_with('/'))
                .map(PathBuf::from)
        })
    }

    fn locklist_required(&self) -> Result<PathBuf> {
        self.locklist_file().ok_or_else(|| Error::Parse {
            what: "the versionlock plugin's configuration".into(),
            detail: "no versionlock.conf with an absolute locklist= in dnf's pluginconfpath".into(),
        })
    }

    /// The lock list's text ("" when the file does not exist yet).
    pub(super) fn locklist_text(&self) -> Result<(PathBuf, String)> {
        let f = self.locklist_required()?;
        match crate::fsread::read_to_string(&f) {
            Ok(t) => Ok((f, t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((f, String::new())),
            Err(e) => Err(Error::io(format!("reading {}", f.display()), e)),
        }
    }

    /// The lines the updater recorded as its own (`None`: no record yet).
    fn recorded(&self) -> Option<Vec<String>> {
        let f = self.opts.hold_record.as_ref()?;
        let t = crate::fsread::read_to_string(f).ok()?;
        Some(
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    /// Record `lines` as the updater's own lines (nothing without a
    /// record file).
    pub(super) fn record_own(&self, lines: &[String]) -> Result<()> {
        let Some(f) = &self.opts.hold_record else {
            return Ok(());
        };
        let mut body = lines.join("\n");
        body.push('\n');
        crate::write_atomic(f, body.as_bytes())
            .map_err(|e| Error::io(format!("writing {}", f.display()), e))
    }

    /// The updater's own entries of `pkg` among `list`: the recorded ones
    /// present; with no record, the plugin-written exact locks of `pkg`.
    pub(super) fn own_lines(&self, list: &[ListLine], pkg: &PkgName) -> Vec<ListLine> {
        let rec = self.recorded();
        list.iter()
            .filter(|l| match &rec {
                Some(r) => r.contains(&l.text),
                None => plugin_form(&l.text, pkg.as_str()),
            })
            .cloned()
            .collect()
    }

    /// Remove the lines `drop` (exact texts) from the lock list, every
    /// other line left as it is (mode and owner kept).
    pub(super) fn drop_lines(&self, drop: &[String]) -> Result<()> {
        if drop.is_empty() {
            return Ok(());
        }
        let (f, text) = self.locklist_text()?;
        let new = if self.is_dnf5() {
            super::dnf5lock::without(&text, drop, &self.system.display_path(&f))?
        } else {
            without(&text, drop)
        };
        if new != text {
            tracing::info!(file = %f.display(), "deleting the updater's own versionlock entries: {}", drop.join(" "));
            crate::write_atomic_in_place(&f, None, new.as_bytes())
                .map_err(|e| Error::io(format!("writing {}", f.display()), e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evr(v: &str) -> Evr {
        Evr::parse(v).unwrap()
    }

    #[test]
    fn which_entries_admit_which_versions() {
        let p = "teleport-ent";
        let (a, b) = (evr("15.4.2-1"), evr("15.4.3-1"));
        for (pat, concerns_it, admits_a, only_a) in [
            ("teleport-ent-0:15.4.2-1.*", true, true, true),
            ("teleport-ent-15.4.2-1", true, true, true),
            ("teleport-ent-*", true, true, false),
            ("teleport-ent", true, true, false),
            ("teleport-ent-15*", true, true, false),
            ("teleport-ent-0:15.4.3-1.*", true, false, false),
            ("teleport-ent-fips-0:15.4.2-1.*", false, false, false),
            ("other-1-1", false, false, false),
        ] {
            assert_eq!(concerns(pat, p), concerns_it, "{pat}");
            assert_eq!(admits(pat, p, &a), admits_a, "{pat}");
            assert_eq!(admits_only(pat, p, &a), only_a, "{pat}");
        }
        assert!(admits("teleport-ent-*", p, &b));
    }

    #[test]
    fn only_the_named_lines_go() {
        let t = "# Added lock on x\nteleport-ent-0:15.4.2-1.*\n!teleport-ent-0:15.4.2-1.*\nteleport-ent-*\n";
        assert_eq!(
            without(t, &["teleport-ent-0:15.4.2-1.*".into()]),
            "# Added lock on x\n!teleport-ent-0:15.4.2-1.*\nteleport-ent-*\n"
        );
        let e = entries(t);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].line, 2);
    }
}
