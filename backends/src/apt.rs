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
    /// Where generated files live (single-source list, APT_CONFIG, the
    /// `-c` file of the enforcement): a private temporary directory (0700,
    /// files 0600: the list may hold credentials), removed on drop, so that
    /// even a dry run leaves nothing behind.
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
    /// apt's version, asked once (`apt-get --version`) when a refresh
    /// needs to know whether `--error-on=any` exists (apt 2.1.16 and
    /// later; Ubuntu 20.04 ships 2.0).
    version: std::sync::OnceLock<Option<AptVersion>>,
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
        let work_dir = tempfile::Builder::new()
            .prefix("teleport-upgrade-apt.")
            .tempdir()
            .map_err(|e| Error::io("creating a temporary directory", e))?;
        let keys_dir = tempfile::Builder::new()
            .prefix("teleport-upgrade-keys.")
            .tempdir()
            .map_err(|e| Error::io("creating a temporary directory", e))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(work_dir.path(), std::fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io("setting permissions of the temporary directory", e))?;
            std::fs::set_permissions(keys_dir.path(), std::fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::io("setting permissions of the temporary directory", e))?;
        }
        let work = work_dir.path().to_path_buf();
        let keys = keys_dir.path().to_path_buf();
        let clear_file = work.join("enforce.conf");
        write_work_file(&clear_file, apt_trust::clear_file_text().as_bytes())?;
        let mut apt = Apt {
            system,
            runner,
            opts,
            _work_dir: work_dir,
            work,
            _keys_dir: keys_dir,
            keys,
            apt_config: None,
            clear_file,
            version: std::sync::OnceLock::new(),
        };
        if let Some(root) = apt.system.root() {
            // apt-get aborts after an install when its log directory is
            // missing; an image may not have it yet.
            let _ = std::fs::create_dir_all(root.join("var/log/apt"));
            let cfg = apt.work.join("apt.conf");
            write_work_file(&cfg, apt.root_config_text(root).as_bytes())?;
            apt.apt_config = Some(cfg);
        }
        Ok(apt)
    }

    /// APT_CONFIG for an alternate root. `Dir` re-roots apt's relative
    /// paths (etc/apt, var/lib/apt, var/cache/apt, var/log/apt) while the
    /// host's binaries and methods stay in use; the dpkg status file and
    /// dpkg itself are pointed at the root. Because apt reads APT_CONFIG
    /// before `Dir::Etc::Parts`, the root's apt.conf.d is read, not the
    /// host's. The `_apt` download sandbox is not used: an image directory
    /// is often not reachable by that user; signatures are checked all the
    /// same.
    fn root_config_text(&self, root: &Path) -> String {
        let r = root.display();
        format!(
            "// Written by teleport-upgrade for --root {r}.\n\
             Dir \"{r}/\";\n\
             Dir::State::status \"{r}/var/lib/dpkg/status\";\n\
             DPkg::Options {{ \"--root={r}\"; \"--admindir={r}/var/lib/dpkg\"; }};\n\
             APT::Sandbox::User \"root\";\n"
        )
    }

    fn admindir(&self) -> PathBuf {
        self.system.path("/var/lib/dpkg")
    }

    fn etc_apt(&self) -> PathBuf {
        self.system.path("/etc/apt")
    }

    /// A command with the environment every apt tool gets here, and the
    /// enforcement of verification (see [`apt_trust`]).
    fn apt_tool(&self, program: &str) -> CommandLine {
        let cl = self.apt_tool_unenforced(program);
        cl.args(self.enforcement_args())
    }

    /// `-c <clear file>` and `-o <setting>=<strict value>` for every
    /// setting that could switch verification off.
    fn enforcement_args(&self) -> Vec<String> {
        let mut v = vec!["-c".to_string(), self.clear_file.display().to_string()];
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
        v
    }

    /// The environment of every apt tool, without the enforcement: for
    /// `apt-config dump`, which must show the host's own values.
    fn apt_tool_unenforced(&self, program: &str) -> CommandLine {
        let mut cl = CommandLine::new(program)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("APT_LISTCHANGES_FRONTEND", "none")
            // needrestart (Ubuntu) would otherwise restart services,
            // the agent included, at a moment we did not choose.
            .env("NEEDRESTART_SUSPEND", "1");
        if let Some(cfg) = &self.apt_config {
            cl = cl.env("APT_CONFIG", cfg.display().to_string());
        }
        cl
    }

    fn dpkg(&self) -> CommandLine {
        let mut cl = CommandLine::new("dpkg");
        if let Some(root) = self.system.root() {
            cl = cl.arg(format!("--root={}", root.display()));
        }
        cl.arg(format!("--admindir={}", self.admindir().display()))
    }

    fn apt_get(&self, source: &Source) -> CommandLine {
        self.apt_tool("apt-get").args([
            "-q".to_string(),
            "-o".into(),
            format!("DPkg::Lock::Timeout={}", self.opts.lock_wait.as_secs()),
            "-o".into(),
            format!("Dir::Etc::SourceList={}", source.id),
            "-o".into(),
            "Dir::Etc::SourceParts=-".into(),
        ])
    }

    fn apt_cache(&self, source: Option<&Source>) -> CommandLine {
        let cl = self.apt_tool("apt-cache");
        match source {
            Some(s) => cl.args([
                "-o".to_string(),
                format!("Dir::Etc::SourceList={}", s.id),
                "-o".into(),
                "Dir::Etc::SourceParts=-".into(),
            ]),
            None => cl,
        }
    }

    fn refresh_cmd(&self, source: &Source) -> CommandLine {
        let cl = self
            .apt_get(source)
            .args(["-o", "APT::Get::List-Cleanup=0", "update"]);
        if self.has_error_on() {
            cl.arg("--error-on=any")
        } else {
            cl
        }
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

    fn install_cmd(&self, source: &Source, pkg: &PkgName, version: &str) -> CommandLine {
        self.apt_get(source).args([
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
        ])
    }

    /// `apt-get install --reinstall` of exactly `version`, with the same
    /// options as [`Apt::install_cmd`].
    fn reinstall_cmd(&self, source: &Source, pkg: &PkgName, version: &str) -> CommandLine {
        let mut cl = self.install_cmd(source, pkg, version);
        let at = cl
            .args
            .iter()
            .position(|a| a == "install")
            .map(|i| i + 1)
            .unwrap_or(cl.args.len());
        cl.args.insert(at, "--reinstall".into());
        cl
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

    /// All entries of all source files of the system.
    fn all_entries(&self) -> Vec<AptEntry> {
        let mut out = Vec::new();
        for f in sources::source_files(&self.etc_apt()) {
            match sources::parse_file(&f) {
                Ok((entries, errors)) => {
                    for (line, e) in errors {
                        tracing::warn!(file = %f.display(), line, "ignoring unreadable source entry: {e}");
                    }
                    out.extend(entries);
                }
                Err(e) => tracing::warn!(file = %f.display(), "cannot read source file: {e}"),
            }
        }
        out
    }

    /// Index files that offer `pkg`, per `apt-cache policy`: (uri, dist/component).
    fn policy_origins(&self, pkg: &PkgName) -> Vec<(String, String)> {
        let cl = self.apt_cache(None).args(["policy", pkg.as_str()]);
        let Ok(fin) = self.runner.run(&cl) else {
            return Vec::new();
        };
        parse_policy_origins(&fin.stdout)
    }

    fn keyring_host_path(&self, p: &str) -> PathBuf {
        self.system.path(p)
    }

    fn classify(
        &self,
        cl: &CommandLine,
        fin: &Finished,
        pkg: Option<(&PkgName, &str, &Source)>,
    ) -> Error {
        let text = fin.combined();
        if let Some(m) = TRUST_FAILURES.iter().find(|m| text.contains(*m)) {
            let line = text
                .lines()
                .find(|l| l.contains(m))
                .unwrap_or(m)
                .trim()
                .to_string();
            return Error::Untrusted {
                reason: format!("apt reported a signature or integrity failure: {line}"),
            };
        }
        if text.contains("Could not get lock")
            || text.contains("Unable to acquire the dpkg frontend lock")
        {
            return Error::Locked {
                detail: fin.tail(2),
            };
        }
        if let Some((pkg, version, source)) = pkg {
            if text.contains("was not found")
                || text.contains("has no installation candidate")
                || text.contains("Unable to locate package")
            {
                return Error::VersionNotFound {
                    package: pkg.to_string(),
                    version: version.to_string(),
                    source_desc: source.description.clone(),
                    detail: fin.tail(2),
                };
            }
        }
        Error::CommandFailed {
            command: cl.to_string(),
            status: fin.status_text(),
            tail: fin.tail(6),
        }
    }

    fn run_classified(
        &self,
        cl: &CommandLine,
        pkg: Option<(&PkgName, &str, &Source)>,
    ) -> Result<Finished> {
        tracing::info!(command = %cl, "running");
        let fin = self.runner.run(cl)?;
        if fin.success() {
            Ok(fin)
        } else {
            Err(self.classify(cl, &fin, pkg))
        }
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
        let cl = self.apt_cache(Some(source)).args(["madison", pkg.as_str()]);
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

    /// Whether dpkg was interrupted: its journal holds entries, or
    /// `dpkg --audit` reports half-done packages.
    fn interrupted(&self) -> Result<Option<String>> {
        let updates = self.admindir().join("updates");
        if let Ok(rd) = std::fs::read_dir(&updates) {
            let pending = rd.filter_map(|e| e.ok()).any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .chars()
                    .all(|c| c.is_ascii_digit())
            });
            if pending {
                return Ok(Some(format!(
                    "{} holds unfinished journal entries",
                    updates.display()
                )));
            }
        }
        let fin = self.runner.run(&self.dpkg().arg("--audit"))?;
        if !fin.stdout.trim().is_empty() {
            return Ok(Some(format!(
                "dpkg --audit: {}",
                fin.stdout.lines().next().unwrap_or("").trim()
            )));
        }
        Ok(None)
    }

    fn recover_cmd(&self) -> CommandLine {
        self.dpkg().env("DEBIAN_FRONTEND", "noninteractive").args([
            "--force-confdef",
            "--force-confold",
            "--configure",
            "-a",
        ])
    }
}

