//! zypper backend (SUSE).
//!
//! * The repository is found from zypper's cache (`zypper -x search -s`),
//!   else from `.repo` sections under `/etc/zypp/repos.d` that point at
//!   Teleport's release host or carry `teleport` in their alias or file
//!   name. Refresh and install name that repository only.
//! * Exact versions: `zypper -n install --oldpackage --repo <alias>
//!   <pkg>=<ver>`. Without `--oldpackage` a downgrade prints "Nothing to
//!   do." and exits 0; the caller verifies the installed version anyway.
//! * Holds: `zypper addlock` / `removelock`. A locked package cannot be
//!   changed, so [`Backend::install_exact`] removes our lock first and puts
//!   it back afterwards, whatever the outcome.
//! * Repair: `zypper install --force --repo <alias> <pkg>=<ver>`, with our
//!   lock lifted around it: on a locked package zypper answers "cannot
//!   install both ... Solution 1: remove lock" and exits 4.
//! * Keys are never imported by this backend (`--gpg-auto-import-keys`
//!   would trust whatever key the repository ships): the Teleport key must
//!   already be in the rpm database. In non-interactive mode zypper rejects
//!   unknown keys and unsigned files.
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

const REPOS_DIR: &str = "/etc/zypp/repos.d";
const ZYPP_CONF: &str = "/etc/zypp/zypp.conf";

pub struct Zypper {
    system: System,
    runner: Runner,
    opts: Options,
}

