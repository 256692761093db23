//! Teleport's package layout, as the host runs it.
//!
//! Since 15.5, 16.5 and 17.3 the agent package puts its binaries in
//! `/opt/teleport/system/bin` and its postinst (%post) links them into
//! `/usr/local/bin`; earlier packages put them in `/usr/bin`. Managed
//! Updates v2 (`teleport-update`) installs its own copies under
//! `/opt/teleport/default` (or another `/opt/teleport/<name>`) and links
//! those into `/usr/local/bin` instead. What systemd starts is the unit's
//! `ExecStart`, whatever the package database says. So after an install,
//! and in the integrity check, the updater looks at:
//!
//! - the package's state: fully installed, not left half-configured by a
//!   failed maintainer script (dpkg; rpm reports a failed %post as
//!   "non-critical" and exits 0, so the links below are what tells);
//! - each binary the package ships in `/opt/teleport/system/bin`: its
//!   `/usr/local/bin` link must be there and name it (a regular file in
//!   the way, left by an earlier tarball install, is named);
//! - the binary `teleport.service`'s `ExecStart` runs (links followed):
//!   it must exist and be one of the package's files.
//!
//! Reads only; changes nothing.

use std::fmt;
use std::path::{Path, PathBuf};

use backends::{Backend, PkgName, System};

/// Where the package's postinst links the binaries.
pub const LINK_DIR: &str = "/usr/local/bin";
/// Where the package (15.5, 16.5, 17.3 and later) puts them.
pub const SYSTEM_BIN: &str = "/opt/teleport/system/bin";
/// Where v2 installs its own (`/opt/teleport/default`, ...).
const V2_BASE: &str = "/opt/teleport/";
/// The agent's unit files, in systemd's order of precedence.
const UNIT_FILES: &[&str] = &[
    "/etc/systemd/system/teleport.service",
    "/run/systemd/system/teleport.service",
    "/usr/local/lib/systemd/system/teleport.service",
    "/usr/lib/systemd/system/teleport.service",
    "/lib/systemd/system/teleport.service",
];
/// The most bytes of a unit file read.
const UNIT_CAP: u64 = 64 * 1024;

/// What is wrong with the binaries the host runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The package is not fully installed (a maintainer script failed).
    Unfinished(String),
    /// No `/usr/local/bin` link for a binary of the package.
    MissingLink { link: PathBuf, to: PathBuf },
    /// A regular file (or a directory) is where the link goes.
    InTheWay { link: PathBuf, to: PathBuf },
    /// The link names another file.
    WrongLink {
        link: PathBuf,
        to: PathBuf,
        names: PathBuf,
    },
    /// The unit's `ExecStart` names a file that does not exist.
    ExecStartMissing { unit: PathBuf, binary: PathBuf },
    /// The unit's `ExecStart` runs a file the package does not own.
    ExecStartForeign {
        unit: PathBuf,
        binary: PathBuf,
        runs: PathBuf,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Unfinished(what) => write!(f, "not fully installed: {what}"),
            Fault::MissingLink { link, to } => {
                write!(f, "{} is missing (it should link to {})", link.display(), to.display())
            }
            Fault::InTheWay { link, to } => write!(
                f,
                "{} is a regular file, not the package's link to {} (an earlier install left it? move it away)",
                link.display(),
                to.display()
            ),
            Fault::WrongLink { link, to, names } => write!(
                f,
                "{} links to {}, not to the package's {}",
                link.display(),
                names.display(),
                to.display()
            ),
            Fault::ExecStartMissing { unit, binary } => write!(
                f,
                "{}'s ExecStart runs {}, which does not exist",
                unit.display(),
                binary.display()
            ),
            Fault::ExecStartForeign { unit, binary, runs } => write!(
                f,
                "{}'s ExecStart runs {} ({}), which the agent package does not own",
                unit.display(),
                binary.display(),
                runs.display()
            ),
        }
    }
}

/// The faults of `pkg`'s binaries as installed on `system`; empty when
/// the host runs the package's own binaries. Errors are the package
/// database's.
pub fn check(b: &dyn Backend, pkg: &PkgName) -> Result<Vec<Fault>, backends::Error> {
    let system = b.system();
    let mut faults = Vec::new();
    if let Some(what) = b.unfinished_transaction(pkg)? {
        faults.push(Fault::Unfinished(what));
    }
    let owned = b.executables(pkg)?;
    faults.extend(link_faults(system, &owned));
    faults.extend(exec_start_fault(system, &owned));
    Ok(faults)
}

