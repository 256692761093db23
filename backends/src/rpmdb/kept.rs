//! The installed version's package file kept for a rollback without the
//! network, on rpm hosts (dnf, zypper): downloaded (download only, from
//! the agent's repository alone) and checked with `rpm -K`, which verifies
//! the package's own signature against the keys the rpm database trusts;
//! checked again with `rpm -K` right before a rollback installs it with
//! `rpm -U`. The caller records its SHA-256 when it is kept and checks the
//! file against it before the install, so the bytes installed are the
//! bytes checked.

use std::path::{Path, PathBuf};

use super::*;
use crate::KeptFile;

/// What vouches for a kept rpm.
pub const VOUCHED_BY: &str =
    "its own signature, checked with rpm -K against the keys the rpm database trusts";

/// The one `.rpm` under `dir` (a download may put it in a subdirectory).
pub fn only_rpm(dir: &Path) -> Result<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(&p, out),
                Ok(t) if t.is_file() && p.extension().is_some_and(|x| x == "rpm") => out.push(p),
                _ => {}
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, &mut found);
    match &found[..] {
        [one] => Ok(one.clone()),
        _ => Err(Error::Parse {
            what: dir.display().to_string(),
            detail: format!("expected one downloaded .rpm, found {}", found.len()),
        }),
    }
}

/// `rpm -K`: the package's digests and signature verify against the keys
/// the rpm database trusts (a package with no signature, or signed by a
/// key not imported, fails: "SIGNATURES NOT OK", "NOKEY").
pub fn check_signature(system: &System, runner: &Runner, file: &Path) -> Result<()> {
    let cl = rpm(system, runner)
        .arg("-K")
        .arg(file.display().to_string());
    let fin = runner.run(&cl)?;
    let out = fin.combined();
    let signed = out.contains("signatures OK") || out.contains("pgp") && !out.contains("NOT OK");
    if fin.success() && signed && !out.contains("NOT OK") && !out.contains("NOKEY") {
        return Ok(());
    }
    Err(Error::Untrusted {
        reason: format!(
            "the kept package {} does not verify (`{cl}`): {}",
            file.display(),
            fin.tail(2)
        ),
    })
}

/// The kept file after its download into `dir`, its signature checked.
pub fn kept_file(system: &System, runner: &Runner, dir: &Path) -> Result<KeptFile> {
    let found = only_rpm(dir)?;
    // Kept flat in `dir` (zypper's package cache nests it: <alias>/<arch>/)
    // and under a name of its own: dnf removes the file it downloaded to
    // `--destdir` at its next transaction (measured with dnf 4.14).
    let name = found.file_name().unwrap_or_default().to_string_lossy();
    let path = dir.join(format!("kept-{name}"));
    if found != path {
        std::fs::rename(&found, &path).map_err(|e| {
            Error::io(
                format!("moving {} into {}", found.display(), dir.display()),
                e,
            )
        })?;
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    check_signature(system, runner, &path)?;
    Ok(KeptFile {
        path,
        // the caller records the SHA-256 of the file it checked
        sha256: String::new(),
        vouched_by: VOUCHED_BY.into(),
        hash_now: true,
    })
}

/// Install a kept package file over whatever version is installed: its
/// signature checked again, then `rpm -U --oldpackage --replacepkgs`
/// (offline: no repository is read). Does not hold.
pub fn install_file(system: &System, runner: &Runner, file: &Path) -> Result<()> {
    check_signature(system, runner, file)?;
    let cl = rpm(system, runner).args([
        "-U".to_string(),
        "--oldpackage".into(),
        "--replacepkgs".into(),
        file.display().to_string(),
    ]);
    runner.run_ok(&cl).map(|_| ())
}
