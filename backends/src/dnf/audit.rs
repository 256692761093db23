//! The trust audit: the repository's section and the main configuration
//! keep package and metadata signatures on, and name a key fetched safely.

use super::effective::Effective;
use crate::rpmdb::{self, IniSection};
use crate::types::{Source, TrustFinding, TrustReport};
use crate::Result;

impl super::Dnf {
    pub(super) fn audit(&self, source: &Source) -> Result<TrustReport> {
        if crate::test_skip_audit() {
            let mut r = TrustReport::default();
            r.checked.push(
                "TELEPORT_UPGRADE_TEST_SKIP_AUDIT: the dnf audit was skipped (test build)".into(),
            );
            return Ok(r);
        }
        let sec = self.section(source)?;
        let mut report = TrustReport::default();
        let mut refusals: Vec<TrustFinding> = Vec::new();
        let mut main: Vec<IniSection> = Vec::new();
        for f in self.config_files() {
            main.extend(rpmdb::read_ini(&f)?.into_iter().filter(|s| s.id == "main"));
        }
        // dnf's own view: the verdict on the checks; the files name where
        // a setting comes from.
        let eff = match self.effective(source) {
            Ok(Some(e)) => {
                report.checked.push(format!(
                    "the checks are judged as dnf resolves them ({})",
                    e.asked
                ));
                Some(e)
            }
            Ok(None) => {
                report.checked.push("no dnf library to ask for dnf's view of the repository (yum, or a dnf that is neither a Python script nor dnf5): the checks are judged from the files".into());
                None
            }
            Err(e) => {
                tracing::warn!("dnf's view of the repository could not be read ({e}): the checks are judged from the files");
                None
            }
        };
        self.audit_signature_checks(&sec, &main, eff.as_ref(), &mut report, &mut refusals);
        let keys = self.audit_keys(&sec, &main, eff.as_ref(), &mut report, &mut refusals);
        crate::audit_verdict(
            report,
            refusals,
            format!("[{}] names its signing key(s): {}", sec.id, keys.join(" ")),
        )
    }

    /// The effective value of a boolean: the repository's, else the last
    /// main configuration's, else dnf's default (off, `None`); with where
    /// it is set.
    fn file_setting(
        &self,
        sec: &IniSection,
        main: &[IniSection],
        key: &str,
    ) -> (Option<bool>, Option<TrustFinding>) {
        let file = self.shown(&sec.file);
        if let Some((b, line)) = sec.bool(key) {
            return (
                Some(b),
                Some(TrustFinding {
                    file: file.clone(),
                    line: Some(line),
                    setting: format!("{key}={}", sec.value(key).unwrap_or("")),
                    message: String::new(),
                }),
            );
        }
        for m in main.iter().rev() {
            if let Some((b, line)) = m.bool(key) {
                return (
                    Some(b),
                    Some(TrustFinding {
                        file: self.shown(&m.file),
                        line: Some(line),
                        setting: format!("{key}={}", m.value(key).unwrap_or("")),
                        message: String::new(),
                    }),
                );
            }
        }
        (None, None)
    }

    /// `gpgcheck` and `repo_gpgcheck` on for the repository (refusals),
    /// and the offs it overrides or that touch local files (warnings).
    fn audit_signature_checks(
        &self,
        sec: &IniSection,
        main: &[IniSection],
        eff: Option<&Effective>,
        report: &mut TrustReport,
        refusals: &mut Vec<TrustFinding>,
    ) {
        let file = self.shown(&sec.file);
        for key in ["gpgcheck", "repo_gpgcheck"] {
            let what = if key == "gpgcheck" {
                "package signatures"
            } else {
                "repository metadata signatures"
            };
            let (from_files, found) = self.file_setting(sec, main, key);
            let from_dnf = eff.and_then(|e| e.bool(key));
            if let (Some(d), Some(f)) = (from_dnf, from_files) {
                if d != f {
                    tracing::info!(
                        "dnf resolves {key} to {} for [{}], the files alone read {}",
                        d as u8,
                        sec.id,
                        f as u8
                    );
                }
            }
            match (from_dnf.or(from_files), found) {
                (Some(true), None) => report.checked.push(format!(
                    "{key} is on for [{}] as dnf resolves it ({}:{}: {key}={})",
                    sec.id,
                    file.display(),
                    sec.get(key).map(|e| e.line).unwrap_or(sec.line),
                    sec.value(key).unwrap_or("")
                )),
                // Set, to a value only dnf resolves (a variable): off.
                (Some(false), None) if sec.get(key).is_some() => refusals.push(TrustFinding {
                    file: file.clone(),
                    line: Some(sec.get(key).map(|e| e.line).unwrap_or(sec.line)),
                    setting: format!("{key}={}", sec.value(key).unwrap_or("")),
                    message: format!("dnf resolves {key} to 0 for [{}]: {what} would not be checked; set {key}=1 in its section", sec.id),
                }),
                (Some(true), Some(f)) => {
                    report.checked.push(format!("{key} is on for [{}] ({}:{})", sec.id, f.file.display(), f.line.unwrap_or(0)));
                    // An off in a main configuration that the repository
                    // overrides is worth a warning, not a refusal.
                    for m in main {
                        if let Some((false, line)) = m.bool(key) {
                            report.warnings.push(TrustFinding {
                                file: self.shown(&m.file),
                                line: Some(line),
                                setting: format!("{key}={}", m.value(key).unwrap_or("")),
                                message: format!("turns {what} off for every repository that does not set {key} itself; [{}] overrides it", sec.id),
                            });
                        }
                    }
                }
                (Some(false), Some(mut f)) => {
                    let why = match (from_files == Some(true), self.is_dnf5()) {
                        (true, true) => " (dnf resolves it to 0, though the files read on: dnf5 also reads pkg_gpgcheck= and /etc/dnf/repos.override.d)",
                        (true, false) => " (dnf resolves it to 0, though the files read on)",
                        _ => "",
                    };
                    f.message = format!("turns {what} off for [{}]{why}; set {key}=1 in its section of {}", sec.id, file.display());
                    refusals.push(f);
                }
                _ => refusals.push(TrustFinding {
                    file: file.clone(),
                    line: Some(sec.line),
                    setting: key.to_string(),
                    message: format!("[{}] does not set {key}, and dnf's default is off: {what} would not be checked; add {key}=1 to the section", sec.id),
                }),
            }
        }
        for m in main {
            if let Some((false, line)) = m.bool("localpkg_gpgcheck") {
                report.warnings.push(TrustFinding {
                    file: self.shown(&m.file),
                    line: Some(line),
                    setting: format!("localpkg_gpgcheck={}", m.value("localpkg_gpgcheck").unwrap_or("")),
                    message: "local package files are installed without a signature check (this updater installs from the repository only); set localpkg_gpgcheck=1".into(),
                });
            }
        }
    }