/// The `/usr/local/bin` links of the package's `/opt/teleport/system/bin`
/// binaries (`owned`: as the target sees them).
pub fn link_faults(system: &System, owned: &[PathBuf]) -> Vec<Fault> {
    let mut faults = Vec::new();
    for to in owned
        .iter()
        .filter(|p| p.parent() == Some(Path::new(SYSTEM_BIN)))
    {
        let Some(name) = to.file_name() else { continue };
        let link = Path::new(LINK_DIR).join(name);
        let host = system.path(&link);
        let fault = match std::fs::symlink_metadata(&host) {
            Err(_) => Some(Fault::MissingLink {
                link: link.clone(),
                to: to.clone(),
            }),
            Ok(m) if !m.file_type().is_symlink() => Some(Fault::InTheWay {
                link: link.clone(),
                to: to.clone(),
            }),
            Ok(_) => {
                let names = target_path(system, &host);
                (names != *to).then(|| Fault::WrongLink {
                    link: link.clone(),
                    to: to.clone(),
                    names,
                })
            }
        };
        faults.extend(fault);
    }
    faults
}

/// The file `host` (a host path inside `system`) names once its links are
/// followed, as the target sees it.
fn target_path(system: &System, host: &Path) -> PathBuf {
    let real = backends::resolve_links(host, system.root());
    match system.root() {
        Some(r) => Path::new("/").join(real.strip_prefix(r).unwrap_or(&real)),
        None => real,
    }
}

/// The unit file systemd reads for the agent, as the target sees it.
fn unit_file(system: &System) -> Option<PathBuf> {
    UNIT_FILES
        .iter()
        .map(PathBuf::from)
        .find(|p| system.path(p).is_file())
}

/// The program of the unit's last `ExecStart=` line (systemd's prefixes
/// `@-:+!` removed); `None` when there is none or it is not absolute.
pub fn exec_start(unit_text: &str) -> Option<PathBuf> {
    let line = unit_text
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .rfind(|v| !v.trim().is_empty())?;
    let program = line
        .trim()
        .trim_start_matches(['@', '-', ':', '+', '!'])
        .split_whitespace()
        .next()?;
    Some(PathBuf::from(program)).filter(|p| p.is_absolute())
}

/// The unit's text as systemd reads it: the unit file, then its drop-ins
/// (`teleport.service.d/*.conf` in each unit directory; of the same name,
/// the one in the directory read first wins) in the order of their names.
fn unit_text(system: &System, unit: &Path) -> Option<String> {
    let mut text = crate::fsread::read_text(&system.path(unit), UNIT_CAP)
        .ok()
        .flatten()?;
    let mut dropins: std::collections::BTreeMap<std::ffi::OsString, PathBuf> = Default::default();
    for f in UNIT_FILES {
        let dir = system.path(format!("{f}.d"));
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let name = e.file_name();
            if Path::new(&name).extension().is_some_and(|x| x == "conf") {
                dropins.entry(name).or_insert(e.path());
            }
        }
    }
    for p in dropins.values() {
        if let Ok(Some(t)) = crate::fsread::read_text(p, UNIT_CAP) {
            text.push('\n');
            text.push_str(&t);
        }
    }
    Some(text)
}

fn exec_start_fault(system: &System, owned: &[PathBuf]) -> Option<Fault> {
    let unit = unit_file(system)?;
    let text = unit_text(system, &unit)?;
    let binary = exec_start(&text)?;
    let host = system.path(&binary);
    if !host.exists() {
        return Some(Fault::ExecStartMissing { unit, binary });
    }
    let runs = target_path(system, &host);
    let owned_real: Vec<PathBuf> = owned
        .iter()
        .map(|p| target_path(system, &system.path(p)))
        .collect();
    (!owned_real.contains(&runs)).then_some(Fault::ExecStartForeign { unit, binary, runs })
}

impl Fault {
    /// Whether a reinstall of the package puts it right (its postinst
    /// makes the links again); a file in the way or a unit that runs
    /// another binary are the operator's to fix (a reinstall would be
    /// attempted at every run in vain).
    pub fn reinstall_fixes(&self) -> bool {
        matches!(self, Fault::MissingLink { .. } | Fault::WrongLink { .. })
    }
}

/// The links and the unit's binary of the installed `version` of `pkg`,
/// as a no-op run observes them: the package's executables from the
/// integrity record when it is of this version (no package-manager
/// command), else from the package database.
pub fn observe(b: &dyn Backend, pkg: &PkgName, version: &str) -> Vec<Fault> {
    let system = b.system();
    let recorded = crate::fsread::read_bounded(
        &crate::integrity_cache::path(system),
        crate::fsread::STATE_CAP,
    )
    .ok()
    .flatten()
    .and_then(|t| serde_json::from_slice::<crate::integrity_cache::Record>(&t).ok())
    .filter(|r| r.package == pkg.as_str() && r.version == version && !r.files.is_empty())
    .map(|r| r.files.into_iter().map(|f| f.path).collect::<Vec<_>>());
    let owned = match recorded {
        Some(o) => o,
        None => match b.executables(pkg) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(package = %pkg, "cannot list the package's executables to check its links: {e}");
                return Vec::new();
            }
        },
    };
    let mut faults = link_faults(system, &owned);
    faults.extend(exec_start_fault(system, &owned));
    faults
}