/// Parse `apt-cache policy PKG` output into (uri, dist-and-component) pairs
/// of the index files that offer any version.
pub fn parse_policy_origins(out: &str) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        // "500 http://host/debian bookworm/stable/v15 amd64 Packages"
        if words.len() == 5
            && words[4] == "Packages"
            && words[0].chars().all(|c| c.is_ascii_digit())
        {
            v.push((
                words[1].trim_end_matches('/').to_string(),
                words[2].to_string(),
            ));
        }
    }
    v
}

fn entry_matches_origin(e: &AptEntry, uri: &str, dist: &str) -> bool {
    if e.uri.trim_end_matches('/') != uri {
        return false;
    }
    if e.suite.ends_with('/') {
        // flat repository
        return dist == e.suite.trim_end_matches('/') || dist.is_empty();
    }
    e.components
        .iter()
        .any(|c| format!("{}/{}", e.suite, c) == dist)
}

impl Backend for Apt {
    fn kind(&self) -> BackendKind {
        BackendKind::Apt
    }

    fn system(&self) -> &System {
        &self.system
    }

    fn installed(&self, pkg: &PkgName) -> Result<Option<Installed>> {
        let rows: Vec<(String, String)> = match self.status_entries(pkg) {
            Some(entries) => entries
                .into_iter()
                .map(|e| (e.abbrev(), e.version.unwrap_or_default()))
                .collect(),
            None => {
                let cl = CommandLine::new("dpkg-query").args([
                    format!("--admindir={}", self.admindir().display()),
                    "-W".into(),
                    "-f=${db:Status-Abbrev}\t${Version}\n".into(),
                    pkg.to_string(),
                ]);
                let fin = self.runner.run(&cl)?;
                // exit 1 and "no packages found" when dpkg has never heard of it.
                if !fin.success() && !fin.stderr.contains("no packages found") {
                    return Err(Error::CommandFailed {
                        command: cl.to_string(),
                        status: fin.status_text(),
                        tail: fin.tail(3),
                    });
                }
                fin.stdout
                    .lines()
                    .filter_map(|l| l.split_once('\t'))
                    .map(|(a, v)| (a.to_string(), v.to_string()))
                    .collect()
            }
        };
        for (abbrev, version) in rows {
            let a = abbrev.as_bytes();
            // Second letter: the package status. Installed (i), and the
            // states a dpkg killed mid-run leaves (U unpacked, F
            // half-configured, W/t triggers): the files are there and the
            // next update repairs them (`recover`).
            if a.len() >= 2 && matches!(a[1], b'i' | b'U' | b'F' | b'W' | b't') {
                if a[1] != b'i' {
                    tracing::warn!(package = %pkg, status = %abbrev.trim(), "the package is not fully configured (an interrupted dpkg?)");
                }
                let version = PkgVersion::parse(version.trim()).map_err(|_| Error::Parse {
                    what: "the version dpkg reports".into(),
                    detail: format!("{pkg} {version:?}"),
                })?;
                return Ok(Some(Installed {
                    name: pkg.clone(),
                    version,
                }));
            }
        }
        Ok(None)
    }

