//! apt-get / dpkg backend.
//!
//! * The repository that serves the package is found from apt's own
//!   knowledge (`apt-cache policy`) or, failing that, from entries that
//!   point at Teleport's release host or live in a file named after
//!   Teleport. Its entries are copied into a single-source list owned by the
//!   updater, so that refresh and install see only that repository: the
//!   package can come from nowhere else.
//! * Every `apt-get`/`apt-cache` carries the enforcement of
//!   [`crate::apt_trust`] (strict `-o` values, a `-c` file that clears
//!   weakening lists), and the single-source list carries only safe source
//!   options; the audit reads `apt-config dump` with apt's boolean rules. A
//!   successful refresh or install whose output says something was
//!   unauthenticated or insecure fails as a refusal.
//! * `apt-get update --error-on=any`: a signature failure fails the run
//!   instead of falling back to the previous lists. A component the
//!   repository does not have (a channel that does not exist) is only a
//!   `W: Skipping acquire of configured file ... doesn't have the
//!   component` and exit 0 even so: the refresh fails on that message.
//! * Integrity: `dpkg --verify --verify-format=rpm` (exit 0 whether or not
//!   it finds problems); repair: `apt-get install --reinstall <pkg>=<ver>`
//!   with the install's options. The reinstall of a held package clears
//!   the hold (selection back to `install`, even with
//!   `--allow-change-held-packages`): the hold is put back.
//! * Alternate roots are driven through an `APT_CONFIG` file (`Dir`,
//!   `Dir::State::status`, dpkg `--root`/`--admindir`); keyring paths in the
//!   root's sources are resolved inside the root, as a chroot would.

use std::path::{Path, PathBuf};

use crate::apt_trust;
use crate::channel::Format;
use crate::cmd::{CommandLine, Finished, Runner};
use crate::integrity::{self, FileProblem};
use crate::redact::redact;
use crate::sources::{self, AptEntry};
use crate::types::{Installed, PkgName, PkgVersion, Source, System, TrustFinding, TrustReport};
use crate::{Backend, BackendKind, Error, Options, Result};

mod audit;
mod discovery;
mod dpkg;
mod exec;
mod kept;

pub use discovery::parse_policy_origins;
pub(crate) use dpkg::installed_as;
use exec::{check_verified_output, write_work_file};

/// Test-only switch (debug builds only, ignored in release builds): skip
/// the audit of apt's configuration and of the source's options, so that
/// the refusal matrix can show the command-line enforcement alone stopping
/// an unsigned install.
pub const SKIP_CONFIG_AUDIT_ENV: &str = "TELEPORT_UPGRADE_TEST_SKIP_APT_CONFIG_AUDIT";

fn config_audit_skipped() -> bool {
    cfg!(debug_assertions) && std::env::var_os(SKIP_CONFIG_AUDIT_ENV).is_some_and(|v| v == "1")
}

/// Messages by which apt and gpgv say a signature or hash failed.
const TRUST_FAILURES: &[&str] = &[
    "NO_PUBKEY",
    "is not signed",
    "BADSIG",
    "EXPKEYSIG",
    "REVKEYSIG",
    "The following signatures were invalid",
    "The following signatures couldn't be verified",
    "Hash Sum mismatch",
    "File has unexpected size",
    "Size mismatch",
    "cannot be authenticated",
    "There were unauthenticated packages",
    "Signed-By",
    "not signed",
];

pub struct Apt {
    system: System,
    runner: Runner,
    opts: Options,
    /// The generated files, made the first time a command needs them: a
    /// run that starts no apt tool (a no-op) creates nothing.
    work: std::sync::OnceLock<Work>,
    /// apt's version, asked once (`apt-get --version`) when a refresh
    /// needs to know whether `--error-on=any` exists (apt 2.1.16 and
    /// later; Ubuntu 20.04 ships 2.0).
    version: std::sync::OnceLock<Option<AptVersion>>,
}

