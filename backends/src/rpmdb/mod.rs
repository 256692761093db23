//! Helpers shared by the dnf/yum and zypper backends: the installed version
//! from the rpm database, and `.repo` / `dnf.conf` / `zypp.conf` INI files
//! parsed with file and line positions (for trust findings) and edited in
//! place (for the `exclude=` hold).
//!
//! Where the rpm database lives differs: RHEL <= 9, Amazon Linux and SLES 15
//! keep it under `/var/lib/rpm`; openSUSE and newer Fedora-family systems
//! under `/usr/lib/sysimage/rpm` (with `/var/lib/rpm` a link, or not);
//! Debian's rpm build under `~/.rpmdb` (`/root/.rpmdb` inside a root); and a
//! system's own rpm macros may put it anywhere (`%_dbpath`). rpm, dnf and
//! zypper read the macros of the system they run on, so on the host rpm's
//! own answer is right. Under `--root` it is not: the host's rpm would look
//! for the database where the host keeps it. So for a root the query uses,
//! in this order: the `%_dbpath` the root's own macro files define (when a
//! database is there), rpm's default (when a database is there), the first
//! known location that holds one (`--dbpath`, which rpm resolves inside
//! `--root`).
//!
//! The INI files (`ini`), the choice of the repository (`discovery`), the
//! `exclude=` hold (`hold`) and the recognition of trust failures
//! (`classify`) are submodules, re-exported here.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::cmd::{CommandLine, Runner};
use crate::integrity::{self, FileProblem};
use crate::types::{Installed, PkgName, PkgVersion, System};
use crate::{Error, Result};

mod classify;
mod discovery;
mod first;
pub mod kept;
pub mod known;
pub use first::first_installed;
mod hold;
mod ini;
mod lock;

pub use classify::*;
pub use discovery::*;
pub use hold::*;
pub use ini::*;
pub use lock::*;

/// Places an rpm database is found in, most common first.
const DB_DIRS: &[&str] = &["/var/lib/rpm", "/usr/lib/sysimage/rpm", "/root/.rpmdb"];

/// Files that show a directory holds an rpm database (sqlite, ndb, bdb).
const DB_FILES: &[&str] = &["rpmdb.sqlite", "Packages.db", "Packages"];

fn holds_db(dir: &Path) -> bool {
    DB_FILES.iter().any(|f| dir.join(f).is_file())
}

/// rpm's compiled-in database directory (`%_dbpath`), as the target sees
/// it: recorded by an earlier run while rpm's configuration is unchanged
/// (see [`known::config_key`]), else asked of rpm.
fn default_dbpath(system: &System, runner: &Runner) -> Option<String> {
    static DEFAULT: OnceLock<Option<String>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            let key = known::config_key();
            let d = known::recorded_default(system, &key).unwrap_or_else(|| ask_default(runner));
            known::remember_default(key, d.clone());
            d
        })
        .clone()
}

/// `rpm --eval %{_dbpath}`.
fn ask_default(runner: &Runner) -> Option<String> {
    let fin = runner
        .run(
            &CommandLine::new("rpm")
                .env("HOME", crate::RPM_HOME)
                .args(["--eval", "%{_dbpath}"]),
        )
        .ok()?;
    let p = fin.stdout.trim().to_string();
    (fin.success() && p.starts_with('/')).then_some(p)
}

/// The macro files of a system, in the order rpm reads them (a later
/// definition wins): rpm's own, its `macros.d`, the vendor's
/// (`redhat`, `suse`, ...), then the administrator's in `/etc/rpm`.
fn macro_files(system: &System) -> Vec<PathBuf> {
    let sorted = |dir: &str, prefix: &str| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(system.path(dir))
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let mut files = vec![system.path("/usr/lib/rpm/macros")];
    files.extend(sorted("/usr/lib/rpm/macros.d", "macros."));
    for vendor in ["redhat", "suse", "amazon", "openEuler", "mageia"] {
        files.push(system.path(format!("/usr/lib/rpm/{vendor}/macros")));
    }
    files.extend(sorted("/etc/rpm", "macros."));
    files.push(system.path("/etc/rpm/macros"));
    files
}

/// The single-line macro definitions of `text` (`%name value`), in order.
/// Multi-line (`\`-continued) and parametric (`%name(...)`) ones are
/// skipped: `%_dbpath` is never one.
fn macro_definitions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut continued = false;
    for line in text.lines() {
        let was_continued = continued;
        continued = line.ends_with('\\');
        if was_continued || continued {
            continue;
        }
        let Some(rest) = line.trim_start().strip_prefix('%') else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let value = &rest[name.len()..];
        if name.is_empty() || !value.starts_with([' ', '\t']) {
            continue;
        }
        out.push((name, value.trim().to_string()));
    }
    out
}

