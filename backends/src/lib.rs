//! Package-manager adapters for installing one package at an exact version
//! from a signed repository, and holding it there.
//!
//! This crate knows nothing of Teleport's update policy (windows, health,
//! version servers). It offers small, honest operations that each run the
//! real tool (`apt-get`, `dpkg`, `dnf`, `rpm`, `zypper`) with an argument
//! vector, never through a shell, and report failures with the command line,
//! the exit code and the tail of the tool's own output.
//!
//! Every backend can act on the running system or on an alternate root
//! ([`System::root`]): an image mounted somewhere, or a test fixture.

pub mod apt;
pub mod apt_trust;
mod blockbuf;
pub mod channel;
pub mod classify;
pub mod cmd;
pub mod detect;
pub mod digests;
pub mod dnf;
pub mod dnf_vars;
pub mod dpkg_status;
pub mod excludes;
pub mod fsread;
pub mod integrity;
pub mod names;
pub mod redact;
pub mod rpmdb;
pub mod sha256;
#[cfg(target_arch = "x86_64")]
mod sha256_ni;
pub mod sizes;
pub mod sources;
mod types;
pub mod zypper;

pub use channel::{Channel, ChannelMove};
pub use cmd::{CommandLine, Runner};
pub use detect::{detect, BackendKind, OsRelease};
pub use integrity::{FileFault, FileProblem};
pub use redact::redact;
pub use sizes::PackageSizes;
pub use types::{Installed, PkgName, PkgVersion, Source, System, TrustFinding, TrustReport};

use std::path::PathBuf;
use std::time::Duration;

