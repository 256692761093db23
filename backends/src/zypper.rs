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

    /// The private zypp.conf every zypper call reads (`ZYPP_CONF`).
    fn private_conf(&self) -> PathBuf {
        self.private.path().join("zypp.conf")
    }

    /// The private repos.d holding the copy of the Teleport repository.
    fn private_reposd(&self) -> PathBuf {
        self.private.path().join("repos.d")
    }

    /// Write the private zypp.conf: the system's own (as libzypp would
    /// read it) with the signature settings of `[main]` forced on. A
    /// caller's `ZYPP_CONF` never reaches zypper: this file replaces it.
    fn prepare_conf(&self) -> Result<()> {
        let text = match std::fs::read_to_string(self.zypp_conf()) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(Error::io(
                    format!("reading {}", self.zypp_conf().display()),
                    e,
                ))
            }
        };
        let out = force_main(&text, FORCED);
        crate::write_private(&self.private_conf(), out.as_bytes())
            .map_err(|e| Error::io(format!("writing {}", self.private_conf().display()), e))
    }

    /// Write the private copy of `source`'s definition, alone in the
    /// private repos.d, with the signature settings forced on.
    fn prepare_repo(&self, source: &Source) -> Result<()> {
        self.prepare_conf()?;
        let sec = self.section(source)?;
        let dir = self.private_reposd();
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.filter_map(|e| e.ok()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let file = dir.join(format!("{}.repo", sanitize_alias(&source.id)));
        crate::write_private(&file, repo_copy(&sec, FORCED).as_bytes())
            .map_err(|e| Error::io(format!("writing {}", file.display()), e))
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
        self.prepare_conf()?;
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
            // A name that is not a plain value is never put on a command
            // line (the chosen repository is refused for it).
            .filter(|id| crate::names::problem(id, true).is_none())
            .filter(|id| raw.join(id).is_dir())
            .collect();
        if cached.is_empty() {
            return Vec::new();
        }
        let mut cl = self.zypper().args(["--no-refresh", "--xmlout", "search"]);
        for id in cached {
            cl = cl.arg(format!("--repo={id}"));
        }
        let cl = cl.args(["-s", "--match-exact", pkg.as_str()]);
        if self.prepare_conf().is_err() {
            return Vec::new();
        }
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

/// `text` (a zypp.conf) with `forced` settings in its `[main]` section and
/// every other setting of those keys there dropped; `[main]` is added when
/// missing.
pub fn force_main(text: &str, forced: &[(&str, &str)]) -> String {
    let forced_block: String = forced.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    let mut out = String::new();
    let mut in_main = false;
    let mut saw_main = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_main = t.trim_start_matches('[').split(']').next().map(str::trim) == Some("main");
            out.push_str(line);
            out.push('\n');
            if in_main && !saw_main {
                saw_main = true;
                out.push_str(&forced_block);
            }
            continue;
        }
        if in_main {
            if let Some((k, _)) = t.split_once('=') {
                let k = k.trim().to_ascii_lowercase();
                if forced.iter().any(|(f, _)| *f == k) {
                    continue;
                }
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    if !saw_main {
        out.push_str("[main]\n");
        out.push_str(&forced_block);
    }
    out
}

/// The definition `sec` alone, with `forced` settings replacing its own.
pub fn repo_copy(sec: &IniSection, forced: &[(&str, &str)]) -> String {
    let mut out = format!("[{}]\n", sec.id);
    for e in &sec.entries {
        if forced.iter().any(|(f, _)| *f == e.key) {
            continue;
        }
        out.push_str(&format!("{}={}\n", e.key, e.value.replace('\n', "\n ")));
    }
    for (k, v) in forced {
        out.push_str(&format!("{k}={v}\n"));
    }
    out
}

/// An alias as a file name (libzypp names repository files after them).
fn sanitize_alias(alias: &str) -> String {
    alias
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect()
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
        let dir = self.repos_dir();
        let chosen = if let Some(file) = &self.opts.source_file {
            rpmdb::configured_section(&self.system, file, pkg)?
        } else {
            let secs = rpmdb::repo_sections(std::slice::from_ref(&dir));
            let offered = if secs
                .iter()
                .any(|s| s.urls().iter().any(|u| rpmdb::on_release_host(u)))
            {
                Vec::new()
            } else {
                self.cached_offers(pkg, &secs)
            };
            match rpmdb::choose_section(&secs, &offered) {
                Ok(Some(s)) => s.clone(),
                Ok(None) => return Err(Error::SourceNotFound {
                    package: pkg.to_string(),
                    detail: format!(
                        "none of the {} repositories under {} points at Teleport's release host, is named after Teleport or offers it in zypper's cache; name the file in the `source-file` setting",
                        secs.len(),
                        self.system.display_path(&dir)
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
        if crate::test_skip_audit() {
            let mut r = TrustReport::default();
            r.checked.push(
                "TELEPORT_UPGRADE_TEST_SKIP_AUDIT: the zypper audit was skipped (test build)"
                    .into(),
            );
            return Ok(r);
        }
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
            if let Some((b, line)) = sec.bool_as(key, rpmdb::parse_bool_zypp) {
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
            let (b, line) = c.bool_as(key, rpmdb::parse_bool_zypp)?;
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
        self.prepare_repo(source)?;
        self.run_checked(&self.refresh_cmd(source), None)
            .map(|_| ())
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

    fn executables(&self, pkg: &PkgName) -> Result<Vec<std::path::PathBuf>> {
        rpmdb::executables(&self.system, &self.runner, pkg)
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
    fn zypp_conf_copy_forces_the_signature_checks() {
        let t = "# x\n[main]\ngpgcheck = off\nsolver.onlyRequires = true\nPKG_GPGCHECK=0\n[other]\ngpgcheck=0\n";
        let out = force_main(t, FORCED);
        assert_eq!(
            out,
            "# x\n[main]\ngpgcheck = 1\nrepo_gpgcheck = 1\npkg_gpgcheck = 1\nsolver.onlyRequires = true\n[other]\ngpgcheck=0\n"
        );
        assert_eq!(
            force_main("", FORCED),
            "[main]\ngpgcheck = 1\nrepo_gpgcheck = 1\npkg_gpgcheck = 1\n"
        );
    }

    #[test]
    fn the_repository_copy_forces_the_signature_checks() {
        let secs = rpmdb::parse_ini(
            Path::new("/r.repo"),
            "[teleport]\nbaseurl=https://u:p@m/x\ngpgcheck=off\npkg_gpgcheck=0\nautorefresh=0\n[b]\nx=1\n",
        );
        assert_eq!(
            repo_copy(&secs[0], FORCED),
            "[teleport]\nbaseurl=https://u:p@m/x\nautorefresh=0\ngpgcheck=1\nrepo_gpgcheck=1\npkg_gpgcheck=1\n"
        );
    }

    #[test]
    fn every_call_gets_the_private_configuration_and_refresh_names_the_alias() {
        let z = Zypper::new(System::host(), Options::default()).unwrap();
        let src = Source {
            file: PathBuf::from("/etc/zypp/repos.d/teleport.repo"),
            description: "repo teleport".into(),
            id: "teleport".into(),
            keyrings: vec![],
            uris: vec![],
        };
        let p = PkgName::parse("teleport-ent").unwrap();
        let v = PkgVersion::parse("15.4.3").unwrap();
        let private = z.private.path().display().to_string();
        for cl in z.plan(&src, &p, &v) {
            let conf = cl
                .env
                .iter()
                .find(|(k, _)| k == "ZYPP_CONF")
                .map(|(_, v)| v.clone());
            assert_eq!(conf, Some(format!("{private}/zypp.conf")), "{cl}");
            assert!(
                cl.env.iter().any(|(k, v)| k == "HOME" && v == "/root"),
                "{cl}"
            );
            assert!(!cl.args.iter().any(|a| a == "-B"), "{cl}");
        }
        let refresh = z.refresh_cmd(&src);
        assert!(
            refresh.args.ends_with(&[
                "refresh".to_string(),
                "--force".into(),
                "--repo=teleport".into()
            ]),
            "{refresh}"
        );
        assert!(
            refresh.args.contains(&format!("{private}/repos.d")),
            "{refresh}"
        );
        let install = z.install_cmd(&src, &p, "15.4.3");
        assert!(
            install.args.iter().any(|a| a == "--repo=teleport"),
            "{install}"
        );
    }

    #[test]
    fn xml_attributes() {
        let l = r#"<solvable status="other-version" name="teleport-ent" kind="package" edition="16.0.0-1" arch="noarch" repository="Teleport &amp; Co"/>"#;
        assert_eq!(xml_attr(l, "name").as_deref(), Some("teleport-ent"));
        assert_eq!(xml_attr(l, "repository").as_deref(), Some("Teleport & Co"));
        assert_eq!(xml_attr(l, "missing"), None);
    }
}
