//! dnf backend (also `yum`, which on RHEL 8 and later is dnf).
//!
//! * The repository is found from dnf's cache (`dnf -C repoquery`), else
//!   from `.repo` sections that point at Teleport's release host or carry
//!   `teleport` in their id or file name. Every command is restricted to it
//!   (`--disablerepo=* --enablerepo=<id>`), with `skip_if_unavailable`,
//!   `gpgcheck` and `repo_gpgcheck` forced on for it: a repository that
//!   fails to verify fails the run instead of being skipped (this host's
//!   stock `dnf.conf` sets `skip_if_unavailable=True`, with which a bad
//!   signature is only a warning and dnf exits 0).
//! * Exact versions: `dnf install -y <pkg>-<ver>` upgrades or downgrades.
//! * Holds: `dnf versionlock` when the plugin answers (host only), else the
//!   v1 way: `exclude=<pkg>` in the repository's section, and our own
//!   install passes `--disableexcludes=<id>`. A versionlock names one exact
//!   version (`teleport-ent-0:15.4.3-1.*`), so the hold is "a lock entry of
//!   exactly the installed epoch:version-release"; an install (or a
//!   rollback) moves it: the new exact lock is added first, then the other
//!   lock entries of the package are deleted, then an `exclude=` of the
//!   package in the repository's section (an earlier run's hold, before the
//!   plugin was installed) is removed, so the host is never unheld on the
//!   way. When the versionlock cannot be made, the hold falls back to
//!   `exclude=` (logged). Our own install, reinstall and downgrade pass
//!   `--disableplugin=versionlock`.
//! * Repair: `dnf reinstall <pkg>-<ver>`, restricted like the install and
//!   with `--disableexcludes=<id>`: with our `exclude=` hold and without
//!   it, dnf answers "Error: No packages marked for reinstall." (exit 1).
//! * Locks: `exit_on_lock=True` and retries until [`Options::lock_wait`].
//! * Alternate roots: `--installroot`, `--setopt=reposdir=` (the directory
//!   of the repository file), `--config=` (the root's `dnf.conf`, as dnf
//!   would pick it), and `file://` gpgkeys resolved inside the root: dnf
//!   itself reads gpgkey paths from the host even with `--installroot`.
//!   The cache stays inside the root (dnf's default); an explicit absolute
//!   `cachedir=` would split it between the host path and the root.
//! * With `repo_gpgcheck=1` dnf leaves a `gpg-agent` per repository running
//!   (homedir `<cachedir>/<id>-<hash>/pubring`); they are ended after each
//!   command that may have started one.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::apt::installed_as;
use crate::channel::Format;
use crate::cmd::{CommandLine, Finished, Runner};
use crate::integrity::FileProblem;
use crate::rpmdb::{self, IniSection};
use crate::types::{Installed, PkgName, PkgVersion, Source, System, TrustFinding, TrustReport};
use crate::{Backend, BackendKind, Error, Options, Result};

/// Where dnf (and yum) look for `.repo` files.
const REPO_DIRS: &[&str] = &[
    "/etc/yum.repos.d",
    "/etc/yum/repos.d",
    "/etc/distro.repos.d",
];

/// How a package is kept from moving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldMethod {
    /// `dnf versionlock add/delete` (dnf-plugins-core).
    Versionlock,
    /// `exclude=<pkg>` in the repository's section (Teleport v1's way).
    Exclude,
}

/// dnf's exit code when `exit_on_lock` is set and the lock is taken.
const EXIT_LOCKED: i32 = 200;

pub struct Dnf {
    system: System,
    runner: Runner,
    opts: Options,
    kind: BackendKind,
    program: String,
    hold_method: OnceLock<HoldMethod>,
    /// The probe's `versionlock list` output, used once by the first
    /// look at the lock list (saves a dnf start on a no-op run).
    probed_list: Mutex<Option<String>>,
}

impl Dnf {
    /// A dnf backend running `dnf`.
    pub fn new(system: System, opts: Options) -> Result<Self> {
        Self::with_program(system, opts, BackendKind::Dnf, "dnf")
    }

    /// A backend running `program` (`dnf` or `yum`) and reporting `kind`.
    pub fn with_program(
        system: System,
        opts: Options,
        kind: BackendKind,
        program: &str,
    ) -> Result<Self> {
        let runner = Runner {
            timeout: opts.command_timeout,
            path: None,
        };
        Ok(Dnf {
            system,
            runner,
            opts,
            kind,
            program: program.to_string(),
            hold_method: OnceLock::new(),
            probed_list: Mutex::new(None),
        })
    }

    /// Use `m` for holds instead of probing for the versionlock plugin.
    pub fn with_hold_method(self, m: HoldMethod) -> Self {
        let _ = self.hold_method.set(m);
        self
    }

    pub fn program(&self) -> &str {
        &self.program
    }

    /// Versionlock when the plugin answers on the host; in an alternate
    /// root the plugin would read its lock list from the host, so the
    /// exclude method is used there.
    pub fn hold_method(&self) -> HoldMethod {
        *self.hold_method.get_or_init(|| {
            if !self.system.is_host() {
                return HoldMethod::Exclude;
            }
            let cl = self
                .cmd()
                .args(["-q", "-C", "--disablerepo=*", "versionlock", "list"]);
            match self.runner.run(&cl) {
                Ok(f) if f.success() => {
                    *self.probed_list.lock().unwrap_or_else(|e| e.into_inner()) = Some(f.stdout);
                    HoldMethod::Versionlock
                }
                _ => HoldMethod::Exclude,
            }
        })
    }