/// Where generated files live (single-source list, APT_CONFIG, the `-c`
/// file of the enforcement): a private temporary directory (0700, files
/// 0600: the list may hold credentials), removed on drop, so that even a
/// dry run leaves nothing behind.
struct Work {
    _work_dir: tempfile::TempDir,
    work: PathBuf,
    /// Inline `signed-by` keys copied to files: public data that apt's
    /// download methods read as the `_apt` user, so a separate 0755
    /// directory with 0644 files.
    _keys_dir: tempfile::TempDir,
    keys: PathBuf,
    apt_config: Option<PathBuf>,
    /// The `-c` file that clears weakening lists ([`apt_trust::CLEARED`]).
    clear_file: PathBuf,
}

impl Work {
    fn create(root: Option<&Path>) -> Result<Work> {
        let dir = |prefix: &str, mode: u32| -> Result<tempfile::TempDir> {
            use std::os::unix::fs::PermissionsExt;
            let d = tempfile::Builder::new()
                .prefix(prefix)
                .tempdir()
                .map_err(|e| Error::io("creating a temporary directory", e))?;
            std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("setting permissions of the temporary directory", e))?;
            Ok(d)
        };
        let work_dir = dir("teleport-upgrade-apt.", 0o700)?;
        let keys_dir = dir("teleport-upgrade-keys.", 0o755)?;
        let work = work_dir.path().to_path_buf();
        let clear_file = work.join("enforce.conf");
        write_work_file(&clear_file, apt_trust::clear_file_text().as_bytes())?;
        let apt_config = match root {
            Some(root) => {
                // apt-get aborts after an install when its log directory
                // is missing; an image may not have it yet.
                let _ = std::fs::create_dir_all(root.join("var/log/apt"));
                let cfg = work.join("apt.conf");
                write_work_file(&cfg, root_config_text(root).as_bytes())?;
                Some(cfg)
            }
            None => None,
        };
        Ok(Work {
            keys: keys_dir.path().to_path_buf(),
            _work_dir: work_dir,
            work,
            _keys_dir: keys_dir,
            apt_config,
            clear_file,
        })
    }
}

/// APT_CONFIG for an alternate root. `Dir` re-roots apt's relative paths
/// (etc/apt, var/lib/apt, var/cache/apt, var/log/apt) while the host's
/// binaries and methods stay in use; the dpkg status file and dpkg itself
/// are pointed at the root. Because apt reads APT_CONFIG before
/// `Dir::Etc::Parts`, the root's apt.conf.d is read, not the host's. The
/// `_apt` download sandbox is not used: an image directory is often not
/// reachable by that user; signatures are checked all the same.
fn root_config_text(root: &Path) -> String {
    let r = root.display();
    format!(
        "// Written by teleport-upgrade for --root {r}.\n\
         Dir \"{r}/\";\n\
         Dir::State::status \"{r}/var/lib/dpkg/status\";\n\
         DPkg::Options {{ \"--root={r}\"; \"--admindir={r}/var/lib/dpkg\"; }};\n\
         APT::Sandbox::User \"root\";\n"
    )
}

/// apt's version (`major.minor.patch`).
pub type AptVersion = (u32, u32, u32);

/// The first apt that knows `apt-get update --error-on=any`.
pub const ERROR_ON_SINCE: AptVersion = (2, 1, 16);

/// Parse the first line of `apt-get --version` (`apt 2.0.9 (amd64)`).
pub fn parse_apt_version(out: &str) -> Option<AptVersion> {
    let v = out.lines().next()?.strip_prefix("apt ")?;
    let v = v.split_whitespace().next()?;
    let mut it = v.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    let patch = it.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some((major, minor, patch))
}

/// For an apt without `--error-on=any`: the first line of a refresh's
/// output that says something went wrong (`W:`, `E:`, `Err:`), which such
/// an apt reports with exit 0 (a signature gone wrong over lists fetched
/// earlier: "the previous index files will be used"). Stricter than
/// `--error-on=any`, on purpose: the refresh reads only the Teleport
/// source, so any warning there concerns it.
pub fn refresh_problem_without_error_on(output: &str) -> Option<&str> {
    output
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("W:") || l.starts_with("E:") || l.starts_with("Err:"))
}