    fn locate_source(&self, pkg: &PkgName) -> Result<Source> {
        let entries = self.all_entries();
        let chosen: Vec<AptEntry> = if let Some(file) = &self.opts.source_file {
            let f = self.system.path(file);
            let (e, _) = sources::parse_file(&f)
                .map_err(|e| Error::io(format!("reading {}", f.display()), e))?;
            if e.is_empty() {
                return Err(Error::SourceNotFound {
                    package: pkg.to_string(),
                    detail: format!(
                        "the configured source file {} has no deb entries",
                        f.display()
                    ),
                });
            }
            e
        } else {
            let origins = self.policy_origins(pkg);
            let mut by_policy: Vec<AptEntry> = entries
                .iter()
                .filter(|e| origins.iter().any(|(u, d)| entry_matches_origin(e, u, d)))
                .cloned()
                .collect();
            if by_policy.is_empty() {
                by_policy = entries
                    .iter()
                    .filter(|e| {
                        e.host().ends_with("releases.teleport.dev")
                            || e.file
                                .file_name()
                                .is_some_and(|n| n.to_string_lossy().contains("teleport"))
                    })
                    .cloned()
                    .collect();
            }
            by_policy
        };
        if chosen.is_empty() {
            return Err(Error::SourceNotFound {
                package: pkg.to_string(),
                detail: format!(
                    "none of the {} entries under {} offers it (apt-cache policy) or points at a Teleport repository; name the file in the `source-file` setting",
                    entries.len(),
                    self.system.display_path(&self.etc_apt())
                ),
            });
        }
        self.source_from_entries(chosen)
    }