/// What can go wrong inside a backend. Each variant says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tool this backend drives is not installed.
    #[error("{tool} is not installed or not on PATH ({detail})")]
    ToolMissing { tool: String, detail: String },

    /// The repository, its key or its configuration cannot be trusted:
    /// nothing was (or will be) installed from it.
    #[error("refused: {reason}")]
    Untrusted { reason: String },

    /// The package manager is one this updater does not drive there
    /// (dnf5 in an alternate root): nothing was run.
    #[error("refused: {reason}")]
    Unsupported { reason: String },

    /// No repository definition serves the package.
    #[error("no repository definition serves {package}: {detail}")]
    SourceNotFound { package: String, detail: String },

    /// The repository does not offer the requested version.
    #[error("{package} {version} is not offered by {source_desc}: {detail}")]
    VersionNotFound {
        package: String,
        version: String,
        source_desc: String,
        detail: String,
    },

    /// The package is not installed, so there is nothing to update.
    #[error("{package} is not installed")]
    NotInstalled { package: String },

    /// Another process holds the package manager's lock past our wait.
    #[error("the package manager is locked by another process: {detail}")]
    Locked { detail: String },

    /// A command ran and failed.
    #[error("`{command}` failed ({status}): {tail}")]
    CommandFailed {
        command: String,
        status: String,
        tail: String,
    },

    /// A command did not finish in time and was killed.
    #[error("`{command}` did not finish within {seconds} s and was stopped")]
    Timeout { command: String, seconds: u64 },

    /// After the install, the package is not at the requested version.
    #[error("after installing, {package} is at {found}, not the requested {wanted}")]
    VerifyFailed {
        package: String,
        found: String,
        wanted: String,
    },

    /// Output of a tool, or a file on disk, could not be understood.
    #[error("could not understand {what}: {detail}")]
    Parse { what: String, detail: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// True when the failure is a trust refusal (signature, key, or a
    /// configuration that weakens verification).
    pub fn is_untrusted(&self) -> bool {
        matches!(self, Error::Untrusted { .. })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A package file kept for a rollback without the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptFile {
    /// The file, as a host path.
    pub path: PathBuf,
    /// Its SHA-256, lower-case hex, as the source's signed metadata gives it.
    pub sha256: String,
    /// What vouched for that digest (for the log).
    pub vouched_by: String,
    /// Hash the file against `sha256` when keeping it (a download). A
    /// copy apt verified when it downloaded it (its archive cache, linked)
    /// is hashed only before a rollback installs it, as every kept file is.
    pub hash_now: bool,
}

/// One package manager, driven for one package.
///
/// The operations are deliberately small so that the caller (the policy
/// layer) decides their order, logs each step, and can show them in a dry
/// run through [`Backend::plan`].
pub trait Backend: Send + Sync {
    /// Which package manager this is.
    fn kind(&self) -> BackendKind;

    /// The system (host or alternate root) this backend acts on.
    fn system(&self) -> &System;

    /// The installed version of `pkg`, or `None` when it is not installed.
    fn installed(&self, pkg: &PkgName) -> Result<Option<Installed>>;

    /// The first of `candidates` that is installed, in order.
    fn first_installed(&self, candidates: &[PkgName]) -> Result<Option<Installed>> {
        for c in candidates {
            if let Some(i) = self.installed(c)? {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// The repository definition that serves `pkg` (never a hard-coded
    /// file name).
    fn locate_source(&self, pkg: &PkgName) -> Result<Source>;

    /// Check that the source and the package manager's configuration keep
    /// signature verification on. `Err(Untrusted)` names file, line and
    /// setting.
    fn audit_trust(&self, source: &Source) -> Result<TrustReport>;

    /// Repair an interrupted earlier transaction (e.g. `dpkg --configure
    /// -a`). Returns a description of what was repaired, if anything.
    fn recover(&self) -> Result<Option<String>>;

    /// An interrupted transaction of `pkg` that [`Backend::recover_package`]
    /// would finish (dpkg half-configured or its journal unfinished; two
    /// versions of `pkg` in the rpm database), without changing anything.
    fn unfinished_transaction(&self, pkg: &PkgName) -> Result<Option<String>> {
        let _ = pkg;
        Ok(None)
    }

    /// Finish what [`Backend::unfinished_transaction`] reports (by default
    /// [`Backend::recover`]). Returns what was repaired, if anything.
    fn recover_package(&self, pkg: &PkgName) -> Result<Option<String>> {
        let _ = pkg;
        self.recover()
    }

    /// Refresh the metadata of `source` only. A signature failure is an
    /// error, never a fallback to stale metadata.
    fn refresh(&self, source: &Source) -> Result<()>;

    /// What `version` of `pkg` needs on disk, as the metadata of `source`
    /// says (read from the cache [`Backend::refresh`] filled; nothing is
    /// downloaded). `None` when this backend cannot tell, or the source
    /// does not offer that version.
    fn package_sizes(
        &self,
        source: &Source,
        pkg: &PkgName,
        version: &PkgVersion,
    ) -> Result<Option<PackageSizes>> {
        let _ = (source, pkg, version);
        Ok(None)
    }

    /// Where a download of a package goes (the package cache, as a path on
    /// this host: inside the root under `--root`). `None` when unknown.
    fn download_dir(&self) -> Option<PathBuf> {
        None
    }

    /// Install exactly `version` of `pkg` from `source`, upgrading or
    /// downgrading, non-interactively. Does not verify; call
    /// [`Backend::installed`] afterwards.
    fn install_exact(&self, source: &Source, pkg: &PkgName, version: &PkgVersion) -> Result<()>;

    /// Whether [`Backend::is_held`] needs the real repository definition
    /// (dnf's `exclude=` lives in it); when not, a caller may pass any
    /// source, e.g. [`Source::unlocated`], and skip finding the repository.
    fn hold_needs_source(&self) -> bool {
        true
    }

    /// Keep routine upgrades from moving `pkg`.
    fn hold(&self, source: &Source, pkg: &PkgName) -> Result<()>;

    /// Whether a hold names one version (dnf's versionlock): then moving
    /// it is a swap, [`Backend::hold`] adding the installed version's hold
    /// and [`Backend::drop_old_holds`] deleting the old one, two steps so
    /// that a run killed between them finishes the swap.
    fn swaps_holds(&self) -> bool {
        false
    }

    /// Delete the holds this updater made of versions other than the
    /// installed one (never an operator's), once the installed version's
    /// hold is in place; nothing otherwise.
    fn drop_old_holds(&self, source: &Source, pkg: &PkgName) -> Result<()> {
        let _ = (source, pkg);
        Ok(())
    }

    /// Undo [`Backend::hold`].
    fn unhold(&self, source: &Source, pkg: &PkgName) -> Result<()>;

    /// Whether `pkg` is currently held.
    fn is_held(&self, source: &Source, pkg: &PkgName) -> Result<bool>;

    /// The commands an update of `pkg` to `version` would run, in order,
    /// for a dry run. Nothing is executed.
    fn plan(&self, source: &Source, pkg: &PkgName, version: &PkgVersion) -> Vec<CommandLine>;

    /// Full update sequence: recover, refresh, install exactly, hold, and
    /// verify that the installed version is the requested one. When the
    /// install fails, a hold that was in place is restored and no new one
    /// is added: a failed or refused update leaves the package database as
    /// it found it.
    fn update_to(&self, source: &Source, pkg: &PkgName, version: &PkgVersion) -> Result<Installed> {
        if let Some(what) = self.recover_package(pkg)? {
            tracing::warn!(repaired = %what, "repaired an interrupted package transaction");
        }
        self.refresh(source)?;
        let was_held = self.is_held(source, pkg)?;
        if let Err(e) = self.install_exact(source, pkg, version) {
            if was_held {
                if let Err(h) = self.hold(source, pkg) {
                    tracing::error!("the install failed and the hold could not be restored: {h}");
                }
            }
            return Err(e);
        }
        self.hold(source, pkg)?;
        self.drop_old_holds(source, pkg)?;
        let now = self.installed(pkg)?.ok_or_else(|| Error::NotInstalled {
            package: pkg.to_string(),
        })?;
        if !now.version.same_upstream(version) {
            return Err(Error::VerifyFailed {
                package: pkg.to_string(),
                found: now.version.to_string(),
                wanted: version.to_string(),
            });
        }
        Ok(now)
    }

    // --- A rollback without the network ------------------------------------

    /// Download the package file of `version` of `pkg` (the installed
    /// version) from `source` into `dir` (a host path, which must exist and
    /// hold nothing else), verified as an install from `source` would be,
    /// without installing it: for a later rollback that needs no network.
    /// Returns the file and the digest the source's signed metadata gives
    /// for it. `None` when this backend cannot keep one.
    fn keep_package(
        &self,
        source: &Source,
        pkg: &PkgName,
        version: &PkgVersion,
        dir: &std::path::Path,
    ) -> Result<Option<KeptFile>> {
        let _ = (source, pkg, version, dir);
        Ok(None)
    }

    /// The copy of `version` of `pkg` that [`Backend::keep_package`] would
    /// link instead of downloading (apt's archive cache), when there is
    /// one. Read from the file system, no fork.
    fn local_copy(&self, pkg: &PkgName, version: &PkgVersion) -> Option<PathBuf> {
        let _ = (pkg, version);
        None
    }

    /// Install the package file `file` (kept by [`Backend::keep_package`]
    /// and checked against its digest by the caller), over whatever version
    /// is installed, without the network. Does not hold.
    fn install_file(&self, pkg: &PkgName, file: &std::path::Path) -> Result<()> {
        let _ = file;
        Err(Error::NotInstalled {
            package: format!("{pkg} from a kept file (not supported by this package manager)"),
        })
    }

    // --- Integrity --------------------------------------------------------

    /// Verify the installed files of `pkg` against the package database
    /// (`dpkg --verify`, `rpm -V`), limited to its executables: files in a
    /// `bin`/`sbin` directory or otherwise executable. Configuration files,
    /// documents and modification times are never reported (see
    /// [`integrity`]). Empty when all is well; `Err(NotInstalled)` when the
    /// package is not installed. Changes nothing.
    fn verify_files(&self, pkg: &PkgName) -> Result<Vec<FileProblem>>;

    /// The executables of the installed `pkg` (as the target system sees
    /// them): the files [`Backend::verify_files`] judges. Used to record
    /// what the filesystem says about them after a full verification, so a
    /// later run can tell cheaply whether anything changed. Empty when the
    /// backend cannot tell (then every run verifies in full).
    fn executables(&self, pkg: &PkgName) -> Result<Vec<std::path::PathBuf>> {
        let _ = pkg;
        Ok(Vec::new())
    }

    /// The digests the package database records for `pkg`'s files (what
    /// the sliced verification compares with); empty when the backend
    /// cannot tell (then the full verification stays periodic).
    fn file_digests(
        &self,
        pkg: &PkgName,
    ) -> Result<std::collections::HashMap<std::path::PathBuf, digests::FileDigest>> {
        let _ = pkg;
        Ok(Default::default())
    }

    /// Reinstall exactly `version` of `pkg` (the installed one, as
    /// [`Backend::installed`] reports it) from `source`, non-interactively,
    /// with the same restrictions and verification as
    /// [`Backend::install_exact`]: this puts back missing or damaged files.
    /// Modified configuration files are kept. A hold is kept. Does not
    /// refresh (call [`Backend::refresh`] first) and does not verify (call
    /// [`Backend::verify_files`] afterwards).
    fn reinstall(&self, source: &Source, pkg: &PkgName, version: &PkgVersion) -> Result<()>;

    /// The commands a repair of `pkg` at `version` would run, in order, for
    /// a dry run: the refresh, then what [`Backend::reinstall`] runs.
    /// Nothing is executed.
    fn plan_reinstall(
        &self,
        source: &Source,
        pkg: &PkgName,
        version: &PkgVersion,
    ) -> Vec<CommandLine>;

    // --- Channels ---------------------------------------------------------

    /// How `source`'s definition file names its channel.
    fn channel_format<'a>(&self, source: &'a Source) -> channel::Format<'a>;

    /// The repository channel `source`'s definition names (`stable/v15`,
    /// `stable/cloud`, ...), read from its file. `None` when its Teleport
    /// entries name no single channel (see [`channel`]).
    fn channel(&self, source: &Source) -> Result<Option<Channel>> {
        channel::channel_of(&source.file, self.channel_format(source))
    }

    /// Plan moving `source`'s definition to `stable/v<to_major>`, without
    /// writing anything (for a dry run: [`ChannelMove::describe`]). `None`
    /// when the channel is not a `stable/v<N>` one, or already is
    /// `stable/v<to_major>`.
    fn plan_channel_move(&self, source: &Source, to_major: u64) -> Result<Option<ChannelMove>> {
        ChannelMove::plan(
            self.system(),
            &source.file,
            self.channel_format(source),
            to_major,
        )
    }

    /// A channel move of `source`'s definition that an earlier run left
    /// unfinished (its backup is still there); see
    /// [`channel::Interrupted`].
    fn interrupted_channel_move(&self, source: &Source) -> Result<Option<channel::Interrupted>> {
        ChannelMove::interrupted(self.system(), &source.file, self.channel_format(source))
    }

    /// Move `source`'s definition to `stable/v<to_major>`: the previous
    /// bytes are saved to [`ChannelMove::backup`], then the file is
    /// rewritten, each atomically. `None` as for
    /// [`Backend::plan_channel_move`]. Afterwards, get the updated source
    /// with [`Backend::reload_source`] (or `locate_source`), refresh it,
    /// and on failure call [`ChannelMove::restore`].
    fn move_channel(&self, source: &Source, to_major: u64) -> Result<Option<ChannelMove>> {
        let planned = self.plan_channel_move(source, to_major)?;
        if let Some(m) = &planned {
            m.apply()?;
        }
        Ok(planned)
    }

    /// `source` read again from its file (same file, same entries: the apt
    /// entries with the same URIs, the rpm section with the same id), for
    /// when the file changed (a channel move) and the package manager's
    /// cache does not know the new location yet, which `locate_source`
    /// may rely on. For apt the single-source list is regenerated.
    fn reload_source(&self, source: &Source) -> Result<Source>;
}

/// How a backend behaves; the defaults suit a timer-driven run.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long to wait for another process's package-manager lock.
    pub lock_wait: Duration,
    /// The longest any single package-manager command may run.
    pub command_timeout: Duration,
    /// The repository definition to use instead of finding it (a path as
    /// the target system sees it).
    pub source_file: Option<PathBuf>,
    /// Where the backend records the lock-list lines it wrote itself (dnf's
    /// versionlock): only those are ever moved or deleted. `None`: no
    /// record; the plugin-written exact locks of the package count as its
    /// own.
    pub hold_record: Option<PathBuf>,
    /// What marks the agent's repository in a configuration with no
    /// `source_file` (the caller's product names; none by default).
    pub hints: RepoHints,
}

/// How the agent's repository is recognised from configuration alone
/// (never from a cache): a URL on one of `release_hosts` (or a subdomain),
/// else one of `words` in its id or file name. Given by the caller: the
/// backends know no product's names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoHints {
    pub release_hosts: Vec<String>,
    pub words: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lock_wait: Duration::from_secs(120),
            command_timeout: Duration::from_secs(900),
            source_file: None,
            hold_record: None,
            hints: RepoHints::default(),
        }
    }
}