impl Apt {
    pub fn new(system: System, opts: Options) -> Result<Self> {
        let runner = Runner {
            timeout: opts.command_timeout,
            path: None,
        };
        Ok(Apt {
            system,
            runner,
            opts,
            work: std::sync::OnceLock::new(),
            version: std::sync::OnceLock::new(),
        })
    }

    /// The generated files, made on first use.
    fn work(&self) -> Result<&Work> {
        if let Some(w) = self.work.get() {
            return Ok(w);
        }
        let w = Work::create(self.system.root())?;
        Ok(self.work.get_or_init(|| w))
    }

    fn admindir(&self) -> PathBuf {
        self.system.path("/var/lib/dpkg")
    }

    fn etc_apt(&self) -> PathBuf {
        self.system.path("/etc/apt")
    }

    /// A command with the environment every apt tool gets here, and the
    /// enforcement of verification (see [`apt_trust`]).
    fn apt_tool(&self, program: &str) -> Result<CommandLine> {
        let cl = self.apt_tool_unenforced(program)?;
        Ok(cl.args(self.enforcement_args()?))
    }

    /// `-c <clear file>` and `-o <setting>=<strict value>` for every
    /// setting that could switch verification off.
    fn enforcement_args(&self) -> Result<Vec<String>> {
        let clear_file = &self.work()?.clear_file;
        let mut v = vec!["-c".to_string(), clear_file.display().to_string()];
        for (k, val) in apt_trust::ENFORCED {
            v.push("-o".into());
            v.push(format!("{k}={val}"));
        }
        if Path::new(apt_trust::METHODS_DIR).join("gpgv").is_file() {
            v.push("-o".into());
            v.push(format!("Dir::Bin::Methods={}", apt_trust::METHODS_DIR));
        }
        if Path::new(apt_trust::APT_KEY).is_file() {
            v.push("-o".into());
            v.push(format!("Dir::Bin::apt-key={}", apt_trust::APT_KEY));
        }
        Ok(v)
    }

    /// The environment of every apt tool, without the enforcement: for
    /// `apt-config dump`, which must show the host's own values.
    fn apt_tool_unenforced(&self, program: &str) -> Result<CommandLine> {
        let mut cl = CommandLine::new(program)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("APT_LISTCHANGES_FRONTEND", "none")
            // needrestart (Ubuntu) would otherwise restart services,
            // the agent included, at a moment we did not choose.
            .env("NEEDRESTART_SUSPEND", "1");
        if let Some(cfg) = &self.work()?.apt_config {
            cl = cl.env("APT_CONFIG", cfg.display().to_string());
        }
        Ok(cl)
    }

    fn dpkg(&self) -> CommandLine {
        let mut cl = CommandLine::new("dpkg");
        if let Some(root) = self.system.root() {
            cl = cl.arg(format!("--root={}", root.display()));
        }
        cl.arg(format!("--admindir={}", self.admindir().display()))
    }

    fn apt_get(&self, source: &Source) -> Result<CommandLine> {
        Ok(self.apt_tool("apt-get")?.args([
            "-q".to_string(),
            "-o".into(),
            format!("DPkg::Lock::Timeout={}", self.opts.lock_wait.as_secs()),
            "-o".into(),
            format!("Dir::Etc::SourceList={}", source.id),
            "-o".into(),
            "Dir::Etc::SourceParts=-".into(),
        ]))
    }

    /// `apt-cache`; with `source`, restricted to the repository's own
    /// metadata: its list only, and not dpkg's `status` (what is installed
    /// is read elsewhere; parsing a real host's 1-5 MB `status` is most of
    /// such a query's cost); its cache built in memory, never written over
    /// the host's `pkgcache.bin` (which describes every source).
    fn apt_cache(&self, source: Option<&Source>) -> Result<CommandLine> {
        let cl = self.apt_tool("apt-cache")?;
        Ok(match source {
            Some(s) => cl.args([
                "-o".to_string(),
                format!("Dir::Etc::SourceList={}", s.id),
                "-o".into(),
                "Dir::Etc::SourceParts=-".into(),
                "-o".into(),
                "Dir::State::status=/dev/null".into(),
                "-o".into(),
                "Dir::Cache::pkgcache=".into(),
                "-o".into(),
                "Dir::Cache::srcpkgcache=".into(),
            ]),
            None => cl,
        })
    }

