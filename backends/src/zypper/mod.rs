//! zypper backend (SUSE).
//!
//! * The repository is found from zypper's cache (`zypper -x search -s`),
//!   else from `.repo` sections under `/etc/zypp/repos.d` that point at
//!   Teleport's release host or carry `teleport` in their alias or file
//!   name. Refresh and install name that repository only.
//! * Exact versions: `zypper -n install --oldpackage --repo=<alias>
//!   <pkg>=<ver>`. Without `--oldpackage` a downgrade prints "Nothing to
//!   do." and exits 0; the caller verifies the installed version anyway.
//! * Holds: `zypper addlock` / `removelock`. A locked package cannot be
//!   changed, so [`Backend::install_exact`] removes our lock first and puts
//!   it back afterwards, whatever the outcome.
//! * Repair: `zypper install --force --repo=<alias> <pkg>=<ver>`, with our
//!   lock lifted around it: on a locked package zypper answers "cannot
//!   install both ... Solution 1: remove lock" and exits 4.
//! * Keys are never imported by this backend (`--gpg-auto-import-keys`
//!   would trust whatever key the repository ships): the Teleport key must
//!   already be in the rpm database. In non-interactive mode zypper rejects
//!   unknown keys and unsigned files.
//! * rpm's transaction lock taken by another rpm, dnf or zypper ("can't
//!   create transaction lock") is waited for, up to
//!   [`Options::lock_wait`], its holder named.
//! * Exit codes: 7 locked (after `ZYPP_LOCK_TIMEOUT`), 104 not found, 8
//!   commit error, 4 refresh failure; signature failures are recognised by
//!   their message whatever the code. 102/103 are success with a notice.
//! * Alternate roots: `--root`. zypper reads `zypp.conf` from the host even
//!   then; `ZYPP_CONF` points it at the root's own when the root has one.

use std::path::{Path, PathBuf};

use crate::apt::installed_as;
use crate::channel::Format;
use crate::cmd::{CommandLine, Finished, Runner};
use crate::integrity::FileProblem;
use crate::rpmdb::{self, IniSection};
use crate::types::{Installed, PkgName, PkgVersion, Source, System, TrustFinding, TrustReport};
use crate::{Backend, BackendKind, Error, Options, Result};

mod audit;
mod config;
mod exec;
pub mod held;
mod sizes;
mod view;

pub use config::{force_main, repo_copy};
pub use view::parse_listing;

const REPOS_DIR: &str = "/etc/zypp/repos.d";
const ZYPP_CONF: &str = "/etc/zypp/zypp.conf";

pub struct Zypper {
    system: System,
    runner: Runner,
    opts: Options,
    /// The updater's own zypp.conf and repos.d (mode 0700, files 0600),
    /// handed to every zypper call; removed on drop.
    private: tempfile::TempDir,
}

/// The signature settings forced on in the private zypp.conf and in the
/// private copy of the Teleport repository: metadata (`repo_gpgcheck`),
/// packages (`pkg_gpgcheck`) and the umbrella `gpgcheck`. A repository's
/// own setting wins over zypp.conf in libzypp, so the copy of the
/// definition carries them too.
pub const FORCED: &[(&str, &str)] = &[
    ("gpgcheck", "1"),
    ("repo_gpgcheck", "1"),
    ("pkg_gpgcheck", "1"),
];

impl Zypper {
    pub fn new(system: System, opts: Options) -> Result<Self> {
        let runner = Runner {
            timeout: opts.command_timeout,
            path: None,
        };
        let private = crate::private_dir("teleport-upgrade-zypp.")
            .map_err(|e| Error::io("creating a private directory for zypper", e))?;
        Ok(Zypper {
            system,
            runner,
            opts,
            private,
        })
    }

    /// The zypp.conf zypper will read for this system.
    fn zypp_conf(&self) -> PathBuf {
        let own = self.system.path(ZYPP_CONF);
        if own.is_file() || self.system.is_host() {
            own
        } else {
            PathBuf::from(ZYPP_CONF)
        }
    }

    /// The directories libzypp reads repository definitions from: the
    /// `reposdir` of zypp.conf, else `/etc/zypp/repos.d`.
    fn repos_dir(&self) -> PathBuf {
        let configured = rpmdb::read_ini(&self.zypp_conf())
            .ok()
            .and_then(|v| v.into_iter().rev().find(|s| s.id == "main"))
            .and_then(|m| m.value("reposdir").map(|v| v.trim().to_string()))
            .filter(|v| v.starts_with('/'));
        self.system.path(configured.as_deref().unwrap_or(REPOS_DIR))
    }