/// Build the backend of `kind` for `system`.
pub fn backend_for(kind: BackendKind, system: System, opts: Options) -> Result<Box<dyn Backend>> {
    match kind {
        BackendKind::Apt => Ok(Box::new(apt::Apt::new(system, opts)?)),
        BackendKind::Dnf => Ok(Box::new(dnf::Dnf::new(system, opts)?)),
        BackendKind::Yum => {
            // On RHEL 8 and later `yum` is dnf; use it by that name when
            // present, else dnf.
            let program = if Runner::default().find("yum").is_some() {
                "yum"
            } else {
                "dnf"
            };
            Ok(Box::new(dnf::Dnf::with_program(
                system,
                opts,
                BackendKind::Yum,
                program,
            )?))
        }
        BackendKind::Zypper => Ok(Box::new(zypper::Zypper::new(system, opts)?)),
    }
}

/// Write `bytes` to `path` atomically: a temporary file in the same
/// directory (mode 0644), fsync, rename over `path`, fsync of the directory.
/// A reader sees the old content or the new, never a mix.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Like [`write_atomic`], but the file gets the permissions (and, when run
/// as root, the owner and group) of `like`: a definition that holds
/// credentials must not become world-readable when it is rewritten.
pub fn write_atomic_like(
    path: &std::path::Path,
    bytes: &[u8],
    like: &std::fs::Metadata,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // A symlinked definition stays a symlink: its target is rewritten (in
    // the target's directory, so the rename stays atomic).
    let resolved = resolve_symlink(path)?;
    let path = resolved.as_path();
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    // Owner first: chown clears set-id bits, which the mode then restores.
    if let Err(e) = std::os::unix::fs::chown(tmp.path(), Some(like.uid()), Some(like.gid())) {
        if e.kind() != std::io::ErrorKind::PermissionDenied {
            return Err(e);
        }
    }
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(like.mode() & 0o7777))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `path` itself, or, when it is a symbolic link, the file it finally
/// points at (a dangling link is an error: writing would replace the link).
fn resolve_symlink(path: &std::path::Path) -> std::io::Result<PathBuf> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path),
        _ => Ok(path.to_path_buf()),
    }
}