    fn audit_trust(&self, source: &Source) -> Result<TrustReport> {
        let mut report = TrustReport::default();
        let mut refusals: Vec<TrustFinding> = Vec::new();
        let (entries, _) = sources::parse_file(&source.file)
            .map_err(|e| Error::io(format!("reading {}", source.file.display()), e))?;
        let ours: Vec<&AptEntry> = entries
            .iter()
            .filter(|e| source.uris.contains(&e.uri))
            .collect();
        let skip = config_audit_skipped();
        if skip {
            tracing::warn!("{SKIP_CONFIG_AUDIT_ENV}=1 (a test build): apt's configuration and source options are not audited");
        }
        for e in &ours {
            let shown = PathBuf::from(self.system.display_path(&e.file));
            for opt in apt_trust::WEAKENING_SOURCE_OPTIONS {
                if let Some(v) = e.option(opt) {
                    if !skip && apt_trust::apt_bool(v.trim()) == Some(true) {
                        refusals.push(TrustFinding {
                            file: shown.clone(),
                            line: Some(e.line),
                            setting: format!("{opt}={v}"),
                            message: redact(&format!(
                                "switches signature verification off for {} (apt reads {v:?} as true); remove it",
                                e.uri
                            )),
                        });
                    }
                }
            }
            for (k, v) in &e.options {
                if !apt_trust::SAFE_SOURCE_OPTIONS.contains(&k.as_str())
                    && !apt_trust::WEAKENING_SOURCE_OPTIONS.contains(&k.as_str())
                {
                    report.warnings.push(TrustFinding {
                        file: shown.clone(),
                        line: Some(e.line),
                        setting: format!("{k}={v}"),
                        message: "not carried into the updater's single-source list (only signed-by, arch, lang, target, pdiffs, by-hash are)".into(),
                    });
                }
            }
            let inline = e
                .option("signed-by")
                .is_some_and(|v| v.contains("BEGIN PGP"));
            let paths = e.signed_by_paths();
            if paths.is_empty() && !inline {
                refusals.push(TrustFinding {
                    file: shown.clone(),
                    line: Some(e.line),
                    setting: "signed-by".into(),
                    message: redact(&format!(
                        "{} is not restricted to a keyring; add [signed-by=/usr/share/keyrings/teleport-archive-keyring.asc]{}",
                        e.uri,
                        if e.uri.starts_with("http://") { " (it is also plain http)" } else { "" }
                    )),
                });
            }
            for p in paths {
                let host = self.keyring_host_path(&p);
                if !host.is_file() {
                    refusals.push(TrustFinding {
                        file: shown.clone(),
                        line: Some(e.line),
                        setting: format!("signed-by={p}"),
                        message: "the keyring file does not exist; install the Teleport release key there".into(),
                    });
                }
            }
            report.checked.push(redact(&format!(
                "{} is restricted to its keyring",
                e.describe()
            )));
        }
        if !skip {
            let (r, w) = self.weakening_config_findings()?;
            refusals.extend(r);
            report.warnings.extend(w);
        }
        crate::audit_verdict(
            report,
            refusals,
            "apt's configuration keeps verification on".into(),
        )
    }