    /// `zypper --non-interactive [--root R]` with a bounded lock wait, the
    /// private zypp.conf and root's `HOME`.
    fn zypper(&self) -> CommandLine {
        let mut cl = CommandLine::new("zypper")
            .env(
                "ZYPP_LOCK_TIMEOUT",
                self.opts.lock_wait.as_secs().to_string(),
            )
            // Never page, never ask about licenses on a terminal.
            .env("PAGER", "cat")
            .env("ZYPP_CONF", self.private_conf().display().to_string())
            .env("HOME", crate::RPM_HOME);
        if let Some(root) = self.system.root() {
            cl = cl
                .arg("--non-interactive")
                .arg("--root")
                .arg(root.display().to_string());
        } else {
            cl = cl.arg("--non-interactive");
        }
        cl
    }

    /// `zypper ...` that sees only the private copy of `source` (written
    /// by [`Zypper::prepare_repo`]): the repository audited is the one
    /// used, with its signature checks forced on.
    fn zypper_for(&self, _source: &Source) -> CommandLine {
        self.zypper()
            .arg("--reposd-dir")
            .arg(self.private_reposd().display().to_string())
    }

    fn refresh_cmd(&self, source: &Source) -> CommandLine {
        self.zypper_for(source).args([
            "refresh".to_string(),
            "--force".into(),
            format!("--repo={}", source.id),
        ])
    }

    fn install_cmd(&self, source: &Source, pkg: &PkgName, version: &str) -> CommandLine {
        self.zypper_for(source).args([
            "--no-refresh".to_string(),
            "install".into(),
            "--oldpackage".into(),
            "--no-recommends".into(),
            format!("--repo={}", source.id),
            format!("{pkg}={version}"),
        ])
    }

    /// `zypper install --force` of exactly `version`: a reinstall.
    fn reinstall_cmd(&self, source: &Source, pkg: &PkgName, version: &str) -> CommandLine {
        self.zypper_for(source).args([
            "--no-refresh".to_string(),
            "install".into(),
            "--force".into(),
            "--no-recommends".into(),
            format!("--repo={}", source.id),
            format!("{pkg}={version}"),
        ])
    }

    /// Run `cl` with our lock on `pkg` lifted (a locked package cannot be
    /// changed), putting it back afterwards whatever the outcome.
    fn with_lock_lifted(
        &self,
        source: &Source,
        pkg: &PkgName,
        cl: &CommandLine,
        ctx: Option<(&PkgName, &str, &Source)>,
    ) -> Result<()> {
        let held = self.is_held(source, pkg)?;
        if held {
            self.run_checked(&self.lock_cmd("removelock", pkg), None)?;
        }
        let r = self.run_checked(cl, ctx).map(|_| ());
        if held {
            if let Err(e) = self.hold(source, pkg) {
                tracing::error!("could not lock {pkg} again: {e}");
                return r.and(Err(e));
            }
        }
        r
    }

    fn lock_cmd(&self, action: &str, pkg: &PkgName) -> CommandLine {
        self.zypper().args([action, pkg.as_str()])
    }

    fn section(&self, source: &Source) -> Result<IniSection> {
        rpmdb::read_ini(&source.file)?
            .into_iter()
            .find(|s| s.id == source.id)
            .ok_or_else(|| Error::SourceNotFound {
                package: String::new(),
                detail: format!(
                    "{} no longer defines [{}]",
                    self.system.display_path(&source.file),
                    source.id
                ),
            })
    }

    fn shown(&self, p: &Path) -> PathBuf {
        PathBuf::from(self.system.display_path(p))
    }

    /// The [`Source`] of `sec`, its key files as zypper expands them.
    fn source_from(&self, sec: &IniSection) -> Source {
        let mut s = rpmdb::source_from(&self.system, sec);
        if sec.gpgkeys().iter().any(|k| k.contains('$')) {
            s.keyrings = self
                .resolved_gpgkeys(&s, sec)
                .iter()
                .filter_map(|u| rpmdb::file_url_path(u).map(|p| self.system.path(p)))
                .collect();
        }
        s
    }
}

impl Backend for Zypper {
    fn kind(&self) -> BackendKind {
        BackendKind::Zypper
    }

    fn system(&self) -> &System {
        &self.system
    }

    fn installed(&self, pkg: &PkgName) -> Result<Option<Installed>> {
        rpmdb::installed(&self.system, &self.runner, pkg)
    }

    fn first_installed(&self, candidates: &[PkgName]) -> Result<Option<Installed>> {
        rpmdb::first_installed(&self.system, &self.runner, candidates)
    }