    fn refresh_cmd(&self, source: &Source) -> Result<CommandLine> {
        let cl = self
            .apt_get(source)?
            .args(["-o", "APT::Get::List-Cleanup=0", "update"]);
        Ok(if self.has_error_on() {
            cl.arg("--error-on=any")
        } else {
            cl
        })
    }

    /// apt's version, asked once; `None` when it cannot be told.
    pub fn apt_version(&self) -> Option<AptVersion> {
        *self.version.get_or_init(|| {
            // Test-only stand-in for an older apt (debug builds only), so
            // that the fallback below runs against the real apt here.
            if cfg!(debug_assertions) {
                if let Some(v) = std::env::var_os("TELEPORT_UPGRADE_TEST_APT_VERSION") {
                    return parse_apt_version(&format!("apt {}", v.to_string_lossy()));
                }
            }
            // On the host, the apt that runs is the one dpkg's database
            // records: read it in process (no fork on the update path).
            // Under --root the host's apt runs, not the root's: ask it.
            if self.system.root().is_none() {
                if let Some(v) = crate::dpkg_status::entries(&self.system, &self.admindir(), "apt")
                    .and_then(|e| e.into_iter().find(|e| e.status == "installed"))
                    .and_then(|e| e.version)
                    .and_then(|v| parse_apt_version(&format!("apt {v}")))
                {
                    return Some(v);
                }
            }
            let fin = self
                .runner
                .run(&CommandLine::new("apt-get").arg("--version"))
                .ok()?;
            parse_apt_version(&fin.stdout)
        })
    }

    /// Whether `apt-get update --error-on=any` exists (an apt whose
    /// version cannot be read is taken to be current).
    fn has_error_on(&self) -> bool {
        !matches!(self.apt_version(), Some(v) if v < ERROR_ON_SINCE)
    }

    fn install_cmd(&self, source: &Source, pkg: &PkgName, version: &str) -> Result<CommandLine> {
        Ok(self.apt_get(source)?.args([
            "-o".to_string(),
            "Dpkg::Options::=--force-confdef".into(),
            "-o".into(),
            "Dpkg::Options::=--force-confold".into(),
            "install".into(),
            "-y".into(),
            "--no-install-recommends".into(),
            "--allow-downgrades".into(),
            "--allow-change-held-packages".into(),
            format!("{pkg}={version}"),
        ]))
    }

    /// `apt-get install --reinstall` of exactly `version`, with the same
    /// options as [`Apt::install_cmd`].
    fn reinstall_cmd(&self, source: &Source, pkg: &PkgName, version: &str) -> Result<CommandLine> {
        let mut cl = self.install_cmd(source, pkg, version)?;
        let at = cl
            .args
            .iter()
            .position(|a| a == "install")
            .map(|i| i + 1)
            .unwrap_or(cl.args.len());
        cl.args.insert(at, "--reinstall".into());
        Ok(cl)
    }

    /// `dpkg --verify` in rpm's format, which dpkg's manual asks parsers
    /// to request explicitly.
    fn verify_cmd(&self, pkg: &PkgName) -> CommandLine {
        self.dpkg()
            .args(["--verify-format=rpm", "--verify", pkg.as_str()])
    }

    fn selection_cmd(&self, pkg: &PkgName, state: &str) -> CommandLine {
        self.dpkg()
            .arg("--set-selections")
            .stdin(format!("{pkg} {state}\n"))
    }

    /// The exact version string the source offers for `version` (a repo may
    /// carry a Debian revision, `15.4.3-1`). `None` when it offers none.
    fn resolve_version(
        &self,
        source: &Source,
        pkg: &PkgName,
        version: &PkgVersion,
    ) -> Result<Option<String>> {
        for v in self.madison(source, pkg)? {
            if let Ok(v) = PkgVersion::parse(&v) {
                if v.same_upstream(version) {
                    return Ok(Some(v.to_string()));
                }
            }
        }
        Ok(None)
    }

