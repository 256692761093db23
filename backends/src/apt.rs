//! apt-get / dpkg backend.
//!
//! * The repository that serves the package is found from apt's own
//!   knowledge (`apt-cache policy`) or, failing that, from entries that
//!   point at Teleport's release host or live in a file named after
//!   Teleport. Its entries are copied into a single-source list owned by the
//!   updater, so that refresh and install see only that repository: the
//!   package can come from nowhere else.
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

use crate::channel::Format;
use crate::cmd::{CommandLine, Finished, Runner};
use crate::integrity::{self, FileProblem};
use crate::sources::{self, AptEntry};
use crate::types::{Installed, PkgName, PkgVersion, Source, System, TrustFinding, TrustReport};
use crate::{Backend, BackendKind, Error, Options, Result};

/// apt settings that switch verification off when true.
const WEAKENING_CONFIG: &[&str] = &[
    "Acquire::AllowInsecureRepositories",
    "Acquire::AllowDowngradeToInsecureRepositories",
    "Acquire::AllowWeakRepositories",
    "APT::Get::AllowUnauthenticated",
];

/// Source options that switch verification off when set to yes.
const WEAKENING_OPTIONS: &[&str] = &[
    "trusted",
    "allow-insecure",
    "allow-weak",
    "allow-downgrade-to-insecure",
];

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
    /// Where generated files live (single-source list, inline keys,
    /// APT_CONFIG): a private temporary directory, removed on drop, so that
    /// even a dry run leaves nothing behind. World-readable because apt's
    /// download methods run as the `_apt` user and read the keyrings.
    _work_dir: tempfile::TempDir,
    work: PathBuf,
    apt_config: Option<PathBuf>,
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
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(work_dir.path(), std::fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::io("setting permissions of the temporary directory", e))?;
        }
        let work = work_dir.path().to_path_buf();
        let mut apt = Apt {
            system,
            runner,
            opts,
            _work_dir: work_dir,
            work,
            apt_config: None,
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

    /// A command with the environment every apt tool gets here.
    fn apt_tool(&self, program: &str) -> CommandLine {
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
        self.apt_get(source)
            .args(["-o", "APT::Get::List-Cleanup=0", "update", "--error-on=any"])
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
        for line in fin.stdout.lines() {
            let Some((abbrev, version)) = line.split_once('\t') else {
                continue;
            };
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
        for e in &ours {
            let shown = PathBuf::from(self.system.display_path(&e.file));
            for opt in WEAKENING_OPTIONS {
                if let Some(v) = e.option(opt) {
                    if matches!(v.to_ascii_lowercase().as_str(), "yes" | "true" | "1") {
                        refusals.push(TrustFinding {
                            file: shown.clone(),
                            line: Some(e.line),
                            setting: format!("{opt}={v}"),
                            message: format!(
                                "switches signature verification off for {}; remove it",
                                e.uri
                            ),
                        });
                    }
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
                    message: format!(
                        "{} is not restricted to a keyring; add [signed-by=/usr/share/keyrings/teleport-archive-keyring.asc]{}",
                        e.uri,
                        if e.uri.starts_with("http://") { " (it is also plain http)" } else { "" }
                    ),
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
            report
                .checked
                .push(format!("{} is restricted to its keyring", e.describe()));
        }
        refusals.extend(self.weakening_config_findings());
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

    fn unfinished_transaction(&self, _pkg: &PkgName) -> Result<Option<String>> {
        self.interrupted()
    }

    fn refresh(&self, source: &Source) -> Result<()> {
        let cl = self.refresh_cmd(source);
        let fin = self.run_classified(&cl, None)?;
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
            other => return other.map(|_| ()),
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
        self.run_classified(&cl, Some((pkg, version.as_str(), source)))
            .map(|_| ())
    }

    fn hold(&self, _source: &Source, pkg: &PkgName) -> Result<()> {
        self.run_classified(&self.selection_cmd(pkg, "hold"), None)
            .map(|_| ())
    }

    fn unhold(&self, _source: &Source, pkg: &PkgName) -> Result<()> {
        self.run_classified(&self.selection_cmd(pkg, "install"), None)
            .map(|_| ())
    }

    fn is_held(&self, _source: &Source, pkg: &PkgName) -> Result<bool> {
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
            .map(|_| ());
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
                detail: format!(
                    "{} no longer defines {}",
                    self.system.display_path(&source.file),
                    source.uris.join(", ")
                ),
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
            let line = if let Some(block) = inline {
                let key = self.work.join(format!("inline-key-{i}.asc"));
                write_work_file(&key, block.as_bytes())?;
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
            description: format!(
                "{} ({})",
                chosen
                    .iter()
                    .map(|e| e.describe())
                    .collect::<Vec<_>>()
                    .join("; "),
                self.system.display_path(&file)
            ),
            id: list.display().to_string(),
            keyrings,
            uris: chosen.iter().map(|e| e.uri.clone()).collect(),
        })
    }
}

impl Apt {
    /// Settings in apt's configuration files that weaken verification.
    fn weakening_config_findings(&self) -> Vec<TrustFinding> {
        let mut out = Vec::new();
        let etc = self.etc_apt();
        let mut files = vec![etc.join("apt.conf")];
        if let Ok(rd) = std::fs::read_dir(etc.join("apt.conf.d")) {
            let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            v.sort();
            files.extend(v);
        }
        for f in files {
            let Ok(text) = std::fs::read_to_string(&f) else {
                continue;
            };
            for (i, line) in text.lines().enumerate() {
                let l = line.split("//").next().unwrap_or("").trim();
                if l.starts_with('#') {
                    continue;
                }
                let lower = l.to_ascii_lowercase();
                for key in WEAKENING_CONFIG {
                    let k = key.to_ascii_lowercase();
                    let last = k.rsplit("::").next().unwrap_or(&k).to_string();
                    if (lower.contains(&k) || lower.contains(&last))
                        && (lower.contains("\"true\"")
                            || lower.contains("\"yes\"")
                            || lower.contains("\"1\"")
                            || lower.contains(" true")
                            || lower.contains(" yes"))
                    {
                        out.push(TrustFinding {
                            file: PathBuf::from(self.system.display_path(&f)),
                            line: Some(i + 1),
                            setting: key.to_string(),
                            message: "switches apt's signature verification off; remove this line"
                                .into(),
                        });
                    }
                }
            }
        }
        out
    }
}

/// [`crate::write_atomic`] with this crate's error type.
#[allow(dead_code)]
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::write_atomic(path, bytes)
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Write a file of the backend's private work directory (the generated
/// `APT_CONFIG`, source list and inline keys): a fresh directory no other
/// process reads while this one writes, deleted at exit, so neither a
/// rename nor an fsync is needed (they cost milliseconds on every run).
pub(crate) fn write_work_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

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
