//! The package file of the version being replaced, kept in the state
//! directory (`previous/`, one version at most) from before the install
//! until the new version is verified, so a rollback installs it without the
//! network: after the repository dropped it (a release pulled, as 17.3.0
//! was), or while the network is down.
//!
//! The file is downloaded by the package manager from the agent's source
//! with the verification an install from it makes (see the backend's
//! `keep_package`: on apt, apt's hash check against the `Packages` index
//! its signed `InRelease` vouches for), and the digest that signed
//! metadata gives is recorded beside it (`previous/kept.json`). Before a
//! rollback installs it, its SHA-256 is checked against that record again;
//! a file that does not match is removed and the rollback goes to the
//! repository instead. Backends that cannot keep a file (dnf, zypper for
//! now) roll back from the repository, as before.

use std::path::{Path, PathBuf};

use backends::{Backend, KeptFile, PkgName, PkgVersion, System};
use serde::{Deserialize, Serialize};

/// The record beside the kept file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    package: String,
    version: String,
    /// The file's name in the directory.
    file: String,
    sha256: String,
    vouched_by: String,
}

/// The directory of the kept file, as a host path.
pub fn dir(system: &System) -> PathBuf {
    crate::state::dir(system).join("previous")
}

fn record_path(system: &System) -> PathBuf {
    dir(system).join("kept.json")
}

/// The record beside the kept file, when there is one that parses.
fn record_of(system: &System) -> Option<Record> {
    let text = crate::fsread::read_bounded(&record_path(system), crate::fsread::CONFIG_CAP)
        .ok()
        .flatten()?;
    serde_json::from_slice(&text).ok()
}

impl Record {
    /// Of `version` of `pkg`, naming a file in the directory.
    fn is_of(&self, pkg: &PkgName, version: &PkgVersion) -> bool {
        let same = PkgVersion::parse(&self.version).is_ok_and(|v| v.same_upstream(version));
        self.package == pkg.as_str() && same && !self.file.contains('/') && !self.file.is_empty()
    }
}

/// The SHA-256 of `path`, lower-case hex.
fn sha256_of(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// `d`, created 0700, a real directory (not a link elsewhere).
fn private_dir(d: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(d)?;
    if !std::fs::symlink_metadata(d)?.is_dir() {
        return Err(std::io::Error::other("not a directory"));
    }
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
}

/// Drop whatever is kept.
pub fn drop_kept(system: &System) {
    match std::fs::remove_dir_all(dir(system)) {
        Ok(()) => tracing::info!("removed the kept package file of the version before"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(dir = %dir(system).display(), "cannot remove the kept package file: {e}")
        }
    }
}

/// Keep `version` of `pkg` (the installed one) for a rollback, replacing
/// whatever was kept. Best effort: a failure is logged and the rollback
/// will need the repository.
pub fn keep(b: &dyn Backend, source: &backends::Source, pkg: &PkgName, version: &PkgVersion) {
    let system = b.system();
    if let Some(file) = kept_already(system, pkg, version) {
        // An earlier run that stopped before its install (the mirror did
        // not offer the target yet, a kill): not downloaded again. Its
        // digest is checked before a rollback installs it, as always.
        tracing::info!(package = %pkg, file = %file.display(), "the package of {version} is kept already for a rollback without the network");
        return;
    }
    drop_kept(system);
    let d = dir(system);
    if let Err(e) = private_dir(&d) {
        tracing::warn!(dir = %d.display(), "cannot keep the package of {version}: {e}; a rollback will need the repository");
        return;
    }
    let kept = match b.keep_package(source, pkg, version, &d) {
        Ok(Some(k)) => k,
        Ok(None) => {
            drop_kept(system);
            return;
        }
        Err(e) => {
            tracing::warn!(package = %pkg, "cannot keep the package of {version}: {e}; a rollback will need the repository");
            drop_kept(system);
            return;
        }
    };
    match check_and_record(system, pkg, version, &kept) {
        Ok(sha256) => {
            tracing::info!(package = %pkg, file = %kept.path.display(), "kept the package of {version} for a rollback without the network (SHA-256 {sha256}; vouched for by {})", kept.vouched_by)
        }
        Err(e) => {
            tracing::warn!(package = %pkg, "cannot keep the package of {version}: {e}; a rollback will need the repository");
            drop_kept(system);
        }
    }
}

fn check_and_record(
    system: &System,
    pkg: &PkgName,
    version: &PkgVersion,
    kept: &KeptFile,
) -> Result<String, String> {
    // apt's archive copy: apt checked it against the signed index when it
    // downloaded it; hashed before a rollback installs it (`checked`), not
    // here (200-500 MB on every update).
    let got = match kept.hash_now {
        true => sha256_of(&kept.path).map_err(|e| format!("{}: {e}", kept.path.display()))?,
        false => kept.sha256.clone(),
    };
    // rpm: the package's own signature was checked (`rpm -K`); the digest
    // recorded is of the file checked, so that the rollback installs it.
    let kept = &KeptFile {
        sha256: if kept.sha256.is_empty() {
            got.clone()
        } else {
            kept.sha256.clone()
        },
        ..kept.clone()
    };
    if got != kept.sha256 {
        return Err(format!(
            "{} has SHA-256 {got}, not the {} of {}",
            kept.path.display(),
            kept.sha256,
            kept.vouched_by
        ));
    }
    let rec = Record {
        package: pkg.to_string(),
        version: version.to_string(),
        file: kept
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or("the kept file has no name")?,
        sha256: kept.sha256.clone(),
        vouched_by: kept.vouched_by.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&rec).map_err(|e| e.to_string())?;
    backends::write_private(&record_path(system), &bytes).map_err(|e| e.to_string())?;
    Ok(rec.sha256)
}

/// The kept file of `version` of `pkg` as its record names it, when it is
/// there (not hashed: see [`checked`]).
pub(super) fn kept_already(
    system: &System,
    pkg: &PkgName,
    version: &PkgVersion,
) -> Option<PathBuf> {
    let rec = record_of(system)?;
    if !rec.is_of(pkg, version) {
        return None;
    }
    let path = dir(system).join(&rec.file);
    std::fs::symlink_metadata(&path)
        .is_ok_and(|m| m.file_type().is_file())
        .then_some(path)
}

/// The kept file of `version` of `pkg`, checked against its recorded
/// digest; `None` (said why) when there is none or it does not match (then
/// it is removed).
pub fn checked(system: &System, pkg: &PkgName, version: &PkgVersion) -> Option<PathBuf> {
    let rec = record_of(system)?;
    if !rec.is_of(pkg, version) {
        tracing::info!(
            "the kept package file is of {} {}, not {pkg} {version}",
            rec.package,
            rec.version
        );
        return None;
    }
    let path = dir(system).join(&rec.file);
    match sha256_of(&path) {
        Ok(got) if got == rec.sha256 => {
            tracing::info!(file = %path.display(), "the kept package of {version} matches the SHA-256 {} ({})", rec.sha256, rec.vouched_by);
            Some(path)
        }
        Ok(got) => {
            tracing::error!(file = %path.display(), "the kept package of {version} has SHA-256 {got}, not the recorded {}: removed, not installed", rec.sha256);
            drop_kept(system);
            None
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), "cannot read the kept package of {version}: {e}");
            None
        }
    }
}