impl Zypper {
    pub fn new(system: System, opts: Options) -> Result<Self> {
        let runner = Runner {
            timeout: opts.command_timeout,
            path: None,
        };
        Ok(Zypper {
            system,
            runner,
            opts,
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

    /// `zypper --non-interactive [--root R]` with a bounded lock wait.
    fn zypper(&self) -> CommandLine {
        let mut cl = CommandLine::new("zypper")
            .env(
                "ZYPP_LOCK_TIMEOUT",
                self.opts.lock_wait.as_secs().to_string(),
            )
            // Never page, never ask about licenses on a terminal.
            .env("PAGER", "cat");
        if let Some(root) = self.system.root() {
            let conf = self.system.path(ZYPP_CONF);
            if conf.is_file() {
                cl = cl.env("ZYPP_CONF", conf.display().to_string());
            }
            cl = cl
                .arg("--non-interactive")
                .arg("--root")
                .arg(root.display().to_string());
        } else {
            cl = cl.arg("--non-interactive");
        }
        cl
    }

    /// `zypper ...` able to see `source` (an alternative repos.d when the
    /// definition lives elsewhere).
    fn zypper_for(&self, source: &Source) -> CommandLine {
        let cl = self.zypper();
        match source.file.parent() {
            Some(dir) if dir != self.system.path(REPOS_DIR) => {
                cl.arg("--reposd-dir").arg(dir.display().to_string())
            }
            _ => cl,
        }
    }

    fn refresh_cmd(&self, source: &Source) -> CommandLine {
        self.zypper_for(source)
            .args(["refresh", "--force", source.id.as_str()])
    }

    fn install_cmd(&self, source: &Source, pkg: &PkgName, version: &str) -> CommandLine {
        self.zypper_for(source).args([
            "--no-refresh".to_string(),
            "install".into(),
            "--oldpackage".into(),
            "--no-recommends".into(),
            "--repo".into(),
            source.id.clone(),
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
            "--repo".into(),
            source.id.clone(),
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

    /// Map a finished zypper run to success or the right error.
    fn check(
        &self,
        cl: &CommandLine,
        fin: &Finished,
        pkg: Option<(&PkgName, &str, &Source)>,
    ) -> Result<()> {
        match fin.code {
            Some(0) | Some(100) | Some(101) => return Ok(()),
            Some(102) => {
                tracing::warn!(command = %cl, "zypper: a reboot is needed to finish this update (exit 102)");
                return Ok(());
            }
            Some(103) => {
                tracing::warn!(command = %cl, "zypper: zypper itself was updated and must be run again (exit 103)");
                return Ok(());
            }
            _ => {}
        }
        let text = fin.combined();
        if let Some(line) = rpmdb::trust_failure_line(&text) {
            return Err(Error::Untrusted {
                reason: format!(
                    "zypper reported a signature, key or checksum failure ({}): {line}",
                    fin.status_text()
                ),
            });
        }
        let failed = |what: &str| Error::CommandFailed {
            command: cl.to_string(),
            status: format!("{}: {what}", fin.status_text()),
            tail: fin.tail(6),
        };
        if text.contains("remove lock to allow") {
            return Err(failed("a lock keeps the package from changing (see `zypper locks`; a pattern lock such as `teleport*` is not ours to remove)"));
        }
        match fin.code {
            Some(7) => Err(Error::Locked {
                detail: rpmdb::line_with(&text, &["is locked"], fin.tail(2)),
            }),
            Some(104) => match pkg {
                Some((pkg, version, source)) => Err(Error::VersionNotFound {
                    package: pkg.to_string(),
                    version: version.to_string(),
                    source_desc: source.description.clone(),
                    detail: rpmdb::line_with(&text, &["No provider", "not found"], fin.tail(2)),
                }),
                None => Err(failed("capability not found")),
            },
            Some(106) => Err(failed("some repositories were skipped because of an error")),
            Some(107) => Err(failed(
                "the package was installed but one of its rpm scripts (%post) failed",
            )),
            Some(8) => Err(failed("the installation failed (commit error)")),
            Some(6) => Err(failed("no repositories are defined")),
            Some(4) => Err(failed("zypper reported an error")),
            _ => Err(failed("zypper failed")),
        }
    }

    fn run_checked(
        &self,
        cl: &CommandLine,
        pkg: Option<(&PkgName, &str, &Source)>,
    ) -> Result<Finished> {
        tracing::info!(command = %cl, "running");
        let fin = self.runner.run(cl)?;
        self.check(cl, &fin, pkg)?;
        Ok(fin)
    }

    /// Repository names or aliases zypper's cache lists for `pkg`.
    /// The repositories that offer `pkg` according to zypper's cache. Only
    /// repositories already cached are asked: `zypper --no-refresh search`
    /// would otherwise download (and cache) the metadata of an uncached
    /// repository before its definition has been audited.
    fn cached_offers(&self, pkg: &PkgName, secs: &[IniSection]) -> Vec<String> {
        let raw = self.system.path("/var/cache/zypp/raw");
        let cached: Vec<&str> = secs
            .iter()
            .map(|s| s.id.as_str())
            .filter(|id| raw.join(id).is_dir())
            .collect();
        if cached.is_empty() {
            return Vec::new();
        }
        let mut cl = self.zypper().args(["--no-refresh", "--xmlout", "search"]);
        for id in cached {
            cl = cl.args(["--repo", id]);
        }
        let cl = cl.args(["-s", "--match-exact", pkg.as_str()]);
        let Ok(fin) = self.runner.run(&cl) else {
            return Vec::new();
        };
        let mut out: Vec<String> = Vec::new();
        for line in fin.stdout.lines() {
            let l = line.trim();
            if !l.starts_with("<solvable ") || xml_attr(l, "name").as_deref() != Some(pkg.as_str())
            {
                continue;
            }
            if let Some(r) = xml_attr(l, "repository") {
                if !r.is_empty() && r != "(System Packages)" && !out.contains(&r) {
                    out.push(r);
                }
            }
        }
        out
    }

    fn source_from(&self, sec: &IniSection) -> Source {
        rpmdb::source_from(&self.system, sec)
    }
}

/// The value of `attr="..."` in one XML tag (zypper's `--xmlout`).
fn xml_attr(tag: &str, attr: &str) -> Option<String> {
    let needle = format!(" {attr}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(
        tag[start..end]
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
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

    fn locate_source(&self, pkg: &PkgName) -> Result<Source> {
        if let Some(file) = &self.opts.source_file {
            let chosen = rpmdb::configured_section(&self.system, file, pkg)?;
            return Ok(self.source_from(&chosen));
        }
        let secs = rpmdb::repo_sections(&[self.system.path(REPOS_DIR)]);
        let offered = self.cached_offers(pkg, &secs);
        match rpmdb::choose_section(&secs, &offered) {
            Some(s) => Ok(self.source_from(s)),
            None => Err(Error::SourceNotFound {
                package: pkg.to_string(),
                detail: format!(
                    "none of the {} repositories under {REPOS_DIR} offers it in zypper's cache or points at a Teleport repository; name the file in the `source-file` setting",
                    secs.len()
                ),
            }),
        }
    }

    fn audit_trust(&self, source: &Source) -> Result<TrustReport> {
        let sec = self.section(source)?;
        let file = self.shown(&source.file);
        let conf_file = self.zypp_conf();
        let conf: Option<IniSection> = rpmdb::read_ini(&conf_file)?
            .into_iter()
            .rev()
            .find(|s| s.id == "main");
        let mut report = TrustReport::default();
        let mut refusals: Vec<TrustFinding> = Vec::new();

        // Where a setting comes from: the repository, else zypp.conf.
        let lookup = |key: &str| -> Option<(bool, TrustFinding)> {
            if let Some((b, line)) = sec.bool(key) {
                return Some((
                    b,
                    TrustFinding {
                        file: file.clone(),
                        line: Some(line),
                        setting: format!("{key}={}", sec.value(key).unwrap_or("")),
                        message: String::new(),
                    },
                ));
            }
            let c = conf.as_ref()?;
            let (b, line) = c.bool(key)?;
            Some((
                b,
                TrustFinding {
                    file: self.shown(&conf_file),
                    line: Some(line),
                    setting: format!("{key} = {}", c.value(key).unwrap_or("")),
                    message: String::new(),
                },
            ))
        };
        // libzypp: gpgcheck defaults to on; repo_gpgcheck and pkg_gpgcheck
        // default to "according to gpgcheck", and with signed metadata an
        // unset pkg_gpgcheck leaves rpm signatures unchecked (packages are
        // then protected by the checksums in the signed metadata).
        let gpg = lookup("gpgcheck");
        if let Some((false, mut f)) = gpg.clone() {
            f.message = format!("turns signature checks off for [{}]; set gpgcheck=1 in its section and remove any gpgcheck = off from {ZYPP_CONF}", sec.id);
            refusals.push(f);
        }
        let gpg_on = gpg.as_ref().map(|(b, _)| *b).unwrap_or(true);
        match lookup("repo_gpgcheck") {
            Some((false, mut f)) => {
                f.message = format!(
                    "turns the metadata signature check off for [{}]; set repo_gpgcheck=1",
                    sec.id
                );
                refusals.push(f);
            }
            Some((true, _)) => report
                .checked
                .push(format!("repo_gpgcheck is on for [{}]", sec.id)),
            None if gpg_on => report.checked.push(format!(
                "repo_gpgcheck follows gpgcheck (on) for [{}]",
                sec.id
            )),
            None => {}
        }
        match lookup("pkg_gpgcheck") {
            Some((false, mut f)) => {
                f.message = format!("turns the package signature check off for [{}]; set pkg_gpgcheck=1", sec.id);
                refusals.push(f);
            }
            Some((true, _)) => report.checked.push(format!("pkg_gpgcheck is on for [{}]", sec.id)),
            None => report.warnings.push(TrustFinding {
                file: file.clone(),
                line: Some(sec.line),
                setting: "pkg_gpgcheck".into(),
                message: format!("not set: with signed metadata zypper checks package checksums but not package signatures; add pkg_gpgcheck=1 to [{}]", sec.id),
            }),
        }
        let keys = sec.gpgkeys();
        if keys.is_empty() {
            refusals.push(TrustFinding {
                file: file.clone(),
                line: Some(sec.line),
                setting: "gpgkey".into(),
                message: format!("[{}] names no signing key; add gpgkey=https://zypper.releases.teleport.dev/gpg and import that key (rpm --import)", sec.id),
            });
        }
        for k in &keys {
            if let Some(p) = rpmdb::file_url_path(k) {
                if !self.system.path(p).is_file() {
                    report.warnings.push(TrustFinding {
                        file: file.clone(),
                        line: sec.get("gpgkey").map(|e| e.line),
                        setting: format!("gpgkey={k}"),
                        message: format!("the key file {p} does not exist"),
                    });
                }
            }
        }
        match rpmdb::has_pubkeys(&self.system, &self.runner) {
            Ok(true) => report.checked.push("the rpm database holds signing keys".into()),
            Ok(false) => report.warnings.push(TrustFinding {
                file: file.clone(),
                line: None,
                setting: "gpgkey".into(),
                message: "no signing key is imported into the rpm database: zypper will refuse the repository until the Teleport key is imported (rpm --import)".into(),
            }),
            Err(e) => tracing::warn!("cannot list the imported keys: {e}"),
        }
        crate::audit_verdict(report, refusals, format!("gpgcheck is on for [{}]", sec.id))
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
        self.run_checked(&self.refresh_cmd(source), None)
            .map(|_| ())
    }

    fn install_exact(&self, source: &Source, pkg: &PkgName, version: &PkgVersion) -> Result<()> {
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
        let cl = self.zypper().args(["--xmlout", "locks"]);
        let fin = self.run_checked(&cl, None)?;
        // <lock number="1"><name>teleport-ent</name><type>package</type></lock>
        Ok(fin
            .stdout
            .split("<lock ")
            .skip(1)
            .filter(|l| !l.contains("<type>") || l.contains("<type>package</type>"))
            .filter_map(|l| {
                let s = l.find("<name>")? + "<name>".len();
                let e = l[s..].find("</name>")? + s;
                Some(l[s..e].to_string())
            })
            .any(|n| rpmdb::glob_match(&n, pkg.as_str())))
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

    fn reinstall(&self, source: &Source, pkg: &PkgName, version: &PkgVersion) -> Result<()> {
        let installed = installed_as(self.installed(pkg)?, pkg, version)?;
        let exact = installed.version.to_string();
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

    fn reload_source(&self, source: &Source) -> Result<Source> {
        Ok(self.source_from(&self.section(source)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fin(code: i32, stdout: &str) -> Finished {
        Finished {
            code: Some(code),
            stdout: stdout.to_string(),
            stderr: String::new(),
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn exit_codes_are_mapped() {
        let z = Zypper::new(
            System::rooted(Path::new("/tmp")).unwrap(),
            Options::default(),
        )
        .unwrap();
        let src = Source {
            file: PathBuf::from("/tmp/etc/zypp/repos.d/teleport.repo"),
            description: "repo teleport".into(),
            id: "teleport".into(),
            keyrings: vec![],
            uris: vec![],
        };
        let p = PkgName::parse("teleport-ent").unwrap();
        let cl = CommandLine::new("zypper");
        let ctx = Some((&p, "15.4.3", &src));
        let check = |code, out: &str| z.check(&cl, &fin(code, out), ctx);
        assert!(check(0, "").is_ok());
        assert!(check(102, "reboot").is_ok());
        assert!(check(103, "restart").is_ok());
        assert!(matches!(
            check(
                7,
                "System management is locked by the application with pid 1"
            ),
            Err(Error::Locked { .. })
        ));
        assert!(matches!(
            check(104, "No provider of 'teleport-ent=15.4.3' found."),
            Err(Error::VersionNotFound { .. })
        ));
        assert!(matches!(
            check(
                104,
                "Warning: ... Signature verification failed for repomd.xml\nNo provider"
            ),
            Err(Error::Untrusted { .. })
        ));
        assert!(matches!(
            check(
                8,
                "teleport-ent (Teleport): Signature verification failed [6-File is unsigned]"
            ),
            Err(Error::Untrusted { .. })
        ));
        assert!(matches!(
            check(8, "Installation has been aborted"),
            Err(Error::CommandFailed { .. })
        ));
        assert!(matches!(
            check(4, " - Signature verification failed for repomd.xml"),
            Err(Error::Untrusted { .. })
        ));
        assert!(matches!(
            check(106, "Skipping repository"),
            Err(Error::CommandFailed { .. })
        ));
        let post = check(107, "warning: %post(teleport-ent) scriptlet failed")
            .unwrap_err()
            .to_string();
        assert!(post.contains("%post"), "{post}");
    }

    #[test]
    fn xml_attributes() {
        let l = r#"<solvable status="other-version" name="teleport-ent" kind="package" edition="16.0.0-1" arch="noarch" repository="Teleport &amp; Co"/>"#;
        assert_eq!(xml_attr(l, "name").as_deref(), Some("teleport-ent"));
        assert_eq!(xml_attr(l, "repository").as_deref(), Some("Teleport & Co"));
        assert_eq!(xml_attr(l, "missing"), None);
    }
}