    fn locate_source(&self, pkg: &PkgName) -> Result<Source> {
        let dir = self.repos_dir();
        let chosen = if let Some(file) = &self.opts.source_file {
            rpmdb::configured_section(&self.system, file, pkg, &self.opts.hints)?
        } else {
            let secs = rpmdb::repo_sections(std::slice::from_ref(&dir));
            match rpmdb::choose_section(&secs, &self.opts.hints) {
                Ok(Some(s)) => s.clone(),
                Ok(None) => return Err(Error::SourceNotFound {
                    package: pkg.to_string(),
                    detail: format!(
                        "none of the {} repositories under {} points at the release host ({}) or is named after it ({}; the cache is never consulted); name the file in the `source-file` setting",
                        secs.len(),
                        self.system.display_path(&dir),
                        self.opts.hints.release_hosts.join(", "),
                        self.opts.hints.words.join(", ")
                    ),
                }),
                Err(several) => return Err(rpmdb::ambiguous(&self.system, pkg, &several)),
            }
        };
        // Its alias goes on every command line: a plain value only.
        crate::names::check_repo_id(&self.system, &chosen, "zypper")?;
        let mut dirs = vec![dir];
        if let Some(d) = chosen.file.parent() {
            if !dirs.iter().any(|x| x == d) {
                dirs.push(d.to_path_buf());
            }
        }
        rpmdb::refuse_duplicates(
            &self.system,
            &rpmdb::repo_sections(&dirs),
            &chosen.id,
            "zypper",
        )?;
        Ok(self.source_from(&chosen))
    }

    fn audit_trust(&self, source: &Source) -> Result<TrustReport> {
        self.audit(source)
    }

    fn recover(&self) -> Result<Option<String>> {
        // zypper commits are rpm transactions; nothing is left for a later
        // run to finish.
        Ok(None)
    }

    fn unfinished_transaction(&self, pkg: &PkgName) -> Result<Option<String>> {
        rpmdb::duplicate_instances(&self.system, &self.runner, pkg)
    }

    fn recover_package(&self, pkg: &PkgName) -> Result<Option<String>> {
        rpmdb::erase_older_instances(&self.system, &self.runner, pkg)
    }

    fn refresh(&self, source: &Source) -> Result<()> {
        self.prepare_repo(source)?;
        self.run_checked(&self.refresh_cmd(source), None)
            .map(|_| ())
    }

    fn package_sizes(
        &self,
        source: &Source,
        pkg: &PkgName,
        version: &PkgVersion,
    ) -> Result<Option<crate::PackageSizes>> {
        self.sizes(source, pkg, version)
    }

    fn download_dir(&self) -> Option<PathBuf> {
        Some(self.packages_dir())
    }

    fn install_exact(&self, source: &Source, pkg: &PkgName, version: &PkgVersion) -> Result<()> {
        self.prepare_repo(source)?;
        self.with_lock_lifted(
            source,
            pkg,
            &self.install_cmd(source, pkg, version.as_str()),
            Some((pkg, version.as_str(), source)),
        )
    }

    fn hold(&self, source: &Source, pkg: &PkgName) -> Result<()> {
        if self.is_held(source, pkg)? {
            return Ok(());
        }
        self.run_checked(&self.lock_cmd("addlock", pkg), None)
            .map(|_| ())
    }

    fn unhold(&self, source: &Source, pkg: &PkgName) -> Result<()> {
        if !self.is_held(source, pkg)? {
            return Ok(());
        }
        self.run_checked(&self.lock_cmd("removelock", pkg), None)
            .map(|_| ())
    }

    fn is_held(&self, _source: &Source, pkg: &PkgName) -> Result<bool> {
        // zypper's answer of an earlier run while nothing it depends on
        // changed (see `held`)
        let key = self.held_key(pkg);
        if let Some(h) = key
            .as_ref()
            .and_then(|(k, _)| held::recorded(&self.system, k))
        {
            tracing::debug!("zypper's locks and the rpm database are unchanged: zypper not asked");
            return Ok(h);
        }
        // zypper's own view: the installed solvables each lock matches
        // (a glob, a regex `^teleport-e.t$`, a capability), not the lock's
        // text. No repository is read, let alone refreshed: an empty
        // repos.d and `--disable-repositories` (reading the system's
        // definitions would cache their metadata unaudited).
        let none = self.private.path().join("none.d");
        std::fs::create_dir_all(&none)
            .map_err(|e| Error::io(format!("creating {}", none.display()), e))?;
        let cl = self
            .zypper()
            .arg("--reposd-dir")
            .arg(none.display().to_string())
            .args([
                "--disable-repositories",
                "--no-refresh",
                "--xmlout",
                "locks",
                "--solvables",
            ]);
        let fin = self.run_checked(&cl, None)?;
        let h = locks_hold(&fin.stdout, pkg.as_str());
        if let Some((k, newest)) = key {
            // kept only when nothing changed while zypper read it
            if self.held_key(pkg).is_some_and(|(now, _)| now == k) {
                held::remember(k, newest, h);
            }
        }
        Ok(h)
    }