    /// The keys dnf will use for the repository: its view's `gpgkey`
    /// (variables substituted), else the file's. A value without a
    /// variable that dnf reads otherwise is refused; the local keyrings
    /// dnf resolves are reported for the key pin.
    fn keys_as_dnf_uses(
        &self,
        sec: &IniSection,
        eff: Option<&Effective>,
        report: &mut TrustReport,
        refusals: &mut Vec<TrustFinding>,
    ) -> Vec<String> {
        let literal = sec.gpgkeys();
        let Some(keys) = eff.and_then(Effective::gpgkeys) else {
            return literal;
        };
        let raw = sec.value("gpgkey").unwrap_or("");
        if keys != literal {
            let line = Some(sec.get("gpgkey").map(|e| e.line).unwrap_or(sec.line));
            if raw.contains('$') {
                report.checked.push(format!(
                    "gpgkey of [{}] as dnf expands it: {}",
                    sec.id,
                    keys.join(" ")
                ));
            } else {
                refusals.push(TrustFinding {
                    file: self.shown(&sec.file),
                    line,
                    setting: format!("gpgkey={raw}"),
                    message: format!(
                        "dnf reads the keys of [{}] as {:?}, not as the file reads; remove any other definition of the repository",
                        sec.id,
                        keys.join(" ")
                    ),
                });
            }
        }
        report.keyrings = Some(
            keys.iter()
                .filter_map(|k| rpmdb::file_url_path(k).map(|p| self.system.path(p)))
                .collect(),
        );
        keys
    }

    /// The repository names a signing key (as dnf expands it), fetched
    /// from a file that exists or over verified TLS; the keys it names.
    fn audit_keys(
        &self,
        sec: &IniSection,
        main: &[IniSection],
        eff: Option<&Effective>,
        report: &mut TrustReport,
        refusals: &mut Vec<TrustFinding>,
    ) -> Vec<String> {
        let file = self.shown(&sec.file);
        let keys = self.keys_as_dnf_uses(sec, eff, report, refusals);
        let literal = sec.gpgkeys();
        let key_line = sec.get("gpgkey").map(|e| e.line);
        // How a key is named in a finding: as written, and as dnf expands
        // it when that differs.
        let setting = |k: &str| -> String {
            if literal.iter().any(|l| l == k) {
                format!("gpgkey={k}")
            } else {
                format!(
                    "gpgkey={} (dnf expands it to {k})",
                    sec.value("gpgkey").unwrap_or("")
                )
            }
        };
        if keys.is_empty() {
            refusals.push(TrustFinding {
                file: file.clone(),
                line: Some(sec.line),
                setting: "gpgkey".into(),
                message: format!("[{}] names no signing key; add gpgkey=https://yum.releases.teleport.dev/gpg (or a file:// path of the installed key)", sec.id),
            });
        }
        let sslverify_off = sec
            .bool("sslverify")
            .or_else(|| main.iter().rev().find_map(|m| m.bool("sslverify")))
            .is_some_and(|(b, _)| !b);
        for k in &keys {
            if let Some(p) = rpmdb::file_url_path(k) {
                if !self.system.path(p).is_file() {
                    refusals.push(TrustFinding {
                        file: file.clone(),
                        line: key_line,
                        setting: setting(k),
                        message: format!("the key file {p} does not exist; install the Teleport release key there"),
                    });
                }
            } else if k.starts_with("http://") || k.starts_with("ftp://") {
                refusals.push(TrustFinding {
                    file: file.clone(),
                    line: key_line,
                    setting: setting(k),
                    message: "the key is fetched without transport security and dnf -y imports it: whoever is on the path picks the key; use https:// or a file:// path".into(),
                });
            } else if sslverify_off {
                refusals.push(TrustFinding {
                    file: file.clone(),
                    line: key_line,
                    setting: "sslverify=0".into(),
                    message: format!("the key {k} is fetched over unverified TLS and dnf -y imports it; remove sslverify=0"),
                });
            }
        }
        keys
    }
}
