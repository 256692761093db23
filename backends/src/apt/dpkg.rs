//! What dpkg knows: the installed version and its state, an interrupted
//! transaction and its repair, the files of the package and their check.

use super::*;

impl Apt {
    pub(super) fn read_installed(&self, pkg: &PkgName) -> Result<Option<Installed>> {
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

    pub(super) fn unfinished(&self, pkg: &PkgName) -> Result<Option<String>> {
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

    pub(super) fn verify(&self, pkg: &PkgName) -> Result<Vec<FileProblem>> {
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

    pub(super) fn executables_of(&self, pkg: &PkgName) -> Result<Vec<PathBuf>> {
        // dpkg's file list, read in process: `info/<pkg>.list`, or
        // `info/<pkg>:<arch>.list` for a multi-arch package.
        let info = self.admindir().join("info");
        let mut text = None;
        for name in [format!("{pkg}.list")] {
            if let Ok(t) = crate::fsread::read_db_text(info.join(&name)) {
                text = Some(t);
            }
        }
        if text.is_none() {
            let prefix = format!("{pkg}:");
            if let Ok(rd) = std::fs::read_dir(&info) {
                for e in rd.flatten() {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if n.starts_with(&prefix) && n.ends_with(".list") {
                        text = crate::fsread::read_db_text(e.path()).ok();
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

    /// Whether dpkg was interrupted: its journal holds entries, or
    /// `dpkg --audit` reports half-done packages.
    pub(super) fn interrupted(&self) -> Result<Option<String>> {
        Ok(self.unfinished_names()?.1)
    }

    /// The unfinished packages, and why a transaction is unfinished (when
    /// it is): read from dpkg's `status` when dpkg's journal holds nothing
    /// more ([`crate::dpkg_status::unfinished`]), else `dpkg --audit`.
    pub(super) fn unfinished_names(&self) -> Result<(Vec<String>, Option<String>)> {
        let status = self.admindir().join("status");
        if self.journal_pending().is_none() {
            let text = crate::fsread::read_bounded(&status, crate::fsread::DB_CAP)
                .ok()
                .flatten()
                .and_then(|b| String::from_utf8(b).ok());
            if let Some(names) = text.as_deref().and_then(crate::dpkg_status::unfinished) {
                let why = names
                    .first()
                    .map(|n| format!("{n} is not fully installed in {}", status.display()));
                return Ok((names, why));
            }
        }
        let audit = self.dpkg_audit()?;
        let why = self.journal_pending().or_else(|| audit_reason(&audit));
        Ok((parse_audit_names(&audit), why))
    }

    /// `dpkg --configure -a`, because of `why`.
    pub(super) fn configure_pending(&self, why: String) -> Result<Option<String>> {
        let cl = self.recover_cmd();
        tracing::warn!(reason = %why, command = %cl, "dpkg was interrupted; finishing its work");
        self.run_classified(&cl, None)?;
        Ok(Some(why))
    }

    /// dpkg's journal (`updates/`) holds entries a dpkg run did not fold
    /// into `status`: a dpkg running or killed.
    pub(super) fn journal_pending(&self) -> Option<String> {
        let updates = self.admindir().join("updates");
        let pending = std::fs::read_dir(&updates)
            .ok()?
            .filter_map(|e| e.ok())
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .chars()
                    .all(|c| c.is_ascii_digit())
            });
        pending.then(|| format!("{} holds unfinished journal entries", updates.display()))
    }

    /// What `dpkg --audit` prints (nothing when every package is fully
    /// installed or removed).
    pub(super) fn dpkg_audit(&self) -> Result<String> {
        Ok(self.runner.run(&self.dpkg().arg("--audit"))?.stdout)
    }

    pub(super) fn recover_cmd(&self) -> CommandLine {
        self.dpkg().env("DEBIAN_FRONTEND", "noninteractive").args([
            "--force-confdef",
            "--force-confold",
            "--configure",
            "-a",
        ])
    }

    /// The Source for `chosen` entries (all from the file of the first):
    /// their description, keyrings and URIs, and the single-source list
    /// generated from them.
    /// `pkg`'s entries in dpkg's `status` file, read in process; `None`
    /// when that file alone is not the truth (dpkg's journal holds pending
    /// entries: a dpkg running or killed) or cannot be read, and
    /// `dpkg-query` must be asked instead.
    pub(super) fn status_entries(&self, pkg: &PkgName) -> Option<Vec<crate::dpkg_status::Entry>> {
        crate::dpkg_status::entries(&self.system, &self.admindir(), pkg.as_str())
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

/// The package names of `dpkg --audit`'s report (indented lines; an
/// architecture qualifier kept).
/// Why `dpkg --audit`'s output says a transaction is unfinished.
pub(crate) fn audit_reason(out: &str) -> Option<String> {
    (!out.trim().is_empty())
        .then(|| format!("dpkg --audit: {}", out.lines().next().unwrap_or("").trim()))
}

/// The packages `dpkg --audit` names (half-configured, half-installed,
/// triggers pending...): its lines that start with a space give a package
/// name first.
pub(crate) fn parse_audit_names(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| {
            n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.:".contains(c))
        })
        .map(str::to_string)
        .collect()
}