    fn recover(&self) -> Result<Option<String>> {
        match self.interrupted()? {
            None => Ok(None),
            Some(why) => {
                let cl = self.recover_cmd();
                tracing::warn!(reason = %why, command = %cl, "dpkg was interrupted; finishing its work");
                self.run_classified(&cl, None)?;
                Ok(Some(why))
            }
        }
    }

    fn unfinished_transaction(&self, pkg: &PkgName) -> Result<Option<String>> {
        // Read in process on every run (no `dpkg --audit` fork on a no-op):
        // dpkg's journal, then the agent package's own state in `status`.
        // `status_entries` is `None` when the journal has pending entries
        // or the file cannot be read: then ask dpkg.
        let Some(entries) = self.status_entries(pkg) else {
            return self.interrupted();
        };
        Ok(entries
            .iter()
            .find(|e| {
                e.flag == "reinstreq"
                    || matches!(
                        e.status.as_str(),
                        "half-configured"
                            | "unpacked"
                            | "half-installed"
                            | "triggers-awaited"
                            | "triggers-pending"
                    )
            })
            .map(|e| format!("{pkg} is {} in dpkg's status ({})", e.status, e.abbrev())))
    }

    fn refresh(&self, source: &Source) -> Result<()> {
        let cl = self.refresh_cmd(source);
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

    fn install_exact(&self, source: &Source, pkg: &PkgName, version: &PkgVersion) -> Result<()> {
        // The version as written first: Teleport's repositories carry no
        // Debian revision, so this is one apt-get and no apt-cache (which
        // would build apt's cache over every configured source).
        let first = self.install_cmd(source, pkg, version.as_str());
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
        let cl = self.install_cmd(source, pkg, &exact);
        let fin = self.run_classified(&cl, Some((pkg, version.as_str(), source)))?;
        check_verified_output(&cl, &fin)
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
        vec![
            self.refresh_cmd(source),
            self.install_cmd(source, pkg, version.as_str()),
            self.selection_cmd(pkg, "hold"),
        ]
    }

    fn verify_files(&self, pkg: &PkgName) -> Result<Vec<FileProblem>> {
        if self.installed(pkg)?.is_none() {
            return Err(Error::NotInstalled {
                package: pkg.to_string(),
            });
        }
        let cl = self.verify_cmd(pkg);
        let fin = self.runner.run(&cl)?;
        // dpkg --verify exits 0 whether or not it found problems (1: not
        // installed, 2: fatal); its output is what counts.
        if !fin.success() {
            return Err(Error::CommandFailed {
                command: cl.to_string(),
                status: fin.status_text(),
                tail: fin.tail(3),
            });
        }
        let lines = integrity::parse_dpkg_verify(&fin.stdout)?;
        // dpkg records no modes: outside bin/sbin, a file counts as an
        // executable when it is one on disk now (a missing one there cannot
        // be told from a document and is not reported).
        Ok(integrity::executable_problems(lines, |p| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::symlink_metadata(self.system.path(p))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        }))
    }

    fn executables(&self, pkg: &PkgName) -> Result<Vec<PathBuf>> {
        // dpkg's file list, read in process: `info/<pkg>.list`, or
        // `info/<pkg>:<arch>.list` for a multi-arch package.
        let info = self.admindir().join("info");
        let mut text = None;
        for name in [format!("{pkg}.list")] {
            if let Ok(t) = std::fs::read_to_string(info.join(&name)) {
                text = Some(t);
            }
        }
        if text.is_none() {
            let prefix = format!("{pkg}:");
            if let Ok(rd) = std::fs::read_dir(&info) {
                for e in rd.flatten() {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if n.starts_with(&prefix) && n.ends_with(".list") {
                        text = std::fs::read_to_string(e.path()).ok();
                        break;
                    }
                }
            }
        }
        let Some(text) = text else {
            return Ok(Vec::new());
        };
        Ok(text
            .lines()
            .filter(|l| l.starts_with('/'))
            .map(PathBuf::from)
            .filter(|p| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::symlink_metadata(self.system.path(p)).is_ok_and(|m| {
                    m.is_file() && (integrity::in_bin_dir(p) || m.permissions().mode() & 0o111 != 0)
                })
            })
            .collect())
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
        let cl = self.reinstall_cmd(source, pkg, installed.version.as_str());
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
        vec![
            self.refresh_cmd(source),
            self.reinstall_cmd(source, pkg, version.as_str()),
        ]
    }

    fn channel_format<'a>(&self, source: &'a Source) -> Format<'a> {
        Format::apt(&source.file, &source.uris)
    }

    fn reload_source(&self, source: &Source) -> Result<Source> {
        let (entries, _) = sources::parse_file(&source.file)
            .map_err(|e| Error::io(format!("reading {}", source.file.display()), e))?;
        let same = |u: &str| {
            source
                .uris
                .iter()
                .any(|s| s.trim_end_matches('/') == u.trim_end_matches('/'))
        };
        let chosen: Vec<AptEntry> = entries.into_iter().filter(|e| same(&e.uri)).collect();
        if chosen.is_empty() {
            return Err(Error::SourceNotFound {
                package: String::new(),
                detail: redact(&format!(
                    "{} no longer defines {}",
                    self.system.display_path(&source.file),
                    source.uris.join(", ")
                )),
            });
        }
        self.source_from_entries(chosen)
    }
}

