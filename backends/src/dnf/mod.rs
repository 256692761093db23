//! dnf backend (also `yum`, which on RHEL 8 and later is dnf, and dnf5,
//! driven in its own syntax: see [`dnf5`]).
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
//! * Locks: `exit_on_lock=True` and retries until [`Options::lock_wait`],
//!   also when rpm's transaction lock is taken by another rpm, dnf or
//!   zypper ("can't create transaction lock"; its holder named).
//! * Alternate roots: `--installroot`, `--setopt=reposdir=` (the directory
//!   of the repository file), `--config=` (the root's `dnf.conf`, as dnf
//!   would pick it), and `file://` gpgkeys resolved inside the root: dnf
//!   itself reads gpgkey paths from the host even with `--installroot`.
//!   The cache stays inside the root (dnf's default); an explicit absolute
//!   `cachedir=` would split it between the host path and the root.
//! * With `repo_gpgcheck=1` dnf leaves a `gpg-agent` per repository running
//!   (homedir `<cachedir>/<id>-<hash>/pubring`); they are ended after each
//!   command that may have started one.
//!
//! Submodules: `discovery` (cache offers, variable-made ids), `audit` (the
//! trust audit), `hold` (versionlock, `exclude=`, operator excludes),
//! `exec` (running dnf, classifying its failures), `enforce` (the forced
//! verification options), `dnf5` (dnf5's syntax, lock and view) and
//! `dnf5lock` (its `versionlock.toml`).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::apt::installed_as;
use crate::channel::Format;
use crate::cmd::{CommandLine, Runner};
use crate::integrity::FileProblem;
use crate::rpmdb::{self, IniSection};
use crate::types::{Installed, PkgName, PkgVersion, Source, System, TrustReport};
use crate::{Backend, BackendKind, Error, Options, Result};

mod audit;
mod discovery;
pub mod dnf5;
mod dnf5lock;
mod effective;
mod enforce;
mod exec;
mod hold;
pub mod locklist;
mod probe;

pub use enforce::{enforcement_args, global_enforcement_args};
pub use hold::{Evr, LockEntry};

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
    /// The program is dnf5 (its own syntax: see [`dnf5`]).
    dnf5: bool,
    hold_method: OnceLock<HoldMethod>,
    /// A private `HOME` whose `.rpmmacros` names the root's database,
    /// when it is not where the host's rpm keeps its own (see [`Dnf::home`]).
    home: OnceLock<Option<tempfile::TempDir>>,
    /// dnf's view of the repository (file, id), once asked.
    view: Mutex<Option<ViewKept>>,
}