/// Rewrite the existing file `path` atomically, keeping its mode and owner
/// (see [`write_atomic_like`]); a symbolic link stays a link and its target
/// is rewritten. A repository definition the updater edits (an `exclude=`
/// hold, a channel move) goes through here: a 0600 file holding
/// credentials stays 0600.
pub fn rewrite_in_place(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    write_atomic_like(path, bytes, &meta)
}

/// A private work directory (mode 0700, removed on drop) for the copies of
/// configuration the updater hands to a package manager.
/// It is made in `/run` (else `/tmp`), never in a caller's `TMPDIR`.
pub fn private_dir(prefix: &str) -> std::io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let mut made = None;
    let mut last = None;
    for base in ["/run", "/tmp"] {
        match tempfile::Builder::new().prefix(prefix).tempdir_in(base) {
            Ok(d) => {
                made = Some(d);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let d = match made {
        Some(d) => d,
        None => return Err(last.unwrap_or_else(|| std::io::Error::other("no directory"))),
    };
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700))?;
    Ok(d)
}

/// Write a private file (mode 0600) atomically: the copies the updater
/// writes may hold repository credentials.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Test-only: with `TELEPORT_UPGRADE_TEST_SKIP_AUDIT` set, the dnf and
/// zypper configuration audits pass without looking, so that a test can
/// show the command-line enforcement alone refusing an unverified package.
/// Honoured in debug builds only; a release build ignores it.
pub fn test_skip_audit() -> bool {
    cfg!(debug_assertions) && std::env::var_os("TELEPORT_UPGRADE_TEST_SKIP_AUDIT").is_some()
}