/// `value` with `%{name}` / `%name` references expanded from `defs`;
/// `None` when something cannot be expanded (a conditional, a shell
/// expansion, an unknown macro, a loop).
fn expand_macro(
    value: &str,
    defs: &std::collections::HashMap<String, String>,
    depth: u8,
) -> Option<String> {
    if depth > 8 {
        return None;
    }
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        let name: String = if let Some(r) = rest.strip_prefix('{') {
            let end = r.find('}')?;
            let n = &r[..end];
            rest = &r[end + 1..];
            n.to_string()
        } else {
            let n: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[n.len()..];
            n
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        out.push_str(&expand_macro(defs.get(&name)?, defs, depth + 1)?);
    }
    out.push_str(rest);
    Some(out)
}

/// The `%_dbpath` the system's own macro files define, expanded; `None`
/// when they define none (or one that cannot be expanded here).
pub fn root_macro_dbpath(system: &System) -> Option<String> {
    let mut defs: std::collections::HashMap<String, String> = [
        ("_usr", "/usr"),
        ("_prefix", "/usr"),
        ("_var", "/var"),
        ("_localstatedir", "/var"),
        ("_sysconfdir", "/etc"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut dbpath = None;
    for f in macro_files(system) {
        let Ok(text) = crate::fsread::read_to_string(&f) else {
            continue;
        };
        for (name, value) in macro_definitions(&text) {
            if name == "_dbpath" {
                dbpath = Some(value.clone());
            }
            defs.insert(name, value);
        }
    }
    let p = expand_macro(&dbpath?, &defs, 0)?;
    let p = p.trim_end_matches('/').to_string();
    (p.starts_with('/') && !p.contains("/../")).then_some(p)
}

/// The `--dbpath` to pass for `system`, or `None` to use rpm's default.
pub fn dbpath(system: &System, runner: &Runner) -> Option<String> {
    let default = default_dbpath(system, runner);
    if !system.is_host() {
        if let Some(own) = root_macro_dbpath(system) {
            if holds_db(&system.path(&own)) {
                return (default.as_deref() != Some(own.as_str())).then_some(own);
            }
        }
    }
    if let Some(d) = default {
        if holds_db(&system.path(&d)) {
            return None;
        }
    }
    DB_DIRS
        .iter()
        .find(|d| holds_db(&system.path(d)))
        .map(|d| d.to_string())
}

/// `rpm [--root R] [--dbpath P]` for `system`.
pub fn rpm(system: &System, runner: &Runner) -> CommandLine {
    let mut cl = CommandLine::new("rpm").env("HOME", crate::RPM_HOME);
    if let Some(root) = system.root() {
        cl = cl.arg("--root").arg(root.display().to_string());
    }
    if let Some(p) = dbpath(system, runner) {
        cl = cl.arg("--dbpath").arg(p);
    }
    cl
}

/// The query [`installed`] runs.
pub fn query_cmd(system: &System, runner: &Runner, pkg: &PkgName) -> CommandLine {
    rpm(system, runner).args([
        "-q",
        "--qf",
        "%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\n",
        pkg.as_str(),
    ])
}

/// The installed version of `pkg` as `[E:]V-R` (epoch only when nonzero).
/// When several versions are installed (multiversion), the last one rpm
/// lists. Asked of rpm at most once per state of its database
/// ([`known::rows`]).
pub fn installed(system: &System, runner: &Runner, pkg: &PkgName) -> Result<Option<Installed>> {
    let rows = known::rows(system, runner, &[pkg.as_str()])?;
    let Some(row) = rows.last() else {
        return Ok(None);
    };
    let v = row.evr.strip_prefix("0:").unwrap_or(&row.evr);
    let version = PkgVersion::parse(v).map_err(|_| Error::Parse {
        what: "the version rpm reports".into(),
        detail: format!("{pkg} {v:?}"),
    })?;
    Ok(Some(Installed {
        name: pkg.clone(),
        version,
    }))
}

/// Every installed instance of `pkg`: (`NAME-[E:]V-R.ARCH`, install time),
/// in database order.
pub fn instances(system: &System, runner: &Runner, pkg: &PkgName) -> Result<Vec<(String, i64)>> {
    Ok(known::rows(system, runner, &[pkg.as_str()])?
        .into_iter()
        .map(|r| (format!("{}-{}.{}", r.name, r.evr, r.arch), r.installtime))
        .collect())
}

/// Two or more instances of `pkg` in the rpm database: what an rpm
/// transaction killed between installing the new version and erasing the
/// old one leaves.
pub fn duplicate_instances(
    system: &System,
    runner: &Runner,
    pkg: &PkgName,
) -> Result<Option<String>> {
    let all = instances(system, runner, pkg)?;
    Ok((all.len() > 1).then(|| {
        format!(
            "{} versions of {pkg} in the rpm database: {}",
            all.len(),
            all.iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }))
}

/// Finish the transaction [`duplicate_instances`] reports: erase every
/// instance but the one installed last (`rpm -e --nodeps NEVRA`), which is
/// what the interrupted upgrade had left to do (the files the newer
/// instance owns stay).
pub fn erase_older_instances(
    system: &System,
    runner: &Runner,
    pkg: &PkgName,
) -> Result<Option<String>> {
    let Some(what) = duplicate_instances(system, runner, pkg)? else {
        return Ok(None);
    };
    let mut all = instances(system, runner, pkg)?;
    // The last installed stays (database order breaks a tie).
    let keep = all
        .iter()
        .enumerate()
        .max_by_key(|(i, (_, t))| (*t, *i))
        .map(|(i, _)| i)
        .unwrap_or(0);
    all.remove(keep);
    for (nevra, _) in all {
        let cl = rpm(system, runner).args(["-e", "--nodeps", &nevra]);
        tracing::warn!(command = %cl, "erasing the older instance an interrupted transaction left");
        runner.run_ok(&cl)?;
    }
    Ok(Some(what))
}

/// `rpm -V` of `pkg`'s files only: dependencies and `%verifyscript` are
/// left out (`--nodeps --noscripts`), which would print other lines.
pub fn verify_cmd(system: &System, runner: &Runner, pkg: &PkgName) -> CommandLine {
    rpm(system, runner).args(["-V", "--nodeps", "--noscripts", pkg.as_str()])
}

/// Verify the executables of the installed `pkg` (see [`integrity`]):
/// `rpm -V`, then the recorded file modes to tell executables from other
/// files outside `bin`/`sbin` directories.
pub fn verify_files(system: &System, runner: &Runner, pkg: &PkgName) -> Result<Vec<FileProblem>> {
    if installed(system, runner, pkg)?.is_none() {
        return Err(Error::NotInstalled {
            package: pkg.to_string(),
        });
    }
    let cl = verify_cmd(system, runner, pkg);
    let fin = runner.run(&cl)?;
    // rpm -V exits 1 when it found problems (and when the package is not
    // installed, which was ruled out above).
    let lines = match fin.code {
        Some(0) | Some(1) => integrity::parse_rpm_verify(&fin.stdout)?,
        _ => {
            return Err(Error::CommandFailed {
                command: cl.to_string(),
                status: fin.status_text(),
                tail: fin.tail(3),
            })
        }
    };
    if fin.code == Some(1) && lines.is_empty() {
        return Err(Error::CommandFailed {
            command: cl.to_string(),
            status: fin.status_text(),
            tail: fin.tail(3),
        });
    }
    let modes = rpm(system, runner).args([
        "-q",
        "--qf",
        "[%{FILEMODES:octal} %{FILENAMES}\\n]",
        pkg.as_str(),
    ]);
    let fin = runner.run_ok(&modes)?;
    let execs = integrity::rpm_executables(&fin.stdout);
    Ok(integrity::executable_problems(lines, |p| {
        execs.iter().any(|e| e == p)
    }))
}

/// The executable regular files of the installed `pkg`, as rpm recorded
/// them (`rpm -q --qf '[%{FILEMODES:octal} %{FILENAMES}\n]'`).
pub fn executables(system: &System, runner: &Runner, pkg: &PkgName) -> Result<Vec<PathBuf>> {
    let modes = rpm(system, runner).args([
        "-q",
        "--qf",
        "[%{FILEMODES:octal} %{FILENAMES}\\n]",
        pkg.as_str(),
    ]);
    let fin = runner.run_ok(&modes)?;
    Ok(integrity::rpm_executables(&fin.stdout))
}

/// Whether the rpm database of `system` holds at least one public key
/// (`gpg-pubkey` pseudo-package).
pub fn has_pubkeys(system: &System, runner: &Runner) -> Result<bool> {
    let fin = runner.run(&rpm(system, runner).args(["-q", "gpg-pubkey"]))?;
    Ok(fin.success())
}

/// The public keys the rpm database of `system` trusts (every
/// `gpg-pubkey` pseudo-package), as concatenated ASCII-armored blocks;
/// empty when it holds none.
pub fn pubkeys(system: &System, runner: &Runner) -> Result<String> {
    let fin =
        runner.run(&rpm(system, runner).args(["-q", "gpg-pubkey", "--qf", "%{DESCRIPTION}\n"]))?;
    if fin.success() {
        Ok(fin.stdout)
    } else if fin.combined().contains("is not installed") {
        Ok(String::new())
    } else {
        Err(Error::CommandFailed {
            command: rpm(system, runner).args(["-q", "gpg-pubkey"]).to_string(),
            status: fin.status_text(),
            tail: fin.tail(3),
        })
    }
}

#[cfg(test)]
mod tests;