    fn plan(&self, source: &Source, pkg: &PkgName, version: &PkgVersion) -> Vec<CommandLine> {
        vec![
            self.refresh_cmd(source),
            self.lock_cmd("removelock", pkg),
            self.install_cmd(source, pkg, version.as_str()),
            self.lock_cmd("addlock", pkg),
        ]
    }

    fn verify_files(&self, pkg: &PkgName) -> Result<Vec<FileProblem>> {
        rpmdb::verify_files(&self.system, &self.runner, pkg)
    }

    fn executables(&self, pkg: &PkgName) -> Result<Vec<std::path::PathBuf>> {
        rpmdb::executables(&self.system, &self.runner, pkg)
    }

    fn keep_package(
        &self,
        source: &Source,
        pkg: &PkgName,
        version: &PkgVersion,
        dir: &std::path::Path,
    ) -> Result<Option<crate::KeptFile>> {
        let cl = self.zypper_for(source).args([
            "--pkg-cache-dir".to_string(),
            dir.display().to_string(),
            "--no-refresh".into(),
            "download".into(),
            format!("--repo={}", source.id),
            format!("{pkg}={version}"),
        ]);
        self.runner.run_ok(&cl)?;
        rpmdb::kept::kept_file(&self.system, &self.runner, dir).map(Some)
    }

    fn install_file(&self, _pkg: &PkgName, file: &std::path::Path) -> Result<()> {
        rpmdb::kept::install_file(&self.system, &self.runner, file)
    }

    fn file_digests(
        &self,
        pkg: &PkgName,
    ) -> Result<std::collections::HashMap<std::path::PathBuf, crate::digests::FileDigest>> {
        crate::digests::rpm(&self.system, &self.runner, pkg)
    }

    fn reinstall(&self, source: &Source, pkg: &PkgName, version: &PkgVersion) -> Result<()> {
        let installed = installed_as(self.installed(pkg)?, pkg, version)?;
        let exact = installed.version.to_string();
        self.prepare_repo(source)?;
        self.with_lock_lifted(
            source,
            pkg,
            &self.reinstall_cmd(source, pkg, &exact),
            Some((pkg, &exact, source)),
        )
    }

    fn plan_reinstall(
        &self,
        source: &Source,
        pkg: &PkgName,
        version: &PkgVersion,
    ) -> Vec<CommandLine> {
        vec![
            self.refresh_cmd(source),
            self.lock_cmd("removelock", pkg),
            self.reinstall_cmd(source, pkg, version.as_str()),
            self.lock_cmd("addlock", pkg),
        ]
    }

    fn channel_format<'a>(&self, source: &'a Source) -> Format<'a> {
        Format::Repo { id: &source.id }
    }

    fn plan_channel_move(
        &self,
        source: &Source,
        to_major: u64,
    ) -> Result<Option<crate::ChannelMove>> {
        rpmdb::plan_repo_channel_move(&self.system, &self.section(source)?, to_major)
    }

    fn reload_source(&self, source: &Source) -> Result<Source> {
        Ok(self.source_from(&self.section(source)?))
    }
}

/// Whether `zypper --xmlout locks --solvables` output says a package lock
/// keeps the installed `pkg` (a `<match ... name="pkg" ... installed="true">`
/// under it). A zypper that lists no matches: a lock whose name is `pkg`
/// or a glob matching it.
pub fn locks_hold(xml: &str, pkg: &str) -> bool {
    // <lock number="1"><name>teleport-ent</name><type>package</type>
    //   <matches size="1"><match kind="package" name="teleport-ent" ... installed="true"></match></matches></lock>
    xml.split("<lock ")
        .skip(1)
        .filter(|l| !l.contains("<type>") || l.contains("<type>package</type>"))
        .any(|l| {
            if l.contains("<matches") {
                return l.split("<match ").skip(1).any(|m| {
                    exec::xml_attr(m, "name").as_deref() == Some(pkg)
                        && exec::xml_attr(m, "installed").as_deref() == Some("true")
                });
            }
            let name = l
                .find("<name>")
                .and_then(|s| {
                    let s = s + "<name>".len();
                    l[s..].find("</name>").map(|e| &l[s..s + e])
                })
                .unwrap_or("");
            rpmdb::glob_match(name, pkg)
        })
}

#[cfg(test)]
mod tests;