/// The environment every rpm-side command (rpm, dnf, yum, zypper) gets on
/// top of the process's: `HOME` is root's, so a caller's `~/.rpmmacros`
/// (`%_dbpath`, ...) is not read (and on builds whose `%_dbpath` is
/// `~/.rpmdb` the database stays root's).
pub(crate) const RPM_HOME: &str = "/root";

/// The file `path` (a host path) names, following symbolic links as the
/// target system sees them: an absolute link target is inside `root` (the
/// alternate root, `None` for the host). At most 40 links.
pub fn resolve_links(path: &std::path::Path, root: Option<&std::path::Path>) -> PathBuf {
    let mut cur = path.to_path_buf();
    for _ in 0..40 {
        let Ok(t) = std::fs::read_link(&cur) else {
            break;
        };
        cur = if t.is_absolute() {
            match root {
                Some(r) => r.join(t.strip_prefix("/").unwrap_or(&t)),
                None => t,
            }
        } else {
            cur.parent().unwrap_or(std::path::Path::new("/")).join(t)
        };
    }
    cur
}

/// Rewrite an existing file in place, as an operator's editor would: a
/// symbolic link is followed (the file it names is replaced, atomically,
/// and the link stays), and the file keeps its mode and owner.
pub fn write_atomic_in_place(
    path: &std::path::Path,
    root: Option<&std::path::Path>,
    bytes: &[u8],
) -> std::io::Result<()> {
    let real = resolve_links(path, root);
    let meta = std::fs::metadata(&real)?;
    write_atomic_like(&real, bytes, &meta)
}