    /// The versions of `pkg` the source offers (`apt-cache madison`, the
    /// dpkg status file left out), as written.
    fn madison(&self, source: &Source, pkg: &PkgName) -> Result<Vec<String>> {
        let cl = self
            .apt_cache(Some(source))?
            .args(["madison", pkg.as_str()]);
        let fin = self.runner.run(&cl)?;
        Ok(fin
            .stdout
            .lines()
            .filter_map(|line| {
                let cols: Vec<&str> = line.split('|').map(str::trim).collect();
                (cols.len() >= 3
                    && cols[0] == pkg.as_str()
                    && !cols[2].contains("/var/lib/dpkg/status"))
                .then(|| cols[1].to_string())
            })
            .collect())
    }
}

impl Backend for Apt {
    fn kind(&self) -> BackendKind {
        BackendKind::Apt
    }

    fn system(&self) -> &System {
        &self.system
    }

    fn first_installed(&self, candidates: &[PkgName]) -> Result<Option<Installed>> {
        // One read of dpkg's status for every candidate (then each look-up
        // below finds its answer in memory).
        let names: Vec<&str> = candidates.iter().map(|c| c.as_str()).collect();
        let _ = crate::dpkg_status::entries_of(&self.system, &self.admindir(), &names);
        for c in candidates {
            if let Some(i) = self.installed(c)? {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    fn installed(&self, pkg: &PkgName) -> Result<Option<Installed>> {
        self.read_installed(pkg)
    }

    fn locate_source(&self, pkg: &PkgName) -> Result<Source> {
        self.locate(pkg)
    }

    fn audit_trust(&self, source: &Source) -> Result<TrustReport> {
        self.audit(source)
    }

    fn recover(&self) -> Result<Option<String>> {
        match self.interrupted()? {
            None => Ok(None),
            Some(why) => self.configure_pending(why),
        }
    }

    fn unfinished_transaction(&self, pkg: &PkgName) -> Result<Option<String>> {
        self.unfinished(pkg)
    }

    /// Finish an interrupted transaction, unless `dpkg --audit` names
    /// other packages than `pkg`: `dpkg --configure -a` would run their
    /// (failing) scripts too. Those are named in a refusal; nothing of them
    /// or of the agent is touched.
    fn recover_package(&self, pkg: &PkgName) -> Result<Option<String>> {
        // Who is unfinished, and whether anything is: from dpkg's `status`
        // in process when its journal is folded in (no fork), else from
        // one `dpkg --audit`.
        let (names, why) = self.unfinished_names()?;
        let others: Vec<String> = names
            .into_iter()
            .filter(|n| n.split(':').next() != Some(pkg.as_str()))
            .collect();
        if !others.is_empty() {
            return Err(Error::CommandFailed {
                command: self.dpkg().arg("--audit").to_string(),
                status: "other packages are unfinished".into(),
                tail: format!(
                    "{} left unfinished by an earlier dpkg run (half-configured or half-installed); the updater does not configure or remove other packages: fix them first (dpkg --configure {}, or remove them); {pkg} was not touched",
                    others.join(", "),
                    others.join(" ")
                ),
            });
        }
        match why {
            None => Ok(None),
            Some(why) => self.configure_pending(why),
        }
    }

    fn refresh(&self, source: &Source) -> Result<()> {
        let cl = self.refresh_cmd(source)?;
        let fin = self.run_classified(&cl, None)?;
        check_verified_output(&cl, &fin)?;
        if !self.has_error_on() {
            // apt before 2.1.16 (Ubuntu 20.04) has no --error-on=any and
            // exits 0 when a signature fails over lists fetched earlier:
            // its warnings are what count.
            let text = fin.combined();
            if let Some(line) = refresh_problem_without_error_on(&text) {
                // The reason follows the `Err:` line; judge the whole output.
                let lower = text.to_ascii_lowercase();
                let untrusted = [
                    "gpg error",
                    "signature",
                    "not signed",
                    "no_pubkey",
                    "expkeysig",
                    "badsig",
                    "is not signed",
                ]
                .iter()
                .any(|m| lower.contains(m));
                let why = format!(
                    "`{cl}` (apt {} has no --error-on=any) warned: {}",
                    self.apt_version()
                        .map(|(a, b, c)| format!("{a}.{b}.{c}"))
                        .unwrap_or_default(),
                    redact(line)
                );
                return Err(if untrusted {
                    Error::Untrusted { reason: why }
                } else {
                    Error::CommandFailed {
                        command: cl.to_string(),
                        status: "exit 0, with a warning".into(),
                        tail: redact(line),
                    }
                });
            }
        }
        // A component the repository does not have (a channel that does not
        // exist, e.g. after a move to `stable/v17`) is only a warning, and
        // `--error-on=any` still exits 0: the source would then offer
        // nothing, or stale lists.
        if let Some(line) = fin
            .combined()
            .lines()
            .find(|l| l.contains("doesn't have the component"))
        {
            return Err(Error::CommandFailed {
                command: cl.to_string(),
                status: "exit 0, but the repository lacks a configured component".into(),
                tail: line.trim().to_string(),
            });
        }
        Ok(())
    }

    fn package_sizes(
        &self,
        source: &Source,
        pkg: &PkgName,
        version: &PkgVersion,
    ) -> Result<Option<crate::PackageSizes>> {
        let show = |v: &str| -> Result<Option<crate::PackageSizes>> {
            let cl = self.apt_cache(Some(source))?.args([
                "show",
                "--no-all-versions",
                &format!("{pkg}={v}"),
            ]);
            let fin = self.runner.run(&cl)?;
            Ok(if fin.success() {
                crate::sizes::parse_apt_show(&fin.stdout)
            } else {
                None
            })
        };
        // The version as written first (Teleport's repositories carry no
        // Debian revision): no `apt-cache madison`, as for the install.
        if let Some(sizes) = show(version.as_str())? {
            return Ok(Some(sizes));
        }
        match self.resolve_version(source, pkg, version)? {
            Some(exact) if exact != version.as_str() => show(&exact),
            _ => Ok(None),
        }
    }

    fn download_dir(&self) -> Option<PathBuf> {
        // apt's default `Dir::Cache::archives`, re-rooted under `--root`.
        Some(self.system.path("/var/cache/apt/archives"))
    }

    fn install_exact(&self, source: &Source, pkg: &PkgName, version: &PkgVersion) -> Result<()> {
        // The version as written first: Teleport's repositories carry no
        // Debian revision, so this is one apt-get and no apt-cache (which
        // would build apt's cache over every configured source).
        let first = self.install_cmd(source, pkg, version.as_str())?;
        match self.run_classified(&first, Some((pkg, version.as_str(), source))) {
            Err(Error::VersionNotFound { .. }) => {}
            Ok(fin) => return check_verified_output(&first, &fin),
            Err(e) => return Err(e),
        }
        // Not offered as written: the source may carry it with a revision
        // (`15.4.3-1`) or an epoch.
        let exact = self
            .resolve_version(source, pkg, version)?
            .filter(|exact| exact != version.as_str())
            .ok_or_else(|| Error::VersionNotFound {
                package: pkg.to_string(),
                version: version.to_string(),
                source_desc: source.description.clone(),
                detail: "not offered by the source after the refresh (apt-get and apt-cache madison agree)".into(),
            })?;
        tracing::info!(version = %exact, "the source offers {version} as {exact}");
        let cl = self.install_cmd(source, pkg, &exact)?;
        let fin = self.run_classified(&cl, Some((pkg, version.as_str(), source)))?;
        check_verified_output(&cl, &fin)
    }

    fn keep_package(
        &self,
        source: &Source,
        pkg: &PkgName,
        version: &PkgVersion,
        dir: &Path,
    ) -> Result<Option<crate::KeptFile>> {
        self.keep(source, pkg, version, dir).map(Some)
    }

    fn local_copy(&self, pkg: &PkgName, version: &PkgVersion) -> Option<PathBuf> {
        self.in_archives(pkg, version)
    }

    fn install_file(&self, _pkg: &PkgName, file: &Path) -> Result<()> {
        self.install_deb_file(file)
    }

    fn hold(&self, _source: &Source, pkg: &PkgName) -> Result<()> {
        self.run_classified(&self.selection_cmd(pkg, "hold"), None)
            .map(|_| ())
    }

    fn unhold(&self, _source: &Source, pkg: &PkgName) -> Result<()> {
        self.run_classified(&self.selection_cmd(pkg, "install"), None)
            .map(|_| ())
    }

    fn hold_needs_source(&self) -> bool {
        false // the hold is dpkg's selection state
    }

    fn is_held(&self, _source: &Source, pkg: &PkgName) -> Result<bool> {
        if let Some(entries) = self.status_entries(pkg) {
            return Ok(entries.first().is_some_and(|e| e.want == "hold"));
        }
        let cl = CommandLine::new("dpkg-query").args([
            format!("--admindir={}", self.admindir().display()),
            "-W".into(),
            "-f=${db:Status-Abbrev}".into(),
            pkg.to_string(),
        ]);
        let fin = self.runner.run(&cl)?;
        Ok(fin.stdout.starts_with('h'))
    }

    fn plan(&self, source: &Source, pkg: &PkgName, version: &PkgVersion) -> Vec<CommandLine> {
        // For display: a Source is made with the work files, so these
        // cannot fail here.
        [
            self.refresh_cmd(source),
            self.install_cmd(source, pkg, version.as_str()),
            Ok(self.selection_cmd(pkg, "hold")),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    fn verify_files(&self, pkg: &PkgName) -> Result<Vec<FileProblem>> {
        self.verify(pkg)
    }

    fn executables(&self, pkg: &PkgName) -> Result<Vec<PathBuf>> {
        self.executables_of(pkg)
    }

    fn file_digests(
        &self,
        pkg: &PkgName,
    ) -> Result<std::collections::HashMap<PathBuf, crate::digests::FileDigest>> {
        Ok(crate::digests::dpkg(&self.system, pkg))
    }

    fn reinstall(&self, source: &Source, pkg: &PkgName, version: &PkgVersion) -> Result<()> {
        let installed = installed_as(self.installed(pkg)?, pkg, version)?;
        // Exactly the installed version string (with its revision), not
        // another revision of the same upstream version.
        let offered = self.madison(source, pkg)?;
        if !offered.iter().any(|v| v == installed.version.as_str()) {
            return Err(Error::VersionNotFound {
                package: pkg.to_string(),
                version: installed.version.to_string(),
                source_desc: source.description.clone(),
                detail: format!(
                    "apt-cache madison lists {} (refresh first)",
                    if offered.is_empty() {
                        "no version".to_string()
                    } else {
                        offered.join(", ")
                    }
                ),
            });
        }
        let held = self.is_held(source, pkg)?;
        let cl = self.reinstall_cmd(source, pkg, installed.version.as_str())?;
        let r = self
            .run_classified(&cl, Some((pkg, installed.version.as_str(), source)))
            .and_then(|fin| check_verified_output(&cl, &fin));
        // Put the hold back whatever the outcome; the reinstall's own error
        // comes first.
        let rehold = match (held, self.is_held(source, pkg)) {
            (false, _) | (true, Ok(true)) => Ok(()),
            (true, _) => self.hold(source, pkg),
        };
        r.and(rehold)
    }

    fn plan_reinstall(
        &self,
        source: &Source,
        pkg: &PkgName,
        version: &PkgVersion,
    ) -> Vec<CommandLine> {
        [
            self.refresh_cmd(source),
            self.reinstall_cmd(source, pkg, version.as_str()),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    fn channel_format<'a>(&self, source: &'a Source) -> Format<'a> {
        Format::apt(&source.file, &source.uris)
    }

    fn reload_source(&self, source: &Source) -> Result<Source> {
        self.reload(source)
    }
}

#[cfg(test)]
mod tests;