/// The installed package when it is at `version` (same upstream version);
/// `NotInstalled` ("<pkg> <version> is not installed") otherwise.
pub(crate) fn installed_as(
    installed: Option<Installed>,
    pkg: &PkgName,
    version: &PkgVersion,
) -> Result<Installed> {
    match installed {
        Some(i) if i.version.same_upstream(version) => Ok(i),
        Some(i) => Err(Error::NotInstalled {
            package: format!("{pkg} {version} (the installed version is {})", i.version),
        }),
        None => Err(Error::NotInstalled {
            package: pkg.to_string(),
        }),
    }
}

impl Apt {
    /// The Source for `chosen` entries (all from the file of the first):
    /// their description, keyrings and URIs, and the single-source list
    /// generated from them.
    /// `pkg`'s entries in dpkg's `status` file, read in process; `None`
    /// when that file alone is not the truth (dpkg's journal holds pending
    /// entries: a dpkg running or killed) or cannot be read, and
    /// `dpkg-query` must be asked instead.
    fn status_entries(&self, pkg: &PkgName) -> Option<Vec<crate::dpkg_status::Entry>> {
        crate::dpkg_status::entries(&self.system, &self.admindir(), pkg.as_str())
    }

    fn source_from_entries(&self, chosen: Vec<AptEntry>) -> Result<Source> {
        // All chosen entries must come from one file: the Teleport
        // repository definition.
        let file = chosen[0].file.clone();
        let chosen: Vec<AptEntry> = chosen.into_iter().filter(|e| e.file == file).collect();
        let mut keyrings = Vec::new();
        let mut text = format!(
            "# Generated by teleport-upgrade from {}: only the Teleport repository.\n",
            self.system.display_path(&file)
        );
        for (i, e) in chosen.iter().enumerate() {
            let inline = e.option("signed-by").filter(|v| v.contains("BEGIN PGP"));
            let mut e = e.clone();
            e.options
                .retain(|(k, _)| apt_trust::SAFE_SOURCE_OPTIONS.contains(&k.as_str()));
            let e = &e;
            let line = if let Some(block) = inline {
                let key = self.keys.join(format!("inline-key-{i}.asc"));
                std::fs::write(&key, block.as_bytes())
                    .map_err(|err| Error::io(format!("writing {}", key.display()), err))?;
                keyrings.push(key.clone());
                let mut e2 = e.clone();
                e2.options.retain(|(k, _)| k != "signed-by");
                e2.options
                    .push(("signed-by".into(), key.display().to_string()));
                e2.to_one_line(|p| p.to_string())
            } else {
                for p in e.signed_by_paths() {
                    keyrings.push(self.keyring_host_path(&p));
                }
                e.to_one_line(|p| self.keyring_host_path(p).display().to_string())
            };
            text.push_str(&line);
            text.push('\n');
        }
        let list = self.work.join("teleport-source.list");
        write_work_file(&list, text.as_bytes())?;
        Ok(Source {
            file: file.clone(),
            description: redact(&format!(
                "{} ({})",
                chosen
                    .iter()
                    .map(|e| e.describe())
                    .collect::<Vec<_>>()
                    .join("; "),
                self.system.display_path(&file)
            )),
            id: list.display().to_string(),
            keyrings,
            uris: chosen.iter().map(|e| e.uri.clone()).collect(),
        })
    }
}