/// The end of every trust audit: refuse with all `refusals` (each naming
/// file, line and setting), or accept with `passed` noted as checked.
pub(crate) fn audit_verdict(
    mut report: TrustReport,
    refusals: Vec<TrustFinding>,
    passed: String,
) -> Result<TrustReport> {
    if refusals.is_empty() {
        report.checked.push(passed);
        Ok(report)
    } else {
        Err(Error::Untrusted {
            reason: refusals
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn rewrites_keep_mode_owner_and_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real").join("teleport.repo");
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(&real, "old\n").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
        let _ = std::os::unix::fs::chown(&real, Some(4242), Some(4243));
        let owner = std::fs::metadata(&real)
            .map(|m| (m.uid(), m.gid()))
            .unwrap();
        let link = d.path().join("teleport.repo");
        std::os::unix::fs::symlink("real/teleport.repo", &link).unwrap();
        rewrite_in_place(&link, b"new\n").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new\n");
        let m = std::fs::metadata(&real).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o600);
        assert_eq!((m.uid(), m.gid()), owner);
        // A dangling link is an error, never replaced by a file.
        let dangling = d.path().join("dangling.repo");
        std::os::unix::fs::symlink("nowhere", &dangling).unwrap();
        assert!(write_atomic_like(&dangling, b"x", &m).is_err());
        assert!(std::fs::symlink_metadata(&dangling)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn private_files_are_0600_in_a_0700_directory() {
        let d = private_dir("t.").unwrap();
        let f = d.path().join("sub").join("zypp.conf");
        write_private(&f, b"[main]\n").unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(d.path()), 0o700);
        assert_eq!(mode(f.parent().unwrap()), 0o700);
        assert_eq!(mode(&f), 0o600);
    }
}