    /// `dnf` (or `yum`) with the environment every call gets: root's
    /// `HOME`, so that a caller's `~/.rpmmacros` (`%_dbpath`, ...) does
    /// not reach rpm.
    fn cmd(&self) -> CommandLine {
        CommandLine::new(&self.program).env("HOME", crate::RPM_HOME)
    }

    /// A list setting of the main configuration's `[main]` (empty when
    /// unset).
    fn main_list(&self, key: &str) -> Vec<String> {
        rpmdb::read_ini(&self.config_file())
            .ok()
            .and_then(|v| v.into_iter().rev().find(|s| s.id == "main"))
            .map(|m| m.list(key))
            .unwrap_or_default()
    }

    /// The directories dnf reads `.repo` files from, in its order: the
    /// main configuration's `reposdir=`, else dnf's defaults.
    fn repo_dirs(&self) -> Vec<PathBuf> {
        let configured = self.main_list("reposdir");
        if configured.is_empty() {
            REPO_DIRS.iter().map(|d| self.system.path(d)).collect()
        } else {
            configured.iter().map(|d| self.system.path(d)).collect()
        }
    }

    /// dnf's effective repository set: every section of every `.repo` file
    /// of its directories (and of `extra_dir`, where a configured source
    /// file lives), in dnf's order, plus the repositories defined in the
    /// main configuration file itself.
    fn effective_sections(&self, extra_dir: Option<&Path>) -> Vec<IniSection> {
        let mut dirs = self.repo_dirs();
        if let Some(d) = extra_dir {
            if !dirs.iter().any(|x| x == d) {
                dirs.push(d.to_path_buf());
            }
        }
        let mut secs = rpmdb::repo_sections(&dirs);
        if let Ok(v) = rpmdb::read_ini(&self.config_file()) {
            secs.extend(v.into_iter().filter(|s| s.id != "main"));
        }
        secs
    }

    /// The main configuration dnf will read for this system: in a root, the
    /// root's own when it has one (dnf falls back to the host's otherwise).
    /// yum 3 (RHEL 7) has no dnf.conf: its `/etc/yum.conf` then.
    fn config_file(&self) -> PathBuf {
        let own = self.system.path("/etc/dnf/dnf.conf");
        if own.is_file() {
            return own;
        }
        let yum = self.system.path("/etc/yum.conf");
        if yum.is_file() {
            return yum;
        }
        if self.system.is_host() {
            own
        } else {
            PathBuf::from("/etc/dnf/dnf.conf")
        }
    }

