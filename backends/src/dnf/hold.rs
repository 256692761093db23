//! Holds: the versionlock entries (`Evr`, `LockEntry`) and their edits,
//! the `exclude=` hold, and an operator's excludes (held, or forbidding
//! the target).

use super::locklist::{self, ListLine};
use super::{global_enforcement_args, HoldMethod};
use crate::cmd::CommandLine;
use crate::rpmdb::{self, IniSection};
use crate::types::{PkgName, Source};
use crate::{Backend, Error, Result};

impl super::Dnf {
    /// `dnf versionlock <action> <specs>`, touching no repository.
    pub(super) fn versionlock_cmd<S: AsRef<str>>(&self, action: &str, specs: &[S]) -> CommandLine {
        let cl = self
            .cmd()
            .arg("-y")
            .args(self.root_args(None))
            .args(self.lock_args())
            .args(global_enforcement_args());
        let cl = if self.is_dnf5() {
            cl.args(super::dnf5::extra_enforcement_args(None)).args([
                "--disable-repo=*",
                "versionlock",
                action,
            ])
        } else {
            cl.args(["--disablerepo=*", "versionlock", action])
        };
        cl.args(specs.iter().map(|s| s.as_ref().to_string()))
    }

    /// The lock list's entries, as the plugin reads them, with lines.
    pub(super) fn lock_lines(&self) -> Result<Vec<ListLine>> {
        let (f, text) = self.locklist_text()?;
        if self.is_dnf5() {
            return super::dnf5lock::entries(&text, &self.system.display_path(&f));
        }
        Ok(locklist::entries(&text))
    }