/// A kept answer of [`Dnf::effective`]: for which (file, id), and what.
type ViewKept = ((PathBuf, String), Option<effective::Effective>);

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
        Self::build(system, opts, kind, program, runner)
    }

    fn build(
        system: System,
        opts: Options,
        kind: BackendKind,
        program: &str,
        runner: Runner,
    ) -> Result<Self> {
        let dnf5 = dnf5::is_dnf5(&runner, program);
        if dnf5 && system.root().is_some() {
            return Err(Error::Unsupported {
                reason: format!("{program} is dnf5. {}", dnf5::ROOT_REFUSAL),
            });
        }
        Ok(Dnf {
            system,
            runner,
            opts,
            kind,
            program: program.to_string(),
            dnf5,
            hold_method: OnceLock::new(),
            home: OnceLock::new(),
            view: Mutex::new(None),
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

    /// Whether the program is dnf5.
    pub fn is_dnf5(&self) -> bool {
        self.dnf5
    }

    /// Versionlock when the plugin answers and its lock list is this
    /// system's: on the host, or, in an alternate root, when the root's
    /// configuration names a lock list inside the root (the plugin opens
    /// `locklist=` as given, not under the root: a root's default list
    /// would be the host's). Otherwise the exclude method.
    pub fn hold_method(&self) -> HoldMethod {
        *self.hold_method.get_or_init(|| {
            if self.dnf5 {
                // Built into dnf5 (no plugin to probe).
                return HoldMethod::Versionlock;
            }
            if let Some(root) = self.system.root() {
                if !self.locklist_file().is_some_and(|f| f.starts_with(root)) {
                    return HoldMethod::Exclude;
                }
            }
            let kept = self.probe_file();
            let key = probe::key(&self.system, &self.program);
            if let Some(m) = kept.as_deref().and_then(|f| probe::cached(f, &key)) {
                return m;
            }
            let m = self.probe_versionlock(kept.as_deref());
            if let Some(f) = &kept {
                probe::keep(f, &key, m);
            }
            m
        })
    }

    /// Where the probe's answer is kept between runs: beside the hold
    /// record, in the updater's state directory.
    fn probe_file(&self) -> Option<PathBuf> {
        let rec = self.opts.hold_record.as_ref()?;
        Some(rec.with_file_name("dnf-hold-probe.txt"))
    }

    /// Ask dnf whether the versionlock plugin answers. A failure that is
    /// not "no such command" (a full cache directory, a broken
    /// configuration) keeps the last answer rather than switching the
    /// hold's method (the exclude method would add `exclude=` lines beside
    /// the versionlock the host has).
    fn probe_versionlock(&self, kept: Option<&Path>) -> HoldMethod {
        let cl = self
            .cmd()
            .args(["-q", "-C"])
            .args(self.root_args(None))
            .args(["--disablerepo=*", "versionlock", "list"]);
        match self.runner.run(&cl) {
            Ok(f) if f.success() => HoldMethod::Versionlock,
            Ok(f) if probe::says_no_plugin(&f.combined()) => HoldMethod::Exclude,
            other => {
                let why = match &other {
                    Ok(f) => f.tail(2),
                    Err(e) => e.to_string(),
                };
                let last = kept.and_then(probe::last);
                tracing::warn!(
                    "`{cl}` failed ({why}): the hold's method stays {}",
                    match last {
                        Some(HoldMethod::Versionlock) => "versionlock (as the last run found)",
                        Some(HoldMethod::Exclude) => "exclude= (as the last run found)",
                        None => "exclude= (never probed successfully)",
                    }
                );
                last.unwrap_or(HoldMethod::Exclude)
            }
        }
    }

    /// `dnf` (or `yum`) with the environment every call gets: root's
    /// `HOME`, so that a caller's `~/.rpmmacros` (`%_dbpath`, ...) does
    /// not reach rpm.
    fn cmd(&self) -> CommandLine {
        CommandLine::new(&self.program).env("HOME", self.home())
    }

    /// The `HOME` of dnf's calls: root's, or, in a root whose rpm database
    /// is not where the host's rpm keeps its own (an image with
    /// `/var/lib/rpm` built on a Debian host, whose rpm says `~/.rpmdb`),
    /// a private one whose `.rpmmacros` sets `%_dbpath` to the root's:
    /// dnf has no `--dbpath`, and would otherwise write a second, empty
    /// database in the root while the updater reads the root's own.
    fn home(&self) -> String {
        let private = self.home.get_or_init(|| {
            self.system.root()?;
            let db = rpmdb::dbpath(&self.system, &self.runner)?;
            let made = crate::private_dir("teleport-upgrade-dnf.").and_then(|d| {
                crate::write_private(&d.path().join(".rpmmacros"), format!("%_dbpath {db}\n").as_bytes())?;
                Ok(d)
            });
            match made {
                Ok(d) => {
                    tracing::info!("the root's rpm database is {db}: dnf is told so (%_dbpath in a private HOME)");
                    Some(d)
                }
                Err(e) => {
                    tracing::warn!("cannot tell dnf the root's rpm database is {db}: {e}");
                    None
                }
            }
        });
        match private {
            Some(d) => d.path().display().to_string(),
            None => crate::RPM_HOME.to_string(),
        }
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
            let dnf5 = self.dnf5.then_some(dnf5::REPO_DIR);
            REPO_DIRS
                .iter()
                .chain(dnf5.iter())
                .map(|d| self.system.path(d))
                .collect()
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
        self.system.path(if self.dnf5 {
            dnf5::CACHEDIR
        } else {
            "/var/cache/dnf"
        })
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

    /// The repository's gpgkey URLs as dnf expands them: a value with a
    /// variable (`$x`, `${x}`) as dnf's own view resolves it (the file's
    /// text when there is no view to ask), else the file's text.
    fn resolved_gpgkeys(&self, source: &Source, sec: &IniSection) -> Vec<String> {
        if sec.value("gpgkey").is_some_and(|v| v.contains('$')) {
            if let Ok(Some(k)) = self.effective(source).map(|e| e.and_then(|e| e.gpgkeys())) {
                return k;
            }
        }
        sec.gpgkeys()
    }

    /// gpgkey URLs as dnf must see them: `file://` paths of the target
    /// resolved inside the root.
    fn gpgkey_urls(&self, keys: Vec<String>) -> Vec<String> {
        keys.into_iter()
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
            .args(self.lock_args())
            .args(enforcement_args(id));
        cl = if self.dnf5 {
            cl.args(dnf5::extra_enforcement_args(Some(id)))
                .arg(format!("--repo={id}"))
        } else {
            cl.args(["--disablerepo=*".to_string(), format!("--enablerepo={id}")])
        };
        if self.system.root().is_some() {
            let sec = rpmdb::read_ini(&source.file)
                .ok()
                .and_then(|v| v.into_iter().find(|s| s.id == *id));
            let keys = sec
                .map(|s| self.gpgkey_urls(self.resolved_gpgkeys(source, &s)))
                .unwrap_or_default();
            if !keys.is_empty() {
                cl = cl.arg(format!("--setopt={id}.gpgkey={}", keys.join(" ")));
            }
        }
        cl
    }

    fn refresh_cmd(&self, source: &Source) -> CommandLine {
        self.base(source).args(["makecache", "--refresh"])
    }

    /// What dnf does about its lock: dnf 4 exits at once (and the call is
    /// retried); dnf5 has no such option (the updater waits for its lock
    /// before the call), and runs without its plugins.
    fn lock_args(&self) -> Vec<String> {
        if self.dnf5 {
            dnf5::common_args()
        } else {
            vec!["--setopt=exit_on_lock=True".to_string()]
        }
    }

    /// The options that lift the holds for the updater's own install:
    /// the repository's excludes, `[main]`'s when they hold the package
    /// (versioned excludes are refused before: `refuse_forbidden`), and
    /// the versionlock; dnf5 lifts them all with one option.
    fn lift_holds_args(&self, source: &Source, pkg: &PkgName) -> Vec<String> {
        if self.dnf5 {
            return vec![dnf5::LIFT_HOLDS.to_string()];
        }
        let mut v = vec![format!("--disableexcludes={}", source.id)];
        if self.main_holds(pkg) {
            v.push("--disableexcludes=main".into());
        }
        if self.hold_method() == HoldMethod::Versionlock {
            v.push("--disableplugin=versionlock".into());
        }
        v
    }

    fn install_cmd(&self, source: &Source, pkg: &PkgName, version: &str) -> CommandLine {
        self.base(source)
            .args(self.lift_holds_args(source, pkg))
            .args(["install".to_string(), format!("{pkg}-{version}")])
    }

    /// `dnf reinstall <pkg>-<version>`, restricted and verified as the
    /// install is; our own exclude (the hold) does not apply to it.
    fn reinstall_cmd(&self, source: &Source, pkg: &PkgName, version: &str) -> CommandLine {
        self.base(source)
            .args(self.lift_holds_args(source, pkg))
            .args(["reinstall".to_string(), format!("{pkg}-{version}")])
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

    fn first_installed(&self, candidates: &[PkgName]) -> Result<Option<Installed>> {
        rpmdb::first_installed(&self.system, &self.runner, candidates)
    }

    fn locate_source(&self, pkg: &PkgName) -> Result<Source> {
        let chosen = if let Some(file) = &self.opts.source_file {
            rpmdb::configured_section(&self.system, file, pkg, &self.opts.hints)?
        } else {
            let secs = self.effective_sections(None);
            match rpmdb::choose_section(&secs, &self.opts.hints) {
                Ok(Some(s)) => s.clone(),
                Ok(None) => return Err(Error::SourceNotFound {
                    package: pkg.to_string(),
                    detail: format!(
                        "none of the {} repositories under {} points at the release host ({}) or is named after it ({}; the cache is never consulted); name the file in the `source-file` setting",
                        secs.len(),
                        self.repo_dirs().iter().map(|d| self.system.display_path(d)).collect::<Vec<_>>().join(", "),
                        self.opts.hints.release_hosts.join(", "),
                        self.opts.hints.words.join(", ")
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
        self.audit(source)
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

    fn package_sizes(
        &self,
        source: &Source,
        pkg: &PkgName,
        version: &PkgVersion,
    ) -> Result<Option<crate::PackageSizes>> {
        // The install's own restrictions (repository, excludes lifted as
        // the install lifts them), from the cache the refresh filled.
        let mut cl = self.install_cmd(source, pkg, version.as_str());
        cl.args.truncate(cl.args.len() - 2);
        let cl = cl.args([
            "-C".to_string(),
            "repoquery".into(),
            "--available".into(),
            "--qf".into(),
            "%{downloadsize} %{installsize}\n".into(),
            format!("{pkg}-{version}"),
        ]);
        let r = self.run_dnf(&cl, self.opts.lock_wait);
        self.end_gpg_agents(&source.id);
        Ok(crate::sizes::parse_repoquery(&r?.stdout))
    }

    fn download_dir(&self) -> Option<PathBuf> {
        Some(self.cachedir())
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
            HoldMethod::Versionlock => match self.versionlock_hold(pkg) {
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
            // The updater's own lines only: an operator's stay.
            let list = self.lock_lines()?;
            let own: Vec<String> = self
                .own_lines(&list, pkg)
                .into_iter()
                .map(|l| l.text)
                .collect();
            self.drop_lines(&own)?;
            self.record_own(&[])?;
        }
        self.edit_repo_exclude(source, pkg, false)
    }

    fn swaps_holds(&self) -> bool {
        self.hold_method() == HoldMethod::Versionlock
    }

    fn drop_old_holds(&self, source: &Source, pkg: &PkgName) -> Result<()> {
        if self.hold_method() != HoldMethod::Versionlock {
            return Ok(());
        }
        self.drop_old_locks(source, pkg)
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
                v.push(self.versionlock_note(source, pkg));
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

    fn keep_package(
        &self,
        source: &Source,
        pkg: &PkgName,
        version: &PkgVersion,
        dir: &std::path::Path,
    ) -> Result<Option<crate::KeptFile>> {
        let cl = if self.dnf5 {
            self.dnf5_download_cmd(source, &format!("{pkg}-{version}"), dir)
        } else {
            self.reinstall_cmd(source, pkg, version.as_str()).args([
                "--downloadonly".to_string(),
                format!("--destdir={}", dir.display()),
            ])
        };
        self.run_classified(&cl, Some((pkg, version.as_str(), source)))?;
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
mod tests;