    /// Every main configuration file to audit (dnf.conf, yum.conf), once.
    fn config_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = Vec::new();
        for f in [
            self.config_file(),
            self.system.path("/etc/dnf/dnf.conf"),
            self.system.path("/etc/yum.conf"),
        ] {
            if !f.is_file() {
                continue;
            }
            let canon = std::fs::canonicalize(&f).unwrap_or(f.clone());
            if !v
                .iter()
                .any(|x| std::fs::canonicalize(x).unwrap_or(x.clone()) == canon)
            {
                v.push(f);
            }
        }
        v
    }

    /// dnf's cache directory (dnf's default, inside the root).
    fn cachedir(&self) -> PathBuf {
        self.system.path("/var/cache/dnf")
    }

    /// Options that place dnf in the system (root) and its configuration.
    fn root_args(&self, reposdir: Option<&Path>) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(root) = self.system.root() {
            a.push(format!("--installroot={}", root.display()));
            a.push(format!("--config={}", self.config_file().display()));
        }
        if let Some(d) = reposdir {
            a.push(format!("--setopt=reposdir={}", d.display()));
        } else if self.system.root().is_some() {
            let dirs: Vec<String> = self
                .repo_dirs()
                .iter()
                .filter(|d| d.is_dir())
                .map(|d| d.display().to_string())
                .collect();
            if !dirs.is_empty() {
                a.push(format!("--setopt=reposdir={}", dirs.join(",")));
            }
        }
        a
    }

    /// The section of the source's file that defines the repository.
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

    /// gpgkey URLs as dnf must see them: `file://` paths of the target
    /// resolved inside the root.
    fn gpgkey_urls(&self, sec: Option<&IniSection>) -> Vec<String> {
        sec.map(|s| s.gpgkeys())
            .unwrap_or_default()
            .into_iter()
            .map(|u| match rpmdb::file_url_path(&u) {
                Some(p) => format!("file://{}", self.system.path(p).display()),
                None => u,
            })
            .collect()
    }

    /// `dnf -y` restricted to `source`, with verification forced on
    /// globally and for the repository, whatever `dnf.conf` and the
    /// `.repo` file say: `--setopt` wins over both, in dnf and in yum 3.
    fn base(&self, source: &Source) -> CommandLine {
        let id = &source.id;
        let reposdir = source.file.parent().map(Path::to_path_buf);
        let mut cl = self
            .cmd()
            .arg("-y")
            .args(self.root_args(reposdir.as_deref()))
            .args(["--setopt=exit_on_lock=True".to_string()])
            .args(enforcement_args(id))
            .args(["--disablerepo=*".to_string(), format!("--enablerepo={id}")]);
        if self.system.root().is_some() {
            let sec = rpmdb::read_ini(&source.file)
                .ok()
                .and_then(|v| v.into_iter().find(|s| s.id == *id));
            let keys = self.gpgkey_urls(sec.as_ref());
            if !keys.is_empty() {
                cl = cl.arg(format!("--setopt={id}.gpgkey={}", keys.join(" ")));
            }
        }
        cl
    }

    fn refresh_cmd(&self, source: &Source) -> CommandLine {
        self.base(source).args(["makecache", "--refresh"])
    }

    fn install_cmd(&self, source: &Source, pkg: &PkgName, version: &str) -> CommandLine {
        let mut cl = self
            .base(source)
            .arg(format!("--disableexcludes={}", source.id));
        if self.main_holds(pkg) {
            // An `exclude=` of the package in `[main]` is a hold the
            // install lifts, as the repository's own (versioned excludes
            // are refused before: `refuse_forbidden`).
            cl = cl.arg("--disableexcludes=main");
        }
        if self.hold_method() == HoldMethod::Versionlock {
            cl = cl.arg("--disableplugin=versionlock");
        }
        cl.args(["install".to_string(), format!("{pkg}-{version}")])
    }

    /// `dnf reinstall <pkg>-<version>`, restricted and verified as the
    /// install is; our own exclude (the hold) does not apply to it.
    fn reinstall_cmd(&self, source: &Source, pkg: &PkgName, version: &str) -> CommandLine {
        let mut cl = self
            .base(source)
            .arg(format!("--disableexcludes={}", source.id));
        if self.main_holds(pkg) {
            cl = cl.arg("--disableexcludes=main");
        }
        if self.hold_method() == HoldMethod::Versionlock {
            cl = cl.arg("--disableplugin=versionlock");
        }
        cl.args(["reinstall".to_string(), format!("{pkg}-{version}")])
    }

    /// `dnf versionlock <action> <specs>`, touching no repository.
    fn versionlock_cmd<S: AsRef<str>>(&self, action: &str, specs: &[S]) -> CommandLine {
        self.cmd()
            .arg("-y")
            .args(self.root_args(None))
            .arg("--setopt=exit_on_lock=True")
            .args(global_enforcement_args())
            .args(["--disablerepo=*", "versionlock", action])
            .args(specs.iter().map(|s| s.as_ref().to_string()))
    }

    /// The lines of `dnf versionlock list` (the lock list's entries).
    fn lock_list(&self) -> Result<Vec<String>> {
        let probed = self
            .probed_list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let text = match probed {
            Some(t) => t,
            None => {
                let cl = self.versionlock_cmd::<&str>("list", &[]);
                let fin = self.runner.run(&cl)?;
                if !fin.success() {
                    return Err(self.classify(&cl, &fin, None));
                }
                fin.stdout
            }
        };
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect())
    }

    /// The versionlock entries (locks, not `!` excludes) of `pkg`.
    fn locks_of(&self, pkg: &PkgName) -> Result<Vec<LockEntry>> {
        Ok(self
            .lock_list()?
            .iter()
            .filter_map(|l| LockEntry::parse(l))
            .filter(|e| !e.exclude && e.name == pkg.as_str())
            .collect())
    }

    /// The installed (epoch, version, release) of `pkg`.
    fn installed_evr(&self, pkg: &PkgName) -> Result<Evr> {
        let inst = self.installed(pkg)?.ok_or_else(|| Error::NotInstalled {
            package: pkg.to_string(),
        })?;
        Evr::parse(inst.version.as_str()).ok_or_else(|| Error::Parse {
            what: "the installed version (epoch:version-release)".into(),
            detail: format!("{pkg} {}", inst.version),
        })
    }

    /// Lock exactly the installed version: add that lock, then delete the
    /// package's other lock entries, then remove an `exclude=` hold of the
    /// package from the repository's section; checked afterwards.
    fn versionlock_hold(&self, source: &Source, pkg: &PkgName) -> Result<()> {
        let evr = self.installed_evr(pkg)?;
        let spec = evr.spec(pkg);
        let locks = self.locks_of(pkg)?;
        if !locks.iter().any(|e| e.locks(&evr)) {
            self.run_classified(&self.versionlock_cmd("add", &[&spec]), None)?;
        }
        let stale: Vec<&str> = locks
            .iter()
            .filter(|e| !e.locks(&evr))
            .map(|e| e.raw.as_str())
            .collect();
        if !stale.is_empty() {
            tracing::info!(package = %pkg, "deleting versionlock entries of other versions: {}", stale.join(" "));
            self.run_classified(&self.versionlock_cmd("delete", &stale), None)?;
        }
        let now = self.locks_of(pkg)?;
        if !now.iter().any(|e| e.locks(&evr)) {
            return Err(Error::CommandFailed {
                command: self.versionlock_cmd("add", &[&spec]).to_string(),
                status: "exit 0".into(),
                tail: format!(
                    "the lock list has no entry for {spec} afterwards: {}",
                    now.iter()
                        .map(|e| e.raw.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            });
        }
        tracing::info!(package = %pkg, "versionlocked {spec}");
        if rpmdb::excludes(&rpmdb::read_ini(&source.file)?, &source.id, pkg.as_str()) {
            tracing::info!(package = %pkg, "the hold is the versionlock now: removing exclude={pkg} from [{}]", source.id);
            self.edit_repo_exclude(source, pkg, false)?;
        }
        Ok(())
    }

    /// Whether `pkg` is held against routine upgrades: an `exclude=` of
    /// it, or (with the plugin) a versionlock of exactly its installed
    /// version.
    fn held_now(&self, source: &Source, pkg: &PkgName) -> Result<bool> {
        let secs = rpmdb::read_ini(&source.file)?;
        if rpmdb::excludes(&secs, &source.id, pkg.as_str()) || self.main_holds(pkg) {
            return Ok(true);
        }
        if self.hold_method() == HoldMethod::Versionlock {
            let locks = self.locks_of(pkg)?;
            if locks.is_empty() {
                return Ok(false);
            }
            let evr = self.installed_evr(pkg)?;
            return Ok(locks.iter().any(|e| e.locks(&evr)));
        }
        Ok(false)
    }

    /// The `[main]` sections of every main configuration dnf reads.
    fn main_sections(&self) -> Vec<IniSection> {
        self.config_files()
            .iter()
            .filter_map(|f| rpmdb::read_ini(f).ok())
            .flatten()
            .filter(|s| s.id == "main")
            .collect()
    }

    /// Whether an `exclude=` of `[main]` keeps every version of `pkg` out
    /// (an operator's hold: dnf will not move the package).
    fn main_holds(&self, pkg: &PkgName) -> bool {
        crate::excludes::exclude_lines(&self.main_sections(), &["main"])
            .iter()
            .any(|l| crate::excludes::holds(&l.pattern, pkg.as_str()))
    }

    /// Refuse to install `version` of `pkg` when an operator's exclude
    /// (the repository's section, `[main]`, the versionlock list's `!`
    /// entries) forbids that version: the install lifts holds, never an
    /// operator's "not this version". Names the line.
    fn refuse_forbidden(&self, source: &Source, pkg: &PkgName, version: &str) -> Result<()> {
        let mut lines =
            crate::excludes::exclude_lines(&rpmdb::read_ini(&source.file)?, &[&source.id]);
        lines.extend(crate::excludes::exclude_lines(
            &self.main_sections(),
            &["main"],
        ));
        if self.hold_method() == HoldMethod::Versionlock {
            lines.extend(crate::excludes::versionlock_excludes(
                &self.lock_list()?,
                PathBuf::from("the versionlock list"),
            ));
        }
        let release = self.installed_evr(pkg).map(|e| e.release).ok();
        let mut releases = vec!["1"];
        if let Some(r) = release.as_deref() {
            releases.push(r);
        }
        let bad = crate::excludes::forbidding(&lines, pkg.as_str(), version, &releases);
        if bad.is_empty() {
            return Ok(());
        }
        Err(Error::Untrusted {
            reason: format!(
                "{pkg} {version} is excluded by the operator: {}; the updater does not install a version an exclude forbids (remove the line, or target another version)",
                bad.iter()
                    .map(|l| if l.line == 0 {
                        format!("!{} in {}", l.pattern, l.file.display())
                    } else {
                        format!(
                            "exclude={} in [{}] ({}:{})",
                            l.pattern,
                            l.section,
                            self.system.display_path(&l.file),
                            l.line
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    /// The pseudo-command shown in a dry run for the exclude edit.
    fn exclude_note(&self, source: &Source, pkg: &PkgName, add: bool) -> CommandLine {
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

    fn classify(
        &self,
        cl: &CommandLine,
        fin: &Finished,
        pkg: Option<(&PkgName, &str, &Source)>,
    ) -> Error {
        let text = fin.combined();
        if let Some(line) = rpmdb::trust_failure_line(&text) {
            return Error::Untrusted {
                reason: format!(
                    "{} reported a signature, key or checksum failure ({}): {line}",
                    self.program,
                    fin.status_text()
                ),
            };
        }
        if fin.code == Some(EXIT_LOCKED) || text.contains("already locked by") {
            return Error::Locked {
                detail: rpmdb::line_with(&text, &["already locked by"], fin.tail(2)),
            };
        }
        if let Some((pkg, version, source)) = pkg {
            if text.contains("Unable to find a match")
                || text.contains("No match for argument")
                || (text.contains("No package") && text.contains("available"))
            {
                return Error::VersionNotFound {
                    package: pkg.to_string(),
                    version: version.to_string(),
                    source_desc: source.description.clone(),
                    detail: rpmdb::line_with(
                        &text,
                        &[
                            "Unable to find a match",
                            "No match for argument",
                            "No package",
                        ],
                        fin.tail(2),
                    ),
                };
            }
        }
        Error::CommandFailed {
            command: cl.to_string(),
            status: fin.status_text(),
            tail: fin.tail(6),
        }
    }

    /// Run `cl`, retrying while another dnf holds the lock, up to
    /// `lock_wait`; then classify a failure.
    fn run_classified(
        &self,
        cl: &CommandLine,
        pkg: Option<(&PkgName, &str, &Source)>,
    ) -> Result<Finished> {
        tracing::info!(command = %cl, "running");
        let started = Instant::now();
        let mut pause = Duration::from_millis(250);
        loop {
            let fin = self.runner.run(cl)?;
            if fin.success() {
                return Ok(fin);
            }
            let err = self.classify(cl, &fin, pkg);
            let left = self.opts.lock_wait.saturating_sub(started.elapsed());
            if matches!(err, Error::Locked { .. }) && !left.is_zero() {
                tracing::info!("{} is locked by another process; waiting", self.program);
                std::thread::sleep(pause.min(left));
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
            return Err(err);
        }
    }

    /// End the gpg-agents dnf started for `id`'s metadata checks (every
    /// repository's when `id` is empty).
    fn end_gpg_agents(&self, id: &str) {
        if self.runner.find("gpgconf").is_none() {
            return;
        }
        let Ok(rd) = std::fs::read_dir(self.cachedir()) else {
            return;
        };
        let prefix = if id.is_empty() {
            String::new()
        } else {
            format!("{id}-")
        };
        for e in rd.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            let home = e.path().join("pubring");
            if name.starts_with(&prefix) && home.is_dir() {
                let cl = CommandLine::new("gpgconf")
                    .env("GNUPGHOME", home.display().to_string())
                    .args([
                        "--homedir".to_string(),
                        home.display().to_string(),
                        "--kill".into(),
                        "gpg-agent".into(),
                    ]);
                let _ = self.runner.run(&cl);
            }
        }
    }

    /// Repo ids that dnf's cache says offer `pkg` (no network).
    fn cached_offers(&self, pkg: &PkgName) -> Vec<String> {
        let cl = self
            .cmd()
            .args(["-q", "-C"])
            .args(self.root_args(None))
            // A read-only look-up: an uncached repository must not spoil it.
            .args([
                "--setopt=*.skip_if_unavailable=True",
                "--disableexcludes=all",
                "repoquery",
                "--qf",
                "%{repoid}",
                pkg.as_str(),
            ]);
        let r = self.runner.run(&cl);
        self.end_gpg_agents("");
        match r {
            Ok(f) if f.success() => f
                .stdout
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('@') && !l.contains(' '))
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        }
    }

    fn source_from(&self, sec: &IniSection) -> Source {
        rpmdb::source_from(&self.system, sec)
    }

    /// The variable directories dnf reads (`varsdir=` of the main
    /// configuration, else dnf's defaults), as the target sees them.
    fn vars_dirs(&self) -> Vec<String> {
        let configured = self.main_list("varsdir");
        if configured.is_empty() {
            crate::dnf_vars::VARS_DIRS
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            configured
        }
    }

    /// Refuse when another section of dnf's effective set becomes
    /// `chosen`'s id once dnf substitutes its variables (`[tele$x]` with
    /// `/etc/dnf/vars/x` = `port`), naming both files.
    fn refuse_variable_twins(&self, all: &[IniSection], chosen: &IniSection) -> Result<()> {
        let vars = crate::dnf_vars::Vars::load(&self.system, &self.vars_dirs());
        let twins: Vec<String> = all
            .iter()
            .filter(|s| crate::dnf_vars::has_vars(&s.id))
            .filter(|s| crate::dnf_vars::may_be(&s.id, &vars, &chosen.id))
            .map(|s| {
                let from: Vec<String> = vars
                    .files_used_by(&s.id)
                    .iter()
                    .map(|f| self.system.display_path(f))
                    .collect();
                format!(
                    "[{}] ({}:{}){}",
                    s.id,
                    self.system.display_path(&s.file),
                    s.line,
                    if from.is_empty() {
                        String::new()
                    } else {
                        format!(" with {}", from.join(", "))
                    }
                )
            })
            .collect();
        if twins.is_empty() {
            return Ok(());
        }
        Err(Error::Untrusted {
            reason: format!(
                "repository [{id}] is defined more than once ({}:{} and {}): {} substitutes its variables in repo ids, so each of these may be [{id}] too; it uses only one definition, which need not be the one audited and pinned; remove or rename the other definitions",
                self.system.display_path(&chosen.file),
                chosen.line,
                twins.join(" and "),
                self.program,
                id = chosen.id,
            ),
        })
    }

    fn edit_repo_exclude(&self, source: &Source, pkg: &PkgName, add: bool) -> Result<()> {
        let text = std::fs::read_to_string(&source.file)
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

    fn shown(&self, p: &Path) -> PathBuf {
        PathBuf::from(self.system.display_path(p))
    }
}

/// The options that force verification on for every dnf/yum call: package
/// signatures (`gpgcheck`), metadata signatures (`repo_gpgcheck`) and local
/// package files (`localpkg_gpgcheck`) on globally and for the repository
/// `id`, and a repository that fails to verify fails the run instead of
/// being skipped (`skip_if_unavailable=False`). yum 3 (RHEL 7) reads the
/// same `--setopt=option=value` / `--setopt=repoid.option=value` forms.
pub fn enforcement_args(id: &str) -> Vec<String> {
    let mut v = global_enforcement_args();
    v.extend([
        format!("--setopt={id}.gpgcheck=True"),
        format!("--setopt={id}.repo_gpgcheck=True"),
        format!("--setopt={id}.skip_if_unavailable=False"),
    ]);
    v
}

/// The global part of [`enforcement_args`] (for calls that touch no
/// repository, such as `versionlock`).
pub fn global_enforcement_args() -> Vec<String> {
    vec![
        "--setopt=gpgcheck=True".to_string(),
        "--setopt=repo_gpgcheck=True".into(),
        "--setopt=localpkg_gpgcheck=True".into(),
    ]
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

impl Backend for Dnf {
    fn kind(&self) -> BackendKind {
        self.kind
    }

    fn system(&self) -> &System {
        &self.system
    }

    fn installed(&self, pkg: &PkgName) -> Result<Option<Installed>> {
        rpmdb::installed(&self.system, &self.runner, pkg)
    }

    fn locate_source(&self, pkg: &PkgName) -> Result<Source> {
        let chosen = if let Some(file) = &self.opts.source_file {
            rpmdb::configured_section(&self.system, file, pkg)?
        } else {
            let secs = self.effective_sections(None);
            // The cache is asked only when no definition points at
            // Teleport's release host.
            let offered = if secs
                .iter()
                .any(|s| s.urls().iter().any(|u| rpmdb::on_release_host(u)))
            {
                Vec::new()
            } else {
                self.cached_offers(pkg)
            };
            match rpmdb::choose_section(&secs, &offered) {
                Ok(Some(s)) => s.clone(),
                Ok(None) => return Err(Error::SourceNotFound {
                    package: pkg.to_string(),
                    detail: format!(
                        "none of the {} repositories under {} points at Teleport's release host, is named after Teleport or offers it in dnf's cache; name the file in the `source-file` setting",
                        secs.len(),
                        self.repo_dirs().iter().map(|d| self.system.display_path(d)).collect::<Vec<_>>().join(", ")
                    ),
                }),
                Err(several) => return Err(rpmdb::ambiguous(&self.system, pkg, &several)),
            }
        };
        // Its id goes on every command line: a plain value only.
        crate::names::check_repo_id(&self.system, &chosen, &self.program)?;
        // The repository audited must be the repository used: refuse an id
        // that dnf's effective set defines twice, written out or through
        // dnf's variables.
        let all = self.effective_sections(chosen.file.parent());
        rpmdb::refuse_duplicates(&self.system, &all, &chosen.id, &self.program)?;
        self.refuse_variable_twins(&all, &chosen)?;
        Ok(self.source_from(&chosen))
    }

    fn audit_trust(&self, source: &Source) -> Result<TrustReport> {
        if crate::test_skip_audit() {
            let mut r = TrustReport::default();
            r.checked.push(
                "TELEPORT_UPGRADE_TEST_SKIP_AUDIT: the dnf audit was skipped (test build)".into(),
            );
            return Ok(r);
        }
        let sec = self.section(source)?;
        let file = self.shown(&source.file);
        let mut report = TrustReport::default();
        let mut refusals: Vec<TrustFinding> = Vec::new();
        let mut main: Vec<IniSection> = Vec::new();
        for f in self.config_files() {
            main.extend(rpmdb::read_ini(&f)?.into_iter().filter(|s| s.id == "main"));
        }
        // Effective value of a boolean: the repository's, else the last main
        // configuration's, else dnf's default (off).
        let effective = |key: &str| -> (Option<bool>, Option<TrustFinding>) {
            if let Some((b, line)) = sec.bool(key) {
                return (
                    Some(b),
                    Some(TrustFinding {
                        file: file.clone(),
                        line: Some(line),
                        setting: format!("{key}={}", sec.value(key).unwrap_or("")),
                        message: String::new(),
                    }),
                );
            }
            for m in main.iter().rev() {
                if let Some((b, line)) = m.bool(key) {
                    return (
                        Some(b),
                        Some(TrustFinding {
                            file: self.shown(&m.file),
                            line: Some(line),
                            setting: format!("{key}={}", m.value(key).unwrap_or("")),
                            message: String::new(),
                        }),
                    );
                }
            }
            (None, None)
        };
        for key in ["gpgcheck", "repo_gpgcheck"] {
            let what = if key == "gpgcheck" {
                "package signatures"
            } else {
                "repository metadata signatures"
            };
            match effective(key) {
                (Some(true), Some(f)) => {
                    report.checked.push(format!("{key} is on for [{}] ({}:{})", sec.id, f.file.display(), f.line.unwrap_or(0)));
                    // An off in a main configuration that the repository
                    // overrides is worth a warning, not a refusal.
                    for m in &main {
                        if let Some((false, line)) = m.bool(key) {
                            report.warnings.push(TrustFinding {
                                file: self.shown(&m.file),
                                line: Some(line),
                                setting: format!("{key}={}", m.value(key).unwrap_or("")),
                                message: format!("turns {what} off for every repository that does not set {key} itself; [{}] overrides it", sec.id),
                            });
                        }
                    }
                }
                (Some(false), Some(mut f)) => {
                    f.message = format!("turns {what} off for [{}]; set {key}=1 in its section of {}", sec.id, file.display());
                    refusals.push(f);
                }
                _ => refusals.push(TrustFinding {
                    file: file.clone(),
                    line: Some(sec.line),
                    setting: key.to_string(),
                    message: format!("[{}] does not set {key}, and dnf's default is off: {what} would not be checked; add {key}=1 to the section", sec.id),
                }),
            }
        }
        for m in &main {
            if let Some((false, line)) = m.bool("localpkg_gpgcheck") {
                report.warnings.push(TrustFinding {
                    file: self.shown(&m.file),
                    line: Some(line),
                    setting: format!("localpkg_gpgcheck={}", m.value("localpkg_gpgcheck").unwrap_or("")),
                    message: "local package files are installed without a signature check (this updater installs from the repository only); set localpkg_gpgcheck=1".into(),
                });
            }
        }
        let keys = sec.gpgkeys();
        let key_line = sec.get("gpgkey").map(|e| e.line);
        if keys.is_empty() {
            refusals.push(TrustFinding {
                file: file.clone(),
                line: Some(sec.line),
                setting: "gpgkey".into(),
                message: format!("[{}] names no signing key; add gpgkey=https://yum.releases.teleport.dev/gpg (or a file:// path of the installed key)", sec.id),
            });
        }
        let sslverify_off = sec
            .bool("sslverify")
            .or_else(|| main.iter().rev().find_map(|m| m.bool("sslverify")))
            .is_some_and(|(b, _)| !b);
        for k in &keys {
            if let Some(p) = rpmdb::file_url_path(k) {
                if !self.system.path(p).is_file() {
                    refusals.push(TrustFinding {
                        file: file.clone(),
                        line: key_line,
                        setting: format!("gpgkey={k}"),
                        message: format!("the key file {p} does not exist; install the Teleport release key there"),
                    });
                }
            } else if k.starts_with("http://") || k.starts_with("ftp://") {
                refusals.push(TrustFinding {
                    file: file.clone(),
                    line: key_line,
                    setting: format!("gpgkey={k}"),
                    message: "the key is fetched without transport security and dnf -y imports it: whoever is on the path picks the key; use https:// or a file:// path".into(),
                });
            } else if sslverify_off {
                refusals.push(TrustFinding {
                    file: file.clone(),
                    line: key_line,
                    setting: "sslverify=0".into(),
                    message: format!("the key {k} is fetched over unverified TLS and dnf -y imports it; remove sslverify=0"),
                });
            }
        }
        crate::audit_verdict(
            report,
            refusals,
            format!("[{}] names its signing key(s): {}", sec.id, keys.join(" ")),
        )
    }

    fn recover(&self) -> Result<Option<String>> {
        // dnf's transactions are rpm transactions: an interrupted one leaves
        // nothing that a later dnf run must finish first.
        Ok(None)
    }

    fn unfinished_transaction(&self, pkg: &PkgName) -> Result<Option<String>> {
        rpmdb::duplicate_instances(&self.system, &self.runner, pkg)
    }

    fn recover_package(&self, pkg: &PkgName) -> Result<Option<String>> {
        rpmdb::erase_older_instances(&self.system, &self.runner, pkg)
    }

    fn refresh(&self, source: &Source) -> Result<()> {
        let r = self.run_classified(&self.refresh_cmd(source), None);
        self.end_gpg_agents(&source.id);
        r.map(|_| ())
    }

    fn install_exact(&self, source: &Source, pkg: &PkgName, version: &PkgVersion) -> Result<()> {
        // A versionlock names one version: a held package's hold moves
        // with the install (as zypper's lock is restored), with no gap.
        self.refuse_forbidden(source, pkg, version.as_str())?;
        let was_held = self.hold_method() == HoldMethod::Versionlock
            && self.held_now(source, pkg).unwrap_or(true);
        let cl = self.install_cmd(source, pkg, version.as_str());
        let r = self.run_classified(&cl, Some((pkg, version.as_str(), source)));
        self.end_gpg_agents(&source.id);
        let fin = r?;
        if was_held {
            self.hold(source, pkg)?;
        }
        // rpm scriptlet failures are not fatal to dnf (exit 0): say so.
        let text = fin.combined();
        if let Some(l) = text
            .lines()
            .find(|l| l.contains("scriptlet failure") || l.contains("scriptlet failed"))
        {
            tracing::warn!(command = %cl, "{pkg} {version} was installed but a package script failed: {}", l.trim());
        }
        Ok(())
    }

    fn hold(&self, source: &Source, pkg: &PkgName) -> Result<()> {
        match self.hold_method() {
            HoldMethod::Versionlock => match self.versionlock_hold(source, pkg) {
                Ok(()) => Ok(()),
                // Never unheld: the v1 way instead.
                Err(e) => {
                    tracing::warn!(package = %pkg, "the versionlock could not be made ({e}); holding with exclude={pkg} in [{}] instead", source.id);
                    self.edit_repo_exclude(source, pkg, true).map_err(|x| {
                        tracing::error!("the exclude= hold failed too: {x}");
                        e
                    })
                }
            },
            HoldMethod::Exclude => self.edit_repo_exclude(source, pkg, true),
        }
    }

    fn unhold(&self, source: &Source, pkg: &PkgName) -> Result<()> {
        if self.hold_method() == HoldMethod::Versionlock {
            let raws: Vec<String> = self.locks_of(pkg)?.into_iter().map(|e| e.raw).collect();
            if !raws.is_empty() {
                self.run_classified(&self.versionlock_cmd("delete", &raws), None)?;
            }
        }
        self.edit_repo_exclude(source, pkg, false)
    }

    fn is_held(&self, source: &Source, pkg: &PkgName) -> Result<bool> {
        self.held_now(source, pkg)
    }

    fn plan(&self, source: &Source, pkg: &PkgName, version: &PkgVersion) -> Vec<CommandLine> {
        let mut v = vec![
            self.refresh_cmd(source),
            self.install_cmd(source, pkg, version.as_str()),
        ];
        match self.hold_method() {
            HoldMethod::Versionlock => {
                v.push(
                    self.versionlock_cmd("add", &[format!("{pkg}-<epoch>:{version}-<release>")]),
                );
                v.push(CommandLine::new("#").args([
                    "then".to_string(),
                    "versionlock".into(),
                    "delete".into(),
                    format!("the other versionlock entries of {pkg},"),
                    "and".into(),
                    "remove".into(),
                    format!("exclude={pkg}"),
                    "from".into(),
                    "section".into(),
                    source.id.clone(),
                ]));
            }
            HoldMethod::Exclude => v.push(self.exclude_note(source, pkg, true)),
        }
        v
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
        let cl = self.reinstall_cmd(source, pkg, &exact);
        let r = self.run_classified(&cl, Some((pkg, &exact, source)));
        self.end_gpg_agents(&source.id);
        r.map(|_| ())
    }

    fn plan_reinstall(
        &self,
        source: &Source,
        pkg: &PkgName,
        version: &PkgVersion,
    ) -> Vec<CommandLine> {
        vec![
            self.refresh_cmd(source),
            self.reinstall_cmd(source, pkg, version.as_str()),
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

    /// The Teleport repository as the tests' plans name it.
    fn teleport_repo() -> Source {
        Source {
            file: PathBuf::from("/etc/yum.repos.d/teleport.repo"),
            description: "repo teleport".into(),
            id: "teleport".into(),
            keyrings: vec![],
            uris: vec![],
        }
    }

    #[test]
    fn every_package_call_forces_verification_and_the_repository() {
        let d = Dnf::new(System::host(), Options::default())
            .unwrap()
            .with_hold_method(HoldMethod::Exclude);
        let src = teleport_repo();
        let p = PkgName::parse("teleport-ent").unwrap();
        let v = PkgVersion::parse("15.4.3").unwrap();
        let mut cmds = d.plan(&src, &p, &v);
        cmds.extend(d.plan_reinstall(&src, &p, &v));
        let cmds: Vec<CommandLine> = cmds.into_iter().filter(|c| c.program != "#").collect();
        assert_eq!(cmds.len(), 4);
        for cl in cmds {
            for a in enforcement_args("teleport").into_iter().chain([
                "--disablerepo=*".to_string(),
                "--enablerepo=teleport".into(),
            ]) {
                assert!(cl.args.contains(&a), "{cl} lacks {a}");
            }
            assert!(
                cl.env.iter().any(|(k, v)| k == "HOME" && v == "/root"),
                "{cl}"
            );
        }
    }

    #[test]
    fn the_plugins_own_entries_parse() {
        // As dnf-plugins-core 4.3.1 writes them (pkgtup2spec: arch ignored).
        let e = LockEntry::parse("teleport-ent-0:15.4.3-1.*").unwrap();
        assert_eq!(
            e,
            LockEntry {
                raw: "teleport-ent-0:15.4.3-1.*".into(),
                exclude: false,
                name: "teleport-ent".into(),
                epoch: Some("0".into()),
                version: "15.4.3".into(),
                release: "1".into(),
                arch: Some("*".into()),
            }
        );
        let x = LockEntry::parse("!teleport-ent-0:16.0.1-1.*").unwrap();
        assert!(x.exclude);
        assert_eq!(x.name, "teleport-ent");
        assert_eq!(x.raw, "!teleport-ent-0:16.0.1-1.*");
        let fips = LockEntry::parse("teleport-ent-fips-2:15.4.3-1.el8.x86_64").unwrap();
        assert_eq!(
            (
                fips.name.as_str(),
                fips.epoch.as_deref(),
                fips.release.as_str(),
                fips.arch.as_deref()
            ),
            ("teleport-ent-fips", Some("2"), "1.el8", Some("x86_64"))
        );
        // NEVR without arch: the release keeps its dots.
        let nevr = LockEntry::parse("teleport-ent-15.4.3-1.el8").unwrap();
        assert_eq!(
            (nevr.epoch, nevr.release.as_str(), nevr.arch),
            (None, "1.el8", None)
        );
    }

    #[test]
    fn what_is_not_an_exact_entry_is_refused() {
        for l in [
            "",
            "teleport-ent",
            "teleport-ent-15.4.3",
            "teleport-ent-0:15.4.*-1.*",
            "teleport-ent-x:15.4.3-1.*",
            "teleport-ent-0:15.4.3-.*",
            "-0:15.4.3-1.*",
            "teleport-ent-0:15.4.3-1 extra",
            "Last metadata expiration check: 0:00:01 ago",
        ] {
            assert_eq!(LockEntry::parse(l), None, "{l:?}");
        }
    }

    #[test]
    fn a_lock_holds_exactly_its_version() {
        let evr = Evr::parse("15.4.3-1").unwrap();
        assert_eq!(evr.epoch, "0");
        let p = PkgName::parse("teleport-ent").unwrap();
        assert_eq!(evr.spec(&p), "teleport-ent-0:15.4.3-1");
        let l = |s: &str| LockEntry::parse(s).unwrap();
        assert!(l("teleport-ent-0:15.4.3-1.*").locks(&evr));
        assert!(l("teleport-ent-15.4.3-1.x86_64").locks(&evr));
        assert!(!l("teleport-ent-0:15.4.2-1.*").locks(&evr));
        assert!(!l("teleport-ent-0:15.4.3-10.*").locks(&evr));
        assert!(!l("teleport-ent-1:15.4.3-1.*").locks(&evr));
        assert!(!l("!teleport-ent-0:15.4.3-1.*").locks(&evr));
        let e1 = Evr::parse("1:16.0.0-2").unwrap();
        assert_eq!(
            (e1.epoch.as_str(), e1.version.as_str(), e1.release.as_str()),
            ("1", "16.0.0", "2")
        );
        assert!(l("teleport-ent-1:16.0.0-2.*").locks(&e1));
        assert_eq!(Evr::parse("15.4.3"), None);
        assert_eq!(Evr::parse("x:15.4.3-1"), None);
    }

    #[test]
    fn the_dry_run_shows_the_versionlock_hold() {
        let d = Dnf::new(System::host(), Options::default())
            .unwrap()
            .with_hold_method(HoldMethod::Versionlock);
        let src = teleport_repo();
        let p = PkgName::parse("teleport-ent").unwrap();
        let v = PkgVersion::parse("15.4.3").unwrap();
        let cmds: Vec<String> = d.plan(&src, &p, &v).iter().map(|c| c.to_string()).collect();
        assert!(
            cmds[1].contains("--disableplugin=versionlock") && cmds[1].contains("install"),
            "{cmds:?}"
        );
        assert!(
            cmds[2].contains("versionlock add")
                && cmds[2].contains("teleport-ent-<epoch>:15.4.3-<release>"),
            "{cmds:?}"
        );
        assert!(cmds[3].contains("exclude=teleport-ent"), "{cmds:?}");
    }
}