impl Apt {
    /// Settings that weaken verification in the configuration apt really
    /// reads (`apt-config dump`, under the same environment as the refresh,
    /// without the enforcement), judged with apt's boolean rules. Returns
    /// (refusals, warnings).
    fn weakening_config_findings(&self) -> Result<(Vec<TrustFinding>, Vec<TrustFinding>)> {
        let cl = self.apt_tool_unenforced("apt-config").arg("dump");
        let fin = self.runner.run(&cl)?;
        if !fin.success() {
            // apt cannot read its own configuration: neither can we judge
            // it, and the refresh would fail the same way.
            return Err(Error::Untrusted {
                reason: format!(
                    "apt cannot read its configuration (`{cl}`, {}): {}",
                    fin.status_text(),
                    fin.tail(3)
                ),
            });
        }
        let dump = apt_trust::parse_dump(&fin.stdout);
        let files = apt_trust::config_files(
            self.apt_config.as_deref(),
            &self.etc_apt().join("apt.conf.d"),
            &self.etc_apt().join("apt.conf"),
        );
        let shown = |p: &Path| -> PathBuf {
            if self.apt_config.as_deref() == Some(p) {
                PathBuf::from("the updater's APT_CONFIG")
            } else {
                PathBuf::from(self.system.display_path(p))
            }
        };
        let at = |key: &str| -> (PathBuf, Option<usize>) {
            match apt_trust::locate(&files, key) {
                Some((f, l)) => (shown(&f), Some(l)),
                None => (PathBuf::from("apt's configuration (apt-config dump)"), None),
            }
        };
        let mut refusals = Vec::new();
        let mut warnings = Vec::new();
        for key in apt_trust::REFUSED_WHEN_TRUE {
            if apt_trust::find_b(&dump, key, false) {
                let (file, line) = at(key);
                refusals.push(TrustFinding {
                    file,
                    line,
                    setting: format!(
                        "{key} \"{}\"",
                        apt_trust::lookup(&dump, key).unwrap_or_default()
                    ),
                    message: "switches apt's signature verification off (apt reads this value as true); remove this line".into(),
                });
            }
        }
        let mut warn = |key: &str, message: &str| {
            let (file, line) = at(key);
            warnings.push(TrustFinding {
                file,
                line,
                setting: format!(
                    "{key} \"{}\"",
                    apt_trust::lookup(&dump, key).unwrap_or_default()
                ),
                message: message.to_string(),
            });
        };
        for key in apt_trust::WARNED_WHEN_TRUE {
            if apt_trust::find_b(&dump, key, false) {
                warn(
                    key,
                    "trusts unsigned sources; the updater turns it off for its own calls",
                );
            }
        }
        for key in apt_trust::WARNED_WHEN_FALSE {
            if !apt_trust::find_b(&dump, key, true) {
                warn(key, "turns off the replay protection of signed metadata; the updater turns it on for its own calls");
            }
        }
        for key in apt_trust::CLEARED {
            let items = apt_trust::children(&dump, key);
            let own = apt_trust::lookup(&dump, key).filter(|v| !v.is_empty());
            let changed = match *key {
                "Dir::Bin::Methods" => {
                    own.is_some_and(|v| v.trim_end_matches('/') != apt_trust::METHODS_DIR)
                        || !items.is_empty()
                }
                _ => own.is_some() || !items.is_empty(),
            };
            if changed {
                warn(
                    key,
                    "can weaken signature checks; the updater clears it for its own calls",
                );
            }
        }
        Ok((refusals, warnings))
    }
}

/// `Err(Untrusted)` when a successful apt command's output says apt let
/// something unverified through (it never should, with the enforcement).
fn check_verified_output(cl: &CommandLine, fin: &Finished) -> Result<()> {
    let text = fin.combined();
    if let Some(line) = text.lines().find(|l| {
        let l = l.to_ascii_lowercase();
        apt_trust::UNVERIFIED_OUTPUT
            .iter()
            .any(|m| l.contains(&m.to_ascii_lowercase()))
    }) {
        return Err(Error::Untrusted {
            reason: redact(&format!(
                "`{cl}` reported something unverified: {}",
                line.trim()
            )),
        });
    }
    Ok(())
}