    /// The lock entries (not `!` excludes) that name `pkg` with a version.
    fn locks_of<'a>(list: &'a [ListLine], pkg: &PkgName) -> Vec<&'a ListLine> {
        list.iter()
            .filter(|l| !l.text.starts_with('!') && locklist::concerns(&l.text, pkg.as_str()))
            .collect()
    }

    /// The installed (epoch, version, release) of `pkg`.
    pub(super) fn installed_evr(&self, pkg: &PkgName) -> Result<Evr> {
        let inst = self.installed(pkg)?.ok_or_else(|| Error::NotInstalled {
            package: pkg.to_string(),
        })?;
        Evr::parse(inst.version.as_str()).ok_or_else(|| Error::Parse {
            what: "the installed version (epoch:version-release)".into(),
            detail: format!("{pkg} {}", inst.version),
        })
    }

    /// Lock exactly the installed version: the line is recorded as the
    /// updater's own, then added with the plugin (nothing when a line of
    /// the list already locks exactly it). The old version's own lock is
    /// left for [`Backend::drop_old_holds`]. Checked afterwards: the
    /// operator's lines must leave the lock to it (an operator's
    /// `teleport-ent-*` admits every version: dnf would move the agent).
    pub(super) fn versionlock_hold(&self, pkg: &PkgName) -> Result<()> {
        let evr = self.installed_evr(pkg)?;
        let spec = evr.spec(pkg);
        let list = self.lock_lines()?;
        let own = self.own_lines(&list, pkg);
        if !list
            .iter()
            .any(|l| locklist::admits_only(&l.text, pkg.as_str(), &evr))
        {
            // Recorded as the plugin writes it (`NAME-E:V-R.*`).
            let mut rec: Vec<String> = own.iter().map(|l| l.text.clone()).collect();
            rec.push(format!("{spec}.*"));
            self.record_own(&rec)?;
            self.run_classified(&self.versionlock_cmd("add", &[&spec]), None)?;
        }
        let list = self.lock_lines()?;
        let own = self.own_lines(&list, pkg);
        let others: Vec<&ListLine> = Self::locks_of(&list, pkg)
            .into_iter()
            .filter(|l| !own.contains(l))
            .collect();
        let locked = list
            .iter()
            .any(|l| locklist::admits_only(&l.text, pkg.as_str(), &evr));
        let loose: Vec<&&ListLine> = others
            .iter()
            .filter(|l| !locklist::admits_only(&l.text, pkg.as_str(), &evr))
            .collect();
        if !locked || !loose.is_empty() {
            let (f, _) = self.locklist_text()?;
            return Err(Error::CommandFailed {
                command: self.versionlock_cmd("add", &[&spec]).to_string(),
                status: "exit 0".into(),
                tail: format!(
                    "dnf would still move {pkg}: {}",
                    if locked {
                        loose
                            .iter()
                            .map(|l| {
                                format!(
                                    "{} ({}:{}) admits other versions",
                                    l.text,
                                    f.display(),
                                    l.line
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    } else {
                        format!("{} has no entry for {spec} afterwards", f.display())
                    }
                ),
            });
        }
        tracing::info!(package = %pkg, "versionlocked {spec}");
        Ok(())
    }

    /// The second half of a hold swap: delete the updater's own lock lines
    /// of `pkg` that lock another version than the installed one (only
    /// when the installed one is locked), then an `exclude=` hold of the
    /// package in the repository's section (an earlier run's, before the
    /// plugin) when the versionlock holds.
    pub(super) fn drop_old_locks(&self, source: &Source, pkg: &PkgName) -> Result<()> {
        let evr = self.installed_evr(pkg)?;
        let list = self.lock_lines()?;
        let own = self.own_lines(&list, pkg);
        let (stale, kept): (Vec<&ListLine>, Vec<&ListLine>) = own
            .iter()
            .partition(|l| !locklist::admits_only(&l.text, pkg.as_str(), &evr));
        if !list
            .iter()
            .any(|l| locklist::admits_only(&l.text, pkg.as_str(), &evr))
        {
            return Ok(());
        }
        if !stale.is_empty() {
            let drop: Vec<String> = stale.iter().map(|l| l.text.clone()).collect();
            self.drop_lines(&drop)?;
            self.record_own(&kept.iter().map(|l| l.text.clone()).collect::<Vec<_>>())?;
        }
        if self.locks_hold(pkg, &evr)?
            && rpmdb::excludes(&rpmdb::read_ini(&source.file)?, &source.id, pkg.as_str())
        {
            tracing::info!(package = %pkg, "the hold is the versionlock now: removing exclude={pkg} from [{}]", source.id);
            self.edit_repo_exclude(source, pkg, false)?;
        }
        Ok(())
    }

    /// Whether the lock list keeps dnf from moving `pkg` off `evr`: a `!`
    /// entry excludes every version, or every lock entry of it admits
    /// `evr` alone (and there is one), with no own line of another version
    /// left (a swap not finished).
    fn locks_hold(&self, pkg: &PkgName, evr: &Evr) -> Result<bool> {
        let list = self.lock_lines()?;
        if list.iter().any(|l| {
            l.text
                .strip_prefix('!')
                .is_some_and(|p| crate::excludes::holds(p, pkg.as_str()))
        }) {
            return Ok(true);
        }
        let locks = Self::locks_of(&list, pkg);
        Ok(!locks.is_empty()
            && locks
                .iter()
                .all(|l| locklist::admits_only(&l.text, pkg.as_str(), evr)))
    }

    /// Whether `pkg` is held against routine upgrades, as dnf judges it:
    /// an `exclude=` of it (the repository's section, `[main]`), or (with
    /// the plugin) a lock list that admits the installed version alone.
    pub(super) fn held_now(&self, source: &Source, pkg: &PkgName) -> Result<bool> {
        let secs = rpmdb::read_ini(&source.file)?;
        if rpmdb::excludes(&secs, &source.id, pkg.as_str()) || self.main_holds(pkg) {
            return Ok(true);
        }
        if self.hold_method() == HoldMethod::Versionlock {
            let list = self.lock_lines()?;
            if Self::locks_of(&list, pkg).is_empty()
                && !list.iter().any(|l| l.text.starts_with('!'))
            {
                return Ok(false);
            }
            let evr = self.installed_evr(pkg)?;
            return self.locks_hold(pkg, &evr);
        }
        Ok(false)
    }

    /// The `[main]` sections of every main configuration dnf reads.
    pub(super) fn main_sections(&self) -> Vec<IniSection> {
        self.config_files()
            .iter()
            .filter_map(|f| rpmdb::read_ini(f).ok())
            .flatten()
            .filter(|s| s.id == "main")
            .collect()
    }

    /// Whether an `exclude=` of `[main]` keeps every version of `pkg` out
    /// (an operator's hold: dnf will not move the package).
    pub(super) fn main_holds(&self, pkg: &PkgName) -> bool {
        crate::excludes::exclude_lines(&self.main_sections(), &["main"])
            .iter()
            .any(|l| crate::excludes::holds(&l.pattern, pkg.as_str()))
    }

    /// Refuse to install `version` of `pkg` when an operator's exclude
    /// (the repository's section, `[main]`, the versionlock list's `!`
    /// entries) forbids that version: the install lifts holds, never an
    /// operator's "not this version". Names the line.
    pub(super) fn refuse_forbidden(
        &self,
        source: &Source,
        pkg: &PkgName,
        version: &str,
    ) -> Result<()> {
        let mut lines =
            crate::excludes::exclude_lines(&rpmdb::read_ini(&source.file)?, &[&source.id]);
        lines.extend(crate::excludes::exclude_lines(
            &self.main_sections(),
            &["main"],
        ));
        let release = self.installed_evr(pkg).map(|e| e.release).ok();
        let mut releases = vec!["1"];
        if let Some(r) = release.as_deref() {
            releases.push(r);
        }
        let mut locked = Vec::new();
        if self.is_dnf5() {
            locked = self.dnf5_operator_locks_against(pkg, version, &releases)?;
        } else if self.hold_method() == HoldMethod::Versionlock {
            let (file, text) = self.locklist_text()?;
            let list = locklist::entries(&text);
            lines.extend(crate::excludes::versionlock_excludes(&list, file.clone()));
            locked = self.operator_locks_against(&list, pkg, version, &releases, &file);
        }
        let bad = crate::excludes::forbidding(&lines, pkg.as_str(), version, &releases);
        if bad.is_empty() && locked.is_empty() {
            return Ok(());
        }
        Err(Error::Untrusted {
            reason: format!(
                "{pkg} {version} is excluded by the operator: {}; the updater does not install a version an exclude forbids (remove the line, or target another version)",
                bad.iter()
                    .map(|l| if l.section == "versionlock" {
                        format!("!{} in the versionlock list ({}:{})", l.pattern, l.file.display(), l.line)
                    } else {
                        format!(
                            "exclude={} in [{}] ({}:{})",
                            l.pattern,
                            l.section,
                            self.system.display_path(&l.file),
                            l.line
                        )
                    })
                    .chain(locked)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    /// The operator's lock lines of `pkg` (not the updater's own) when
    /// none of them admits `version`: with them dnf would not install it
    /// (the plugin admits only the versions some lock entry names).
    fn operator_locks_against(
        &self,
        list: &[ListLine],
        pkg: &PkgName,
        version: &str,
        releases: &[&str],
        file: &std::path::Path,
    ) -> Vec<String> {
        let own = self.own_lines(list, pkg);
        let theirs: Vec<&ListLine> = Self::locks_of(list, pkg)
            .into_iter()
            .filter(|l| !own.contains(l))
            .collect();
        let forms = crate::excludes::forms(pkg.as_str(), version, releases);
        let admitted = |p: &str| {
            crate::excludes::holds(p, pkg.as_str()) || forms.iter().any(|f| rpmdb::glob_match(p, f))
        };
        if theirs.is_empty() || theirs.iter().any(|l| admitted(&l.text)) {
            return Vec::new();
        }
        theirs
            .iter()
            .map(|l| {
                format!(
                    "the lock {} in the versionlock list ({}:{}) admits no other version",
                    l.text,
                    file.display(),
                    l.line
                )
            })
            .collect()
    }

    /// The plan's note on the versionlock's move (the next step's).
    pub(super) fn versionlock_note(&self, source: &Source, pkg: &PkgName) -> CommandLine {
        let text = format!(
            "the lock is recorded as the updater's own; its lock of the version before and exclude={pkg} of section {} go in the next step",
            source.id
        );
        CommandLine::new("#").args(text.split(' ').map(str::to_string))
    }

    /// The pseudo-command shown in a dry run for the exclude edit.
    pub(super) fn exclude_note(&self, source: &Source, pkg: &PkgName, add: bool) -> CommandLine {
        CommandLine::new("#").args([
            if add { "add" } else { "remove" }.to_string(),
            format!("exclude={pkg}"),
            if add { "to" } else { "from" }.into(),
            "section".into(),
            source.id.clone(),
            "of".into(),
            self.system.display_path(&source.file),
        ])
    }

    pub(super) fn edit_repo_exclude(
        &self,
        source: &Source,
        pkg: &PkgName,
        add: bool,
    ) -> Result<()> {
        let text = crate::fsread::read_to_string(&source.file)
            .map_err(|e| Error::io(format!("reading {}", source.file.display()), e))?;
        if let Some(new) = rpmdb::edit_exclude(&text, &source.id, pkg.as_str(), add) {
            tracing::info!(file = %source.file.display(), repo = %source.id, add, "editing exclude= of the repository");
            // Mode and owner kept (a 0600 file with credentials stays
            // 0600), a symlink stays a symlink.
            crate::write_atomic_in_place(&source.file, self.system.root(), new.as_bytes())
                .map_err(|e| Error::io(format!("writing {}", source.file.display()), e))?;
        }
        Ok(())
    }
}

/// An installed package's epoch, version and release (`[E:]V-R`, the
/// epoch 0 when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evr {
    pub epoch: String,
    pub version: String,
    pub release: String,
}

impl Evr {
    /// `[E:]V-R` as rpm reports it; `None` without a release.
    pub fn parse(s: &str) -> Option<Evr> {
        let (epoch, vr) = match s.split_once(':') {
            Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
                (e.to_string(), rest)
            }
            Some(_) => return None,
            None => ("0".to_string(), s),
        };
        let (version, release) = vr.rsplit_once('-')?;
        if version.is_empty() || release.is_empty() || version.contains(':') {
            return None;
        }
        Some(Evr {
            epoch,
            version: version.into(),
            release: release.into(),
        })
    }

    /// The spec `dnf versionlock add` locks exactly: `NAME-E:V-R`.
    pub fn spec(&self, pkg: &PkgName) -> String {
        format!("{pkg}-{}:{}-{}", self.epoch, self.version, self.release)
    }
}

/// Architectures an entry of the lock list may end with (the plugin writes
/// `.*`, an operator may name one).
const LOCK_ARCHES: &[&str] = &[
    "*", "noarch", "x86_64", "aarch64", "i686", "i386", "ppc64le", "s390x", "armv7hl",
];

/// One entry of the versionlock plugin's list (`dnf versionlock list`):
/// `[!]NAME-[E:]V-R[.ARCH]` (the plugin writes `NAME-E:V-R.*`); `!` makes
/// it an exclude of that version, not a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEntry {
    /// The line as listed (what `versionlock delete` matches exactly).
    pub raw: String,
    pub exclude: bool,
    pub name: String,
    pub epoch: Option<String>,
    pub version: String,
    pub release: String,
    pub arch: Option<String>,
}

impl LockEntry {
    /// An entry of the list; `None` for anything else (a bare name, a
    /// glob, a version that does not start with a digit, text that is not
    /// an entry). Split from the right as rpm's NEVRA is: the arch (only a
    /// known one, or `*`), the release, the version with its epoch; the
    /// rest is the name.
    pub fn parse(line: &str) -> Option<LockEntry> {
        let raw = line.trim();
        let (exclude, s) = match raw.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        if s.is_empty() || s.contains(char::is_whitespace) {
            return None;
        }
        let (nevr, arch) = match s.rsplit_once('.') {
            Some((head, a)) if LOCK_ARCHES.contains(&a) => (head, Some(a.to_string())),
            _ => (s, None),
        };
        let (nev, release) = nevr.rsplit_once('-')?;
        let (name, ev) = nev.rsplit_once('-')?;
        let (epoch, version) = match ev.split_once(':') {
            Some((e, v)) => {
                if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (Some(e.to_string()), v)
            }
            None => (None, ev),
        };
        let plain = |x: &str| !x.is_empty() && !x.contains([':', '*', '?', '[', '-']);
        if name.is_empty()
            || !plain(version)
            || !plain(release)
            || !version.starts_with(|c: char| c.is_ascii_digit())
        {
            return None;
        }
        Some(LockEntry {
            raw: raw.to_string(),
            exclude,
            name: name.to_string(),
            epoch,
            version: version.to_string(),
            release: release.to_string(),
            arch,
        })
    }

    /// Does this (lock) entry lock exactly `evr`? An entry without an
    /// epoch matches any epoch, as the plugin's query does.
    pub fn locks(&self, evr: &Evr) -> bool {
        !self.exclude
            && self.epoch.as_deref().map_or(true, |e| e == evr.epoch)
            && self.version == evr.version
            && self.release == evr.release
    }
}