/// `/usr/local/bin/teleport` as v2 links it (into `/opt/teleport/<name>`,
/// not the package's `/opt/teleport/system`): "<link> -> <target>".
pub fn v2_linked(system: &System) -> Option<String> {
    let link = Path::new(LINK_DIR).join("teleport");
    let host = system.path(&link);
    let t = std::fs::read_link(&host).ok()?;
    let names = if t.is_absolute() {
        t
    } else {
        Path::new(LINK_DIR).join(t)
    };
    let s = names.to_string_lossy();
    let system_dir = format!("{}/", SYSTEM_BIN.trim_end_matches("/bin"));
    (s.starts_with(V2_BASE) && !s.starts_with(&system_dir))
        .then(|| format!("{} -> {}", link.display(), names.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_start_is_the_last_program_without_prefixes() {
        let t = "[Service]\nExecStart=/usr/bin/teleport start\nExecStart=\nExecStart=-/usr/local/bin/teleport start --config /etc/teleport.yaml\n";
        assert_eq!(
            exec_start(t),
            Some(PathBuf::from("/usr/local/bin/teleport"))
        );
        assert_eq!(exec_start("ExecStart=teleport start\n"), None);
        assert_eq!(exec_start("[Unit]\n"), None);
    }

    #[test]
    fn a_drop_in_overrides_the_units_exec_start() {
        let d = tempfile::tempdir().unwrap();
        let sys = System::rooted(d.path()).unwrap();
        let lib = d.path().join("lib/systemd/system");
        std::fs::create_dir_all(lib.join("teleport.service.d")).unwrap();
        std::fs::write(
            lib.join("teleport.service"),
            "[Service]\nExecStart=/usr/bin/teleport start\n",
        )
        .unwrap();
        let etc = d.path().join("etc/systemd/system/teleport.service.d");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(
            etc.join("override.conf"),
            "[Service]\nExecStart=\nExecStart=/opt/x/teleport start\n",
        )
        .unwrap();
        std::fs::write(
            lib.join("teleport.service.d/override.conf"),
            "[Service]\nExecStart=/masked\n",
        )
        .unwrap();
        let text = unit_text(&sys, Path::new("/lib/systemd/system/teleport.service")).unwrap();
        assert_eq!(exec_start(&text), Some(PathBuf::from("/opt/x/teleport")));
        let f = exec_start_fault(&sys, &[PathBuf::from("/usr/bin/teleport")]);
        assert!(matches!(f, Some(Fault::ExecStartMissing { .. })), "{f:?}");
    }

    #[test]
    fn links_judged_and_v2_told_apart() {
        let d = tempfile::tempdir().unwrap();
        let sys = System::rooted(d.path()).unwrap();
        let bin = d.path().join("opt/teleport/system/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("teleport"), "x").unwrap();
        std::fs::write(bin.join("tctl"), "x").unwrap();
        std::fs::write(bin.join("tsh"), "x").unwrap();
        let local = d.path().join("usr/local/bin");
        std::fs::create_dir_all(&local).unwrap();
        std::os::unix::fs::symlink("/opt/teleport/system/bin/teleport", local.join("teleport"))
            .unwrap();
        std::fs::write(local.join("tctl"), "tarball").unwrap();
        let owned: Vec<PathBuf> = ["teleport", "tctl", "tsh"]
            .iter()
            .map(|n| Path::new(SYSTEM_BIN).join(n))
            .collect();
        let f = link_faults(&sys, &owned);
        assert!(
            matches!(&f[..], [Fault::InTheWay { .. }, Fault::MissingLink { .. }]),
            "{f:?}"
        );
        assert!(f[0]
            .to_string()
            .contains("/usr/local/bin/tctl is a regular file"));
        assert_eq!(v2_linked(&sys), None, "the package's own link");
        std::fs::remove_file(local.join("teleport")).unwrap();
        std::os::unix::fs::symlink(
            "/opt/teleport/default/versions/17.3.1/bin/teleport",
            local.join("teleport"),
        )
        .unwrap();
        assert_eq!(
            v2_linked(&sys).as_deref(),
            Some("/usr/local/bin/teleport -> /opt/teleport/default/versions/17.3.1/bin/teleport")
        );
        let f = link_faults(&sys, &owned);
        assert!(matches!(&f[0], Fault::WrongLink { .. }), "{f:?}");
    }
}