/// Write a file of the backend's private work directory (the generated
/// `APT_CONFIG`, source list and inline keys): a fresh directory no other
/// process reads while this one writes, deleted at exit, so neither a
/// rename nor an fsync is needed (they cost milliseconds on every run).
/// The file is created 0600 (the single-source list may hold credentials).
pub(crate) fn write_work_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_private_and_carry_only_safe_source_options() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc/apt/sources.list.d")).unwrap();
        let list = root.path().join("etc/apt/sources.list.d/teleport.list");
        std::fs::write(
            &list,
            "deb [signed-by=/k.asc arch=amd64 trusted=yes allow-insecure=on allow-weak=1 allow-downgrade-to-insecure=yes check-valid-until=no lang=en] https://u:tok@mirror.example/debian bookworm stable/v15\n",
        )
        .unwrap();
        let apt = Apt::new(System::rooted(root.path()).unwrap(), Options::default()).unwrap();
        let (entries, _) = sources::parse_file(&list).unwrap();
        let src = apt.source_from_entries(entries).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&apt.work), 0o700);
        for f in [
            Path::new(&src.id),
            apt.clear_file.as_path(),
            apt.apt_config.as_deref().unwrap(),
        ] {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
        let text = std::fs::read_to_string(&src.id).unwrap();
        for bad in ["trusted", "allow-", "check-valid-until"] {
            assert!(!text.contains(bad), "{bad} carried: {text}");
        }
        assert!(
            text.contains("arch=amd64") && text.contains("lang=en") && text.contains("signed-by="),
            "{text}"
        );
        assert!(!src.description.contains("tok"), "{}", src.description);
    }

    #[test]
    fn a_successful_command_that_let_something_unverified_through_fails() {
        let fin = |out: &str| Finished {
            code: Some(0),
            stdout: out.into(),
            stderr: String::new(),
            elapsed: std::time::Duration::ZERO,
        };
        let cl = CommandLine::new("apt-get").arg("install");
        for bad in [
            "WARNING: The following packages cannot be authenticated!\n  teleport-ent\nAuthentication warning overridden.\n",
            "W: The repository 'http://u:tok@h bookworm Release' is not signed.\n",
            "W: Use --allow-insecure-repositories to force the update\n",
        ] {
            let e = check_verified_output(&cl, &fin(bad)).unwrap_err();
            assert!(e.is_untrusted(), "{bad}");
            assert!(!e.to_string().contains("tok"), "{e}");
        }
        let ok = "Reading package lists...\nThe following packages will be upgraded:\n  teleport-ent\nGet:1 http://127.0.0.1:1 bookworm/stable/v15 amd64 teleport-ent amd64 15.4.3 [1 kB]\nSetting up teleport-ent (15.4.3) ...\n";
        check_verified_output(&cl, &fin(ok)).unwrap();
    }

    #[test]
    fn policy_origins() {
        let out = "teleport-ent:\n  Installed: 15.4.2\n  Candidate: 15.4.3\n  Version table:\n     15.4.3 500\n        500 http://127.0.0.1:8000/debian bookworm/stable/v15 amd64 Packages\n *** 15.4.2 100\n        100 /var/lib/dpkg/status\n";
        assert_eq!(
            parse_policy_origins(out),
            vec![(
                "http://127.0.0.1:8000/debian".to_string(),
                "bookworm/stable/v15".to_string()
            )]
        );
    }

    #[test]
    fn origins_match_entries_with_slashed_components() {
        let (e, _) = sources::parse_list(
            Path::new("/x.list"),
            "deb [signed-by=/k] http://127.0.0.1:8000/debian/ bookworm stable/v15\n",
        );
        assert!(entry_matches_origin(
            &e[0],
            "http://127.0.0.1:8000/debian",
            "bookworm/stable/v15"
        ));
        assert!(!entry_matches_origin(
            &e[0],
            "http://127.0.0.1:8000/debian",
            "bookworm/stable/v16"
        ));
        assert!(!entry_matches_origin(
            &e[0],
            "http://127.0.0.1:9/debian",
            "bookworm/stable/v15"
        ));
    }
}

#[cfg(test)]
mod apt_version_tests {
    use super::*;

    #[test]
    fn versions_from_apt_get_version() {
        assert_eq!(
            parse_apt_version("apt 2.0.9 (amd64)\nSupported modules:"),
            Some((2, 0, 9))
        );
        assert_eq!(parse_apt_version("apt 2.6.1 (amd64)"), Some((2, 6, 1)));
        assert_eq!(parse_apt_version("apt 3.0.3 (arm64)"), Some((3, 0, 3)));
        assert_eq!(
            parse_apt_version("apt 2.2.4ubuntu1 (amd64)"),
            Some((2, 2, 4))
        );
        assert_eq!(parse_apt_version("apt 1.8 (amd64)"), Some((1, 8, 0)));
        assert_eq!(parse_apt_version("garbage"), None);
        assert!((2, 0, 9) < ERROR_ON_SINCE && (2, 2, 4) >= ERROR_ON_SINCE);
    }

    #[test]
    fn warnings_count_without_error_on() {
        let ok = "Hit:1 http://127.0.0.1:1/ bookworm InRelease\nReading package lists...\n";
        assert_eq!(refresh_problem_without_error_on(ok), None);
        let bad = "Get:1 http://x bookworm InRelease [1 kB]\nErr:1 http://x bookworm InRelease\n  The following signatures couldn't be verified because the public key is not available: NO_PUBKEY 0123\nW: GPG error: http://x bookworm InRelease: ...\n";
        assert!(refresh_problem_without_error_on(bad)
            .unwrap()
            .starts_with("Err:"));
    }
}
